//! The SMTP error log (Kazoo's `fax_smtp_log`, docs/kazoo.md 1.6): one entry
//! per email that could not become a fax, with the reasons in order, so
//! an administrator can answer "why did my fax never go out?". The report
//! mailed to the sender, when there is one, is queued in the same
//! transaction as the entry.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{OptionalRow, Result, Store, mail::queue_mail, select_all, to_json};
use crate::model::{AccountId, FaxboxId, UnixTime, new_id, now};

/// One refused email, with Kazoo's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpLogEntry {
    /// `YYYYMM-<32 hex>`, Kazoo's MODB id form.
    pub id: String,
    pub account_id: Option<AccountId>,
    pub faxbox_id: Option<FaxboxId>,
    /// The envelope sender.
    pub from: String,
    /// The envelope recipient(s), comma separated.
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translated_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faxbox_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faxbox_owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faxbox_owner_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// What went wrong, first reason first.
    pub errors: Vec<String>,
    #[serde(default)]
    pub created: UnixTime,
}

/// A mail to queue together with a log entry.
pub struct SmtpErrorReport<'a> {
    pub recipients: &'a [String],
    pub message: &'a [u8],
}

pub(super) fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SmtpLogEntry> {
    let mut entry: SmtpLogEntry = super::json_column(r, 1)?;
    entry.id = r.get(0)?;
    entry.created = r.get(2)?;
    Ok(entry)
}

impl Store {
    /// Records a refused email (when `entry` is given) and queues the
    /// report to its sender (when `report` is given), in one transaction.
    /// Returns the stored entry.
    pub fn log_smtp_error(
        &self,
        entry: Option<SmtpLogEntry>,
        report: Option<SmtpErrorReport<'_>>,
    ) -> Result<Option<SmtpLogEntry>> {
        let t = now();
        let entry = entry.map(|mut e| {
            let month = DateTime::<Utc>::from_timestamp(t, 0)
                .map(|d| d.format("%Y%m").to_string())
                .unwrap_or_default();
            e.id = format!("{month}-{}", new_id());
            e.created = t;
            e
        });
        let key = self.key()?;
        self.write(|tx| {
            // An account deleted meanwhile keeps the entry, unowned.
            let account = match entry.as_ref().and_then(|e| e.account_id.as_ref()) {
                Some(a) => tx
                    .query_row("SELECT 1 FROM accounts WHERE id = ?1", [a.as_str()], |_| {
                        Ok(())
                    })
                    .optional()?
                    .map(|_| a),
                None => None,
            };
            if let Some(e) = &entry {
                tx.execute(
                    "INSERT INTO smtp_log (id, account_id, faxbox_id, doc, created)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        e.id,
                        account.map(AccountId::as_str),
                        e.faxbox_id.as_ref().map(FaxboxId::as_str),
                        to_json(e),
                        e.created
                    ],
                )?;
            }
            if let Some(r) = &report {
                queue_mail(tx, &key, account, r.recipients, r.message)?;
            }
            Ok(())
        })?;
        Ok(entry)
    }

    /// An account's SMTP log (or one faxbox's part of it), newest first.
    pub fn smtp_log(
        &self,
        account: &AccountId,
        faxbox: Option<&FaxboxId>,
        limit: u32,
    ) -> Result<Vec<SmtpLogEntry>> {
        self.read(|conn| {
            select_all(
                conn,
                "SELECT id, doc, created FROM smtp_log WHERE account_id = ?1
                 AND (?2 IS NULL OR faxbox_id = ?2)
                 ORDER BY created DESC, rowid DESC LIMIT ?3",
                params![account.as_str(), faxbox.map(FaxboxId::as_str), limit],
                entry_from_row,
            )
        })
    }

    /// One entry of an account's SMTP log; another account's is "not found".
    pub fn smtp_log_entry(&self, account: &AccountId, id: &str) -> Result<SmtpLogEntry> {
        self.read(|conn| {
            conn.query_row(
                "SELECT id, doc, created FROM smtp_log WHERE id = ?1 AND account_id = ?2",
                params![id, account.as_str()],
                entry_from_row,
            )
            .found("smtp log entry", id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::store::testing::temp_store;

    #[test]
    fn an_entry_and_its_report_are_kept_and_seen_only_by_their_account() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let b = store.create_account("Other", None).unwrap().id;
        let entry = SmtpLogEntry {
            account_id: Some(a.clone()),
            from: "bob@acme.example".into(),
            to: "15551234567@fax.acme.example".into(),
            errors: vec!["no valid attachment".into(), "second".into()],
            ..Default::default()
        };
        let report = SmtpErrorReport {
            recipients: &["bob@acme.example".to_owned()],
            message: b"Subject: Error Sending Fax\r\n\r\nbody",
        };
        let stored = store
            .log_smtp_error(Some(entry), Some(report))
            .unwrap()
            .unwrap();
        let (month, hex) = stored.id.split_once('-').unwrap();
        assert_eq!((month.len(), hex.len()), (6, 32));
        assert_eq!(store.smtp_log(&a, None, 10).unwrap(), vec![stored.clone()]);
        assert_eq!(store.smtp_log_entry(&a, &stored.id).unwrap(), stored);
        assert!(store.smtp_log(&b, None, 10).unwrap().is_empty());
        assert!(matches!(
            store.smtp_log_entry(&b, &stored.id),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.unsent_mail_count().unwrap(), 1);
    }

    #[test]
    fn a_report_with_no_recipient_stores_nothing() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let entry = SmtpLogEntry {
            account_id: Some(a.clone()),
            errors: vec!["x".into()],
            ..Default::default()
        };
        let report = SmtpErrorReport {
            recipients: &[],
            message: b"x",
        };
        assert!(store.log_smtp_error(Some(entry), Some(report)).is_err());
        assert!(store.smtp_log(&a, None, 10).unwrap().is_empty());
    }
}
