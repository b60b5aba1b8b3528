//! Line state an operator controls: a paused line takes no new calls.

use std::collections::BTreeSet;

use rusqlite::params;

use super::{Result, Store, select_all};
use crate::model::now;

impl Store {
    pub fn set_line_paused(&self, name: &str, paused: bool, reason: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO line_state (name, paused, reason, modified) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
                     reason = excluded.reason, modified = excluded.modified",
                params![name, paused, reason, now()],
            )?;
            Ok(())
        })
    }

    /// The names of the paused lines.
    pub fn paused_lines(&self) -> Result<BTreeSet<String>> {
        self.read(|conn| {
            select_all(
                conn,
                "SELECT name FROM line_state WHERE paused = 1",
                [],
                |r| r.get(0),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::temp_store;

    #[test]
    fn pause_and_resume() {
        let (_dir, store) = temp_store();
        assert!(store.paused_lines().unwrap().is_empty());
        store
            .set_line_paused("loopback", true, "maintenance")
            .unwrap();
        assert!(store.paused_lines().unwrap().contains("loopback"));
        store.set_line_paused("loopback", false, "").unwrap();
        assert!(store.paused_lines().unwrap().is_empty());
    }
}
