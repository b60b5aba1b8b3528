//! The IPP operations of a FaxOut printer: each request against one
//! faxbox's printer becomes its response. Print jobs are kept by the store
//! (`store::PrintJob`); their state is read from the fax jobs they became.

use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, StatusCode};
use ipp::value::IppValue;
use tracing::{info, warn};

use super::printer::{self, MAX_DESTINATIONS, PrinterView};
use super::wire::{self, Request, Response, attr, keyword, keywords, name, string_of, text, uri};
use super::{Caller, Http, IppCtx, check_operation_group};
use crate::documents::{self, DocumentError, Input};
use crate::intake::{self, Commit, Door, Given, Recipient, Sender};
use crate::model::{Fax, JobStatus, ServiceNumbers, check_fax_number, now};
use crate::store::{PrintCover, PrintJob, StoreError};

/// A refusal with its status and, for bad values, the attributes to
/// return in the unsupported-attributes group.
struct Refusal {
    status: StatusCode,
    message: String,
    unsupported: Vec<IppAttribute>,
}

fn refusal(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
        unsupported: Vec::new(),
    }
}

fn store_failed(e: StoreError) -> Refusal {
    warn!(error = %e, "the store failed during an IPP request");
    if e.is_unavailable() {
        return refusal(
            StatusCode::ServerErrorBusy,
            "the fax box cannot store the fax right now (its disk is full or failing); print again in a minute",
        );
    }
    refusal(
        StatusCode::ServerErrorInternalError,
        "the fax could not be stored; try again",
    )
}

/// Answers one request.
pub(super) fn operate(ctx: &IppCtx, http: &Http, request: &Request) -> Response {
    if let Err(response) = check_operation_group(request) {
        return response;
    }
    let ok = || {
        Response::new(
            request.version,
            StatusCode::SuccessfulOk,
            request.request_id,
        )
    };
    // Attributes ignored are returned in the unsupported-attributes group
    // with a successful-ok-ignored-or-substituted-attributes (RFC 8011
    // 4.1.7).
    let ok_but = |ignored: Vec<IppAttribute>| {
        if ignored.is_empty() {
            return ok();
        }
        let mut r = Response::new(
            request.version,
            StatusCode::SuccessfulOkIgnoredOrSubstitutedAttributes,
            request.request_id,
        );
        r.push_group(DelimiterTag::UnsupportedAttributes, ignored);
        r
    };
    // Print-Job, Create-Job and Send-Document bring new faxes.
    let closed = matches!(request.operation, 0x0002 | 0x0005 | 0x0006) && ctx.intake.is_closed();
    let result = match request.operation {
        _ if closed => Err(refusal(
            StatusCode::ServerErrorNotAcceptingJobs,
            "the fax box is stopping and takes no new faxes now; print again in a minute",
        )),
        0x0002 => print_job(ctx, http, request)
            .map(|(job, ignored)| job_created(ok_but(ignored), http, &job, ctx)),
        0x0004 => validate(ctx, http, request).map(|accepted| ok_but(accepted.ignored)),
        0x0005 => create_job(ctx, http, request)
            .map(|(job, ignored)| job_created(ok_but(ignored), http, &job, ctx)),
        0x0006 => send_document(ctx, http, request).map(|job| job_created(ok(), http, &job, ctx)),
        0x0008 => cancel_job(ctx, http, request).map(|_| ok()),
        0x0009 => get_job(ctx, http, request).map(|attrs| {
            let mut r = ok();
            r.push_group(DelimiterTag::JobAttributes, attrs);
            r
        }),
        0x000A => get_jobs(ctx, http, request).map(|jobs| {
            let mut r = ok();
            for attrs in jobs {
                r.push_group(DelimiterTag::JobAttributes, attrs);
            }
            r
        }),
        0x000B => printer_attributes(ctx, http, request).map(|attrs| {
            let mut r = ok();
            r.push_group(DelimiterTag::PrinterAttributes, attrs);
            r
        }),
        other => Err(refusal(
            StatusCode::ServerErrorOperationNotSupported,
            format!("operation 0x{other:04x} is not supported by a fax printer"),
        )),
    };
    match result {
        Ok(response) => response,
        Err(r) => {
            info!(faxbox = %http.faxbox.id, status = ?r.status, error = %r.message, "IPP request refused");
            let mut response = Response::new(request.version, r.status, request.request_id)
                .with_message(r.message);
            if !r.unsupported.is_empty() {
                response.push_group(DelimiterTag::UnsupportedAttributes, r.unsupported);
            }
            response
        }
    }
}

