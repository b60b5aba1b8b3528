//! A stand-in FreeSWITCH (FreeSWITCH itself cannot be installed here): an
//! Event Socket server that speaks as the transcripts in
//! docs/freeswitch.md show (login, `command/reply` texts,
//! `text/event-plain` framing with URL-encoded values, hyphenated spandsp
//! headers, txfaxresult after the hang-up, Hangup-Cause twice on
//! HANGUP_COMPLETE), and does the work for real: `txfax(${http_get(URL)})`
//! fetches the TIFF from the file proxy over HTTP and sends it with SpanDSP
//! to a simulated far-end fax machine, whose received file is kept. It can
//! also place incoming calls into an outbound-socket server, as the
//! dialplan's `socket` application does.
//!
//! This is test code: it panics freely on what a test should never see.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::originate_parse::{Originate, parse_originate};
use faxbox::fax::{
    FaxDocument, FaxEvent, FaxOutcome, FaxSession, FaxSettings, LineModel, Negotiation, PageReport,
    Role, Terminal, Transfer, VoiceAnswer, Wire,
};

const CORE_UUID: &str = "5eb0d3a2-0000-4000-8000-00000000f5f5";

/// What the far end does when a number is dialled.
#[derive(Debug, Clone, PartialEq)]
pub enum FarEnd {
    Fax,
    Busy,
    NoAnswer,
    /// Answers with a voice: T.30 times out (code 2).
    NotAFax,
    /// The far end hangs up after this much audio (code 49).
    DropsAfter(Duration),
    /// The stand-in closes the event socket once the first page is sent.
    ClosesSocket,
    /// Every event socket connection is cut once the first page is sent
    /// (Faxbox's TCP connection dropped, or Faxbox killed), while the call
    /// goes on, as FreeSWITCH keeps its calls; it goes on once Faxbox has
    /// logged in again.
    CutsConnectionsMidCall,
    /// The call waits after the first page until someone asks
    /// `uuid_exists` about it (a restarted Faxbox looking for the call of
    /// an attempt it did not see end), as a real far end keeps a call up
    /// while Faxbox is killed and started again; then it goes on.
    HoldsAfterFirstPage,
    /// The call waits after the first page until Faxbox kills the channel
    /// (or 20 s pass), so a hang-up always lands mid-document however fast
    /// the simulated wire runs.
    WaitsForHangUpAfterFirstPage,
    /// The number does not exist (`-ERR UNALLOCATED_NUMBER`).
    Unallocated,
    /// FreeSWITCH is shut down gracefully once the first page is sent: it
    /// hangs up with SYSTEM_SHUTDOWN and SpanDSP reports code 49.
    ShutsDown,
}

#[derive(Default)]
pub struct Counters {
    pub calls_now: AtomicU32,
    pub max_calls: AtomicU32,
    pub calls: AtomicU32,
    /// Calls waiting now in `HoldsAfterFirstPage`.
    pub holding: AtomicU32,
    /// `uuid_exists` questions answered.
    pub exists_asked: AtomicU32,
}

struct State {
    password: String,
    numbers: Mutex<HashMap<String, FarEnd>>,
    /// Behaviours for the next call to a number only.
    once: Mutex<HashMap<String, FarEnd>>,
    /// Where FreeSWITCH's own file system is, for `txfax` paths: `None` is
    /// the test's (a shared data dir).
    path_root: Mutex<Option<PathBuf>>,
    received_dir: PathBuf,
    counters: Counters,
    originates: Mutex<Vec<String>>,
    /// Every originate, as FreeSWITCH's parser read it.
    parsed: Mutex<Vec<Parsed>>,
    /// The channels that exist now (`uuid_exists`), with their hang-up
    /// flags (`uuid_kill`).
    live: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The logged-in event socket connections: FreeSWITCH sends every
    /// event to every connection subscribed to it, whichever placed the
    /// call.
    writers: Mutex<Vec<Writer>>,
    /// HTTP fetches: (url, status, bytes).
    fetches: Mutex<Vec<(String, u16, usize)>>,
    /// mod_http_cache's cache: the local copy of each URL fetched.
    cache: Mutex<HashMap<String, PathBuf>>,
    /// Open ESL connections, so a test can cut them.
    sockets: Mutex<Vec<TcpStream>>,
    logins: AtomicU32,
    sequence: AtomicU64,
    /// Bytes to send right after the next subscription (bad-wire tests), and
    /// whether to close the socket after them.
    inject: Mutex<Option<(Vec<u8>, bool)>>,
    stopping: AtomicBool,
}

impl State {
    /// A FreeSWITCH with nobody logged in and no call yet; its events are
    /// numbered from `first_sequence`.
    fn new(password: &str, received_dir: &Path, first_sequence: u64) -> State {
        State {
            password: password.to_owned(),
            numbers: Mutex::default(),
            once: Mutex::default(),
            path_root: Mutex::default(),
            received_dir: received_dir.to_owned(),
            counters: Counters::default(),
            originates: Mutex::default(),
            parsed: Mutex::default(),
            live: Mutex::default(),
            writers: Mutex::default(),
            fetches: Mutex::default(),
            cache: Mutex::default(),
            sockets: Mutex::default(),
            logins: AtomicU32::new(0),
            sequence: AtomicU64::new(first_sequence),
            inject: Mutex::new(None),
            stopping: AtomicBool::new(false),
        }
    }

