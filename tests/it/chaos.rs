//! Chaos: `faxbox serve` killed with SIGKILL at random instants while faxes
//! are being taken in over the API and sent on the loopback line, then
//! started again, round after round (issue 19). At the end every
//! acknowledged fax is sent, none twice in full, nothing is left in the
//! spool and the database is sound. `FAXBOX_CHAOS_ROUNDS` sets the rounds
//! (`make chaos ROUNDS=200`); the normal suite runs 10.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faxbox::api::client::{Document, Session};
use faxbox::model::{FaxId, JobStatus};
use faxbox::store::Store;

use crate::harness::{ServeProcess, pdf_of_texts, wait_for};

const LINE: &str = "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\n";

#[test]
fn sigkill_at_random_instants_loses_nothing_and_sends_nothing_twice() {
    let rounds: usize = std::env::var("FAXBOX_CHAOS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let document = Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(&["Chaos"]),
    };
    let mut key = String::new();
    let mut acked: Vec<FaxId> = Vec::new();
    for _ in 0..rounds {
        let mut serve = ServeProcess::start(dir.path(), LINE);
        if let Some(k) = serve
            .banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("API key:"))
        {
            key = k.trim().to_owned();
        }
        let session = Session::login(&serve.api_url(), &key).unwrap();
        let kill_at = Instant::now() + Duration::from_millis(rand::random_range(200..2500));
        while Instant::now() < kill_at {
            // Only what the API acknowledged counts; a request cut by the
            // kill was never promised.
            if let Ok(job) = session.send(
                &serde_json::json!({"to_number": "5551234"}),
                std::slice::from_ref(&document),
            ) {
                acked.push(FaxId(job["id"].as_str().unwrap().to_owned()));
            }
        }
        serve.signal("KILL");
        serve.wait(Duration::from_secs(30));
    }

    // A last start sends what is left; then a clean stop.
    let mut serve = ServeProcess::start(dir.path(), LINE);
    let store = Store::open_existing(&serve.data_dir).unwrap();
    let mut lost = 0;
    let stuck_deadline = Duration::from_secs(60 + acked.len() as u64);
    wait_for("every acknowledged fax to be sent", stuck_deadline, || {
        acked.iter().all(|id| {
            store
                .fax(id)
                .map(|f| matches!(f.status, Some(JobStatus::Completed | JobStatus::Failed)))
                .unwrap_or(true)
        })
    });
    let mut failed = 0;
    for id in &acked {
        match store.fax(id) {
            Ok(f) if f.status == Some(JobStatus::Completed) => {}
            Ok(_) => failed += 1,
            Err(_) => lost += 1,
        }
    }
    serve.signal("TERM");
    assert!(serve.wait(Duration::from_secs(60)).success());

    // The far end's full copies, per fax (its files are <fax>-<attempt>.tiff).
    let mut copies: HashMap<String, usize> = HashMap::new();
    let far_end = serve.data_dir.join("loopback").join("loopback");
    for entry in std::fs::read_dir(&far_end).into_iter().flatten() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let full = std::fs::read(&path)
            .ok()
            .and_then(|b| faxbox::documents::faxtiff::count_tiff_pages(&b).ok())
            == Some(1);
        if let (true, Some((fax, _))) = (full, name.rsplit_once('-')) {
            *copies.entry(fax.to_owned()).or_default() += 1;
        }
    }
    let twice = copies.values().filter(|&&n| n > 1).count();
    let spool: Vec<_> = std::fs::read_dir(serve.data_dir.join("spool"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let integrity: String = rusqlite::Connection::open(serve.data_dir.join("faxbox.sqlite"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    println!(
        "chaos: {rounds} rounds, {} faxes acknowledged; lost {lost}, not completed {failed}, \
         received in full more than once {twice}, orphan spool files {}, integrity_check {integrity}",
        acked.len(),
        spool.len()
    );
    assert_eq!(lost, 0, "acknowledged faxes lost");
    assert_eq!(failed, 0, "acknowledged faxes not completed");
    assert_eq!(
        twice, 0,
        "faxes the far end received in full twice: {copies:?}"
    );
    assert!(spool.is_empty(), "orphan spool files: {spool:?}");
    assert_eq!(integrity, "ok");
}
