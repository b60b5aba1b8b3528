//! What the box is doing now, read in one go for `GET /v2/status` and the
//! dashboard: the calls on the lines (sending and receiving), the paused
//! lines, each account's queue, and today's counts.
//!
//! Everything here is already in the store: an attempt row is updated at
//! each step of its call (stage, pages, rate, ECM, the far end's ident), a
//! reception is recorded before its call is answered. So the snapshot never
//! shows a call the store does not know.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Result, Store, parse_column, select_all};
use crate::model::{AccountId, AttemptStage, FaxId, UnixTime};

/// A fax being sent now: its open attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSnapshot {
    pub fax_id: FaxId,
    pub account_id: AccountId,
    pub to_number: String,
    pub line: String,
    pub attempt: u32,
    pub started: UnixTime,
    pub stage: AttemptStage,
    pub pages_sent: u32,
    pub pages_total: u32,
    pub bit_rate: Option<u32>,
    pub ecm: Option<bool>,
    pub remote_station_id: Option<String>,
}

/// A job waiting for its next attempt after a failed one.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySnapshot {
    pub fax_id: FaxId,
    pub to_number: String,
    pub attempts: u8,
    pub retries: u8,
    pub next_attempt: UnixTime,
    /// What ended the last attempt, in words.
    pub last_cause: Option<String>,
}

/// One account's queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSnapshot {
    pub account_name: String,
    /// Waiting for a line (including those waiting to retry) and jobs whose
    /// documents are still being attached.
    pub pending: u64,
    /// On a line now.
    pub active: u64,
    /// Pending after a failed attempt, soonest first (at most
    /// [`RETRY_LIST_LIMIT`]).
    pub waiting_retry: Vec<RetrySnapshot>,
    /// How many jobs wait to retry in all (the list may be cut).
    pub waiting_retry_total: u64,
    pub completed_today: u64,
    pub failed_today: u64,
    pub pages_sent_today: u64,
    pub received_today: u64,
    pub pages_received_today: u64,
}

/// The retry list of one account is cut here; the total is still given.
pub const RETRY_LIST_LIMIT: usize = 50;

/// The recent-faxes list is cut here.
pub const RECENT_LIMIT: u32 = 100;

/// A fax sent or received lately, for the dashboard's job list.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentFax {
    pub fax_id: FaxId,
    pub account_id: AccountId,
    /// `inbox` (received) or `outbox` (sent or to send).
    pub folder: String,
    /// The job's status; `None` for a received fax.
    pub status: Option<String>,
    /// The far end: the number dialled, or the caller's number.
    pub number: String,
    pub pages: Option<u32>,
    pub attempts: u8,
    pub retries: u8,
    /// The first document's file name, as submitted.
    pub document: Option<String>,
    /// How the last attempt (or the reception) ended, in words.
    pub last_result: Option<String>,
    pub created: UnixTime,
    pub modified: UnixTime,
}

/// The whole box, now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoxSnapshot {
    pub calls: Vec<CallSnapshot>,
    /// Calls being received (recorded before answering).
    pub receptions: Vec<crate::model::Reception>,
    /// Paused line -> the operator's reason.
    pub paused: BTreeMap<String, String>,
    pub queues: BTreeMap<AccountId, QueueSnapshot>,
    /// The latest faxes in and out, newest first (at most
    /// [`RECENT_LIMIT`]).
    pub recent: Vec<RecentFax>,
}

