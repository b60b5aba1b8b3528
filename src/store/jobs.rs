//! Faxes, their documents and attempts, and the job state machine.
//!
//! Every status change is one function here, one transaction each, checked
//! against `JobStatus::may_become`. The claim that puts a job on a line is an
//! `UPDATE ... WHERE status = 'pending'`, so two schedulers (or threads)
//! racing for a job cannot both win. Start-up recovery is an ordinary
//! function, tested like any other (docs/style.md, principle 6).

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sealing::{DocumentKey, Row};
use super::{
    ChangedRow, OptionalRow, Result, Store, StoreError, parse_column, select_all, to_json,
};
use crate::model::{
    AccountId, Attempt, AttemptOutcome, AttemptReport, AttemptStage, BatchId, DocumentInfo,
    DocumentKind, Fax, FaxId, FaxboxId, Folder, JobStatus, NewDocument, NewFax, Priority, UnixTime,
    now,
};

/// After this many attempts lost with the line's own connection (a
/// FreeSWITCH that drops each time it is given this fax) the next one
/// counts as a failure: such a fax must not loop forever. Stops and crashes
/// of Faxbox itself never count (issue 19): documents are drawn in a
/// worker process, so a poison document fails its fax, not the box.
pub const MAX_INTERRUPTED_ATTEMPTS: u32 = 3;

/// The fax fields kept as one JSON column.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FaxDoc {
    to_name: Option<String>,
    from_number: Option<String>,
    from_name: Option<String>,
    fax_identity_number: Option<String>,
    fax_identity_name: Option<String>,
    fax_timezone: Option<String>,
    notify_email: Vec<String>,
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rx_result: Option<crate::model::RxResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    send_at: Option<UnixTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cover_page: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cover_note: Option<String>,
}

pub(super) const FAX_COLUMNS: &str = "id, account_id, faxbox_id, folder, status, to_number, \
     to_number_normalized, retries, attempts, retry_after, due_at, error, doc, created, modified, \
     priority, batch_id";

pub(super) fn fax_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Fax> {
    let doc: FaxDoc = super::json_column(r, 12)?;
    let status: Option<String> = r.get(4)?;
    Ok(Fax {
        id: FaxId(r.get(0)?),
        account_id: AccountId(r.get(1)?),
        faxbox_id: r.get::<_, Option<String>>(2)?.map(FaxboxId),
        folder: parse_column(r, 3)?,
        status: match status {
            Some(_) => Some(parse_column(r, 4)?),
            None => None,
        },
        to_number: r.get(5)?,
        to_number_normalized: r.get(6)?,
        retries: r.get(7)?,
        attempts: r.get(8)?,
        retry_after: r.get(9)?,
        due_at: r.get(10)?,
        send_at: doc.send_at,
        priority: Priority::from_rank(r.get(15)?),
        error: r.get(11)?,
        to_name: doc.to_name,
        from_number: doc.from_number,
        from_name: doc.from_name,
        fax_identity_number: doc.fax_identity_number,
        fax_identity_name: doc.fax_identity_name,
        fax_timezone: doc.fax_timezone,
        notify_email: doc.notify_email,
        subject: doc.subject,
        cover_page: doc.cover_page,
        cover_note: doc.cover_note,
        rx_result: doc.rx_result,
        batch_id: r.get::<_, Option<String>>(16)?.map(BatchId),
        created: r.get(13)?,
        modified: r.get(14)?,
    })
}

const ATTEMPT_COLUMNS: &str = "id, fax_id, number, line, started, ended, stage, outcome, \
     result_code, result_text, hangup_cause, pages_sent, pages_total, bit_rate, ecm, remote_station_id";

fn attempt_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attempt> {
    let outcome: Option<String> = r.get(7)?;
    Ok(Attempt {
        id: r.get(0)?,
        fax_id: FaxId(r.get(1)?),
        number: r.get(2)?,
        line: r.get(3)?,
        started: r.get(4)?,
        ended: r.get(5)?,
        stage: parse_column(r, 6)?,
        outcome: match outcome {
            Some(_) => Some(parse_column(r, 7)?),
            None => None,
        },
        report: AttemptReport {
            result_code: r.get(8)?,
            result_text: r.get(9)?,
            hangup_cause: r.get(10)?,
            pages_sent: r.get(11)?,
            pages_total: r.get(12)?,
            bit_rate: r.get(13)?,
            ecm: r.get(14)?,
            remote_station_id: r.get(15)?,
        },
    })
}

const DOCUMENT_COLUMNS: &str =
    "id, fax_id, kind, seq, content_type, filename, size, sha256, pages, created";

fn document_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentInfo> {
    Ok(DocumentInfo {
        id: r.get(0)?,
        fax_id: FaxId(r.get(1)?),
        kind: parse_column(r, 2)?,
        seq: r.get(3)?,
        content_type: r.get(4)?,
        filename: r.get(5)?,
        size: r.get(6)?,
        sha256: r.get(7)?,
        pages: r.get(8)?,
        created: r.get(9)?,
    })
}

/// A job the scheduler may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueJob {
    pub id: FaxId,
    pub account_id: AccountId,
    /// Whose sending windows apply.
    pub faxbox_id: Option<FaxboxId>,
    pub to_number_normalized: String,
    pub due_at: UnixTime,
    pub priority: Priority,
}

/// What happens to a job when its attempt ends; the scheduler's retry
/// policy decides, the store enforces the attempt budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Complete,
    /// Try again after this many seconds, if the budget allows; a job whose
    /// attempts are used up fails instead.
    Retry {
        after_s: i64,
    },
    /// No retry can fix this (bad document, invalid number).
    Fail {
        reason: String,
    },
    Cancel {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptEnd {
    pub outcome: AttemptOutcome,
    pub stage: AttemptStage,
    pub report: AttemptReport,
    pub next: NextStep,
    /// A new attempt budget for the job (a reschedule rule's
    /// `new-retry-count`), applied before deciding on a retry.
    pub retries: Option<u8>,
}

/// Which faxes a listing shows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub account: Option<AccountId>,
    pub faxbox: Option<FaxboxId>,
    pub folder: Option<Folder>,
    pub status: Option<JobStatus>,
    pub limit: Option<u32>,
}

/// What start-up recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Jobs that were on a line when the process stopped, now pending again.
    pub requeued: Vec<FaxId>,
    /// Jobs whose far end had confirmed every page before the stop, now
    /// completed without a second call.
    pub completed: Vec<FaxId>,
    /// Jobs whose last page was sent but not yet confirmed when the box
    /// stopped: they have probably arrived, so they are not sent again on
    /// their own but failed with a message that says so.
    pub unconfirmed: Vec<FaxId>,
    /// Jobs still waiting for their documents to be converted.
    pub attaching: Vec<FaxId>,
    /// Document rows whose fax no longer exists, removed.
    pub orphan_documents: usize,
}

/// The pending faxes of one priority (`?3`) due by `?1`, oldest due first:
/// a range of `faxes_due_by_priority`.
const DUE_JOBS_OF_PRIORITY: &str =
    "SELECT id, account_id, to_number_normalized, due_at, faxbox_id FROM faxes
     WHERE status = 'pending' AND priority = ?3 AND due_at <= ?1
     ORDER BY due_at, rowid LIMIT ?2";

/// When the next pending fax falls due: the first entry of `faxes_due`.
const NEXT_DUE_AT: &str = "SELECT min(due_at) FROM faxes WHERE status = 'pending'";

impl Store {
    /// Creates an outbound job with its documents in one transaction, so an
    /// acknowledged job always has them (docs/architecture.md, invariant 1). `status` is
    /// `AttachingFiles` while conversion is still to come, else `Pending`.
    pub fn create_job(
        &self,
        new: NewFax,
        documents: Vec<NewDocument>,
        status: JobStatus,
    ) -> Result<Fax> {
        let fax = new_outbox_fax(new, status, now())?;
        // Shares its disk sync with jobs arriving at the same time.
        self.insert_job_grouped(fax.clone(), documents)?;
        Ok(fax)
    }