fn printer_uri(http: &Http) -> String {
    format!(
        "ipp://{}{}{}",
        http.host,
        super::PRINTER_PATH,
        http.faxbox.id
    )
}

fn requested(request: &Request) -> Vec<String> {
    request
        .operation_attr("requested-attributes")
        .map(|v| {
            wire::values_of(v)
                .into_iter()
                .filter_map(string_of)
                .collect()
        })
        .unwrap_or_default()
}

fn printer_attributes(
    ctx: &IppCtx,
    http: &Http,
    request: &Request,
) -> Result<Vec<IppAttribute>, Refusal> {
    let jobs = ctx
        .store
        .print_jobs(&http.faxbox.id, 500)
        .map_err(store_failed)?;
    let mut queued = 0;
    let mut sending = false;
    for job in &jobs {
        let state = job_state(ctx, job).map_err(store_failed)?;
        if state.code < 7 {
            queued += 1;
        }
        sending |= state.code == 5;
    }
    let view = PrinterView {
        faxbox: &http.faxbox,
        uri: printer_uri(http),
        more_info: format!(
            "http://{}{}{}",
            http.host,
            super::PRINTER_PATH,
            http.faxbox.id
        ),
        basic_auth: ctx.options.require_auth,
        sending,
        queued,
        up_time: now() as i32,
        document_timeout: ctx.options.document_timeout.as_secs().min(i32::MAX as u64) as i32,
    };
    Ok(printer::select(
        printer::attributes(&view),
        &requested(request),
    ))
}

/// The fax numbers of a job (`destination-uris`, each a collection with a
/// `destination-uri` that is a `tel:` URI), and the destinations ignored:
/// those of another scheme next to at least one `tel:` (CUPS's
/// `fax-job.test` gives a phone number and an `ipp:` printer together).
///
/// A job without a number is answered
/// client-error-attributes-or-values-not-supported, never
/// client-error-bad-request: CUPS's ipp backend cancels the job on the
/// former and retries the latter every 10 seconds for ever, which would
/// hold every later job of the queue (issue 21).
fn destinations(
    request: &Request,
    service: ServiceNumbers,
    limit: usize,
) -> Result<(Vec<String>, Vec<IppAttribute>), Refusal> {
    let no_number = |message: &str| Refusal {
        status: StatusCode::ClientErrorAttributesOrValuesNotSupported,
        message: message.to_owned(),
        unsupported: Vec::new(),
    };
    let Some(value) = request.job_attr("destination-uris") else {
        return Err(no_number(
            "a fax needs a number: print again and give the fax number \
             (destination-uris with a tel: URI, e.g. tel:+15551234567)",
        ));
    };
    let unsupported = |message: String| Refusal {
        status: StatusCode::ClientErrorAttributesOrValuesNotSupported,
        message,
        unsupported: vec![attr("destination-uris", value.clone())],
    };
    let list = wire::values_of(value);
    if list.len() > MAX_DESTINATIONS {
        return Err(unsupported(format!(
            "a print job may fax to at most {MAX_DESTINATIONS} numbers, not {}",
            list.len()
        )));
    }
    let mut numbers = Vec::new();
    let mut others = Vec::new();
    let mut first_other = None;
    for item in list {
        let IppValue::Collection(members) = item else {
            return Err(unsupported(
                "each destination-uris value is a collection with a destination-uri".into(),
            ));
        };
        let Some(uri) = members.get("destination-uri").and_then(string_of) else {
            return Err(unsupported(
                "a destination-uris collection has no destination-uri".into(),
            ));
        };
        if uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:")) {
            let number = tel_number(&uri, service).map_err(unsupported)?;
            // The same number twice is one fax.
            if !numbers.contains(&number) {
                numbers.push(number);
            }
        } else {
            first_other.get_or_insert(uri);
            others.push(item.clone());
        }
    }
    if numbers.is_empty() {
        return Err(match first_other {
            Some(uri) => unsupported(format!(
                "destination {uri} is not a tel: URI; a fax goes to a phone number such as tel:+15551234567"
            )),
            None => no_number("a fax needs a number: destination-uris is empty"),
        });
    }
    if numbers.len() > limit {
        return Err(unsupported(format!(
            "a print job may fax to at most {limit} numbers at once (setting \
             max_recipients_per_fax), and this one names {}: print it again for the others",
            numbers.len()
        )));
    }
    let ignored = if others.is_empty() {
        Vec::new()
    } else {
        vec![attr("destination-uris", wire::one_or_set(others))]
    };
    Ok((numbers, ignored))
}

