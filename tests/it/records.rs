//! Faxes as medical and legal records (issue 23), on the real binary:
//! deletion that leaves nothing on the disk, backup and restore of a
//! running box, and retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faxbox::client::{Document, Http, Session};
use faxbox::model::{DocumentKind, FaxId, Folder, JobStatus};
use faxbox::store::Store;
use serde_json::json;

use crate::harness::{ServeProcess, faxbox, wait_for};

/// A loopback line that runs calls as fast as the CPU allows.
const FAST_LINE: &str =
    "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\nrealtime = false\n";

/// A loopback line paced at real speed: a call lasts long enough to be
/// caught on the line.
const REALTIME_LINE: &str =
    "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 1\nrealtime = true\n";

/// The number the box's own faxbox answers in these tests.
const OWN_NUMBER: &str = "5550100";

/// A started box and an API session of its admin account.
struct RecordsBox {
    serve: ServeProcess,
    session: Session,
}

impl RecordsBox {
    fn start(dir: &Path, config: &str) -> RecordsBox {
        let serve = ServeProcess::start(dir, config);
        let key = std::fs::read_to_string(serve.data_dir.join("api.key")).unwrap();
        let session = Session::login(&serve.api_url(), key.trim()).unwrap();
        RecordsBox { serve, session }
    }

    fn data(&self) -> &Path {
        &self.serve.data_dir
    }

    /// The store, opened beside the running box as an admin command does.
    fn store(&self) -> Store {
        Store::open_existing(self.data()).unwrap()
    }

