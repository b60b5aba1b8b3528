//! Group commit for new jobs: intake's durable write.
//!
//! Every accepted fax must be on the disk before it is acknowledged
//! (docs/architecture.md, invariant 1), and a disk sync costs milliseconds whatever it carries.
//! So jobs that arrive while a commit is running wait and go to the disk
//! together in the next one: the first waiting caller leads, writes every
//! waiting job in one transaction (each under its own savepoint, so one bad
//! job fails alone) and hands each caller its own result. A caller returns
//! only once the transaction holding its job has committed, so each
//! acknowledgement still means "durable"; under load many share one sync.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use super::{Result, Store, StoreError, jobs};
use crate::model::{Fax, NewDocument};

/// A job waiting for its commit.
struct Waiting {
    ticket: u64,
    fax: Fax,
    documents: Vec<NewDocument>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    results: HashMap<u64, Result<()>>,
    /// Whether a caller is committing a group now.
    leading: bool,
    next_ticket: u64,
}

/// The queue of jobs waiting for a commit, shared by intake threads.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    committed: Condvar,
}

impl Store {
    /// Inserts a new job and its documents, durably, possibly in one
    /// transaction with other callers' jobs.
    pub(super) fn insert_job_grouped(&self, fax: Fax, documents: Vec<NewDocument>) -> Result<()> {
        let group = &self.intake;
        let lock = || group.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut queue = lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push(Waiting {
            ticket,
            fax,
            documents,
        });
        loop {
            if let Some(result) = queue.results.remove(&ticket) {
                return result;
            }
            if queue.leading {
                queue = group
                    .committed
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead: commit everything waiting (this caller's job included).
            queue.leading = true;
            let batch = std::mem::take(&mut queue.waiting);
            drop(queue);
            let results = self.commit_group(batch);
            queue = lock();
            queue.results.extend(results);
            queue.leading = false;
            group.committed.notify_all();
        }
    }

    fn commit_group(&self, batch: Vec<Waiting>) -> Vec<(u64, Result<()>)> {
        let mut results = Vec::with_capacity(batch.len());
        let key = match self.key() {
            Ok(key) => key,
            Err(e) => return batch.iter().map(|j| (j.ticket, Err(copy(&e)))).collect(),
        };
        let committed = self.write(|tx| {
            for job in &batch {
                tx.execute_batch("SAVEPOINT job")?;
                let one = jobs::insert_job(tx, &key, &job.fax, &job.documents);
                if one.is_err() {
                    tx.execute_batch("ROLLBACK TO job")?;
                }
                tx.execute_batch("RELEASE job")?;
                results.push((job.ticket, one));
            }
            Ok(())
        });
        match committed {
            Ok(()) => results,
            // Nothing was committed: every job of the group gets the error.
            Err(e) => batch.iter().map(|j| (j.ticket, Err(copy(&e)))).collect(),
        }
    }
}

/// The same error for each caller of a failed group.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound { kind, id } => StoreError::NotFound {
            kind,
            id: id.clone(),
        },
        StoreError::Invalid(f) => StoreError::Invalid(f.clone()),
        StoreError::Conflict(text) => StoreError::Conflict(text.clone()),
        StoreError::Sql(rusqlite::Error::SqliteFailure(code, text)) => {
            StoreError::Sql(rusqlite::Error::SqliteFailure(*code, text.clone()))
        }
        other => StoreError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{AccountId, DocumentKind, JobStatus, NewDocument, NewFax};
    use crate::store::testing::temp_store;

    fn job(account: &AccountId, n: usize) -> NewFax {
        NewFax {
            account_id: account.clone(),
            to_number: format!("55501{n:02}"),
            to_number_normalized: format!("55501{n:02}"),
            retries: 1,
            ..Default::default()
        }
    }

    fn doc(n: usize) -> NewDocument {
        NewDocument {
            kind: DocumentKind::Original,
            content_type: "application/pdf".into(),
            filename: format!("{n}.pdf"),
            pages: Some(1),
            bytes: format!("%PDF {n}").into_bytes(),
        }
    }

    #[test]
    fn jobs_from_many_threads_are_each_stored_once_with_their_documents() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let account = store.create_account("Acme", None).unwrap().id;
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let (store, account) = (store.clone(), account.clone());
                std::thread::spawn(move || {
                    store
                        .create_job(job(&account, n), vec![doc(n)], JobStatus::Pending)
                        .unwrap()
                })
            })
            .collect();
        for (n, t) in threads.into_iter().enumerate() {
            let fax = t.join().unwrap();
            assert_eq!(fax.to_number, format!("55501{n:02}"));
            let docs = store.documents(&fax.id).unwrap();
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].filename, format!("{n}.pdf"));
        }
        let all = store
            .faxes(&crate::store::JobFilter {
                limit: Some(100),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 16);
    }

    #[test]
    fn a_job_that_cannot_be_stored_fails_alone() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let account = store.create_account("Acme", None).unwrap().id;
        let gone = AccountId("0123456789abcdef0123456789abcdef".into());
        // Good and bad jobs at once, so that they share groups.
        let threads: Vec<_> = (0..12)
            .map(|n| {
                let store = store.clone();
                let owner = if n % 2 == 0 {
                    account.clone()
                } else {
                    gone.clone()
                };
                std::thread::spawn(move || {
                    store.create_job(job(&owner, n), vec![doc(n)], JobStatus::Pending)
                })
            })
            .collect();
        for (n, t) in threads.into_iter().enumerate() {
            match t.join().unwrap() {
                Ok(fax) if n % 2 == 0 => {
                    assert_eq!(store.documents(&fax.id).unwrap().len(), 1)
                }
                Err(crate::store::StoreError::NotFound {
                    kind: "account", ..
                }) if n % 2 == 1 => {}
                other => panic!("job {n}: {other:?}"),
            }
        }
        let stored = store
            .faxes(&crate::store::JobFilter {
                limit: Some(100),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(stored.len(), 6);
        // Nothing of the refused jobs was left behind.
        assert!(stored.iter().all(|f| f.account_id == account));
    }
}
