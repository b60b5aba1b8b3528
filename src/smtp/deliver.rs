//! The end of DATA: the email becomes one fax document and one job per
//! recipient number (several: one batch, issue 22) through the intake,
//! committed before the reply (docs/architecture.md, invariant 1), or a real
//! refusal with the reason (docs/kazoo.md 6.8, done at SMTP time as the
//! list of quirks asks, docs/kazoo.md 13 item 1). Refusals go to the SMTP log and,
//! with `report_smtp_errors`, to the sender as Kazoo's
//! `outbound_smtp_fax_error`. This is the one place that maps the outcome
//! of an email to its SMTP reply.

use tracing::{info, warn};

use super::SmtpCtx;
use super::mime::{self, ContentRules, MimeError};
use super::resolve::{Refusal, Target};
use crate::documents::{self, DocumentError, Input};
use crate::intake::{self, Commit, Door, Given, Recipient, Request, Sender};
use crate::model::{Faxbox, Priority, is_email, now};
use crate::notify::{self, SmtpErrorFacts};
use crate::store::{SmtpErrorReport, SmtpLogEntry, Store, StoreError};

/// A finished mail transaction.
pub(super) struct Submission {
    pub sender: String,
    pub targets: Vec<Target>,
    pub message: Vec<u8>,
    pub too_big: bool,
    pub limit: usize,
}

/// Why an email did not become a fax.
enum Failure {
    /// 552: over `smtp_max_msg_size`.
    TooBig(usize),
    /// 552: nothing between DATA and the final dot (Kazoo's code).
    TooSmall,
    /// 554: not a readable email.
    Decode(String),
    /// 554: nothing in it can be faxed; the notes say what was skipped.
    NoAttachment(Vec<String>),
    /// 554: an attachment could not be converted.
    Convert(DocumentError),
    /// 554: a header that asks something of the fax is not readable.
    Header(String),
    /// 554: the sender may no longer use the faxbox (its rules changed
    /// since RCPT).
    NotAllowed(String),
    /// 451: the store failed; the sender's server tries again.
    Store(StoreError),
}

impl Failure {
    /// The SMTP reply, and the reasons for the log and the report.
    fn reply(&self) -> (u16, Vec<String>) {
        match self {
            Failure::TooBig(limit) => (
                552,
                vec![format!(
                    "Message too large: this fax box accepts emails up to {limit} bytes"
                )],
            ),
            Failure::TooSmall => (552, vec!["Message too small: the email is empty".into()]),
            Failure::Decode(why) => (554, vec![format!("Message decode failed: {why}")]),
            Failure::NoAttachment(notes) => {
                let mut errors = vec![
                    "no valid attachment: attach a PDF, TIFF, image or office document".to_owned(),
                ];
                errors.extend(notes.iter().cloned());
                (554, errors)
            }
            Failure::Convert(e) => (554, vec![format!("error converting attachment: {e}")]),
            Failure::Header(why) => (554, vec![why.clone()]),
            Failure::NotAllowed(why) => (554, vec![format!("not allowed: {why}")]),
            Failure::Store(_) => (
                451,
                vec![
                    "Temporary local problem: the fax could not be stored, try again later".into(),
                ],
            ),
        }
    }
}

/// Turns a finished transaction into jobs; returns the reply line.
pub(super) fn deliver(ctx: &SmtpCtx, sub: Submission) -> String {
    match accept(ctx, &sub) {
        Ok(ids) => {
            info!(from = %sub.sender, faxes = ids.len(), "email accepted for faxing");
            match ids.as_slice() {
                [one] => format!("250 queued as {one}"),
                [first, rest @ ..] => {
                    format!("250 queued as {first} and {} more faxes", rest.len())
                }
                [] => "250 queued".to_owned(),
            }
        }
        Err(failure) => {
            let (code, errors) = failure.reply();
            match &failure {
                Failure::Store(e) => warn!(error = %e, "an email could not be stored"),
                _ => {
                    info!(from = %sub.sender, error = %errors[0], "email refused");
                    let attachment = first_attachment_of(&sub.message);
                    record(ctx, &sub.sender, &sub.targets, &errors, attachment, true);
                }
            }
            // One line: the reasons after the first are in the log/report.
            format!("{code} {}", errors.join("; ").replace(['\r', '\n'], " "))
        }
    }
}