/// `tel:+1-555-123-4567;phone-context=...` -> `+15551234567` (RFC 3966:
/// visual separators are allowed, parameters follow a `;`).
pub(crate) fn tel_number(uri: &str, service: ServiceNumbers) -> Result<String, String> {
    let Some(rest) = uri
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("tel:"))
        .and_then(|_| uri.get(4..))
    else {
        return Err(format!(
            "destination {uri} is not a tel: URI; a fax goes to a phone number such as tel:+15551234567"
        ));
    };
    let number = rest.split(';').next().unwrap_or("");
    check_fax_number("destination-uri", number, service)
        .map_err(|e| format!("destination {uri}: {}", e.message))
}

/// What Validate-Job, Print-Job and Create-Job agree to: the numbers to
/// fax, and the attributes ignored (answered with
/// successful-ok-ignored-or-substituted-attributes).
struct Accepted {
    numbers: Vec<String>,
    ignored: Vec<IppAttribute>,
}

/// The checks shared by Validate-Job, Print-Job and Create-Job.
fn validate(ctx: &IppCtx, http: &Http, request: &Request) -> Result<Accepted, Refusal> {
    if let Some(format) = request
        .operation_attr("document-format")
        .and_then(string_of)
    {
        let format = format.to_ascii_lowercase();
        if !printer::FORMATS.contains(&format.as_str()) {
            return Err(Refusal {
                status: StatusCode::ClientErrorDocumentFormatNotSupported,
                message: format!(
                    "a fax printer takes PDF, JPEG, PWG Raster or Apple Raster, not {format}"
                ),
                unsupported: vec![attr("document-format", wire::mime(&format))],
            });
        }
    }
    if let Some(compression) = request.operation_attr("compression").and_then(string_of)
        && compression != "none"
    {
        return Err(Refusal {
            status: StatusCode::ClientErrorCompressionNotSupported,
            message: format!("compression {compression} is not supported; send the document as is"),
            unsupported: vec![attr("compression", keyword(&compression))],
        });
    }
    let service = match ctx
        .store
        .setting_bool(Some(&http.faxbox.account_id), "allow_service_numbers")
    {
        Ok(true) => ServiceNumbers::Allowed,
        Ok(false) => ServiceNumbers::Refused,
        Err(e) => return Err(store_failed(e)),
    };
    let limit = ctx
        .store
        .setting_i64(Some(&http.faxbox.account_id), "max_recipients_per_fax")
        .map_err(store_failed)?;
    let (numbers, ignored) = destinations(request, service, limit.max(1) as usize)?;
    // Asked now, so that Validate-Job and Create-Job refuse who may not
    // print here before a document is sent; the intake asks again.
    intake::check_sender(&ctx.store, &sender_of(http), &http.faxbox).map_err(refused)?;
    Ok(Accepted { numbers, ignored })
}

/// Who prints, for the sender rule and the notification list.
fn sender_of(http: &Http) -> Sender {
    match &http.caller {
        Caller::User(email) => Sender::Address(email.clone()),
        Caller::Anonymous => Sender::Anonymous,
    }
}

