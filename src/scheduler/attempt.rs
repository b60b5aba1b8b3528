//! One attempt at sending a job, on its own thread: get the fax image,
//! place the call, follow its progress under the per-stage timeouts (and
//! the operator's cancel), record the attempt, decide what follows, and
//! tell the people who asked when the job is finished.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::policy::{self, Failure, RetrySettings};
use super::{Event, Shared};
use crate::documents::{self, ConvertOptions, Input};
use crate::lines::{
    AttemptResult, CallProgress, ErrorCorrection, FaxSettings, Line, LineError, OutgoingFax,
    ProgressSink,
};
use crate::model::{
    Attempt, AttemptOutcome, AttemptReport, AttemptStage, DocumentKind, Fax, JobStatus, NewDocument,
};
use crate::notify::{self, OutboundFacts};
use crate::store::{AttemptEnd, MAX_INTERRUPTED_ATTEMPTS, NextStep, Store};

/// How often a running call checks for an operator's cancel in the store.
const CANCEL_POLL: Duration = Duration::from_millis(500);

/// The fax image of a job and its page count.
struct FaxImage {
    tiff: Vec<u8>,
    pages: u32,
}

/// One attempt, from the fax image to the recorded end and the retry
/// decision. Long on purpose: the stages (prepare, call, record, decide)
/// read top to bottom as the attempt's state machine, each state change
/// one store call (docs/style.md, principle 6).
pub(super) fn run(shared: &Arc<Shared>, line: Arc<dyn Line>, fax: Fax, attempt: Attempt) {
    let store = &shared.store;
    let mut report = AttemptReport::default();
    let mut stage = AttemptStage::Prepare;
    let mut cancelled = false;
    let mut interrupted = false;

    let image = fax_image(store, &fax, &shared.options.convert);
    let (failure, image) = match image {
        Err(failure) => (Some(failure), None),
        Ok(image) => {
            report.pages_total = image.pages;
            let spool = shared
                .options
                .spool_dir
                .join(format!("{}-{}.tif", fax.id, attempt.number));
            let failure = match std::fs::write(&spool, &image.tiff) {
                Err(e) => Some(Failure::Internal(format!(
                    "cannot write the fax image to {}: {e}",
                    spool.display()
                ))),
                Ok(()) => {
                    let call = CallRun {
                        shared,
                        line: line.as_ref(),
                        fax: &fax,
                        attempt: &attempt,
                        spool: spool.clone(),
                    };
                    let outcome = call.run(&mut report, &mut stage);
                    cancelled = outcome.cancelled;
                    interrupted = outcome.interrupted;
                    outcome.failure
                }
            };
            let _ = std::fs::remove_file(&spool);
            (failure, Some(image))
        }
    };

    let settings = retry_settings(store, &fax);
    let result_fields = result_fields(failure.as_ref(), &report);
    let (outcome, next, retries, retry_in) = if interrupted {
        // Faxbox is stopping: this attempt does not count; the job goes
        // back to the queue and is sent after the next start.
        (
            AttemptOutcome::Interrupted,
            NextStep::Retry { after_s: 0 },
            None,
            None,
        )
    } else if cancelled {
        let reason = store
            .fax(&fax.id)
            .ok()
            .and_then(|f| f.error)
            .unwrap_or_else(|| "cancelled by the operator".into());
        (
            AttemptOutcome::Cancelled,
            NextStep::Cancel { reason },
            None,
            None,
        )
    } else {
        let decision = policy::decide(
            failure.as_ref(),
            fax.attempts.saturating_add(1),
            fax.retries,
            report.pages_sent,
            &result_fields,
            &settings,
        );
        let retry_in = match decision.next {
            NextStep::Retry { after_s } => Some(after_s),
            _ => None,
        };
        let next = match decision.next {
            NextStep::Retry { after_s } => NextStep::Retry {
                after_s: shared.options.retry_delay(after_s),
            },
            other => other,
        };
        let outcome = if failure.is_none() {
            AttemptOutcome::Success
        } else {
            AttemptOutcome::Failure
        };
        (outcome, next, Some(decision.retries), retry_in)
    };
    if let Some(f) = &failure {
        report.result_text.get_or_insert_with(|| f.describe());
    } else {
        report.result_text.get_or_insert_with(|| "OK".into());
    }

    let end = AttemptEnd {
        outcome,
        stage,
        report,
        next,
        retries,
    };
    let finished = match store.finish_attempt(attempt.id, end) {
        Ok(f) => f,
        Err(e) => {
            // The attempt stays open; recovery at the next start closes it.
            warn!(fax = %fax.id, "cannot record the attempt: {e}");
            return;
        }
    };
    info!(fax = %fax.id, attempt = attempt.number, status = ?finished.status, "attempt ended");
    shared.events.job_status_with_retry(
        &finished,
        retry_in.filter(|_| finished.status == Some(JobStatus::Pending)),
    );
    if matches!(
        finished.status,
        Some(JobStatus::Completed | JobStatus::Failed)
    ) {
        notify_finished(shared, &finished, image.as_ref());
    }
}

