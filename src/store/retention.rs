//! Retention (issue 23): a finished or received fax keeps its documents
//! `document_retention_days` and its record `record_retention_days` after
//! it ended (the box's value, or the account's own; 0 keeps them for ever).
//! The purge is told the time, so a test can move it on without sleeping.
//!
//! A fax still to be sent (waiting, retrying, on a line, being converted)
//! is never purged, however old: only faxes whose status is final, and
//! received faxes, are.
//!
//! The audit trail is kept by the same rules: an entry goes
//! `record_retention_days` after it was written (its account's value; the
//! box's for entries of no account or of an account since deleted).

use rusqlite::params;
use serde::Serialize;

use super::{Result, Store, select_all};
use crate::model::{AccountId, FaxId, UnixTime};

/// A fax's status in which the purge may touch it.
const FINISHED: &str = "(status IS NULL OR status IN ('completed', 'failed', 'cancelled'))";

/// Faxes deleted per transaction, so a large first purge does not hold the
/// database's write lock for long.
const BATCH: usize = 200;

const DAY: i64 = 86_400;

/// What a purge removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Faxes whose documents went (their records stay).
    pub documents: Vec<FaxId>,
    /// Faxes removed whole, with their documents and attempts.
    pub records: Vec<FaxId>,
    /// Sent mails that carried a fax, past the documents' time.
    pub mails: u64,
    /// Audit entries past the records' time.
    pub audit_entries: u64,
}

impl PurgeReport {
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
            && self.records.is_empty()
            && self.mails == 0
            && self.audit_entries == 0
    }
}

/// The purge's counts since the box was made, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeTotals {
    pub documents: u64,
    pub records: u64,
    pub mails: u64,
    pub audit_entries: u64,
}

