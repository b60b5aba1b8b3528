//! Lines: where fax calls are placed and taken.
//!
//! This module owns the [`Line`] trait every kind of line implements
//! (`loopback`, `freeswitch`, `modem`), the values a call
//! reports (progress, the attempt result, typed [`LineError`]s that drive
//! retry decisions) and the [`Inbound`] interface through which a line hands
//! over faxes it receives. It must not touch the store or know about jobs:
//! the scheduler turns an [`AttemptResult`] into an attempt row.
//!
//! T.30 vocabulary stops here: callers see [`T30Code`] and plain numbers.

pub mod freeswitch;
pub mod loopback;
pub mod modem;
pub mod selftest;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{LineConfig, LineKind};
pub use crate::fax::{
    DocumentProblem, ErrorCorrection, FaxOutcome, FaxSettings, Modem, Modems, Negotiation,
    PageLength, PageReport, Resolution, T30Code,
};

pub use loopback::LoopbackLine;
pub use modem::ModemLine;

/// One fax to send: a prepared fax TIFF and the settings of its job.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingFax {
    /// Names the call in logs and files: letters, digits, `-`, `_`, `.`
    /// (the scheduler uses the attempt id; see [`check_call_id`]).
    pub call_id: String,
    pub to_number: String,
    pub from_number: String,
    /// A fax TIFF (1728 pixels wide, bi-level), as `documents` prepares it.
    pub document: PathBuf,
    pub settings: FaxSettings,
}

/// What a call reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CallProgress {
    Dialling,
    /// The far end picked up (a fax machine or not).
    Answered,
    /// The fax machines agreed on speed and error correction.
    Negotiated(Negotiation),
    /// The last page is sent and its end of procedure (EOP) is going out:
    /// the far end may already have kept the whole fax, though its answer
    /// is not yet heard. A line reports it before the signal leaves, when
    /// it can (one that runs T.30 itself); the scheduler records it before
    /// the sink returns (issue 19).
    LastPageSent,
    /// A page was sent and confirmed.
    PageDone(PageReport),
}

/// Receives a call's progress, on the call's own thread.
pub type ProgressSink = Box<dyn FnMut(CallProgress) + Send>;

/// Why a call did not deliver the fax. The scheduler decides on retries
/// with [`LineError::retry_may_help`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    /// The document cannot be faxed; no call was placed.
    #[error("{0}")]
    Document(#[from] DocumentProblem),
    /// A per-job setting is invalid; no call was placed.
    #[error("{0}")]
    Settings(String),
    #[error("all {channels} channels of line {line} are in use")]
    NoFreeChannel { line: String, channels: u32 },
    #[error("the number is busy")]
    Busy,
    #[error("no answer")]
    NoAnswer,
    /// A modem dialled but no fax machine's carrier came (`NO CARRIER`).
    #[error("no fax machine answered (no carrier)")]
    NoCarrier,
    /// The modem found no dial tone: the phone line is unplugged or dead.
    #[error("line {line} has no dial tone")]
    NoDialTone { line: String },
    /// The line's device failed or vanished mid-call (a modem unplugged,
    /// or one that stopped making sense); the line is marked down.
    #[error("line {line} failed: {why}")]
    LineDown { line: String, why: String },
    /// The network or the far end refused the call.
    #[error("the call was rejected: {0}")]
    Rejected(String),
    /// The far end answered but the fax failed (or was never a fax).
    #[error("the fax failed: {0}")]
    Fax(T30Code),
    /// Faxbox itself failed (a bug or resource exhaustion).
    #[error("line failure: {0}")]
    Internal(String),
    /// The phone system carrying the line failed or is set up wrongly (a
    /// FreeSWITCH that cannot fetch the fax, or does not end a call); the
    /// text says what to check.
    #[error("{0}")]
    Switch(String),
    /// The line lost track of the call (its FreeSWITCH connection dropped):
    /// the attempt does not count and the fax is sent again.
    #[error("the call was interrupted: {0}")]
    Interrupted(String),
}

impl LineError {
    /// Whether calling again later could succeed.
    pub fn retry_may_help(&self) -> bool {
        match self {
            LineError::Document(_) | LineError::Settings(_) => false,
            LineError::Fax(code) => code.retry_may_help(),
            LineError::NoFreeChannel { .. }
            | LineError::Busy
            | LineError::NoAnswer
            | LineError::NoCarrier
            | LineError::NoDialTone { .. }
            | LineError::LineDown { .. }
            | LineError::Rejected(_)
            | LineError::Internal(_)
            | LineError::Switch(_)
            | LineError::Interrupted(_) => true,
        }
    }
}