/// The fax image to send: the document's (`document_image`) with the
/// cover page first when the fax has one (issue 22). The cover is drawn
/// for each attempt and never stored: the stored image is the document's
/// alone, and the count on the cover is that image's pages plus one.
fn fax_image(store: &Store, fax: &Fax, convert: &ConvertOptions) -> Result<FaxImage, Failure> {
    let image = document_image(store, fax, convert)?;
    let faxbox = match &fax.faxbox_id {
        Some(id) => store.faxbox(id).ok(),
        None => None,
    };
    if !crate::cover::wanted(fax, faxbox.as_ref()) {
        return Ok(image);
    }
    let (tiff, pages) = crate::cover::put_first(fax, faxbox.as_ref(), &image.tiff, image.pages)
        .map_err(|e| Failure::Document(format!("the cover page: {e}")))?;
    Ok(FaxImage { tiff, pages })
}

/// The document's fax image: the stored one, or the originals converted now
/// (and kept when `store_fax_tiff` is on, docs/kazoo.md 7.6).
fn document_image(store: &Store, fax: &Fax, convert: &ConvertOptions) -> Result<FaxImage, Failure> {
    let internal = |e: crate::store::StoreError| Failure::Internal(e.to_string());
    let docs = store.documents(&fax.id).map_err(internal)?;
    if let Some(doc) = docs.iter().find(|d| d.kind == DocumentKind::FaxTiff) {
        let tiff = store.document_bytes(&doc.id).map_err(internal)?;
        let pages = match doc.pages {
            Some(p) => p,
            None => documents::faxtiff::count_tiff_pages(&tiff)
                .map_err(|e| Failure::Document(e.to_string()))? as u32,
        };
        return Ok(FaxImage { tiff, pages });
    }
    let mut inputs = Vec::new();
    for doc in docs.iter().filter(|d| d.kind == DocumentKind::Original) {
        let mut input = Input::new(
            &doc.filename,
            store.document_bytes(&doc.id).map_err(internal)?,
        );
        input.content_type = Some(doc.content_type.clone());
        inputs.push(input);
    }
    if inputs.is_empty() {
        return Err(Failure::Document(
            "no attachment found: the fax has no document to send".into(),
        ));
    }
    let converted =
        documents::convert(&inputs, convert).map_err(|e| Failure::Document(e.to_string()))?;
    let pages = converted.pages as u32;
    if store
        .setting_bool(Some(&fax.account_id), "store_fax_tiff")
        .unwrap_or(true)
    {
        let kept = store.add_document(
            &fax.id,
            NewDocument {
                kind: DocumentKind::FaxTiff,
                content_type: "image/tiff".into(),
                filename: "fax_file.tiff".into(),
                pages: Some(pages),
                bytes: converted.tiff.clone(),
            },
        );
        if let Err(e) = kept {
            warn!(fax = %fax.id, "cannot keep the converted fax image: {e}");
        }
    }
    Ok(FaxImage {
        tiff: converted.tiff,
        pages,
    })
}

