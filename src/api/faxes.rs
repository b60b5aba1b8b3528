//! `/v2/accounts/{A}/faxes`: creating an outbound fax by multipart upload
//! (docs/kazoo.md 2.3), following it in the outgoing queue and the outbox, the
//! inbox, and downloading a fax as PDF, TIFF or the original document.
//!
//! Unlike Kazoo, documents are checked before the reply: a document that
//! cannot be faxed is a 400 with the reason and nothing is stored
//! (docs/architecture.md, invariant 4), and the 201 comes only after the job and its documents
//! are committed together (docs/architecture.md, invariant 1). PDFs are opened and counted then,
//! and rendered into the fax image when the fax is sent (rendering is most
//! of intake's cost, and a call takes far longer anyway); other documents
//! are converted at once and the fax image is stored with the job.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::faxboxes::OneOrMany;
use super::fetch::{self, DocumentRef};
use super::multipart::{self, Part};
use super::reply::{Answer, ApiError, Reply, Success};
use super::{Ctx, Paging, document, json_body, parse_data};
use crate::documents::{self, Input};
use crate::intake;
use crate::model::{
    AccountId, Attempt, AttemptOutcome, DocumentInfo, DocumentKind, Fax, FaxId, Faxbox, FaxboxId,
    FieldError, Folder, JobStatus, Priority, ServiceNumbers, UnixTime, check_fax_number, is_email,
    now, to_gregorian,
};
use crate::store::{FaxList, Mark};
use crate::timezone::Zone;

#[derive(Debug, Default, Deserialize)]
struct NotifyEmail {
    send_to: Option<OneOrMany>,
}

#[derive(Debug, Default, Deserialize)]
struct FaxNotifications {
    email: Option<NotifyEmail>,
    /// In Kazoo's schema, never implemented there either (docs/kazoo.md 1.2).
    #[allow(dead_code)]
    sms: Option<Value>,
}

/// A fax job as a client sends it (docs/kazoo.md 1.3). Kazoo fields Faxbox does
/// not act on are accepted and ignored; any other key is the client's own,
/// kept and returned as given (`document::extra_keys`), as Kazoo keeps it.
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)]
struct FaxInput {
    to_number: Option<String>,
    /// Several numbers for one document (issue 22): one job each, in one
    /// batch. A list, or in the query string of a raw body a comma-separated
    /// text.
    to_numbers: Option<Value>,
    to_name: Option<String>,
    from_number: Option<String>,
    from_name: Option<String>,
    fax_identity_number: Option<String>,
    fax_identity_name: Option<String>,
    fax_timezone: Option<String>,
    timezone: Option<String>,
    retries: Option<i64>,
    notifications: Option<FaxNotifications>,
    faxbox_id: Option<String>,
    document: Option<DocumentRef>,
    subject: Option<String>,
    attempts: Option<Value>,
    flags: Option<Value>,
    bypass_e164: Option<Value>,
    custom_sip_headers: Option<Value>,
    ensure_valid_caller_id: Option<Value>,
    owner_id: Option<Value>,
    tx_result: Option<Value>,
    retry_after: Option<Value>,
    /// Opens the job's encrypted PDFs (Faxbox; Kazoo cannot send them).
    /// Used at intake and never stored or shown.
    document_password: Option<String>,
    /// Faxbox's own (issue 22): not before this time, and which due fax
    /// goes first.
    send_at: Option<Value>,
    priority: Option<Value>,
    /// A cover page first (issue 22); left out, as the faxbox says.
    cover_page: Option<bool>,
    cover_note: Option<String>,
}

/// The keys of a fax that Faxbox models or derives; any other key a client
/// sends is kept as given.
const MODELLED: &[&str] = &[
    "to_number",
    "to_numbers",
    "batch_id",
    "to_name",
    "from_number",
    "from_name",
    "fax_identity_number",
    "fax_identity_name",
    "fax_timezone",
    "timezone",
    "retries",
    "notifications",
    "faxbox_id",
    "subject",
    "attempts",
    "flags",
    "bypass_e164",
    "custom_sip_headers",
    "ensure_valid_caller_id",
    "owner_id",
    "tx_result",
    "retry_after",
    "document_password",
    "send_at",
    "priority",
    "cover_page",
    "cover_note",
    "scheduled_for",
    "folder",
    "status",
    "delivered",
    "history",
    "pages",
    "error",
    "rx_result",
];

/// The request split into the job's JSON and its documents.
struct Upload {
    json: Option<Vec<u8>>,
    documents: Vec<Input>,
}

/// The document types a raw body may be (Kazoo: PDF and TIFF; Faxbox also
/// faxes photos and printers' page rasters).
const RAW_TYPES: [(&str, &str); 7] = [
    ("application/pdf", "document.pdf"),
    ("application/x-pdf", "document.pdf"),
    ("image/tiff", "document.tiff"),
    ("image/png", "document.png"),
    ("image/jpeg", "document.jpg"),
    ("image/pwg-raster", "document.pwg"),
    ("image/urf", "document.urf"),
];

