//! The outgoing mail queue: messages wait here until the smarthost takes
//! them, so an outage delays mail but never loses it.

use rusqlite::params;

use super::sealing::{DocumentKey, KeyError, Row};
use super::{Result, Store, StoreError, select_all};
use crate::model::{AccountId, FaxId, UnixTime, now};

/// A message waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    pub id: i64,
    pub account_id: Option<AccountId>,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The whole RFC 5322 message.
    pub message: Vec<u8>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// The mails due, and those set aside because they no longer open.
#[derive(Debug, Default)]
pub struct DueMail {
    pub mails: Vec<QueuedMail>,
    /// Each mail set aside this time, with the reason it keeps.
    pub unopenable: Vec<(i64, String)>,
}

/// Queues a mail inside a caller's transaction, so that it is committed
/// with what it announces. The message is sealed with `key` (`sealing`):
/// a mail about a fax carries the fax.
pub(super) fn queue_mail(
    tx: &rusqlite::Transaction<'_>,
    key: &DocumentKey,
    account: Option<&AccountId>,
    recipients: &[String],
    message: &[u8],
) -> Result<i64> {
    if recipients.is_empty() {
        return Err(StoreError::Conflict(
            "a mail needs at least one recipient".into(),
        ));
    }
    let t = now();
    tx.execute(
        "INSERT INTO mail_queue (account_id, recipients, message, due_at, created, sealed)
         VALUES (?1, ?2, x'', ?3, ?3, 1)",
        params![
            account.map(AccountId::as_str),
            serde_json::to_string(recipients).expect("strings serialize"),
            t
        ],
    )?;
    // Sealed for its row, whose id exists only now.
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE mail_queue SET message = ?2 WHERE id = ?1",
        params![id, key.seal(Row::Mail(id), message)],
    )?;
    Ok(id)
}

/// Marks a queued mail as carrying `fax`.
pub(super) fn link_mail_to_fax(
    tx: &rusqlite::Transaction<'_>,
    mail: i64,
    fax: &FaxId,
) -> Result<()> {
    tx.execute(
        "UPDATE mail_queue SET fax_id = ?2 WHERE id = ?1",
        params![mail, fax.as_str()],
    )?;
    Ok(())
}

impl Store {
    /// Queues a mail about one fax (a receipt, an error report, a received
    /// fax's copy): it carries the fax, so it is deleted with the fax or
    /// its documents (issue 23).
    pub fn enqueue_fax_mail(
        &self,
        fax: &FaxId,
        account: &AccountId,
        recipients: &[String],
        message: &[u8],
    ) -> Result<i64> {
        let key = self.key()?;
        self.write(|tx| {
            let id = queue_mail(tx, &key, Some(account), recipients, message)?;
            link_mail_to_fax(tx, id, fax)?;
            Ok(id)
        })
    }

    pub fn enqueue_mail(
        &self,
        account: Option<&AccountId>,
        recipients: &[String],
        message: &[u8],
    ) -> Result<i64> {
        let key = self.key()?;
        self.write(|tx| queue_mail(tx, &key, account, recipients, message))
    }