impl Store {
    /// The calls, paused lines and every account's queue; "today" is from
    /// `day_start` on. With `account`, only that account's calls, receptions
    /// and queue are read.
    pub fn snapshot(
        &self,
        account: Option<&AccountId>,
        day_start: UnixTime,
    ) -> Result<BoxSnapshot> {
        let only = account.map(|a| a.as_str().to_owned());
        let mut snap = BoxSnapshot {
            receptions: self
                .receptions()?
                .into_iter()
                .filter(|r| only.as_deref().is_none_or(|a| r.account_id.as_str() == a))
                .collect(),
            ..BoxSnapshot::default()
        };
        self.read(|conn| {
            snap.calls = select_all(conn, CALLS, [&only], |r| {
                Ok(CallSnapshot {
                    fax_id: FaxId(r.get(0)?),
                    account_id: AccountId(r.get(1)?),
                    to_number: r.get(2)?,
                    line: r.get(3)?,
                    attempt: r.get(4)?,
                    started: r.get(5)?,
                    stage: parse_column(r, 6)?,
                    pages_sent: r.get(7)?,
                    pages_total: r.get(8)?,
                    bit_rate: r.get(9)?,
                    ecm: r.get(10)?,
                    remote_station_id: r.get(11)?,
                })
            })?;

            snap.paused = select_all(
                conn,
                "SELECT name, COALESCE(reason, '') FROM line_state WHERE paused = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;

            let accounts: Vec<(String, String)> = select_all(
                conn,
                "SELECT id, name FROM accounts WHERE ?1 IS NULL OR id = ?1",
                [&only],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (id, name) in accounts {
                snap.queues.insert(
                    AccountId(id),
                    QueueSnapshot {
                        account_name: name,
                        ..QueueSnapshot::default()
                    },
                );
            }

            count_queues(conn, only.as_deref(), &mut snap.queues)?;
            count_today(conn, day_start, &mut snap.queues)?;
            let now = crate::model::now();
            for (account, q) in snap.queues.iter_mut() {
                let (list, later) = waiting(conn, account, now)?;
                q.waiting_retry = list;
                q.waiting_retry_total += later;
            }

            // The latest faxes: what a sent fax's last attempt ended with
            // (its error when it never got a line), or how a reception went.
            snap.recent = select_all(conn, RECENT, params![only, RECENT_LIMIT], |r| {
                Ok(RecentFax {
                    fax_id: FaxId(r.get(0)?),
                    account_id: AccountId(r.get(1)?),
                    folder: r.get(2)?,
                    status: r.get(3)?,
                    number: r.get(4)?,
                    pages: r.get(5)?,
                    attempts: r.get(6)?,
                    retries: r.get(7)?,
                    document: r.get(8)?,
                    last_result: r.get::<_, Option<String>>(9)?.filter(|t| !t.is_empty()),
                    created: r.get(10)?,
                    modified: r.get(11)?,
                })
            })?;
            Ok(())
        })?;
        Ok(snap)
    }
}

/// The calls on the lines now: the open attempts (a handful, one per
/// channel, sorted here).
const CALLS: &str = "SELECT a.fax_id, f.account_id, f.to_number, a.line, a.number, a.started,
            a.stage, a.pages_sent, a.pages_total, a.bit_rate, a.ecm,
            a.remote_station_id
     FROM attempts a INDEXED BY attempts_open JOIN faxes f ON f.id = a.fax_id
     WHERE a.ended IS NULL AND (?1 IS NULL OR f.account_id = ?1)
     ORDER BY a.started, a.id";

/// The latest faxes: what a sent fax's last attempt ended with (its error
/// when it never got a line), or how a reception went. Newest first along
/// `faxes_created`, which for one account reads on until it has found
/// [`RECENT_LIMIT`] of its faxes.
const RECENT: &str = "SELECT f.id, f.account_id, f.folder, f.status,
            CASE f.folder WHEN 'inbox'
                 THEN COALESCE(json_extract(f.doc, '$.from_number'), '')
                 ELSE f.to_number END,
            COALESCE(
              (SELECT d.pages FROM documents d WHERE d.fax_id = f.id
                 AND d.kind IN ('fax_tiff', 'received_tiff') LIMIT 1),
              json_extract(f.doc, '$.rx_result.pages'),
              (SELECT SUM(d.pages) FROM documents d WHERE d.fax_id = f.id
                 AND d.kind = 'original')),
            f.attempts, f.retries,
            (SELECT d.filename FROM documents d WHERE d.fax_id = f.id
               AND d.kind = 'original' ORDER BY d.seq LIMIT 1),
            COALESCE(
              (SELECT COALESCE(a.result_text, a.hangup_cause) FROM attempts a
                 WHERE a.fax_id = f.id AND a.ended IS NOT NULL
                 ORDER BY a.number DESC LIMIT 1),
              f.error,
              json_extract(f.doc, '$.rx_result.result_text')),
            f.created, f.modified
     FROM faxes f INDEXED BY faxes_created
     WHERE ?1 IS NULL OR f.account_id = ?1
     ORDER BY f.created DESC, f.rowid DESC LIMIT ?2";

/// How many jobs each account has waiting, on a line and waiting to retry:
/// from `fax_counts` (schema migration 11), kept by triggers, so that
/// 400,000 queued faxes cost a handful of rows, not a count of them all
/// (issue 27).
fn count_queues(
    conn: &rusqlite::Connection,
    only: Option<&str>,
    queues: &mut BTreeMap<AccountId, QueueSnapshot>,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT account_id, status, retried, n FROM fax_counts
         WHERE folder = 'outbox' AND n > 0 AND (?1 IS NULL OR account_id = ?1)",
    )?;
    let rows = stmt.query_map([only], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)? as u64,
        ))
    })?;
    for row in rows {
        let (account, status, retried, n) = row?;
        let Some(q) = queues.get_mut(&AccountId(account)) else {
            continue;
        };
        match status.as_str() {
            "attaching_files" => q.pending += n,
            "pending" => {
                q.pending += n;
                if retried {
                    q.waiting_retry_total += n;
                }
            }
            "processing" => q.active += n,
            _ => {}
        }
    }
    Ok(())
}