    /// Runs `faxbox ARGS` on this box; its stdout, or a failure with stderr.
    fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = faxbox(self.data(), args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The admin account's faxbox, answering `OWN_NUMBER`, and with
    /// `mails` mailing a copy of what it sends and receives (the mails stay
    /// queued: the tests' box has no smarthost).
    fn own_faxbox(&self, mails: bool) -> String {
        let store = self.store();
        let account = faxbox::model::AccountId(self.session.account_id.clone());
        let id = store.faxboxes(&account).unwrap()[0].id.to_string();
        let mut args = vec!["faxbox", "update", &id, "--number", OWN_NUMBER];
        if mails {
            args.extend([
                "--notify-inbound",
                "clerk@office.test",
                "--notify-outbound",
                "clerk@office.test",
            ]);
        }
        self.cli(&args).unwrap();
        id
    }

    /// Sends a PDF whose pages say `texts`; the new fax's id.
    fn send(&self, faxbox_id: &str, to: &str, texts: &[&str]) -> FaxId {
        let job = self
            .session
            .send(
                &json!({"to_number": to, "faxbox_id": faxbox_id}),
                &[Document {
                    name: "letter.pdf".into(),
                    content_type: "application/pdf".into(),
                    bytes: crate::harness::pdf_of_texts(texts),
                }],
            )
            .unwrap();
        FaxId(job["id"].as_str().unwrap().to_owned())
    }

    fn wait_finished(&self, fax: &FaxId) {
        wait_for("the fax to finish", Duration::from_secs(120), || {
            self.store()
                .fax(fax)
                .unwrap()
                .status
                .is_some_and(JobStatus::is_terminal)
        });
    }

    /// `GET /v2/accounts/{admin}/faxes/PATH`: a document's bytes.
    fn faxes_api_bytes(&self, path: &str) -> Vec<u8> {
        let (status, body) = self.faxes_raw("GET", path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    }

    /// `METHOD /v2/accounts/{admin}/faxes/PATH`: status and JSON body.
    fn faxes_api(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.faxes_raw(method, path);
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn faxes_raw(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        let r = Http::new()
            .request(
                method,
                &format!(
                    "{}/v2/accounts/{}/faxes/{path}",
                    self.session.base(),
                    self.session.account_id
                ),
                &[("X-Auth-Token", self.session.token())],
                None,
            )
            .unwrap();
        (r.status, r.body)
    }
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// A run of `bytes` from its middle on that no other file would hold by
/// chance (not a stretch of white or of zeros).
fn distinctive(bytes: &[u8]) -> Vec<u8> {
    let window = 48;
    (bytes.len() / 2..bytes.len() - window)
        .map(|at| &bytes[at..at + window])
        .find(|w| w.iter().collect::<std::collections::HashSet<_>>().len() >= 16)
        .expect("the document has varied bytes")
        .to_vec()
}

/// A distinctive run of each blob of `fax` as the database holds it
/// (sealed): its documents and the mails that carry it.
fn stored_runs(data: &Path, fax: &FaxId) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(data.join("faxbox.sqlite")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut runs = Vec::new();
    for sql in [
        "SELECT data FROM documents WHERE fax_id = ?1",
        "SELECT message FROM mail_queue WHERE fax_id = ?1",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let blobs = stmt
            .query_map([fax.as_str()], |r| r.get::<_, Vec<u8>>(0))
            .unwrap();
        runs.extend(blobs.map(|b| distinctive(&b.unwrap())));
    }
    runs
}

/// Every row of every table, in rowid order, by table name.
fn all_rows(database: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .into_iter()
        .map(|table| {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"))
                .unwrap();
            let columns = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..columns).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            (table, rows)
        })
        .collect()
}

/// Rows that still mention `fax` in the tables that refer to faxes.
fn rows_of(data: &Path, fax: &FaxId) -> Vec<(&'static str, i64)> {
    let conn = rusqlite::Connection::open(data.join("faxbox.sqlite")).unwrap();
    [
        ("faxes", "id"),
        ("documents", "fax_id"),
        ("attempts", "fax_id"),
        ("mail_queue", "fax_id"),
    ]
    .into_iter()
    .map(|(table, column)| {
        let n: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE {column} = ?1"),
                [fax.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        (table, n)
    })
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// Issue 23, deletion: a fax deleted through the API, a fax's documents
/// deleted with `faxbox jobs delete --documents-only` and a received fax
/// deleted with `faxbox inbox delete` are gone from the tables and from
/// every file of the data dir (the SQLite file and its WAL included).
///
/// Long on purpose: the three ways of deleting are checked against the files of
/// one data dir, and the fax nobody deleted, checked last, shows each delete
/// took only its own bytes.
#[test]
fn deleted_faxes_and_documents_leave_no_bytes_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox(true);

    let marker_a = format!("MARKER-A-{}", std::process::id());
    let marker_b = format!("MARKER-B-{}", std::process::id());
    let kept = format!("MARKER-KEPT-{}", std::process::id());
    let a = b.send(&own, "5551234", &[&marker_a]);
    // Sent to the box's own number: it arrives in the inbox too.
    let bb = b.send(&own, OWN_NUMBER, &[&marker_b]);
    let other = b.send(&own, "5551234", &[&kept]);
    for fax in [&a, &bb, &other] {
        b.wait_finished(fax);
    }
    let received = {
        let store = b.store();
        let inbox = store
            .faxes(&faxbox::store::JobFilter {
                folder: Some(Folder::Inbox),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        inbox[0].id.clone()
    };
    // The documents are sealed at rest (README, "At rest"): what a delete
    // must remove from the disk is their sealed bytes, so those are looked
    // for, and the received pages are among them.
    assert!(
        b.store()
            .documents(&received)
            .unwrap()
            .iter()
            .any(|d| d.kind == DocumentKind::ReceivedTiff),
        "the received pages are stored"
    );
    let needles: Vec<(String, Vec<u8>)> = [
        (&a, "fax A"),
        (&bb, "fax B"),
        (&received, "the received fax"),
    ]
    .into_iter()
    .flat_map(|(fax, what)| {
        stored_runs(b.data(), fax)
            .into_iter()
            .map(move |run| (what.to_owned(), run))
    })
    .collect();
    assert!(
        needles.len() >= 5,
        "documents and mails of 3 faxes: {}",
        needles.len()
    );
    // Before: the documents are on the disk (else the search proves nothing).
    for (what, needle) in &needles {
        assert!(
            !files_containing(b.data(), needle).is_empty(),
            "{what} is stored before the deletes"
        );
    }
    for marker in [&marker_a, &marker_b] {
        assert_eq!(
            files_containing(b.data(), marker.as_bytes()),
            Vec::<PathBuf>::new()
        );
    }
    let kept_runs = stored_runs(b.data(), &other);
    assert!(
        !rows_of(b.data(), &received).is_empty(),
        "the received fax has rows"
    );
    assert!(
        rows_of(b.data(), &received).contains(&("mail_queue", 1)),
        "the received fax's mail is queued: {:?}",
        rows_of(b.data(), &received)
    );

    // DELETE .../faxes/outbox/{id} (docs/kazoo.md 2.2).
    let (status, body) = b.faxes_api("DELETE", &format!("outbox/{a}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["_read_only"]["deleted"], true);
    assert_eq!(b.faxes_api("GET", &format!("outbox/{a}")).0, 404);
    // Only the documents: the record stays.
    b.cli(&["jobs", "delete", bb.as_str(), "--documents-only"])
        .unwrap();
    let (status, body) = b.faxes_api("GET", &format!("outbox/{bb}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        b.faxes_api("GET", &format!("outbox/{bb}/attachment")).0,
        404
    );
    // A received fax, by the first characters of its id.
    b.cli(&["inbox", "delete", &received.as_str()[..8]])
        .unwrap();

    assert_eq!(rows_of(b.data(), &a), vec![]);
    assert_eq!(rows_of(b.data(), &received), vec![]);
    let rest = rows_of(b.data(), &bb);
    assert!(
        rest.contains(&("faxes", 1)) && rest.contains(&("attempts", 1)),
        "the record and its attempt stay: {rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|(t, _)| *t == "documents" || *t == "mail_queue"),
        "{rest:?}"
    );
    for (what, needle) in &needles {
        let left = files_containing(b.data(), needle);
        assert!(left.is_empty(), "{what} is still in {left:?}");
    }
    // The fax nobody deleted is untouched.
    for run in &kept_runs {
        assert_eq!(files_containing(b.data(), run).len(), 1);
    }
    let pdf = b.faxes_api_bytes(&format!("outbox/{other}/attachment?format=original"));
    assert_eq!(pdf, crate::harness::pdf_of_texts(&[&kept]));
    assert_eq!(
        b.store().fax(&other).unwrap().status,
        Some(JobStatus::Completed)
    );
    // Deleting it again says what was not found.
    let err = b.cli(&["jobs", "delete", a.as_str()]).unwrap_err();
    assert!(err.contains(a.as_str()), "{err}");
}

/// Issue 23: a fax on a line now is not deleted; the error says what to do,
/// and once cancelled and hung up it is.
#[test]
fn a_fax_on_a_call_is_not_deleted_until_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), REALTIME_LINE);
    let own = b.own_faxbox(false);
    let fax = b.send(&own, "5551234", &["Page 1", "Page 2", "Page 3"]);
    wait_for("the call to start", Duration::from_secs(60), || {
        b.store().fax(&fax).unwrap().status == Some(JobStatus::Processing)
    });

    let err = b.cli(&["jobs", "delete", fax.as_str()]).unwrap_err();
    assert!(
        err.contains("on a call right now") && err.contains("faxbox jobs cancel"),
        "{err}"
    );
    let (status, body) = b.faxes_api("DELETE", &format!("outbox/{fax}"));
    assert_eq!(status, 409, "{body}");
    let err = b
        .cli(&["jobs", "delete", fax.as_str(), "--documents-only"])
        .unwrap_err();
    assert!(err.contains("on a call right now"), "{err}");
    assert!(!rows_of(b.data(), &fax).is_empty(), "nothing was deleted");

    b.cli(&["jobs", "cancel", fax.as_str()]).unwrap();
    b.wait_finished(&fax);
    b.cli(&["jobs", "delete", fax.as_str()]).unwrap();
    assert_eq!(rows_of(b.data(), &fax), vec![]);
}

/// Issue 23, backup and restore: a backup taken while the box runs, with
/// faxes sent and received over the loopback line, restores on a fresh data
/// dir with every row of every table and every document byte for byte, and
/// `faxbox serve` runs on it; a restore onto a live or non-empty data dir is
/// refused and changes nothing.
///
/// Long on purpose: the refusals, the restore elsewhere and the restored box's
/// new fax all use the one archive taken from the running box after its faxes
/// went both ways, so they check that archive and its key, not a fresh one
/// each.
#[test]
fn a_backup_of_a_running_box_restores_every_row_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox(false);
    let sent = [
        b.send(&own, "5551234", &["A letter", "Its second page"]),
        b.send(&own, OWN_NUMBER, &["A fax to ourselves"]),
        b.send(&own, "5551235", &["Another letter"]),
    ];
    for fax in &sent {
        b.wait_finished(fax);
    }
    let archive = dir.path().join("box.tar");
    let printed = b.cli(&["backup", archive.to_str().unwrap()]).unwrap();
    assert!(
        printed.contains("4 faxes"),
        "3 sent and 1 received: {printed}"
    );
    // The document key stays out of the archive, and the backup says so.
    let key = b.data().join("document.key");
    let key_bytes = std::fs::read(&key).unwrap();
    assert!(
        printed.contains("not in the backup") && printed.contains(key.to_str().unwrap()),
        "{printed}"
    );
    let tar = std::fs::read(&archive).unwrap();
    assert!(!tar.windows(key_bytes.len()).any(|w| w == key_bytes));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600,
        "a backup holds faxes and keys: for its owner only"
    );

    // Refused: the live box's own folder, and a folder with anything in it.
    let err = b.cli(&["restore", archive.to_str().unwrap()]).unwrap_err();
    assert!(
        err.contains("running") && err.contains("--data-dir"),
        "{err}"
    );
    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("notes.txt"), "mine").unwrap();
    let out = faxbox(&occupied, &["restore", archive.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not empty") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);

    // Restored on a fresh data dir of another box, with the key kept apart;
    // another key is refused first, and nothing is restored.
    let other = tempfile::tempdir().unwrap();
    let restored = other.path().join("data");
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, [9u8; 32]).unwrap();
    let out = faxbox(
        &restored,
        &[
            "restore",
            archive.to_str().unwrap(),
            "--key",
            wrong.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not the document key"),
        "{err}"
    );
    assert!(!restored.exists());
    let out = faxbox(
        &restored,
        &[
            "restore",
            archive.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live_rows = all_rows(&b.data().join("faxbox.sqlite"));
    let restored_rows = all_rows(&restored.join("faxbox.sqlite"));
    assert!(
        live_rows
            .iter()
            .any(|(t, rows)| t == "documents" && rows.len() >= 4)
    );
    assert_eq!(
        live_rows
            .iter()
            .map(|(t, r)| (t, r.len()))
            .collect::<Vec<_>>(),
        restored_rows
            .iter()
            .map(|(t, r)| (t, r.len()))
            .collect::<Vec<_>>(),
    );
    for ((table, live), (_, copy)) in live_rows.iter().zip(&restored_rows) {
        assert!(live == copy, "the table {table} differs after restore");
    }
    let (live, copy) = (b.store(), Store::open_existing(&restored).unwrap());
    for fax in live.faxes(&Default::default()).unwrap() {
        assert_eq!(
            copy.attempts(&fax.id).unwrap(),
            live.attempts(&fax.id).unwrap()
        );
        let docs = live.documents(&fax.id).unwrap();
        assert!(!docs.is_empty(), "{fax:?}");
        assert_eq!(copy.documents(&fax.id).unwrap(), docs);
        for doc in docs {
            assert!(
                copy.document_bytes(&doc.id).unwrap() == live.document_bytes(&doc.id).unwrap(),
                "document {} of fax {} differs",
                doc.id,
                fax.id
            );
        }
    }
    drop(copy);
    for file in ["api.key", "token.key", "document.key"] {
        assert_eq!(
            std::fs::read(restored.join(file)).unwrap(),
            std::fs::read(b.data().join(file)).unwrap(),
            "{file}"
        );
    }

    // The restored box runs: the old key logs in, the old faxes are there,
    // and it sends a new one.
    let again = RecordsBox::start(other.path(), FAST_LINE);
    assert!(
        !again.serve.banner.contains("First start"),
        "{}",
        again.serve.banner
    );
    assert_eq!(again.session.account_id, b.session.account_id);
    assert_eq!(
        again.faxes_api("GET", &format!("outbox/{}", sent[0])).0,
        200
    );
    let new = again.send(&own, "5551234", &["After the restore"]);
    again.wait_finished(&new);
    assert_eq!(
        again.store().fax(&new).unwrap().status,
        Some(JobStatus::Completed)
    );
}

/// Moves a fax's end back by `days`, as if it had ended that long ago.
fn age(data: &Path, fax: &FaxId, days: i64) {
    let conn = rusqlite::Connection::open(data.join("faxbox.sqlite")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute(
        "UPDATE faxes SET created = created - ?2, modified = modified - ?2 WHERE id = ?1",
        rusqlite::params![fax.as_str(), days * 86_400],
    )
    .unwrap();
}

/// `faxbox_purged_total` of the running box's /metrics, by `what`.
fn purged_metric(b: &RecordsBox, what: &str) -> Option<u64> {
    let r = Http::new()
        .request(
            "GET",
            &format!("{}/metrics", b.session.base()),
            &[("X-Auth-Token", b.session.token())],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let prefix = format!("faxbox_purged_total{{what=\"{what}\"}} ");
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

/// Issue 23, retention: `faxbox purge --dry-run` lists what is past its
/// time and changes nothing; `faxbox purge` removes it, never a fax still
/// queued however old; the running box purges at start (and daily), and
/// /metrics counts what went.
#[test]
fn retention_purges_what_is_past_its_time_and_never_a_queued_fax() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox(false);
    let old_letter = b.send(&own, "5551234", &["Sent two days ago"]);
    let ancient = b.send(&own, "5551235", &["Sent four days ago"]);
    let later = b.send(&own, "5551236", &["Sent today"]);
    for fax in [&old_letter, &ancient, &later] {
        b.wait_finished(fax);
    }
    b.cli(&["line", "pause", "loopback"]).unwrap();
    let queued = b.send(&own, "5551237", &["Waiting for the line"]);
    b.cli(&["config", "set", "fax", "document_retention_days", "1"])
        .unwrap();
    b.cli(&["config", "set", "fax", "record_retention_days", "3"])
        .unwrap();
    age(b.data(), &old_letter, 2);
    age(b.data(), &ancient, 4);
    age(b.data(), &queued, 100);

    let dry = b.cli(&["purge", "--dry-run"]).unwrap();
    assert!(dry.contains(&format!("{old_letter}  documents")), "{dry}");
    assert!(dry.contains(&format!("{ancient}  record")), "{dry}");
    assert!(
        !dry.contains(queued.as_str()) && !dry.contains(later.as_str()),
        "{dry}"
    );
    assert!(dry.contains("would remove"), "{dry}");
    let store = b.store();
    assert!(!store.documents(&old_letter).unwrap().is_empty());
    assert!(store.fax(&ancient).is_ok());
    assert_eq!(purged_metric(&b, "documents"), Some(0));

    let done = b.cli(&["purge"]).unwrap();
    assert!(done.contains("removed"), "{done}");
    assert!(store.documents(&old_letter).unwrap().is_empty());
    assert!(store.fax(&old_letter).is_ok(), "the record stays");
    assert!(store.fax(&ancient).is_err());
    assert!(!store.documents(&later).unwrap().is_empty());
    assert!(!store.documents(&queued).unwrap().is_empty());
    assert_eq!(store.fax(&queued).unwrap().status, Some(JobStatus::Pending));
    assert_eq!(purged_metric(&b, "documents"), Some(1));
    assert_eq!(purged_metric(&b, "records"), Some(1));
    drop(store);

    // The running box purges on its own: at its next start, then daily.
    let mut b = b;
    b.serve.signal("TERM");
    assert!(b.serve.wait(Duration::from_secs(60)).success());
    age(&dir.path().join("data"), &later, 2);
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    wait_for("the box's own purge", Duration::from_secs(30), || {
        b.store().documents(&later).unwrap().is_empty()
    });
    assert_eq!(purged_metric(&b, "documents"), Some(2));
    assert!(!b.store().documents(&queued).unwrap().is_empty());
}

/// The audit entries a purge removes are counted in /metrics, as its
/// documents, records and mails are.
#[test]
fn metrics_count_the_audit_entries_a_purge_removes() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox(false);
    let fax = b.send(&own, "5551234", &["Read, then forgotten"]);
    b.wait_finished(&fax);
    assert_eq!(b.faxes_api("GET", &format!("outbox/{fax}")).0, 200);
    b.cli(&["config", "set", "fax", "record_retention_days", "3"])
        .unwrap();
    assert_eq!(purged_metric(&b, "audit_entries"), Some(0));

    // Four days on (the purge is told the time): the read has passed the
    // records' time.
    let report =
        faxbox::retention::purge(&b.store(), faxbox::model::now() + 4 * 86_400, false).unwrap();
    assert!(report.audit_entries >= 1, "{report:?}");
    assert_eq!(
        purged_metric(&b, "audit_entries"),
        Some(report.audit_entries)
    );
    assert_eq!(purged_metric(&b, "records"), Some(1));
}

/// `METHOD /v2/accounts/{account}/PATH` as `session`: status and JSON.
fn call(session: &Session, method: &str, account: &str, path: &str) -> (u16, serde_json::Value) {
    let r = Http::new()
        .request(
            method,
            &format!("{}/v2/accounts/{account}/{path}", session.base()),
            &[("X-Auth-Token", session.token())],
            None,
        )
        .unwrap();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or_default(),
    )
}

/// Issue 23, audit trail: a scripted session of one account (send, read,
/// download, delete the documents, delete the fax) leaves one entry per
/// action, with the API key and the address; listings are not entries; the
/// account sees only its own trail, the box's admin any account's; a
/// delete on the console is recorded too.
#[test]
fn the_audit_trail_has_one_entry_per_action_and_an_account_sees_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let clinic = b
        .cli(&["account", "create", "Clinic"])
        .unwrap()
        .trim()
        .to_owned();
    let key = b
        .cli(&["apikey", "create", "--account", &clinic])
        .unwrap()
        .trim()
        .to_owned();
    let session = Session::login(&b.serve.api_url(), &key).unwrap();
    let job = session
        .send(
            &json!({"to_number": "5551234"}),
            &[Document {
                name: "referral.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: crate::harness::pdf_of_texts(&["A referral"]),
            }],
        )
        .unwrap();
    let fax = FaxId(job["id"].as_str().unwrap().to_owned());
    b.wait_finished(&fax);
    for (method, path, status) in [
        ("GET", format!("faxes/outbox/{fax}"), 200),
        ("GET", format!("faxes/outbox/{fax}/attachment"), 200),
        ("GET", "faxes/outbox".to_owned(), 200),
        ("DELETE", format!("faxes/outbox/{fax}/attachment"), 200),
        ("DELETE", format!("faxes/outbox/{fax}"), 200),
    ] {
        let (got, body) = call(&session, method, &clinic, &path);
        assert_eq!(got, status, "{method} {path}: {body}");
    }
    // The admin's own fax, deleted on the console.
    let own = b.own_faxbox(false);
    let admins = b.send(&own, "5551234", &["The admin's letter"]);
    b.wait_finished(&admins);
    b.cli(&["jobs", "delete", admins.as_str()]).unwrap();

    let (status, trail) = call(&session, "GET", &clinic, "audit");
    assert_eq!(status, 200, "{trail}");
    let entries = trail["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Newest first, as every listing (issue 27).
    assert_eq!(
        actions,
        ["delete", "delete_documents", "download", "read", "create"],
        "{trail}"
    );
    for e in entries {
        assert!(e["object"].as_str().unwrap().contains(fax.as_str()), "{e}");
        assert!(e["actor"].as_str().unwrap().starts_with("api_key:"), "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert_eq!(e["account_id"], clinic.as_str(), "{e}");
    }
    // The clinic cannot read the admin's trail; the admin reads both.
    let admin = &b.session.account_id;
    assert_eq!(call(&session, "GET", admin, "audit").0, 404);
    let (status, theirs) = call(&b.session, "GET", &clinic, "audit");
    assert_eq!(status, 200);
    assert_eq!(theirs["data"], trail["data"]);
    let (_, mine) = call(&b.session, "GET", admin, "audit");
    let mine = mine["data"].as_array().unwrap().clone();
    assert!(
        mine.iter().all(|e| e["account_id"] == admin.as_str()),
        "{mine:?}"
    );
    let console = mine
        .iter()
        .find(|e| e["action"] == "delete")
        .expect("the console's delete is recorded");
    assert_eq!(console["source"], "console");
    assert_eq!(console["object"], format!("faxes/outbox/{admins}"));

    let printed = b.cli(&["audit", "--account", &clinic]).unwrap();
    assert_eq!(printed.lines().count(), 5, "{printed}");
}

/// Starts `faxbox serve` on `dir` expecting it to refuse: its stderr.
fn serve_refuses(dir: &Path, config: &str) -> String {
    use std::io::Read;
    let mut child = ServeProcess::spawn(dir, config, std::process::Stdio::piped());
    let mut status = None;
    wait_for("faxbox serve to refuse", Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.unwrap().success(), "serve started: {err}");
    err
}

/// Issue 23, at rest: after faxes are sent and received over the loopback
/// line, no distinctive run of their documents (the PDF as sent, the fax
/// TIFF's strips, the received pages, the queued mails that carry them)
/// is anywhere in the data dir, the SQLite file and its WAL included, yet
/// the API downloads each document as it was sent. A copy of the database
/// without the key shows nothing and opens nothing; `faxbox serve` with a
/// wrong or missing key refuses to start, naming the key file; a key kept
/// elsewhere (`[storage] key_file`) is used.
#[test]
fn documents_are_sealed_at_rest_and_the_box_needs_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox(true);
    let marker = format!("AT-REST-{}", std::process::id());
    let texts = [marker.as_str(), "The second page of the referral"];
    let pdf = crate::harness::pdf_of_texts(&texts);
    // To the box's own number: sent, and received into the inbox. (A fax
    // to another number would leave its pages with the loopback line's
    // simulated far end, `<data_dir>/loopback/`, which stands for the other
    // office's machine, not for this box's storage.)
    let sent = b.send(&own, OWN_NUMBER, &texts);
    b.wait_finished(&sent);
    let received = {
        let mut found = None;
        wait_for("the fax to arrive", Duration::from_secs(60), || {
            found = b
                .store()
                .faxes(&faxbox::store::JobFilter {
                    folder: Some(Folder::Inbox),
                    ..Default::default()
                })
                .unwrap()
                .pop();
            found.is_some()
        });
        found.unwrap().id
    };

    // What the API gives back is what was sent.
    assert!(
        b.faxes_api_bytes(&format!("outbox/{sent}/attachment?format=original")) == pdf,
        "the PDF as sent"
    );
    let tiff = b.faxes_api_bytes(&format!("outbox/{sent}/attachment?format=tiff"));
    let received_tiff = b.faxes_api_bytes(&format!("inbox/{received}/attachment?format=tiff"));
    for t in [&tiff, &received_tiff] {
        assert!(t.starts_with(b"II*\0") || t.starts_with(b"MM\0*"), "a TIFF");
    }
    // The mails that carry the faxes wait in the queue (no smarthost).
    let mails = b.store().due_mail(i64::MAX, 100).unwrap().mails;
    assert!(mails.len() >= 2, "{} mails", mails.len());
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("the marker".into(), marker.as_bytes().to_vec()),
        ("the PDF".into(), distinctive(&pdf)),
        ("the fax TIFF".into(), distinctive(&tiff)),
        ("the received pages".into(), distinctive(&received_tiff)),
    ];
    for mail in &mails {
        needles.push((format!("mail {}", mail.id), distinctive(&mail.message)));
    }
    let search = |data: &Path| {
        for (what, needle) in &needles {
            let found = files_containing(data, needle);
            assert!(found.is_empty(), "{what} is in clear in {found:?}");
        }
    };
    search(b.data());
    // The search can find things: the sealed blobs are there.
    for run in stored_runs(b.data(), &received) {
        assert!(!files_containing(b.data(), &run).is_empty());
    }

    // A copy of the database, as a thief or a careless backup has it.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(b.data()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("faxbox.sqlite") {
            std::fs::copy(&path, copy.join(&name)).unwrap();
        }
    }
    search(&copy);
    let stolen = Store::open_existing(&copy).unwrap();
    let doc = &stolen.documents(&sent).unwrap()[0];
    let err = stolen.document_bytes(&doc.id).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
    assert!(!copy.join("document.key").exists(), "no key is made for it");
    drop(stolen);

    // Stopped; started again with another key, then with none: refused,
    // naming the key file.
    b.serve.signal("TERM");
    assert!(b.serve.wait(Duration::from_secs(60)).success());
    let key = b.data().join("document.key");
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, [5u8; 32]).unwrap();
    let err = serve_refuses(dir.path(), FAST_LINE);
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("not the key"),
        "{err}"
    );
    std::fs::remove_file(&key).unwrap();
    let err = serve_refuses(dir.path(), FAST_LINE);
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("missing"),
        "{err}"
    );
    assert!(!key.exists(), "no new key replaces the lost one");

    // The key on other media, named in the configuration.
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let kept = media.join("faxbox.key");
    std::fs::write(&kept, &good).unwrap();
    let config = format!("{FAST_LINE}[storage]\nkey_file = \"{}\"\n", kept.display());
    let b = RecordsBox::start(dir.path(), &config);
    assert!(
        b.faxes_api_bytes(&format!("outbox/{sent}/attachment?format=original")) == pdf,
        "read with the key kept elsewhere"
    );
    assert!(!key.exists());
}