impl Store {
    /// Removes what is past its time at `now` (or, with `dry_run`, only
    /// says what that is).
    pub fn purge(&self, now: UnixTime, dry_run: bool) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        let accounts: Vec<AccountId> = self.accounts()?.into_iter().map(|a| a.id).collect();
        for account in &accounts {
            let days = |key| self.setting_i64(Some(account), key);
            let (documents, records) = (
                days("document_retention_days")?,
                days("record_retention_days")?,
            );
            if records > 0 {
                report.audit_entries +=
                    self.purge_audit(Some(account), now - records * DAY, dry_run)?;
                let ids = self.finished_faxes(account, now - records * DAY, false)?;
                if !dry_run {
                    self.delete_finished(&ids, now - records * DAY, Part::Record)?;
                }
                report.records.extend(ids);
            }
            if documents > 0 {
                let ids: Vec<FaxId> = self
                    .finished_faxes(account, now - documents * DAY, true)?
                    .into_iter()
                    .filter(|id| !report.records.contains(id))
                    .collect();
                if !dry_run {
                    self.delete_finished(&ids, now - documents * DAY, Part::Documents)?;
                }
                report.documents.extend(ids);
                report.mails +=
                    self.purge_sent_mails(Some(account), now - documents * DAY, dry_run)?;
            }
        }
        // Mails of no account (the box's own reports) follow the box's value.
        let documents = self.setting_i64(None, "document_retention_days")?;
        if documents > 0 {
            report.mails += self.purge_sent_mails(None, now - documents * DAY, dry_run)?;
        }
        let records = self.setting_i64(None, "record_retention_days")?;
        if records > 0 {
            report.audit_entries += self.purge_audit(None, now - records * DAY, dry_run)?;
        }
        if !dry_run && !report.is_empty() {
            self.write(|tx| {
                tx.execute(
                    "INSERT INTO purges (at, documents, records, mails, audit_entries)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        now,
                        report.documents.len() as i64,
                        report.records.len() as i64,
                        report.mails as i64,
                        report.audit_entries as i64
                    ],
                )?;
                Ok(())
            })?;
            self.scrub();
        }
        Ok(report)
    }

    /// What the purges removed in all.
    pub fn purge_totals(&self) -> Result<PurgeTotals> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT COALESCE(SUM(documents), 0), COALESCE(SUM(records), 0),
                        COALESCE(SUM(mails), 0), COALESCE(SUM(audit_entries), 0) FROM purges",
                [],
                |r| {
                    Ok(PurgeTotals {
                        documents: r.get::<_, i64>(0)? as u64,
                        records: r.get::<_, i64>(1)? as u64,
                        mails: r.get::<_, i64>(2)? as u64,
                        audit_entries: r.get::<_, i64>(3)? as u64,
                    })
                },
            )?)
        })
    }

    /// An account's finished faxes that ended before `before`; with
    /// `with_documents`, only those that still have documents.
    fn finished_faxes(
        &self,
        account: &AccountId,
        before: UnixTime,
        with_documents: bool,
    ) -> Result<Vec<FaxId>> {
        let documents = if with_documents {
            "AND EXISTS (SELECT 1 FROM documents d WHERE d.fax_id = faxes.id)"
        } else {
            ""
        };
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT id FROM faxes WHERE account_id = ?1 AND modified < ?2 AND {FINISHED}
                 {documents} ORDER BY modified, id"
                ),
                params![account.as_str(), before],
                |r| Ok(FaxId(r.get(0)?)),
            )
        })
    }

    /// Deletes `part` of the faxes `ids`, checking again in each
    /// transaction that each is finished and past `before` (a fax sent
    /// again since the listing is not touched).
    fn delete_finished(&self, ids: &[FaxId], before: UnixTime, part: Part) -> Result<()> {
        for batch in ids.chunks(BATCH) {
            self.write(|tx| {
                for id in batch {
                    let past = format!(
                        "SELECT id FROM faxes WHERE id = ?1 AND modified < ?2 AND {FINISHED}"
                    );
                    let sql = match part {
                        Part::Record => format!("DELETE FROM faxes WHERE id IN ({past})"),
                        Part::Documents => {
                            tx.execute(
                                &format!("DELETE FROM mail_queue WHERE fax_id IN ({past})"),
                                params![id.as_str(), before],
                            )?;
                            format!("DELETE FROM documents WHERE fax_id IN ({past})")
                        }
                    };
                    tx.execute(&sql, params![id.as_str(), before])?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// How many rows of `table` a purge deleting those `filter` picks for
    /// (account, before) would remove: what a dry run reports.
    fn count_purgeable(
        &self,
        table: &str,
        filter: &str,
        account: Option<&str>,
        before: UnixTime,
    ) -> Result<u64> {
        self.read(|conn| {
            Ok(conn.query_row(
                &format!("SELECT count(*) FROM {table} WHERE {filter}"),
                params![account, before],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// Audit entries of `account` written before `before`; with `None`,
    /// those of no account or of an account that no longer exists. The
    /// schema lets a delete through only below the time `audit_purge`
    /// names, in this transaction.
    fn purge_audit(
        &self,
        account: Option<&AccountId>,
        before: UnixTime,
        dry_run: bool,
    ) -> Result<u64> {
        let filter = "at < ?2 AND CASE WHEN ?1 IS NULL
                THEN account_id IS NULL OR account_id NOT IN (SELECT id FROM accounts)
                ELSE account_id = ?1 END";
        let account = account.map(AccountId::as_str);
        if dry_run {
            return self.count_purgeable("audit", filter, account, before);
        }
        self.write(|tx| {
            tx.execute("INSERT INTO audit_purge (before) VALUES (?1)", [before])?;
            let n = tx.execute(
                &format!("DELETE FROM audit WHERE {filter}"),
                params![account, before],
            )?;
            tx.execute("DELETE FROM audit_purge", [])?;
            Ok(n as u64)
        })
    }

    /// Sent mails of `account` (or of no account) sent before `before`,
    /// and those set aside then as unopenable: they carry faxes as PDFs.
    /// Mails still waiting to go are kept.
    fn purge_sent_mails(
        &self,
        account: Option<&AccountId>,
        before: UnixTime,
        dry_run: bool,
    ) -> Result<u64> {
        let filter = "(sent_at < ?2 OR failed_at < ?2) AND account_id IS ?1";
        let account = account.map(AccountId::as_str);
        if dry_run {
            return self.count_purgeable("mail_queue", filter, account, before);
        }
        self.write(|tx| {
            Ok(tx.execute(
                &format!("DELETE FROM mail_queue WHERE {filter}"),
                params![account, before],
            )? as u64)
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Record,
    Documents,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AttemptOutcome, AttemptReport, AttemptStage, DocumentKind, FaxboxFields, JobStatus,
        NewDocument, NewFax, NewReceivedFax, Reception, now,
    };
    use crate::store::testing::temp_store;
    use crate::store::{AttemptEnd, NextStep};

    fn doc() -> NewDocument {
        NewDocument {
            kind: DocumentKind::Original,
            content_type: "application/pdf".into(),
            filename: "letter.pdf".into(),
            pages: Some(1),
            bytes: b"%PDF-1.4 a letter".to_vec(),
        }
    }

    fn job(store: &Store, account: &AccountId, status: JobStatus) -> FaxId {
        store
            .create_job(
                NewFax {
                    account_id: account.clone(),
                    to_number: "5551234".into(),
                    to_number_normalized: "+15551234".into(),
                    retries: 3,
                    ..Default::default()
                },
                vec![doc()],
                status,
            )
            .unwrap()
            .id
    }

    /// Every kind of fax an account can have, by what the purge may do.
    struct Faxes {
        /// Completed, failed, cancelled and received.
        finished: Vec<FaxId>,
        /// Pending, retrying, on a line, being converted.
        unfinished: Vec<FaxId>,
    }

    fn every_kind(store: &Store, account: &AccountId) -> Faxes {
        let attempt_end = |outcome, next| AttemptEnd {
            outcome,
            stage: AttemptStage::End,
            report: AttemptReport::default(),
            next,
            retries: None,
        };
        let completed = job(store, account, JobStatus::Pending);
        let (_, a) = store.claim(&completed, "loopback").unwrap().unwrap();
        store
            .finish_attempt(
                a.id,
                attempt_end(AttemptOutcome::Success, NextStep::Complete),
            )
            .unwrap();
        let failed = job(store, account, JobStatus::AttachingFiles);
        store.fail_unsent_job(&failed, "damaged").unwrap();
        let cancelled = job(store, account, JobStatus::Pending);
        store.cancel_job(&cancelled, "by user").unwrap();
        let faxbox = store
            .create_faxbox(
                account,
                FaxboxFields {
                    name: Some("Front desk".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let call = format!("call-{account}");
        store
            .begin_reception(&Reception {
                call_id: call.clone(),
                line: "loopback".into(),
                account_id: account.clone(),
                faxbox_id: faxbox.id.clone(),
                from_number: "5550001".into(),
                to_number: "5550100".into(),
                tiff: "/nowhere.tif".into(),
                started: now(),
            })
            .unwrap();
        let received = store
            .end_reception(
                &call,
                Some((
                    NewReceivedFax {
                        id: FaxId(crate::model::new_id()),
                        account_id: account.clone(),
                        faxbox_id: faxbox.id,
                        from_number: "5550001".into(),
                        from_name: None,
                        to_number: "5550100".into(),
                        rx_result: Default::default(),
                    },
                    vec![doc()],
                )),
                None,
            )
            .unwrap()
            .unwrap()
            .id;

        let pending = job(store, account, JobStatus::Pending);
        let retrying = job(store, account, JobStatus::Pending);
        let (_, a) = store.claim(&retrying, "loopback").unwrap().unwrap();
        store
            .finish_attempt(
                a.id,
                attempt_end(AttemptOutcome::Failure, NextStep::Retry { after_s: 60 }),
            )
            .unwrap();
        let on_a_line = job(store, account, JobStatus::Pending);
        store.claim(&on_a_line, "loopback").unwrap().unwrap();
        let converting = job(store, account, JobStatus::AttachingFiles);
        Faxes {
            finished: vec![completed, failed, cancelled, received],
            unfinished: vec![pending, retrying, on_a_line, converting],
        }
    }

    fn sorted(mut ids: Vec<FaxId>) -> Vec<FaxId> {
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    }

    #[test]
    fn a_purge_removes_exactly_what_is_past_its_time_and_nothing_still_to_be_sent() {
        let (_dir, store) = temp_store();
        let strict = store.create_account("Clinic", None).unwrap().id;
        let lenient = store.create_account("Law office", None).unwrap().id;
        let forever = store.create_account("Archive", None).unwrap().id;
        // The box: documents 20 days, records for ever; the clinic: 10 and
        // 30; the archive keeps everything.
        store
            .set_setting(None, "document_retention_days", 20.into())
            .unwrap();
        store
            .set_setting(Some(&strict), "document_retention_days", 10.into())
            .unwrap();
        store
            .set_setting(Some(&strict), "record_retention_days", 30.into())
            .unwrap();
        store
            .set_setting(Some(&forever), "document_retention_days", 0.into())
            .unwrap();
        let (s, l, f) = (
            every_kind(&store, &strict),
            every_kind(&store, &lenient),
            every_kind(&store, &forever),
        );
        // A receipt the law office was sent, and one still waiting to go.
        let to = ["clerk@law.test".to_owned()];
        let sent = store
            .enqueue_mail(Some(&lenient), &to, b"Subject: sent\r\n\r\nfax")
            .unwrap();
        store.mail_sent(sent).unwrap();
        store
            .enqueue_mail(Some(&lenient), &to, b"Subject: waiting\r\n\r\nfax")
            .unwrap();
        let t0 = now();
        let day = |n: i64| t0 + n * DAY + 1;
        let has_documents = |id: &FaxId| !store.documents(id).unwrap().is_empty();

        assert!(store.purge(day(9), false).unwrap().is_empty());

        // Day 11, dry: the clinic's finished faxes would lose their
        // documents; nothing changes.
        let dry = store.purge(day(11), true).unwrap();
        assert_eq!(sorted(dry.documents.clone()), sorted(s.finished.clone()));
        assert!(dry.records.is_empty());
        assert!(s.finished.iter().all(has_documents));
        assert_eq!(store.purge_totals().unwrap(), PurgeTotals::default());

        let done = store.purge(day(11), false).unwrap();
        assert_eq!(done, dry);
        assert!(!s.finished.iter().any(has_documents));
        for id in s.finished.iter() {
            store.fax(id).unwrap();
        }

        // Day 21: the law office's, by the box's value.
        let done = store.purge(day(21), false).unwrap();
        assert_eq!(sorted(done.documents), sorted(l.finished.clone()));
        assert!(done.records.is_empty());
        assert_eq!(done.mails, 1, "the sent mail goes, the waiting one stays");
        assert_eq!(store.unsent_mail_count().unwrap(), 1);

        // Day 31: the clinic's records.
        let done = store.purge(day(31), false).unwrap();
        assert_eq!(sorted(done.records), sorted(s.finished.clone()));
        assert!(done.documents.is_empty());
        for id in &s.finished {
            assert!(store.fax(id).is_err(), "{id} is gone");
            assert!(store.attempts(id).unwrap().is_empty());
        }

        // Years on: nothing still to be sent was touched, nor the archive.
        assert!(store.purge(day(5000), false).unwrap().is_empty());
        for id in s
            .unfinished
            .iter()
            .chain(&l.unfinished)
            .chain(&f.unfinished)
        {
            assert!(has_documents(id), "{id} keeps its documents");
            assert!(!store.fax(id).unwrap().status.unwrap().is_terminal());
        }
        assert!(l.finished.iter().all(|id| store.fax(id).is_ok()));
        assert!(f.finished.iter().all(has_documents));

        assert_eq!(
            store.purge_totals().unwrap(),
            PurgeTotals {
                documents: 8,
                records: 4,
                mails: 1,
                audit_entries: 0
            }
        );
    }

    /// Issue 23: the audit trail is kept by the retention rules. On a
    /// paused clock (the purge is told the time), entries go exactly when
    /// their account's `record_retention_days` (or the box's, for entries
    /// of no account or of a deleted one) has passed; nothing else may
    /// delete one.
    #[test]
    fn a_purge_removes_audit_entries_past_the_records_time() {
        use crate::store::AuditEvent;
        let (_dir, store) = temp_store();
        let strict = store.create_account("Clinic", None).unwrap().id;
        let lenient = store.create_account("Law office", None).unwrap().id;
        let gone = store.create_account("Closed", None).unwrap().id;
        store
            .set_setting(Some(&strict), "record_retention_days", 30.into())
            .unwrap();
        let record = |account: Option<&AccountId>, action: &str| {
            store
                .audit(AuditEvent {
                    account,
                    actor: "console",
                    action,
                    object: "faxes/outbox/1",
                    source: "console",
                })
                .unwrap()
        };
        record(Some(&strict), "read");
        record(Some(&lenient), "read");
        record(Some(&gone), "read");
        record(None, "purge");
        store.delete_account(&gone).unwrap();
        let t0 = now();
        let day = |n: i64| t0 + n * DAY + 1;
        let actions = |account: Option<&AccountId>| store.audit_trail(account, 100).unwrap().len();

        assert_eq!(store.purge(day(29), false).unwrap().audit_entries, 0);
        let dry = store.purge(day(31), true).unwrap();
        assert_eq!(dry.audit_entries, 1);
        assert_eq!(actions(Some(&strict)), 1, "a dry run changes nothing");
        assert_eq!(store.purge(day(31), false).unwrap().audit_entries, 1);
        assert_eq!(actions(Some(&strict)), 0);
        assert_eq!(actions(None), 3, "the box keeps the others for ever");

        // The box's value: the law office's, the closed account's and the
        // box's own entries, once it has passed.
        store
            .set_setting(None, "record_retention_days", 400.into())
            .unwrap();
        assert_eq!(store.purge(day(399), false).unwrap().audit_entries, 0);
        let done = store.purge(day(401), false).unwrap();
        assert_eq!(done.audit_entries, 3);
        assert_eq!(actions(None), 0);
        assert_eq!(store.purge_totals().unwrap().audit_entries, 4);

        // Outside a purge, the trail is still append-only.
        record(Some(&lenient), "read");
        let conn = rusqlite::Connection::open(store.path()).unwrap();
        assert!(conn.execute("DELETE FROM audit", []).is_err());
        assert_eq!(actions(None), 1);
    }

    /// `fax_counts` (what `/v2/status` reads, issue 27) against a count of
    /// the faxes, after every path that adds, changes or removes one.
    #[test]
    fn fax_counts_follow_every_insert_change_and_delete() {
        use crate::store::status::assert_counts_agree;
        let (_dir, store) = temp_store();
        let clinic = store.create_account("Clinic", None).unwrap().id;
        let law = store.create_account("Law office", None).unwrap().id;
        store
            .set_setting(Some(&clinic), "record_retention_days", 30.into())
            .unwrap();
        let c = every_kind(&store, &clinic);
        let l = every_kind(&store, &law);
        assert_counts_agree(&store);

        store.retry_now(&c.unfinished[1]).unwrap();
        store.cancel_job(&l.unfinished[0], "by user").unwrap();
        store.recover().unwrap();
        assert_counts_agree(&store);

        let done = store.purge(now() + 31 * DAY + 1, false).unwrap();
        assert!(!done.records.is_empty(), "the purge removed records");
        assert_counts_agree(&store);

        store.delete_fax(&c.unfinished[0]).unwrap();
        store.delete_fax(&l.finished[0]).unwrap();
        assert_counts_agree(&store);

        store.delete_account(&law).unwrap();
        assert_counts_agree(&store);
        let left: i64 = store
            .read(|conn| Ok(conn.query_row("SELECT SUM(n) FROM fax_counts", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(
            left as usize,
            c.unfinished.len() - 1,
            "the clinic's unfinished faxes"
        );
    }
}