    /// Creates several jobs sharing the same documents (one request to
    /// several fax numbers) in one transaction: all of them are committed,
    /// or none. Jobs from one account and faxbox form a batch (issue 22).
    /// One job takes `create_job`'s grouped commit.
    pub fn create_jobs(
        &self,
        mut jobs: Vec<NewFax>,
        documents: Vec<NewDocument>,
        status: JobStatus,
    ) -> Result<Vec<Fax>> {
        if jobs.len() == 1 {
            let one = jobs.remove(0);
            return Ok(vec![self.create_job(one, documents, status)?]);
        }
        if jobs.is_empty() {
            return Err(missing_number().into());
        }
        let t = now();
        let mut faxes = jobs
            .into_iter()
            .map(|new| new_outbox_fax(new, status, t))
            .collect::<Result<Vec<Fax>>>()?;
        let key = self.key()?;
        super::batches::group(&mut faxes);
        self.write(|tx| {
            super::batches::insert_batches(tx, &faxes)?;
            for fax in &faxes {
                insert_job(tx, &key, fax, &documents)?;
            }
            Ok(())
        })?;
        Ok(faxes)
    }

    pub fn fax(&self, id: &FaxId) -> Result<Fax> {
        self.read(|conn| load_fax(conn, id))
    }

    /// The fax whose id starts with `prefix` (the dashboard shows the
    /// first characters of ids): the whole id when exactly one matches.
    pub fn fax_id_by_prefix(&self, prefix: &str) -> Result<FaxId> {
        let prefix = prefix.trim().to_ascii_lowercase();
        let not_found = || StoreError::NotFound {
            kind: "fax",
            id: prefix.clone(),
        };
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let ids: Vec<String> = self.read(|conn| {
            select_all(
                conn,
                "SELECT id FROM faxes WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 3",
                [&prefix],
                |r| r.get(0),
            )
        })?;
        match ids.as_slice() {
            [one] => Ok(FaxId(one.clone())),
            [] => Err(not_found()),
            several => Err(StoreError::Conflict(format!(
                "several faxes have ids starting with {prefix} ({}, ...): give more of the id",
                several.join(", ")
            ))),
        }
    }

    /// A fax of one account; another account's fax is "not found".
    pub fn fax_in(&self, account: &AccountId, id: &FaxId) -> Result<Fax> {
        match self.fax(id) {
            Ok(f) if &f.account_id == account => Ok(f),
            Ok(_) => Err(StoreError::NotFound {
                kind: "fax",
                id: id.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn faxes(&self, filter: &JobFilter) -> Result<Vec<Fax>> {
        let mut sql = format!("SELECT {FAX_COLUMNS} FROM faxes WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut push = |clause: &str, value: String| {
            args.push(value);
            sql.push_str(&format!(" AND {clause} = ?{}", args.len()));
        };
        if let Some(a) = &filter.account {
            push("account_id", a.to_string());
        }
        if let Some(f) = &filter.faxbox {
            push("faxbox_id", f.to_string());
        }
        if let Some(f) = filter.folder {
            push("folder", f.as_str().to_owned());
        }
        if let Some(s) = filter.status {
            push("status", s.as_str().to_owned());
        }
        sql.push_str(&format!(
            " ORDER BY created DESC, rowid DESC LIMIT {}",
            filter.limit.unwrap_or(1000)
        ));
        self.read(|conn| {
            select_all(
                conn,
                &sql,
                rusqlite::params_from_iter(args.iter()),
                fax_from_row,
            )
        })
    }

    /// Stores the converted documents of an `attaching_files` job and makes
    /// it pending, in one step.
    pub fn attach_documents(&self, id: &FaxId, documents: Vec<NewDocument>) -> Result<Fax> {
        let key = self.key()?;
        self.write(|tx| {
            let fax = transition(tx, id, JobStatus::Pending, None)?;
            for doc in &documents {
                insert_document(tx, &key, id, doc)?;
            }
            Ok(fax)
        })
    }

    /// Ends a job that never reached a line (its document could not be
    /// converted): `attaching_files` -> `failed` with the reason. Kazoo left
    /// such jobs stuck (docs/kazoo.md 13 item 6).
    pub fn fail_unsent_job(&self, id: &FaxId, reason: &str) -> Result<Fax> {
        self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status != Some(JobStatus::AttachingFiles) {
                return Err(illegal(&fax, JobStatus::Failed));
            }
            transition(tx, id, JobStatus::Failed, Some(reason))
        })
    }

    /// Cancels a job that is not on a line. A job on a line is cancelled by
    /// ending its attempt with `NextStep::Cancel`.
    pub fn cancel_job(&self, id: &FaxId, reason: &str) -> Result<Fax> {
        self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status == Some(JobStatus::Processing) {
                return Err(StoreError::Conflict(format!(
                    "fax {id} is being sent right now; it is cancelled when the call is stopped"
                )));
            }
            transition(tx, id, JobStatus::Cancelled, Some(reason))
        })
    }