    /// Closes every event socket connection, as a FreeSWITCH restart would.
    fn cut_connections(&self) {
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

pub struct StandIn {
    addr: SocketAddr,
    state: Arc<State>,
}

impl StandIn {
    /// Starts a stand-in on a free loopback port. The far end keeps what it
    /// receives in `received_dir/<channel uuid>.tif`.
    pub fn start(password: &str, received_dir: &Path) -> StandIn {
        std::fs::create_dir_all(received_dir).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::new(password, received_dir, 1000));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve_connection(s, stream));
            }
        });
        StandIn { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, number: &str, far_end: FarEnd) {
        self.state
            .numbers
            .lock()
            .unwrap()
            .insert(number.to_owned(), far_end);
    }

    /// The next call to `number` only behaves as `far_end`.
    pub fn set_once(&self, number: &str, far_end: FarEnd) {
        self.state
            .once
            .lock()
            .unwrap()
            .insert(number.to_owned(), far_end);
    }

    /// Makes `txfax` paths resolve under `root`, as on a FreeSWITCH host
    /// that does not share Faxbox's data dir.
    pub fn set_path_root(&self, root: &Path) {
        *self.state.path_root.lock().unwrap() = Some(root.to_owned());
    }

    pub fn received_file(&self, channel: &str) -> PathBuf {
        self.state.received_dir.join(format!("{channel}.tif"))
    }

    pub fn originates(&self) -> Vec<String> {
        self.state.originates.lock().unwrap().clone()
    }

    /// Every originate, as FreeSWITCH's parser read it.
    pub fn parsed(&self) -> Vec<Parsed> {
        self.state.parsed.lock().unwrap().clone()
    }

    /// The channel variables FreeSWITCH set for the `n`th originate.
    pub fn call_variables(&self, n: usize) -> Vec<(String, String)> {
        match &self.parsed()[n].originate {
            Originate::Call { variables, .. } => variables.clone(),
            other => panic!(
                "originate {n} placed no call: {other:?} from {:?}",
                self.parsed()[n].args
            ),
        }
    }

    pub fn fetches(&self) -> Vec<(String, u16, usize)> {
        self.state.fetches.lock().unwrap().clone()
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    pub fn logins(&self) -> u32 {
        self.state.logins.load(Ordering::Acquire)
    }

    /// Closes every event socket connection, as a FreeSWITCH restart would.
    pub fn cut_connections(&self) {
        self.state.cut_connections();
    }

    /// Sends these bytes on the next connection right after its event
    /// subscription (then closes it, when `close`).
    pub fn inject_after_login(&self, bytes: &[u8], close: bool) {
        *self.state.inject.lock().unwrap() = Some((bytes.to_vec(), close));
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::Release);
        self.cut_connections();
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------
// The wire, as FreeSWITCH writes it.

/// `switch_url_encode`: controls, non-ASCII and `\r\n #%&+:;<=>?@[\]^`{|}"`.
fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if !(b' '..=b'~').contains(&b) || b"\r\n #%&+:;<=>?@[\\]^`{|}\"".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes whole messages; shared by a connection's call threads. Events
/// go out only when subscribed (`event plain NAMES`; CUSTOM events by
/// subclass), as FreeSWITCH does; `None` sends all (an outbound socket
/// after `myevents`).
#[derive(Clone)]
struct Writer(Arc<Mutex<TcpStream>>, Arc<Mutex<Option<Vec<String>>>>);

impl Writer {
    fn new(stream: TcpStream, subscribed: Option<Vec<String>>) -> Writer {
        Writer(
            Arc::new(Mutex::new(stream)),
            Arc::new(Mutex::new(subscribed)),
        )
    }

    fn subscribe(&self, words: &str) {
        let mut names: Vec<String> = words.split_whitespace().map(str::to_owned).collect();
        if let Some(current) = self.1.lock().unwrap().as_mut() {
            current.append(&mut names);
        }
    }

    fn wants(&self, headers: &[(String, String)]) -> bool {
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let key = get("Event-Subclass")
            .or(get("Event-Name"))
            .unwrap_or_default();
        match self.1.lock().unwrap().as_ref() {
            None => true,
            Some(names) => names.iter().any(|n| n == key || n == "ALL"),
        }
    }

    fn send(&self, bytes: &[u8]) -> bool {
        self.0.lock().unwrap().write_all(bytes).is_ok()
    }

    fn reply(&self, text: &str) -> bool {
        self.send(format!("Content-Type: command/reply\nReply-Text: {text}\n\n").as_bytes())
    }

    fn event(&self, headers: &[(String, String)], body: Option<&str>) -> bool {
        if !self.wants(headers) {
            return true;
        }
        let mut inner = String::new();
        for (n, v) in headers {
            inner.push_str(&format!("{n}: {}\n", url_encode(v)));
        }
        if let Some(body) = body {
            inner.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
        } else {
            inner.push('\n');
        }
        self.send(
            format!(
                "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
                inner.len()
            )
            .as_bytes(),
        )
    }
}

/// Reads one client command: lines up to an empty line.
fn read_command(reader: &mut impl BufRead) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches('\n').to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            return Some(lines);
        }
        lines.push(line);
    }
}