fn user_of(http: &Http, request: &Request) -> String {
    match &http.caller {
        Caller::User(email) => email.clone(),
        Caller::Anonymous => request
            .operation_attr("requesting-user-name")
            .and_then(string_of)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "anonymous".into()),
    }
}

/// The job's `cover-sheet-info` (PWG 5100.15): a cover page with these
/// words. Members Faxbox does not print (`logo`, `organization-name`,
/// `date-time`) are left out.
fn cover_sheet(request: &Request) -> Option<PrintCover> {
    let Some(IppValue::Collection(members)) = request.job_attr("cover-sheet-info") else {
        return None;
    };
    let member = |key: &str| {
        members
            .get(key)
            .and_then(string_of)
            .filter(|v| !v.trim().is_empty())
    };
    Some(PrintCover {
        to_name: member("to-name"),
        from_name: member("from-name"),
        subject: member("subject"),
        message: member("message").map(|m| documents::cover::bounded_note(&m)),
    })
}

fn job_name(request: &Request) -> String {
    request
        .operation_attr("job-name")
        .and_then(string_of)
        .or_else(|| request.operation_attr("document-name").and_then(string_of))
        .unwrap_or_else(|| "Untitled".into())
}

fn create_job(
    ctx: &IppCtx,
    http: &Http,
    request: &Request,
) -> Result<(PrintJob, Vec<IppAttribute>), Refusal> {
    let accepted = validate(ctx, http, request)?;
    let job = ctx
        .store
        .create_print_job(
            &http.faxbox.id,
            &job_name(request),
            &user_of(http, request),
            &accepted.numbers,
            cover_sheet(request).as_ref(),
        )
        .map_err(store_failed)?;
    Ok((job, accepted.ignored))
}

fn print_job(
    ctx: &IppCtx,
    http: &Http,
    request: &Request,
) -> Result<(PrintJob, Vec<IppAttribute>), Refusal> {
    let accepted = validate(ctx, http, request)?;
    if request.document.is_empty() {
        return Err(refusal(
            StatusCode::ClientErrorBadRequest,
            "Print-Job carries the document to fax, and this one has none",
        ));
    }
    // The print job is recorded only once its document is known to be
    // faxable: what cannot be faxed is refused now, with the reason, and
    // leaves no job behind.
    let cover = cover_sheet(request);
    let name = job_name(request);
    let commit = Commit::NewPrintJob {
        name: name.clone(),
        user: user_of(http, request),
        cover: cover.clone(),
    };
    let job = submit(
        ctx,
        http,
        request,
        (&accepted.numbers, &name, cover.as_ref()),
        commit,
    )?;
    Ok((job, accepted.ignored))
}

fn send_document(ctx: &IppCtx, http: &Http, request: &Request) -> Result<PrintJob, Refusal> {
    let job = find_job(ctx, http, request)?;
    let last = match request.operation_attr("last-document") {
        Some(IppValue::Boolean(b)) => *b,
        _ => {
            return Err(refusal(
                StatusCode::ClientErrorBadRequest,
                "Send-Document needs last-document (true: a fax job has one document)",
            ));
        }
    };
    if !last {
        return Err(refusal(
            StatusCode::ServerErrorMultipleDocumentJobsNotSupported,
            "a fax job has one document: send it with last-document true",
        ));
    }
    // Reading the state ends a job whose document came too late.
    let state = job_state(ctx, &job).map_err(store_failed)?;
    if state.code >= 7 || !job.faxes.is_empty() {
        return Err(refusal(
            StatusCode::ClientErrorNotPossible,
            format!("job {} already has its document or has ended", job.id),
        ));
    }
    if request.document.is_empty() {
        return Err(refusal(
            StatusCode::ClientErrorBadRequest,
            "Send-Document carries the document to fax, and this one has none",
        ));
    }
    let what = (
        job.destinations.as_slice(),
        job.name.as_str(),
        job.cover.as_ref(),
    );
    submit(ctx, http, request, what, Commit::PrintJob(job.id)).inspect_err(|r| {
        if matches!(
            r.status,
            StatusCode::ClientErrorDocumentFormatNotSupported
                | StatusCode::ClientErrorDocumentFormatError
        ) {
            // The job cannot be faxed: it ends, with the reason to show.
            if let Err(e) = ctx.store.end_print_job(job.id, false, Some(&r.message)) {
                warn!(error = %e, "cannot record a refused print job");
            }
        }
    })
}

