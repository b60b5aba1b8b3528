//! Faxes as records (issue 23): what it takes for a deleted fax to be gone
//! from the disk, not only from the listings.
//!
//! Every connection runs with `secure_delete` on, so SQLite overwrites what
//! a delete frees. In WAL mode the old pages also sit in the `-wal` file
//! until a checkpoint copies the zeroed ones back and the log is cut to
//! nothing; `scrub` does that after each delete.

use super::Store;

impl Store {
    /// Copies the WAL into the database and truncates it, so that the pages
    /// a delete overwrote are the only copy left. Best effort: a reader in
    /// the middle of a long query keeps its pages in the log until the next
    /// scrub, which is logged, not failed (the delete itself is committed).
    pub fn scrub(&self) {
        let done = self.read(|conn| {
            Ok(conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })?)
        });
        match done {
            Ok(0) => {}
            Ok(_) => tracing::warn!(
                "a reader kept the database log busy; deleted pages leave it at the next checkpoint"
            ),
            Err(e) => tracing::warn!("cannot checkpoint the database after a delete: {e}"),
        }
    }
}
