//! Listing pages read straight from an index (issue 27): with 400,000
//! faxes queued, a page of 50 must cost a page of 50. Every listing is
//! newest first, `created DESC, rowid DESC`; a page starts at a row's place
//! in that order (a [`Mark`]) and reads `limit` rows of one index range,
//! never the rows before it and never a sort.
//!
//! Each query names its index (`INDEXED BY`): the planner cannot know that
//! an account's 400,000 queued faxes make `faxes_account` the wrong choice
//! for its finished ones, and SQLite refuses a query whose named index
//! cannot serve it, so a change that breaks the plan fails loudly. The
//! tests below also read each plan (`EXPLAIN QUERY PLAN`).

use rusqlite::OptionalExtension;
use rusqlite::types::Value as Sql;

use super::{Result, Store};
use crate::model::{AccountId, Fax, FaxId, FaxboxId, UnixTime};

/// A row's place in a newest-first listing: its sort key (`created`, or
/// the audit trail's `id`) and its rowid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    key: i64,
    row: i64,
}

/// Where a page begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The newest row.
    Top,
    /// This row (a client's `start_key`).
    At(Mark),
    /// The row after this one (the next chunk when filters drop rows).
    After(Mark),
}

impl Start {
    /// The condition on `key, rowid` (?8, ?9), written so that SQLite
    /// reads it as a range of the index on `key`.
    fn bound(self, key: &str) -> String {
        match self {
            Start::Top => String::new(),
            Start::At(_) => format!(" AND {key} <= ?8 AND ({key} < ?8 OR rowid <= ?9)"),
            Start::After(_) => format!(" AND {key} <= ?8 AND ({key} < ?8 OR rowid < ?9)"),
        }
    }

    fn mark(self) -> Option<Mark> {
        match self {
            Start::Top => None,
            Start::At(m) | Start::After(m) => Some(m),
        }
    }
}

/// Which faxes a fax listing shows (docs/kazoo.md 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Jobs not finished yet.
    Outgoing,
    /// Finished jobs: completed, failed or cancelled.
    Outbox,
    Inbox,
}

impl Listing {
    /// The listing's condition, word for word the `WHERE` of its partial
    /// index (schema migration 11), and the index for an account's and for
    /// a faxbox's listing.
    fn source(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Listing::Outgoing => (
                "folder = 'outbox' AND status IN ('attaching_files', 'pending', 'processing')",
                "faxes_outgoing",
                "faxes_faxbox_outgoing",
            ),
            Listing::Outbox => (
                "folder = 'outbox' AND status IN ('completed', 'failed', 'cancelled')",
                "faxes_done",
                "faxes_faxbox_done",
            ),
            Listing::Inbox => ("folder = 'inbox'", "faxes_account", "faxes_faxbox_inbox"),
        }
    }
}

/// A fax listing: one account's (or one of its faxboxes') faxes of one
/// listing, optionally created within a window.
#[derive(Debug, Clone)]
pub struct FaxList {
    pub account: AccountId,
    pub faxbox: Option<FaxboxId>,
    pub listing: Listing,
    pub created_from: Option<UnixTime>,
    pub created_to: Option<UnixTime>,
}

impl FaxList {
    fn sql(&self, start: Start) -> String {
        let (condition, by_account, by_faxbox) = self.listing.source();
        let (index, scope) = match self.faxbox {
            Some(_) => (by_faxbox, "faxbox_id = ?2 AND account_id = ?1"),
            None => (by_account, "account_id = ?1"),
        };
        format!(
            "SELECT {}, rowid FROM faxes INDEXED BY {index}
             WHERE {scope} AND {condition}{}{}{}
             ORDER BY created DESC, rowid DESC LIMIT ?5",
            super::jobs::FAX_COLUMNS,
            // Only the bounds asked for: given two upper bounds on
            // `created`, SQLite may take the window's as the range and
            // read every row above the start key (a page at 80% of
            // 400,000 queued faxes took 26 ms instead of 4).
            if self.created_from.is_some() {
                " AND created >= ?3"
            } else {
                ""
            },
            if self.created_to.is_some() {
                " AND created <= ?4"
            } else {
                ""
            },
            start.bound("created"),
        )
    }
}

