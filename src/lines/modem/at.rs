//! The AT layer: commands with timeouts, result codes, and the DLE framing
//! Class 1 (ITU-T T.31) uses for data.
//!
//! It owns the serial device's bytes and nothing else: it knows what `OK`,
//! `CONNECT` or `+FCERROR` mean, not what T.30 does with them. Everything
//! here works on any byte stream the modem line opens (a serial port or the
//! soft modem's pty).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Data link escape: starts every control pair in Class 1 data.
pub const DLE: u8 = 0x10;
/// End of text: `DLE ETX` ends a block of data in either direction.
pub const ETX: u8 = 0x03;
/// Some modems send `DLE SUB` for two data DLEs (T.31 8.3.2).
pub const SUB: u8 = 0x1a;
/// Cancel: any character aborts `+FRH`/`+FRM`; this one is never data.
pub const CAN: u8 = 0x18;
/// DC1 (XON): the modem takes data again (V.250 6.2.12, `+IFC=1`).
pub const DC1: u8 = 0x11;
/// DC3 (XOFF): the modem's buffer is full, wait for DC1.
pub const DC3: u8 = 0x13;

/// A final result code (V.250 5.7, T.31 8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Ok,
    Connect,
    Ring,
    NoCarrier,
    Error,
    NoDialTone,
    Busy,
    NoAnswer,
    /// T.31: the modem heard a different carrier than the one asked for
    /// (usually V.21 when high-speed data was expected).
    FcError,
}

impl ResultCode {
    /// Parses one response line, verbose or numeric (`ATV0`).
    pub fn parse(line: &str) -> Option<ResultCode> {
        Some(match line.trim() {
            "OK" | "0" => ResultCode::Ok,
            "CONNECT" | "1" => ResultCode::Connect,
            "RING" | "2" => ResultCode::Ring,
            "NO CARRIER" | "3" => ResultCode::NoCarrier,
            "ERROR" | "4" => ResultCode::Error,
            "NO DIALTONE" | "NO DIAL TONE" | "6" => ResultCode::NoDialTone,
            "BUSY" | "7" => ResultCode::Busy,
            "NO ANSWER" | "8" => ResultCode::NoAnswer,
            "+FCERROR" | "+F4" => ResultCode::FcError,
            _ => return None,
        })
    }

    /// Whether this code ends a command (`RING` does not: it arrives on its
    /// own when a call comes in).
    pub fn is_final(self) -> bool {
        self != ResultCode::Ring
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResultCode::Ok => "OK",
            ResultCode::Connect => "CONNECT",
            ResultCode::Ring => "RING",
            ResultCode::NoCarrier => "NO CARRIER",
            ResultCode::Error => "ERROR",
            ResultCode::NoDialTone => "NO DIALTONE",
            ResultCode::Busy => "BUSY",
            ResultCode::NoAnswer => "NO ANSWER",
            ResultCode::FcError => "+FCERROR",
        })
    }
}

/// What a command got back: the information lines, then a final code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub info: Vec<String>,
    pub code: ResultCode,
}

/// Why talking to the modem failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtError {
    #[error("the modem did not answer {command} within {after:?}{}", if *.echoed { " (it only echoed the command back)" } else { "" })]
    Timeout {
        command: String,
        after: Duration,
        /// The modem repeated the command but said nothing else.
        echoed: bool,
    },
    #[error("the modem device was closed or unplugged")]
    Closed,
    #[error("the modem device failed: {0}")]
    Io(String),
    #[error("the modem sent {bytes} bytes that are not AT responses ({sample:?})")]
    Garbage { bytes: usize, sample: String },
}

/// The longest response line accepted; a modem babbling binary garbage
/// without line ends is cut off here rather than buffered forever.
const MAX_LINE: usize = 256;

