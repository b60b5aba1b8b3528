//! What the box tells people after the fact: receipts for sent faxes (one
//! per fax, or one per batch, `batch`), error reports for failed sends and
//! receptions, copies of received faxes, refusals of faxes sent by email;
//! and the faxbox callbacks over HTTP (`courier`).
//!
//! Composing a mail is a pure function of committed facts; the mail then
//! goes into the store's queue, and the `Postman` thread delivers the queue
//! to the configured smarthost, retrying with backoff. So a smarthost outage
//! delays mail but never loses it, and nothing here blocks a fax. A queued
//! mail that no longer opens (changed on the disk) is set aside alone.

mod batch;
mod courier;
mod postman;

pub use batch::{batch_receipt, queue_batch_receipts};
pub use courier::{CALLBACK_TIMEOUT, Courier, signature};
pub use postman::{Backoff, Postman};

use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::model::{Attempt, AttemptOutcome, Fax, Faxbox, UnixTime};

/// A message ready for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub recipients: Vec<String>,
    /// The whole RFC 5322 message.
    pub message: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{address:?} is not an email address Faxbox can send to: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot build the mail: {0}")]
    Build(String),
}

const OUTBOUND_FAX: &str = include_str!("../../assets/templates/outbound_fax.txt");
const OUTBOUND_FAX_ERROR: &str = include_str!("../../assets/templates/outbound_fax_error.txt");
const INBOUND_FAX: &str = include_str!("../../assets/templates/inbound_fax.txt");
const INBOUND_FAX_ERROR: &str = include_str!("../../assets/templates/inbound_fax_error.txt");
const OUTBOUND_SMTP_FAX_ERROR: &str =
    include_str!("../../assets/templates/outbound_smtp_fax_error.txt");

/// What a notification about an outbound fax is made of.
pub struct OutboundFacts<'a> {
    pub fax: &'a Fax,
    pub faxbox: Option<&'a Faxbox>,
    /// The faxbox owner's address, when it has an owner.
    pub owner_email: Option<&'a str>,
    pub history: &'a [Attempt],
    /// The fax as sent, as a PDF, when one can be made.
    pub pdf: Option<&'a [u8]>,
}

/// Who hears about an outbound fax: the first non-empty of the job's own
/// list, the faxbox's outbound list, the faxbox owner (docs/kazoo.md 10.2).
pub fn outbound_recipients(facts: &OutboundFacts<'_>) -> Vec<String> {
    let mut list = if !facts.fax.notify_email.is_empty() {
        facts.fax.notify_email.clone()
    } else if let Some(f) = facts
        .faxbox
        .filter(|f| !f.notifications.outbound.send_to.is_empty())
    {
        f.notifications.outbound.send_to.clone()
    } else {
        facts
            .owner_email
            .map(|e| vec![e.to_owned()])
            .unwrap_or_default()
    };
    for address in &mut list {
        *address = address.trim().to_ascii_lowercase();
    }
    list.sort();
    list.dedup();
    list
}

/// The receipt for a completed fax; `None` when nobody is to be told.
pub fn outbound_receipt(
    from: &str,
    facts: &OutboundFacts<'_>,
) -> Result<Option<Mail>, NotifyError> {
    let last = facts
        .history
        .iter()
        .rev()
        .find(|a| a.outcome == Some(AttemptOutcome::Success));
    let report = last.map(|a| a.report.clone()).unwrap_or_default();
    let fields = common_fields(facts)
        .into_iter()
        .chain([
            ("pages", report.pages_sent.to_string()),
            (
                "transfer_rate",
                report.bit_rate.map_or("unknown".into(), |r| r.to_string()),
            ),
            (
                "ecm",
                match report.ecm {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "unknown",
                }
                .to_owned(),
            ),
            (
                "remote_station_id",
                report
                    .remote_station_id
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "(did not identify itself)".into()),
            ),
            (
                "date",
                date(last.and_then(|a| a.ended).unwrap_or(facts.fax.modified)),
            ),
        ])
        .collect::<Vec<_>>();
    compose(
        from,
        outbound_recipients(facts),
        OUTBOUND_FAX,
        &fields,
        outbound_attachment(facts),
    )
}

