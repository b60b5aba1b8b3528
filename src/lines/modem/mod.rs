//! The modem line: a Class 1 fax modem on a serial port, with SpanDSP's
//! T.30 on this side of the cable (docs/architecture.md, deployment 2).
//!
//! It owns the serial device: its UUCP lock ([`lock`]), probing the modem
//! at start and now and then (`ATI`, `AT+FCLASS=?`, flow control, caller
//! id), marking the line down when it does not answer and up again when it
//! does, counting `RING`s and answering, dialling and hanging up, and
//! mapping the modem's `BUSY`, `NO ANSWER`, `NO CARRIER` and `NO DIALTONE`
//! to [`LineError`]s. The AT layer is [`at`]; one call's T.30 over Class 1
//! is `driver`; [`rig`] has soft modems for tests.
//!
//! T.30 decides what a call achieved: once the far end confirmed the last
//! page, the fax is delivered whatever the modem does afterwards, and a
//! modem that stops answering then is reset, not blamed (issue 26).
//!
//! One modem carries one call at a time: a send takes the port from the
//! line's supervisor thread (which listens for rings while idle) and gives
//! it back when the call ends, or drops it when the device failed.

pub mod at;
mod driver;
pub mod lock;
pub mod rig;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{FlowControl, ModemConfig};
use crate::fax::{Class1T30, FaxDocument, FaxEvent, FaxOutcome, FaxSettings, Role, Transfer};

use self::at::{AtError, AtPort, CAN, ResultCode};
use self::driver::{Driver, DriverError, DriverEvent, Start};
use super::{
    AttemptResult, Call, CallProgress, HangUp, Inbound, IncomingCall, Line, LineError, OutgoingFax,
    ProgressSink, ReceivedFax, check_call_id,
};

pub use rig::{Behaviour, FarCall, FlowStats, Party, SoftModems};

/// What the modem is doing, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemState {
    /// Not answering (unplugged, switched off, not a fax modem): why.
    Down(String),
    Idle,
    /// An incoming call has rung this many times.
    Ringing(u32),
    Dialling,
    /// Training the high-speed modem at this bit rate.
    Training(u32),
    /// Sending page n (1-based).
    Sending(u32),
    Receiving,
}

impl std::fmt::Display for ModemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModemState::Down(why) => write!(f, "down: {why}"),
            ModemState::Idle => f.write_str("idle"),
            ModemState::Ringing(n) => write!(f, "ringing ({n})"),
            ModemState::Dialling => f.write_str("dialling"),
            ModemState::Training(rate) => write!(f, "training at {rate} bit/s"),
            ModemState::Sending(page) => write!(f, "sending page {page}"),
            ModemState::Receiving => f.write_str("receiving"),
        }
    }
}

/// How long without a `RING` before a ringing call is taken as gone.
const RINGS_FORGOTTEN_AFTER: Duration = Duration::from_secs(10);

struct Shared {
    name: String,
    config: ModemConfig,
    port: Mutex<Option<AtPort>>,
    /// A call (either way) has the port.
    in_call: AtomicBool,
    state: Mutex<ModemState>,
    inbound: RwLock<Option<Arc<dyn Inbound>>>,
    stop: AtomicBool,
    calls: AtomicU32,
    /// A call found the device failed: wait a probe interval before
    /// looking for it again (it may be being unplugged or reset).
    faulted: AtomicBool,
    /// Wakes the supervisor (an eventfd): a call wants the port, a call
    /// ended, or the line stops. Idle, it sleeps on this and the modem.
    wake: Option<OwnedFd>,
}

impl Shared {
    fn wall(&self, line: Duration) -> Duration {
        line.div_f64(self.config.time_scale)
    }

