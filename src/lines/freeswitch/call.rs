//! What an outbound fax call on FreeSWITCH amounts to, folded from its
//! events: progress for the scheduler and, at the end, the attempt's
//! result and [`LineError`].
//!
//! The rules follow docs/freeswitch.md: the call is ours by
//! `Unique-ID` (the `origination_uuid` we chose) or by `Job-UUID` (the
//! BACKGROUND_JOB of our `bgapi originate`); the sender's verdict is
//! `spandsp::txfaxresult`, which arrives after the hang-up, so only our
//! CHANNEL_HANGUP_COMPLETE (or an originate that failed) ends the call;
//! `Application-Response` of `txfax` is `_none_` unless the file or the
//! arguments were bad.

use crate::fax::{DocumentProblem, FaxOutcome, Negotiation, PageReport, T30Code};
use crate::lines::{CallProgress, LineError};

use super::esl::Event;

/// The sender's or receiver's report in a `spandsp::*` event (hyphenated
/// headers), or the `variable_fax_*` channel variables as a fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct SpandspReport {
    pub success: bool,
    pub code: Option<T30Code>,
    pub text: String,
    pub pages: u32,
    pub total_pages: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    pub local_ident: String,
    pub remote_ident: String,
    pub bad_rows: u32,
    pub longest_bad_row_run: u32,
    /// `fax-image-resolution`, e.g. `8040x7700` (pixels per metre).
    pub resolution: Option<(u32, u32)>,
}

impl SpandspReport {
    pub fn of(event: &Event) -> SpandspReport {
        let field = |name: &str| {
            event
                .get(&format!("fax-{name}"))
                .or_else(|| event.get(&format!("variable_fax_{}", name.replace('-', "_"))))
                .unwrap_or_default()
        };
        let number = |name: &str| field(name).trim().parse::<u32>().unwrap_or(0);
        SpandspReport {
            success: field("success") == "1",
            code: field("result-code")
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(T30Code::from_number),
            text: field("result-text").to_owned(),
            pages: number("document-transferred-pages"),
            total_pages: number("document-total-pages"),
            bit_rate: number("transfer-rate"),
            ecm: field("ecm-used") == "on",
            local_ident: field("local-station-id").trim().to_owned(),
            remote_ident: field("remote-station-id").trim().to_owned(),
            bad_rows: number("bad-rows"),
            longest_bad_row_run: number("longest-bad-row-run"),
            resolution: field("image-resolution")
                .split_once('x')
                .and_then(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?))),
        }
    }

    /// The code to record: the reported one, or from `success` alone.
    pub fn t30_code(&self) -> T30Code {
        self.code.unwrap_or(if self.success {
            T30Code::Ok
        } else {
            T30Code::CallDropped
        })
    }

    pub fn outcome(&self) -> FaxOutcome {
        FaxOutcome {
            code: self.t30_code(),
            pages: self.pages,
            bit_rate: self.bit_rate,
            ecm: self.ecm,
            remote_ident: self.remote_ident.clone(),
            bad_rows: self.bad_rows,
            longest_bad_row_run: self.longest_bad_row_run,
            ecm_retries: 0,
        }
    }
}

/// Pixels per metre (SpanDSP's unit) to dots per inch, rounded.
fn dpi(per_metre: u32) -> u32 {
    ((f64::from(per_metre) * 0.0254).round()) as u32
}

/// Which way the fax goes, for picking the spandsp event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Receive,
}

impl Direction {
    fn subclass(self, what: &str) -> String {
        match self {
            Direction::Send => format!("spandsp::txfax{what}"),
            Direction::Receive => format!("spandsp::rxfax{what}"),
        }
    }

    fn application(self) -> &'static str {
        match self {
            Direction::Send => "txfax",
            Direction::Receive => "rxfax",
        }
    }
}

/// One call's events, folded.
#[derive(Debug, Clone)]
pub struct CallTrack {
    /// Our channel's `Unique-ID`.
    pub channel: String,
    /// Our `bgapi`'s `Job-UUID` (empty on an outbound socket).
    pub job: String,
    direction: Direction,
    answered: bool,
    hangup_cause: Option<String>,
    originate_error: Option<String>,
    app_response: Option<String>,
    result: Option<SpandspReport>,
    pages_done: u32,
    /// Whether the fax modems trained (a negotiate result came).
    negotiated: bool,
    finished: bool,
}