fn split_upload(
    content_type: Option<&str>,
    body: &[u8],
    query: &[(String, String)],
) -> Result<Upload, ApiError> {
    let media = content_type.map(multipart::media_type).unwrap_or_default();
    if let Some((_, name)) = RAW_TYPES.iter().find(|(t, _)| *t == media) {
        // A raw document: the job's fields come from the query string, as
        // Kazoo's crossbar takes request data for binary bodies.
        let data: serde_json::Map<String, Value> = query
            .iter()
            // Request options, not the fax's fields.
            .filter(|(k, _)| !matches!(k.as_str(), "auth_token" | "verb" | "accept"))
            .map(|(k, v)| {
                let value = match (k.as_str(), v.parse::<i64>()) {
                    ("retries", Ok(n)) => json!(n),
                    _ => json!(v),
                };
                (k.clone(), value)
            })
            .collect();
        return Ok(Upload {
            json: Some(json!({ "data": data }).to_string().into_bytes()),
            documents: vec![Input {
                bytes: body.to_vec(),
                name: (*name).to_owned(),
                content_type: Some(media),
                password: None,
            }],
        });
    }
    if media.starts_with("multipart/") {
        let boundary = content_type
            .and_then(|c| multipart::parameter(c, "boundary"))
            .ok_or_else(|| {
                ApiError::BadRequest("the multipart Content-Type has no boundary".into())
            })?;
        let parts = multipart::parse(body, &boundary).map_err(ApiError::BadRequest)?;
        let mut upload = Upload {
            json: None,
            documents: Vec::new(),
        };
        for (i, part) in parts.into_iter().enumerate() {
            if upload.json.is_none() && is_json_part(&part) {
                upload.json = Some(part.body);
                continue;
            }
            let name = part
                .disposition("filename")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("document {}", i + 1));
            upload.documents.push(Input {
                content_type: part.content_type(),
                password: None,
                name,
                bytes: part.body,
            });
        }
        Ok(upload)
    } else if media.is_empty() || media == "application/json" || media.ends_with("+json") {
        Ok(Upload {
            json: Some(body.to_vec()),
            documents: Vec::new(),
        })
    } else {
        Err(ApiError::UnsupportedType(format!(
            "a fax is sent as multipart/mixed or multipart/form-data (one JSON part, then the documents), as JSON with document.url, or as a PDF or TIFF body with its fields in the query string; not as {media}"
        )))
    }
}

/// The job's JSON part: labelled as JSON, or a form field named `data` or
/// `json` that is not a file.
fn is_json_part(part: &Part) -> bool {
    match part.content_type() {
        Some(ct) => ct == "application/json" || ct.ends_with("+json"),
        None => {
            part.disposition("filename").is_none()
                && part
                    .disposition("name")
                    .is_some_and(|n| n == "data" || n == "json")
        }
    }
}

/// Whose faxes a request is about: an account, or one faxbox of it
/// (`/faxboxes/{FAXBOX_ID}/faxes/...`).
pub struct Scope<'a> {
    pub account: &'a AccountId,
    pub faxbox: Option<Faxbox>,
}

/// `PUT /faxes` and `PUT /faxes/outgoing`.
pub fn create(
    ctx: &Ctx,
    scope: &Scope<'_>,
    content_type: Option<&str>,
    body: &[u8],
    query: &[(String, String)],
) -> Result<Answer, ApiError> {
    let upload = split_upload(content_type, body, query)?;
    let (input, extra): (FaxInput, _) = match &upload.json {
        Some(json) if !json.iter().all(u8::is_ascii_whitespace) => {
            let (mut data, _) = document::envelope(json, "fax")?;
            let input = document::typed(&mut data, "fax")?;
            (input, document::extra_keys(&data, MODELLED))
        }
        _ => (FaxInput::default(), Default::default()),
    };
    submit(ctx, scope, input, upload.documents, extra)
}

/// What a new fax's fields say once checked: everything `submit` needs
/// besides the documents.
struct Checked {
    faxbox: Option<Faxbox>,
    /// Each number as given and normalized.
    numbers: Vec<(String, String)>,
    retries: Option<u8>,
    send_at: Option<UnixTime>,
    priority: Priority,
    notify: Option<Vec<String>>,
}

/// Validates a job, fetches or takes its documents and hands it to the
/// intake, which fills it from its faxbox, converts the documents and
/// commits them together.
fn submit(
    ctx: &Ctx,
    scope: &Scope<'_>,
    input: FaxInput,
    documents: Vec<Input>,
    extra: serde_json::Map<String, Value>,
) -> Result<Answer, ApiError> {
    if ctx.intake_closed() {
        return Err(ApiError::Unavailable(
            "the fax box is stopping and takes no new faxes now; nothing was stored: send it \
             again in a minute"
                .into(),
        ));
    }
    let account = scope.account;
    let checked = check_fax(ctx, scope, &input, documents.is_empty())?;
    let documents = fetch_document(ctx, account, input.document.as_ref(), documents)?;
    let given = intake::Given {
        from_number: input.from_number,
        from_name: input.from_name,
        fax_identity_number: input.fax_identity_number,
        fax_identity_name: input.fax_identity_name,
        fax_timezone: input.timezone.or(input.fax_timezone),
        retries: checked.retries,
        notify: checked.notify,
        subject: input.subject,
        send_at: checked.send_at,
        priority: checked.priority,
        cover_page: input.cover_page,
        cover_note: input.cover_note,
    };
    let recipients = checked
        .numbers
        .into_iter()
        .map(|(number, normalized)| intake::Recipient {
            account: account.clone(),
            faxbox: checked.faxbox.clone(),
            number,
            normalized,
            to_name: input.to_name.clone(),
            given: given.clone(),
        })
        .collect();
    let mut faxes = ctx
        .intake
        .submit(intake::Request {
            door: intake::Door::Api,
            sender: intake::Sender::Account(account.clone()),
            recipients,
            documents,
            password: input.document_password,
            convert: &ctx.options.convert,
            commit: intake::Commit::Jobs,
        })?
        .faxes;
    if !extra.is_empty() {
        for fax in &faxes {
            ctx.store.set_fax_extra(&fax.id, &extra)?;
        }
    }
    // 201 Created, as Kazoo answers a new fax (faxes.md); several numbers
    // are answered with their batch's summary.
    let data = match faxes[0].batch_id.clone() {
        Some(batch) => super::batches::summary(&ctx.store.batch_in(account, &batch)?),
        None => detail(ctx, faxes.remove(0))?,
    };
    Ok(Answer::Json(Success::ok(&data).with_status(201)))
}