    /// An operator's cancel: a job not on a line is cancelled at once
    /// (returned `true`); a job on a line is marked, and the scheduler hangs
    /// up the call and records the attempt (returned `false`).
    pub fn request_cancel(&self, id: &FaxId, reason: &str) -> Result<bool> {
        self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status == Some(JobStatus::Processing) {
                tx.execute(
                    "UPDATE faxes SET cancel_requested = 1, error = ?2 WHERE id = ?1",
                    params![id.as_str(), reason],
                )?;
                Ok(false)
            } else {
                transition(tx, id, JobStatus::Cancelled, Some(reason))?;
                Ok(true)
            }
        })
    }

    /// Whether an operator asked to cancel this job while it is on a line.
    pub fn cancel_requested(&self, id: &FaxId) -> Result<bool> {
        self.read(|conn| {
            conn.query_row(
                "SELECT cancel_requested FROM faxes WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .found("fax", id.as_str())
        })
    }

    /// Makes a pending job due now (an operator's "retry now").
    pub fn retry_now(&self, id: &FaxId) -> Result<Fax> {
        self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status != Some(JobStatus::Pending) {
                return Err(StoreError::Conflict(format!(
                    "fax {id} is {}; only a pending fax can be retried now (resubmit a finished one)",
                    status_word(&fax)
                )));
            }
            tx.execute("UPDATE faxes SET due_at = ?2, modified = ?2 WHERE id = ?1", params![id.as_str(), now()])?;
            load_fax(tx, id)
        })
    }

    /// Sends a finished job again as a new job with the same documents and a
    /// fresh attempt budget (Kazoo's `resubmit`, docs/kazoo.md 2.4).
    pub fn resubmit(&self, id: &FaxId) -> Result<Fax> {
        self.resubmit_changed(id, |_| {})
    }

    /// `resubmit`, with `change` applied to the new job's fields (a new
    /// number, another attempt budget) before it is stored. The caller has
    /// validated the change as it validates a new fax.
    pub fn resubmit_changed(&self, id: &FaxId, change: impl FnOnce(&mut Fax)) -> Result<Fax> {
        let key = self.key()?;
        self.write(|tx| {
            let old = load_fax(tx, id)?;
            if old.folder != Folder::Outbox || !old.status.is_some_and(JobStatus::is_terminal) {
                return Err(StoreError::Conflict(format!(
                    "fax {id} is {}; only a completed, failed or cancelled fax can be resubmitted",
                    status_word(&old)
                )));
            }
            let t = now();
            let mut fax = Fax {
                id: FaxId::new(),
                status: Some(JobStatus::Pending),
                attempts: 0,
                retry_after: 0,
                due_at: t,
                send_at: None,
                error: None,
                // A fax sent again is a fax of its own, outside the batch.
                batch_id: None,
                created: t,
                modified: t,
                ..old
            };
            change(&mut fax);
            insert_fax(tx, &fax)?;
            // Each copy is sealed as its own row: a blob opens only in the
            // row it was sealed for.
            let copies: Vec<(DocumentInfo, bool, Vec<u8>)> = select_all(
                tx,
                &format!(
                    "SELECT {DOCUMENT_COLUMNS}, sealed, data FROM documents
                     WHERE fax_id = ?1 ORDER BY kind, seq"
                ),
                [id.as_str()],
                |r| Ok((document_from_row(r)?, r.get(10)?, r.get(11)?)),
            )?;
            for (doc, sealed, data) in copies {
                let bytes = if sealed {
                    key.open(Row::Document(&doc.id), data)?
                } else {
                    data
                };
                insert_document(
                    tx,
                    &key,
                    &fax.id,
                    &NewDocument {
                        kind: doc.kind,
                        content_type: doc.content_type,
                        filename: doc.filename,
                        pages: doc.pages,
                        bytes,
                    },
                )?;
            }
            Ok(fax)
        })
    }

    /// Deletes a fax with its documents, attempts and the mails that carry
    /// it, for real: the bytes are overwritten, not only unlinked (issue 23).
    pub fn delete_fax(&self, id: &FaxId) -> Result<()> {
        self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status == Some(JobStatus::Processing) {
                return Err(on_a_call(id));
            }
            tx.execute("DELETE FROM faxes WHERE id = ?1", [id.as_str()])?;
            Ok(())
        })?;
        self.scrub();
        Ok(())
    }

    // --- scheduling ---------------------------------------------------------

    /// Pending jobs whose due time has come, highest priority first, then
    /// oldest due first (issue 22).
    pub fn due_jobs(&self, at: UnixTime, limit: u32) -> Result<Vec<DueJob>> {
        self.read(|conn| {
            // One index range per priority, highest first: the queue may
            // hold hundreds of thousands of faxes and this runs on every
            // pass of the dispatcher.
            let mut due = Vec::new();
            for priority in [Priority::High, Priority::Normal, Priority::Low] {
                let left = limit as usize - due.len();
                if left == 0 {
                    break;
                }
                let of_priority: Vec<DueJob> = select_all(
                    conn,
                    DUE_JOBS_OF_PRIORITY,
                    params![at, left, priority.rank()],
                    |r| {
                        Ok(DueJob {
                            id: FaxId(r.get(0)?),
                            account_id: AccountId(r.get(1)?),
                            to_number_normalized: r.get(2)?,
                            due_at: r.get(3)?,
                            faxbox_id: r.get::<_, Option<String>>(4)?.map(FaxboxId),
                            priority,
                        })
                    },
                )?;
                due.extend(of_priority);
            }
            Ok(due)
        })
    }

    /// When the next pending job falls due (the scheduler sleeps until then).
    pub fn next_due_at(&self) -> Result<Option<UnixTime>> {
        self.read(|conn| Ok(conn.query_row(NEXT_DUE_AT, [], |r| r.get(0))?))
    }

    /// Holds a due job until its faxbox's sending window opens at `until`
    /// (issue 22): its due time shows when it will go. `false` when it is
    /// no longer pending.
    pub fn hold_for_window(&self, id: &FaxId, until: UnixTime) -> Result<bool> {
        self.write_fast(|tx| {
            let n = tx.execute(
                "UPDATE faxes SET due_at = ?2, held_by_window = 1
                 WHERE id = ?1 AND status = 'pending'",
                params![id.as_str(), until],
            )?;
            Ok(n == 1)
        })
    }

    /// How many of an account's jobs are on a line now (for `max_outbound`).
    pub fn active_jobs(&self, account: &AccountId) -> Result<u32> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM faxes WHERE status = 'processing' AND account_id = ?1",
                [account.as_str()],
                |r| r.get(0),
            )?)
        })
    }

    /// Whether a call to this number is on a line now, in any account
    /// (`serialize_outbound_numbers` is box-wide).
    pub fn number_is_active(&self, normalized: &str) -> Result<bool> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM faxes WHERE status = 'processing' AND to_number_normalized = ?1)",
                [normalized],
                |r| r.get(0),
            )?)
        })
    }

    /// Puts a pending job on a line: `pending` -> `processing` and a new
    /// attempt row, atomically. `None` when someone else claimed it first or
    /// it is no longer pending.
    pub fn claim(&self, id: &FaxId, line: &str) -> Result<Option<(Fax, Attempt)>> {
        self.write_fast(|tx| {
            let t = now();
            let won = tx.execute(
                "UPDATE faxes SET status = 'processing', modified = ?2, held_by_window = 0
                 WHERE id = ?1 AND status = 'pending'",
                params![id.as_str(), t],
            )?;
            if won == 0 {
                return Ok(None);
            }
            let number: u32 = tx.query_row(
                "SELECT count(*) + 1 FROM attempts WHERE fax_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO attempts (fax_id, number, line, started, stage) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id.as_str(), number, line, t, AttemptStage::Prepare.as_str()],
            )?;
            let attempt = load_attempt(tx, tx.last_insert_rowid())?;
            Ok(Some((load_fax(tx, id)?, attempt)))
        })
    }

    /// Records how far an open attempt has got (for live status).
    pub fn update_attempt(
        &self,
        attempt_id: i64,
        stage: AttemptStage,
        report: &AttemptReport,
    ) -> Result<()> {
        self.write_fast(|tx| {
            tx.execute(
                "UPDATE attempts SET stage = ?2, result_code = ?3, result_text = ?4, hangup_cause = ?5,
                     pages_sent = ?6, pages_total = ?7, bit_rate = ?8, ecm = ?9, remote_station_id = ?10
                 WHERE id = ?1 AND ended IS NULL",
                params![
                    attempt_id,
                    stage.as_str(),
                    report.result_code,
                    report.result_text,
                    report.hangup_cause,
                    report.pages_sent,
                    report.pages_total,
                    report.bit_rate,
                    report.ecm,
                    report.remote_station_id
                ],
            )
            .changed("open attempt", attempt_id)
        })
    }

    /// Records that the last page of an open attempt has gone out and its
    /// confirmation is awaited. Called on the line's thread before the end
    /// of procedure is sent, and synced to the disk (even against a power
    /// cut), so that recovery never sends again on its own a fax that has
    /// probably arrived (issue 19).
    pub fn last_page_sent(&self, attempt_id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE attempts SET last_page_sent = 1 WHERE id = ?1 AND ended IS NULL",
                [attempt_id],
            )
            .changed("open attempt", attempt_id)
        })
    }

    /// Closes an attempt and moves its job on, in one transaction: success
    /// completes it; a retry goes back to `pending` with its due time unless
    /// the attempts are used up (then `failed`); fail and cancel end it.
    pub fn finish_attempt(&self, attempt_id: i64, end: AttemptEnd) -> Result<Fax> {
        self.write(|tx| {
            let attempt = load_attempt(tx, attempt_id)?;
            if attempt.ended.is_some() {
                return Err(StoreError::Conflict(format!(
                    "attempt {attempt_id} has already ended"
                )));
            }
            let fax = load_fax(tx, &attempt.fax_id)?;
            if fax.status != Some(JobStatus::Processing) {
                return Err(illegal(&fax, JobStatus::Pending));
            }
            let t = now();
            close_attempt(tx, attempt_id, t, end.stage, end.outcome, &end.report)?;
            let counts = matches!(
                end.outcome,
                AttemptOutcome::Success | AttemptOutcome::Failure
            );
            let attempts = fax.attempts.saturating_add(u8::from(counts));
            let retries = end.retries.unwrap_or(fax.retries);
            tx.execute(
                "UPDATE faxes SET attempts = ?2, retries = ?3 WHERE id = ?1",
                params![fax.id.as_str(), attempts, retries],
            )?;
            match end.next {
                NextStep::Complete => transition(tx, &fax.id, JobStatus::Completed, None),
                NextStep::Retry { after_s } if attempts < retries.max(1) => {
                    tx.execute(
                        "UPDATE faxes SET retry_after = ?2, due_at = ?3 WHERE id = ?1",
                        params![fax.id.as_str(), after_s.max(0), t + after_s.max(0)],
                    )?;
                    transition(tx, &fax.id, JobStatus::Pending, None)
                }
                NextStep::Retry { .. } => {
                    let reason = end
                        .report
                        .result_text
                        .clone()
                        .unwrap_or_else(|| "the fax could not be sent".into());
                    transition(
                        tx,
                        &fax.id,
                        JobStatus::Failed,
                        Some(&format!("{reason} (after {attempts} attempts)")),
                    )
                }
                NextStep::Fail { reason } => {
                    transition(tx, &fax.id, JobStatus::Failed, Some(&reason))
                }
                NextStep::Cancel { reason } => {
                    transition(tx, &fax.id, JobStatus::Cancelled, Some(&reason))
                }
            }
        })
    }

    /// The attempts not yet ended, as (fax, attempt number).
    pub fn open_attempts(&self) -> Result<Vec<(FaxId, u32)>> {
        self.read(open_attempts)
    }

    pub fn attempts(&self, fax: &FaxId) -> Result<Vec<Attempt>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE fax_id = ?1 ORDER BY number"
                ),
                [fax.as_str()],
                attempt_from_row,
            )
        })
    }

    // --- documents ----------------------------------------------------------

    pub fn documents(&self, fax: &FaxId) -> Result<Vec<DocumentInfo>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {DOCUMENT_COLUMNS} FROM documents WHERE fax_id = ?1 ORDER BY kind, seq"
                ),
                [fax.as_str()],
                document_from_row,
            )
        })
    }

    /// A document's bytes, opened with the document key (`sealing`).
    pub fn document_bytes(&self, document_id: &str) -> Result<Vec<u8>> {
        let (sealed, data) = self.read(|conn| {
            conn.query_row(
                "SELECT sealed, data FROM documents WHERE id = ?1",
                [document_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .found("document", document_id)
        })?;
        self.unseal(Row::Document(document_id), sealed, data)
    }

    /// Adds a document to an existing fax (a PDF made on demand, say).
    pub fn add_document(&self, fax: &FaxId, doc: NewDocument) -> Result<DocumentInfo> {
        let key = self.key()?;
        self.write(|tx| {
            load_fax(tx, fax)?;
            let id = insert_document(tx, &key, fax, &doc)?;
            Ok(tx.query_row(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?1"),
                [&id],
                document_from_row,
            )?)
        })
    }

    // --- recovery -----------------------------------------------------------

    /// Run once at start, before any line is used: a job left `processing`
    /// had its call cut by the stop. Its open attempt is closed and the job
    /// moves on by what the attempt had recorded (`after_stop`): completed
    /// when every page was confirmed, failed as unconfirmed when the last
    /// page was out but not confirmed, else pending again, due now
    /// (docs/architecture.md, invariant 2).
    pub fn recover(&self) -> Result<RecoveryReport> {
        self.write(|tx| {
            let t = now();
            let mut report = RecoveryReport::default();
            let ids: Vec<FaxId> = select_all(
                tx,
                "SELECT id FROM faxes WHERE status = 'processing' ORDER BY rowid",
                [],
                |r| Ok(FaxId(r.get(0)?)),
            )?;
            for id in ids {
                let open: Vec<(Attempt, bool)> = select_all(
                    tx,
                    &format!(
                        "SELECT {ATTEMPT_COLUMNS}, last_page_sent FROM attempts
                         WHERE fax_id = ?1 AND ended IS NULL"
                    ),
                    [id.as_str()],
                    |r| Ok((attempt_from_row(r)?, r.get::<_, bool>(16)?)),
                )?;
                // One verdict per job, the surest first: delivered if any of
                // its open attempts got every page confirmed, unconfirmed if
                // one sent its last page, else sent again.
                let mut verdict = AfterStop::Interrupted;
                for (a, last_page_sent) in open {
                    let after = after_stop(&a, last_page_sent);
                    let text = match after {
                        AfterStop::Delivered => format!(
                            "completed at recovery: the far end had confirmed all {} pages when Faxbox stopped",
                            a.report.pages_total
                        ),
                        AfterStop::Unconfirmed => {
                            "interrupted after the last page was sent, before the far end confirmed it"
                                .to_owned()
                        }
                        AfterStop::Interrupted => {
                            "interrupted: Faxbox stopped during the call".to_owned()
                        }
                    };
                    let outcome = match after {
                        AfterStop::Delivered => AttemptOutcome::Success,
                        _ => AttemptOutcome::Interrupted,
                    };
                    let report = AttemptReport {
                        result_text: Some(text),
                        ..a.report.clone()
                    };
                    close_attempt(tx, a.id, t, a.stage, outcome, &report)?;
                    verdict = verdict.min(after);
                }
                match verdict {
                    AfterStop::Delivered => {
                        tx.execute(
                            "UPDATE faxes SET attempts = attempts + 1 WHERE id = ?1",
                            [id.as_str()],
                        )?;
                        transition(tx, &id, JobStatus::Completed, None)?;
                        report.completed.push(id);
                    }
                    AfterStop::Unconfirmed => {
                        tx.execute(
                            "UPDATE faxes SET attempts = attempts + 1 WHERE id = ?1",
                            [id.as_str()],
                        )?;
                        transition(tx, &id, JobStatus::Failed, Some(UNCONFIRMED))?;
                        report.unconfirmed.push(id);
                    }
                    AfterStop::Interrupted => {
                        // Interruptions by the box's own stop do not use up
                        // the fax's retries.
                        tx.execute(
                            "UPDATE faxes SET due_at = ?2 WHERE id = ?1",
                            params![id.as_str(), t],
                        )?;
                        transition(tx, &id, JobStatus::Pending, None)?;
                        report.requeued.push(id);
                    }
                }
            }
            report.attaching = select_all(
                tx,
                "SELECT id FROM faxes WHERE status = 'attaching_files' ORDER BY rowid",
                [],
                |r| Ok(FaxId(r.get(0)?)),
            )?;
            // With foreign keys on there are none; a database edited with
            // them off could have some.
            report.orphan_documents = tx.execute(
                "DELETE FROM documents WHERE fax_id NOT IN (SELECT id FROM faxes)",
                [],
            )?;
            tx.execute(
                "DELETE FROM attempts WHERE fax_id NOT IN (SELECT id FROM faxes)",
                [],
            )?;
            Ok(report)
        })
    }
}

/// What recovery makes of an attempt that was open when the box stopped,
/// surest first. (A line whose calls can outlive the box adds its own case
/// here.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AfterStop {
    /// The line had reported every page confirmed by the far end (MCF on
    /// the last page, T.30 5.3.6.2): the fax arrived; sending it again
    /// would give the recipient a second copy.
    Delivered,
    /// The last page had gone out with its end of procedure (EOP), but the
    /// far end's answer was not heard before the stop. A receiving machine
    /// keeps the page before it answers, so the fax has almost surely
    /// arrived; it may also have been refused (RTN) or cut. Neither choice
    /// made alone is safe: sending it again gives the recipient (a pharmacy,
    /// a court) a second copy to act on, and calling it delivered could
    /// hide a fax that never came. So the box does what a fax machine's
    /// transmission report does: it says the last page was not confirmed,
    /// and leaves sending it again to a person who has asked the
    /// recipient. The fax fails with `UNCONFIRMED` and its error mail says
    /// so; `faxbox jobs retry` (or the API's resubmit) sends it again.
    Unconfirmed,
    /// Cut short before the last page went out: the fax is sent again.
    Interrupted,
}