fn accept(ctx: &SmtpCtx, sub: &Submission) -> Result<Vec<String>, Failure> {
    if sub.too_big {
        return Err(Failure::TooBig(sub.limit));
    }
    if sub.message.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::TooSmall);
    }
    let Some(first) = sub.targets.first() else {
        // mailin sends no DATA without an accepted recipient.
        return Err(Failure::NoAttachment(vec!["no recipient".into()]));
    };
    let store = &ctx.store;
    let account = &first.faxbox.account_id;
    let rules = ContentRules::from_settings(store, account).map_err(Failure::Store)?;
    let email = mime::read_email(&sub.message, &rules).map_err(|e| match e {
        MimeError::Unreadable(why) => Failure::Decode(why),
    })?;
    let mut inputs: Vec<Input> = Vec::new();
    let body_as_page = store
        .setting_bool(Some(account), "email_body_as_page")
        .map_err(Failure::Store)?;
    // Issue 22: the text is the cover's note, unless it is a page already.
    let cover_note = match store
        .setting_bool(Some(account), "email_body_as_cover_note")
        .map_err(Failure::Store)?
    {
        true if !body_as_page => email
            .body_text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(documents::cover::bounded_note),
        _ => None,
    };
    if body_as_page && let Some(text) = email.body_text.as_deref().filter(|t| !t.trim().is_empty())
    {
        let mut page = Input::new("email.txt", text.as_bytes().to_vec());
        page.content_type = Some("text/plain".into());
        inputs.push(page);
    }
    inputs.extend(email.attachments);
    if inputs.is_empty() {
        return Err(Failure::NoAttachment(email.skipped));
    }
    let password = store
        .setting(Some(account), "email_pdf_password")
        .map_err(Failure::Store)?
        .value;
    let priority = match email.priority.as_deref() {
        Some(p) => p.to_ascii_lowercase().parse().map_err(|_| {
            Failure::Header(format!(
                "{}: {p:?} is not a priority; write low, normal or high",
                mime::PRIORITY_HEADER
            ))
        })?,
        None => Priority::Normal,
    };
    let subject = email
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut recipients = Vec::new();
    for target in &sub.targets {
        let subject_as_header = store
            .setting_bool(Some(&target.faxbox.account_id), "email_subject_as_header")
            .map_err(Failure::Store)?;
        // docs/kazoo.md 6.6: the rest comes from the faxbox, the
        // notification list by the intake's one rule.
        let given = Given {
            fax_identity_name: subject.filter(|_| subject_as_header).map(str::to_owned),
            subject: subject.map(str::to_owned),
            send_at: send_at_of(email.send_at.as_deref(), &target.faxbox)?,
            priority,
            cover_note: cover_note.clone(),
            ..Given::default()
        };
        recipients.push(Recipient {
            account: target.faxbox.account_id.clone(),
            faxbox: Some(target.faxbox.clone()),
            number: target.number.clone(),
            normalized: target.number.clone(),
            to_name: Some(target.number.clone()),
            given,
        });
    }
    let committed = ctx
        .intake
        .submit(Request {
            door: Door::Smtp,
            sender: Sender::Address(sub.sender.clone()),
            recipients,
            documents: inputs,
            password: password.as_str().map(str::to_owned),
            convert: &ctx.options.convert,
            commit: Commit::Jobs,
        })
        .map_err(|r| match r {
            intake::Refusal::NotAllowed(reason) => Failure::NotAllowed(reason),
            intake::Refusal::Document(e) => Failure::Convert(e),
            intake::Refusal::Store(e) => Failure::Store(e),
        })?;
    Ok(committed
        .faxes
        .into_iter()
        .map(|f| f.id.to_string())
        .collect())
}

/// The time `X-Fax-Send-At` names, read in the faxbox's zone when it has
/// no offset; a time past means now.
fn send_at_of(header: Option<&str>, faxbox: &Faxbox) -> Result<Option<i64>, Failure> {
    let Some(text) = header else {
        return Ok(None);
    };
    let zone = crate::timezone::Zone::of(faxbox.fax_timezone.as_deref());
    crate::timezone::read_send_at(text, zone, now())
        .map(Some)
        .map_err(|e| Failure::Header(format!("{}: {e}", mime::SEND_AT_HEADER)))
}