/// Checks every field of a new fax, all errors at once (docs/kazoo.md 2.3's
/// validation order), before any document is fetched.
fn check_fax(
    ctx: &Ctx,
    scope: &Scope<'_>,
    input: &FaxInput,
    no_upload: bool,
) -> Result<Checked, ApiError> {
    let account = scope.account;
    let mut errors: Vec<FieldError> = Vec::new();
    let faxbox = faxbox_of(ctx, scope, input.faxbox_id.as_deref(), &mut errors)?;
    if no_upload && input.document.as_ref().is_none_or(|d| d.url.is_none()) {
        errors.push(FieldError::new(
            "document.url",
            "required",
            "add document url or upload a document",
        ));
    }
    let service = service_numbers(ctx, account)?;
    let limit = ctx
        .store
        .setting_i64(Some(account), "max_recipients_per_fax")?;
    let numbers = check_recipients(
        input.to_number.as_deref(),
        input.to_numbers.as_ref(),
        service,
        limit,
        &mut errors,
    );
    check_from_number(input.from_number.as_deref(), &mut errors);
    let retries = check_retries(input.retries, &mut errors);
    let own_zone = input.timezone.as_ref().or(input.fax_timezone.as_ref());
    if let Some(tz) = own_zone
        && let Err(e) = crate::timezone::check(tz)
    {
        errors.push(FieldError::new("fax_timezone", "format", e));
    }
    // A local send_at is read in the fax's own zone, else its faxbox's.
    let zone = Zone::of(
        own_zone
            .map(String::as_str)
            .or(faxbox.as_ref().and_then(|f| f.fax_timezone.as_deref())),
    );
    let send_at = check_send_at(input.send_at.as_ref(), zone, &mut errors);
    let priority = check_priority(input.priority.as_ref(), &mut errors);
    check_cover_note(input.cover_note.as_deref(), &mut errors);
    let notify = check_emails(input.notifications.as_ref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    Ok(Checked {
        faxbox,
        numbers,
        retries,
        send_at,
        priority,
        notify,
    })
}

/// The faxbox a new fax is sent from: the one of the path, or `faxbox_id`
/// in this account; an entry in `errors` when they disagree or there is
/// no such faxbox.
fn faxbox_of(
    ctx: &Ctx,
    scope: &Scope<'_>,
    faxbox_id: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<Faxbox>, ApiError> {
    Ok(match (faxbox_id, &scope.faxbox) {
        (Some(id), Some(f)) if id != f.id.as_str() => {
            errors.push(FieldError::new(
                "faxbox_id",
                "scope",
                format!("this request is for faxbox {}, not {id}", f.id),
            ));
            None
        }
        (_, Some(f)) => Some(f.clone()),
        (Some(id), None) => match ctx.store.faxbox_in(scope.account, &FaxboxId(id.to_owned())) {
            Ok(f) => Some(f),
            Err(crate::store::StoreError::NotFound { .. }) => {
                errors.push(FieldError::new(
                    "faxbox_id",
                    "not_found",
                    format!("there is no faxbox {id} in this account"),
                ));
                None
            }
            Err(e) => return Err(e.into()),
        },
        (None, None) => None,
    })
}

/// The documents of a valid job: those uploaded, or the one its
/// `document.url` names, fetched now, after the job is known to be valid,
/// so that a bad job costs no fetch (Kazoo's validation order, 2.3).
fn fetch_document(
    ctx: &Ctx,
    account: &AccountId,
    document: Option<&DocumentRef>,
    uploaded: Vec<Input>,
) -> Result<Vec<Input>, ApiError> {
    match document.filter(|d| d.url.is_some()) {
        Some(doc) if uploaded.is_empty() => {
            // Read at each request, so an administrator's change applies
            // at once.
            let policy = fetch::FetchPolicy {
                allow_private: ctx
                    .store
                    .setting_bool(Some(account), "allow_private_document_urls")?,
                ..ctx.options.fetch.clone()
            };
            Ok(vec![fetch::fetch(doc, &policy)?])
        }
        _ => Ok(uploaded),
    }
}

/// The numbers a new fax goes to, each given and normalized: `to_number`
/// (Kazoo's), or `to_numbers` (issue 22), with `to_number` allowed beside
/// it only when it is one of them. A number given twice is faxed once.
/// Entries in `errors` for each bad number and for more numbers than
/// `limit` (`max_recipients_per_fax`).
fn check_recipients(
    to_number: Option<&str>,
    to_numbers: Option<&Value>,
    service: ServiceNumbers,
    limit: i64,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let list: Vec<String> = match to_numbers {
        None | Some(Value::Null) => {
            let to_number = to_number.unwrap_or_default();
            return check_number(to_number, service, errors)
                .map(|n| vec![(to_number.to_owned(), n)])
                .unwrap_or_default();
        }
        // A raw document's fields come from the query string.
        Some(Value::String(text)) => text
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect(),
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(n) => list.push(n.clone()),
                    other => errors.push(FieldError::new(
                        &format!("to_numbers[{i}]"),
                        "type",
                        format!("each number in to_numbers is a text such as \"+15551234567\", not {other}"),
                    )),
                }
            }
            list
        }
        Some(other) => {
            errors.push(FieldError::new(
                "to_numbers",
                "type",
                format!("to_numbers is a list of fax numbers such as [\"+15551234567\", \"+15557654321\"], not {other}"),
            ));
            return Vec::new();
        }
    };
    if list.is_empty() && errors.is_empty() {
        errors.push(FieldError::new(
            "to_numbers",
            "minItems",
            "to_numbers names no number: add at least one number to send the fax to",
        ));
        return Vec::new();
    }
    let mut numbers: Vec<(String, String)> = Vec::new();
    for (i, given) in list.iter().enumerate() {
        match check_fax_number(&format!("to_numbers[{i}]"), given, service) {
            Ok(n) if numbers.iter().any(|(_, seen)| *seen == n) => {}
            Ok(n) => numbers.push((given.clone(), n)),
            Err(e) => errors.push(FieldError::new(
                &format!("to_numbers[{i}]"),
                "format",
                format!("add a valid number to send the fax to ({})", e.message),
            )),
        }
    }
    if let Some(one) = to_number.filter(|n| !n.trim().is_empty()) {
        let among = check_fax_number("to_number", one, service)
            .is_ok_and(|n| numbers.iter().any(|(_, seen)| *seen == n));
        if !among && errors.is_empty() {
            errors.push(FieldError::new(
                "to_number",
                "conflict",
                format!(
                    "to_number {one} is not one of to_numbers: give the numbers in to_numbers \
                     alone (to_number may repeat one of them)"
                ),
            ));
        }
    }
    if numbers.len() as i64 > limit {
        errors.push(FieldError::new(
            "to_numbers",
            "maxItems",
            format!(
                "a fax may go to at most {limit} numbers at once (setting max_recipients_per_fax), \
                 and to_numbers names {}: send it in parts, or ask the administrator to raise the limit",
                numbers.len()
            ),
        ));
    }
    numbers
}