/// The error report for a failed fax; `None` when nobody is to be told.
pub fn outbound_error(from: &str, facts: &OutboundFacts<'_>) -> Result<Option<Mail>, NotifyError> {
    let attachment_note = if facts.pdf.is_some() {
        "\n\nThe fax that could not be sent is attached."
    } else {
        ""
    };
    let fields = common_fields(facts)
        .into_iter()
        .chain([
            (
                "error",
                facts
                    .fax
                    .error
                    .clone()
                    .unwrap_or_else(|| "Unknown Error".into()),
            ),
            ("history", history(facts.history)),
            ("date", date(facts.fax.modified)),
            ("attachment_note", attachment_note.to_owned()),
        ])
        .collect::<Vec<_>>();
    compose(
        from,
        outbound_recipients(facts),
        OUTBOUND_FAX_ERROR,
        &fields,
        outbound_attachment(facts),
    )
}

fn common_fields(facts: &OutboundFacts<'_>) -> Vec<(&'static str, String)> {
    let fax = facts.fax;
    vec![
        ("callee", callee(fax)),
        ("caller", caller(fax)),
        (
            "attempts",
            format!("{} of {}", fax.attempts, fax.retries.max(1)),
        ),
        (
            "faxbox",
            facts.faxbox.map_or("(none)".into(), |f| f.name.clone()),
        ),
        ("fax_id", fax.id.to_string()),
    ]
}

/// The sending side as the receipt names it: the caller's name, else its
/// number.
fn caller(fax: &Fax) -> String {
    fax.from_name
        .clone()
        .or_else(|| fax.from_number.clone())
        .unwrap_or_else(|| "(no caller id)".into())
}

fn callee(fax: &Fax) -> String {
    match &fax.to_name {
        Some(name) if name != &fax.to_number => format!("{name} ({})", fax.to_number),
        _ => fax.to_number.clone(),
    }
}