/// How long a modem may hold the computer back (DC3, or a full device)
/// while it is sent data, before the call is given up: far longer than
/// any modem's buffer takes to drain.
const WRITE_STALL: Duration = Duration::from_secs(30);
/// Data goes out in pieces this big, so a DC3 is heeded within one.
const FLOW_CHUNK: usize = 64;

/// One open modem device.
pub struct AtPort {
    file: File,
    buf: Vec<u8>,
    /// Responses that arrived while waiting for something else (a `RING`
    /// while idle), oldest first.
    pending_ring: u32,
    /// The modem paces data in-band (DC3/DC1, V.250 `+IFC=1`).
    xon_xoff: bool,
    /// A DC3 came and no DC1 yet.
    held: bool,
    /// The caller's number the modem reported before a `RING`
    /// (`NMBR = 5551234` after `AT+VCID=1`).
    caller: Option<String>,
    /// The UUCP lock held while the device is open; removed on drop.
    lock: Option<super::lock::UucpLock>,
    /// The last wait ended because the wake-up descriptor was readable.
    woken: bool,
}

impl AtPort {
    /// Opens the device read-write, without making it the controlling
    /// terminal, in raw mode at `speed` with the given flow control.
    pub fn open(path: &Path, speed: u32, hardware_flow: bool) -> Result<AtPort, AtError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::NONBLOCK).bits() as i32)
            .open(path)
            .map_err(|e| AtError::Io(format!("cannot open {}: {e}", path.display())))?;
        if let Ok(mut tio) = rustix::termios::tcgetattr(file.as_fd()) {
            tio.make_raw();
            tio.control_modes |=
                rustix::termios::ControlModes::CLOCAL | rustix::termios::ControlModes::CREAD;
            if hardware_flow {
                tio.control_modes |= rustix::termios::ControlModes::CRTSCTS;
            } else {
                tio.control_modes -= rustix::termios::ControlModes::CRTSCTS;
            }
            let _ = tio.set_speed(speed);
            rustix::termios::tcsetattr(file.as_fd(), rustix::termios::OptionalActions::Now, &tio)
                .map_err(|e| AtError::Io(format!("cannot set up {}: {e}", path.display())))?;
        }
        Ok(AtPort::from_file(file))
    }

    /// Turns RTS/CTS flow control on or off on an open serial port.
    pub fn set_hardware_flow(&mut self, on: bool) -> Result<(), AtError> {
        let Ok(mut tio) = rustix::termios::tcgetattr(self.file.as_fd()) else {
            // Not a terminal (a test's pipe): nothing to set.
            return Ok(());
        };
        if on {
            tio.control_modes |= rustix::termios::ControlModes::CRTSCTS;
        } else {
            tio.control_modes -= rustix::termios::ControlModes::CRTSCTS;
        }
        rustix::termios::tcsetattr(
            self.file.as_fd(),
            rustix::termios::OptionalActions::Now,
            &tio,
        )
        .map_err(|e| AtError::Io(format!("cannot set flow control: {e}")))
    }

    /// Wraps an already open byte stream (tests use a pty directly).
    pub fn from_file(file: File) -> AtPort {
        AtPort {
            file,
            buf: Vec::new(),
            pending_ring: 0,
            xon_xoff: false,
            held: false,
            caller: None,
            lock: None,
            woken: false,
        }
    }

    /// The modem paces the computer in-band with DC3/DC1 while it is sent
    /// data ([`AtPort::write_data`]); its responses are read without them.
    pub fn set_xon_xoff(&mut self, on: bool) {
        self.xon_xoff = on;
        self.held = false;
    }

    /// Keeps `lock` until the port is dropped.
    pub fn keep_lock(&mut self, lock: super::lock::UucpLock) {
        self.lock = Some(lock);
    }

    /// Writes all of `bytes`, waiting (up to [`WRITE_STALL`]) while the
    /// device takes no more.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), AtError> {
        let mut stalled_since: Option<Instant> = None;
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => return Err(AtError::Closed),
                Ok(n) => {
                    bytes = &bytes[n..];
                    stalled_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    let left = WRITE_STALL.saturating_sub(since.elapsed());
                    if left.is_zero() {
                        return Err(AtError::Timeout {
                            command: "data (the modem stopped taking it)".into(),
                            after: WRITE_STALL,
                            echoed: false,
                        });
                    }
                    let mut fds = [rustix::event::PollFd::new(
                        &self.file,
                        rustix::event::PollFlags::OUT,
                    )];
                    let timeout = rustix::event::Timespec::try_from(left).ok();
                    match rustix::event::poll(&mut fds, timeout.as_ref()) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(AtError::Io(e.to_string())),
                    }
                }
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// Writes data after `CONNECT` to `+FTM`/`+FTH`. With in-band flow
    /// control, a DC3 from the modem holds the rest back until its DC1;
    /// both are taken out of what the modem says (issue 26: iaxmodem and
    /// many USB modems pace every page this way).
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        if !self.xon_xoff {
            return self.write(bytes);
        }
        for chunk in bytes.chunks(FLOW_CHUNK) {
            // Take in whatever the modem said meanwhile, without waiting.
            while self.fill(Instant::now())? {}
            self.take_flow_control();
            if self.held {
                let until = Instant::now() + WRITE_STALL;
                while self.held {
                    if Instant::now() >= until {
                        return Err(AtError::Timeout {
                            command: "data (the modem sent DC3 and never DC1)".into(),
                            after: WRITE_STALL,
                            echoed: false,
                        });
                    }
                    self.fill(until)?;
                    self.take_flow_control();
                }
            }
            self.write(chunk)?;
        }
        Ok(())
    }

    /// Removes DC1/DC3 from what the modem sent; the last one decides.
    /// Only while sending: the modem sends nothing else then but a final
    /// result code, which never contains them.
    fn take_flow_control(&mut self) {
        let mut held = self.held;
        self.buf.retain(|b| match *b {
            DC3 => {
                held = true;
                false
            }
            DC1 => {
                held = false;
                false
            }
            _ => true,
        });
        self.held = held;
    }

    /// Waits up to `deadline` for more bytes; false when none came.
    fn fill(&mut self, deadline: Instant) -> Result<bool, AtError> {
        self.fill_or_wake(deadline, None)
    }

    /// As `fill`, but also returns (false, setting `woken`) as soon as
    /// `wake` is readable: the line's supervisor sleeps on the modem and
    /// its doorbell together instead of polling.
    fn fill_or_wake(
        &mut self,
        deadline: Instant,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<bool, AtError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = vec![rustix::event::PollFd::new(
            &self.file,
            rustix::event::PollFlags::IN,
        )];
        if let Some(wake) = &wake {
            fds.push(rustix::event::PollFd::new(
                wake,
                rustix::event::PollFlags::IN,
            ));
        }
        let timeout = rustix::event::Timespec::try_from(left).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => return Err(AtError::Io(e.to_string())),
        }
        if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
            self.woken = true;
            if fds[0].revents().is_empty() {
                return Ok(false);
            }
        }
        let revents = fds[0].revents();
        let mut chunk = [0u8; 4096];
        match self.file.read(&mut chunk) {
            Ok(0) => Err(AtError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if revents.contains(rustix::event::PollFlags::HUP) {
                    Err(AtError::Closed)
                } else {
                    Ok(false)
                }
            }
            Err(e) => Err(io_error(e)),
        }
    }

    /// The next non-empty response line, or `None` at the deadline.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Option<String>, AtError> {
        self.read_line_or_wake(deadline, None)
    }

    fn read_line_or_wake(
        &mut self,
        deadline: Instant,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<Option<String>, AtError> {
        self.woken = false;
        loop {
            // Skip line ends left from the previous line.
            let start = self
                .buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if let Some(end) = self.buf.iter().position(|b| *b == b'\r' || *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..end).collect();
                // Take the line's own end too (CR, LF or CR LF): after
                // CONNECT, data follows at once and must not start with it.
                let mut ending = 1;
                if self.buf.first() == Some(&b'\r') && self.buf.get(1) == Some(&b'\n') {
                    ending = 2;
                }
                self.buf.drain(..ending);
                if self.xon_xoff {
                    // A late DC1 (or DC3) before a result code is pacing,
                    // not part of the response.
                    line.retain(|b| *b != DC1 && *b != DC3);
                    if line.is_empty() {
                        continue;
                    }
                }
                return Ok(Some(line_text(&line)?));
            }
            if self.buf.len() > MAX_LINE {
                return Err(garbage(&self.buf));
            }
            if Instant::now() >= deadline || self.woken {
                return Ok(None);
            }
            if !self.fill_or_wake(deadline, wake)? && (Instant::now() >= deadline || self.woken) {
                return Ok(None);
            }
        }
    }

    /// Sends `command` (without the trailing CR) and collects the reply up
    /// to a final result code. A `RING` in between is remembered, and a
    /// line that repeats the command (a modem with echo on) is skipped.
    pub fn command(&mut self, command: &str, timeout: Duration) -> Result<Reply, AtError> {
        tracing::trace!(target: "faxbox::modem::at", "> {command}");
        self.write(format!("{command}\r").as_bytes())?;
        self.reply(command, timeout)
    }

    /// Collects a reply to `command` that was already sent.
    pub fn reply(&mut self, command: &str, timeout: Duration) -> Result<Reply, AtError> {
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        let mut echoed = false;
        loop {
            let Some(line) = self.read_line(deadline)? else {
                return Err(AtError::Timeout {
                    command: command.to_owned(),
                    after: timeout,
                    echoed: echoed && info.is_empty(),
                });
            };
            if line.trim() == command {
                echoed = true;
                continue;
            }
            match ResultCode::parse(&line) {
                Some(ResultCode::Ring) => self.pending_ring += 1,
                Some(code) => {
                    tracing::trace!(target: "faxbox::modem::at", "< {code} (to {command})");
                    return Ok(Reply { info, code });
                }
                None => info.push(line),
            }
        }
    }

    /// Waits up to `deadline` for an unsolicited `RING`; true when one
    /// came. False also as soon as `wake` is readable (the caller drains it).
    pub fn wait_ring(
        &mut self,
        deadline: Instant,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<bool, AtError> {
        loop {
            if self.pending_ring > 0 {
                self.pending_ring -= 1;
                return Ok(true);
            }
            match self.read_line_or_wake(deadline, wake)? {
                None => return Ok(false),
                Some(line) => match ResultCode::parse(&line) {
                    Some(ResultCode::Ring) => return Ok(true),
                    // Left over from an aborted command: harmless.
                    Some(_) => {}
                    None => {
                        if let Some(number) = caller_number(&line) {
                            self.caller = Some(number);
                        }
                        // Caller id and other chatter between rings.
                        tracing::debug!(line = %line, "modem said");
                    }
                },
            }
        }
    }

    /// The caller's number reported with the last rings, if any; forgets it.
    pub fn take_caller(&mut self) -> Option<String> {
        self.caller.take()
    }

    /// Reads a block of Class 1 data up to `DLE ETX`, unstuffed. The sink
    /// is called after every read (with what arrived, maybe nothing), so
    /// the caller's clock can run while a long page comes in.
    pub fn read_data(
        &mut self,
        deadline: Instant,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), AtError> {
        let mut unstuffer = Unstuffer::default();
        loop {
            let (used, ended) = unstuffer.push(&self.buf, &mut sink);
            self.buf.drain(..used);
            if ended {
                return Ok(());
            }
            if !self.fill(deadline)? && Instant::now() >= deadline {
                return Err(AtError::Timeout {
                    command: "data (no DLE ETX)".into(),
                    after: Duration::ZERO,
                    echoed: false,
                });
            }
        }
    }

    /// Discards anything received but not yet read.
    pub fn discard_input(&mut self) {
        self.buf.clear();
        self.pending_ring = 0;
        self.held = false;
    }

    /// Whether bytes are waiting (without blocking).
    pub fn poll_input(&mut self) -> Result<bool, AtError> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        self.fill(Instant::now())
    }
}