/// A cover note is bounded: the page holds about this much (issue 22).
fn check_cover_note(note: Option<&str>, errors: &mut Vec<FieldError>) {
    let limit = documents::cover::MAX_NOTE_CHARS;
    if let Some(note) = note
        && note.chars().count() > limit
    {
        errors.push(
            FieldError::new(
                "cover_note",
                "maxLength",
                format!(
                    "a cover note holds at most {limit} characters (one page); this one has {}",
                    note.chars().count()
                ),
            )
            .with(
                Some(limit.into()),
                note.chars().take(100).collect::<String>(),
            ),
        );
    }
}

/// Whether the account may fax emergency and service numbers.
fn service_numbers(ctx: &Ctx, account: &AccountId) -> Result<ServiceNumbers, ApiError> {
    Ok(
        if ctx
            .store
            .setting_bool(Some(account), "allow_service_numbers")?
        {
            ServiceNumbers::Allowed
        } else {
            ServiceNumbers::Refused
        },
    )
}

/// The caller ID a job gives goes into the call as it is: it must be a
/// number, checked as a number to fax to is.
fn check_from_number(from_number: Option<&str>, errors: &mut Vec<FieldError>) {
    if let Some(Err(e)) = from_number
        .filter(|n| !n.is_empty())
        .map(|n| check_fax_number("from_number", n, ServiceNumbers::Refused))
    {
        errors.push(FieldError::new(
            "from_number",
            "format",
            format!(
                "the caller ID (from_number) must be a phone number ({})",
                e.message
            ),
        ));
    }
}

/// The number to fax to, normalized; an entry in `errors` when it is not
/// one (Kazoo's words).
fn check_number(
    to_number: &str,
    service: ServiceNumbers,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match check_fax_number("to_number", to_number, service) {
        Ok(n) => Some(n),
        Err(e) => {
            errors.push(FieldError::new(
                "to_number",
                "required",
                format!("add a valid number to send the fax to ({})", e.message),
            ));
            None
        }
    }
}

/// The time a client asked the fax to go no earlier than (`send_at`), read
/// in `zone` when it has no offset; a time past means now.
pub(crate) fn check_send_at(
    value: Option<&Value>,
    zone: Zone,
    errors: &mut Vec<FieldError>,
) -> Option<UnixTime> {
    let text = match value {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) if s.trim().is_empty() => return None,
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match crate::timezone::read_send_at(&text, zone, now()) {
        Ok(at) => Some(at),
        Err(e) => {
            errors.push(
                FieldError::new("send_at", "format", format!("send_at: {e}"))
                    .with(None, text.as_str()),
            );
            None
        }
    }
}

