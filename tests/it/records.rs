//! Faxes as medical and legal records (issue 23), on the real binary:
//! deletion that leaves nothing on the disk, backup and restore of a
//! running box, and retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faxbox::api::client::{Document, Http, Session};
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

    /// The admin account's faxbox, answering `OWN_NUMBER` and mailing a
    /// copy of what it sends and receives (the mails stay queued: the
    /// tests' box has no smarthost).
    fn own_faxbox(&self) -> String {
        let store = self.store();
        let account = faxbox::model::AccountId(self.session.account_id.clone());
        let id = store.faxboxes(&account).unwrap()[0].id.to_string();
        self.cli(&[
            "faxbox",
            "update",
            &id,
            "--number",
            OWN_NUMBER,
            "--notify-inbound",
            "clerk@office.test",
            "--notify-outbound",
            "clerk@office.test",
        ])
        .unwrap();
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

    /// `METHOD /v2/accounts/{admin}/faxes/PATH`: status and JSON body.
    fn faxes_api(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
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
        let body = serde_json::from_slice(&r.body).unwrap_or_default();
        (r.status, body)
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
#[test]
fn deleted_faxes_and_documents_leave_no_bytes_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let b = RecordsBox::start(dir.path(), FAST_LINE);
    let own = b.own_faxbox();

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
    // A piece of the received pages' image, to look for on the disk.
    let page_bytes = {
        let store = b.store();
        let docs = store.documents(&received).unwrap();
        let tiff = docs
            .iter()
            .find(|d| d.kind == DocumentKind::ReceivedTiff)
            .expect("the received pages are stored");
        let bytes = store.document_bytes(&tiff.id).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle..middle + 64].to_vec()
    };
    let needles = [
        (marker_a.as_str(), marker_a.as_bytes()),
        (marker_b.as_str(), marker_b.as_bytes()),
        ("the received pages", &page_bytes[..]),
    ];
    // Before: the documents are on the disk (else the search proves nothing).
    for (what, needle) in needles {
        assert!(
            !files_containing(b.data(), needle).is_empty(),
            "{what} is stored before the deletes"
        );
    }
    assert!(
        !rows_of(b.data(), &received).is_empty(),
        "the received fax has rows"
    );
    assert!(
        rows_of(b.data(), &received).contains(&("mail_queue", 1)),
        "the received fax's mail is queued: {:?}",
        rows_of(b.data(), &received)
    );

    // DELETE .../faxes/outbox/{id} (Kazoo's faxes.md).
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
    for (what, needle) in needles {
        let left = files_containing(b.data(), needle);
        assert!(left.is_empty(), "{what} is still in {left:?}");
    }
    // The fax nobody deleted is untouched.
    assert_eq!(files_containing(b.data(), kept.as_bytes()).len(), 1);
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
    let own = b.own_faxbox();
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