/// One account's (or faxbox's) refused emails, newest first.
#[derive(Debug, Clone)]
pub struct SmtpLogList {
    pub account: AccountId,
    pub faxbox: Option<FaxboxId>,
}

impl SmtpLogList {
    fn sql(&self, start: Start) -> String {
        let (index, scope) = match self.faxbox {
            Some(_) => ("smtp_log_faxbox", "faxbox_id = ?2 AND account_id = ?1"),
            None => ("smtp_log_account", "account_id = ?1"),
        };
        format!(
            "SELECT id, doc, created, rowid FROM smtp_log INDEXED BY {index}
             WHERE {scope}{} ORDER BY created DESC, rowid DESC LIMIT ?5",
            start.bound("created"),
        )
    }
}

/// One account's audit trail, newest first (its ids only grow).
#[derive(Debug, Clone)]
pub struct AuditList {
    pub account: AccountId,
}

impl AuditList {
    fn sql(&self, start: Start) -> String {
        format!(
            "SELECT id, at, account_id, actor, action, object, source FROM audit
             INDEXED BY audit_account WHERE account_id = ?1{} ORDER BY id DESC LIMIT ?5",
            start.bound("id"),
        )
    }
}

/// The values of a page query: ?1 account, ?2 faxbox, ?3..?4 the created
/// window, ?5 the limit, ?8..?9 the start.
fn values(
    account: &AccountId,
    faxbox: Option<&FaxboxId>,
    window: (Option<UnixTime>, Option<UnixTime>),
    limit: usize,
    start: Start,
) -> Vec<(String, Sql)> {
    let mut v = vec![
        ("?1".to_owned(), Sql::Text(account.to_string())),
        (
            "?2".to_owned(),
            faxbox.map_or(Sql::Null, |f| Sql::Text(f.to_string())),
        ),
        ("?3".to_owned(), Sql::Integer(window.0.unwrap_or(i64::MIN))),
        ("?4".to_owned(), Sql::Integer(window.1.unwrap_or(i64::MAX))),
        ("?5".to_owned(), Sql::Integer(limit as i64)),
    ];
    if let Some(m) = start.mark() {
        v.push(("?8".to_owned(), Sql::Integer(m.key)));
        v.push(("?9".to_owned(), Sql::Integer(m.row)));
    }
    v
}

/// Runs `sql` with only the values it names bound.
fn query<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[(String, Sql)],
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    for (name, value) in values {
        if let Some(i) = stmt.parameter_index(name)? {
            stmt.raw_bind_parameter(i, value)?;
        }
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(r)?);
    }
    Ok(out)
}

impl Store {
    /// Where fax `id` stands in `list`'s order: any fax of the account (of
    /// the faxbox) marks a place, also one that moved to another listing
    /// since the client was given its id.
    pub fn fax_mark(&self, list: &FaxList, id: &FaxId) -> Result<Option<Mark>> {
        self.mark("faxes", &list.account, list.faxbox.as_ref(), id.as_str())
    }

    /// Where row `id` of `table` (which has `created`, `account_id` and
    /// `faxbox_id`) stands in the listings of the account (of the faxbox).
    fn mark(
        &self,
        table: &'static str,
        account: &AccountId,
        faxbox: Option<&FaxboxId>,
        id: &str,
    ) -> Result<Option<Mark>> {
        let sql = format!(
            "SELECT created, rowid FROM {table} WHERE id = ?7 AND account_id = ?1
               AND (?2 IS NULL OR faxbox_id = ?2)"
        );
        self.read(|conn| {
            let mut rows = query(
                conn,
                &sql,
                &[
                    ("?1".into(), Sql::Text(account.to_string())),
                    (
                        "?2".into(),
                        faxbox.map_or(Sql::Null, |f| Sql::Text(f.to_string())),
                    ),
                    ("?7".into(), Sql::Text(id.to_owned())),
                ],
                |r| {
                    Ok(Mark {
                        key: r.get(0)?,
                        row: r.get(1)?,
                    })
                },
            )?;
            Ok(rows.pop())
        })
    }