/// A fax's `priority`: low, normal (the default) or high.
pub(crate) fn check_priority(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Priority {
    let text = match value {
        None | Some(Value::Null) => return Priority::Normal,
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match text.trim().to_ascii_lowercase().parse() {
        Ok(p) => p,
        Err(_) => {
            errors.push(
                FieldError::new(
                    "priority",
                    "enum",
                    format!("priority is low, normal or high, not {text:?}"),
                )
                .with(None, text.as_str()),
            );
            Priority::Normal
        }
    }
}

/// The attempt budget a client asked for, if it asked.
fn check_retries(retries: Option<i64>, errors: &mut Vec<FieldError>) -> Option<u8> {
    match retries {
        Some(r) if !(0..=4).contains(&r) => {
            errors.push(FieldError::new(
                "retries",
                "maximum",
                format!("retries is the total number of attempts, 0 to 4; {r} is out of range"),
            ));
            Some(0)
        }
        Some(r) => Some(r as u8),
        None => None,
    }
}

/// The addresses to notify, if the client named any.
fn check_emails(
    notifications: Option<&FaxNotifications>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<String>> {
    let emails = notifications
        .and_then(|n| n.email.as_ref())
        .and_then(|e| e.send_to.clone())
        .map(OneOrMany::into_vec)?;
    for email in &emails {
        if !is_email(email) {
            errors.push(FieldError::new(
                "notifications.email.send_to",
                "format",
                format!("{email:?} is not an email address"),
            ));
        }
    }
    Some(emails)
}

/// What `resubmit` may change: the job's fields, validated as for a new
/// fax. The documents stay the ones sent before.
fn resubmit_changes(
    body: &[u8],
    service: ServiceNumbers,
    zone: Zone,
) -> Result<impl FnOnce(&mut Fax), ApiError> {
    let input: FaxInput = parse_data(body, "fax")?;
    let mut errors = Vec::new();
    for (given, field) in [
        (input.document.is_some(), "document"),
        (input.faxbox_id.is_some(), "faxbox_id"),
    ] {
        if given {
            errors.push(FieldError::new(
                field,
                "unsupported",
                format!(
                    "resubmit sends the same documents from the same faxbox; to change {field}, send a new fax"
                ),
            ));
        }
    }
    let number = input
        .to_number
        .as_deref()
        .map(|n| (n.to_owned(), check_number(n, service, &mut errors)));
    check_from_number(input.from_number.as_deref(), &mut errors);
    let retries = check_retries(input.retries, &mut errors);
    let emails = check_emails(input.notifications.as_ref(), &mut errors);
    let send_at = check_send_at(input.send_at.as_ref(), zone, &mut errors);
    check_cover_note(input.cover_note.as_deref(), &mut errors);
    let priority = input
        .priority
        .as_ref()
        .map(|p| check_priority(Some(p), &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let FaxInput {
        to_name,
        from_number,
        from_name,
        fax_identity_number,
        fax_identity_name,
        fax_timezone,
        timezone,
        subject,
        cover_page,
        cover_note,
        ..
    } = input;
    Ok(move |fax: &mut Fax| {
        if let Some((number, Some(normalized))) = number {
            fax.to_number = number;
            fax.to_number_normalized = normalized;
        }
        if let Some(r) = retries {
            fax.retries = r;
        }
        if let Some(e) = emails {
            fax.notify_email = e;
        }
        if let Some(p) = priority {
            fax.priority = p;
        }
        if let Some(at) = send_at {
            fax.send_at = Some(at);
            fax.due_at = fax.due_at.max(at);
        }
        let keep = |new: Option<String>, old: &mut Option<String>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(to_name, &mut fax.to_name);
        keep(from_number, &mut fax.from_number);
        keep(from_name, &mut fax.from_name);
        keep(fax_identity_number, &mut fax.fax_identity_number);
        keep(fax_identity_name, &mut fax.fax_identity_name);
        keep(timezone.or(fax_timezone), &mut fax.fax_timezone);
        keep(subject, &mut fax.subject);
        keep(cover_note, &mut fax.cover_note);
        if cover_page.is_some() {
            fax.cover_page = cover_page;
        }
    })
}

/// One attempt as the API shows it, with Kazoo's `tx_result` names.
#[derive(Debug, Serialize)]
struct AttemptView {
    attempt: u32,
    line: String,
    started: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<i64>,
    stage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(flatten)]
    tx_result: Value,
}

/// An attempt's result with Kazoo's keys: those of a real call (the
/// normalized `Fax-*` values: `ecm_used`, `transferred_pages`,
/// `total_pages`, `transfer_rate`, `remote_station_id`, ...) and those of
/// `faxes.json` (`pages_sent`, `fax_speed`, `fax_receiver_id`, ...), so a
/// client reading either finds them; Faxbox's `hangup_cause` beside them.
fn tx_result(a: &Attempt, total_pages: Option<u32>) -> Value {
    let r = &a.report;
    let success = a.outcome == Some(AttemptOutcome::Success);
    let total = Some(r.pages_total)
        .filter(|&n| n > 0)
        .or(total_pages)
        .unwrap_or(0);
    let remote = r.remote_station_id.clone().unwrap_or_default();
    let elapsed = a.ended.map_or(0, |e| e - a.started);
    json!({
        "success": success,
        "result_code": r.result_code.unwrap_or(0),
        "result_text": r.result_text.clone().unwrap_or_default(),
        "result_cause": r.hangup_cause,
        "hangup_cause": r.hangup_cause,
        "ecm_used": r.ecm.unwrap_or(false),
        "t38_used": false,
        "transferred_pages": r.pages_sent,
        "total_pages": total,
        "bad_rows": 0,
        "transfer_rate": r.bit_rate.unwrap_or(0),
        "remote_station_id": remote,
        "time_elapsed": elapsed,
        "pages_sent": r.pages_sent,
        "fax_speed": r.bit_rate.unwrap_or(0),
        "fax_bad_rows": 0,
        "fax_error_correction": r.ecm.unwrap_or(false),
        "fax_receiver_id": remote,
        "error_message": if success { String::new() } else { r.result_text.clone().unwrap_or_default() },
    })
}

/// `faxes.json`'s default `tx_result`, for a fax not tried yet (Kazoo
/// writes it into every new job).
fn untried(total_pages: Option<u32>) -> Value {
    json!({
        "success": false,
        "result_code": 0,
        "result_text": "",
        "ecm_used": false,
        "t38_used": false,
        "transferred_pages": 0,
        "total_pages": total_pages.unwrap_or(0),
        "bad_rows": 0,
        "transfer_rate": 0,
        "remote_station_id": "",
        "time_elapsed": 0,
        "pages_sent": 0,
        "fax_speed": 0,
        "fax_bad_rows": 0,
        "fax_error_correction": false,
        "fax_receiver_id": "",
        "error_message": "",
    })
}

/// A receive's result with the keys of Kazoo's `rx_result` (the
/// normalized `Fax-*` values), Faxbox's own beside them.
fn rx_result(r: &crate::model::RxResult) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut v {
        for (k, x) in [
            ("ecm_used", json!(r.ecm)),
            ("t38_used", json!(false)),
            ("transferred_pages", json!(r.pages)),
            ("total_pages", json!(r.pages)),
            ("bad_rows", json!(0)),
            ("transfer_rate", json!(r.bit_rate)),
            ("time_elapsed", json!(r.duration_s.round() as i64)),
        ] {
            m.insert(k.to_owned(), x);
        }
    }
    v
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> AttemptView {
        AttemptView {
            attempt: a.number,
            line: a.line.clone(),
            started: to_gregorian(a.started),
            ended: a.ended.map(to_gregorian),
            stage: a.stage.as_str(),
            outcome: a.outcome.map(|o| o.as_str()),
            tx_result: tx_result(a, None),
        }
    }
}

/// A fax with Kazoo's public fields, `status`, Gregorian `created`,
/// `modified` and `delivered`, the last attempt as `tx_result` and every
/// attempt in `history`.
#[derive(Debug, Serialize)]
pub struct FaxView {
    id: FaxId,
    folder: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    to_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fax_identity_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fax_identity_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fax_timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faxbox_id: Option<FaxboxId>,
    /// The batch of a fax sent to several numbers at once (issue 22).
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_id: Option<crate::model::BatchId>,
    retries: u8,
    attempts: u8,
    retry_after: i64,
    notifications: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    /// Whether a cover page goes first; absent: as the faxbox says.
    #[serde(skip_serializing_if = "Option::is_none")]
    cover_page: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cover_note: Option<String>,
    /// Outbound faxes: `low`, `normal` or `high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<&'static str>,
    /// The time asked for, RFC 3339 in the fax's zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    send_at: Option<String>,
    /// A fax not sent yet: when it will go (its send_at, retry delay and
    /// faxbox's sending windows all counted), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pages: Option<u32>,
    created: i64,
    modified: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rx_result: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<AttemptView>,
}

fn view(ctx: &Ctx, fax: Fax, docs: &[DocumentInfo], attempts: &[Attempt]) -> FaxView {
    // A job on a line shows its live progress instead of `processing`, as
    // Kazoo's live status query does (docs/kazoo.md 2.6).
    let status = fax.status.map(|s| {
        if s == JobStatus::Processing {
            ctx.live.text(&fax.id).unwrap_or_else(|| s.to_string())
        } else {
            s.to_string()
        }
    });
    // Before a PDF is rendered, its pages were counted at intake.
    let counted = || {
        docs.iter()
            .filter(|d| d.kind == DocumentKind::Original)
            .map(|d| d.pages)
            .sum::<Option<u32>>()
            .filter(|&n| n > 0)
    };
    let pages = docs
        .iter()
        .find(|d| matches!(d.kind, DocumentKind::FaxTiff | DocumentKind::ReceivedTiff))
        .and_then(|d| d.pages)
        .or_else(|| fax.rx_result.as_ref().map(|r| r.pages))
        .or_else(counted);
    let zone = Zone::of(fax.fax_timezone.as_deref());
    let outbox = fax.folder == Folder::Outbox;
    let scheduled_for = scheduled_for(ctx, &fax).map(|t| zone.rfc3339(t));
    FaxView {
        id: fax.id,
        folder: fax.folder.as_str(),
        status,
        to_number: fax.to_number,
        to_name: fax.to_name,
        from_number: fax.from_number,
        from_name: fax.from_name,
        fax_identity_number: fax.fax_identity_number,
        fax_identity_name: fax.fax_identity_name,
        fax_timezone: fax.fax_timezone,
        faxbox_id: fax.faxbox_id,
        batch_id: fax.batch_id,
        retries: fax.retries,
        attempts: fax.attempts,
        retry_after: fax.retry_after,
        notifications: json!({ "email": { "send_to": fax.notify_email } }),
        subject: fax.subject,
        cover_page: fax.cover_page,
        cover_note: fax.cover_note,
        priority: outbox.then(|| fax.priority.as_str()),
        send_at: fax.send_at.map(|t| zone.rfc3339(t)),
        scheduled_for,
        error: fax.error,
        pages,
        created: to_gregorian(fax.created),
        modified: to_gregorian(fax.modified),
        delivered: (fax.status == Some(JobStatus::Completed)).then(|| to_gregorian(fax.modified)),
        tx_result: match fax.folder {
            Folder::Outbox => Some(
                attempts
                    .last()
                    .map_or_else(|| untried(pages), |a| tx_result(a, pages)),
            ),
            Folder::Inbox => None,
        },
        rx_result: fax.rx_result.as_ref().map(rx_result),
        history: attempts.iter().map(AttemptView::from).collect(),
    }
}

/// When a fax not sent yet will go: its due time (send_at or retry delay),
/// moved to the next opening of its faxbox's sending windows. The
/// dispatcher holds it to the same time when it falls due.
fn scheduled_for(ctx: &Ctx, fax: &Fax) -> Option<UnixTime> {
    if !matches!(
        fax.status,
        Some(JobStatus::Pending | JobStatus::AttachingFiles)
    ) {
        return None;
    }
    let due = fax.due_at.max(now());
    let faxbox = fax
        .faxbox_id
        .as_ref()
        .and_then(|id| ctx.store.faxbox(id).ok());
    Some(match faxbox {
        Some(f) => crate::sending_window::faxbox_opening(&f, due),
        None => due,
    })
}

/// A fax as a single read shows it: the client's own keys, with the view
/// over them.
fn detail(ctx: &Ctx, fax: Fax) -> Result<Value, ApiError> {
    let docs = ctx.store.documents(&fax.id)?;
    let attempts = ctx.store.attempts(&fax.id)?;
    let extra = ctx.store.fax_extra(&fax.id)?;
    let ours = serde_json::to_value(view(ctx, fax, &docs, &attempts)).unwrap_or(Value::Null);
    Ok(document::overlay(&extra, ours))
}

/// Which faxes a listing shows (docs/kazoo.md 2.2).
pub use crate::store::Listing;

/// A listing's `created_from`/`created_to` window in Gregorian seconds
/// (paging and filters are `Paging`'s).
#[derive(Debug, Default)]
pub struct Page {
    created_from: Option<i64>,
    created_to: Option<i64>,
}

impl Page {
    pub fn from_query<'a>(query: impl Fn(&str) -> Option<&'a str>) -> Result<Page, ApiError> {
        let mut errors = Vec::new();
        let mut number = |key: &str| -> Option<i64> {
            let text = query(key)?;
            match text.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    errors.push(
                        FieldError::new(
                            key,
                            "type",
                            format!("{key} must be a whole number, not {text:?}"),
                        )
                        .with(Some("integer".into()), text),
                    );
                    None
                }
            }
        };
        let page = Page {
            created_from: number("created_from"),
            created_to: number("created_to"),
        };
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(ApiError::Invalid(errors))
        }
    }
}

