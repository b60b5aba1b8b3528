//! Soft Class 1 modems for tests and the selftest: SpanDSP's T.31 behind
//! ptys, on a simulated telephone exchange.
//!
//! Each modem has a pty; the modem line opens the pty's slave side through
//! a stable link (`<dir>/ttyFAX<n>`, as a udev rule gives a real modem),
//! exactly as it opens `/dev/ttyUSB0`. The exchange routes dialled numbers
//! to simulated parties (a SpanDSP fax machine, a busy number, one that
//! never answers, another soft modem) and rings a modem for incoming calls
//! from a SpanDSP sender. Audio runs `scale` times faster than real time,
//! as the loopback line's does when not `realtime`.
//!
//! Nothing here is faked at the protocol level: the line's driver speaks AT
//! and T.31 to a real modem implementation, whose V.21/V.17/V.29 audio goes
//! over a [`Wire`] to real T.30.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fax::{
    CHUNK_SAMPLES, FaxDocument, FaxOutcome, FaxSession, FaxSettings, LineModel, ModemControl,
    NetworkEvent, Role, SAMPLE_RATE, SoftModem, Terminal, Transfer, VoiceAnswer, Wire,
};

/// What answers when a number is dialled on the exchange.
#[derive(Debug, Clone)]
pub enum Party {
    /// A SpanDSP fax machine that receives what is sent.
    Fax(FaxSettings),
    Busy,
    NoAnswer,
    /// A person: the call connects but no fax tones ever come.
    Voice,
    /// Another soft modem on this exchange (its index).
    Modem(usize),
}

/// Ways a modem can differ from SpanDSP's T.31 as the rig runs it by
/// default: each is what iaxmodem 1.2.0 (SpanDSP's T.31 on an IAX2 call)
/// does, as issue 26 found against HylaFAX and efax, so tests can show
/// the line copes with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Paces the computer in-band while it sends data: DC3 when the
    /// modem's buffer is half full, DC1 when it has drained. What arrives
    /// while the buffer is full is lost (an overrun), as on a real modem.
    pub xon_xoff: bool,
    /// The modem's clock only runs while a call is up, so a command that
    /// waits on line time (`AT+FTS`) after the far end hung up is never
    /// answered; a character from the computer ends the wait.
    pub clock_only_in_calls: bool,
    /// Says `NO DIALTONE` when the number dialled is busy.
    pub busy_is_no_dialtone: bool,
}

/// How the modem's in-band flow control went, for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// DC3s sent: times the computer was asked to wait.
    pub pauses: u32,
    /// Bytes lost because the computer kept sending into a full buffer.
    pub overrun_bytes: usize,
}

/// The modem's buffer for data from the computer. Without ECM, a buffer
/// that runs dry mid-page spoils rows, so DC1 comes while a second of
/// data (at 14400 bit/s, four times real time) is still waiting: a
/// computer busy elsewhere for a moment must not starve the modem.
const BUFFER: usize = 96 * 1024;
/// DC3 above this much waiting, DC1 once below `RESUME_BELOW`. The pty
/// in between holds several kilobytes the computer wrote before it could
/// see the DC3, so the stop leaves that much room.
const PAUSE_ABOVE: usize = 24 * 1024;
const RESUME_BELOW: usize = 12 * 1024;

/// A call to a simulated fax machine, once it has ended.
#[derive(Debug, Clone)]
pub struct FarCall {
    /// The number dialled, or `from <n>` for a sender that called a modem.
    pub number: String,
    pub outcome: Option<FaxOutcome>,
    /// What the far machine received (for calls to a [`Party::Fax`]).
    pub received: Option<PathBuf>,
}

/// Rings between, in line time (the North American cadence: 2 s on, 4 off).
const RING_EVERY: Duration = Duration::from_secs(6);
/// A number that never answers gives up after this many rings.
const MAX_RINGS: u32 = 8;