impl CallTrack {
    pub fn new(channel: &str, job: &str, direction: Direction) -> CallTrack {
        CallTrack {
            channel: channel.to_owned(),
            job: job.to_owned(),
            direction,
            answered: false,
            hangup_cause: None,
            originate_error: None,
            app_response: None,
            result: None,
            pages_done: 0,
            negotiated: false,
            finished: false,
        }
    }

    /// Whether an event is about this call.
    pub fn concerns(&self, event: &Event) -> bool {
        if event.name() == "BACKGROUND_JOB" {
            return !self.job.is_empty() && event.get("Job-UUID") == Some(self.job.as_str());
        }
        event.unique_id() == Some(self.channel.as_str())
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn answered(&self) -> bool {
        self.answered
    }

    /// The pages SpanDSP reported done so far (its page events).
    pub fn pages_done(&self) -> u32 {
        self.pages_done
    }

    /// The spandsp result, once it came.
    pub fn report(&self) -> Option<&SpandspReport> {
        self.result.as_ref()
    }

    /// FreeSWITCH's cause for the end of the call: the channel's
    /// `Hangup-Cause`, or the cause of an originate that failed
    /// (`-ERR USER_BUSY`).
    pub fn hangup_cause(&self) -> Option<&str> {
        self.hangup_cause
            .as_deref()
            .or(self.originate_error.as_deref())
            .filter(|c| !c.is_empty())
    }

    /// Folds in one event of this call; returns what to tell the scheduler.
    pub fn apply(&mut self, event: &Event) -> Option<CallProgress> {
        if self.finished || !self.concerns(event) {
            return None;
        }
        let subclass = event.subclass().unwrap_or_default();
        match event.name() {
            "BACKGROUND_JOB" => {
                let body = event.body.as_deref().unwrap_or_default().trim();
                if let Some(cause) = body.strip_prefix("-ERR") {
                    // Busy, no answer, a refused number: no channel is left.
                    self.originate_error = Some(cause.trim().to_owned());
                    self.finished = true;
                }
                None
            }
            "CHANNEL_ANSWER" => {
                self.answered = true;
                Some(CallProgress::Answered)
            }
            "CHANNEL_HANGUP" => {
                self.note_cause(event);
                None
            }
            "CHANNEL_HANGUP_COMPLETE" => {
                self.note_cause(event);
                self.finished = true;
                None
            }
            "CHANNEL_EXECUTE_COMPLETE"
                if event.get("Application") == Some(self.direction.application()) =>
            {
                let response = event.get("Application-Response").unwrap_or("_none_");
                if response != "_none_" && !response.is_empty() {
                    self.app_response = Some(response.to_owned());
                }
                None
            }
            "CUSTOM" if subclass == self.direction.subclass("negociateresult") => {
                self.negotiated = true;
                let r = SpandspReport::of(event);
                Some(CallProgress::Negotiated(Negotiation {
                    bit_rate: r.bit_rate,
                    ecm: r.ecm,
                    remote_ident: r.remote_ident,
                }))
            }
            "CUSTOM" if subclass == self.direction.subclass("pageresult") => {
                let r = SpandspReport::of(event);
                if r.pages <= self.pages_done {
                    return None;
                }
                self.pages_done = r.pages;
                let (x, y) = r.resolution.unwrap_or((8040, 3850));
                Some(CallProgress::PageDone(PageReport {
                    page: r.pages,
                    bad_rows: r.bad_rows,
                    longest_bad_row_run: r.longest_bad_row_run,
                    x_dpi: dpi(x),
                    y_dpi: dpi(y),
                }))
            }
            "CUSTOM" if subclass == self.direction.subclass("result") => {
                let mut report = SpandspReport::of(event);
                // mod_spandsp reports its configured top rate even when the
                // modems never trained: no speed is recorded for such a
                // call (issue 25 item 6).
                if !self.negotiated {
                    report.bit_rate = 0;
                }
                self.result = Some(report);
                None
            }
            _ => None,
        }
    }

    fn note_cause(&mut self, event: &Event) {
        if let Some(cause) = event.get("Hangup-Cause") {
            self.hangup_cause = Some(cause.to_owned());
        }
    }

    /// How the call ended. `document` names what `txfax` was given, for the
    /// error when FreeSWITCH could not open it.
    pub fn verdict(&self, document: &DocumentSource) -> Verdict {
        let fax = self.result.as_ref().map(SpandspReport::outcome);
        let succeeded = self.result.as_ref().is_some_and(|r| r.success);
        let outcome = if self.hangup_cause.as_deref() == Some(SHUTDOWN_CAUSE) && !succeeded {
            // FreeSWITCH was stopped (or restarted) and hung up every call:
            // not the fax's fault, so it is sent again without using up a
            // retry (issue 25 item 3), though SpanDSP reports code 49.
            Err(LineError::Interrupted(
                "FreeSWITCH shut down during the call (SYSTEM_SHUTDOWN)".into(),
            ))
        } else if let Some(cause) = &self.originate_error {
            Err(line_error_for_cause(cause))
        } else if let Some(response) = &self.app_response {
            Err(document.cannot_open(response))
        } else if let Some(report) = &self.result {
            if report.success {
                Ok(())
            } else {
                Err(LineError::Fax(report.t30_code()))
            }
        } else if self.answered {
            // Hung up before SpanDSP said anything: the call was cut.
            Err(LineError::Fax(T30Code::CallDropped))
        } else {
            Err(line_error_for_cause(
                self.hangup_cause
                    .as_deref()
                    .unwrap_or("NORMAL_TEMPORARY_FAILURE"),
            ))
        };
        Verdict {
            outcome,
            fax,
            answered: self.answered,
        }
    }
}

/// The cause FreeSWITCH hangs up every call with when it stops.
pub const SHUTDOWN_CAUSE: &str = "SYSTEM_SHUTDOWN";

/// The end of a call, as the line reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Result<(), LineError>,
    pub fax: Option<FaxOutcome>,
    pub answered: bool,
}