/// How a call ended, as far as the attempt cares.
struct CallEnd {
    failure: Option<Failure>,
    cancelled: bool,
    interrupted: bool,
}

struct CallRun<'a> {
    shared: &'a Arc<Shared>,
    line: &'a dyn Line,
    fax: &'a Fax,
    attempt: &'a Attempt,
    spool: PathBuf,
}

impl CallRun<'_> {
    fn run(&self, report: &mut AttemptReport, stage: &mut AttemptStage) -> CallEnd {
        let store = &self.shared.store;
        let (tx, rx) = mpsc::channel();
        let outgoing = OutgoingFax {
            call_id: call_id(self.fax, self.attempt.number),
            to_number: self.fax.to_number_normalized.clone(),
            from_number: self.fax.from_number.clone().unwrap_or_default(),
            document: self.spool.clone(),
            settings: fax_settings(self.fax),
        };
        let timeouts = StageTimeouts::read(store);
        // The line reports `Dialling` itself; recording it here too would put
        // a second disk sync between the claim and the seized line.
        *stage = AttemptStage::Originate;
        let mut recorder = Recorder {
            shared: self.shared.clone(),
            fax: self.fax.clone(),
            line: self.line.name().to_owned(),
            attempt: self.attempt.clone(),
            report: report.clone(),
            stage: *stage,
            recorded: tx,
        };
        let sink: ProgressSink = Box::new(move |p| recorder.take(p));
        let call = match self.interrupted_call() {
            Some(previous) => self.line.resume(&previous, outgoing, sink),
            None => self.line.send(outgoing, sink),
        };
        let call = match call {
            Ok(call) => call,
            Err(e) => {
                return CallEnd {
                    failure: Some(failure_of(&e)),
                    cancelled: false,
                    interrupted: false,
                };
            }
        };
        let mut deadline = Instant::now() + timeouts.originate;
        let mut timed_out: Option<&'static str> = None;
        let mut cancelled = false;
        let mut interrupted = false;
        let mut next_cancel_check = Instant::now() + CANCEL_POLL;
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(CANCEL_POLL);
            match rx.recv_timeout(wait) {
                Ok((recorded_stage, recorded)) => {
                    (*stage, *report) = (recorded_stage, recorded);
                    deadline = Instant::now()
                        + match stage {
                            AttemptStage::Negotiate => timeouts.negotiate,
                            AttemptStage::Send => timeouts.page,
                            _ => timeouts.originate,
                        };
                }
                // The line dropped its end: the call is over.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= deadline && timed_out.is_none() && !cancelled {
                timed_out = Some(stage.as_str());
                warn!(fax = %self.fax.id, stage = stage.as_str(), "stage timed out; hanging up");
                call.hang_up();
            }
            if self
                .shared
                .stopping
                .load(std::sync::atomic::Ordering::Acquire)
                && !interrupted
            {
                interrupted = true;
                call.hang_up();
            }
            if Instant::now() >= next_cancel_check && !cancelled {
                next_cancel_check = Instant::now() + CANCEL_POLL;
                if store.cancel_requested(&self.fax.id).unwrap_or(false) {
                    info!(fax = %self.fax.id, "cancelled by the operator; hanging up");
                    cancelled = true;
                    call.hang_up();
                }
            }
        }
        let result = call.wait();
        *stage = AttemptStage::End;
        // The line lost the call (its FreeSWITCH connection dropped): like a
        // stop, the attempt is recorded as interrupted and the fax queued
        // again, unless that keeps happening to this fax (a document that
        // takes FreeSWITCH down must not loop forever): then it counts.
        if matches!(result.outcome, Err(LineError::Interrupted(_))) {
            let earlier = store
                .attempts(&self.fax.id)
                .map(|a| {
                    a.iter()
                        .filter(|a| a.outcome == Some(AttemptOutcome::Interrupted))
                        .count()
                })
                .unwrap_or(0);
            interrupted = interrupted || earlier + 1 < MAX_INTERRUPTED_ATTEMPTS as usize;
        }
        merge_result(report, &result);
        let failure = match (&result.outcome, timed_out) {
            (Ok(()), _) => None,
            (Err(_), Some(stage)) => Some(Failure::Timeout { stage }),
            (Err(e), None) => Some(failure_of(e)),
        };
        CallEnd {
            failure,
            cancelled,
            interrupted,
        }
    }

    /// The call id of the previous attempt, when it was interrupted on this
    /// line: its call may still be running on the line's switch.
    fn interrupted_call(&self) -> Option<String> {
        let previous = self.attempt.number.checked_sub(1)?;
        let attempts = self.shared.store.attempts(&self.fax.id).ok()?;
        attempts
            .iter()
            .find(|a| {
                a.number == previous
                    && a.outcome == Some(AttemptOutcome::Interrupted)
                    && a.line == self.line.name()
            })
            .map(|a| call_id(self.fax, a.number))
    }
}

