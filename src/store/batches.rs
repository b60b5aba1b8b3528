//! Batches (issue 22): the fax jobs made from one request to several
//! numbers (the API's `to_numbers`, several RCPT TO in one email, several
//! `destination-uris` in one print job). Each job keeps its own state,
//! attempts and receipt; the batch groups them for a summary and for one
//! combined receipt, queued in the same transaction that records it as
//! queued, so it goes exactly once when the last job of the batch ends.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError, mail, select_all};
use crate::model::{AccountId, BatchId, Fax, FaxId, FaxboxId, JobStatus, UnixTime, now};

/// One fax of a batch, as its summary shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFax {
    pub id: FaxId,
    pub to_number: String,
    pub to_name: Option<String>,
    pub status: JobStatus,
    pub attempts: u8,
    /// Why it failed or was cancelled, when it did.
    pub error: Option<String>,
    pub modified: UnixTime,
}

/// A batch and its faxes, in the order the request named the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: BatchId,
    pub account_id: AccountId,
    pub faxbox_id: Option<FaxboxId>,
    pub created: UnixTime,
    /// When its combined receipt was queued (or found to have nobody to go
    /// to): set once, when the last fax ended.
    pub receipt_queued: Option<UnixTime>,
    pub faxes: Vec<BatchFax>,
}

impl Batch {
    /// How many faxes are in each state, every state named (0 included).
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> =
            JobStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for fax in &self.faxes {
            *counts.entry(fax.status.as_str()).or_default() += 1;
        }
        counts
    }

    /// Whether every fax has ended (completed, failed or cancelled).
    pub fn is_done(&self) -> bool {
        self.faxes.iter().all(|f| f.status.is_terminal())
    }
}

/// Puts each group of new jobs that came in one request and go from the
/// same account and faxbox into a batch of its own; a job alone stays
/// outside any batch. Returns the batches to insert with the jobs.
pub(super) fn group(faxes: &mut [Fax]) -> Vec<BatchId> {
    let mut sizes: BTreeMap<(AccountId, Option<FaxboxId>), usize> = BTreeMap::new();
    for fax in faxes.iter() {
        *sizes
            .entry((fax.account_id.clone(), fax.faxbox_id.clone()))
            .or_default() += 1;
    }
    let mut ids: BTreeMap<(AccountId, Option<FaxboxId>), BatchId> = BTreeMap::new();
    for fax in faxes.iter_mut() {
        let key = (fax.account_id.clone(), fax.faxbox_id.clone());
        if sizes[&key] > 1 {
            fax.batch_id = Some(ids.entry(key).or_default().clone());
        }
    }
    ids.into_values().collect()
}

/// Inserts the batch rows `group` made, before their jobs.
pub(super) fn insert_batches(tx: &Transaction<'_>, faxes: &[Fax]) -> Result<()> {
    let mut done: Vec<&BatchId> = Vec::new();
    for fax in faxes {
        let Some(id) = fax.batch_id.as_ref().filter(|id| !done.contains(id)) else {
            continue;
        };
        super::ensure_account(tx, &fax.account_id)?;
        tx.execute(
            "INSERT INTO batches (id, account_id, faxbox_id, created) VALUES (?1, ?2, ?3, ?4)",
            params![
                id.as_str(),
                fax.account_id.as_str(),
                fax.faxbox_id.as_ref().map(FaxboxId::as_str),
                fax.created
            ],
        )?;
        done.push(id);
    }
    Ok(())
}

fn load(conn: &Connection, id: &BatchId) -> Result<Batch> {
    let row = conn
        .query_row(
            "SELECT account_id, faxbox_id, created, receipt_queued FROM batches WHERE id = ?1",
            [id.as_str()],
            |r| {
                Ok((
                    AccountId(r.get(0)?),
                    r.get::<_, Option<String>>(1)?.map(FaxboxId),
                    r.get(2)?,
                    r.get(3)?,
                ))
            },
        )
        .optional()?;
    let Some((account_id, faxbox_id, created, receipt_queued)) = row else {
        return Err(StoreError::NotFound {
            kind: "batch",
            id: id.to_string(),
        });
    };
    let faxes = select_all::<Vec<_>, _>(
        conn,
        "SELECT id, to_number, json_extract(doc, '$.to_name'), status, attempts, error, modified
         FROM faxes WHERE batch_id = ?1 ORDER BY rowid",
        [id.as_str()],
        |r| {
            Ok(BatchFax {
                id: FaxId(r.get(0)?),
                to_number: r.get(1)?,
                to_name: r.get(2)?,
                status: super::parse_column(r, 3)?,
                attempts: r.get(4)?,
                error: r.get(5)?,
                modified: r.get(6)?,
            })
        },
    )?;
    Ok(Batch {
        id: id.clone(),
        account_id,
        faxbox_id,
        created,
        receipt_queued,
        faxes,
    })
}

/// A combined receipt, composed from the finished batch: its envelope
/// recipients and the whole message.
pub type Receipt = (Vec<String>, Vec<u8>);