/// A listing row: Kazoo's view row (`id`, `status`, `to`, `from`,
/// `created`, ...) with the fax's public fields, newest first.
pub fn list(
    ctx: &Ctx,
    scope: &Scope<'_>,
    listing: Listing,
    page: &Page,
    paging: &Paging,
) -> Result<Answer, ApiError> {
    let unix = |gregorian: i64| gregorian - crate::model::GREGORIAN_UNIX_OFFSET;
    let list = FaxList {
        account: scope.account.clone(),
        faxbox: scope.faxbox.as_ref().map(|f| f.id.clone()),
        listing,
        created_from: page.created_from.map(unix),
        created_to: page.created_to.map(unix),
    };
    let locate = |key: &str| Ok(ctx.store.fax_mark(&list, &FaxId(key.to_owned()))?);
    let read = |start, n| -> Result<Vec<(Mark, Value)>, ApiError> {
        Ok(ctx
            .store
            .fax_page(&list, start, n)?
            .into_iter()
            .map(|(mark, f)| {
                let row = serde_json::to_value(view(ctx, f, &[], &[])).unwrap_or(Value::Null);
                (mark, row)
            })
            .collect())
    };
    // The rows shown get the whole fax: its result (`tx_result` with
    // `success` and `total_pages`, which Monster UI's fax app reads from the
    // listing) and the client's own keys.
    paging.answer_from(locate, read, |row| {
        let id = FaxId(row["id"].as_str().unwrap_or_default().to_owned());
        let fax = ctx.store.fax(&id)?;
        let (to, from) = (fax.to_number.clone(), fax.from_number.clone());
        let mut full = detail(ctx, fax)?;
        full["to"] = json!(to);
        full["from"] = json!(from);
        Ok(full)
    })
}