/// The error of a fax whose last page was sent but not confirmed when the
/// box stopped (`AfterStop::Unconfirmed`), in its sender's words.
pub const UNCONFIRMED: &str = "not confirmed: Faxbox stopped after sending the last page, before the \
     receiving machine confirmed it, so the fax has probably arrived. Ask the recipient whether it \
     came before sending it again (faxbox jobs retry, or resubmit in the API): Faxbox does not \
     send it again on its own";

fn after_stop(attempt: &Attempt, last_page_sent: bool) -> AfterStop {
    let r = &attempt.report;
    if r.pages_total > 0 && r.pages_sent >= r.pages_total {
        AfterStop::Delivered
    } else if last_page_sent {
        AfterStop::Unconfirmed
    } else {
        AfterStop::Interrupted
    }
}

/// Makes the faxes a faxbox's old sending windows held due now, when its
/// windows change: the dispatcher holds them again if the new windows are
/// closed too.
pub(super) fn release_window_holds(tx: &Transaction<'_>, faxbox: &FaxboxId) -> Result<usize> {
    Ok(tx.execute(
        "UPDATE faxes SET due_at = min(due_at, ?2), held_by_window = 0
         WHERE faxbox_id = ?1 AND status = 'pending' AND held_by_window = 1",
        params![faxbox.as_str(), now()],
    )?)
}

