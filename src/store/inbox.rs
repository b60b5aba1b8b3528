//! Received faxes: the calls being received, and their arrival in a
//! faxbox's inbox together with the mail that announces them.

use std::path::PathBuf;

use rusqlite::params;

use super::{Result, Store, jobs, select_all};
use crate::model::{AccountId, Fax, FaxboxId, Folder, NewDocument, NewReceivedFax, Reception, now};

/// A mail to queue in the same transaction as what it announces, so it
/// goes out exactly once.
pub struct MailToQueue<'a> {
    pub recipients: &'a [String],
    pub message: &'a [u8],
}

impl Store {
    /// Records a call about to be answered.
    pub fn begin_reception(&self, r: &Reception) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO receptions (call_id, line, account_id, faxbox_id,
                     from_number, to_number, tiff, started)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.call_id,
                    r.line,
                    r.account_id.as_str(),
                    r.faxbox_id.as_str(),
                    r.from_number,
                    r.to_number,
                    r.tiff.to_string_lossy(),
                    r.started
                ],
            )?;
            Ok(())
        })
    }

    pub fn reception(&self, call_id: &str) -> Result<Option<Reception>> {
        Ok(self.read_receptions("WHERE call_id = ?1", [call_id])?.pop())
    }

    /// Calls still recorded as being received (after a crash: the ones cut).
    pub fn receptions(&self) -> Result<Vec<Reception>> {
        self.read_receptions("", [])
    }

    fn read_receptions(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Reception>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                "SELECT call_id, line, account_id, faxbox_id, from_number, to_number, tiff, started
                 FROM receptions {filter} ORDER BY started, rowid"
            ),
                params,
                |r| {
                    Ok(Reception {
                        call_id: r.get(0)?,
                        line: r.get(1)?,
                        account_id: AccountId(r.get(2)?),
                        faxbox_id: FaxboxId(r.get(3)?),
                        from_number: r.get(4)?,
                        to_number: r.get(5)?,
                        tiff: PathBuf::from(r.get::<_, String>(6)?),
                        started: r.get(7)?,
                    })
                },
            )
        })
    }

    /// Ends a reception: with a fax, it goes to the inbox with its
    /// documents; with a mail, the mail is queued; all in one transaction.
    pub fn end_reception(
        &self,
        call_id: &str,
        fax: Option<(NewReceivedFax, Vec<NewDocument>)>,
        mail: Option<MailToQueue<'_>>,
    ) -> Result<Option<Fax>> {
        let key = self.key()?;
        self.write(|tx| {
            let stored = match fax {
                Some((new, docs)) => {
                    let t = now();
                    let fax = Fax {
                        id: new.id.clone(),
                        account_id: new.account_id.clone(),
                        faxbox_id: Some(new.faxbox_id.clone()),
                        folder: Folder::Inbox,
                        status: None,
                        to_number: new.to_number.clone(),
                        to_number_normalized: new.to_number.clone(),
                        to_name: None,
                        from_number: Some(new.from_number.clone()),
                        from_name: new.from_name.clone(),
                        fax_identity_number: None,
                        fax_identity_name: None,
                        fax_timezone: None,
                        retries: 0,
                        attempts: 0,
                        retry_after: 0,
                        due_at: t,
                        send_at: None,
                        priority: Default::default(),
                        notify_email: Vec::new(),
                        subject: None,
                        cover_page: None,
                        cover_note: None,
                        error: None,
                        rx_result: Some(new.rx_result.clone()),
                        batch_id: None,
                        created: t,
                        modified: t,
                    };
                    jobs::insert_fax(tx, &fax)?;
                    for doc in &docs {
                        jobs::insert_document(tx, &key, &fax.id, doc)?;
                    }
                    let rx = &new.rx_result;
                    let body = super::callbacks::CallbackBody::of(
                        &fax,
                        "received",
                        rx.pages,
                        Some(rx.result_code),
                        &rx.result_text,
                    );
                    super::callbacks::queue_callback(tx, &fax, &body)?;
                    Some(fax)
                }
                None => None,
            };
            if let Some(mail) = mail {
                let account = stored.as_ref().map(|f| f.account_id.clone());
                let queued = super::mail::queue_mail(
                    tx,
                    &key,
                    account.as_ref(),
                    mail.recipients,
                    mail.message,
                )?;
                if let Some(fax) = &stored {
                    super::mail::link_mail_to_fax(tx, queued, &fax.id)?;
                }
            }
            tx.execute("DELETE FROM receptions WHERE call_id = ?1", [call_id])?;
            Ok(stored)
        })
    }
}