    /// Mails due for a delivery attempt, oldest first, opened with the
    /// document key. A mail whose sealed bytes do not open (changed on the
    /// disk) can never be sent: it is set aside as failed with the reason
    /// (`failed_at`, `last_error`) and named in `unopenable`, and the
    /// others are still due. A missing or wrong key fails them all.
    pub fn due_mail(&self, at: UnixTime, limit: u32) -> Result<DueMail> {
        let rows: Vec<(QueuedMail, bool)> = self.read(|conn| {
            select_all(
                conn,
                "SELECT id, account_id, recipients, message, attempts, last_error, sealed
                 FROM mail_queue
                 WHERE sent_at IS NULL AND failed_at IS NULL AND due_at <= ?1
                 ORDER BY due_at, id LIMIT ?2",
                params![at, limit],
                |r| {
                    let mail = QueuedMail {
                        id: r.get(0)?,
                        account_id: r.get::<_, Option<String>>(1)?.map(AccountId),
                        recipients: super::json_column(r, 2)?,
                        message: r.get(3)?,
                        attempts: r.get(4)?,
                        last_error: r.get(5)?,
                    };
                    Ok((mail, r.get(6)?))
                },
            )
        })?;
        let mut due = DueMail::default();
        for (mut mail, sealed) in rows {
            let message = std::mem::take(&mut mail.message);
            match self.unseal(Row::Mail(mail.id), sealed, message) {
                Ok(message) => {
                    mail.message = message;
                    due.mails.push(mail);
                }
                Err(StoreError::Key(e @ KeyError::Damaged { .. })) => {
                    let reason = format!("not sent, and never will be: {e}");
                    self.mail_unopenable(mail.id, &reason)?;
                    due.unopenable.push((mail.id, reason));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(due)
    }

    /// Sets a mail aside for good: it stays (with `reason`) for the admin
    /// to read, and is never due again.
    fn mail_unopenable(&self, id: i64, reason: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE mail_queue SET failed_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now(), reason],
            )?;
            Ok(())
        })
    }

    /// When the next unsent mail falls due.
    pub fn next_mail_due(&self) -> Result<Option<UnixTime>> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT min(due_at) FROM mail_queue WHERE sent_at IS NULL AND failed_at IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Records that a mail is about to be handed to the smarthost: it is
    /// not due again for `retry_in_s`, so if the outcome cannot be recorded
    /// (a crash, a full disk) it is not sent again at once. A mail whose
    /// sending cannot be recorded is not sent (issue 19).
    pub fn mail_sending(&self, id: i64, retry_in_s: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE mail_queue SET due_at = ?2 WHERE id = ?1 AND sent_at IS NULL",
                params![id, now() + retry_in_s.max(0)],
            )?;
            Ok(())
        })
    }

    pub fn mail_sent(&self, id: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE mail_queue SET sent_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE id = ?1",
                params![id, now()],
            )?;
            Ok(())
        })
    }

    /// Records a failed delivery; the next try is `retry_in_s` from now.
    pub fn mail_failed(&self, id: i64, error: &str, retry_in_s: i64) -> Result<()> {
        self.write(|tx| {
            let attempts: u32 =
                tx.query_row("SELECT attempts FROM mail_queue WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            tx.execute(
                "UPDATE mail_queue SET attempts = ?2, last_error = ?3, due_at = ?4 WHERE id = ?1",
                params![id, attempts + 1, error, now() + retry_in_s.max(0)],
            )?;
            Ok(())
        })
    }

    /// Mails still to be delivered (for status pages and tests); those set
    /// aside as unopenable are not.
    pub fn unsent_mail_count(&self) -> Result<u32> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM mail_queue WHERE sent_at IS NULL AND failed_at IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;

    #[test]
    fn a_failed_mail_waits_and_is_not_lost() {
        let (_dir, store) = temp_store();
        let id = store
            .enqueue_mail(None, &["a@example.com".into()], b"Subject: hi\r\n\r\nhello")
            .unwrap();
        let due = store.due_mail(now(), 10).unwrap().mails;
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].recipients, vec!["a@example.com"]);
        store.mail_failed(id, "connection refused", 30).unwrap();
        assert!(store.due_mail(now(), 10).unwrap().mails.is_empty());
        assert!(store.next_mail_due().unwrap().unwrap() >= now() + 29);
        let later = store.due_mail(now() + 31, 10).unwrap().mails;
        assert_eq!(
            (later[0].attempts, later[0].last_error.as_deref()),
            (1, Some("connection refused"))
        );
        store.mail_sent(id).unwrap();
        assert_eq!(store.unsent_mail_count().unwrap(), 0);
        assert!(store.enqueue_mail(None, &[], b"x").is_err());
    }
}