/// The attempt's record while its call runs. It lives in the line's
/// progress sink, so each step is committed on the line's own thread
/// before the line goes on (issue 19): a confirmation that waited in a
/// channel for the attempt thread was lost with a kill, and recovery sent
/// a delivered fax again. What was recorded then goes to the attempt
/// thread, which keeps the stage timeouts.
struct Recorder {
    shared: Arc<Shared>,
    fax: Fax,
    line: String,
    attempt: Attempt,
    report: AttemptReport,
    stage: AttemptStage,
    recorded: mpsc::Sender<(AttemptStage, AttemptReport)>,
}

impl Recorder {
    fn take(&mut self, progress: CallProgress) {
        let store = &self.shared.store;
        let text = match progress {
            CallProgress::Dialling => {
                self.stage = AttemptStage::Originate;
                "dialling".to_owned()
            }
            CallProgress::Answered => {
                self.stage = AttemptStage::Negotiate;
                "negotiating".into()
            }
            CallProgress::Negotiated(n) => {
                self.stage = AttemptStage::Send;
                self.report.bit_rate = Some(n.bit_rate);
                self.report.ecm = Some(n.ecm);
                self.report.remote_station_id = Some(n.remote_ident.clone());
                format!("Fax negotiated at {}", n.bit_rate)
            }
            CallProgress::LastPageSent => {
                // Before the end of procedure leaves: from here on a crash
                // leaves a fax that has probably arrived, which recovery
                // must not send again on its own.
                self.stage = AttemptStage::Send;
                if let Err(e) = store.last_page_sent(self.attempt.id) {
                    warn!(fax = %self.fax.id, "cannot record that the last page was sent: {e}");
                }
                // Nothing for listeners: the page is reported once confirmed.
                return;
            }
            CallProgress::PageDone(p) => {
                self.stage = AttemptStage::Send;
                self.report.pages_sent = self.report.pages_sent.max(p.page);
                format!("Sent Page {} of {}", p.page, self.report.pages_total)
            }
        };
        if let Err(e) = store.update_attempt(self.attempt.id, self.stage, &self.report) {
            warn!(fax = %self.fax.id, "cannot record progress: {e}");
        } else {
            self.shared.events.send(Event::Call {
                fax_id: self.fax.id.clone(),
                account_id: self.fax.account_id.clone(),
                line: self.line.clone(),
                attempt: self.attempt.number,
                stage: self.stage,
                status: text,
            });
        }
        // The attempt thread may be gone (it hung up and returned).
        let _ = self.recorded.send((self.stage, self.report.clone()));
    }
}

struct StageTimeouts {
    originate: Duration,
    negotiate: Duration,
    page: Duration,
}

impl StageTimeouts {
    fn read(store: &Store) -> StageTimeouts {
        let get = |key: &str| Duration::from_secs(store.system_limit(key));
        StageTimeouts {
            originate: get("originate_timeout_s"),
            negotiate: get("negotiate_timeout_s"),
            page: get("page_timeout_s"),
        }
    }
}

/// Names an attempt's call for the line (and FreeSWITCH's channel UUID).
fn call_id(fax: &Fax, attempt: u32) -> String {
    format!("{}-{}", fax.id, attempt)
}

