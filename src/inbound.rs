//! The receive path every line uses: route an incoming call to a faxbox,
//! answer with the faxbox's identity, and put what arrives in its inbox with
//! the mail that announces it, in one transaction.
//!
//! A call is recorded (`receptions`) before the line answers; if Faxbox dies
//! after pages arrived, `recover` delivers them at the next start. A receive
//! with zero pages is a failure and leaves no inbox entry; a receive cut
//! short keeps the pages that arrived, flagged as partial (Kazoo reported
//! 0-page "successes" and lost partial faxes, docs/kazoo.md 14 item 5).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use crate::documents;
use crate::lines::{Answer, FaxOutcome, Inbound, IncomingCall, ReceivedFax};
use crate::model::{
    DocumentKind, FaxId, Faxbox, FaxboxId, NewDocument, NewReceivedFax, Reception, RxResult, now,
};
use crate::notify::{self, InboundFacts};
use crate::store::{MailToQueue, Store};

/// The receive path of one appliance.
pub struct Receiver {
    store: Arc<Store>,
    /// Where lines write the pages of calls being received.
    dir: PathBuf,
    /// The faxbox that takes calls to numbers no faxbox claims, per line.
    defaults: HashMap<String, FaxboxId>,
    mail_from: String,
    mail_queued: Arc<dyn Fn() + Send + Sync>,
}