/// The fax `id` of this account, in the folder the path names.
fn find(ctx: &Ctx, scope: &Scope<'_>, folder: Folder, id: &str) -> Result<Fax, ApiError> {
    let fax = ctx.store.fax_in(scope.account, &FaxId(id.to_owned()))?;
    if let Some(faxbox) = &scope.faxbox
        && fax.faxbox_id.as_ref() != Some(&faxbox.id)
    {
        return Err(ApiError::NotFound {
            message: format!("fax {id} is not a fax of faxbox {}", faxbox.id),
            cause: id.to_owned(),
        });
    }
    if fax.folder != folder {
        return Err(ApiError::NotFound {
            message: format!("fax {id} is not in the {}", folder.as_str()),
            cause: id.to_owned(),
        });
    }
    Ok(fax)
}

pub fn get(ctx: &Ctx, scope: &Scope<'_>, folder: Folder, id: &str) -> Result<Answer, ApiError> {
    let fax = find(ctx, scope, folder, id)?;
    Ok((&detail(ctx, fax)?).into())
}

pub fn delete(ctx: &Ctx, scope: &Scope<'_>, folder: Folder, id: &str) -> Result<Answer, ApiError> {
    let fax = find(ctx, scope, folder, id)?;
    let mut view = detail(ctx, fax.clone())?;
    ctx.store.delete_fax(&fax.id)?;
    view["_read_only"] = json!({ "deleted": true });
    Ok((&view).into())
}

/// `DELETE .../{id}/attachment` (faxes.md): the fax's documents go, its
/// record stays.
pub fn delete_attachment(
    ctx: &Ctx,
    scope: &Scope<'_>,
    folder: Folder,
    id: &str,
) -> Result<Answer, ApiError> {
    let fax = find(ctx, scope, folder, id)?;
    ctx.store.delete_documents(&fax.id)?;
    Ok((&detail(ctx, fax)?).into())
}

/// `GET .../attachment?format=pdf|tiff|original` (docs/kazoo.md 2.5; Kazoo's
/// default format is PDF).
pub fn attachment(
    ctx: &Ctx,
    scope: &Scope<'_>,
    folder: Folder,
    id: &str,
    format: Option<&str>,
    disposition: Option<&str>,
) -> Result<Answer, ApiError> {
    let fax = find(ctx, scope, folder, id)?;
    let docs = ctx.store.documents(&fax.id)?;
    let first = |kind: DocumentKind| docs.iter().find(|d| d.kind == kind);
    let image = first(DocumentKind::FaxTiff).or_else(|| first(DocumentKind::ReceivedTiff));
    let missing = |what: &str| ApiError::NotFound {
        message: format!("fax {id} has no {what} yet"),
        cause: id.to_owned(),
    };
    let (bytes, content_type, ext) = match format.unwrap_or("pdf") {
        "pdf" => match first(DocumentKind::Pdf) {
            Some(d) => (
                ctx.store.document_bytes(&d.id)?,
                "application/pdf".to_owned(),
                "pdf".to_owned(),
            ),
            // A PDF not rendered yet (its fax has not been sent): the PDF.
            None if image.is_none()
                && docs
                    .iter()
                    .filter(|d| d.kind == DocumentKind::Original)
                    .count()
                    == 1
                && first(DocumentKind::Original)
                    .is_some_and(|d| d.content_type == "application/pdf") =>
            {
                let d = first(DocumentKind::Original).expect("checked above");
                (
                    ctx.store.document_bytes(&d.id)?,
                    "application/pdf".to_owned(),
                    "pdf".to_owned(),
                )
            }
            None => {
                let tiff = image.ok_or_else(|| missing("fax image"))?;
                let pdf = documents::tiff_to_pdf(&ctx.store.document_bytes(&tiff.id)?)
                    .map_err(|e| ApiError::Internal(format!("fax {id}: {e}")))?;
                (pdf, "application/pdf".to_owned(), "pdf".to_owned())
            }
        },
        "tiff" => {
            let tiff = image.ok_or_else(|| missing("fax image"))?;
            (
                ctx.store.document_bytes(&tiff.id)?,
                "image/tiff".to_owned(),
                "tiff".to_owned(),
            )
        }
        "original" => {
            let doc = first(DocumentKind::Original)
                .or(image)
                .ok_or_else(|| missing("document"))?;
            let ext = doc
                .filename
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .filter(|e| {
                    !e.is_empty() && e.len() <= 5 && e.chars().all(|c| c.is_ascii_alphanumeric())
                })
                .unwrap_or_else(|| "bin".into());
            (
                ctx.store.document_bytes(&doc.id)?,
                doc.content_type.clone(),
                ext,
            )
        }
        other => {
            return Err(ApiError::field(
                "format",
                "enum",
                format!("invalid format for attachment: {other:?}; use pdf, tiff or original"),
            ));
        }
    };
    let disposition = match disposition.unwrap_or("attachment") {
        d @ ("attachment" | "inline") => d,
        other => {
            return Err(ApiError::field(
                "disposition",
                "enum",
                format!("{other:?} is not a disposition; use attachment or inline"),
            ));
        }
    };
    // No colons in the name (docs/kazoo.md 2.5; they upset Windows).
    let stamp = chrono::DateTime::from_timestamp(fax.created, 0)
        .map(|t| t.format("%Y-%m-%d_%H-%M-%S").to_string())
        .unwrap_or_else(|| fax.created.to_string());
    Ok(Answer::Raw(Reply::bytes(&content_type, bytes).with_header(
        "Content-Disposition",
        format!("{disposition}; filename=fax_document_{stamp}.{ext}"),
    )))
}