/// The print job's document and faxes, one per number, through the intake:
/// the faxbox's defaults, with the cover sheet's names and the job's name
/// as the subject.
fn submit(
    ctx: &IppCtx,
    http: &Http,
    request: &Request,
    (numbers, name, cover): (&[String], &str, Option<&PrintCover>),
    commit: Commit,
) -> Result<PrintJob, Refusal> {
    let f = &http.faxbox;
    let given = Given {
        from_name: cover.and_then(|c| c.from_name.clone()),
        subject: cover
            .and_then(|c| c.subject.clone())
            .or_else(|| Some(name.to_owned())),
        // A cover-sheet-info asks for a cover page; without one, the
        // faxbox's setting decides.
        cover_page: cover.map(|_| true),
        cover_note: cover.and_then(|c| c.message.clone()),
        ..Given::default()
    };
    let recipients = numbers
        .iter()
        .map(|number| Recipient {
            account: f.account_id.clone(),
            faxbox: Some(f.clone()),
            number: number.clone(),
            normalized: number.clone(),
            to_name: cover
                .and_then(|c| c.to_name.clone())
                .or_else(|| Some(number.clone())),
            given: given.clone(),
        })
        .collect();
    let committed = ctx
        .intake
        .submit(intake::Request {
            door: Door::Ipp,
            sender: sender_of(http),
            recipients,
            documents: vec![document_of(request)],
            password: None,
            convert: &ctx.options.convert,
            commit,
        })
        .map_err(refused)?;
    let Some(job) = committed.print_job else {
        return Err(refusal(
            StatusCode::ServerErrorInternalError,
            "the print job was not recorded; try again",
        ));
    };
    info!(faxbox = %f.id, job, faxes = committed.faxes.len(), "print job accepted for faxing");
    ctx.store.print_job(job).map_err(store_failed)
}

/// The document of a Print-Job or Send-Document, named for its format.
fn document_of(request: &Request) -> Input {
    let format = request
        .operation_attr("document-format")
        .and_then(string_of)
        .map(|f| f.to_ascii_lowercase())
        .filter(|f| f != "application/octet-stream");
    let extension = match format.as_deref() {
        Some("application/pdf") => ".pdf",
        Some("image/jpeg") => ".jpg",
        Some("image/pwg-raster") => ".pwg",
        Some("image/urf") => ".urf",
        _ => "",
    };
    let base = request
        .operation_attr("document-name")
        .and_then(string_of)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "printed".into());
    let name = if extension.is_empty() || base.to_ascii_lowercase().ends_with(extension) {
        base
    } else {
        format!("{base}{extension}")
    };
    let mut input = Input::new(name, request.document.clone());
    input.content_type = format;
    input
}

/// The intake's refusals, as a printer answers them.
fn refused(r: intake::Refusal) -> Refusal {
    match r {
        intake::Refusal::NotAllowed(reason) => {
            refusal(StatusCode::ClientErrorNotAuthorized, reason)
        }
        intake::Refusal::Document(e) => {
            let status = match e {
                DocumentError::Unsupported { .. } | DocumentError::WrongKind { .. } => {
                    StatusCode::ClientErrorDocumentFormatNotSupported
                }
                _ => StatusCode::ClientErrorDocumentFormatError,
            };
            refusal(status, e.to_string())
        }
        intake::Refusal::Store(StoreError::Conflict(m)) => {
            refusal(StatusCode::ClientErrorNotPossible, m)
        }
        intake::Refusal::Store(e) => store_failed(e),
    }
}