/// One line per attempt: when, how it ended, the codes and texts.
fn history(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "  (the fax never reached a line)".into();
    }
    attempts
        .iter()
        .map(|a| {
            let r = &a.report;
            format!(
                "  {}. {} on {}: {}{}{} - {} of {} pages",
                a.number,
                date(a.started),
                a.line,
                a.outcome.map_or("still running", AttemptOutcome::as_str),
                r.result_code
                    .map(|c| format!(", code {c}"))
                    .unwrap_or_default(),
                r.result_text
                    .as_deref()
                    .map(|t| format!(", {t}"))
                    .unwrap_or_default(),
                r.pages_sent,
                r.pages_total,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Dates in mails are UTC: Faxbox carries no time-zone database.
fn date(t: UnixTime) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Kazoo's attachment name (docs/kazoo.md 10.3): `<name or number>_<date>.pdf`,
/// lower-case, spaces as `_`, and no colons, which Windows cannot open
/// (KTEL-10).
pub fn attachment_name(name_or_number: &str, t: UnixTime) -> String {
    let when = DateTime::<Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d_%H-%M-%S").to_string())
        .unwrap_or_default();
    let base: String = format!("{name_or_number}_{when}")
        .to_lowercase()
        .chars()
        .map(|c| match c {
            c if c.is_whitespace() => '_',
            ':' | '/' | '\\' | '"' | '<' | '>' | '|' | '?' | '*' => '-',
            c => c,
        })
        .collect();
    format!("{base}.pdf")
}

/// Fills a template: its first line is `Subject: ...`, the rest the body;
/// `{{name}}` takes the field's value.
fn render(template: &str, fields: &[(&str, String)]) -> (String, String) {
    let mut text = template.to_owned();
    for (name, value) in fields {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    let (first, body) = text.split_once('\n').unwrap_or((&text, ""));
    let subject = first
        .strip_prefix("Subject:")
        .unwrap_or(first)
        .trim()
        .to_owned();
    (subject, body.trim_start_matches('\n').to_owned())
}

fn mailbox(address: &str) -> Result<Mailbox, NotifyError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| NotifyError::Address {
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

/// A mail from a template, with an optional PDF attachment; `None` when
/// nobody is to be told.
fn compose(
    from: &str,
    recipients: Vec<String>,
    template: &str,
    fields: &[(&str, String)],
    attachment: Option<(String, &[u8])>,
) -> Result<Option<Mail>, NotifyError> {
    if recipients.is_empty() {
        return Ok(None);
    }
    let (subject, body) = render(template, fields);
    // Every message gets its own Message-ID (RFC 5322 3.6.4), made here so
    // that a delivery retried from the queue keeps it, and says it was
    // sent by a machine (RFC 3834 Auto-Submitted), so that vacation
    // responders and mail loops leave it alone.
    let mut builder = lettre::Message::builder()
        .from(mailbox(from)?)
        .subject(subject)
        .date_now()
        .message_id(Some(message_id(from)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    for r in &recipients {
        builder = builder.to(mailbox(r)?);
    }
    let text = SinglePart::plain(body);
    let message = match attachment {
        Some((name, pdf)) => {
            let attachment = Attachment::new(name).body(
                pdf.to_vec(),
                ContentType::parse("application/pdf").expect("a valid content type"),
            );
            builder.multipart(MultiPart::mixed().singlepart(text).singlepart(attachment))
        }
        None => builder.singlepart(text),
    }
    .map_err(|e| NotifyError::Build(e.to_string()))?;
    Ok(Some(Mail {
        recipients,
        message: message.formatted(),
    }))
}

/// `<random@domain of the sender>`: unique without a registry, and on a
/// domain the box sends as.
fn message_id(from: &str) -> String {
    use rand::Rng;
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .filter(|d| !d.is_empty())
        .unwrap_or("faxbox.invalid");
    let unique: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("<{}.{unique}@{domain}>", crate::model::now())
}

/// The attachment of an outbound fax's mail.
fn outbound_attachment<'a>(facts: &OutboundFacts<'a>) -> Option<(String, &'a [u8])> {
    facts.pdf.map(|pdf| {
        (
            attachment_name(
                facts.fax.to_name.as_deref().unwrap_or(&facts.fax.to_number),
                facts.fax.modified,
            ),
            pdf,
        )
    })
}

/// What Kazoo's `outbound_smtp_fax_error` tells the sender of an email that
/// could not become a fax (docs/kazoo.md 10.1).
pub struct SmtpErrorFacts<'a> {
    /// The sender, who is told.
    pub from: &'a str,
    /// The address the email went to.
    pub to: &'a str,
    pub original_number: Option<&'a str>,
    pub number: Option<&'a str>,
    pub faxbox: Option<&'a Faxbox>,
    /// Every reason, first first.
    pub errors: &'a [String],
    pub date: UnixTime,
}

/// The report to the sender of an email that could not become a fax.
pub fn outbound_smtp_error(
    from: &str,
    facts: &SmtpErrorFacts<'_>,
) -> Result<Option<Mail>, NotifyError> {
    let fields = [
        (
            "error",
            facts
                .errors
                .first()
                .cloned()
                .unwrap_or_else(|| "Unknown Error".into()),
        ),
        (
            "errors",
            facts
                .errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("from", facts.from.to_owned()),
        ("to", facts.to.to_owned()),
        (
            "original_number",
            facts.original_number.unwrap_or("(none)").to_owned(),
        ),
        ("number", facts.number.unwrap_or("not valid").to_owned()),
        (
            "faxbox",
            facts.faxbox.map_or("(none)".into(), |f| f.name.clone()),
        ),
        ("date", date(facts.date)),
    ];
    compose(
        from,
        vec![facts.from.to_ascii_lowercase()],
        OUTBOUND_SMTP_FAX_ERROR,
        &fields,
        None,
    )
}

/// What a notification about a received fax is made of.
pub struct InboundFacts<'a> {
    /// The inbox entry; `None` when nothing arrived.
    pub fax: Option<&'a Fax>,
    /// The id the inbox entry gets, when the mail is composed before the
    /// fax is stored (both are committed together).
    pub fax_id: Option<&'a crate::model::FaxId>,
    pub faxbox: &'a Faxbox,
    pub owner_email: Option<&'a str>,
    pub from_number: &'a str,
    pub to_number: &'a str,
    pub rx: &'a crate::model::RxResult,
    pub pdf: Option<&'a [u8]>,
}

/// Who hears about a received fax: the faxbox owner and the faxbox's
/// inbound list, together (docs/kazoo.md 8.2).
pub fn inbound_recipients(facts: &InboundFacts<'_>) -> Vec<String> {
    let mut list: Vec<String> = facts
        .faxbox
        .notifications
        .inbound
        .send_to
        .iter()
        .map(String::as_str)
        .chain(facts.owner_email)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    list.sort();
    list.dedup();
    list
}

fn inbound_fields(facts: &InboundFacts<'_>, note: &str) -> Vec<(&'static str, String)> {
    let rx = facts.rx;
    vec![
        (
            "caller",
            if facts.from_number.is_empty() {
                "an unknown number".into()
            } else {
                facts.from_number.to_owned()
            },
        ),
        ("callee", facts.to_number.to_owned()),
        ("faxbox", facts.faxbox.name.clone()),
        ("pages", rx.pages.to_string()),
        ("transfer_rate", rx.bit_rate.to_string()),
        ("ecm", if rx.ecm { "on" } else { "off" }.to_owned()),
        (
            "remote_station_id",
            if rx.remote_station_id.trim().is_empty() {
                "(did not identify itself)".into()
            } else {
                rx.remote_station_id.clone()
            },
        ),
        (
            "error",
            format!("{} (code {})", rx.result_text, rx.result_code),
        ),
        (
            "date",
            date(facts.fax.map_or_else(crate::model::now, |f| f.created)),
        ),
        (
            "fax_id",
            facts
                .fax
                .map(|f| &f.id)
                .or(facts.fax_id)
                .map_or("(none)".into(), |id| id.to_string()),
        ),
        ("note", note.to_owned()),
    ]
}

fn inbound_attachment<'a>(facts: &InboundFacts<'a>) -> Option<(String, &'a [u8])> {
    facts.pdf.map(|pdf| {
        let who = if facts.from_number.is_empty() {
            "fax"
        } else {
            facts.from_number
        };
        (
            attachment_name(who, facts.fax.map_or_else(crate::model::now, |f| f.created)),
            pdf,
        )
    })
}

/// The mail that delivers a received fax.
pub fn inbound_fax(from: &str, facts: &InboundFacts<'_>) -> Result<Option<Mail>, NotifyError> {
    compose(
        from,
        inbound_recipients(facts),
        INBOUND_FAX,
        &inbound_fields(facts, ""),
        inbound_attachment(facts),
    )
}

/// The mail about a receive that failed or was cut short (with the pages
/// that arrived, when some did).
pub fn inbound_error(from: &str, facts: &InboundFacts<'_>) -> Result<Option<Mail>, NotifyError> {
    let note = if facts.pdf.is_some() {
        "\nThe pages that arrived are attached; the rest is missing.\n"
    } else {
        ""
    };
    compose(
        from,
        inbound_recipients(facts),
        INBOUND_FAX_ERROR,
        &inbound_fields(facts, note),
        inbound_attachment(facts),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, AttemptReport, AttemptStage, FaxId, Folder, JobStatus};

    fn fax() -> Fax {
        Fax {
            id: FaxId::from("0123456789abcdef0123456789abcdef"),
            account_id: AccountId::from("a"),
            faxbox_id: None,
            folder: Folder::Outbox,
            status: Some(JobStatus::Completed),
            to_number: "+15552345678".into(),
            to_number_normalized: "+15552345678".into(),
            to_name: Some("Dr. Who: Clinic".into()),
            from_number: Some("15550001111".into()),
            from_name: Some("Acme".into()),
            fax_identity_number: None,
            fax_identity_name: None,
            fax_timezone: None,
            retries: 3,
            attempts: 1,
            retry_after: 0,
            due_at: 0,
            send_at: None,
            priority: Default::default(),
            notify_email: vec!["Bob@Example.com".into(), "bob@example.com".into()],
            subject: None,
            cover_page: None,
            cover_note: None,
            error: None,
            rx_result: None,
            batch_id: None,
            created: 1_700_000_000,
            modified: 1_700_000_060,
        }
    }

    fn attempt(outcome: AttemptOutcome, text: &str) -> Attempt {
        Attempt {
            id: 1,
            fax_id: fax().id,
            number: 1,
            line: "loopback".into(),
            started: 1_700_000_000,
            ended: Some(1_700_000_050),
            stage: AttemptStage::End,
            outcome: Some(outcome),
            report: AttemptReport {
                result_code: Some(0),
                result_text: Some(text.into()),
                pages_sent: 2,
                pages_total: 2,
                bit_rate: Some(14_400),
                ecm: Some(true),
                remote_station_id: Some("+1 555 234 5678".into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn attachment_names_have_no_colons() {
        let n = attachment_name("Dr. Who: Clinic", 1_700_000_060);
        assert_eq!(n, "dr._who-_clinic_2023-11-14_22-14-20.pdf");
        assert!(!n.contains(':') && !n.contains(' '));
    }

    #[test]
    fn recipients_follow_kazoo_order_without_duplicates() {
        let f = fax();
        let facts = OutboundFacts {
            fax: &f,
            faxbox: None,
            owner_email: Some("owner@example.com"),
            history: &[],
            pdf: None,
        };
        assert_eq!(outbound_recipients(&facts), vec!["bob@example.com"]);
        let mut g = fax();
        g.notify_email.clear();
        let facts = OutboundFacts { fax: &g, ..facts };
        assert_eq!(outbound_recipients(&facts), vec!["owner@example.com"]);
        let facts = OutboundFacts {
            owner_email: None,
            ..facts
        };
        assert!(
            outbound_receipt("faxbox@localhost", &facts)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn receipt_carries_the_facts_and_the_pdf() {
        let f = fax();
        let history = [attempt(AttemptOutcome::Success, "OK")];
        let facts = OutboundFacts {
            fax: &f,
            faxbox: None,
            owner_email: None,
            history: &history,
            pdf: Some(b"%PDF-1.4 test"),
        };
        let mail = outbound_receipt("faxbox@localhost", &facts)
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&mail.message);
        assert!(
            text.contains("Subject: Fax has been sent to Dr. Who: Clinic (+15552345678)"),
            "{text}"
        );
        assert!(text.contains("14400 bit/s"), "{text}");
        assert!(text.contains("application/pdf"));
        assert!(text.contains("dr._who-_clinic_2023-11-14_22-14-20.pdf"));
        assert_eq!(mail.recipients, vec!["bob@example.com"]);
    }

    #[test]
    fn error_report_lists_every_attempt() {
        let mut f = fax();
        f.status = Some(JobStatus::Failed);
        f.error = Some("the number was busy (after 2 attempts)".into());
        let mut second = attempt(AttemptOutcome::Failure, "busy");
        second.number = 2;
        let history = [attempt(AttemptOutcome::Failure, "no answer"), second];
        let facts = OutboundFacts {
            fax: &f,
            faxbox: None,
            owner_email: None,
            history: &history,
            pdf: None,
        };
        let mail = outbound_error("faxbox@localhost", &facts).unwrap().unwrap();
        let text = String::from_utf8_lossy(&mail.message);
        assert!(text.contains("Subject: Error sending Fax to"), "{text}");
        assert!(text.contains("the number was busy (after 2 attempts)"));
        assert!(
            text.contains("1. 2023-11-14") && text.contains("2. 2023-11-14"),
            "{text}"
        );
        assert!(text.contains("no answer") && text.contains("busy"));
        assert!(!text.contains("{{"), "every field is filled: {text}");
    }
}