/// `PUT /faxes/outbox/{id}` `{"action":"resubmit"}` sends a finished fax
/// again as a new job; `PUT /faxes/inbox/{id}` `{"action":"forward",
/// "data":{"to_number":...}}` faxes a received fax on (docs/kazoo.md 2.4;
/// Kazoo's forward did not work, docs/kazoo.md 12).
pub fn action(
    ctx: &Ctx,
    scope: &Scope<'_>,
    folder: Folder,
    id: &str,
    body: &[u8],
) -> Result<Answer, ApiError> {
    let top = json_body(body)?;
    let action = requested_action(&top)?;
    let fax = find(ctx, scope, folder, id)?;
    match (folder, action) {
        (Folder::Outbox, "resubmit") => {
            // `data` may change the job's fields, checked as for a new fax.
            let again = if top.get("data").is_some() {
                let zone = Zone::of(fax.fax_timezone.as_deref());
                let change = resubmit_changes(body, service_numbers(ctx, &fax.account_id)?, zone)?;
                ctx.store.resubmit_changed(&fax.id, change)?
            } else {
                ctx.store.resubmit(&fax.id)?
            };
            (ctx.wake)();
            Ok(Answer::Json(
                Success::ok(&detail(ctx, again)?).with_status(201),
            ))
        }
        (Folder::Inbox, "forward") => {
            let input: FaxInput = if top.get("data").is_some() {
                parse_data(body, "fax")?
            } else {
                FaxInput::default()
            };
            let docs = ctx.store.documents(&fax.id)?;
            let received = docs
                .iter()
                .find(|d| d.kind == DocumentKind::ReceivedTiff)
                .ok_or_else(|| ApiError::NotFound {
                    message: format!("fax {id} has no received pages to forward"),
                    cause: id.to_owned(),
                })?;
            let tiff = Input {
                bytes: ctx.store.document_bytes(&received.id)?,
                name: format!("received_{id}.tiff"),
                content_type: Some("image/tiff".into()),
                password: None,
            };
            submit(ctx, scope, input, vec![tiff], Default::default())
        }
        _ => Err(ApiError::field(
            "action",
            "enum",
            format!(
                "invalid action {action:?}; the {} takes {}",
                folder.as_str(),
                match folder {
                    Folder::Outbox => "resubmit",
                    Folder::Inbox => "forward",
                }
            ),
        )),
    }
}

/// The `action` word of a `PUT` on one fax (`{"action": "resubmit"}`).
fn requested_action(top: &Value) -> Result<&str, ApiError> {
    match top.get("action") {
        None | Some(Value::Null) => Err(ApiError::field("action", "required", "action required")),
        Some(Value::String(a)) => Ok(a),
        Some(_) => Err(ApiError::field("action", "type", "action must be a word")),
    }
}

/// `PUT /faxes/outgoing/{id}` `{"action":"cancel"}` or
/// `{"action":"retry_now"}`: an operator's hand on a job not finished yet
/// (the dashboard's `c` and `r`). A job on a line is hung up, and its
/// attempt recorded, before it becomes `cancelled`.
pub fn control(ctx: &Ctx, scope: &Scope<'_>, id: &str, body: &[u8]) -> Result<Answer, ApiError> {
    let top = json_body(body)?;
    let action = requested_action(&top)?;
    let fax = find(ctx, scope, Folder::Outbox, id)?;
    match action {
        "cancel" => {
            if fax.status.is_some_and(JobStatus::is_terminal) {
                return Err(ApiError::Conflict(format!(
                    "fax {id} is {}; only a fax not finished yet can be cancelled",
                    fax.status.map_or("received".into(), |s| s.to_string())
                )));
            }
            let done = ctx
                .store
                .request_cancel(&fax.id, "cancelled by the operator")?;
            (ctx.wake)();
            let status = if done { 200 } else { 202 };
            let view = detail(ctx, ctx.store.fax(&fax.id)?)?;
            Ok(Answer::Json(Success::ok(&view).with_status(status)))
        }
        "retry_now" => {
            let fax = ctx.store.retry_now(&fax.id)?;
            (ctx.wake)();
            Ok((&detail(ctx, fax)?).into())
        }
        _ => Err(ApiError::field(
            "action",
            "enum",
            format!("invalid action {action:?}; an outgoing fax takes cancel or retry_now"),
        )),
    }
}