/// Jobs finished today, by how they ended (an index range of the faxes
/// that changed today).
const FINISHED_TODAY: &str = "SELECT COALESCE(SUM(status = 'completed'), 0),
        COALESCE(SUM(status = 'failed'), 0)
     FROM faxes INDEXED BY faxes_finished
     WHERE account_id = ?1
       AND (status IS NULL OR status IN ('completed', 'failed', 'cancelled'))
       AND folder = 'outbox' AND modified >= ?2";

/// The pages of today's attempts (one row per attempt, summed here).
const PAGES_SENT_TODAY: &str = "SELECT f.account_id, a.pages_sent
     FROM attempts a INDEXED BY attempts_started JOIN faxes f ON f.id = a.fax_id
     WHERE a.started >= ?1";

/// Faxes received today and their pages.
const RECEIVED_TODAY: &str = "SELECT COUNT(*), COALESCE(SUM(
        (SELECT SUM(d.pages) FROM documents d
         WHERE d.fax_id = f.id AND d.kind = 'received_tiff')), 0)
     FROM faxes f INDEXED BY faxes_account
     WHERE f.account_id = ?1 AND f.folder = 'inbox' AND f.created >= ?2";

/// Today's counts of each account in `queues`.
fn count_today(
    conn: &rusqlite::Connection,
    day_start: UnixTime,
    queues: &mut BTreeMap<AccountId, QueueSnapshot>,
) -> Result<()> {
    for (account, q) in queues.iter_mut() {
        (q.completed_today, q.failed_today) = conn
            .prepare_cached(FINISHED_TODAY)?
            .query_row(params![account.as_str(), day_start], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?;
        (q.received_today, q.pages_received_today) = conn
            .prepare_cached(RECEIVED_TODAY)?
            .query_row(params![account.as_str(), day_start], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })?;
    }
    let mut stmt = conn.prepare_cached(PAGES_SENT_TODAY)?;
    let rows = stmt.query_map([day_start], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (account, pages) = row?;
        if let Some(q) = queues.get_mut(&AccountId(account)) {
            q.pages_sent_today += pages;
        }
    }
    Ok(())
}

/// Pending after at least one attempt, soonest first, with the words that
/// ended the last one: the first [`RETRY_LIST_LIMIT`] of one account.
const WAITING_RETRY: &str = "SELECT f.id, f.to_number, f.attempts, f.retries, f.due_at,
        (SELECT COALESCE(a.result_text, a.hangup_cause) FROM attempts a
         WHERE a.fax_id = f.id ORDER BY a.number DESC LIMIT 1)
     FROM faxes f INDEXED BY faxes_retrying
     WHERE f.account_id = ?1 AND f.status = 'pending' AND f.attempts > 0 AND ?3 IS NOT NULL
     ORDER BY f.due_at, f.created LIMIT ?2";

/// Faxes never tried that wait for their send_at or their faxbox's
/// sending window (issue 22): due later than now.
const SENT_LATER: &str = "SELECT f.id, f.to_number, f.attempts, f.retries, f.due_at,
        CASE WHEN f.held_by_window = 1 THEN 'waiting for its sending window'
             ELSE 'sent later, as asked' END
     FROM faxes f INDEXED BY faxes_sent_later
     WHERE f.account_id = ?1 AND f.status = 'pending' AND f.attempts = 0 AND f.due_at > ?3
     ORDER BY f.due_at, f.created LIMIT ?2";