    /// Up to `limit` faxes of `list` from `start` on, each with its place.
    pub fn fax_page(&self, list: &FaxList, start: Start, limit: usize) -> Result<Vec<(Mark, Fax)>> {
        let values = values(
            &list.account,
            list.faxbox.as_ref(),
            (list.created_from, list.created_to),
            limit,
            start,
        );
        self.read(|conn| {
            query(conn, &list.sql(start), &values, |r| {
                let mark = Mark {
                    key: r.get(13)?,
                    // After the fax's columns.
                    row: r.get(17)?,
                };
                Ok((mark, super::jobs::fax_from_row(r)?))
            })
        })
    }

    /// Where SMTP log entry `id` stands in `list`'s order.
    pub fn smtp_log_mark(&self, list: &SmtpLogList, id: &str) -> Result<Option<Mark>> {
        self.mark("smtp_log", &list.account, list.faxbox.as_ref(), id)
    }

    /// Up to `limit` entries of `list` from `start` on, each with its place.
    pub fn smtp_log_page(
        &self,
        list: &SmtpLogList,
        start: Start,
        limit: usize,
    ) -> Result<Vec<(Mark, super::SmtpLogEntry)>> {
        let values = values(
            &list.account,
            list.faxbox.as_ref(),
            (None, None),
            limit,
            start,
        );
        self.read(|conn| {
            query(conn, &list.sql(start), &values, |r| {
                let mark = Mark {
                    key: r.get(2)?,
                    row: r.get(3)?,
                };
                Ok((mark, super::smtp_log::entry_from_row(r)?))
            })
        })
    }
}

impl Store {
    /// Where entry `id` stands in `list`'s order.
    pub fn audit_mark(&self, list: &AuditList, id: i64) -> Result<Option<Mark>> {
        self.read(|conn| {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT id FROM audit WHERE id = ?1 AND account_id = ?2",
                    rusqlite::params![id, list.account.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(found.map(|id| Mark { key: id, row: id }))
        })
    }

    /// Up to `limit` entries of `list` from `start` on, each with its place.
    pub fn audit_page(
        &self,
        list: &AuditList,
        start: Start,
        limit: usize,
    ) -> Result<Vec<(Mark, super::AuditEntry)>> {
        let values = values(&list.account, None, (None, None), limit, start);
        self.read(|conn| {
            query(conn, &list.sql(start), &values, |r| {
                let entry = super::audit::entry_from_row(r)?;
                let mark = Mark {
                    key: entry.id,
                    row: entry.id,
                };
                Ok((mark, entry))
            })
        })
    }
}

/// The plan SQLite chose for `sql`, one line per step: what the tests
/// check that no listing or status query scans a table or sorts.
#[cfg(test)]
pub(super) fn plan(store: &Store, sql: &str) -> Vec<String> {
    store
        .read(|conn| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            // Unbound parameters are NULL; the plan does not depend on them.
            let mut rows = stmt.raw_query();
            let mut steps = Vec::new();
            while let Some(r) = rows.next()? {
                steps.push(r.get::<_, String>(3)?);
            }
            Ok(steps)
        })
        .unwrap()
}

