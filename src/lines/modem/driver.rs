//! One fax call over a Class 1 modem: turns what SpanDSP's T.30 asks of its
//! front end into AT commands, and what the modem answers back into T.30
//! input (T.31 clause 8, as HylaFAX's Class 1 driver does it).
//!
//! It owns nothing but the call: the port is lent by the modem line, which
//! also decides what a failure means for the line.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::fax::{Class1T30, FaxEvent, FrontEnd, HdlcDeframer, HdlcFramer, Signal};

use super::at::{self, AtError, AtPort, CAN, DLE, ETX, ResultCode, stuff};

/// T.30's DCN (disconnect) frame control field, without its final bit.
const DCN: u8 = 0xfa;

/// Why a call over the modem stopped before T.30 finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Modem(#[from] AtError),
    /// The modem gave a result code that ends the call (`BUSY`, `NO
    /// CARRIER`, `ERROR` to a Class 1 command, ...).
    #[error("the modem said {code} {during}")]
    Said {
        code: ResultCode,
        during: &'static str,
    },
}

/// How the call was started, which decides what the modem does first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `ATD` was sent: the modem sends CNG and listens for V.21 by itself,
    /// answering `CONNECT` when it hears the answerer's flags.
    Dialled,
    /// `ATA` was sent: the modem sends CED, then V.21 flags and `CONNECT`.
    Answered,
}

/// What the call reports as it goes, for progress and the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverEvent {
    /// The far end picked up (the first `CONNECT` after `ATD`).
    Connected,
    /// Image data starts (`+FTM`/`+FRM` at this bit rate).
    Training(u32),
    Fax(FaxEvent),
}

/// Runs one call. `scale` makes line time run faster than wall time
/// (1.0 on a real modem; the soft modem's tests run faster).
pub struct Driver<'a> {
    port: &'a mut AtPort,
    t30: &'a mut Class1T30,
    scale: f64,
    last_tick: Instant,
    queue: VecDeque<FrontEnd>,
    receiving: Signal,
    /// After `ATD`, the modem is already waiting for V.21 (an implicit
    /// `+FRH=3`); after `ATA`, the reply `CONNECT` is still to come.
    implicit: Option<Start>,
    /// `+FTH=3` is connected: frames can be written.
    hdlc_tx: bool,
    /// Frames went out since the last end of frames.
    frames_sent: bool,
    /// The far end hung up: what T.30 still sends goes nowhere, and its
    /// timers end the call.
    dropped: bool,
    /// A DCN went either way: the call is over, whatever the modem does
    /// next (issue 26).
    disconnected: bool,
    answered: bool,
    events: Box<dyn FnMut(DriverEvent) + 'a>,
    hang_up: Box<dyn Fn() -> bool + 'a>,
}

/// How long the modem gets for a command that only changes its state.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// `+FTH`/`+FTM`: the modem sends its training or flags before `CONNECT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Data written after `CONNECT` is sent at the line rate; the final `OK`
/// can take as long as the data lasts on the line.
const DATA_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the wait for the modem lets T.30's timers run.
const TICK: Duration = Duration::from_millis(10);

