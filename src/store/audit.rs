//! The audit trail (issue 23): an append-only record of who did what to
//! which fax or faxbox, when and from where. Entries are only ever added
//! (triggers in the schema refuse changes and deletes); only the retention
//! purge removes those past the records' time (`retention`).

use rusqlite::params;
use serde::Serialize;

use super::{Result, Store, select_all};
use crate::model::{AccountId, UnixTime, now};

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: UnixTime,
    pub account_id: Option<AccountId>,
    /// `user:<id>`, `api_key:<first characters of its hash>`, `console`.
    pub actor: String,
    /// `create`, `read`, `download`, `update`, `delete`, `delete_documents`,
    /// `purge`, ...
    pub action: String,
    /// What it was done to: `faxes/outbox/<id>`, `faxboxes/<id>`, ...
    pub object: String,
    /// The client's address, or `console` for a command on the box.
    pub source: String,
}

/// What a caller records; the store adds the time and the id.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    pub account: Option<&'a AccountId>,
    pub actor: &'a str,
    pub action: &'a str,
    pub object: &'a str,
    pub source: &'a str,
}

/// An entry from `id, at, account_id, actor, action, object, source`.
pub(super) fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        account_id: r.get::<_, Option<String>>(2)?.map(AccountId),
        actor: r.get(3)?,
        action: r.get(4)?,
        object: r.get(5)?,
        source: r.get(6)?,
    })
}

impl Store {
    pub fn audit(&self, event: AuditEvent<'_>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO audit (at, account_id, actor, action, object, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    now(),
                    event.account.map(AccountId::as_str),
                    event.actor,
                    event.action,
                    event.object,
                    event.source
                ],
            )?;
            Ok(())
        })
    }

    /// The newest `limit` entries, of one account or of the whole box,
    /// oldest first.
    pub fn audit_trail(&self, account: Option<&AccountId>, limit: u32) -> Result<Vec<AuditEntry>> {
        self.read(|conn| {
            select_all(
                conn,
                "SELECT * FROM (SELECT id, at, account_id, actor, action, object, source FROM audit
                 WHERE ?1 IS NULL OR account_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
                params![account.map(AccountId::as_str), limit],
                entry_from_row,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    #[test]
    fn entries_are_kept_in_order_per_account_and_never_changed() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Clinic", None).unwrap().id;
        let b = store.create_account("Law office", None).unwrap().id;
        for (account, action) in [(&a, "create"), (&b, "create"), (&a, "delete")] {
            store
                .audit(AuditEvent {
                    account: Some(account),
                    actor: "console",
                    action,
                    object: "faxes/outbox/1",
                    source: "console",
                })
                .unwrap();
        }
        let trail = store.audit_trail(Some(&a), 100).unwrap();
        assert_eq!(
            trail.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["create", "delete"]
        );
        assert_eq!(store.audit_trail(None, 100).unwrap().len(), 3);
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        assert!(
            conn.execute("UPDATE audit SET actor = 'someone else'", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM audit", []).is_err());
        assert_eq!(store.audit_trail(None, 100).unwrap().len(), 3);
    }
}