/// Open attempts as (fax, attempt number): the calls whose fax images in
/// the spool are still in use.
pub(super) fn open_attempts(conn: &Connection) -> Result<Vec<(FaxId, u32)>> {
    select_all(
        conn,
        "SELECT fax_id, number FROM attempts WHERE ended IS NULL",
        [],
        |r| Ok((FaxId(r.get(0)?), r.get(1)?)),
    )
}

fn status_word(fax: &Fax) -> &'static str {
    fax.status.map_or("a received fax", JobStatus::as_str)
}

fn illegal(fax: &Fax, to: JobStatus) -> StoreError {
    StoreError::IllegalTransition {
        id: fax.id.to_string(),
        from: status_word(fax).to_owned(),
        to: to.as_str().to_owned(),
    }
}

fn load_fax(conn: &Connection, id: &FaxId) -> Result<Fax> {
    conn.query_row(
        &format!("SELECT {FAX_COLUMNS} FROM faxes WHERE id = ?1"),
        [id.as_str()],
        fax_from_row,
    )
    .found("fax", id.as_str())
}

fn load_attempt(conn: &Connection, id: i64) -> Result<Attempt> {
    conn.query_row(
        &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?1"),
        [id],
        attempt_from_row,
    )
    .found("attempt", &id.to_string())
}

/// The one place a job's status changes.
fn transition(tx: &Transaction<'_>, id: &FaxId, to: JobStatus, error: Option<&str>) -> Result<Fax> {
    let fax = load_fax(tx, id)?;
    match fax.status {
        Some(from) if from.may_become(to) => {}
        _ => return Err(illegal(&fax, to)),
    }
    tx.execute(
        "UPDATE faxes SET status = ?2, error = coalesce(?3, error), modified = ?4,
             cancel_requested = 0 WHERE id = ?1",
        params![id.as_str(), to.as_str(), error, now()],
    )?;
    load_fax(tx, id)
}

fn close_attempt(
    tx: &Transaction<'_>,
    id: i64,
    at: UnixTime,
    stage: AttemptStage,
    outcome: AttemptOutcome,
    report: &AttemptReport,
) -> Result<()> {
    tx.execute(
        "UPDATE attempts SET ended = ?2, stage = ?3, outcome = ?4, result_code = ?5, result_text = ?6,
             hangup_cause = ?7, pages_sent = ?8, pages_total = ?9, bit_rate = ?10, ecm = ?11,
             remote_station_id = ?12
         WHERE id = ?1",
        params![
            id,
            at,
            stage.as_str(),
            outcome.as_str(),
            report.result_code,
            report.result_text,
            report.hangup_cause,
            report.pages_sent,
            report.pages_total,
            report.bit_rate,
            report.ecm,
            report.remote_station_id
        ],
    )?;
    Ok(())
}

pub(super) fn insert_fax(tx: &Transaction<'_>, fax: &Fax) -> Result<()> {
    let doc = FaxDoc {
        to_name: fax.to_name.clone(),
        from_number: fax.from_number.clone(),
        from_name: fax.from_name.clone(),
        fax_identity_number: fax.fax_identity_number.clone(),
        fax_identity_name: fax.fax_identity_name.clone(),
        fax_timezone: fax.fax_timezone.clone(),
        notify_email: fax.notify_email.clone(),
        subject: fax.subject.clone(),
        rx_result: fax.rx_result.clone(),
        send_at: fax.send_at,
        cover_page: fax.cover_page,
        cover_note: fax.cover_note.clone(),
    };
    tx.execute(
        &format!("INSERT INTO faxes ({FAX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
        params![
            fax.id.as_str(),
            fax.account_id.as_str(),
            fax.faxbox_id.as_ref().map(FaxboxId::as_str),
            fax.folder.as_str(),
            fax.status.map(JobStatus::as_str),
            fax.to_number,
            fax.to_number_normalized,
            fax.retries,
            fax.attempts,
            fax.retry_after,
            fax.due_at,
            fax.error,
            to_json(&doc),
            fax.created,
            fax.modified,
            fax.priority.rank(),
            fax.batch_id.as_ref().map(BatchId::as_str)
        ],
    )?;
    Ok(())
}

/// Writes a new job of an account that exists, with its documents, each
/// sealed with `key`: what every way a fax is sent in commits.
pub(super) fn insert_job(
    tx: &Transaction<'_>,
    key: &DocumentKey,
    fax: &Fax,
    documents: &[NewDocument],
) -> Result<()> {
    super::ensure_account(tx, &fax.account_id)?;
    insert_fax(tx, fax)?;
    for doc in documents {
        insert_document(tx, key, &fax.id, doc)?;
    }
    Ok(())
}

/// Stores a document of `fax`, sealed with `key` (`sealing`).
pub(super) fn insert_document(
    tx: &Transaction<'_>,
    key: &DocumentKey,
    fax: &FaxId,
    doc: &NewDocument,
) -> Result<String> {
    let id = crate::model::new_id();
    let seq: u32 = tx.query_row(
        "SELECT count(*) FROM documents WHERE fax_id = ?1 AND kind = ?2",
        params![fax.as_str(), doc.kind.as_str()],
        |r| r.get(0),
    )?;
    // A fax has one converted TIFF and one PDF; a new one replaces the old.
    if doc.kind != DocumentKind::Original && seq > 0 {
        tx.execute(
            "DELETE FROM documents WHERE fax_id = ?1 AND kind = ?2",
            params![fax.as_str(), doc.kind.as_str()],
        )?;
    }
    let seq = if doc.kind == DocumentKind::Original {
        seq
    } else {
        0
    };
    tx.execute(
        "INSERT INTO documents (id, fax_id, kind, seq, content_type, filename, size, sha256, pages, data, created, sealed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1)",
        params![
            id,
            fax.as_str(),
            doc.kind.as_str(),
            seq,
            doc.content_type,
            doc.filename,
            doc.bytes.len() as i64,
            hex::encode(Sha256::digest(&doc.bytes)),
            doc.pages,
            key.seal(Row::Document(&id), &doc.bytes),
            now()
        ],
    )?;
    Ok(id)
}

/// The row of a new outbound job, checked: it starts attaching its files or
/// pending, and it has a number to dial.
pub(super) fn new_outbox_fax(new: NewFax, status: JobStatus, t: UnixTime) -> Result<Fax> {
    if !matches!(status, JobStatus::AttachingFiles | JobStatus::Pending) {
        return Err(StoreError::Conflict(format!(
            "a new job cannot start as {status}"
        )));
    }
    if new.to_number_normalized.is_empty() {
        return Err(missing_number().into());
    }
    Ok(Fax {
        id: FaxId::new(),
        account_id: new.account_id,
        faxbox_id: new.faxbox_id,
        folder: Folder::Outbox,
        status: Some(status),
        to_number: new.to_number,
        to_number_normalized: new.to_number_normalized,
        to_name: new.to_name,
        from_number: new.from_number,
        from_name: new.from_name,
        fax_identity_number: new.fax_identity_number,
        fax_identity_name: new.fax_identity_name,
        fax_timezone: new.fax_timezone,
        retries: new.retries.min(4),
        attempts: 0,
        retry_after: 0,
        // A time already past means now.
        due_at: new.send_at.map_or(t, |at| at.max(t)),
        send_at: new.send_at,
        priority: new.priority,
        notify_email: new.notify_email,
        subject: new.subject,
        cover_page: new.cover_page,
        cover_note: new.cover_note,
        error: None,
        rx_result: None,
        batch_id: None,
        created: t,
        modified: t,
    })
}

impl Store {
    /// Keeps a client's own fields on a fax (Monster UI's `ui_metadata`),
    /// beside the fields Faxbox models, in the fax's JSON document.
    pub fn set_fax_extra(
        &self,
        id: &FaxId,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE faxes SET doc = json_set(doc, '$.extra', json(?2)) WHERE id = ?1",
                params![id.as_str(), to_json(extra)],
            )
            .changed("fax", id)
        })
    }

    /// A fax's own client fields (empty when it has none).
    pub fn fax_extra(&self, id: &FaxId) -> Result<serde_json::Map<String, serde_json::Value>> {
        let text: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT json_extract(doc, '$.extra') FROM faxes WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Drops a finished or received fax's documents and keeps its record
    /// (Kazoo's `DELETE .../attachment`). A fax still to be sent keeps its
    /// documents: without them it could not be sent.
    pub fn delete_documents(&self, id: &FaxId) -> Result<usize> {
        let deleted = self.write(|tx| {
            let fax = load_fax(tx, id)?;
            if fax.status == Some(JobStatus::Processing) {
                return Err(on_a_call(id));
            }
            if fax.status.is_some_and(|s| !s.is_terminal()) {
                return Err(StoreError::Conflict(format!(
                    "fax {id} is still to be sent and needs its documents; cancel it first"
                )));
            }
            // The mails that carried the fax as a PDF go with its documents.
            tx.execute("DELETE FROM mail_queue WHERE fax_id = ?1", [id.as_str()])?;
            Ok(tx.execute("DELETE FROM documents WHERE fax_id = ?1", [id.as_str()])?)
        })?;
        self.scrub();
        Ok(deleted)
    }
}