impl<'a> Driver<'a> {
    pub fn new(
        port: &'a mut AtPort,
        t30: &'a mut Class1T30,
        start: Start,
        scale: f64,
        events: impl FnMut(DriverEvent) + 'a,
        hang_up: impl Fn() -> bool + 'a,
    ) -> Driver<'a> {
        Driver {
            port,
            t30,
            scale: scale.max(0.001),
            last_tick: Instant::now(),
            queue: VecDeque::new(),
            receiving: Signal::Nothing,
            implicit: Some(start),
            hdlc_tx: false,
            frames_sent: false,
            dropped: false,
            disconnected: false,
            answered: start == Start::Answered,
            events: Box::new(events),
            hang_up: Box::new(hang_up),
        }
    }

    /// Whether the far end picked up.
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Wall time for `line` time on this line.
    fn wall(&self, line: Duration) -> Duration {
        line.div_f64(self.scale)
    }

    /// Lets T.30's timers run for the (scaled) time since the last tick.
    fn tick(&mut self) {
        let now = Instant::now();
        let elapsed = now - self.last_tick;
        self.last_tick = now;
        self.t30.advance(elapsed.mul_f64(self.scale));
        self.collect();
    }

    /// Tells T.30 its send step is done, after the time it took has run
    /// on its timers (so a timer started now starts now).
    fn sent(&mut self) {
        self.tick();
        self.t30.sent();
    }

    fn collect(&mut self) {
        self.queue.extend(self.t30.take_requests());
        for event in self.t30.take_events() {
            (self.events)(DriverEvent::Fax(event));
        }
    }

    /// Runs until T.30 has finished. The modem is left off hook; the line
    /// hangs up.
    pub fn run(&mut self) -> Result<(), DriverError> {
        self.collect();
        while !self.t30.is_finished() {
            if (self.hang_up)() {
                self.t30.hang_up();
                break;
            }
            self.tick();
            let Some(request) = self.queue.pop_front() else {
                self.listen()?;
                continue;
            };
            tracing::trace!(target: "faxbox::modem::at", ?request, "T.30 asks");
            if self.dropped {
                // As an audio front end on a dead line: sending completes,
                // nothing is heard.
                match request {
                    FrontEnd::Transmit(Signal::Done) => self.t30.hang_up(),
                    FrontEnd::Transmit(Signal::Nothing | Signal::Cng) | FrontEnd::Receive(_) => {}
                    FrontEnd::EndOfFrames if !self.frames_sent => {}
                    _ => {
                        self.frames_sent = false;
                        self.sent();
                    }
                }
                self.collect();
                continue;
            }
            match request {
                FrontEnd::Receive(signal) => self.receiving = signal,
                FrontEnd::Transmit(signal) => self.transmit(signal)?,
                FrontEnd::Frame(frame) if !self.hdlc_tx => {
                    // T.30 hands over the first frame of a new phase before
                    // it names the carrier (the phase starts when ours
                    // drops); an audio front end would hold the frame.
                    let carrier = self.queue.iter().position(|r| {
                        matches!(
                            r,
                            FrontEnd::Transmit(Signal::V21 | Signal::Fast { hdlc: true, .. })
                        )
                    });
                    match carrier.and_then(|pos| self.queue.remove(pos)) {
                        Some(carrier) => {
                            self.queue.push_front(FrontEnd::Frame(frame));
                            self.queue.push_front(carrier);
                        }
                        None => self.send_frame(&frame)?,
                    }
                }
                FrontEnd::Frame(frame) => self.send_frame(&frame)?,
                FrontEnd::EndOfFrames => {
                    // The final frame's OK came once the carrier dropped.
                    // T.30 also shuts HDLC down when none was sent (on
                    // entering a new phase): that is not a send step.
                    if self.frames_sent {
                        self.frames_sent = false;
                        self.hdlc_tx = false;
                        self.sent();
                    }
                }
            }
            self.collect();
        }
        self.collect();
        Ok(())
    }

    fn command(&mut self, command: &str, timeout: Duration) -> Result<ResultCode, DriverError> {
        let timeout = self.wall(timeout);
        Ok(self.port.command(command, timeout)?.code)
    }

    fn expect(
        &mut self,
        command: &str,
        want: ResultCode,
        timeout: Duration,
        during: &'static str,
    ) -> Result<(), DriverError> {
        match self.command(command, timeout)? {
            code if code == want => Ok(()),
            code => Err(DriverError::Said { code, during }),
        }
    }

    fn transmit(&mut self, signal: Signal) -> Result<(), DriverError> {
        match signal {
            Signal::Nothing => {}
            // On `ATD` the modem sends CNG itself, until it hears V.21.
            Signal::Cng => {}
            Signal::Ced => {
                // `ATA` makes the modem send CED, then V.21 flags and
                // CONNECT: the answerer's DIS can follow at once.
                if self.implicit.take() == Some(Start::Answered) {
                    let timeout = self.wall(Duration::from_secs(15));
                    let code = self.port.reply("ATA", timeout)?.code;
                    if code != ResultCode::Connect {
                        return Err(DriverError::Said {
                            code,
                            during: "answering",
                        });
                    }
                    self.hdlc_tx = true;
                }
                self.sent();
            }
            Signal::Pause(_) if self.disconnected => {
                // T.30's pause after DCN only lets the last frame drain on
                // an audio line; the modem has sent it already. iaxmodem
                // never answers AT+FTS once the far end has hung up
                // (issue 26), so none is asked for.
                self.sent();
            }
            Signal::Pause(length) => {
                let tens = (length.as_millis() / 10).clamp(1, 255);
                // A pause the modem refuses or never ends (the far end
                // already hung up) changes nothing for T.30: any character
                // ends the wait (T.31 8.3.4) and the call goes on.
                match self.command(&format!("AT+FTS={tens}"), COMMAND_TIMEOUT + length) {
                    Ok(ResultCode::Ok) => {}
                    Ok(code) => tracing::debug!(%code, "the modem did not pause"),
                    Err(DriverError::Modem(AtError::Timeout { .. })) => {
                        tracing::debug!("the modem did not end a pause; cancelled");
                        self.port.write(&[CAN])?;
                        let timeout = self.wall(Duration::from_secs(1));
                        let _ = self.port.reply("(cancel)", timeout);
                    }
                    Err(e) => return Err(e),
                }
                self.sent();
            }
            Signal::V21 => {
                if !self.hdlc_tx {
                    self.expect(
                        "AT+FTH=3",
                        ResultCode::Connect,
                        CONNECT_TIMEOUT,
                        "to sending V.21 frames (+FTH=3)",
                    )?;
                    self.hdlc_tx = true;
                }
            }
            Signal::Fast {
                modem,
                bit_rate,
                short_train,
                hdlc,
            } => {
                let code =
                    at::modulation(modem, bit_rate, short_train).ok_or(DriverError::Said {
                        code: ResultCode::Error,
                        during: "(no Class 1 code for the modem T.30 chose)",
                    })?;
                (self.events)(DriverEvent::Training(bit_rate));
                self.expect(
                    &format!("AT+FTM={code}"),
                    ResultCode::Connect,
                    CONNECT_TIMEOUT,
                    "to sending image data (+FTM)",
                )?;
                if hdlc {
                    self.send_ecm_block(bit_rate)?;
                } else {
                    self.send_non_ecm()?;
                }
            }
            Signal::Done => {
                self.t30.hang_up();
            }
        }
        Ok(())
    }

    /// One V.21 frame, after `+FTH=3` is connected.
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), DriverError> {
        if !self.hdlc_tx {
            self.transmit(Signal::V21)?;
        }
        if frame.get(2).is_some_and(|fcf| fcf & 0xfe == DCN) {
            self.disconnected = true;
        }
        self.port.write_data(&stuff(frame, true))?;
        self.frames_sent = true;
        let timeout = self.wall(DATA_TIMEOUT);
        match self.port.reply("(frame)", timeout)?.code {
            // More frames may follow in the same carrier.
            ResultCode::Connect => {}
            // The final frame is out and the carrier is off.
            ResultCode::Ok => self.hdlc_tx = false,
            // The far end hung up as the frame went (after our DCN, a
            // machine may not wait): T.30 decides what that means.
            ResultCode::NoCarrier => {
                tracing::debug!("the line dropped after a frame");
                self.hdlc_tx = false;
                self.dropped = true;
            }
            code => {
                return Err(DriverError::Said {
                    code,
                    during: "after a V.21 frame",
                });
            }
        }
        self.sent();
        Ok(())
    }

    /// Non-ECM page data or TCF, after `+FTM` is connected.
    fn send_non_ecm(&mut self) -> Result<(), DriverError> {
        let mut buf = vec![0u8; 1024];
        loop {
            let n = self.t30.data_to_send(&mut buf);
            self.port.write_data(&stuff(&buf[..n], false))?;
            if n < buf.len() {
                break;
            }
        }
        self.port.write_data(&[DLE, ETX])?;
        let timeout = self.wall(DATA_TIMEOUT);
        let code = self.port.reply("(image data)", timeout)?.code;
        if code != ResultCode::Ok {
            return Err(DriverError::Said {
                code,
                during: "after image data",
            });
        }
        self.sent();
        Ok(())
    }

    /// An ECM block: HDLC framed here, sent as `+FTM` data. T.30 hands the
    /// frames one at a time and waits for each to be sent.
    fn send_ecm_block(&mut self, bit_rate: u32) -> Result<(), DriverError> {
        let mut framer = HdlcFramer::new();
        // 200 ms of flags first, so the receiver syncs before the first frame.
        let mut flags = vec![0u8; (bit_rate as usize / 8) / 5];
        framer.bytes(&mut flags);
        self.port.write_data(&stuff(&flags, false))?;
        loop {
            self.collect();
            let Some(request) = self.queue.pop_front() else {
                // T.30 always ends a block with EndOfFrames; if it stopped
                // short, close the data so the modem drops the carrier.
                self.port.write_data(&[DLE, ETX])?;
                let timeout = self.wall(DATA_TIMEOUT);
                self.port.reply("(ECM data)", timeout)?;
                break;
            };
            match request {
                FrontEnd::Frame(frame) => {
                    let out = framer.frame_bytes(&frame);
                    self.port.write_data(&stuff(&out, false))?;
                    self.sent();
                }
                FrontEnd::EndOfFrames => {
                    // Two closing flags, then the end of the data.
                    let mut out = vec![0u8; 2];
                    framer.bytes(&mut out);
                    self.port.write_data(&stuff(&out, true))?;
                    let timeout = self.wall(DATA_TIMEOUT);
                    let code = self.port.reply("(ECM data)", timeout)?.code;
                    if code != ResultCode::Ok {
                        return Err(DriverError::Said {
                            code,
                            during: "after ECM image data",
                        });
                    }
                    self.sent();
                    break;
                }
                FrontEnd::Receive(signal) => self.receiving = signal,
                FrontEnd::Transmit(Signal::Nothing) => {}
                other => {
                    // Anything else ends the block: put it back.
                    self.queue.push_front(other);
                    self.port.write_data(&[DLE, ETX])?;
                    let timeout = self.wall(DATA_TIMEOUT);
                    self.port.reply("(ECM data)", timeout)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Nothing to send: listen for what T.30 expects.
    fn listen(&mut self) -> Result<(), DriverError> {
        if self.dropped {
            std::thread::sleep(TICK);
            return Ok(());
        }
        match self.receiving {
            Signal::V21 => self.receive_frames(),
            Signal::Fast { hdlc, .. } => self.receive_fast(hdlc),
            _ => {
                // T.30 is waiting on a timer: let it run.
                std::thread::sleep(TICK);
                Ok(())
            }
        }
    }

    /// Waits for a final result code while T.30's timers run. `Ok(None)`
    /// when T.30 wanted to send something instead (the wait was aborted).
    fn wait_result(&mut self, during: &'static str) -> Result<Option<ResultCode>, DriverError> {
        loop {
            if let Some(line) = self.port.read_line(Instant::now() + TICK)? {
                match ResultCode::parse(&line) {
                    Some(ResultCode::Ring) | None => {}
                    Some(code) => {
                        tracing::trace!(target: "faxbox::modem::at", "< {code} ({during})");
                        return Ok(Some(code));
                    }
                }
            }
            self.tick();
            let wants_to_send = self
                .queue
                .iter()
                .any(|r| matches!(r, FrontEnd::Transmit(_) | FrontEnd::Frame(_)));
            if wants_to_send || self.t30.is_finished() || (self.hang_up)() {
                // Any character aborts +FRH/+FRM (T.31 8.3.4); the modem
                // answers OK, or the result it was about to give.
                self.port.write(&[CAN])?;
                let timeout = self.wall(COMMAND_TIMEOUT);
                let _ = self.port.reply(during, timeout);
                self.implicit = None;
                return Ok(None);
            }
        }
    }

    /// `+FRH=3`: V.21 frames, one per `CONNECT`.
    fn receive_frames(&mut self) -> Result<(), DriverError> {
        let dialled = self.implicit == Some(Start::Dialled);
        if !dialled {
            tracing::trace!(target: "faxbox::modem::at", "> AT+FRH=3");
            self.port.write(b"AT+FRH=3\r")?;
        }
        let during = if dialled {
            "while calling"
        } else {
            "to receiving V.21 frames (+FRH=3)"
        };
        match self.wait_result(during)? {
            None => return Ok(()),
            Some(ResultCode::Connect) => {}
            Some(ResultCode::NoCarrier) if self.answered => {
                self.implicit = None;
                self.t30.carrier_down();
                return Ok(());
            }
            Some(code) => return Err(DriverError::Said { code, during }),
        }
        // A carrier: T.30 stops waiting (T2/T4) while the frame arrives.
        self.t30.signal_present();
        if dialled {
            self.implicit = None;
            if !self.answered {
                self.answered = true;
                (self.events)(DriverEvent::Connected);
            }
        }
        let mut frame = Vec::new();
        let deadline = Instant::now() + self.wall(Duration::from_secs(10));
        self.port
            .read_data(deadline, |d| frame.extend_from_slice(d))?;
        let timeout = self.wall(Duration::from_secs(10));
        let code = self.port.reply("(V.21 frame)", timeout)?.code;
        self.tick();
        let ok = match code {
            ResultCode::Ok => true,
            // A bad FCS: T.30 decides what to ask again.
            ResultCode::Error => false,
            ResultCode::NoCarrier => {
                self.t30.carrier_down();
                return Ok(());
            }
            code => {
                return Err(DriverError::Said {
                    code,
                    during: "after a V.21 frame",
                });
            }
        };
        // The modem delivers the two FCS octets after the frame.
        if frame.len() >= 3 {
            let body = &frame[..frame.len() - 2];
            if ok && body.get(2).is_some_and(|fcf| fcf & 0xfe == DCN) {
                self.disconnected = true;
            }
            self.t30.frame_received(body, ok);
            // The modem says OK to a final frame (control 0x13) only once
            // the carrier has dropped: T.30 acts on the frames then.
            if ok && body.get(1) == Some(&0x13) {
                self.t30.carrier_down();
            }
        } else {
            self.t30.frame_received(&frame, false);
        }
        self.collect();
        Ok(())
    }

    /// `+FRM`: TCF, a non-ECM page, or an ECM block.
    fn receive_fast(&mut self, hdlc: bool) -> Result<(), DriverError> {
        let Signal::Fast {
            modem,
            bit_rate,
            short_train,
            ..
        } = self.receiving
        else {
            return Ok(());
        };
        let Some(code) = at::modulation(modem, bit_rate, short_train) else {
            return Err(DriverError::Said {
                code: ResultCode::Error,
                during: "(no Class 1 code for the modem T.30 chose)",
            });
        };
        tracing::trace!(target: "faxbox::modem::at", "> AT+FRM={code}");
        self.port.write(format!("AT+FRM={code}\r").as_bytes())?;
        match self.wait_result("to receiving image data (+FRM)")? {
            None => return Ok(()),
            Some(ResultCode::Connect) => {}
            Some(ResultCode::FcError) => {
                // The far end is still on V.21 (a repeated command): take
                // that frame, and T.30 asks for the fast carrier again.
                let before = self.receiving;
                self.receiving = Signal::V21;
                let r = self.receive_frames();
                if self.receiving == Signal::V21 {
                    self.receiving = before;
                }
                return r;
            }
            Some(ResultCode::NoCarrier) => {
                self.t30.carrier_down();
                return Ok(());
            }
            Some(code) => {
                return Err(DriverError::Said {
                    code,
                    during: "to receiving image data (+FRM)",
                });
            }
        }
        (self.events)(DriverEvent::Training(bit_rate));
        let mut deframer = hdlc.then(HdlcDeframer::new);
        if deframer.is_none() {
            self.t30.data_carrier_up();
        } else {
            self.t30.signal_present();
        }
        // Data until DLE ETX, fed to T.30 as it arrives, with T.30's clock
        // running as it does: a page can last minutes, and a timer T.30
        // starts when it ends must start then (issue 26: the clock stood
        // still during the page, then jumped, and T2 expired at once).
        let deadline = Instant::now() + self.wall(DATA_TIMEOUT * 5);
        {
            let t30 = &mut *self.t30;
            let port = &mut *self.port;
            let last_tick = &mut self.last_tick;
            let scale = self.scale;
            port.read_data(deadline, |d| {
                match deframer.as_mut() {
                    None => t30.data_received(d),
                    Some(deframer) => {
                        for (frame, ok) in deframer.push(d) {
                            t30.frame_received(&frame, ok);
                        }
                    }
                }
                let now = Instant::now();
                t30.advance((now - *last_tick).mul_f64(scale));
                *last_tick = now;
            })?;
        }
        let timeout = self.wall(Duration::from_secs(10));
        let code = self.port.reply("(image data)", timeout)?.code;
        if !matches!(code, ResultCode::NoCarrier | ResultCode::Ok) {
            tracing::debug!(%code, "unexpected result after image data");
        }
        self.tick();
        self.t30.carrier_down();
        self.collect();
        Ok(())
    }
}