    fn set_state(&self, state: ModemState) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s != state {
            match (&*s, &state) {
                (ModemState::Down(_), ModemState::Idle) => {
                    tracing::info!(line = %self.name, "modem answers again: line up")
                }
                // Once per reason: a modem missing at start-up is logged
                // too, a modem that stays missing is not logged again.
                (_, ModemState::Down(why)) => {
                    tracing::warn!(line = %self.name, reason = %why, "modem line down")
                }
                _ => {}
            }
            *s = state;
        }
    }

    /// Wakes the supervisor thread.
    fn ring_wake(&self) {
        if let Some(fd) = &self.wake {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    /// Sleeps until `until` or a wake-up, without the port.
    fn sleep(&self, until: Instant) {
        let Some(fd) = &self.wake else {
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20)),
            );
            return;
        };
        let left = until.saturating_duration_since(Instant::now());
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec::try_from(left).ok();
        let _ = rustix::event::poll(&mut fds, timeout.as_ref());
        self.drain_wake();
    }

    fn drain_wake(&self) {
        if let Some(fd) = &self.wake {
            let mut count = [0u8; 8];
            let _ = rustix::io::read(fd, &mut count);
        }
    }

    fn state(&self) -> ModemState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn port(&self) -> MutexGuard<'_, Option<AtPort>> {
        self.port.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_call_id(&self) -> String {
        let n = self.calls.fetch_add(1, Ordering::AcqRel) + 1;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("{}-in-{stamp}-{n}", self.name)
    }
}