/// The fax settings of a job: our ident (TSI) and page header from the job,
/// which took them from its faxbox (docs/kazoo.md 1.2, 3.6).
fn fax_settings(fax: &Fax) -> FaxSettings {
    // T.30 clause 5.3.6.2.4: the ident is up to 20 digits, `+` and spaces.
    let ident: String = fax
        .fax_identity_number
        .as_deref()
        .or(fax.from_number.as_deref())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+' || *c == ' ')
        .take(20)
        .collect();
    let header = fax
        .fax_identity_name
        .clone()
        .or_else(|| fax.from_name.clone())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(50)
        .collect();
    FaxSettings {
        ident,
        header,
        // The faxbox's zone for the time in the page header (issue 21).
        timezone: fax
            .fax_timezone
            .as_deref()
            .filter(|tz| !tz.trim().is_empty())
            .map(|tz| crate::timezone::posix_at(tz, crate::model::now())),
        // The faxbox's caller_name (Kazoo's from_name), not the header
        // (issue 25 item 6).
        caller_name: fax
            .from_name
            .clone()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(50)
            .collect(),
        error_correction: ErrorCorrection::Enabled,
        ..FaxSettings::default()
    }
}

fn failure_of(e: &LineError) -> Failure {
    match e {
        LineError::Document(p) => Failure::Document(p.to_string()),
        LineError::Settings(s) => {
            Failure::Document(format!("the fax settings are not usable: {s}"))
        }
        LineError::NoFreeChannel { .. } => Failure::Internal(e.to_string()),
        LineError::Busy => Failure::Busy,
        LineError::NoAnswer | LineError::NoCarrier => Failure::NoAnswer,
        LineError::NoDialTone { .. } | LineError::LineDown { .. } => {
            Failure::Rejected(e.to_string())
        }
        LineError::Rejected(why) => Failure::Rejected(why.clone()),
        LineError::Fax(code) => Failure::Fax {
            code: i64::from(code.number()),
            text: code.text().to_owned(),
            retry_may_help: code.retry_may_help(),
        },
        LineError::Internal(why) => Failure::Internal(why.clone()),
        // Not Faxbox's own failure: the words say what happened to the call.
        LineError::Switch(_) | LineError::Interrupted(_) => Failure::Line(e.to_string()),
    }
}

/// What the line said at the end, over what progress reported.
fn merge_result(report: &mut AttemptReport, result: &AttemptResult) {
    if let Some(f) = &result.fax {
        report.result_code = Some(i64::from(f.code.number()));
        report.result_text = Some(f.code.text().to_owned());
        report.pages_sent = f.pages;
        if f.bit_rate > 0 {
            report.bit_rate = Some(f.bit_rate);
        }
        report.ecm = Some(f.ecm);
        if !f.remote_ident.is_empty() {
            report.remote_station_id = Some(f.remote_ident.clone());
        }
    }
    // The switch's own cause when the line has one (issue 25 item 4), else
    // the nearest Q.850 cause for how the call ended.
    report.hangup_cause = result.hangup_cause.clone().or_else(|| {
        Some(
            match &result.outcome {
                Ok(()) => "NORMAL_CLEARING",
                Err(LineError::Busy) => "USER_BUSY",
                Err(LineError::NoAnswer) => "NO_ANSWER",
                Err(LineError::Rejected(_)) => "CALL_REJECTED",
                Err(LineError::NoDialTone { .. } | LineError::LineDown { .. }) => {
                    "NETWORK_OUT_OF_ORDER"
                }
                Err(_) if result.answered => "NORMAL_CLEARING",
                Err(_) => "NORMAL_TEMPORARY_FAILURE",
            }
            .to_owned(),
        )
    });
}