/// The headers every event starts with (transcript order).
fn event_head(state: &State, name: &str, subclass: Option<&str>) -> Vec<(String, String)> {
    let mut h = Vec::new();
    if let Some(sub) = subclass {
        h.push(("Event-Subclass".into(), sub.into()));
        h.push(("Event-Name".into(), "CUSTOM".into()));
    } else {
        h.push(("Event-Name".into(), name.into()));
    }
    let now = chrono::Utc::now();
    for (n, v) in [
        ("Core-UUID", CORE_UUID.to_owned()),
        ("FreeSWITCH-Hostname", "standin".into()),
        ("FreeSWITCH-Switchname", "standin".into()),
        ("FreeSWITCH-IPv4", "127.0.0.1".into()),
        ("FreeSWITCH-IPv6", "::1".into()),
        (
            "Event-Date-Local",
            now.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        (
            "Event-Date-GMT",
            now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ),
        ("Event-Date-Timestamp", now.timestamp_micros().to_string()),
        ("Event-Calling-File", "standin.rs".into()),
        ("Event-Calling-Function", "standin".into()),
        ("Event-Calling-Line-Number", "1".into()),
        (
            "Event-Sequence",
            state.sequence.fetch_add(1, Ordering::AcqRel).to_string(),
        ),
    ] {
        h.push((n.into(), v));
    }
    h
}

/// A channel, as its events describe it.
#[derive(Clone)]
struct ChannelInfo {
    uuid: String,
    name: String,
    direction: &'static str,
    caller: String,
    destination: String,
    variables: Vec<(String, String)>,
}

impl ChannelInfo {
    fn headers(
        &self,
        state_word: &str,
        answer: &str,
        cause: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = vec![
            ("Channel-State".into(), state_word.into()),
            (
                "Channel-Call-State".into(),
                if answer == "answered" {
                    "ACTIVE"
                } else {
                    "DOWN"
                }
                .into(),
            ),
            ("Channel-Name".into(), self.name.clone()),
            ("Unique-ID".into(), self.uuid.clone()),
            ("Call-Direction".into(), self.direction.into()),
            ("Answer-State".into(), answer.into()),
        ];
        if let Some(c) = cause {
            h.push(("Hangup-Cause".into(), c.into()));
        }
        h.extend([
            ("Caller-Caller-ID-Number".into(), self.caller.clone()),
            ("Caller-Destination-Number".into(), self.destination.clone()),
            ("Caller-Unique-ID".into(), self.uuid.clone()),
        ]);
        for (n, v) in &self.variables {
            h.push((format!("variable_{n}"), v.clone()));
        }
        h
    }
}

fn channel_event(
    state: &State,
    w: &Writer,
    name: &str,
    ch: &ChannelInfo,
    answer: &str,
    cause: Option<&str>,
    extra: &[(&str, &str)],
) -> bool {
    let mut h = event_head(state, name, None);
    h.extend(ch.headers("CS_EXECUTE", answer, cause));
    if name == "CHANNEL_HANGUP_COMPLETE" {
        // As the real one: the cause again among the variables.
        if let Some(c) = cause {
            h.push(("variable_hangup_cause".into(), c.into()));
            h.push(("Hangup-Cause".into(), c.into()));
        }
    }
    for (n, v) in extra {
        h.push(((*n).into(), (*v).into()));
    }
    broadcast(state, w, &h, None)
}

/// `CHANNEL_HANGUP` or `CHANNEL_HANGUP_COMPLETE` with its cause.
fn hangup_event(state: &State, w: &Writer, name: &str, ch: &ChannelInfo, cause: &str) -> bool {
    channel_event(state, w, name, ch, "hangup", Some(cause), &[])
}

fn spandsp_event(
    state: &State,
    w: &Writer,
    subclass: &str,
    ch: &ChannelInfo,
    fields: &[(&str, String)],
) -> bool {
    let mut h = event_head(state, "CUSTOM", Some(subclass));
    h.extend(ch.headers("CS_EXECUTE", "answered", None));
    for (n, v) in fields {
        h.push((format!("fax-{n}"), v.clone()));
    }
    broadcast(state, w, &h, None)
}

fn result_fields(o: &FaxOutcome, local: &str, total: u32) -> Vec<(&'static str, String)> {
    vec![
        ("success", if o.code.is_ok() { "1" } else { "0" }.into()),
        ("result-code", o.code.number().to_string()),
        ("result-text", o.code.text().into()),
        ("document-transferred-pages", o.pages.to_string()),
        ("document-total-pages", total.to_string()),
        ("image-resolution", "8040x7700".into()),
        ("image-size", "0".into()),
        ("bad-rows", o.bad_rows.to_string()),
        ("transfer-rate", o.bit_rate.to_string()),
        ("ecm-used", if o.ecm { "on" } else { "off" }.into()),
        ("t38-status", "off".into()),
        ("local-station-id", local.into()),
        ("remote-station-id", o.remote_ident.clone()),
    ]
}

// ---------------------------------------------------------------------------
// Inbound connections (Faxbox drives FreeSWITCH).

fn serve_connection(state: Arc<State>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    state
        .sockets
        .lock()
        .unwrap()
        .push(stream.try_clone().unwrap());
    let writer = Writer::new(stream.try_clone().unwrap(), Some(Vec::new()));
    let mut reader = BufReader::new(stream);
    writer.send(b"Content-Type: auth/request\n\n");
    let Some(auth) = read_command(&mut reader) else {
        return;
    };
    if auth.first().map(String::as_str) != Some(&format!("auth {}", state.password)) {
        // What mod_event_socket does with a wrong password.
        writer.reply("-ERR invalid");
        writer.send(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n");
        let _ = writer.0.lock().unwrap().shutdown(Shutdown::Both);
        return;
    }
    writer.reply("+OK accepted");
    state.logins.fetch_add(1, Ordering::AcqRel);
    state.writers.lock().unwrap().push(writer.clone());
    while let Some(command) = read_command(&mut reader) {
        let first = command[0].clone();
        if let Some(names) = first.strip_prefix("event plain ") {
            writer.subscribe(names);
            writer.reply("+OK event listener enabled plain");
            let inject = state.inject.lock().unwrap().take();
            if let Some((bytes, close)) = inject {
                writer.send(&bytes);
                if close {
                    let _ = writer.0.lock().unwrap().shutdown(Shutdown::Both);
                    return;
                }
            }
        } else if let Some(args) = first.strip_prefix("bgapi originate ") {
            let job = command
                .iter()
                .find_map(|l| l.strip_prefix("Job-UUID: "))
                .map(str::to_owned)
                .unwrap_or_else(faxbox::lines::freeswitch::esl::new_uuid);
            writer.send(format!("Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n").as_bytes());
            state.originates.lock().unwrap().push(first.clone());
            let (state, writer, args) = (state.clone(), writer.clone(), args.to_owned());
            std::thread::spawn(move || originate(&state, &writer, &args, &job));
        } else if let Some(args) = first.strip_prefix("bgapi uuid_kill ") {
            let job = faxbox::lines::freeswitch::esl::new_uuid();
            writer.send(format!("Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n").as_bytes());
            let uuid = args.split_whitespace().next().unwrap_or_default();
            if let Some(flag) = state.live.lock().unwrap().get(uuid) {
                flag.store(true, Ordering::Release);
            }
        } else if let Some(command) = first.strip_prefix("api ") {
            let answer = match command.split_once(' ') {
                Some(("uuid_exists", uuid)) => {
                    state.counters.exists_asked.fetch_add(1, Ordering::AcqRel);
                    state
                        .live
                        .lock()
                        .unwrap()
                        .contains_key(uuid.trim())
                        .to_string()
                }
                // mod_http_cache's API: the local path, or (on a 404 or a
                // refused connection alike) the error of docs/freeswitch.md,
                // transcript 04.
                Some(("http_get", arg)) => {
                    let name = format!("api-{}", state.sequence.fetch_add(1, Ordering::AcqRel));
                    http_get(&state, arg.trim(), &name).map_or_else(
                        || "-ERR http_get Command not found!\n".to_owned(),
                        |p| p.display().to_string(),
                    )
                }
                _ => format!("-ERR {command} Command not found!\n"),
            };
            writer.send(
                format!(
                    "Content-Type: api/response\nContent-Length: {}\n\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
        } else if first == "exit" {
            writer.reply("+OK bye");
            writer.send(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n");
            return;
        } else {
            writer.reply("-ERR command not found");
        }
    }
}

/// One originate as the stand-in's FreeSWITCH parser read it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The command line after `bgapi originate `.
    pub args: String,
    pub originate: Originate,
}

fn originate(state: &State, w: &Writer, args: &str, job: &str) {
    let parsed = parse_originate(args);
    state.parsed.lock().unwrap().push(Parsed {
        args: args.to_owned(),
        originate: parsed.clone(),
    });
    let (vars, dial, app) = match parsed {
        Originate::Call {
            variables,
            dial,
            application,
            ..
        } => (variables, dial, application),
        // What FreeSWITCH answers a "Parse Error!" (docs/freeswitch.md, transcript 00).
        Originate::Refused(_) => {
            return background_job(state, w, job, "-ERR DESTINATION_OUT_OF_ORDER\n");
        }
        Originate::Enterprise(_) => {
            return background_job(state, w, job, "-ERR INJECTED_ENTERPRISE_ORIGINATE\n");
        }
    };
    let var = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let number = dial.rsplit('/').next().unwrap_or_default().to_owned();
    let txfax_arg = app
        .strip_prefix("&txfax(")
        .and_then(|a| a.strip_suffix(')'))
        .expect("&txfax(...)")
        .to_owned();
    let uuid = var("origination_uuid").unwrap_or_else(faxbox::lines::freeswitch::esl::new_uuid);
    let ch = ChannelInfo {
        uuid: uuid.clone(),
        name: format!("sofia/gateway/standin/{number}"),
        direction: "outbound",
        caller: var("origination_caller_id_number").unwrap_or_else(|| "0000000000".into()),
        destination: number.clone(),
        variables: vars.clone(),
    };
    let once = state.once.lock().unwrap().remove(&number);
    let far_end = once
        .or_else(|| state.numbers.lock().unwrap().get(&number).cloned())
        .unwrap_or(FarEnd::Fax);
    let c = &state.counters;
    let now = c.calls_now.fetch_add(1, Ordering::AcqRel) + 1;
    c.max_calls.fetch_max(now, Ordering::AcqRel);
    c.calls.fetch_add(1, Ordering::AcqRel);
    let kill = Arc::new(AtomicBool::new(false));
    state
        .live
        .lock()
        .unwrap()
        .insert(uuid.clone(), kill.clone());
    run_call(
        state,
        w,
        &ch,
        job,
        &far_end,
        &txfax_arg,
        // mod_spandsp URL-decodes what it reads.
        &url_decode(&var("fax_ident").unwrap_or_default()),
        &kill,
    );
    state.live.lock().unwrap().remove(&uuid);
    c.calls_now.fetch_sub(1, Ordering::AcqRel);
}

fn background_job(state: &State, w: &Writer, job: &str, body: &str) {
    let mut h = event_head(state, "BACKGROUND_JOB", None);
    h.push(("Job-UUID".into(), job.into()));
    h.push(("Job-Command".into(), "originate".into()));
    broadcast(state, w, &h, Some(body));
}

/// Sends an event to every logged-in connection that wants it (or to the
/// outbound socket's one connection); connections that fail are dropped.
fn broadcast(state: &State, w: &Writer, headers: &[(String, String)], body: Option<&str>) -> bool {
    let mut writers = state.writers.lock().unwrap();
    if writers.is_empty() {
        return w.event(headers, body);
    }
    writers.retain(|writer| writer.event(headers, body));
    true
}

/// One outgoing call as the transcripts of docs/freeswitch.md show it: a
/// far end that never answers ends it before the answer; otherwise the call
/// is answered, `txfax` runs and the document it names goes with SpanDSP to
/// the simulated far end.
#[allow(clippy::too_many_arguments)]
fn run_call(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    job: &str,
    far_end: &FarEnd,
    txfax_arg: &str,
    ident: &str,
    kill: &AtomicBool,
) {
    channel_event(state, w, "CHANNEL_CREATE", ch, "ringing", None, &[]);
    if refused_before_answer(state, w, ch, job, far_end) {
        return;
    }
    channel_event(state, w, "CHANNEL_ANSWER", ch, "answered", None, &[]);
    background_job(state, w, job, &format!("+OK {}\n", ch.uuid));
    channel_event(
        state,
        w,
        "CHANNEL_EXECUTE",
        ch,
        "answered",
        None,
        &[("Application", "txfax"), ("Application-Data", txfax_arg)],
    );
    let path = txfax_path(state, txfax_arg, &ch.uuid);
    let document = match FaxDocument::open(&path) {
        Ok(d) => d,
        Err(_) if !path.exists() => {
            return end_txfax(
                state,
                w,
                ch,
                "NORMAL_CLEARING",
                None,
                "Cannot send non-existant fax file",
            );
        }
        Err(_) => {
            let o = empty_outcome(faxbox::lines::T30Code::FileError);
            return end_txfax(
                state,
                w,
                ch,
                "NORMAL_CLEARING",
                Some(result_fields(&o, ident, 0)),
                "_none_",
            );
        }
    };
    send_document(state, w, ch, far_end, ident, kill, document);
}

/// The far ends that never answer: busy or unallocated (transcript 16:
/// hangup, hangup complete, then the job's -ERR) and no answer (transcript
/// 17: no HANGUP_COMPLETE before the job's -ERR). True when the call ended
/// here.
fn refused_before_answer(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    job: &str,
    far_end: &FarEnd,
) -> bool {
    let cause = match far_end {
        FarEnd::Busy => "USER_BUSY",
        FarEnd::Unallocated => "UNALLOCATED_NUMBER",
        FarEnd::NoAnswer => {
            std::thread::sleep(Duration::from_millis(50));
            hangup_event(state, w, "CHANNEL_HANGUP", ch, "NO_ANSWER");
            background_job(state, w, job, "-ERR NO_ANSWER\n");
            return true;
        }
        _ => return false,
    };
    hangup_event(state, w, "CHANNEL_HANGUP", ch, cause);
    hangup_event(state, w, "CHANNEL_HANGUP_COMPLETE", ch, cause);
    background_job(state, w, job, &format!("-ERR {cause}\n"));
    true
}

/// The file `txfax` reads: mod_http_cache turns `${http_get(URL)}` into a
/// local path; any other argument is a path on FreeSWITCH's own file system.
fn txfax_path(state: &State, txfax_arg: &str, uuid: &str) -> PathBuf {
    match txfax_arg
        .strip_prefix("${http_get(")
        .and_then(|a| a.strip_suffix(")}"))
    {
        Some(inner) => http_get(state, inner, uuid)
            .unwrap_or_else(|| PathBuf::from("-ERR http_get Command not found!")),
        None => match state.path_root.lock().unwrap().as_ref() {
            Some(root) => root.join(txfax_arg.trim_start_matches('/')),
            None => PathBuf::from(txfax_arg),
        },
    }
}

/// How `txfax` ends: the hang-up with `cause`, SpanDSP's result (when it
/// has one) about 20 ms after it (docs/freeswitch.md), then the
/// application's `response` and the hang-up complete.
fn end_txfax(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    cause: &str,
    result: Option<Vec<(&'static str, String)>>,
    response: &str,
) {
    hangup_event(state, w, "CHANNEL_HANGUP", ch, cause);
    if let Some(fields) = result {
        std::thread::sleep(Duration::from_millis(20));
        spandsp_event(state, w, "spandsp::txfaxresult", ch, &fields);
    }
    channel_event(
        state,
        w,
        "CHANNEL_EXECUTE_COMPLETE",
        ch,
        "hangup",
        Some(cause),
        &[("Application", "txfax"), ("Application-Response", response)],
    );
    hangup_event(state, w, "CHANNEL_HANGUP_COMPLETE", ch, cause);
}

/// Sends `document` with SpanDSP to the far end over a clean wire,
/// reporting the negotiation and each page as mod_spandsp does, until the
/// fax ends, Faxbox kills the channel, the far end hangs up or acts after
/// a page, or 15 minutes pass; then ends `txfax`.
fn send_document(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    far_end: &FarEnd,
    ident: &str,
    kill: &AtomicBool,
    document: FaxDocument,
) {
    let total = document.pages();
    let settings = FaxSettings {
        ident: station_ident(ident),
        ..FaxSettings::default()
    };
    let mut caller =
        FaxSession::new(&ch.uuid, Role::Caller, &Transfer::Send(document), &settings).unwrap();
    let mut far = far_machine(state, ch, far_end);
    let mut wire = Wire::new(LineModel::clean());
    while !caller.is_finished() {
        wire.step(&mut caller, far.terminal());
        for event in caller.take_events() {
            match event {
                FaxEvent::Negotiated(n) => report_tx_negotiation(state, w, ch, ident, &n),
                FaxEvent::PageDone(p) => {
                    report_tx_page(state, w, ch, total, &p);
                    match far_end_after_page(state, w, far_end, p.page, kill) {
                        AfterPage::GoesOn => {}
                        AfterPage::ShutsDown => {
                            let mut o = empty_outcome(faxbox::lines::T30Code::CallDropped);
                            o.pages = p.page;
                            return end_txfax(
                                state,
                                w,
                                ch,
                                "SYSTEM_SHUTDOWN",
                                Some(result_fields(&o, ident, total)),
                                "_none_",
                            );
                        }
                        AfterPage::SocketClosed => return,
                    }
                }
                // FreeSWITCH has no event for the EOP it sends.
                FaxEvent::LastPageSent | FaxEvent::Finished(_) => {}
            }
        }
        // The far end hanging up (docs/freeswitch.md, transcript 14) ends both sides with 49.
        let far_hangs_up = matches!(far_end, FarEnd::DropsAfter(after) if wire.elapsed() >= *after);
        if kill.load(Ordering::Acquire) || far_hangs_up {
            caller.hang_up();
        }
        if wire.elapsed() > Duration::from_secs(900) {
            caller.hang_up();
        }
    }
    let grace = wire.elapsed() + Duration::from_secs(30);
    while !far.terminal().is_finished() && wire.elapsed() < grace {
        wire.step(&mut caller, far.terminal());
    }
    far.terminal().hang_up();
    let outcome = caller
        .outcome()
        .unwrap_or_else(|| empty_outcome(faxbox::lines::T30Code::CallDropped));
    end_txfax(
        state,
        w,
        ch,
        "NORMAL_CLEARING",
        Some(result_fields(&outcome, ident, total)),
        "_none_",
    );
}

/// The simulated far end: a voice that never speaks T.30, or a fax machine
/// that keeps what it receives in `received_dir/<channel uuid>.tif`.
fn far_machine(state: &State, ch: &ChannelInfo, far_end: &FarEnd) -> Box<dyn FarMachine> {
    match far_end {
        FarEnd::NotAFax => Box::new(VoiceAnswer::default()),
        _ => Box::new(
            FaxSession::new(
                &format!("{}-far", ch.uuid),
                Role::Answerer,
                &Transfer::Receive(state.received_dir.join(format!("{}.tif", ch.uuid))),
                &FaxSettings {
                    ident: "5550100".into(),
                    ..FaxSettings::default()
                },
            )
            .unwrap(),
        ),
    }
}

/// The digits, `+` and spaces of an ident: all SpanDSP puts in a TSI or CSI.
fn station_ident(ident: &str) -> String {
    ident
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+' || *c == ' ')
        .collect()
}

fn report_tx_negotiation(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    ident: &str,
    n: &Negotiation,
) {
    let mut fields = negotiation_fields(ident, n);
    fields.push(("document-total-pages", "0".into()));
    spandsp_event(state, w, "spandsp::txfaxnegociateresult", ch, &fields);
}

/// What mod_spandsp tells of phase B, on either side of a call.
fn negotiation_fields(ident: &str, n: &Negotiation) -> Vec<(&'static str, String)> {
    vec![
        ("transfer-rate", n.bit_rate.to_string()),
        ("ecm-used", if n.ecm { "on" } else { "off" }.into()),
        ("t38-status", "off".into()),
        ("local-station-id", ident.into()),
        ("remote-station-id", n.remote_ident.clone()),
    ]
}

fn report_tx_page(state: &State, w: &Writer, ch: &ChannelInfo, total: u32, p: &PageReport) {
    spandsp_event(
        state,
        w,
        "spandsp::txfaxpageresult",
        ch,
        &[
            ("document-transferred-pages", p.page.to_string()),
            ("document-total-pages", total.to_string()),
            (
                "image-resolution",
                format!(
                    "{}x{}",
                    (f64::from(p.x_dpi) / 0.0254).round(),
                    (f64::from(p.y_dpi) / 0.0254).round()
                ),
            ),
            ("bad-rows", p.bad_rows.to_string()),
            ("longest-bad-row-run", p.longest_bad_row_run.to_string()),
        ],
    );
}

/// What the call does once a page is in, by the far end's behaviour.
enum AfterPage {
    GoesOn,
    /// FreeSWITCH shuts down: the call ends with SYSTEM_SHUTDOWN and 49.
    ShutsDown,
    /// FreeSWITCH went away: nothing more is said about this call.
    SocketClosed,
}

fn far_end_after_page(
    state: &State,
    w: &Writer,
    far_end: &FarEnd,
    page: u32,
    kill: &AtomicBool,
) -> AfterPage {
    match far_end {
        FarEnd::WaitsForHangUpAfterFirstPage if page == 1 => {
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !kill.load(Ordering::Acquire) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            AfterPage::GoesOn
        }
        FarEnd::CutsConnectionsMidCall if page == 1 => {
            cut_connections_until_login(state);
            AfterPage::GoesOn
        }
        FarEnd::HoldsAfterFirstPage if page == 1 => {
            hold_until_asked(state);
            AfterPage::GoesOn
        }
        FarEnd::ShutsDown => AfterPage::ShutsDown,
        FarEnd::ClosesSocket => {
            let _ = w.0.lock().unwrap().shutdown(Shutdown::Both);
            AfterPage::SocketClosed
        }
        _ => AfterPage::GoesOn,
    }
}

/// Cuts every event socket connection while the call goes on, and goes on
/// once Faxbox has logged in again (or after 20 s).
fn cut_connections_until_login(state: &State) {
    let logins = state.logins.load(Ordering::Acquire);
    state.cut_connections();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while state.logins.load(Ordering::Acquire) == logins && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Holds the call until someone asks `uuid_exists` (or 60 s pass), counted
/// in `holding` meanwhile.
fn hold_until_asked(state: &State) {
    let asked = state.counters.exists_asked.load(Ordering::Acquire);
    state.counters.holding.fetch_add(1, Ordering::AcqRel);
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while state.counters.exists_asked.load(Ordering::Acquire) == asked
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The follower subscribes right after its question.
    std::thread::sleep(Duration::from_millis(300));
    state.counters.holding.fetch_sub(1, Ordering::AcqRel);
}

fn empty_outcome(code: faxbox::lines::T30Code) -> FaxOutcome {
    FaxOutcome {
        code,
        pages: 0,
        bit_rate: 0,
        ecm: false,
        remote_ident: String::new(),
        bad_rows: 0,
        longest_bad_row_run: 0,
        ecm_retries: 0,
    }
}

trait FarMachine {
    fn terminal(&mut self) -> &mut dyn Terminal;
}

impl FarMachine for FaxSession {
    fn terminal(&mut self) -> &mut dyn Terminal {
        self
    }
}

impl FarMachine for VoiceAnswer {
    fn terminal(&mut self) -> &mut dyn Terminal {
        self
    }
}

/// mod_http_cache's `http_get`: the cached copy of the URL, unless none
/// is cached or `{refresh=true}` asks for a new one.
fn http_get(state: &State, arg: &str, name: &str) -> Option<PathBuf> {
    let (refresh, url) = match arg.strip_prefix("{refresh=true}") {
        Some(url) => (true, url),
        None => (false, arg),
    };
    if !refresh && let Some(cached) = state.cache.lock().unwrap().get(url) {
        return Some(cached.clone());
    }
    let path = fetch(state, url, name)?;
    state
        .cache
        .lock()
        .unwrap()
        .insert(url.to_owned(), path.clone());
    Some(path)
}

/// mod_http_cache's fetch: the file lands in a local cache path.
fn fetch(state: &State, url: &str, uuid: &str) -> Option<PathBuf> {
    let response = ureq::get(url).call();
    match response {
        Ok(mut r) => {
            let bytes = r.body_mut().read_to_vec().ok()?;
            state
                .fetches
                .lock()
                .unwrap()
                .push((url.to_owned(), 200, bytes.len()));
            let path = state.received_dir.join(format!("http_cache-{uuid}.tif"));
            std::fs::write(&path, &bytes).ok()?;
            Some(path)
        }
        Err(ureq::Error::StatusCode(code)) => {
            state
                .fetches
                .lock()
                .unwrap()
                .push((url.to_owned(), code, 0));
            None
        }
        Err(_) => {
            state.fetches.lock().unwrap().push((url.to_owned(), 0, 0));
            None
        }
    }
}

/// Fetches a URL now, as `api http_get` would (for tests of the proxy's
/// lifetime). Returns the HTTP status, 0 when refused.
pub fn http_status(url: &str) -> u16 {
    match ureq::get(url).call() {
        Ok(_) => 200,
        Err(ureq::Error::StatusCode(code)) => code,
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------
// Outbound socket: FreeSWITCH's dialplan `socket` connects to Faxbox.

/// How an incoming call placed by [`place_inbound_call`] went, as the
/// stand-in saw it.
#[derive(Debug)]
pub struct InboundReport {
    pub commands: Vec<Vec<String>>,
    pub rx_path: Option<PathBuf>,
    pub outcome: Option<FaxOutcome>,
    pub hung_up_with: Option<String>,
}

/// Calls Faxbox's outbound-socket server at `target` from `from` to `to`
/// and, when Faxbox executes rxfax, sends `tiff` with SpanDSP.
pub fn place_inbound_call(target: SocketAddr, from: &str, to: &str, tiff: &Path) -> InboundReport {
    place_inbound_call_cut(target, from, to, tiff, None)
}

/// As [`place_inbound_call`], but with `cut_after_page` the channel is
/// gone once that page is in: the caller's hang-up ends the call and no
/// `rxfaxresult` comes (as when FreeSWITCH's channel is destroyed before
/// mod_spandsp reports); the pages SpanDSP wrote stay in the file.
pub fn place_inbound_call_cut(
    target: SocketAddr,
    from: &str,
    to: &str,
    tiff: &Path,
    cut_after_page: Option<u32>,
) -> InboundReport {
    let stream = TcpStream::connect(target).expect("Faxbox's inbound socket accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut call = InboundCall {
        state: State::new("", Path::new(""), 5000),
        // `myevents` sends all of this channel's events.
        w: Writer::new(stream.try_clone().unwrap(), None),
        ch: ChannelInfo {
            uuid: faxbox::lines::freeswitch::esl::new_uuid(),
            name: format!("sofia/external/{to}"),
            direction: "inbound",
            caller: from.to_owned(),
            destination: to.to_owned(),
            variables: vec![],
        },
        caller: Caller {
            tiff,
            ident: from,
            cut_after_page,
        },
        fax_ident: String::new(),
        report: InboundReport {
            commands: vec![],
            rx_path: None,
            outcome: None,
            hung_up_with: None,
        },
    };
    let mut reader = BufReader::new(stream);
    while let Some(command) = read_command(&mut reader) {
        call.report.commands.push(command.clone());
        if call.obey(&command, target).is_break() {
            break;
        }
    }
    call.report
}

/// One incoming call on the outbound socket: the channel, the simulated
/// caller, and what the report has seen so far.
struct InboundCall<'a> {
    state: State,
    w: Writer,
    ch: ChannelInfo,
    caller: Caller<'a>,
    /// What Faxbox set with `set fax_ident=`, URL-decoded as mod_spandsp reads it.
    fax_ident: String,
    report: InboundReport,
}

impl InboundCall<'_> {
    /// Answers one command from Faxbox; `Break` once the call is over.
    fn obey(&mut self, command: &[String], target: SocketAddr) -> ControlFlow<()> {
        let header = |name: &str| {
            command
                .iter()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        match command[0].as_str() {
            "connect" => self.send_channel_data(target),
            "myevents plain" => {
                self.w.reply("+OK Events Enabled");
            }
            f if f.starts_with("event plain") => {
                self.w.reply("+OK event listener enabled plain");
            }
            "linger" => {
                self.w.reply("+OK will linger");
            }
            "sendmsg" => {
                self.w.reply("+OK");
                match header("call-command").as_deref() {
                    Some("execute") => {
                        let app = header("execute-app-name").unwrap_or_default();
                        let arg = header("execute-app-arg").unwrap_or_default();
                        return self.execute(&app, &arg);
                    }
                    Some("hangup") => {
                        let cause =
                            header("hangup-cause").unwrap_or_else(|| "NORMAL_CLEARING".into());
                        self.hang_up(&cause);
                        self.report.hung_up_with = Some(cause);
                        return ControlFlow::Break(());
                    }
                    _ => {}
                }
            }
            _ => {
                self.w.reply("-ERR command not found");
            }
        }
        ControlFlow::Continue(())
    }

    /// Transcript 06: the answer to `connect` is the channel data as one
    /// header block, no Content-Length, values URL-encoded.
    fn send_channel_data(&self, target: SocketAddr) {
        let ch = &self.ch;
        let mut h = event_head(&self.state, "CHANNEL_DATA", None);
        h.extend([
            ("Channel-Direction".into(), "inbound".into()),
            ("Channel-Caller-ID-Number".into(), ch.caller.clone()),
            ("Channel-Destination-Number".into(), ch.destination.clone()),
            ("Channel-Unique-ID".into(), ch.uuid.clone()),
        ]);
        h.extend(ch.headers("CS_EXECUTE", "ringing", None));
        h.push((
            "variable_current_application_data".into(),
            format!("{target} async full"),
        ));
        h.push(("variable_current_application".into(), "socket".into()));
        let mut text = String::new();
        for (n, v) in &h {
            text.push_str(&format!("{n}: {}\n", url_encode(v)));
        }
        text.push_str("Content-Type: command/reply\nReply-Text: %2BOK%0A\nSocket-Mode: async\nControl: full\n\n");
        self.w.send(text.as_bytes());
    }

    /// Runs the dialplan application Faxbox asked for (`answer`, `set`,
    /// `rxfax`) and tells of it as FreeSWITCH does; `Break` when the caller
    /// hung up during `rxfax`.
    fn execute(&mut self, app: &str, arg: &str) -> ControlFlow<()> {
        match app {
            "answer" => {
                self.answered_event("CHANNEL_ANSWER", &[]);
                self.answered_event(
                    "CHANNEL_EXECUTE_COMPLETE",
                    &[
                        ("Application", "answer"),
                        ("Application-Response", "_none_"),
                    ],
                );
            }
            "set" => {
                if let Some((k, v)) = arg.split_once('=') {
                    if k == "fax_ident" {
                        self.fax_ident = url_decode(v);
                    }
                    self.ch.variables.push((k.to_owned(), v.to_owned()));
                }
                self.answered_event(
                    "CHANNEL_EXECUTE_COMPLETE",
                    &[("Application", "set"), ("Application-Response", "_none_")],
                );
            }
            "rxfax" => {
                let path = PathBuf::from(arg);
                self.report.rx_path = Some(path.clone());
                self.answered_event(
                    "CHANNEL_EXECUTE",
                    &[("Application", "rxfax"), ("Application-Data", arg)],
                );
                let received = receive(
                    &self.state,
                    &self.w,
                    &self.ch,
                    &self.caller,
                    &path,
                    &self.fax_ident,
                );
                let Some(outcome) = received else {
                    self.hang_up("NORMAL_CLEARING");
                    return ControlFlow::Break(());
                };
                self.report.outcome = Some(outcome);
                self.answered_event(
                    "CHANNEL_EXECUTE_COMPLETE",
                    &[("Application", "rxfax"), ("Application-Response", "_none_")],
                );
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn answered_event(&self, name: &str, extra: &[(&str, &str)]) {
        channel_event(
            &self.state,
            &self.w,
            name,
            &self.ch,
            "answered",
            None,
            extra,
        );
    }

    /// The channel hangs up with `cause`; the socket lingers and says so.
    fn hang_up(&self, cause: &str) {
        for name in ["CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"] {
            hangup_event(&self.state, &self.w, name, &self.ch, cause);
        }
        self.w.send(format!("Content-Type: text/disconnect-notice\nControlled-Session-UUID: {}\nContent-Disposition: linger\nChannel-Name: {}\nLinger-Time: -1\nContent-Length: 0\n\n", self.ch.uuid, self.ch.name).as_bytes());
    }
}

/// The simulated caller of an incoming call: what it sends, its ident,
/// and the page after which it hangs up (if it does).
#[derive(Clone, Copy)]
struct Caller<'a> {
    tiff: &'a Path,
    ident: &'a str,
    cut_after_page: Option<u32>,
}

/// The receiving side of an incoming call: `tiff` sent by a simulated
/// caller, received by SpanDSP into `path`, with rx events. `None` when
/// the call was cut after `cut_after_page` (no result event).
fn receive(
    state: &State,
    w: &Writer,
    ch: &ChannelInfo,
    caller: &Caller,
    path: &Path,
    ident: &str,
) -> Option<FaxOutcome> {
    let Caller {
        tiff,
        ident: caller_ident,
        cut_after_page,
    } = *caller;
    let document = FaxDocument::open(tiff).unwrap();
    let mut sender = FaxSession::new(
        &format!("{}-caller", ch.uuid),
        Role::Caller,
        &Transfer::Send(document),
        &FaxSettings {
            ident: caller_ident.into(),
            ..FaxSettings::default()
        },
    )
    .unwrap();
    let mut receiver = FaxSession::new(
        &ch.uuid,
        Role::Answerer,
        &Transfer::Receive(path.to_owned()),
        &FaxSettings {
            ident: station_ident(ident),
            ..FaxSettings::default()
        },
    )
    .unwrap();
    let mut wire = Wire::new(LineModel::clean());
    while !receiver.is_finished() {
        wire.step(&mut sender, &mut receiver);
        for event in receiver.take_events() {
            match event {
                FaxEvent::Negotiated(n) => {
                    spandsp_event(
                        state,
                        w,
                        "spandsp::rxfaxnegociateresult",
                        ch,
                        &negotiation_fields(ident, &n),
                    );
                }
                FaxEvent::PageDone(p) => {
                    spandsp_event(
                        state,
                        w,
                        "spandsp::rxfaxpageresult",
                        ch,
                        &[
                            ("document-transferred-pages", p.page.to_string()),
                            ("image-resolution", "8040x7700".into()),
                            ("bad-rows", p.bad_rows.to_string()),
                            ("longest-bad-row-run", p.longest_bad_row_run.to_string()),
                        ],
                    );
                    if cut_after_page == Some(p.page) {
                        return None;
                    }
                }
                // FreeSWITCH has no event for the EOP it sends.
                FaxEvent::LastPageSent | FaxEvent::Finished(_) => {}
            }
        }
        if wire.elapsed() > Duration::from_secs(900) {
            receiver.hang_up();
        }
    }
    let outcome = receiver
        .outcome()
        .unwrap_or_else(|| empty_outcome(faxbox::lines::T30Code::CallDropped));
    spandsp_event(
        state,
        w,
        "spandsp::rxfaxresult",
        ch,
        &result_fields(&outcome, ident, outcome.pages),
    );
    Some(outcome)
}

#[test]
fn standin_encoding_matches_the_transcripts() {
    // Values from docs/freeswitch.md, transcript 16, encoded by the stand-in as FreeSWITCH did.
    assert_eq!(
        url_encode("{fax_ident=TX-BUSY}loopback/busy/default &txfax(/srv/fs/test.tif)"),
        "%7Bfax_ident%3DTX-BUSY%7Dloopback/busy/default%20%26txfax(/srv/fs/test.tif)"
    );
    assert_eq!(
        url_encode("spandsp::txfaxresult"),
        "spandsp%3A%3Atxfaxresult"
    );
    assert_eq!(url_decode("Thu,%2026%20Nov"), "Thu, 26 Nov");
}
