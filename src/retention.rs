//! The daily retention purge of a running box (issue 23): once at start
//! and then every day, what is past its `document_retention_days` or
//! `record_retention_days` is removed (`Store::purge`), logged, and counted
//! for `/metrics`. `faxbox purge` runs the same purge by hand.
//!
//! Before its first purge the thread seals the documents and mails a box
//! wrote before sealing existed (`Store::seal_clear_rows`), in the
//! background, so a large box starts at once and reads them meanwhile.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::model::UnixTime;
use crate::store::{PurgeReport, Store};

/// How often the running box purges.
pub const PURGE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Runs one purge at `now` and logs what it removed (or would remove).
pub fn purge(store: &Store, now: UnixTime, dry_run: bool) -> crate::store::Result<PurgeReport> {
    let report = store.purge(now, dry_run)?;
    if !report.is_empty() {
        info!(
            documents = report.documents.len(),
            records = report.records.len(),
            mails = report.mails,
            audit_entries = report.audit_entries,
            dry_run,
            "retention purge: faxes past their time"
        );
    }
    Ok(report)
}

/// The purge thread; stopping it (or dropping it) waits for a purge under
/// way to finish its transaction.
pub struct Purger {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Purger {
    pub fn start(store: Arc<Store>) -> std::io::Result<Purger> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                match store.seal_clear_rows() {
                    Ok(done) if done.documents + done.mails > 0 => info!(
                        documents = done.documents,
                        mails = done.mails,
                        "sealed the documents and mails stored before sealing at rest"
                    ),
                    Ok(_) => {}
                    // Read as they are meanwhile; tried again at the next start.
                    Err(e) => warn!("cannot seal the documents stored in clear: {e}"),
                }
                loop {
                    if let Err(e) = purge(&store, crate::model::now(), false) {
                        // Tried again tomorrow; nothing is half-deleted (each
                        // batch is one transaction).
                        warn!("retention purge failed: {e}");
                    }
                    match stopped.recv_timeout(PURGE_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(Purger {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Purger {
    fn drop(&mut self) {
        self.stop();
    }
}