/// The number in a caller id line (`NMBR = 5551234`, `NMBR=5551234`);
/// `P` (private) and `O` (out of area) are no number.
pub fn caller_number(line: &str) -> Option<String> {
    let (key, value) = line.split_once('=').or_else(|| line.split_once(':'))?;
    if !key.trim().eq_ignore_ascii_case("NMBR") {
        return None;
    }
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 40
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#' | '-' | ' '));
    ok.then(|| value.to_owned())
}

fn io_error(e: std::io::Error) -> AtError {
    // A pty whose other side has gone away reads EIO; a serial port
    // unplugged mid-call the same, or ENXIO/ENODEV.
    match e.raw_os_error() {
        Some(5) | Some(6) | Some(19) => AtError::Closed,
        _ if e.kind() == std::io::ErrorKind::BrokenPipe => AtError::Closed,
        _ => AtError::Io(e.to_string()),
    }
}

fn line_text(line: &[u8]) -> Result<String, AtError> {
    // AT responses are printable ASCII; anything else means the port speed
    // is wrong or the device is not a modem.
    if line
        .iter()
        .all(|b| b.is_ascii() && (!b.is_ascii_control() || *b == b'\t'))
    {
        Ok(String::from_utf8_lossy(line).into_owned())
    } else {
        Err(garbage(line))
    }
}