/// The exchange and its modems, run by one thread.
pub struct SoftModems {
    exchange: Arc<Mutex<Exchange>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Port {
    link: PathBuf,
    master: Option<File>,
    modem: SoftModem,
    from_dte: Vec<u8>,
    to_dte: Vec<u8>,
    dial_tone: bool,
    /// The modem is in a call (or ringing out).
    engaged: bool,
    /// Bytes the modem would have sent while unplugged are dropped.
    plugged: bool,
    behaviour: Behaviour,
    /// A DC3 was sent and no DC1 yet.
    paused_dte: bool,
    flow: FlowStats,
    /// This modem's own number, given to whoever it calls.
    number: String,
}

enum End {
    Modem(usize),
    Session(Box<FaxSession>, Option<PathBuf>),
    Voice(VoiceAnswer),
}

struct Call {
    a: usize,
    b: End,
    wire: Wire,
    number: String,
}

enum Caller {
    Modem(usize),
    Sender(FaxDocument, FaxSettings),
}

struct Ringing {
    to: usize,
    from: Caller,
    next_ring: u64,
    rings: u32,
    number: String,
    /// The caller's number, shown to the called modem (`NMBR=`).
    caller_id: String,
}

struct Pending {
    port: usize,
    event: NetworkEvent,
    at: u64,
}

struct Exchange {
    dir: PathBuf,
    ports: Vec<Port>,
    directory: HashMap<String, Party>,
    calls: Vec<Call>,
    ringing: Vec<Ringing>,
    pending: Vec<Pending>,
    finished: Vec<FarCall>,
    samples: u64,
    next_file: u32,
}

impl SoftModems {
    /// Starts `count` modems with links in `dir`, audio at `scale` times
    /// real time.
    pub fn start(dir: &Path, count: usize, scale: f64) -> std::io::Result<SoftModems> {
        std::fs::create_dir_all(dir)?;
        let mut ports = Vec::new();
        for i in 0..count {
            let mut port = Port {
                link: dir.join(format!("ttyFAX{i}")),
                master: None,
                modem: SoftModem::new(),
                from_dte: Vec::new(),
                to_dte: Vec::new(),
                dial_tone: true,
                engaged: false,
                plugged: false,
                behaviour: Behaviour::default(),
                paused_dte: false,
                flow: FlowStats::default(),
                number: String::new(),
            };
            port.plug()?;
            ports.push(port);
        }
        let exchange = Arc::new(Mutex::new(Exchange {
            dir: dir.to_owned(),
            ports,
            directory: HashMap::new(),
            calls: Vec::new(),
            ringing: Vec::new(),
            pending: Vec::new(),
            finished: Vec::new(),
            samples: 0,
            next_file: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let exchange = exchange.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("soft-modems".into())
                .spawn(move || run(&exchange, &stop, scale.max(0.01)))?
        };
        Ok(SoftModems {
            exchange,
            stop,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Exchange> {
        self.exchange.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stable device path of modem `n`.
    pub fn device(&self, n: usize) -> PathBuf {
        self.lock().ports[n].link.clone()
    }

    /// What answers `number`.
    pub fn add_number(&self, number: &str, party: Party) {
        self.lock().directory.insert(number.to_owned(), party);
    }

    /// Whether modem `n`'s line has a dial tone.
    pub fn set_dial_tone(&self, n: usize, present: bool) {
        self.lock().ports[n].dial_tone = present;
    }

    /// Makes modem `n` behave as `behaviour` says (from now on).
    pub fn set_behaviour(&self, n: usize, behaviour: Behaviour) {
        self.lock().ports[n].behaviour = behaviour;
    }

    /// How modem `n`'s in-band flow control went so far.
    pub fn flow_stats(&self, n: usize) -> FlowStats {
        self.lock().ports[n].flow
    }

    /// Modem `n`'s own number, shown as the caller id when it calls.
    pub fn set_own_number(&self, n: usize, number: &str) {
        self.lock().ports[n].number = number.to_owned();
    }

    /// A SpanDSP fax machine calls modem `n` to send `document`.
    pub fn call_in(&self, n: usize, document: &Path, settings: FaxSettings) -> std::io::Result<()> {
        self.call_in_from(n, document, settings, "")
    }

    /// As `call_in`, from the number `from` (the caller id, if any).
    pub fn call_in_from(
        &self,
        n: usize,
        document: &Path,
        settings: FaxSettings,
        from: &str,
    ) -> std::io::Result<()> {
        let document = FaxDocument::open(document)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut ex = self.lock();
        let now = ex.samples;
        ex.ports[n].engaged = true;
        ex.ringing.push(Ringing {
            to: n,
            from: Caller::Sender(document, settings),
            next_ring: now,
            rings: 0,
            number: format!("from {n}"),
            caller_id: from.to_owned(),
        });
        Ok(())
    }

    /// Pulls modem `n`'s cable: its pty closes and its link goes away; a
    /// call in progress is cut.
    pub fn unplug(&self, n: usize) {
        let mut ex = self.lock();
        ex.end_calls_of(n);
        let port = &mut ex.ports[n];
        port.master = None;
        port.plugged = false;
        let _ = std::fs::remove_file(&port.link);
    }

    /// Plugs modem `n` back in: a new pty, a fresh modem, the same link.
    pub fn plug(&self, n: usize) -> std::io::Result<()> {
        let mut ex = self.lock();
        let port = &mut ex.ports[n];
        port.modem = SoftModem::new();
        port.from_dte.clear();
        port.to_dte.clear();
        port.engaged = false;
        port.paused_dte = false;
        port.plug()
    }

    /// Calls to simulated machines that have ended, oldest first.
    pub fn finished(&self) -> Vec<FarCall> {
        self.lock().finished.clone()
    }

    /// Waits up to `timeout` (wall time) for `n` finished far calls.
    pub fn wait_finished(&self, n: usize, timeout: Duration) -> Vec<FarCall> {
        let until = Instant::now() + timeout;
        loop {
            let done = self.finished();
            if done.len() >= n || Instant::now() >= until {
                return done;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SoftModems {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for port in &self.lock().ports {
            let _ = std::fs::remove_file(&port.link);
        }
    }
}

impl Port {
    fn plug(&mut self) -> std::io::Result<()> {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let flags = rustix::fs::fcntl_getfl(&master)?;
        rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK)?;
        let slave = PathBuf::from(name.to_string_lossy().into_owned());
        let _ = std::fs::remove_file(&self.link);
        std::os::unix::fs::symlink(&slave, &self.link)?;
        self.master = Some(File::from(master));
        self.plugged = true;
        Ok(())
    }

    /// Moves bytes between the pty and the modem's AT side.
    fn exchange_bytes(&mut self) {
        let Some(master) = self.master.as_mut() else {
            return;
        };
        if self.behaviour.xon_xoff {
            // Take all the computer wrote: only DC3 holds it back, and
            // what overflows the buffer is lost.
            let mut buf = [0u8; 4096];
            // EIO while no one has the slave side open: nothing to read.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = BUFFER.saturating_sub(self.from_dte.len()).min(n);
                self.from_dte.extend_from_slice(&buf[..room]);
                self.flow.overrun_bytes += n - room;
            }
        } else if self.from_dte.len() < 4096 {
            // Read only what the modem can soon take, so a fast DTE is held
            // back by the pty (its flow control).
            let mut buf = [0u8; 1024];
            // EIO while no one has the slave side open: nothing to read.
            if let Ok(n) = master.read(&mut buf) {
                self.from_dte.extend_from_slice(&buf[..n]);
            }
        }
        let room = self.modem.dte_room().min(self.from_dte.len());
        if room > 0 {
            let bytes: Vec<u8> = self.from_dte.drain(..room).collect();
            self.modem.from_dte(&bytes);
        }
        if self.behaviour.xon_xoff {
            // XOFF and XON go out ahead of anything queued for the DTE,
            // as a UART sends them.
            let waiting = self.from_dte.len();
            let flow = if !self.paused_dte && waiting > PAUSE_ABOVE {
                self.flow.pauses += 1;
                Some(super::at::DC3)
            } else if self.paused_dte && waiting < RESUME_BELOW {
                Some(super::at::DC1)
            } else {
                None
            };
            if let Some(byte) = flow
                && master.write(&[byte]).is_ok_and(|n| n == 1)
            {
                self.paused_dte = byte == super::at::DC3;
            }
        }
        self.to_dte.extend(self.modem.take_to_dte());
        if !self.to_dte.is_empty() {
            match master.write(&self.to_dte) {
                Ok(n) => {
                    self.to_dte.drain(..n);
                }
                Err(_) => {
                    // Nobody listening (slave closed) or the buffer is full:
                    // a real modem's output is lost the same way.
                    if self.to_dte.len() > 65536 {
                        self.to_dte.clear();
                    }
                }
            }
        }
    }
}

fn digits(dialled: &str) -> String {
    dialled
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | '+'))
        .collect()
}

fn samples(d: Duration) -> u64 {
    d.as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000
}

impl Exchange {
    fn step(&mut self) {
        for port in &mut self.ports {
            port.exchange_bytes();
        }
        for i in 0..self.ports.len() {
            for control in self.ports[i].modem.take_controls() {
                self.control(i, control);
            }
        }
        self.deliver_pending();
        self.ring();
        self.carry_audio();
        self.samples += CHUNK_SAMPLES as u64;
    }

    fn later(&mut self, port: usize, event: NetworkEvent, after: Duration) {
        let at = self.samples + samples(after);
        self.pending.push(Pending { port, event, at });
    }

    fn deliver_pending(&mut self) {
        let now = self.samples;
        let (due, rest): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| p.at <= now);
        self.pending = rest;
        for p in due {
            self.ports[p.port].modem.call_event(p.event);
            if p.event != NetworkEvent::Connected {
                self.ports[p.port].engaged = false;
            }
        }
    }

    fn control(&mut self, i: usize, control: ModemControl) {
        match control {
            ModemControl::Dial(dialled) => {
                self.ports[i].engaged = true;
                if !self.ports[i].dial_tone {
                    self.later(i, NetworkEvent::NoDialTone, Duration::from_secs(2));
                    return;
                }
                let number = digits(&dialled);
                let party = self.directory.get(&number).cloned();
                match party {
                    None | Some(Party::NoAnswer) => {
                        self.later(i, NetworkEvent::NoAnswer, RING_EVERY * MAX_RINGS)
                    }
                    Some(Party::Busy) if self.ports[i].behaviour.busy_is_no_dialtone => {
                        self.later(i, NetworkEvent::NoDialTone, Duration::from_secs(1))
                    }
                    Some(Party::Busy) => self.later(i, NetworkEvent::Busy, Duration::from_secs(1)),
                    Some(Party::Voice) => {
                        self.connect(i, End::Voice(VoiceAnswer::default()), number);
                        self.later(i, NetworkEvent::Connected, Duration::ZERO);
                    }
                    Some(Party::Fax(settings)) => {
                        self.next_file += 1;
                        let file = self.dir.join(format!("received-{}.tiff", self.next_file));
                        match FaxSession::new(
                            &format!("far-{}", self.next_file),
                            Role::Answerer,
                            &Transfer::Receive(file.clone()),
                            &settings,
                        ) {
                            Ok(session) => {
                                self.connect(
                                    i,
                                    End::Session(Box::new(session), Some(file)),
                                    number,
                                );
                                self.later(i, NetworkEvent::Connected, Duration::ZERO);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "soft exchange: far fax machine failed");
                                self.later(i, NetworkEvent::NoAnswer, Duration::ZERO);
                            }
                        }
                    }
                    Some(Party::Modem(j)) if j < self.ports.len() && !self.ports[j].engaged => {
                        self.ports[j].engaged = true;
                        let now = self.samples;
                        let caller_id = self.ports[i].number.clone();
                        self.ringing.push(Ringing {
                            to: j,
                            from: Caller::Modem(i),
                            next_ring: now,
                            rings: 0,
                            number,
                            caller_id,
                        });
                    }
                    Some(Party::Modem(_)) => {
                        self.later(i, NetworkEvent::Busy, Duration::from_secs(1))
                    }
                }
            }
            ModemControl::Answer => {
                let Some(k) = self.ringing.iter().position(|r| r.to == i) else {
                    return;
                };
                let ringing = self.ringing.remove(k);
                self.ports[i].modem.call_event(NetworkEvent::Answered);
                match ringing.from {
                    Caller::Modem(from) => {
                        self.ports[from].modem.call_event(NetworkEvent::Connected);
                        self.connect(from, End::Modem(i), ringing.number);
                    }
                    Caller::Sender(document, settings) => {
                        match FaxSession::new(
                            &format!("sender-{i}"),
                            Role::Caller,
                            &Transfer::Send(document),
                            &settings,
                        ) {
                            Ok(session) => self.connect(
                                i,
                                End::Session(Box::new(session), None),
                                ringing.number,
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "soft exchange: sender failed");
                                self.ports[i].modem.call_event(NetworkEvent::HungUp);
                            }
                        }
                    }
                }
            }
            ModemControl::HangUp => {
                self.pending.retain(|p| p.port != i);
                self.ringing
                    .retain(|r| !matches!(r.from, Caller::Modem(m) if m == i));
                self.end_calls_of(i);
                self.ports[i].engaged = false;
            }
        }
    }

    fn connect(&mut self, a: usize, b: End, number: String) {
        self.calls.push(Call {
            a,
            b,
            wire: Wire::new(LineModel::clean()),
            number,
        });
    }

    fn ring(&mut self) {
        let now = self.samples;
        let mut gave_up = Vec::new();
        for (k, r) in self.ringing.iter_mut().enumerate() {
            if now >= r.next_ring {
                if r.rings >= MAX_RINGS {
                    gave_up.push(k);
                    continue;
                }
                r.rings += 1;
                r.next_ring = now + samples(RING_EVERY);
                let modem = &mut self.ports[r.to].modem;
                if r.rings == 1 && !r.caller_id.is_empty() {
                    modem.set_caller_id(&r.caller_id);
                }
                modem.call_event(NetworkEvent::Ringing);
            }
        }
        for k in gave_up.into_iter().rev() {
            let r = self.ringing.remove(k);
            self.ports[r.to].engaged = false;
            if let Caller::Modem(from) = r.from {
                self.ports[from].modem.call_event(NetworkEvent::NoAnswer);
                self.ports[from].engaged = false;
            }
        }
    }

    /// Ends every call modem `i` is in: the other side hears the line drop.
    fn end_calls_of(&mut self, i: usize) {
        let mut k = 0;
        while k < self.calls.len() {
            let involved =
                self.calls[k].a == i || matches!(self.calls[k].b, End::Modem(m) if m == i);
            if !involved {
                k += 1;
                continue;
            }
            let call = self.calls.remove(k);
            self.finish(call, Some(i));
        }
    }

    fn finish(&mut self, call: Call, hung_up_by: Option<usize>) {
        if hung_up_by != Some(call.a) {
            self.ports[call.a].modem.call_event(NetworkEvent::HungUp);
        }
        self.ports[call.a].engaged = false;
        match call.b {
            End::Modem(m) => {
                if hung_up_by != Some(m) {
                    self.ports[m].modem.call_event(NetworkEvent::HungUp);
                }
                self.ports[m].engaged = false;
            }
            End::Session(mut session, received) => {
                session.hang_up();
                self.finished.push(FarCall {
                    number: call.number,
                    outcome: session.outcome(),
                    received,
                });
            }
            End::Voice(_) => {}
        }
    }

    fn carry_audio(&mut self) {
        let mut busy = vec![false; self.ports.len()];
        let mut ended = Vec::new();
        for (k, call) in self.calls.iter_mut().enumerate() {
            busy[call.a] = true;
            match &mut call.b {
                End::Modem(m) => {
                    busy[*m] = true;
                    let (a, b) = two(&mut self.ports, call.a, *m);
                    call.wire.step(&mut a.modem, &mut b.modem);
                }
                End::Session(session, _) => {
                    call.wire
                        .step(&mut self.ports[call.a].modem, session.as_mut());
                    if session.is_finished() {
                        ended.push(k);
                    }
                }
                End::Voice(voice) => {
                    call.wire.step(&mut self.ports[call.a].modem, voice);
                }
            }
        }
        // Idle modems still need their clocks to run (timeouts, CED/CNG),
        // except one whose clock is the call's audio.
        let mut silence = [0i16; CHUNK_SAMPLES];
        for (i, port) in self.ports.iter_mut().enumerate() {
            if !busy[i] && !port.behaviour.clock_only_in_calls {
                port.modem.transmit(&mut silence);
                silence.fill(0);
                port.modem.receive(&silence);
            }
        }
        for k in ended.into_iter().rev() {
            let call = self.calls.remove(k);
            self.finish(call, None);
        }
    }
}

fn two<T>(v: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    assert_ne!(i, j, "a modem cannot call itself");
    if i < j {
        let (l, r) = v.split_at_mut(j);
        (&mut l[i], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(i);
        (&mut r[0], &mut l[j])
    }
}

fn run(exchange: &Mutex<Exchange>, stop: &AtomicBool, scale: f64) {
    let started = Instant::now();
    let mut line_time = Duration::ZERO;
    let chunk = Duration::from_micros(CHUNK_SAMPLES as u64 * 1_000_000 / u64::from(SAMPLE_RATE));
    while !stop.load(Ordering::Acquire) {
        {
            let mut ex = exchange.lock().unwrap_or_else(|e| e.into_inner());
            ex.step();
        }
        line_time += chunk;
        let due = started + line_time.div_f64(scale);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(200) {
            // Far behind (a loaded machine): do not try to catch up in a
            // burst the driver could not follow.
            line_time = (now - started).mul_f64(scale);
        }
    }
}