/// The job a request names by `job-id` (or `job-uri`), in this faxbox.
fn find_job(ctx: &IppCtx, http: &Http, request: &Request) -> Result<PrintJob, Refusal> {
    let id = match request.operation_attr("job-id") {
        Some(IppValue::Integer(id)) => Some(i64::from(*id)),
        Some(_) => {
            return Err(refusal(
                StatusCode::ClientErrorBadRequest,
                "job-id is an integer",
            ));
        }
        None => request
            .operation_attr("job-uri")
            .and_then(string_of)
            .and_then(|u| u.rsplit('/').next().and_then(|s| s.parse().ok())),
    };
    let Some(id) = id else {
        return Err(refusal(
            StatusCode::ClientErrorBadRequest,
            "name the job with job-id",
        ));
    };
    match ctx.store.print_job(id) {
        Ok(job) if job.faxbox_id == http.faxbox.id => Ok(job),
        Ok(_) | Err(StoreError::NotFound { .. }) => Err(refusal(
            StatusCode::ClientErrorNotFound,
            format!("this printer has no job {id}"),
        )),
        Err(e) => Err(store_failed(e)),
    }
}

fn cancel_job(ctx: &IppCtx, http: &Http, request: &Request) -> Result<(), Refusal> {
    let job = find_job(ctx, http, request)?;
    let state = job_state(ctx, &job).map_err(store_failed)?;
    if state.code >= 7 {
        return Err(refusal(
            StatusCode::ClientErrorNotPossible,
            format!("job {} has already ended ({})", job.id, state.word),
        ));
    }
    let reason = "cancelled from the print queue";
    if job.faxes.is_empty() {
        ctx.store
            .end_print_job(job.id, true, None)
            .map_err(store_failed)?;
    }
    for id in &job.faxes {
        match ctx.store.fax(id) {
            Ok(fax) if fax.status.is_some_and(|s| !s.is_terminal()) => {
                ctx.store.request_cancel(id, reason).map_err(store_failed)?;
            }
            Ok(_) => {}
            Err(e) => return Err(store_failed(e)),
        }
    }
    ctx.intake.wake();
    info!(faxbox = %http.faxbox.id, job = job.id, "print job cancelled");
    Ok(())
}

/// An IPP job state (RFC 8011 5.3.7) with its reasons and message.
struct JobState {
    code: i32,
    word: &'static str,
    reasons: Vec<&'static str>,
    message: Option<String>,
}