/// What `txfax` was told to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSource {
    /// A path FreeSWITCH reads directly (a shared data directory).
    Path(std::path::PathBuf),
    /// A file proxy URL fetched through mod_http_cache.
    Url(String),
}

impl DocumentSource {
    /// The `txfax` argument.
    pub fn txfax_argument(&self) -> String {
        match self {
            DocumentSource::Path(p) => p.display().to_string(),
            // The fetch check before dialling brought the file into
            // mod_http_cache (with `{refresh=true}`: never a stale copy);
            // txfax takes that copy, so each attempt fetches once.
            DocumentSource::Url(u) => format!("${{http_get({u})}}"),
        }
    }

    /// FreeSWITCH could not open what it was given. A path it cannot read is
    /// a document problem (no retry); a URL it could not fetch is this
    /// box's setup (file proxy address or allow list), worth retrying once
    /// fixed.
    pub fn cannot_open(&self, response: &str) -> LineError {
        match self {
            DocumentSource::Path(path) => LineError::Document(DocumentProblem::Unreadable {
                path: path.clone(),
                reason: format!("FreeSWITCH says: {response}"),
            }),
            DocumentSource::Url(url) => LineError::Switch(format!(
                "FreeSWITCH could not fetch the fax from the file proxy at {url} ({response}); \
                 check file_proxy.url, file_proxy.allow and mod_http_cache"
            )),
        }
    }
}

/// A FreeSWITCH hangup cause as the retry policy sees it (docs/kazoo.md 3.4:
/// Kazoo records the cause; busy and no answer are the usual retries).
pub fn line_error_for_cause(cause: &str) -> LineError {
    match cause {
        "USER_BUSY" | "NORMAL_CIRCUIT_CONGESTION" | "SWITCH_CONGESTION" => LineError::Busy,
        "NO_ANSWER"
        | "NO_USER_RESPONSE"
        | "PROGRESS_TIMEOUT"
        | "ALLOTTED_TIMEOUT"
        | "RECOVERY_ON_TIMER_EXPIRE"
        | "MEDIA_TIMEOUT" => LineError::NoAnswer,
        "" => LineError::Rejected("the call failed without a cause".into()),
        other => LineError::Rejected(cause_words(other)),
    }
}