/// Why a fax on a line cannot be deleted, and what to do instead.
fn on_a_call(id: &FaxId) -> StoreError {
    StoreError::Conflict(format!(
        "fax {id} is on a call right now and cannot be deleted; cancel it first \
         (`faxbox jobs cancel {id}`, or PUT .../faxes/outgoing/{id} with \
         {{\"action\":\"cancel\"}}) and delete it once the call has ended"
    ))
}

fn missing_number() -> crate::model::FieldError {
    crate::model::FieldError::new("to_number", "required", "a fax needs a number to send to")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;
    use std::sync::{Arc, Barrier};

    fn new_fax(account: &AccountId, number: &str, retries: u8) -> NewFax {
        NewFax {
            account_id: account.clone(),
            to_number: number.into(),
            to_number_normalized: format!("+1{number}"),
            retries,
            ..Default::default()
        }
    }

    /// A job of `account` to `number` with no documents yet and three
    /// tries, in `status`.
    fn queue_job(store: &Store, account: &AccountId, number: &str, status: JobStatus) -> Fax {
        store
            .create_job(new_fax(account, number, 3), vec![], status)
            .unwrap()
    }

    #[test]
    fn the_dispatchers_due_query_reads_an_index_range_without_sorting() {
        let (_dir, store) = temp_store();
        crate::store::listing::assert_indexed(&store, DUE_JOBS_OF_PRIORITY);
        crate::store::listing::assert_indexed(&store, NEXT_DUE_AT);
    }

    fn tiff_doc() -> NewDocument {
        NewDocument {
            kind: DocumentKind::FaxTiff,
            content_type: "image/tiff".into(),
            filename: "fax_file.tiff".into(),
            pages: Some(2),
            bytes: b"II*\0 pretend".to_vec(),
        }
    }

    fn end(outcome: AttemptOutcome, next: NextStep) -> AttemptEnd {
        AttemptEnd {
            outcome,
            stage: AttemptStage::End,
            report: AttemptReport {
                result_code: Some(if outcome == AttemptOutcome::Success {
                    0
                } else {
                    48
                }),
                result_text: Some("test".into()),
                ..Default::default()
            },
            next,
            retries: None,
        }
    }

    #[test]
    fn a_job_and_its_documents_are_stored_together() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let fax = store
            .create_job(
                new_fax(&a, "5551230000", 3),
                vec![tiff_doc()],
                JobStatus::Pending,
            )
            .unwrap();
        let docs = store.documents(&fax.id).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].size, 12);
        assert_eq!(store.document_bytes(&docs[0].id).unwrap(), b"II*\0 pretend");
        // A job for an unknown account writes nothing at all.
        let ghost = AccountId::from("ghost");
        assert!(
            store
                .create_job(
                    new_fax(&ghost, "1", 1),
                    vec![tiff_doc()],
                    JobStatus::Pending
                )
                .is_err()
        );
        assert_eq!(store.faxes(&JobFilter::default()).unwrap().len(), 1);
    }

    #[test]
    fn each_legal_transition_works() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;

        // attaching_files -> pending -> processing -> completed
        let f = queue_job(&store, &a, "1", JobStatus::AttachingFiles);
        assert_eq!(
            store
                .attach_documents(&f.id, vec![tiff_doc()])
                .unwrap()
                .status,
            Some(JobStatus::Pending)
        );
        let (_, attempt) = store.claim(&f.id, "loopback").unwrap().unwrap();
        assert_eq!(attempt.number, 1);
        let done = store
            .finish_attempt(attempt.id, end(AttemptOutcome::Success, NextStep::Complete))
            .unwrap();
        assert_eq!(
            (done.status, done.attempts),
            (Some(JobStatus::Completed), 1)
        );

        // attaching_files -> failed; attaching_files -> cancelled
        let f = queue_job(&store, &a, "2", JobStatus::AttachingFiles);
        let failed = store.fail_unsent_job(&f.id, "this PDF is damaged").unwrap();
        assert_eq!(
            (failed.status, failed.error.as_deref()),
            (Some(JobStatus::Failed), Some("this PDF is damaged"))
        );
        let f = queue_job(&store, &a, "3", JobStatus::AttachingFiles);
        assert_eq!(
            store.cancel_job(&f.id, "by user").unwrap().status,
            Some(JobStatus::Cancelled)
        );

        // pending -> cancelled
        let f = queue_job(&store, &a, "4", JobStatus::Pending);
        assert_eq!(
            store.cancel_job(&f.id, "by user").unwrap().status,
            Some(JobStatus::Cancelled)
        );

        // processing -> pending (retry) -> processing -> failed (no retry can fix)
        let f = queue_job(&store, &a, "5", JobStatus::Pending);
        let (_, at) = store.claim(&f.id, "loopback").unwrap().unwrap();
        let retry = store
            .finish_attempt(
                at.id,
                end(AttemptOutcome::Failure, NextStep::Retry { after_s: 120 }),
            )
            .unwrap();
        assert_eq!(
            (retry.status, retry.attempts, retry.retry_after),
            (Some(JobStatus::Pending), 1, 120)
        );
        assert!(retry.due_at >= now() + 119);
        // Not due yet: nobody may start it.
        assert!(store.due_jobs(now(), 10).unwrap().is_empty());
        store.retry_now(&f.id).unwrap();
        let (_, at2) = store.claim(&f.id, "loopback").unwrap().unwrap();
        assert_eq!(at2.number, 2);
        let failed = store
            .finish_attempt(
                at2.id,
                end(
                    AttemptOutcome::Failure,
                    NextStep::Fail {
                        reason: "invalid number".into(),
                    },
                ),
            )
            .unwrap();
        assert_eq!(failed.status, Some(JobStatus::Failed));
        assert_eq!(store.attempts(&f.id).unwrap().len(), 2);

        // processing -> cancelled
        let f = queue_job(&store, &a, "6", JobStatus::Pending);
        let (_, at) = store.claim(&f.id, "loopback").unwrap().unwrap();
        let c = store
            .finish_attempt(
                at.id,
                end(
                    AttemptOutcome::Cancelled,
                    NextStep::Cancel {
                        reason: "operator".into(),
                    },
                ),
            )
            .unwrap();
        assert_eq!((c.status, c.attempts), (Some(JobStatus::Cancelled), 0));
    }

    #[test]
    fn cancel_of_a_job_on_a_line_is_requested_then_recorded() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let waiting = queue_job(&store, &a, "1", JobStatus::Pending);
        assert!(store.request_cancel(&waiting.id, "by operator").unwrap());
        assert_eq!(
            store.fax(&waiting.id).unwrap().status,
            Some(JobStatus::Cancelled)
        );

        let busy = queue_job(&store, &a, "2", JobStatus::Pending);
        let (_, at) = store.claim(&busy.id, "l").unwrap().unwrap();
        assert!(!store.cancel_requested(&busy.id).unwrap());
        assert!(!store.request_cancel(&busy.id, "by operator").unwrap());
        assert!(store.cancel_requested(&busy.id).unwrap());
        assert_eq!(
            store.fax(&busy.id).unwrap().status,
            Some(JobStatus::Processing)
        );
        let done = store
            .finish_attempt(
                at.id,
                end(
                    AttemptOutcome::Cancelled,
                    NextStep::Cancel {
                        reason: "by operator".into(),
                    },
                ),
            )
            .unwrap();
        assert_eq!(done.status, Some(JobStatus::Cancelled));
        assert!(!store.cancel_requested(&busy.id).unwrap());
    }

    #[test]
    fn retries_are_a_total_attempt_budget() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let f = store
            .create_job(new_fax(&a, "1", 2), vec![], JobStatus::Pending)
            .unwrap();
        for expected in [JobStatus::Pending, JobStatus::Failed] {
            store.retry_now(&f.id).ok();
            let (_, at) = store.claim(&f.id, "l").unwrap().unwrap();
            let after = store
                .finish_attempt(
                    at.id,
                    end(AttemptOutcome::Failure, NextStep::Retry { after_s: 0 }),
                )
                .unwrap();
            assert_eq!(after.status, Some(expected));
        }
        let f = store.fax(&f.id).unwrap();
        assert_eq!(f.attempts, 2);
        assert!(f.error.unwrap().contains("after 2 attempts"));
        // retries 0 behaves like 1 (docs/kazoo.md 5.1).
        let g = store
            .create_job(new_fax(&a, "2", 0), vec![], JobStatus::Pending)
            .unwrap();
        let (_, at) = store.claim(&g.id, "l").unwrap().unwrap();
        let after = store
            .finish_attempt(
                at.id,
                end(AttemptOutcome::Failure, NextStep::Retry { after_s: 0 }),
            )
            .unwrap();
        assert_eq!(after.status, Some(JobStatus::Failed));
    }

    #[test]
    fn illegal_transitions_are_refused_and_change_nothing() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let f = queue_job(&store, &a, "1", JobStatus::Pending);
        // pending cannot take documents as if attaching, nor fail unsent.
        assert!(matches!(
            store.attach_documents(&f.id, vec![tiff_doc()]),
            Err(StoreError::IllegalTransition { .. })
        ));
        assert!(store.documents(&f.id).unwrap().is_empty());
        assert!(matches!(
            store.fail_unsent_job(&f.id, "x"),
            Err(StoreError::IllegalTransition { .. })
        ));
        // A job cannot be created already processing or completed.
        assert!(
            store
                .create_job(new_fax(&a, "2", 3), vec![], JobStatus::Completed)
                .is_err()
        );
        // Once terminal, nothing moves it.
        let (_, at) = store.claim(&f.id, "l").unwrap().unwrap();
        assert!(matches!(
            store.cancel_job(&f.id, "x"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.delete_fax(&f.id),
            Err(StoreError::Conflict(_))
        ));
        store
            .finish_attempt(at.id, end(AttemptOutcome::Success, NextStep::Complete))
            .unwrap();
        assert!(store.claim(&f.id, "l").unwrap().is_none());
        assert!(matches!(
            store.cancel_job(&f.id, "x"),
            Err(StoreError::IllegalTransition { .. })
        ));
        assert!(matches!(
            store.retry_now(&f.id),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.finish_attempt(at.id, end(AttemptOutcome::Success, NextStep::Complete)),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.fax(&f.id).unwrap().status, Some(JobStatus::Completed));
        // A finished job can be resubmitted as a new one with its documents.
        let g = store
            .create_job(new_fax(&a, "3", 3), vec![tiff_doc()], JobStatus::Pending)
            .unwrap();
        assert!(store.resubmit(&g.id).is_err());
        store.cancel_job(&g.id, "x").unwrap();
        let again = store.resubmit(&g.id).unwrap();
        assert_ne!(again.id, g.id);
        assert_eq!(
            (again.status, again.attempts),
            (Some(JobStatus::Pending), 0)
        );
        assert_eq!(store.documents(&again.id).unwrap().len(), 1);
    }

    #[test]
    fn two_threads_claiming_one_job_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).unwrap();
        let a = store.create_account("Acme", None).unwrap().id;
        for round in 0..20 {
            let f = queue_job(&store, &a, &round.to_string(), JobStatus::Pending);
            let barrier = Arc::new(Barrier::new(2));
            let winners: Vec<bool> = (0..2)
                .map(|i| {
                    // Each thread has its own connection to the same file.
                    let other = Store::open_data_dir(dir.path()).unwrap();
                    let (barrier, id) = (barrier.clone(), f.id.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        other.claim(&id, &format!("line{i}")).unwrap().is_some()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect();
            assert_eq!(
                winners.iter().filter(|w| **w).count(),
                1,
                "round {round}: {winners:?}"
            );
            assert_eq!(store.attempts(&f.id).unwrap().len(), 1);
        }
    }

    #[test]
    fn eligibility_by_due_time_account_and_number() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let b = store.create_account("Other", None).unwrap().id;
        let f1 = queue_job(&store, &a, "5550001", JobStatus::Pending);
        let f2 = queue_job(&store, &b, "5550001", JobStatus::Pending);
        let f3 = queue_job(&store, &a, "5550002", JobStatus::AttachingFiles);
        let due: Vec<FaxId> = store
            .due_jobs(now(), 10)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(due, vec![f1.id.clone(), f2.id.clone()]);
        assert_eq!(store.due_jobs(now(), 1).unwrap().len(), 1);
        assert_eq!(store.next_due_at().unwrap(), Some(f1.due_at.min(f2.due_at)));

        let (_, at) = store.claim(&f1.id, "l").unwrap().unwrap();
        assert_eq!(store.active_jobs(&a).unwrap(), 1);
        assert_eq!(store.active_jobs(&b).unwrap(), 0);
        assert!(store.number_is_active("+15550001").unwrap());
        assert!(!store.number_is_active("+15550002").unwrap());
        // A retry due in an hour is not eligible now, and sets the wake-up.
        store
            .finish_attempt(
                at.id,
                end(AttemptOutcome::Failure, NextStep::Retry { after_s: 3600 }),
            )
            .unwrap();
        let due: Vec<FaxId> = store
            .due_jobs(now(), 10)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(due, vec![f2.id.clone()]);
        assert!(
            store
                .due_jobs(now() + 3601, 10)
                .unwrap()
                .iter()
                .any(|d| d.id == f1.id)
        );
        assert!(!store.number_is_active("+15550001").unwrap());
        assert!(
            !store
                .due_jobs(now() + 3601, 10)
                .unwrap()
                .iter()
                .any(|d| d.id == f3.id)
        );
    }

    #[test]
    fn due_jobs_go_high_first_send_at_waits_and_window_holds_are_released() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let desk = store
            .create_faxbox(
                &a,
                crate::model::FaxboxFields {
                    name: Some("Desk".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let t = now();
        let queue = |number: &str, priority: Priority, send_at: Option<UnixTime>| {
            let new = NewFax {
                faxbox_id: Some(desk.id.clone()),
                priority,
                send_at,
                ..new_fax(&a, number, 3)
            };
            store.create_job(new, vec![], JobStatus::Pending).unwrap()
        };
        let normal = queue("1", Priority::Normal, None);
        let low = queue("2", Priority::Low, None);
        let later = queue("3", Priority::High, Some(t + 3600));
        let high = queue("4", Priority::High, None);
        let past = queue("5", Priority::Normal, Some(t - 3600));
        assert_eq!((later.due_at, later.send_at), (t + 3600, Some(t + 3600)));
        // "Now" is the time the fax was taken in, which may be a second
        // after `t` when the clock ticked during the inserts.
        assert_eq!(past.due_at, past.created, "a send_at past means now");
        let t = now();
        assert_eq!(store.fax(&high.id).unwrap().priority, Priority::High);
        let ids = |at: UnixTime| -> Vec<FaxId> {
            store
                .due_jobs(at, 10)
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect()
        };
        assert_eq!(
            ids(t),
            vec![
                high.id.clone(),
                normal.id.clone(),
                past.id.clone(),
                low.id.clone()
            ]
        );
        assert_eq!(
            ids(t + 3600)[..2],
            [high.id.clone(), later.id.clone()],
            "once due, a high fax goes before normal ones, after older high ones"
        );

        // A window hold moves the due time; a change of windows releases it.
        assert!(store.hold_for_window(&normal.id, t + 600).unwrap());
        assert!(!ids(t).contains(&normal.id));
        assert_eq!(store.fax(&normal.id).unwrap().due_at, t + 600);
        store
            .update_faxbox(
                &desk.id,
                crate::model::FaxboxFields {
                    sending_windows: Some(vec!["mon-sun 00:00-24:00".into()]),
                    ..Default::default()
                },
                super::super::UpdateMode::Merge,
            )
            .unwrap();
        assert!(ids(now()).contains(&normal.id));
        // Not the send-later fax: it was not held by a window.
        assert_eq!(store.fax(&later.id).unwrap().due_at, later.send_at.unwrap());
        // A claimed job is held no more; the flag does not outlive it.
        store.claim(&normal.id, "l").unwrap().unwrap();
        assert!(!store.hold_for_window(&normal.id, t + 600).unwrap());
    }

    /// A fax of two pages on a line, `pages_sent` of them confirmed: what
    /// a stop in the middle of a call leaves for recovery.
    fn on_a_line(
        store: &Store,
        account: &AccountId,
        number: &str,
        pages_sent: u32,
    ) -> (Fax, Attempt) {
        let f = store
            .create_job(
                new_fax(account, number, 3),
                vec![tiff_doc()],
                JobStatus::Pending,
            )
            .unwrap();
        let (_, at) = store.claim(&f.id, "loopback").unwrap().unwrap();
        let report = AttemptReport {
            pages_sent,
            pages_total: 2,
            ..Default::default()
        };
        store
            .update_attempt(at.id, AttemptStage::Send, &report)
            .unwrap();
        (f, at)
    }

    #[test]
    fn recovery_after_a_crash_requeues_and_records_the_interruption() {
        let dir = tempfile::tempdir().unwrap();
        let (fax_id, other_id) = {
            let store = Store::open_data_dir(dir.path()).unwrap();
            let a = store.create_account("Acme", None).unwrap().id;
            let (f, _) = on_a_line(&store, &a, "1", 1);
            let g = queue_job(&store, &a, "2", JobStatus::AttachingFiles);
            // The process dies here: the store is dropped mid-call.
            (f.id, g.id)
        };
        let store = Store::open_data_dir(dir.path()).unwrap();
        let report = store.recover().unwrap();
        assert_eq!(report.requeued, vec![fax_id.clone()]);
        assert_eq!(report.attaching, vec![other_id]);
        let fax = store.fax(&fax_id).unwrap();
        assert_eq!((fax.status, fax.attempts), (Some(JobStatus::Pending), 0));
        let attempts = store.attempts(&fax_id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Interrupted));
        assert_eq!(attempts[0].stage, AttemptStage::Send);
        assert_eq!(attempts[0].report.pages_sent, 1);
        assert!(attempts[0].ended.is_some());
        assert_eq!(store.due_jobs(now(), 10).unwrap().len(), 1);
        // Recovery twice is harmless.
        assert_eq!(store.recover().unwrap().requeued, Vec::<FaxId>::new());
        // Restarts are not the fax's fault: it is never failed for them
        // and uses none of its retries (issue 19).
        for _ in 0..5 {
            store.claim(&fax_id, "loopback").unwrap().unwrap();
            store.recover().unwrap();
        }
        let fax = store.fax(&fax_id).unwrap();
        assert_eq!((fax.status, fax.attempts), (Some(JobStatus::Pending), 0));
        assert_eq!(store.attempts(&fax_id).unwrap().len(), 6);
    }

    #[test]
    fn recovery_completes_a_fax_whose_pages_were_all_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let fax_id = {
            let store = Store::open_data_dir(dir.path()).unwrap();
            let a = store.create_account("Acme", None).unwrap().id;
            let (f, _) = on_a_line(&store, &a, "1", 2);
            // The process dies before the call is torn down.
            f.id
        };
        let store = Store::open_data_dir(dir.path()).unwrap();
        let report = store.recover().unwrap();
        assert_eq!(report.completed, vec![fax_id.clone()]);
        assert!(report.requeued.is_empty());
        let fax = store.fax(&fax_id).unwrap();
        assert_eq!((fax.status, fax.attempts), (Some(JobStatus::Completed), 1));
        let attempts = store.attempts(&fax_id).unwrap();
        assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Success));
        assert!(
            attempts[0]
                .report
                .result_text
                .as_deref()
                .is_some_and(|t| t.contains("completed at recovery")),
            "{attempts:?}"
        );
        assert!(store.due_jobs(now(), 10).unwrap().is_empty());
        assert!(store.open_attempts().unwrap().is_empty());
    }

    #[test]
    fn recovery_leaves_a_fax_whose_last_page_was_not_confirmed_to_its_sender() {
        let dir = tempfile::tempdir().unwrap();
        let (sent_last, cut_earlier) = {
            let store = Store::open_data_dir(dir.path()).unwrap();
            let a = store.create_account("Acme", None).unwrap().id;
            let mut open = Vec::new();
            for number in ["1", "2"] {
                let (f, at) = on_a_line(&store, &a, number, 1);
                open.push((f.id, at.id));
            }
            // The first sent its last page; the process dies before the far
            // end's answer is heard. The second was still on page 2.
            store.last_page_sent(open[0].1).unwrap();
            (open[0].0.clone(), open[1].0.clone())
        };
        let store = Store::open_data_dir(dir.path()).unwrap();
        let report = store.recover().unwrap();
        assert_eq!(report.unconfirmed, vec![sent_last.clone()]);
        assert_eq!(report.requeued, vec![cut_earlier.clone()]);
        assert!(report.completed.is_empty());

        // Not sent again on its own: failed, with what to do in its error.
        let fax = store.fax(&sent_last).unwrap();
        assert_eq!(fax.status, Some(JobStatus::Failed));
        assert_eq!(fax.error.as_deref(), Some(UNCONFIRMED));
        assert!(
            UNCONFIRMED.contains("probably arrived") && UNCONFIRMED.contains("faxbox jobs retry")
        );
        let attempts = store.attempts(&sent_last).unwrap();
        assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Interrupted));
        assert_eq!(attempts[0].report.pages_sent, 1);
        assert!(
            attempts[0]
                .report
                .result_text
                .as_deref()
                .is_some_and(|t| t.contains("before the far end confirmed it")),
            "{attempts:?}"
        );
        // The other is sent again, and only it.
        let due: Vec<FaxId> = store
            .due_jobs(now(), 10)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(due, vec![cut_earlier]);
        // Its sender can send it again once they know it did not arrive.
        let again = store.resubmit(&sent_last).unwrap();
        assert_eq!(again.status, Some(JobStatus::Pending));
        // Once the attempt is over the marker cannot be set.
        assert!(store.last_page_sent(attempts[0].id).is_err());
    }

    #[test]
    fn recovery_removes_documents_without_a_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::store::DATABASE_FILE);
        {
            let store = Store::open(&path).unwrap();
            let a = store.create_account("Acme", None).unwrap().id;
            store
                .create_job(new_fax(&a, "1", 3), vec![tiff_doc()], JobStatus::Pending)
                .unwrap();
        }
        {
            // Someone deletes the job with foreign keys off.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM faxes;")
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.recover().unwrap().orphan_documents, 1);
        let n: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