/// The attempt's result by Kazoo's `tx_result` names, for reschedule rules.
fn result_fields(failure: Option<&Failure>, report: &AttemptReport) -> Map<String, Value> {
    // SIP-style codes for calls that never reached T.30 (docs/kazoo.md 3.4).
    let code = match failure {
        Some(Failure::Busy) => json!(486),
        Some(Failure::NoAnswer) => json!(480),
        Some(Failure::Rejected(_)) => json!(603),
        _ => report.result_code.map_or(Value::Null, |c| json!(c)),
    };
    let mut m = Map::new();
    m.insert("result_code".into(), code);
    if let Some(cause) = &report.hangup_cause {
        m.insert("result_cause".into(), json!(cause));
    }
    if let Some(text) = &report.result_text {
        m.insert("result_text".into(), json!(text));
    }
    m.insert("pages_sent".into(), json!(report.pages_sent));
    m
}

fn retry_settings(store: &Store, fax: &Fax) -> RetrySettings {
    let account = Some(&fax.account_id);
    let d = RetrySettings::default();
    RetrySettings {
        default_retry_period: store
            .setting_i64(account, "default_retry_period")
            .unwrap_or(d.default_retry_period),
        default_retry_count: store
            .setting_i64(account, "default_retry_count")
            .unwrap_or(d.default_retry_count),
        default_compare_field: store
            .setting_text(None, "default_compare_field")
            .unwrap_or(d.default_compare_field),
        reschedule: store
            .setting(account, "reschedule")
            .map(|v| v.value)
            .unwrap_or(d.reschedule),
    }
}

/// Queues the receipt or the error report of a job that start-up recovery
/// finished (it had been on a line when the box stopped).
pub(super) fn notify_recovered(shared: &Shared, id: &crate::model::FaxId) {
    let fax = match shared.store.fax(id) {
        Ok(fax) => fax,
        Err(e) => {
            warn!(fax = %id, "cannot read the fax to notify: {e}");
            return;
        }
    };
    let image = fax_image(&shared.store, &fax, &shared.options.convert).ok();
    notify_finished(shared, &fax, image.as_ref());
}

/// Queues the receipt or the error report of a finished job, and its
/// faxbox's callback.
fn notify_finished(shared: &Shared, fax: &Fax, image: Option<&FaxImage>) {
    let store = &shared.store;
    match store.enqueue_outbound_callback(fax) {
        Ok(Some(_)) => (shared.options.mail_queued)(),
        Ok(None) => {}
        Err(e) => warn!(fax = %fax.id, "cannot queue the faxbox callback: {e}"),
    }
    let faxbox = fax.faxbox_id.as_ref().and_then(|id| store.faxbox(id).ok());
    let owner_email = faxbox
        .as_ref()
        .and_then(|f| f.owner_id.as_ref())
        .and_then(|id| store.user(id).ok())
        .map(|u| u.email);
    let mut facts = OutboundFacts {
        fax,
        faxbox: faxbox.as_ref(),
        owner_email: owner_email.as_deref(),
        history: &[],
        pdf: None,
    };
    // Nobody to tell: skip the history and the PDF. A fax of a batch is
    // told of in its batch's combined receipt instead, queued by the
    // dispatcher once the last of them ends (`notify::queue_batch_receipts`).
    if fax.batch_id.is_some() || notify::outbound_recipients(&facts).is_empty() {
        return;
    }
    let history = store.attempts(&fax.id).unwrap_or_default();
    let pdf = image.and_then(|i| match documents::tiff_to_pdf(&i.tiff) {
        Ok(pdf) => Some(pdf),
        Err(e) => {
            warn!(fax = %fax.id, "cannot make the PDF for the mail: {e}");
            None
        }
    });
    facts.history = &history;
    facts.pdf = pdf.as_deref();
    let mail = if fax.status == Some(JobStatus::Completed) {
        notify::outbound_receipt(&shared.options.mail_from, &facts)
    } else {
        notify::outbound_error(&shared.options.mail_from, &facts)
    };
    match mail {
        Ok(Some(mail)) => {
            match store.enqueue_fax_mail(&fax.id, &fax.account_id, &mail.recipients, &mail.message)
            {
                Ok(_) => (shared.options.mail_queued)(),
                Err(e) => warn!(fax = %fax.id, "cannot queue the notification: {e}"),
            }
        }
        Ok(None) => {}
        Err(e) => warn!(fax = %fax.id, "cannot compose the notification: {e}"),
    }
}