/// A cause in a fax user's words, with FreeSWITCH's name for the log.
fn cause_words(cause: &str) -> String {
    let words = match cause {
        "CALL_REJECTED" => "the far end refused the call",
        "UNALLOCATED_NUMBER" | "NO_ROUTE_DESTINATION" | "INVALID_NUMBER_FORMAT" => {
            "the number does not exist"
        }
        "NUMBER_CHANGED" => "the number has changed",
        "DESTINATION_OUT_OF_ORDER" => "the far end is out of order",
        "NORMAL_TEMPORARY_FAILURE" | "NETWORK_OUT_OF_ORDER" | "SERVICE_UNAVAILABLE" => {
            "the network failed the call"
        }
        "GATEWAY_DOWN" | "CHAN_NOT_IMPLEMENTED" | "INCOMPATIBLE_DESTINATION" => {
            "FreeSWITCH could not place the call"
        }
        "ORIGINATOR_CANCEL" | "MANAGER_REQUEST" => "the call was hung up here",
        _ => "the call failed",
    };
    format!("{words} ({cause})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_retry_decisions() {
        assert_eq!(line_error_for_cause("USER_BUSY"), LineError::Busy);
        assert_eq!(line_error_for_cause("NO_ANSWER"), LineError::NoAnswer);
        assert_eq!(
            line_error_for_cause("NO_USER_RESPONSE"),
            LineError::NoAnswer
        );
        let rejected = line_error_for_cause("CALL_REJECTED");
        assert_eq!(
            rejected,
            LineError::Rejected("the far end refused the call (CALL_REJECTED)".into())
        );
        assert!(rejected.retry_may_help());
        assert!(matches!(
            line_error_for_cause("UNALLOCATED_NUMBER"),
            LineError::Rejected(t) if t.contains("does not exist")
        ));
    }

    #[test]
    fn txfax_arguments() {
        assert_eq!(
            DocumentSource::Url("http://127.0.0.1:30950/fax/ab.tiff".into()).txfax_argument(),
            "${http_get(http://127.0.0.1:30950/fax/ab.tiff)}"
        );
        assert_eq!(
            DocumentSource::Path("/srv/fax/1.tif".into()).txfax_argument(),
            "/srv/fax/1.tif"
        );
    }

    fn event(channel: &str, name: &str, subclass: &str, fields: &[(&str, &str)]) -> Event {
        let mut headers = vec![
            ("Event-Name".to_owned(), name.to_owned()),
            ("Event-Subclass".to_owned(), subclass.to_owned()),
            ("Unique-ID".to_owned(), channel.to_owned()),
        ];
        headers.extend(
            fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        Event {
            headers: crate::lines::freeswitch::esl::Headers(headers),
            body: None,
        }
    }

    /// Issue 25 item 6: a call whose modems never trained records no speed,
    /// although mod_spandsp's result names its configured top rate.
    #[test]
    fn a_call_that_never_trained_has_no_speed() {
        let result = [
            ("fax-result-code", "2"),
            ("fax-success", "0"),
            ("fax-transfer-rate", "14400"),
        ];
        let mut untrained = CallTrack::new("c1", "", Direction::Send);
        untrained.apply(&event("c1", "CUSTOM", "spandsp::txfaxresult", &result));
        assert_eq!(untrained.report().map(|r| r.bit_rate), Some(0));

        let mut trained = CallTrack::new("c2", "", Direction::Send);
        trained.apply(&event(
            "c2",
            "CUSTOM",
            "spandsp::txfaxnegociateresult",
            &[("fax-transfer-rate", "9600")],
        ));
        trained.apply(&event(
            "c2",
            "CUSTOM",
            "spandsp::txfaxresult",
            &[("fax-transfer-rate", "9600")],
        ));
        assert_eq!(trained.report().map(|r| r.bit_rate), Some(9600));
    }
}
