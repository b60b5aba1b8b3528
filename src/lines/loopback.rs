//! The loopback line: every call reaches a simulated fax machine in this
//! process, running the answering side of real T.30 over simulated audio.
//!
//! Per-number behaviour from the configuration makes failures real (busy,
//! no answer, a voice instead of a fax, a cut line, a noisy line, a machine
//! without ECM), so the scheduler and tests meet what a real line gives.
//! The far end keeps what it received in
//! `<data_dir>/loopback/<line>/<call_id>.tiff`; a number owned by one of the
//! box's faxboxes ([`Inbound::owns_number`]) is delivered there instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{FarEnd, LoopbackConfig};
use crate::fax::{
    ErrorCorrection, FaxDocument, FaxEvent, FaxOutcome, FaxSession, FaxSettings, LineModel, Role,
    Terminal, Transfer, VoiceAnswer, Wire, check_receive_path,
};

use super::{
    Answer, AttemptResult, Call, CallProgress, HangUp, Inbound, IncomingCall, Line, LineError,
    OutgoingFax, ProgressSink, ReceivedFax, check_call_id,
};

/// How long a busy number takes to report busy, and an unanswered one to
/// give up (Kazoo's `endpoint_timeout`, docs/kazoo.md 3.6); only waited
/// for in real time.
const BUSY_AFTER: Duration = Duration::from_secs(3);
const NO_ANSWER_AFTER: Duration = Duration::from_secs(40);

/// The far end's station ident when the dialled number has none usable.
const FAR_END_IDENT: &str = "LOOPBACK";

/// A bound on any call, in audio time, beyond the T.30 timers: a line whose
/// noise keeps the V.21 receiver's carrier detector on suspends those timers
/// (as on a real line), so only a hang-up ends the call.
fn longest_call(pages: u32) -> Duration {
    Duration::from_secs(300 + 120 * u64::from(pages))
}

/// After the caller is done, the far end is given this long to finish its
/// own phase E (it may still be waiting for a DCN that never comes).
const FAR_END_GRACE: Duration = Duration::from_secs(60);

/// The built-in line whose far end is simulated.
pub struct LoopbackLine {
    name: String,
    config: LoopbackConfig,
    dir: PathBuf,
    active: Arc<AtomicU32>,
    inbound: RwLock<Option<Arc<dyn Inbound>>>,
}

impl LoopbackLine {
    pub fn new(name: &str, config: LoopbackConfig, data_dir: &Path) -> LoopbackLine {
        LoopbackLine {
            name: name.to_owned(),
            config,
            dir: data_dir.join("loopback").join(name),
            active: Arc::new(AtomicU32::new(0)),
            inbound: RwLock::new(None),
        }
    }

    /// Where the far end keeps the pages it received in call `call_id`.
    pub fn received_file(&self, call_id: &str) -> PathBuf {
        self.dir.join(format!("{call_id}.tiff"))
    }

    /// What the far end does when `number` is dialled.
    pub fn far_end(&self, number: &str) -> FarEnd {
        self.config
            .numbers
            .get(number)
            .cloned()
            .unwrap_or(FarEnd::Fax)
    }

    fn claim_channel(&self) -> Result<ChannelGuard, LineError> {
        let channels = self.config.channels;
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < channels).then_some(n + 1)
            })
            .map_err(|_| LineError::NoFreeChannel {
                line: self.name.clone(),
                channels,
            })?;
        Ok(ChannelGuard(self.active.clone()))
    }
}

/// Frees a channel when the call's thread ends, even by panic.
struct ChannelGuard(Arc<AtomicU32>);

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Line for LoopbackLine {
    fn name(&self) -> &str {
        &self.name
    }

    fn channels(&self) -> u32 {
        self.config.channels
    }

    fn calls_in_progress(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    fn send(&self, fax: OutgoingFax, progress: ProgressSink) -> Result<Call, LineError> {
        // Everything that can be wrong with the request is found before a
        // channel is taken or a number dialled (docs/architecture.md, invariant 4).
        check_call_id(&fax.call_id)?;
        if fax.to_number.trim().is_empty() {
            return Err(LineError::Settings("no number to dial".into()));
        }
        let document = FaxDocument::open(&fax.document)?;
        let received = self.received_file(&fax.call_id);
        check_receive_path(&received).map_err(|e| LineError::Settings(e.to_string()))?;
        // Settings are checked by building (and dropping) a session now.
        FaxSession::new(
            &fax.call_id,
            Role::Caller,
            &Transfer::Send(document.clone()),
            &fax.settings,
        )
        .map_err(|e| LineError::Settings(e.to_string()))?;
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            LineError::Internal(format!("cannot create {}: {e}", self.dir.display()))
        })?;

        let guard = self.claim_channel()?;
        let call = PlannedCall {
            line: self.name.clone(),
            far_end: self.far_end(&fax.to_number),
            inbound: self
                .inbound
                .read()
                .ok()
                .and_then(|i| i.clone())
                .filter(|i| i.owns_number(&fax.to_number)),
            realtime: self.config.realtime,
            received,
            document,
            fax,
        };
        Call::spawn(
            format!("loopback-{}", call.fax.call_id),
            call.fax.call_id.clone(),
            self.name.clone(),
            call.fax.to_number.clone(),
            move |hang_up| {
                let _guard = guard;
                call.run(progress, hang_up)
            },
        )
    }

    fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        if let Ok(mut slot) = self.inbound.write() {
            *slot = Some(inbound);
        }
    }
}