impl Receiver {
    pub fn new(
        store: Arc<Store>,
        dir: PathBuf,
        defaults: HashMap<String, FaxboxId>,
        mail_from: String,
        mail_queued: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Receiver> {
        std::fs::create_dir_all(&dir)?;
        Ok(Receiver {
            store,
            dir,
            defaults,
            mail_from,
            mail_queued,
        })
    }

    /// The faxbox a call to `number` on `line` rings: the one with that
    /// number, else the line's default.
    pub fn route(&self, line: &str, number: &str) -> Option<Faxbox> {
        if let Ok(Some(f)) = self.store.faxbox_by_number(number) {
            return Some(f);
        }
        let id = self.defaults.get(line)?;
        self.store.faxbox(id).ok()
    }

    /// At start: delivers the pages of calls that were being received when
    /// Faxbox stopped.
    pub fn recover(&self) -> crate::store::Result<usize> {
        let mut delivered = 0;
        for r in self.store.receptions()? {
            let pages = std::fs::read(&r.tiff)
                .ok()
                .and_then(|b| documents::faxtiff::count_tiff_pages(&b).ok())
                .unwrap_or(0) as u32;
            warn!(call = %r.call_id, pages, "a fax was being received when Faxbox stopped");
            let rx = RxResult {
                success: false,
                partial: true,
                pages,
                result_code: 49,
                result_text: "Faxbox stopped during the call; these are the pages that arrived"
                    .into(),
                caller_number: r.from_number.clone(),
                line: r.line.clone(),
                ..RxResult::default()
            };
            if self.finish(&r, rx).is_some() {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Stores what arrived (if anything) and queues the mail, then removes
    /// the line's file. Returns whether an inbox entry was made.
    fn finish(&self, r: &Reception, rx: RxResult) -> Option<()> {
        let faxbox = match self.store.faxbox(&r.faxbox_id) {
            Ok(f) => f,
            Err(e) => {
                warn!(call = %r.call_id, "the faxbox of a received fax is gone: {e}");
                let _ = self.store.end_reception(&r.call_id, None, None);
                let _ = std::fs::remove_file(&r.tiff);
                return None;
            }
        };
        let owner_email = faxbox
            .owner_id
            .as_ref()
            .and_then(|id| self.store.user(id).ok())
            .map(|u| u.email);
        let tiff = if rx.pages > 0 {
            std::fs::read(&r.tiff).ok()
        } else {
            None
        };
        let pdf = tiff.as_ref().and_then(|t| match documents::tiff_to_pdf(t) {
            Ok(pdf) => Some(pdf),
            Err(e) => {
                warn!(call = %r.call_id, "cannot make a PDF of the received fax: {e}");
                None
            }
        });
        // Nothing arrived: no inbox entry, and the error mail names none.
        let fax_id = tiff.as_ref().map(|_| FaxId::new());
        let facts = InboundFacts {
            fax: None,
            fax_id: fax_id.as_ref(),
            faxbox: &faxbox,
            owner_email: owner_email.as_deref(),
            from_number: &r.from_number,
            to_number: &r.to_number,
            rx: &rx,
            pdf: pdf.as_deref(),
        };
        let mail = if rx.success {
            notify::inbound_fax(&self.mail_from, &facts)
        } else if tiff.is_some() || !self.filtered(&faxbox, rx.result_code) {
            notify::inbound_error(&self.mail_from, &facts)
        } else {
            Ok(None)
        };
        let mail = mail.unwrap_or_else(|e| {
            warn!(call = %r.call_id, "cannot compose the mail for a received fax: {e}");
            None
        });
        let fax = tiff.zip(fax_id.clone()).map(|(tiff, id)| {
            let mut docs = vec![NewDocument {
                kind: DocumentKind::ReceivedTiff,
                content_type: "image/tiff".into(),
                filename: format!("received_file_{}.tiff", r.call_id),
                pages: Some(rx.pages),
                bytes: tiff,
            }];
            if let Some(pdf) = &pdf {
                docs.push(NewDocument {
                    kind: DocumentKind::Pdf,
                    content_type: "application/pdf".into(),
                    filename: "pdf_file.pdf".into(),
                    pages: Some(rx.pages),
                    bytes: pdf.clone(),
                });
            }
            (
                NewReceivedFax {
                    id,
                    account_id: r.account_id.clone(),
                    faxbox_id: r.faxbox_id.clone(),
                    from_number: r.from_number.clone(),
                    from_name: None,
                    to_number: r.to_number.clone(),
                    rx_result: rx.clone(),
                },
                docs,
            )
        });
        let queued = mail.as_ref().map(|m| MailToQueue {
            recipients: &m.recipients,
            message: &m.message,
        });
        match self.store.end_reception(&r.call_id, fax, queued) {
            Ok(stored) => {
                // Committed: the line's copy is no longer needed.
                let _ = std::fs::remove_file(&r.tiff);
                // The mail, and the faxbox's callback, may be waiting.
                if mail.is_some() || stored.is_some() {
                    (self.mail_queued)();
                }
                match stored {
                    Some(fax) => {
                        info!(fax = %fax.id, faxbox = %faxbox.id, pages = rx.pages, partial = rx.partial, "fax received");
                        Some(())
                    }
                    None => {
                        info!(call = %r.call_id, code = rx.result_code, "receive failed: {}", rx.result_text);
                        None
                    }
                }
            }
            Err(e) => {
                // The reception row stays: the next start delivers it.
                warn!(call = %r.call_id, "cannot store the received fax: {e}");
                None
            }
        }
    }

    /// Kazoo's `filter_error_codes`: failed receives with these codes (no
    /// fax at all, or a call that never got going) send no error mail.
    fn filtered(&self, faxbox: &Faxbox, code: i64) -> bool {
        let codes = self
            .store
            .setting(Some(&faxbox.account_id), "filter_error_codes")
            .map(|v| v.value)
            .unwrap_or_default();
        codes.as_array().is_some_and(|list| {
            list.iter()
                .any(|c| c.as_str() == Some(code.to_string().as_str()) || c.as_i64() == Some(code))
        })
    }
}

/// Our CSI for a call to a faxbox: with `override_fax_identity` (Kazoo's
/// default) the faxbox's `fax_identity`, else its `caller_id`, else the
/// dialled number (docs/kazoo.md 8.2).
fn receive_ident(faxbox: &Faxbox, dialled: &str) -> String {
    faxbox
        .fax_identity
        .as_deref()
        .or(faxbox.caller_id.as_deref())
        .unwrap_or(dialled)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+' || *c == ' ')
        .take(20)
        .collect()
}

impl Inbound for Receiver {
    fn owns_number(&self, number: &str) -> bool {
        matches!(self.store.faxbox_by_number(number), Ok(Some(_)))
    }

    fn answer(&self, call: &IncomingCall) -> Option<Answer> {
        let Some(faxbox) = self.route(&call.line, &call.to_number) else {
            warn!(
                line = %call.line, from = %call.from_number, to = %call.to_number,
                "refusing a call: no faxbox has this number and the line has no default_faxbox"
            );
            return None;
        };
        let file_name: String = call
            .call_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let reception = Reception {
            call_id: call.call_id.clone(),
            line: call.line.clone(),
            account_id: faxbox.account_id.clone(),
            faxbox_id: faxbox.id.clone(),
            from_number: call.from_number.clone(),
            to_number: call.to_number.clone(),
            tiff: self.dir.join(format!("{file_name}.tiff")),
            started: now(),
        };
        if let Err(e) = self.store.begin_reception(&reception) {
            warn!(call = %call.call_id, "cannot record the incoming call; refusing it: {e}");
            return None;
        }
        info!(call = %call.call_id, faxbox = %faxbox.id, from = %call.from_number, "answering");
        Some(Answer {
            ident: receive_ident(&faxbox, &call.to_number),
            tiff: reception.tiff,
        })
    }

    fn deliver(&self, fax: ReceivedFax) {
        let reception = match self.store.reception(&fax.call_id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                warn!(call = %fax.call_id, "a line delivered a fax for a call that was not answered here");
                let _ = std::fs::remove_file(&fax.tiff);
                return;
            }
            Err(e) => {
                warn!(call = %fax.call_id, "cannot look up the incoming call: {e}");
                return;
            }
        };
        let rx = rx_result(&fax.outcome, &fax);
        self.finish(&reception, rx);
    }
}

fn rx_result(outcome: &FaxOutcome, fax: &ReceivedFax) -> RxResult {
    let success = outcome.is_ok() && outcome.pages > 0;
    RxResult {
        success,
        partial: !outcome.is_ok() && outcome.pages > 0,
        pages: outcome.pages,
        bit_rate: outcome.bit_rate,
        ecm: outcome.ecm,
        remote_station_id: outcome.remote_ident.clone(),
        result_code: i64::from(outcome.code.number()),
        result_text: if outcome.is_ok() && outcome.pages == 0 {
            "no pages received".into()
        } else {
            outcome.code.text().to_owned()
        },
        duration_s: fax.duration.as_secs_f64(),
        caller_number: fax.from_number.clone(),
        line: fax.line.clone(),
    }
}