/// How many of an account's faxes are sent later (a range of the index).
const SENT_LATER_COUNT: &str = "SELECT COUNT(*) FROM faxes INDEXED BY faxes_sent_later
     WHERE account_id = ?1 AND status = 'pending' AND attempts = 0 AND due_at > ?2";

/// The faxes that wait to retry or to be sent later, soonest first (at
/// most [`RETRY_LIST_LIMIT`]), and how many are sent later.
fn waiting(
    conn: &rusqlite::Connection,
    account: &AccountId,
    now: UnixTime,
) -> Result<(Vec<RetrySnapshot>, u64)> {
    let mut list = waiting_by(conn, WAITING_RETRY, account, now)?;
    list.extend(waiting_by(conn, SENT_LATER, account, now)?);
    list.sort_by_key(|r| r.next_attempt);
    list.truncate(RETRY_LIST_LIMIT);
    let later: i64 = conn
        .prepare_cached(SENT_LATER_COUNT)?
        .query_row(params![account.as_str(), now], |r| r.get(0))?;
    Ok((list, later as u64))
}

fn waiting_by(
    conn: &rusqlite::Connection,
    sql: &str,
    account: &AccountId,
    now: UnixTime,
) -> Result<Vec<RetrySnapshot>> {
    select_all(
        conn,
        sql,
        params![account.as_str(), RETRY_LIST_LIMIT, now],
        |r| {
            Ok(RetrySnapshot {
                fax_id: FaxId(r.get(0)?),
                to_number: r.get(1)?,
                attempts: r.get(2)?,
                retries: r.get(3)?,
                next_attempt: r.get(4)?,
                last_cause: r.get(5)?,
            })
        },
    )
}