/// Fails unless every step of `sql`'s plan reads through an index and
/// nothing is sorted.
#[cfg(test)]
pub(super) fn assert_indexed(store: &Store, sql: &str) {
    let steps = plan(store, sql);
    for step in &steps {
        let whole_table = step.starts_with("SCAN ") && !step.contains(" USING ");
        assert!(
            !whole_table && !step.contains("TEMP B-TREE"),
            "{step} in the plan {steps:?} of\n{sql}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobStatus, NewFax};
    use crate::store::testing::temp_store;

    fn queue(store: &Store, account: &AccountId, n: usize) -> Vec<FaxId> {
        (0..n)
            .map(|i| {
                store
                    .create_job(
                        NewFax {
                            account_id: account.clone(),
                            to_number: format!("555{i:04}"),
                            to_number_normalized: format!("555{i:04}"),
                            retries: 2,
                            ..Default::default()
                        },
                        vec![],
                        JobStatus::Pending,
                    )
                    .unwrap()
                    .id
            })
            .collect()
    }

    fn list(account: &AccountId, listing: Listing) -> FaxList {
        FaxList {
            account: account.clone(),
            faxbox: None,
            listing,
            created_from: None,
            created_to: None,
        }
    }

    #[test]
    fn every_listing_query_reads_an_index_range_without_sorting() {
        let (_dir, store) = temp_store();
        let a = AccountId("a".into());
        let mark = Mark { key: 1, row: 1 };
        for listing in [Listing::Outgoing, Listing::Outbox, Listing::Inbox] {
            for faxbox in [None, Some(FaxboxId("b".into()))] {
                let l = FaxList {
                    faxbox: faxbox.clone(),
                    ..list(&a, listing)
                };
                let s = SmtpLogList {
                    account: a.clone(),
                    faxbox,
                };
                for start in [Start::Top, Start::At(mark), Start::After(mark)] {
                    let audit = AuditList { account: a.clone() }.sql(start);
                    for sql in [l.sql(start), s.sql(start), audit] {
                        assert_indexed(&store, &sql);
                        // A range of the index, not all of it.
                        let steps = plan(&store, &sql);
                        assert!(steps.iter().all(|s| s.starts_with("SEARCH ")), "{steps:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn pages_follow_marks_newest_first_without_gaps_or_repeats() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap();
        let b = store.create_account("Other", None).unwrap();
        let mut ids = queue(&store, &a.id, 7);
        queue(&store, &b.id, 3);
        store.cancel_job(&ids[2], "changed my mind").unwrap();
        let done = ids.remove(2);
        ids.reverse();

        let outgoing = list(&a.id, Listing::Outgoing);
        let mut seen = Vec::new();
        let mut start = Start::Top;
        loop {
            let page = store.fax_page(&outgoing, start, 4).unwrap();
            // A page of 3 and a mark to the fourth, as the API pages.
            seen.extend(page.iter().take(3).map(|(_, f)| f.id.clone()));
            match page.get(3) {
                Some((m, f)) => {
                    assert_eq!(store.fax_mark(&outgoing, &f.id).unwrap(), Some(*m));
                    start = Start::At(*m);
                }
                None => break,
            }
        }
        assert_eq!(seen, ids, "every queued fax once, newest first");
        let (last, _) = store.fax_page(&outgoing, Start::Top, 1).unwrap()[0];
        let after = store.fax_page(&outgoing, Start::After(last), 1).unwrap();
        assert_eq!(after[0].1.id, ids[1]);

        let finished = store
            .fax_page(&list(&a.id, Listing::Outbox), Start::Top, 10)
            .unwrap();
        assert_eq!(
            finished.iter().map(|(_, f)| &f.id).collect::<Vec<_>>(),
            [&done]
        );
        assert!(
            store
                .fax_mark(&outgoing, &FaxId("nope".into()))
                .unwrap()
                .is_none()
        );
        let theirs = store
            .fax_page(&list(&b.id, Listing::Outgoing), Start::Top, 1)
            .unwrap();
        assert!(
            store
                .fax_mark(&outgoing, &theirs[0].1.id)
                .unwrap()
                .is_none(),
            "another account's fax marks no place in this one's listing"
        );
        let later = FaxList {
            created_from: Some(crate::model::now() + 3600),
            ..outgoing
        };
        assert!(store.fax_page(&later, Start::Top, 10).unwrap().is_empty());
    }
}