/// Everything one call needs on its thread.
struct PlannedCall {
    line: String,
    far_end: FarEnd,
    inbound: Option<Arc<dyn Inbound>>,
    realtime: bool,
    received: PathBuf,
    document: FaxDocument,
    fax: OutgoingFax,
}

impl PlannedCall {
    fn run(self, mut progress: ProgressSink, hang_up: HangUp) -> AttemptResult {
        let started = Instant::now();
        let span = tracing::info_span!("call", line = %self.line, call = %self.fax.call_id);
        let _enter = span.enter();
        progress(CallProgress::Dialling);
        let unanswered = |outcome, after: Duration| {
            if self.realtime {
                let until = Instant::now() + after;
                while !hang_up.requested() {
                    let Some(left) = until.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
            }
            self.result(false, Err(outcome), None, after, started)
        };
        let model = match &self.far_end {
            FarEnd::Busy => return unanswered(LineError::Busy, BUSY_AFTER),
            FarEnd::NoAnswer => return unanswered(LineError::NoAnswer, NO_ANSWER_AFTER),
            FarEnd::DropsAfter(after) => LineModel {
                cut_after: Some(*after),
                ..LineModel::clean()
            },
            FarEnd::Noise { db, loss_db } => LineModel {
                noise_dbm0: Some(*db),
                attenuation_db: *loss_db,
                ..LineModel::clean()
            },
            FarEnd::Fax | FarEnd::NotAFax | FarEnd::RejectsEcm => LineModel::clean(),
        };
        progress(CallProgress::Answered);

        let mut caller = match FaxSession::new(
            &self.fax.call_id,
            Role::Caller,
            &Transfer::Send(self.document.clone()),
            &self.fax.settings,
        ) {
            Ok(s) => s,
            Err(e) => {
                return self.result(
                    true,
                    Err(LineError::Internal(e.to_string())),
                    None,
                    Duration::ZERO,
                    started,
                );
            }
        };
        // A call to one of the box's own faxboxes is answered by the receive
        // path, with that faxbox's ident, into a file it chose.
        let answer = match self.answer() {
            Ok(answer) => answer,
            Err(refused) => {
                return self.result(false, Err(refused), None, Duration::ZERO, started);
            }
        };
        let received = answer
            .as_ref()
            .map_or_else(|| self.received.clone(), |a| a.tiff.clone());
        let mut far = match self.far_end_terminal(answer.as_ref(), &received) {
            Ok(far) => far,
            Err(e) => {
                return self.result(
                    true,
                    Err(LineError::Internal(e)),
                    None,
                    Duration::ZERO,
                    started,
                );
            }
        };

        let duration = self.exchange(&mut caller, far.as_mut(), model, &mut progress, &hang_up);
        let far_outcome = far.outcome();

        let outcome = caller.outcome();
        let result = match &outcome {
            Some(o) if o.is_ok() => Ok(()),
            Some(o) => Err(LineError::Fax(o.code)),
            None => Err(LineError::Internal(
                "the fax session ended without a result".into(),
            )),
        };
        tracing::info!(
            code = ?outcome.as_ref().map(|o| o.code),
            pages = outcome.as_ref().map(|o| o.pages),
            audio = ?duration,
            "call ended"
        );
        if let (Some(inbound), Some(far_outcome)) = (&self.inbound, far_outcome) {
            inbound.deliver(ReceivedFax {
                line: self.line.clone(),
                call_id: self.fax.call_id.clone(),
                from_number: self.fax.from_number.clone(),
                to_number: self.fax.to_number.clone(),
                tiff: received.clone(),
                outcome: far_outcome,
                duration,
            });
        }
        self.result(true, result, outcome, duration, started)
    }

    /// How a call to one of the box's own faxboxes is answered (by the
    /// receive path); `None` for any other number.
    fn answer(&self) -> Result<Option<Answer>, LineError> {
        let Some(inbound) = &self.inbound else {
            return Ok(None);
        };
        let call = IncomingCall {
            line: self.line.clone(),
            call_id: self.fax.call_id.clone(),
            from_number: self.fax.from_number.clone(),
            to_number: self.fax.to_number.clone(),
        };
        match inbound.answer(&call) {
            Some(answer) => Ok(Some(answer)),
            None => Err(LineError::Rejected(format!(
                "no faxbox answers {}",
                self.fax.to_number
            ))),
        }
    }

    /// The call on the wire: steps it, reports progress, hangs up at the
    /// time limit or on request (paced to real time if asked), then lets
    /// the far end hear the rest; how long the audio lasted.
    fn exchange(
        &self,
        caller: &mut FaxSession,
        far: &mut dyn FarTerminal,
        model: LineModel,
        progress: &mut ProgressSink,
        hang_up: &HangUp,
    ) -> Duration {
        let mut wire = Wire::new(model);
        let limit = longest_call(self.document.pages());
        let paced_from = Instant::now();
        let mut hung_up = false;
        while !caller.is_finished() {
            wire.step(caller, far.as_terminal());
            for event in caller.take_events() {
                match event {
                    // The sink records each of these before it returns,
                    // and the far end hears nothing more until then.
                    FaxEvent::Negotiated(n) => progress(CallProgress::Negotiated(n)),
                    FaxEvent::LastPageSent => progress(CallProgress::LastPageSent),
                    FaxEvent::PageDone(p) => progress(CallProgress::PageDone(p)),
                    FaxEvent::Finished(_) => {}
                }
            }
            if wire.elapsed() >= limit {
                tracing::warn!(limit = ?limit, "call exceeded its time limit; hanging up");
                caller.hang_up();
                hung_up = true;
            }
            if hang_up.requested() {
                tracing::info!("hanging up on request");
                caller.hang_up();
                hung_up = true;
            }
            if self.realtime
                && let Some(ahead) = wire.elapsed().checked_sub(paced_from.elapsed())
            {
                std::thread::sleep(ahead);
            }
        }
        let duration = wire.elapsed();
        // The far end hears the rest of the call (our DCN, then silence),
        // unless we hung up: then the line is gone for it too.
        let grace_end = duration + FAR_END_GRACE;
        while !hung_up && !far.as_terminal().is_finished() && wire.elapsed() < grace_end {
            wire.step(caller, far.as_terminal());
        }
        far.as_terminal().hang_up();
        duration
    }

    /// The far end of the call: a voice (no fax tones), or a fax machine
    /// receiving into `received` with the ident of the faxbox that answered
    /// (or one made from the number dialled).
    fn far_end_terminal(
        &self,
        answer: Option<&Answer>,
        received: &Path,
    ) -> Result<Box<dyn FarTerminal>, String> {
        if self.far_end == FarEnd::NotAFax {
            return Ok(Box::new(VoiceAnswer::default()));
        }
        let settings = FaxSettings {
            ident: answer.map_or_else(|| far_end_ident(&self.fax.to_number), |a| a.ident.clone()),
            error_correction: if self.far_end == FarEnd::RejectsEcm {
                ErrorCorrection::Disabled
            } else {
                ErrorCorrection::Enabled
            },
            ..FaxSettings::default()
        };
        let far_id = format!("{}-far", self.fax.call_id);
        match FaxSession::new(
            &far_id,
            Role::Answerer,
            &Transfer::Receive(received.to_path_buf()),
            &settings,
        ) {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn result(
        &self,
        answered: bool,
        outcome: Result<(), LineError>,
        fax: Option<FaxOutcome>,
        duration: Duration,
        started: Instant,
    ) -> AttemptResult {
        AttemptResult {
            call_id: self.fax.call_id.clone(),
            line: self.line.clone(),
            to_number: self.fax.to_number.clone(),
            answered,
            outcome,
            fax,
            document_pages: self.document.pages(),
            duration,
            wall_time: started.elapsed(),
            hangup_cause: None,
        }
    }
}

/// The far end: a fax machine (with a result) or a voice (without).
trait FarTerminal {
    fn as_terminal(&mut self) -> &mut dyn Terminal;
    fn outcome(&self) -> Option<FaxOutcome>;
}

impl FarTerminal for FaxSession {
    fn as_terminal(&mut self) -> &mut dyn Terminal {
        self
    }
    fn outcome(&self) -> Option<FaxOutcome> {
        FaxSession::outcome(self)
    }
}

impl FarTerminal for VoiceAnswer {
    fn as_terminal(&mut self) -> &mut dyn Terminal {
        self
    }
    fn outcome(&self) -> Option<FaxOutcome> {
        None
    }
}

/// The far machine answers with the number it was called on as its CSI,
/// as most machines are set up (T.30 5.3.6.2: digits, '+', space).
fn far_end_ident(number: &str) -> String {
    let ident: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .take(20)
        .collect();
    if ident.is_empty() {
        FAR_END_IDENT.to_owned()
    } else {
        ident
    }
}
