//! Incoming faxes through FreeSWITCH's outbound socket: the dialplan's
//! `socket HOST:PORT async full` connects here for each call, and this
//! server drives the channel as docs/freeswitch.md, transcript 06 shows: `connect` (the channel
//! data), the events, `linger`, `sendmsg` answer / set / rxfax, then the
//! result from `spandsp::rxfaxresult` and a `sendmsg` hangup. The received
//! file goes to the receive path ([`Inbound`]) like any line's.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::call::{CallTrack, Direction};
use super::esl::{EslError, FrameReader, Headers, Message};
use super::line::spool_file;
use super::variables::channel_value;
use crate::fax::{FaxOutcome, T30Code};
use crate::lines::{Inbound, IncomingCall, ReceivedFax};

/// A silent socket this long means FreeSWITCH lost the call: SpanDSP
/// reports every page well within it.
const SILENCE_LIMIT: Duration = Duration::from_secs(300);

type InboundSlot = Arc<RwLock<Option<Arc<dyn Inbound>>>>;

pub struct InboundServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InboundServer {
    /// Serves FreeSWITCH's socket connections on `listener`. Received pages
    /// are written by FreeSWITCH into `spool` when `shared_spool`, else
    /// straight where the receive path wants them; `variables` are set on
    /// each channel before `rxfax`.
    pub fn start(
        line: &str,
        listener: TcpListener,
        spool: PathBuf,
        shared_spool: bool,
        variables: Vec<(String, String)>,
        inbound: InboundSlot,
    ) -> std::io::Result<InboundServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        if shared_spool {
            std::fs::create_dir_all(&spool)?;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let line = line.to_owned();
        let flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fs-inbound-{line}"))
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, peer)) => {
                            let session = Session {
                                line: line.clone(),
                                spool: shared_spool.then(|| spool.clone()),
                                variables: variables.clone(),
                                inbound: inbound.clone(),
                            };
                            let spawned = std::thread::Builder::new()
                                .name(format!("fs-rx-{peer}"))
                                .spawn(move || session.run(stream));
                            if let Err(e) = spawned {
                                warn!("cannot start a thread for an incoming fax call: {e}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => {
                            warn!("incoming fax socket: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(InboundServer {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking calls; calls being received go on to their end.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InboundServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
    }
}

struct Session {
    line: String,
    spool: Option<PathBuf>,
    /// Receive settings of the line (T.38), set on every call.
    variables: Vec<(String, String)>,
    inbound: InboundSlot,
}

/// One socket session: the messages and the channel's events.
struct Channel {
    reader: FrameReader<TcpStream>,
    writer: TcpStream,
    track: CallTrack,
    disconnected: bool,
}

impl Channel {
    /// Sends a command and reads until its reply, folding events that come
    /// in between.
    fn command(&mut self, text: &str) -> Result<Headers, EslError> {
        self.writer
            .write_all(format!("{text}\n\n").as_bytes())
            .map_err(|e| EslError::Io(e.to_string()))?;
        loop {
            match self.reader.read_message()? {
                Message::CommandReply(h) => {
                    return match h.get("Reply-Text") {
                        Some(t) if t.starts_with("-ERR") => Err(EslError::CommandFailed {
                            command: text.lines().next().unwrap_or_default().to_owned(),
                            reply: t.to_owned(),
                        }),
                        _ => Ok(h),
                    };
                }
                Message::Event(e) => {
                    self.track.apply(&e);
                }
                Message::Disconnect(_) => {
                    self.disconnected = true;
                    return Err(EslError::Closed);
                }
                _ => {}
            }
        }
    }

    /// `sendmsg` executing an application on the channel.
    fn execute(&mut self, app: &str, arg: Option<&str>) -> Result<Headers, EslError> {
        let mut text = format!("sendmsg\ncall-command: execute\nexecute-app-name: {app}");
        if let Some(arg) = arg {
            text.push_str(&format!("\nexecute-app-arg: {arg}"));
        }
        if app == "answer" {
            text.push_str("\nevent-lock: true");
        }
        self.command(&text)
    }

    fn hang_up(&mut self, cause: &str) {
        let _ = self.command(&format!(
            "sendmsg\ncall-command: hangup\nhangup-cause: {cause}"
        ));
    }

    /// Reads events until the result is in (or the channel is gone).
    fn wait_for_result(&mut self) -> Result<(), EslError> {
        while self.track.report().is_none() && !self.track.is_finished() && !self.disconnected {
            match self.reader.read_message()? {
                Message::Event(e) => {
                    self.track.apply(&e);
                }
                Message::Disconnect(_) => self.disconnected = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// After our hang-up: the rest until FreeSWITCH closes (bounded).
    fn drain(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        while !self.disconnected && !self.track.is_finished() && Instant::now() < until {
            match self.reader.read_message() {
                Ok(Message::Event(e)) => {
                    self.track.apply(&e);
                }
                Ok(Message::Disconnect(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

impl Session {
    fn run(self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(SILENCE_LIMIT));
        let _ = stream.set_nodelay(true);
        let started = Instant::now();
        let writer = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => {
                warn!("incoming fax socket: {e}");
                return;
            }
        };
        let mut channel = Channel {
            reader: FrameReader::new(stream),
            writer,
            track: CallTrack::new("", "", Direction::Receive),
            disconnected: false,
        };
        if let Err(e) = self.receive(&mut channel, started) {
            warn!(line = %self.line, "incoming fax over the FreeSWITCH socket failed: {e}");
        }
    }

    fn receive(&self, channel: &mut Channel, started: Instant) -> Result<(), EslError> {
        let data = channel.command("connect")?;
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| data.get(n))
                .unwrap_or_default()
                .to_owned()
        };
        let uuid = field(&["Unique-ID", "Channel-Unique-ID"]);
        if uuid.is_empty() {
            return Err(EslError::BadEvent(
                "the channel data from `connect` names no Unique-ID".into(),
            ));
        }
        channel.track = CallTrack::new(&uuid, "", Direction::Receive);
        let call = IncomingCall {
            line: self.line.clone(),
            call_id: format!(
                "fs-{}",
                uuid.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
            ),
            from_number: field(&["Caller-Caller-ID-Number", "Channel-Caller-ID-Number"]),
            to_number: field(&["Caller-Destination-Number", "Channel-Destination-Number"]),
        };
        info!(line = %self.line, from = %call.from_number, to = %call.to_number, "incoming fax call");
        let inbound = self.inbound.read().ok().and_then(|i| i.clone());
        let answer = inbound.as_ref().and_then(|i| i.answer(&call));
        let (Some(inbound), Some(answer)) = (inbound, answer) else {
            info!(line = %self.line, to = %call.to_number, "no faxbox takes this number; refusing the call");
            channel.hang_up("CALL_REJECTED");
            return Ok(());
        };
        let written = match &self.spool {
            Some(spool) => spool_file(spool, &call.call_id),
            None => answer.tiff.clone(),
        };
        // `myevents` brings this channel's events but no CUSTOM ones
        // (docs/freeswitch.md): the fax results are asked for separately.
        channel.command("myevents plain")?;
        channel.command(
            "event plain CUSTOM spandsp::rxfaxresult spandsp::rxfaxpageresult spandsp::rxfaxnegociateresult",
        )?;
        channel.command("linger")?;
        channel.execute("answer", None)?;
        // `set` expands `${...}` in its argument and the argument is a
        // header line of `sendmsg`: the ident goes percent-encoded, which
        // mod_spandsp decodes (issue 25).
        channel.execute(
            "set",
            Some(&format!(
                "fax_ident={}",
                channel_value("fax_ident", &answer.ident)
            )),
        )?;
        for (name, value) in &self.variables {
            channel.execute("set", Some(&format!("{name}={value}")))?;
        }
        channel.execute("rxfax", Some(&written.display().to_string()))?;
        let waited = channel.wait_for_result();
        channel.hang_up("NORMAL_CLEARING");
        channel.drain();
        let outcome = match channel.track.report() {
            Some(r) => r.outcome(),
            // The channel went without mod_spandsp's final report (the
            // caller hung up, FreeSWITCH went away): the pages its page
            // events confirmed are in the file, and the fax is kept as a
            // partial one (issue 25 item 5).
            None => FaxOutcome {
                code: T30Code::CallDropped,
                pages: channel.track.pages_done(),
                bit_rate: 0,
                ecm: false,
                remote_ident: String::new(),
                bad_rows: 0,
                longest_bad_row_run: 0,
                ecm_retries: 0,
            },
        };
        if written != answer.tiff
            && let Err(e) = move_file(&written, &answer.tiff)
        {
            warn!(from = %written.display(), to = %answer.tiff.display(), "cannot take the received fax from the spool: {e}");
        }
        inbound.deliver(ReceivedFax {
            line: self.line.clone(),
            call_id: call.call_id,
            from_number: call.from_number,
            to_number: call.to_number,
            tiff: answer.tiff,
            outcome,
            duration: started.elapsed(),
        });
        waited
    }
}

/// Moves a file, across file systems too (a shared spool is often a mount).
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)?;
    std::fs::remove_file(from)
}