fn garbage(bytes: &[u8]) -> AtError {
    AtError::Garbage {
        bytes: bytes.len(),
        sample: String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into_owned(),
    }
}

/// Doubles every DLE in `data` and appends `DLE ETX`: one block the DTE
/// sends after `CONNECT` to `+FTH`/`+FTM`.
pub fn stuff(data: &[u8], end: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 2);
    for &b in data {
        if b == DLE {
            out.push(DLE);
        }
        out.push(b);
    }
    if end {
        out.extend_from_slice(&[DLE, ETX]);
    }
    out
}

/// Undoes DLE stuffing across reads: `DLE DLE` is one DLE, `DLE SUB` two,
/// `DLE ETX` ends the block; other `DLE x` pairs are dropped (T.31 8.3.3
/// lets the modem send them as status).
#[derive(Debug, Default)]
pub struct Unstuffer {
    after_dle: bool,
}

impl Unstuffer {
    /// Feeds `input`; returns how many bytes were used and whether the
    /// block ended. Data goes to `sink`.
    pub fn push(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> (usize, bool) {
        let mut out = Vec::with_capacity(input.len());
        for (i, &b) in input.iter().enumerate() {
            if self.after_dle {
                self.after_dle = false;
                match b {
                    ETX => {
                        sink(&out);
                        return (i + 1, true);
                    }
                    DLE => out.push(DLE),
                    SUB => out.extend_from_slice(&[DLE, DLE]),
                    _ => {}
                }
            } else if b == DLE {
                self.after_dle = true;
            } else {
                out.push(b);
            }
        }
        sink(&out);
        (input.len(), false)
    }
}

/// The Class 1 modulation code for a high-speed modem at a bit rate
/// (T.31 Table 1): long or short training for V.17.
pub fn modulation(modem: crate::fax::Modem, bit_rate: u32, short_train: bool) -> Option<u32> {
    use crate::fax::Modem;
    let long = match (modem, bit_rate) {
        (Modem::V27ter, 2400) => return Some(24),
        (Modem::V27ter, 4800) => return Some(48),
        (Modem::V29, 7200) => return Some(72),
        (Modem::V29, 9600) => return Some(96),
        (Modem::V17, 7200) => 73,
        (Modem::V17, 9600) => 97,
        (Modem::V17, 12000) => 121,
        (Modem::V17, 14400) => 145,
        _ => return None,
    };
    Some(if short_train { long + 1 } else { long })
}

/// The modulation codes a `AT+FTM=?` reply lists.
pub fn parse_modulations(info: &[String]) -> Vec<u32> {
    info.iter()
        .flat_map(|l| l.split(','))
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_verbose_and_numeric() {
        let table = [
            ("OK", Some(ResultCode::Ok)),
            ("0", Some(ResultCode::Ok)),
            ("CONNECT", Some(ResultCode::Connect)),
            ("RING", Some(ResultCode::Ring)),
            ("NO CARRIER", Some(ResultCode::NoCarrier)),
            ("3", Some(ResultCode::NoCarrier)),
            ("ERROR", Some(ResultCode::Error)),
            ("NO DIALTONE", Some(ResultCode::NoDialTone)),
            ("NO DIAL TONE", Some(ResultCode::NoDialTone)),
            ("BUSY", Some(ResultCode::Busy)),
            ("NO ANSWER", Some(ResultCode::NoAnswer)),
            ("+FCERROR", Some(ResultCode::FcError)),
            ("  OK ", Some(ResultCode::Ok)),
            ("USRobotics", None),
            ("", None),
        ];
        for (line, want) in table {
            assert_eq!(ResultCode::parse(line), want, "{line:?}");
        }
        assert!(!ResultCode::Ring.is_final());
        assert!(ResultCode::NoCarrier.is_final());
    }

    #[test]
    fn stuffing_round_trips_every_byte() {
        let data: Vec<u8> = (0..=255u8).chain([DLE, DLE, ETX, DLE]).collect();
        let stuffed = stuff(&data, true);
        assert_eq!(&stuffed[stuffed.len() - 2..], &[DLE, ETX]);
        assert_eq!(
            stuffed.iter().filter(|b| **b == DLE).count(),
            2 * data.iter().filter(|b| **b == DLE).count() + 1
        );
        // Fed back one byte at a time, as a slow serial port delivers it.
        let mut u = Unstuffer::default();
        let mut got = Vec::new();
        let mut ended = false;
        for (i, b) in stuffed.iter().enumerate() {
            let (used, end) = u.push(std::slice::from_ref(b), &mut |d| got.extend_from_slice(d));
            assert_eq!(used, 1);
            if end {
                assert_eq!(i, stuffed.len() - 1);
                ended = true;
            }
        }
        assert!(ended);
        assert_eq!(got, data);
    }

    #[test]
    fn unstuffing_recorded_blocks() {
        // (bytes from the modem, data, bytes used, ended)
        let table: [(&[u8], &[u8], usize, bool); 5] = [
            // A DIS frame as a T.31 modem delivers it, FCS included.
            (
                b"\xff\x13\x80\x00\xce\xf4\x10\x03OK\r\n",
                b"\xff\x13\x80\x00\xce\xf4",
                8,
                true,
            ),
            (b"\x10\x10\x41\x10\x03", b"\x10\x41", 5, true),
            (b"\x10\x1a\x10\x03", b"\x10\x10", 4, true),
            // DLE followed by anything else is status, not data.
            (b"\x41\x10\x2e\x42", b"\x41\x42", 4, false),
            (b"\x00\x00", b"\x00\x00", 2, false),
        ];
        for (input, data, used, ended) in table {
            let mut u = Unstuffer::default();
            let mut got = Vec::new();
            let r = u.push(input, &mut |d| got.extend_from_slice(d));
            assert_eq!((got.as_slice(), r), (data, (used, ended)), "{input:?}");
        }
    }

    #[test]
    fn modulation_codes_follow_t31_table_1() {
        use crate::fax::Modem;
        assert_eq!(modulation(Modem::V27ter, 2400, false), Some(24));
        assert_eq!(modulation(Modem::V29, 9600, true), Some(96));
        assert_eq!(modulation(Modem::V17, 14400, false), Some(145));
        assert_eq!(modulation(Modem::V17, 14400, true), Some(146));
        assert_eq!(modulation(Modem::V17, 7200, true), Some(74));
        assert_eq!(modulation(Modem::V29, 14400, false), None);
        assert_eq!(
            parse_modulations(&["24,48,72,73,74,96,97,98,121,122,145,146".into()]),
            [24, 48, 72, 73, 74, 96, 97, 98, 121, 122, 145, 146]
        );
    }

    /// Recorded dialogues, replayed through a real pty: what the driver
    /// reads from each, line by line.
    #[test]
    fn dialogues_over_a_pty() {
        let cases: [(&str, &[u8], Result<Reply, &str>); 7] = [
            (
                "ATI",
                b"\r\nSpanDSP\r\n\r\nOK\r\n",
                Ok(Reply {
                    info: vec!["SpanDSP".into()],
                    code: ResultCode::Ok,
                }),
            ),
            (
                "AT+FCLASS=?",
                b"AT+FCLASS=?\r\r\n0,1\r\n\r\nOK\r\n",
                Ok(Reply {
                    info: vec!["0,1".into()],
                    code: ResultCode::Ok,
                }),
            ),
            (
                "ATDT5550100",
                b"\r\nRING\r\n\r\nBUSY\r\n",
                Ok(Reply {
                    info: vec![],
                    code: ResultCode::Busy,
                }),
            ),
            (
                "AT+FTH=3",
                b"\r\nERROR\r\n",
                Ok(Reply {
                    info: vec![],
                    code: ResultCode::Error,
                }),
            ),
            ("ATZ", b"ATZ\r", Err("only echoed")),
            ("ATI", b"\x01\x02\xfe\xff\r\n", Err("not AT responses")),
            ("ATI", b"", Err("did not answer ATI")),
        ];
        for (command, modem_says, want) in cases {
            let (modem, mut port) = pty_pair();
            let mut modem = modem;
            modem.write_all(modem_says).unwrap();
            let got = port.command(command, Duration::from_millis(200));
            match (got, want) {
                (Ok(reply), Ok(want)) => assert_eq!(reply, want, "{command}"),
                (Err(e), Err(needle)) => {
                    assert!(e.to_string().contains(needle), "{command}: {e}")
                }
                (got, want) => panic!("{command}: {got:?}, wanted {want:?}"),
            }
            // The driver's command reached the modem, CR-terminated.
            let mut sent = vec![0u8; 64];
            let n = modem.read(&mut sent).unwrap();
            assert_eq!(&sent[..n], format!("{command}\r").as_bytes());
        }
    }

    #[test]
    fn a_closed_device_is_reported_as_closed() {
        let (modem, mut port) = pty_pair();
        drop(modem);
        let err = port
            .command("AT", Duration::from_millis(500))
            .expect_err("no modem");
        assert_eq!(err, AtError::Closed);
    }

    #[test]
    fn rings_are_counted_while_idle() {
        let (mut modem, mut port) = pty_pair();
        modem
            .write_all(b"\r\nRING\r\n\r\nNMBR = 5551234\r\n\r\nRING\r\n")
            .unwrap();
        let soon = || Instant::now() + Duration::from_millis(200);
        assert!(port.wait_ring(soon(), None).unwrap());
        assert_eq!(port.take_caller(), None, "no number before the first ring");
        assert!(port.wait_ring(soon(), None).unwrap());
        assert_eq!(port.take_caller().as_deref(), Some("5551234"));
        assert!(!port.wait_ring(soon(), None).unwrap());
    }

    /// The master side of a new pty (the "modem") and an AT port on its
    /// slave side (the "serial device").
    fn pty_pair() -> (File, AtPort) {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let path = std::path::PathBuf::from(name.to_str().unwrap());
        let port = AtPort::open(&path, 115_200, false).unwrap();
        (File::from(master), port)
    }
}