/// A recipient refused at RCPT: logged for the faxbox's account. No report
/// is mailed: the sender may be forged, and their own server already
/// tells them of the 554 (a report would be backscatter).
pub(super) fn log_refusal(ctx: &SmtpCtx, sender: &str, recipient: &str, refusal: Refusal) {
    let (reason, faxbox) = match refusal {
        Refusal::NotFound { reason, faxbox } => (reason, faxbox.map(|f| *f)),
        Refusal::NotAllowed { reason, faxbox } => (reason, Some(*faxbox)),
        Refusal::Store(_) => return,
    };
    let Some(faxbox) = faxbox else {
        // No account to log it for (Kazoo's anonymous errors).
        info!(from = %sender, to = %recipient, reason = %reason, "email to an unknown fax address refused");
        return;
    };
    let target = Target {
        owner_email: None,
        address: recipient.to_owned(),
        original_number: recipient.split('@').next().unwrap_or("").to_owned(),
        number: String::new(),
        faxbox,
    };
    record(ctx, sender, &[target], &[reason], None, false);
}

/// Writes the SMTP log entry (when the faxbox's account keeps one) and
/// queues the report to the sender (when `report` and the account's
/// `report_smtp_errors` allow), in one transaction.
fn record(
    ctx: &SmtpCtx,
    sender: &str,
    targets: &[Target],
    errors: &[String],
    attachment: Option<(String, String)>,
    report: bool,
) {
    let Some(target) = targets.first() else {
        return;
    };
    let store = &ctx.store;
    let f = &target.faxbox;
    let result = (|| -> Result<(), StoreError> {
        let entry = if keeps_log(store, f)? {
            let (content_type, filename) = attachment.unzip();
            Some(SmtpLogEntry {
                account_id: Some(f.account_id.clone()),
                faxbox_id: Some(f.id.clone()),
                from: sender.to_owned(),
                to: targets
                    .iter()
                    .map(|t| t.address.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                original_number: Some(target.original_number.clone()),
                translated_number: Some(target.number.clone()).filter(|n| !n.is_empty()),
                faxbox_domain: target.address.rsplit_once('@').map(|(_, d)| d.to_owned()),
                faxbox_owner_id: f.owner_id.as_ref().map(|o| o.to_string()),
                faxbox_owner_email: target.owner_email.clone(),
                content_type,
                filename,
                errors: errors.to_vec(),
                ..Default::default()
            })
        } else {
            None
        };
        let mail = if report
            && is_email(sender)
            && store.setting_bool(Some(&f.account_id), "report_smtp_errors")?
        {
            let facts = SmtpErrorFacts {
                from: sender,
                to: &target.address,
                original_number: Some(&target.original_number),
                number: Some(target.number.as_str()).filter(|n| !n.is_empty()),
                faxbox: Some(f),
                errors,
                date: now(),
            };
            match notify::outbound_smtp_error(&ctx.options.report_from, &facts) {
                Ok(mail) => mail,
                Err(e) => {
                    warn!(error = %e, "cannot compose the SMTP error report");
                    None
                }
            }
        } else {
            None
        };
        if entry.is_none() && mail.is_none() {
            return Ok(());
        }
        let queued = mail.is_some();
        store.log_smtp_error(
            entry,
            mail.as_ref().map(|m| SmtpErrorReport {
                recipients: &m.recipients,
                message: &m.message,
            }),
        )?;
        if queued {
            (ctx.mail_queued)();
        }
        Ok(())
    })();
    if let Err(e) = result {
        warn!(error = %e, "cannot record a refused email");
    }
}

/// Kazoo's rule (docs/kazoo.md 6.8 step 2): the faxbox's `log_errors` when set,
/// else the account's `log_faxbox_errors`.
fn keeps_log(store: &Store, faxbox: &Faxbox) -> Result<bool, StoreError> {
    match faxbox.log_errors {
        Some(v) => Ok(v),
        None => store.setting_bool(Some(&faxbox.account_id), "log_faxbox_errors"),
    }
}

/// The type and name of the first attachment, for the log (Kazoo's
/// `content_type` and `filename`).
fn first_attachment_of(message: &[u8]) -> Option<(String, String)> {
    mime::first_attachment(message)
}