/// The print job's state, from the fax jobs it became.
///
/// A fax waiting to try again (the number was busy, no answer) makes the
/// job pending-held: CUPS's ipp backend stops watching a job once it is
/// held or ended, and goes on with the next job of its queue, where a
/// pending or processing job would hold the whole queue until the retry
/// is over (issue 21). The fax itself still follows in the faxbox.
fn job_state(ctx: &IppCtx, job: &PrintJob) -> Result<JobState, StoreError> {
    let state = |code, word, reasons: &[&'static str], message: Option<String>| JobState {
        code,
        word,
        reasons: reasons.to_vec(),
        message,
    };
    if job.faxes.is_empty() {
        if job.cancelled {
            return Ok(state(7, "canceled", &["job-canceled-by-user"], None));
        }
        if let Some(error) = &job.error {
            return Ok(state(
                8,
                "aborted",
                &["aborted-by-system"],
                Some(error.clone()),
            ));
        }
        let timeout = ctx.options.document_timeout.as_secs();
        if now().saturating_sub(job.created) > timeout as i64 {
            // Read at each look rather than by a timer, so a job left
            // waiting when the box stopped ends too once the box is back.
            let error =
                format!("no document came within {timeout} seconds of Create-Job; print again");
            ctx.store.end_print_job(job.id, false, Some(&error))?;
            return Ok(state(8, "aborted", &["aborted-by-system"], Some(error)));
        }
        return Ok(state(3, "pending", &["job-incoming"], None));
    }
    let faxes: Vec<Fax> = job
        .faxes
        .iter()
        .map(|id| ctx.store.fax(id))
        .collect::<Result<_, _>>()?;
    let statuses: Vec<JobStatus> = faxes.iter().filter_map(|f| f.status).collect();
    let all = |s: JobStatus| statuses.iter().all(|x| *x == s);
    let any = |s: JobStatus| statuses.contains(&s);
    let errors: Vec<String> = faxes
        .iter()
        .filter(|f| matches!(f.status, Some(JobStatus::Failed)))
        .map(|f| match &f.error {
            Some(e) => format!("fax to {}: {e}", f.to_number),
            None => format!("fax to {} failed", f.to_number),
        })
        .collect();
    Ok(if all(JobStatus::Completed) {
        state(9, "completed", &["job-completed-successfully"], None)
    } else if statuses.iter().all(|s| s.is_terminal()) {
        if any(JobStatus::Failed) {
            state(
                8,
                "aborted",
                &["aborted-by-system", "job-completed-with-errors"],
                Some(errors.join("; ")),
            )
        } else {
            state(7, "canceled", &["job-canceled-by-user"], None)
        }
    } else if !any(JobStatus::Processing)
        && faxes
            .iter()
            .filter(|f| f.status.is_some_and(|s| !s.is_terminal()))
            .all(|f| f.attempts > 0)
    {
        let mut waiting = Vec::new();
        for fax in faxes
            .iter()
            .filter(|f| f.status.is_some_and(|s| !s.is_terminal()))
        {
            let last = ctx.store.attempts(&fax.id)?.pop();
            let reason = last
                .and_then(|a| a.report.result_text)
                .unwrap_or_else(|| "the last attempt failed".into());
            let minutes = ((fax.due_at - now()).max(0) as u64).div_ceil(60);
            waiting.push(format!(
                "fax to {}: {reason}; tries again in {minutes} min",
                fax.to_number
            ));
        }
        let waiting = waiting.join("; ");
        state(
            4,
            "pending-held",
            &["resources-are-not-ready"],
            Some(waiting),
        )
    } else if any(JobStatus::Processing) || statuses.iter().any(|s| s.is_terminal()) {
        state(5, "processing", &["job-printing"], None)
    } else {
        state(3, "pending", &["none"], None)
    })
}

fn job_attributes(
    ctx: &IppCtx,
    http: &Http,
    job: &PrintJob,
) -> Result<Vec<IppAttribute>, StoreError> {
    let state = job_state(ctx, job)?;
    let printer = printer_uri(http);
    let mut attrs = vec![
        attr("job-id", IppValue::Integer(job.id as i32)),
        attr("job-uri", uri(&format!("{printer}/{}", job.id))),
        attr("job-printer-uri", uri(&printer)),
        attr("job-name", name(&job.name)),
        attr("job-originating-user-name", name(&job.user)),
        attr("job-state", IppValue::Enum(state.code)),
        attr("job-state-reasons", keywords(&state.reasons)),
        attr("job-printer-up-time", IppValue::Integer(now() as i32)),
        attr("time-at-creation", IppValue::Integer(job.created as i32)),
        attr(
            "destination-uris",
            wire::one_or_set(
                job.destinations
                    .iter()
                    .map(|n| {
                        let mut map = std::collections::BTreeMap::new();
                        map.insert(
                            ipp::value::IppName::new_truncated("destination-uri"),
                            uri(&format!("tel:{n}")),
                        );
                        IppValue::Collection(map)
                    })
                    .collect(),
            ),
        ),
    ];
    if let Some(message) = &state.message {
        attrs.push(attr("job-state-message", text(message)));
    }
    Ok(attrs)
}

/// The Print-Job / Create-Job / Send-Document answer: the job's id, URI
/// and state.
fn job_created(mut response: Response, http: &Http, job: &PrintJob, ctx: &IppCtx) -> Response {
    let wanted = [
        "job-id",
        "job-uri",
        "job-state",
        "job-state-reasons",
        "job-state-message",
    ];
    match job_attributes(ctx, http, job) {
        Ok(attrs) => response.push_group(
            DelimiterTag::JobAttributes,
            attrs
                .into_iter()
                .filter(|a| wanted.contains(&a.name().as_str()))
                .collect(),
        ),
        Err(e) => warn!(error = %e, "cannot read a new print job back"),
    }
    response
}