/// How one call attempt ended: what the scheduler records per attempt
/// (docs/kazoo.md 3.4, one consistent shape).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub call_id: String,
    pub line: String,
    pub to_number: String,
    /// Whether anything picked up.
    pub answered: bool,
    pub outcome: Result<(), LineError>,
    /// What T.30 reported, when a fax session ran: completion code, pages,
    /// bit rate, ECM, remote ident.
    pub fax: Option<FaxOutcome>,
    /// Pages in the document that was to be sent.
    pub document_pages: u32,
    /// How long the call lasted on the line (audio time).
    pub duration: Duration,
    /// How long it took here (shorter than `duration` on a fast loopback).
    pub wall_time: Duration,
    /// The switch's own word for how the call ended (FreeSWITCH's
    /// `Hangup-Cause`, e.g. `NORMAL_CLEARING`, `UNALLOCATED_NUMBER`), when
    /// the line has a switch; the scheduler records it as Kazoo's
    /// `hangup_cause` / `result_cause` (issue 25 item 4).
    pub hangup_cause: Option<String>,
}

impl AttemptResult {
    pub fn succeeded(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The T.30 completion code, when the call got as far as T.30.
    pub fn code(&self) -> Option<T30Code> {
        self.fax.as_ref().map(|f| f.code)
    }
}

/// Refuses a call id a line cannot name its call by: it names the call's
/// thread and, on the loopback line, a file, so 1 to 64 letters, digits,
/// `-`, `_` or `.`, and no dot first (no hidden file, no `..`).
pub fn check_call_id(call_id: &str) -> Result<(), LineError> {
    let valid = !call_id.is_empty()
        && call_id.len() <= 64
        && call_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !call_id.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(LineError::Settings(format!(
            "call id {call_id:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

/// A call in progress. Dropping it does not stop the call.
#[derive(Debug)]
pub struct Call {
    call_id: String,
    thread: JoinHandle<AttemptResult>,
    line: String,
    to_number: String,
    hang_up: Arc<AtomicBool>,
}

/// The flag a line's call thread watches to end a call early.
#[derive(Debug, Clone, Default)]
pub struct HangUp(Arc<AtomicBool>);

impl HangUp {
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Call {
    /// Runs a line's call on a thread of its own, named `thread` for the
    /// logs and a debugger; `run` gets the flag that asks it to hang up.
    /// An error means no call was placed.
    pub fn spawn(
        thread: String,
        call_id: String,
        line: String,
        to_number: String,
        run: impl FnOnce(HangUp) -> AttemptResult + Send + 'static,
    ) -> Result<Call, LineError> {
        let hang_up = HangUp::default();
        let requested = hang_up.clone();
        let thread = std::thread::Builder::new()
            .name(thread)
            .spawn(move || run(requested))
            .map_err(|e| LineError::Internal(format!("cannot start the call's thread: {e}")))?;
        Ok(Call {
            call_id,
            thread,
            line,
            to_number,
            hang_up: hang_up.0,
        })
    }

    /// Ends the call as soon as the line can (operator cancel, shutdown
    /// deadline). A fax in progress ends as dropped (T.30 code 49).
    pub fn hang_up(&self) {
        self.hang_up.store(true, Ordering::Release);
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Blocks until the call has ended.
    pub fn wait(self) -> AttemptResult {
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => AttemptResult {
                call_id: self.call_id,
                line: self.line,
                to_number: self.to_number,
                answered: false,
                outcome: Err(LineError::Internal("the call's thread panicked".into())),
                fax: None,
                document_pages: 0,
                duration: Duration::ZERO,
                wall_time: Duration::ZERO,
                hangup_cause: None,
            },
        }
    }
}

/// A fax a line received, handed to the receive path.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedFax {
    pub line: String,
    pub call_id: String,
    pub from_number: String,
    pub to_number: String,
    /// The received pages (TIFF, T.6). The receiver may move or delete it.
    pub tiff: PathBuf,
    /// How the receiving side of the call ended (pages, code, remote ident).
    pub outcome: FaxOutcome,
    pub duration: Duration,
}

/// An incoming call, as a line sees it before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub line: String,
    pub call_id: String,
    pub from_number: String,
    /// The called number (DID).
    pub to_number: String,
}

/// How the receive path wants a call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Our station ident for the call (CSI).
    pub ident: String,
    /// Where the line writes the received pages.
    pub tiff: PathBuf,
}

/// The receive path (`crate::inbound`): routes calls to faxboxes and takes
/// the faxes lines receive.
pub trait Inbound: Send + Sync {
    /// Whether a number rings one of this box's own faxboxes; the loopback
    /// line then delivers to it instead of its simulated far end.
    fn owns_number(&self, number: &str) -> bool;
    /// Before answering: `None` refuses the call (no faxbox for the number
    /// and no default). The receive path records the call first, so that
    /// pages received before a crash are still delivered after it.
    fn answer(&self, call: &IncomingCall) -> Option<Answer>;
    /// Called on the line's thread once the call has ended.
    fn deliver(&self, fax: ReceivedFax);
}

/// A line's own view of what it does, as `/v2/status` shows a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineActivity {
    /// One of the channel states of `/v2/status` (`ringing`, `dialling`,
    /// `training`, `sending`, `receiving`).
    pub state: &'static str,
    /// The same in words.
    pub text: String,
}

/// A source of channels that can place fax calls and take them.
pub trait Line: Send + Sync {
    fn name(&self) -> &str;
    /// Calls it can carry at once.
    fn channels(&self) -> u32;
    /// Calls it carries at once when all of it is up: what the status
    /// shows, with the channels of a part that is down shown down.
    fn configured_channels(&self) -> u32 {
        self.channels()
    }
    /// Calls it is carrying now.
    fn calls_in_progress(&self) -> u32;
    /// Why the line cannot carry calls now (its switch is unreachable, its
    /// modem does not answer), or `None` when it can. Shown by `/v2/status`.
    fn fault(&self) -> Option<String> {
        None
    }
    /// What the line's device is doing that no call record shows (a
    /// modem's phone ringing before the call is answered), for
    /// `/v2/status`; `None` when it is idle or the records say it all.
    fn activity(&self) -> Option<LineActivity> {
        None
    }
    /// Checks the fax and places a call on a thread of its own. Errors
    /// returned here (bad document, bad settings, no free channel) mean no
    /// call was placed; everything later is in the [`AttemptResult`].
    fn send(&self, fax: OutgoingFax, progress: ProgressSink) -> Result<Call, LineError>;
    /// Sends a fax whose previous attempt, the call `interrupted_call_id`
    /// on this line, was interrupted (Faxbox stopped or lost the line
    /// mid-call). A line whose switch may still be carrying that call
    /// follows it instead of dialling again; the others send anew.
    fn resume(
        &self,
        interrupted_call_id: &str,
        fax: OutgoingFax,
        progress: ProgressSink,
    ) -> Result<Call, LineError> {
        let _ = interrupted_call_id;
        self.send(fax, progress)
    }
    /// Where faxes this line receives are delivered.
    fn set_inbound(&self, inbound: Arc<dyn Inbound>);
}

/// Builds the line a `[[line]]` section describes. `file_proxy` serves
/// documents to FreeSWITCH lines that fetch them over HTTP.
pub fn from_config(
    config: &LineConfig,
    data_dir: &std::path::Path,
    file_proxy: Option<&Arc<freeswitch::FileProxy>>,
) -> anyhow::Result<Arc<dyn Line>> {
    Ok(match &config.kind {
        LineKind::Loopback(l) => Arc::new(LoopbackLine::new(&config.name, l.clone(), data_dir)),
        LineKind::Modem(m) => Arc::new(ModemLine::start(&config.name, m.clone(), data_dir)),
        LineKind::FreeSwitch(f) => Arc::new(freeswitch::FreeSwitchLine::start(
            &config.name,
            f.clone(),
            file_proxy.cloned(),
            data_dir,
            freeswitch::Backoff::default(),
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_id_names_a_file_and_a_thread_safely() {
        for good in ["0f3a9c-1", "a", "fax_2.retry", &"x".repeat(64)] {
            assert!(check_call_id(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "../escape",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            let Err(LineError::Settings(message)) = check_call_id(bad) else {
                panic!("{bad:?} was accepted");
            };
            assert!(message.contains("call id"), "{bad:?}: {message}");
        }
    }
}