/// A Class 1 fax modem line.
pub struct ModemLine {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl ModemLine {
    /// Starts the line's supervisor thread, which probes the modem at once.
    pub fn start(name: &str, config: ModemConfig, _data_dir: &Path) -> ModemLine {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            config,
            port: Mutex::new(None),
            in_call: AtomicBool::new(false),
            state: Mutex::new(ModemState::Down("not probed yet".into())),
            inbound: RwLock::new(None),
            stop: AtomicBool::new(false),
            calls: AtomicU32::new(0),
            faulted: AtomicBool::new(false),
            wake: rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
            )
            .map_err(
                |e| tracing::warn!(line = name, error = %e, "no eventfd: the modem line polls"),
            )
            .ok(),
        });
        let supervisor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("modem-{name}"))
                .spawn(move || supervise(&shared))
                .map_err(|e| {
                    tracing::error!(line = name, error = %e, "cannot start the modem thread");
                })
                .ok()
        };
        ModemLine {
            shared,
            supervisor: Mutex::new(supervisor),
        }
    }

    /// What the modem is doing now.
    pub fn state(&self) -> ModemState {
        self.shared.state()
    }

    /// Waits up to `timeout` for the line to reach a state `want` accepts.
    pub fn wait_for(&self, timeout: Duration, want: impl Fn(&ModemState) -> bool) -> ModemState {
        let until = Instant::now() + timeout;
        loop {
            let state = self.state();
            if want(&state) || Instant::now() >= until {
                return state;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ModemLine {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.ring_wake();
        let thread = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Line for ModemLine {
    fn name(&self) -> &str {
        &self.shared.name
    }

    /// One call at a time; none while the modem is down, so jobs wait for
    /// it rather than fail.
    fn channels(&self) -> u32 {
        match self.shared.state() {
            ModemState::Down(_) => 0,
            _ => 1,
        }
    }

    fn calls_in_progress(&self) -> u32 {
        u32::from(self.shared.in_call.load(Ordering::Acquire))
    }

    /// Why the modem is down, for `/v2/status` and the dashboard.
    fn fault(&self) -> Option<String> {
        match self.shared.state() {
            ModemState::Down(why) => Some(why),
            _ => None,
        }
    }

    /// The modem's own state: the phone ringing before a call is
    /// answered, or a call the store has no record of yet.
    fn activity(&self) -> Option<super::LineActivity> {
        let (state, text) = match self.shared.state() {
            ModemState::Down(_) | ModemState::Idle => return None,
            ModemState::Ringing(n) => ("ringing", format!("ringing ({n} rings)")),
            ModemState::Dialling => ("dialling", "dialling".to_owned()),
            ModemState::Training(rate) => ("training", format!("training at {rate} bit/s")),
            ModemState::Sending(page) => ("sending", format!("sending page {page}")),
            ModemState::Receiving => ("receiving", "receiving a fax".to_owned()),
        };
        Some(super::LineActivity { state, text })
    }

    fn send(&self, fax: OutgoingFax, progress: ProgressSink) -> Result<Call, LineError> {
        check_call_id(&fax.call_id)?;
        let number: String = fax
            .to_number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if number.is_empty()
            || number.len() > 40
            || !number
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#' | ',' | 'W' | 'w'))
        {
            return Err(LineError::Settings(format!(
                "the number {:?} cannot be dialled by a modem (digits, +, *, #, and , for a pause)",
                fax.to_number
            )));
        }
        let document = FaxDocument::open(&fax.document)?;
        // The settings are checked by building (and dropping) an engine.
        Class1T30::new(
            &fax.call_id,
            Role::Caller,
            &Transfer::Send(document.clone()),
            &fax.settings,
        )
        .map_err(|e| LineError::Settings(e.to_string()))?;

        let shared = self.shared.clone();
        if shared
            .in_call
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(LineError::NoFreeChannel {
                line: shared.name.clone(),
                channels: 1,
            });
        }
        // The supervisor may be waiting on the modem with the port: it
        // lets go when woken and sees the call.
        shared.ring_wake();
        let Some(port) = shared.port().take() else {
            shared.in_call.store(false, Ordering::Release);
            let why = match shared.state() {
                ModemState::Down(why) => why,
                _ => "the modem is not ready".into(),
            };
            return Err(LineError::LineDown {
                line: shared.name.clone(),
                why,
            });
        };
        Call::spawn(
            format!("modem-{}", fax.call_id),
            fax.call_id.clone(),
            self.shared.name.clone(),
            fax.to_number.clone(),
            move |hang_up| {
                let (result, port) =
                    send_call(&shared, port, fax, number, document, progress, hang_up);
                give_back(&shared, port);
                result
            },
        )
    }

    fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        if let Ok(mut slot) = self.shared.inbound.write() {
            *slot = Some(inbound);
        }
    }
}

/// Returns the port after a call; `None` means the device failed.
fn give_back(shared: &Shared, port: Result<AtPort, String>) {
    match port {
        Ok(port) => {
            *shared.port() = Some(port);
            shared.set_state(ModemState::Idle);
        }
        Err(why) => {
            shared.faulted.store(true, Ordering::Release);
            shared.set_state(ModemState::Down(format!(
                "the modem on {} failed during a call: {why}",
                shared.config.device.display()
            )))
        }
    }
    shared.in_call.store(false, Ordering::Release);
    shared.ring_wake();
}

/// Locks the device, opens it and checks it is a Class 1 fax modem.
fn open_and_probe(shared: &Shared) -> Result<AtPort, String> {
    let config = &shared.config;
    let device = config.device.display();
    // Another program's lock keeps us off before the device is even
    // opened: opening and probing would reset its modem (issue 26).
    let lock = match &config.lock_dir {
        Some(dir) => Some(
            lock::UucpLock::acquire(dir, &config.device)
                .map_err(|e| format!("the modem on {device} {e}"))?,
        ),
        None => None,
    };
    let hardware = config.flow_control == FlowControl::Hardware;
    let mut port =
        AtPort::open(&config.device, config.speed, hardware).map_err(|e| e.to_string())?;
    if let Some(lock) = lock {
        port.keep_lock(lock);
    }
    probe(shared, &mut port).map_err(|e| format!("the modem on {device} {e}"))?;
    Ok(port)
}

fn probe(shared: &Shared, port: &mut AtPort) -> Result<(), String> {
    let timeout = shared.wall(Duration::from_secs(5));
    port.discard_input();
    port.set_xon_xoff(false);
    let mut ask = |command: &str| -> Result<at::Reply, String> {
        port.command(command, timeout).map_err(|e| match e {
            AtError::Timeout { echoed: true, .. } => {
                format!("only echoes {command} back and never answers it")
            }
            AtError::Timeout { .. } => format!("does not answer {command}"),
            other => format!("failed on {command}: {other}"),
        })
    };
    let mut ok = |command: &str| -> Result<at::Reply, String> {
        let reply = ask(command)?;
        match reply.code {
            ResultCode::Ok => Ok(reply),
            code => Err(format!("said {code} to {command}")),
        }
    };
    if !shared.config.init.is_empty() {
        ok(&shared.config.init)?;
    }
    // Echo off, verbose results, results on, no auto-answer (the line
    // counts rings itself).
    ok("ATE0V1Q0S0=0")?;
    let ident = ok("ATI")?;
    let classes = ok("AT+FCLASS=?")?;
    let offers_class1 = classes
        .info
        .iter()
        .flat_map(|l| l.split([',', '(', ')', '-']))
        .any(|c| c.trim() == "1");
    if !offers_class1 {
        return Err(format!(
            "does not offer fax Class 1 (AT+FCLASS=? said {:?})",
            classes.info.join(" ")
        ));
    }
    ok("AT+FCLASS=1")?;
    let flow = flow_control(shared, &mut ask)?;
    port.set_xon_xoff(flow == FlowControl::XonXoff);
    if flow == FlowControl::Hardware && shared.config.flow_control != FlowControl::Hardware {
        port.set_hardware_flow(true).map_err(|e| e.to_string())?;
    }
    // Caller id before the first RING (`NMBR = ...`); a modem without it
    // says ERROR, which changes nothing.
    let _ = port.command("AT+VCID=1", timeout);
    tracing::debug!(line = %shared.name, model = %ident.info.join(" "), flow = ?flow, "modem probed");
    Ok(())
}

/// Agrees flow control with the modem (T.31 `+FLO`, else V.250 `+IFC`).
/// Not configured: XON/XOFF where the modem offers it (it needs no wires,
/// and iaxmodem and many USB modems pace that way whatever they are told),
/// else RTS/CTS where offered, else in-band XON/XOFF honoured anyway (it
/// costs nothing when no DC3 ever comes).
fn flow_control(
    shared: &Shared,
    ask: &mut impl FnMut(&str) -> Result<at::Reply, String>,
) -> Result<FlowControl, String> {
    let offered = |reply: &at::Reply| -> Vec<u32> {
        // `(0-2)` or `(0-2),(0-2)`: the first range is the DTE's side.
        let first = reply
            .info
            .first()
            .map(|l| l.split("),").next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let first = first
            .trim_start_matches("+FLO:")
            .trim_start_matches("+IFC:");
        let mut values = Vec::new();
        for part in first
            .trim_matches(|c| c == '(' || c == ')' || c == ' ')
            .split(',')
        {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                        values.extend(a.min(b)..=b.min(9));
                    }
                }
                None => values.extend(part.trim().parse::<u32>().ok()),
            }
        }
        values
    };
    let flo = ask("AT+FLO=?").ok().filter(|r| r.code == ResultCode::Ok);
    let (offers, set): (Vec<u32>, fn(u32) -> String) = match &flo {
        Some(reply) => (offered(reply), |v| format!("AT+FLO={v}")),
        None => match ask("AT+IFC=?").ok().filter(|r| r.code == ResultCode::Ok) {
            Some(reply) => (offered(&reply), |v| format!("AT+IFC={v},{v}")),
            None => (Vec::new(), |_| String::new()),
        },
    };
    let flow = match shared.config.flow_control {
        FlowControl::Auto if offers.contains(&1) => FlowControl::XonXoff,
        FlowControl::Auto if offers.contains(&2) => FlowControl::Hardware,
        FlowControl::Auto => {
            return Ok(FlowControl::XonXoff);
        }
        chosen => chosen,
    };
    let value = match flow {
        FlowControl::XonXoff => 1,
        FlowControl::Hardware => 2,
        _ => 0,
    };
    let command = set(value);
    if !command.is_empty() {
        match ask(&command) {
            Ok(r) if r.code == ResultCode::Ok => {}
            // The modem may pace its own way anyway; we follow what was
            // configured.
            Ok(r) => {
                tracing::info!(line = %shared.name, code = %r.code, "the modem refused {command}")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(flow)
}

/// The line's own thread: probe, re-probe, count rings, answer. Idle, it
/// sleeps on the modem and its wake-up descriptor together: no polling.
fn supervise(shared: &Arc<Shared>) {
    let mut next_probe = Instant::now();
    let mut rings = 0u32;
    let mut last_ring = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        if shared.in_call.load(Ordering::Acquire) {
            // The call's thread has the port; it wakes us when done.
            shared.sleep(Instant::now() + Duration::from_secs(1));
            continue;
        }
        if shared.faulted.swap(false, Ordering::AcqRel) {
            next_probe = Instant::now() + shared.wall(shared.config.probe_every);
        }
        let mut guard = shared.port();
        let Some(port) = guard.as_mut() else {
            drop(guard);
            if Instant::now() >= next_probe {
                match open_and_probe(shared) {
                    Ok(port) => {
                        *shared.port() = Some(port);
                        shared.set_state(ModemState::Idle);
                    }
                    Err(why) => shared.set_state(ModemState::Down(why)),
                }
                next_probe = Instant::now() + shared.wall(shared.config.probe_every);
            } else {
                shared.sleep(next_probe);
            }
            continue;
        };
        if Instant::now() >= next_probe && rings == 0 {
            // A modem that stops answering (powered off, wedged) is down.
            let alive = port.command("AT", shared.wall(Duration::from_secs(5)));
            next_probe = Instant::now() + shared.wall(shared.config.probe_every);
            if !matches!(alive, Ok(ref r) if r.code == ResultCode::Ok) {
                *guard = None;
                let why = match alive {
                    Err(e) => format!("the modem on {} {e}", shared.config.device.display()),
                    Ok(r) => format!("the modem said {} to AT", r.code),
                };
                shared.set_state(ModemState::Down(why));
            }
            continue;
        }
        let mut until = next_probe;
        if rings > 0 {
            until = until.min(last_ring + shared.wall(RINGS_FORGOTTEN_AFTER));
        }
        let wake = shared.wake.as_ref().map(|fd| fd.as_fd());
        let until = if wake.is_some() {
            until
        } else {
            until.min(Instant::now() + Duration::from_millis(20))
        };
        match port.wait_ring(until, wake) {
            Ok(true) => {
                rings += 1;
                last_ring = Instant::now();
                shared.set_state(ModemState::Ringing(rings));
                let answer_after = shared.config.answer_after_rings;
                if answer_after > 0 && rings >= answer_after {
                    rings = 0;
                    let port = guard.take();
                    drop(guard);
                    if let Some(port) = port {
                        shared.in_call.store(true, Ordering::Release);
                        let port = answer_call(shared, port);
                        give_back(shared, port);
                    }
                }
            }
            Ok(false) => {
                shared.drain_wake();
                if rings > 0 && last_ring.elapsed() > shared.wall(RINGS_FORGOTTEN_AFTER) {
                    rings = 0;
                    // The caller gave up; its number goes with it.
                    let _ = port.take_caller();
                    shared.set_state(ModemState::Idle);
                }
            }
            Err(e) => {
                *guard = None;
                shared.set_state(ModemState::Down(format!(
                    "the modem on {} {e}",
                    shared.config.device.display()
                )));
            }
        }
    }
}

/// Hangs up at the end of a call. The modem may still be in a data mode:
/// a cancel first ends that.
fn hang_up_modem(shared: &Shared, port: &mut AtPort) -> Result<(), AtError> {
    port.write(&[CAN])?;
    let _ = port.reply("(cancel)", shared.wall(Duration::from_millis(500)));
    port.discard_input();
    let reply = port.command("ATH0", shared.wall(Duration::from_secs(5)))?;
    if reply.code != ResultCode::Ok {
        tracing::warn!(line = %shared.name, code = %reply.code, "the modem did not hang up cleanly");
    }
    Ok(())
}

/// Why a failed call also means the device is no longer usable.
fn device_fault(error: &DriverError) -> Option<String> {
    match error {
        DriverError::Modem(e) => Some(e.to_string()),
        // A Class 1 command refused, or a result that makes no sense where
        // it came: the modem is not doing what we think. Re-probe it.
        DriverError::Said {
            code: ResultCode::Error | ResultCode::Ok | ResultCode::Connect | ResultCode::FcError,
            during,
        } => Some(format!(
            "the modem said {} {during}",
            error_code(error).unwrap_or(ResultCode::Error)
        )),
        DriverError::Said { .. } => None,
    }
}

fn error_code(error: &DriverError) -> Option<ResultCode> {
    match error {
        DriverError::Said { code, .. } => Some(*code),
        DriverError::Modem(_) => None,
    }
}

fn send_call(
    shared: &Arc<Shared>,
    mut port: AtPort,
    fax: OutgoingFax,
    number: String,
    document: FaxDocument,
    mut progress: ProgressSink,
    hang_up: HangUp,
) -> (AttemptResult, Result<AtPort, String>) {
    let started = Instant::now();
    let span = tracing::info_span!("call", line = %shared.name, call = %fax.call_id);
    let _enter = span.enter();
    let pages = document.pages();
    let result = |answered, outcome, fax_outcome: Option<FaxOutcome>| AttemptResult {
        call_id: fax.call_id.clone(),
        line: shared.name.clone(),
        to_number: fax.to_number.clone(),
        answered,
        outcome,
        fax: fax_outcome,
        document_pages: pages,
        duration: started.elapsed().mul_f64(shared.config.time_scale),
        wall_time: started.elapsed(),
        hangup_cause: None,
    };
    let line_down = |why: String| LineError::LineDown {
        line: shared.name.clone(),
        why,
    };
    shared.set_state(ModemState::Dialling);
    progress(CallProgress::Dialling);
    port.discard_input();
    let mut t30 = match Class1T30::new(
        &fax.call_id,
        Role::Caller,
        &Transfer::Send(document),
        &fax.settings,
    ) {
        Ok(t) => t,
        Err(e) => {
            return (
                result(false, Err(LineError::Internal(e.to_string())), None),
                Ok(port),
            );
        }
    };
    let dial = format!("{}{number}\r", shared.config.dial_prefix);
    if let Err(e) = port.write(dial.as_bytes()) {
        let why = e.to_string();
        return (result(false, Err(line_down(why.clone())), None), Err(why));
    }
    let (run, answered) = {
        let state = shared.clone();
        let progress_ref = &mut progress;
        let mut driver = Driver::new(
            &mut port,
            &mut t30,
            Start::Dialled,
            shared.config.time_scale,
            move |event| on_event(&state, progress_ref, event, true),
            || hang_up.requested(),
        );
        let run = driver.run();
        (run, driver.answered())
    };
    if run.is_err() {
        t30.hang_up();
    }
    let fax_outcome = if answered { t30.outcome() } else { None };
    // The far end confirmed every page (MCF after EOP): delivered, and
    // nothing the modem does from here changes that (issue 26).
    let delivered = fax_outcome.as_ref().is_some_and(|o| o.is_ok());
    let mut device = Ok(());
    if let Err(e) = &run
        && let Some(why) = device_fault(e)
        && !delivered
    {
        device = Err(why);
    }
    let outcome = match (&run, &fax_outcome) {
        _ if delivered => Ok(()),
        (Ok(()), Some(o)) => Err(LineError::Fax(o.code)),
        // T.30 gave up (timer T0) before the modem heard any fax machine:
        // the same as the modem's own NO CARRIER, whichever came first.
        (Ok(()), None) if !answered => Err(LineError::NoCarrier),
        (Ok(()), None) => Err(LineError::Internal(
            "the fax session ended without a result".into(),
        )),
        (Err(e), _) => Err(match (error_code(e), answered) {
            (Some(ResultCode::Busy), false) => LineError::Busy,
            (Some(ResultCode::NoAnswer), false) => LineError::NoAnswer,
            (Some(ResultCode::NoCarrier), false) => LineError::NoCarrier,
            (Some(ResultCode::NoDialTone), false) => {
                // iaxmodem (and other soft modems on VoIP) says NO
                // DIALTONE for a busy number (issue 26): retried as busy,
                // the line is not blamed. A dead phone line says the same
                // on every call, which the log shows.
                tracing::warn!(number = %fax.to_number, "the modem said NO DIALTONE: retried as a busy number; if every call says so, check the phone line");
                LineError::Busy
            }
            _ => match (&device, &fax_outcome) {
                (Err(why), _) => line_down(why.clone()),
                (Ok(()), Some(o)) if !o.is_ok() => LineError::Fax(o.code),
                (Ok(()), _) => line_down(e.to_string()),
            },
        }),
    };
    tracing::info!(
        outcome = ?outcome,
        pages = fax_outcome.as_ref().map(|o| o.pages),
        "modem call ended"
    );
    let port = match device {
        Ok(()) => after_call(shared, port),
        Err(why) => Err(why),
    };
    (result(answered, outcome, fax_outcome), port)
}

/// Hangs up after a call. A modem that no longer answers (iaxmodem after
/// the far end hung up) is reset: closed, which drops DTR, and opened and
/// probed again. `Err` only when that fails too.
fn after_call(shared: &Shared, mut port: AtPort) -> Result<AtPort, String> {
    match hang_up_modem(shared, &mut port) {
        Ok(()) => Ok(port),
        Err(e) => {
            tracing::info!(line = %shared.name, error = %e, "the modem did not hang up; resetting it");
            drop(port);
            open_and_probe(shared).map_err(|why| format!("{e}; reset: {why}"))
        }
    }
}

fn on_event(shared: &Shared, progress: &mut ProgressSink, event: DriverEvent, sending: bool) {
    match event {
        DriverEvent::Connected => progress(CallProgress::Answered),
        DriverEvent::Training(rate) => {
            // Training before each page is part of sending it.
            if !matches!(
                shared.state(),
                ModemState::Sending(_) | ModemState::Receiving
            ) {
                shared.set_state(ModemState::Training(rate));
            }
        }
        DriverEvent::Fax(FaxEvent::Negotiated(n)) => {
            if sending {
                shared.set_state(ModemState::Sending(1));
            }
            progress(CallProgress::Negotiated(n))
        }
        DriverEvent::Fax(FaxEvent::PageDone(p)) => {
            if sending {
                shared.set_state(ModemState::Sending(p.page + 1));
            }
            progress(CallProgress::PageDone(p))
        }
        DriverEvent::Fax(FaxEvent::LastPageSent) => progress(CallProgress::LastPageSent),
        DriverEvent::Fax(FaxEvent::Finished(_)) => {}
    }
}

/// Answers a ringing line for the receive path. Returns the port, or why
/// the device failed.
fn answer_call(shared: &Arc<Shared>, mut port: AtPort) -> Result<AtPort, String> {
    let inbound = shared.inbound.read().ok().and_then(|i| i.clone());
    let Some(inbound) = inbound else {
        tracing::info!(line = %shared.name, "a call rings but nothing receives faxes yet");
        return Ok(port);
    };
    let call = IncomingCall {
        line: shared.name.clone(),
        call_id: shared.next_call_id(),
        from_number: port.take_caller().unwrap_or_default(),
        to_number: shared.config.numbers.first().cloned().unwrap_or_default(),
    };
    let Some(answer) = inbound.answer(&call) else {
        tracing::info!(line = %shared.name, to = %call.to_number, "no faxbox takes calls to this number; not answering");
        return Ok(port);
    };
    let span = tracing::info_span!("call", line = %shared.name, call = %call.call_id);
    let _enter = span.enter();
    shared.set_state(ModemState::Receiving);
    let started = Instant::now();
    let settings = FaxSettings {
        ident: answer.ident.clone(),
        ..FaxSettings::default()
    };
    let mut t30 = match Class1T30::new(
        &call.call_id,
        Role::Answerer,
        &Transfer::Receive(answer.tiff.clone()),
        &settings,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot receive: the fax engine refused the settings");
            return Ok(port);
        }
    };
    port.discard_input();
    if let Err(e) = port.write(b"ATA\r") {
        return Err(e.to_string());
    }
    let run = {
        let state = shared.clone();
        let mut sink: ProgressSink = Box::new(|_| {});
        let mut driver = Driver::new(
            &mut port,
            &mut t30,
            Start::Answered,
            shared.config.time_scale,
            move |event| on_event(&state, &mut sink, event, false),
            || shared.stop.load(Ordering::Acquire),
        );
        driver.run()
    };
    if run.is_err() {
        t30.hang_up();
    }
    let received = t30.outcome().is_some_and(|o| o.is_ok());
    let mut device = Ok(());
    if let Err(e) = &run {
        tracing::warn!(error = %e, "receiving over the modem failed");
        if let Some(why) = device_fault(e)
            && !received
        {
            device = Err(why);
        }
    }
    // Hang up before the fax is filed: the phone line is free sooner.
    let port = match device {
        Ok(()) => after_call(shared, port),
        Err(why) => Err(why),
    };
    if let Some(outcome) = t30.outcome() {
        tracing::info!(code = ?outcome.code, pages = outcome.pages, "modem reception ended");
        inbound.deliver(ReceivedFax {
            line: shared.name.clone(),
            call_id: call.call_id.clone(),
            from_number: call.from_number.clone(),
            to_number: call.to_number.clone(),
            tiff: answer.tiff.clone(),
            outcome,
            duration: started.elapsed().mul_f64(shared.config.time_scale),
        });
    }
    port
}