/// Fails unless `fax_counts` holds, for every account, folder, status and
/// tried-or-not, what counting the faxes finds.
#[cfg(test)]
pub(super) fn assert_counts_agree(store: &Store) {
    let read = |sql: &str| {
        store
            .read(|conn| {
                select_all::<Vec<_>, _>(conn, sql, [], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
            })
            .unwrap()
    };
    let counted = read(
        "SELECT account_id, folder, COALESCE(status, ''), attempts > 0, COUNT(*)
         FROM faxes GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
    );
    let kept = read(
        "SELECT account_id, folder, status, retried, n FROM fax_counts
         WHERE n != 0 ORDER BY 1, 2, 3, 4",
    );
    assert_eq!(kept, counted);
}

#[cfg(test)]
mod tests {
    use crate::model::{JobStatus, NewFax, now};
    use crate::store::listing::{assert_indexed, plan};
    use crate::store::testing::temp_store;

    #[test]
    fn the_status_reads_index_ranges_never_every_queued_fax() {
        let (_dir, store) = temp_store();
        for sql in [
            super::FINISHED_TODAY,
            super::PAGES_SENT_TODAY,
            super::RECEIVED_TODAY,
            super::WAITING_RETRY,
            super::SENT_LATER,
            super::SENT_LATER_COUNT,
            super::RECENT,
        ] {
            assert_indexed(&store, sql);
        }
        // The open attempts are read from their partial index and sorted
        // (one per channel); each fax by its id.
        let steps = plan(&store, super::CALLS);
        assert!(
            steps
                .iter()
                .all(|s| s.contains(" USING ") || s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
    }

    #[test]
    fn an_empty_box_has_every_account_with_an_empty_queue() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap();
        let b = store.create_account("Other", None).unwrap();
        store.set_line_paused("modem", true, "toner").unwrap();
        let all = store.snapshot(None, 0).unwrap();
        assert_eq!(all.queues.len(), 2);
        assert_eq!(all.queues[&a.id].account_name, "Acme");
        assert_eq!(all.queues[&a.id].pending, 0);
        assert_eq!(all.paused.get("modem").map(String::as_str), Some("toner"));
        let own = store.snapshot(Some(&b.id), 0).unwrap();
        assert_eq!(own.queues.keys().collect::<Vec<_>>(), [&b.id]);
    }

    #[test]
    fn a_fax_sent_later_is_listed_with_when_it_goes() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap();
        let at = crate::model::now() + 3600;
        let fax = store
            .create_job(
                NewFax {
                    account_id: a.id.clone(),
                    to_number: "5550101".into(),
                    to_number_normalized: "5550101".into(),
                    retries: 2,
                    send_at: Some(at),
                    ..Default::default()
                },
                vec![],
                crate::model::JobStatus::Pending,
            )
            .unwrap();
        let snap = store.snapshot(None, 0).unwrap();
        let waiting = &snap.queues[&a.id].waiting_retry;
        assert_eq!(waiting.len(), 1);
        assert_eq!(
            (
                &waiting[0].fax_id,
                waiting[0].next_attempt,
                waiting[0].attempts
            ),
            (&fax.id, at, 0)
        );
        assert_eq!(
            waiting[0].last_cause.as_deref(),
            Some("sent later, as asked")
        );
        store.hold_for_window(&fax.id, at + 60).unwrap();
        let snap = store.snapshot(None, 0).unwrap();
        let waiting = &snap.queues[&a.id].waiting_retry;
        assert_eq!(waiting[0].next_attempt, at + 60);
        assert_eq!(
            waiting[0].last_cause.as_deref(),
            Some("waiting for its sending window")
        );
    }

    #[test]
    fn pending_and_active_jobs_are_counted_per_account() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap();
        for number in ["5550101", "5550102"] {
            store
                .create_job(
                    NewFax {
                        account_id: a.id.clone(),
                        to_number: number.into(),
                        to_number_normalized: number.into(),
                        retries: 2,
                        ..Default::default()
                    },
                    vec![],
                    JobStatus::Pending,
                )
                .unwrap();
        }
        let due = store.due_jobs(now() + 10, 10).unwrap();
        store.claim(&due[0].id, "loopback").unwrap().unwrap();
        let snap = store.snapshot(None, 0).unwrap();
        let q = &snap.queues[&a.id];
        assert_eq!((q.pending, q.active), (1, 1));
        assert_eq!(snap.calls.len(), 1);
        assert_eq!(snap.calls[0].line, "loopback");
        assert_eq!(snap.calls[0].fax_id, due[0].id);
    }

    #[test]
    fn recent_faxes_are_newest_first_with_their_document_and_last_result() {
        use crate::model::{DocumentKind, NewDocument};
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap();
        let b = store.create_account("Other", None).unwrap();
        let job = |account: &crate::model::Account, number: &str, name: &str| {
            store
                .create_job(
                    NewFax {
                        account_id: account.id.clone(),
                        to_number: number.into(),
                        to_number_normalized: number.into(),
                        retries: 2,
                        ..Default::default()
                    },
                    vec![NewDocument {
                        kind: DocumentKind::Original,
                        content_type: "application/pdf".into(),
                        filename: name.into(),
                        pages: Some(3),
                        bytes: b"%PDF-1.4".to_vec(),
                    }],
                    JobStatus::Pending,
                )
                .unwrap()
        };
        let first = job(&a, "5550101", "first.pdf");
        let second = job(&a, "5550102", "second.pdf");
        job(&b, "5550103", "theirs.pdf");
        store
            .cancel_job(&first.id, "the sender changed their mind")
            .unwrap();

        let own = store.snapshot(Some(&a.id), 0).unwrap();
        let ids: Vec<_> = own.recent.iter().map(|r| &r.fax_id).collect();
        assert_eq!(ids, [&second.id, &first.id], "newest first, own only");
        let r = &own.recent[0];
        assert_eq!(r.document.as_deref(), Some("second.pdf"));
        assert_eq!((r.pages, r.folder.as_str()), (Some(3), "outbox"));
        assert_eq!(r.status.as_deref(), Some("pending"));
        assert_eq!(r.number, "5550102");
        assert_eq!(r.last_result, None, "never on a line");
        let cancelled = &own.recent[1];
        assert_eq!(cancelled.status.as_deref(), Some("cancelled"));
        assert_eq!(
            cancelled.last_result.as_deref(),
            Some("the sender changed their mind")
        );
        assert_eq!(store.snapshot(None, 0).unwrap().recent.len(), 3);
    }
}
