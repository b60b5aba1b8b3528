//! Counts over the whole store for `/metrics`: faxes by folder and status,
//! attempts by outcome and result code, pages sent.

use super::{Result, Store, select_all};

/// What the store holds, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// (folder, status or `None` for received faxes, count).
    pub faxes: Vec<(String, Option<String>, u64)>,
    /// (outcome or `None` while on a line, result code, count).
    pub attempts: Vec<(Option<String>, Option<i64>, u64)>,
    pub pages_sent: u64,
}

impl Store {
    pub fn tally(&self) -> Result<Tally> {
        self.read(|conn| {
            // From the counts the triggers keep (schema migration 11), not
            // a count of 400,000 queued faxes at every scrape (issue 27).
            let faxes = select_all(
                conn,
                "SELECT folder, NULLIF(status, ''), SUM(n) FROM fax_counts
                 GROUP BY folder, status HAVING SUM(n) > 0 ORDER BY folder, status",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
            )?;
            let attempts = select_all(
                conn,
                "SELECT outcome, result_code, COUNT(*) FROM attempts
                 GROUP BY outcome, result_code ORDER BY outcome, result_code",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)),
            )?;
            let pages_sent: i64 = conn.query_row(
                "SELECT COALESCE(SUM(pages_sent), 0) FROM attempts",
                [],
                |r| r.get(0),
            )?;
            Ok(Tally {
                faxes,
                attempts,
                pages_sent: pages_sent as u64,
            })
        })
    }
}