fn select_job_attrs(
    attrs: Vec<IppAttribute>,
    requested: &[String],
    default: &[&str],
) -> Vec<IppAttribute> {
    if requested
        .iter()
        .any(|r| matches!(r.as_str(), "all" | "job-description" | "job-template"))
    {
        return attrs;
    }
    attrs
        .into_iter()
        .filter(|a| {
            let n = a.name().as_str();
            if requested.is_empty() {
                default.contains(&n)
            } else {
                requested.iter().any(|r| r == n)
            }
        })
        .collect()
}

fn get_job(ctx: &IppCtx, http: &Http, request: &Request) -> Result<Vec<IppAttribute>, Refusal> {
    let job = find_job(ctx, http, request)?;
    let attrs = job_attributes(ctx, http, &job).map_err(store_failed)?;
    let wanted = requested(request);
    // Without a list, Get-Job-Attributes answers everything (RFC 8011 4.3.4).
    if wanted.is_empty() {
        return Ok(attrs);
    }
    Ok(select_job_attrs(attrs, &wanted, &[]))
}

fn get_jobs(
    ctx: &IppCtx,
    http: &Http,
    request: &Request,
) -> Result<Vec<Vec<IppAttribute>>, Refusal> {
    let which = request
        .operation_attr("which-jobs")
        .and_then(string_of)
        .unwrap_or_else(|| "not-completed".into());
    if !matches!(which.as_str(), "completed" | "not-completed" | "all") {
        return Err(Refusal {
            status: StatusCode::ClientErrorAttributesOrValuesNotSupported,
            message: format!(
                "which-jobs {which} is not supported; use completed, not-completed or all"
            ),
            unsupported: vec![attr("which-jobs", keyword(&which))],
        });
    }
    let limit = match request.operation_attr("limit") {
        Some(IppValue::Integer(n)) if *n > 0 => *n as u32,
        _ => 1000,
    };
    let my_jobs = matches!(
        request.operation_attr("my-jobs"),
        Some(IppValue::Boolean(true))
    );
    let me = user_of(http, request);
    let wanted = requested(request);
    let mut out = Vec::new();
    for job in ctx
        .store
        .print_jobs(&http.faxbox.id, 1000)
        .map_err(store_failed)?
    {
        if out.len() as u32 >= limit {
            break;
        }
        if my_jobs && !job.user.eq_ignore_ascii_case(&me) {
            continue;
        }
        let attrs = job_attributes(ctx, http, &job).map_err(store_failed)?;
        let code = attrs
            .iter()
            .find(|a| a.name().as_str() == "job-state")
            .and_then(|a| a.value().as_enum().copied())
            .unwrap_or(3);
        let keep = match which.as_str() {
            "completed" => code >= 7,
            "not-completed" => code < 7,
            _ => true,
        };
        if keep {
            out.push(select_job_attrs(attrs, &wanted, &["job-id", "job-uri"]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tel_uris_become_e164_numbers_or_a_reason() {
        assert_eq!(
            tel_number("tel:+15551234567", ServiceNumbers::Refused).unwrap(),
            "+15551234567"
        );
        assert_eq!(
            tel_number("tel:+1-555-123-4567", ServiceNumbers::Refused).unwrap(),
            "+15551234567"
        );
        assert_eq!(
            tel_number(
                "tel:+15551234567;phone-context=example.com",
                ServiceNumbers::Refused
            )
            .unwrap(),
            "+15551234567"
        );
        for bad in [
            "mailto:bob@example.com",
            "tel:",
            "tel:abc",
            "tel:12",
            "ipp://10.0.0.1/ipp/print",
            "+15551234567",
        ] {
            let e = tel_number(bad, ServiceNumbers::Refused).unwrap_err();
            assert!(e.contains(bad) || e.contains("destination"), "{bad}: {e}");
        }
    }
}