impl Store {
    pub fn batch(&self, id: &BatchId) -> Result<Batch> {
        self.read(|conn| load(conn, id))
    }

    /// A batch of one account; another account's batch is "not found".
    pub fn batch_in(&self, account: &AccountId, id: &BatchId) -> Result<Batch> {
        match self.batch(id) {
            Ok(b) if &b.account_id == account => Ok(b),
            Ok(_) => Err(StoreError::NotFound {
                kind: "batch",
                id: id.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Batches whose faxes have all ended and whose combined receipt is
    /// not queued yet, oldest first.
    pub fn finished_batches_without_receipt(&self, limit: u32) -> Result<Vec<BatchId>> {
        self.read(|conn| {
            select_all(
                conn,
                "SELECT id FROM batches INDEXED BY batches_unreceipted
                 WHERE receipt_queued IS NULL AND NOT EXISTS (
                     SELECT 1 FROM faxes WHERE batch_id = batches.id
                       AND status NOT IN ('completed', 'failed', 'cancelled'))
                 ORDER BY created LIMIT ?1",
                [limit],
                |r| Ok(BatchId(r.get(0)?)),
            )
        })
    }

    /// Queues the batch's combined receipt if every fax of it has ended
    /// and it was not queued before: `compose` makes it from the finished
    /// batch (`None`: nobody to tell). Checked and recorded in the
    /// transaction that queues the mail, so two faxes of the batch ending
    /// at once cannot both send it. True when a mail was queued.
    pub fn queue_batch_receipt(
        &self,
        id: &BatchId,
        compose: impl FnOnce(&Batch) -> Option<Receipt>,
    ) -> Result<bool> {
        let key = self.key()?;
        self.write(|tx| {
            let batch = load(tx, id)?;
            if batch.receipt_queued.is_some() || !batch.is_done() {
                return Ok(false);
            }
            let queued = match compose(&batch) {
                Some((recipients, message)) if !recipients.is_empty() => {
                    mail::queue_mail(tx, &key, Some(&batch.account_id), &recipients, &message)?;
                    true
                }
                _ => false,
            };
            tx.execute(
                "UPDATE batches SET receipt_queued = ?2 WHERE id = ?1",
                params![id.as_str(), now()],
            )?;
            Ok(queued)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{JobStatus, NewFax};
    use crate::store::testing::temp_store;
    use crate::store::{AttemptEnd, NextStep};

    fn job(account: &crate::model::AccountId, number: &str) -> NewFax {
        NewFax {
            account_id: account.clone(),
            to_number: number.into(),
            to_number_normalized: number.into(),
            retries: 1,
            ..Default::default()
        }
    }

    #[test]
    fn jobs_of_one_request_share_a_batch_whose_receipt_is_queued_once_when_all_end() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let faxes = store
            .create_jobs(
                vec![job(&a, "5550101"), job(&a, "5550102")],
                vec![],
                JobStatus::Pending,
            )
            .unwrap();
        let id = faxes[0].batch_id.clone().expect("several numbers: a batch");
        assert_eq!(faxes[1].batch_id.as_ref(), Some(&id));
        assert_eq!(store.fax(&faxes[1].id).unwrap().batch_id, Some(id.clone()));
        let batch = store.batch_in(&a, &id).unwrap();
        let numbers: Vec<&str> = batch.faxes.iter().map(|f| f.to_number.as_str()).collect();
        assert_eq!(numbers, ["5550101", "5550102"], "in the request's order");
        assert_eq!(batch.counts()["pending"], 2);
        let other = store.create_account("Other", None).unwrap().id;
        assert!(store.batch_in(&other, &id).is_err());

        let receipt = || {
            (
                vec!["bob@example.com".to_owned()],
                b"Subject: x\r\n\r\n".to_vec(),
            )
        };
        // Not done: nothing queued.
        assert!(!store.queue_batch_receipt(&id, |_| Some(receipt())).unwrap());
        for fax in &faxes {
            let (_, attempt) = store.claim(&fax.id, "loopback").unwrap().unwrap();
            store
                .finish_attempt(
                    attempt.id,
                    AttemptEnd {
                        outcome: crate::model::AttemptOutcome::Success,
                        stage: crate::model::AttemptStage::End,
                        report: Default::default(),
                        next: NextStep::Complete,
                        retries: None,
                    },
                )
                .unwrap();
        }
        let batch = store.batch(&id).unwrap();
        assert!(batch.is_done());
        assert_eq!(batch.counts()["completed"], 2);
        assert!(store.queue_batch_receipt(&id, |_| Some(receipt())).unwrap());
        assert!(
            !store.queue_batch_receipt(&id, |_| Some(receipt())).unwrap(),
            "queued once"
        );
        assert_eq!(
            store
                .due_mail(crate::model::now() + 1, 10)
                .unwrap()
                .mails
                .len(),
            1
        );

        // One number alone is no batch.
        let one = store
            .create_jobs(vec![job(&a, "5550103")], vec![], JobStatus::Pending)
            .unwrap();
        assert_eq!(one[0].batch_id, None);
    }
}
