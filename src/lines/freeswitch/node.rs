//! One FreeSWITCH node: an Event Socket connection kept open by its own
//! thread, reconnecting with backoff, and the calls that run on it.
//!
//! The thread logs in, subscribes to the events fax calls need, then reads
//! messages: command replies go to the command waiting for them (FreeSWITCH
//! answers commands in order), events to the call whose channel or
//! background job they name. When the connection is lost every call on it is
//! told ([`Signal::Lost`]) and the node counts as down (no channels) until
//! it is back.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::esl::{EslError, Event, FrameReader, Headers, Message};
use crate::config::FreeSwitchNode;

/// The events an outbound fax call needs; `CUSTOM` and its subclasses last,
/// since every word after `CUSTOM` is read as a subclass (docs/freeswitch.md).
pub const SUBSCRIPTION: &str = "event plain BACKGROUND_JOB CHANNEL_ANSWER \
    CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CUSTOM \
    spandsp::txfaxresult spandsp::txfaxpageresult spandsp::txfaxnegociateresult";

/// How long a command may wait for its reply before the connection is
/// taken for dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reconnect delays: doubled after each failure, reset by a login.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            // A FreeSWITCH that restarts is back within seconds; a long
            // backoff would keep the line down well after it (issue 25).
            max: Duration::from_secs(5),
        }
    }
}

/// What a call hears from its node.
#[derive(Debug)]
pub enum Signal {
    Event(Box<Event>),
    /// The connection dropped; the call's fate is unknown here.
    Lost(String),
}

/// FreeSWITCH's answer to one command: a `command/reply` or, for `api`, an
/// `api/response` body. It answers in the order the commands were sent.
#[derive(Debug)]
enum Reply {
    Command(Headers),
    Api(String),
}

type ReplySlot = Sender<Result<Reply, EslError>>;

#[derive(Default)]
struct Connection {
    writer: Option<TcpStream>,
    /// Commands sent and not yet answered, oldest first.
    waiting: VecDeque<ReplySlot>,
}

pub struct Node {
    config: FreeSwitchNode,
    connected: AtomicBool,
    in_flight: AtomicU32,
    connection: Mutex<Connection>,
    /// Calls by channel UUID and by Job-UUID.
    calls: Mutex<HashMap<String, Sender<Signal>>>,
    stopping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Why the last connection attempt or connection failed (kept after a
    /// reconnect, for the status page).
    last_error: Mutex<Option<String>>,
}

impl Node {
    /// Starts the node's connection thread.
    pub fn start(config: FreeSwitchNode, backoff: Backoff) -> std::io::Result<Arc<Node>> {
        let node = Arc::new(Node {
            config,
            connected: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            connection: Mutex::default(),
            calls: Mutex::default(),
            stopping: AtomicBool::new(false),
            thread: Mutex::new(None),
            last_error: Mutex::new(None),
        });
        let runner = node.clone();
        let handle = std::thread::Builder::new()
            .name(format!("esl-{}", node.config.esl))
            .spawn(move || runner.keep_connected(backoff))?;
        *lock(&node.thread) = Some(handle);
        Ok(node)
    }

    pub fn address(&self) -> &str {
        &self.config.esl
    }

    pub fn is_up(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn channels(&self) -> u32 {
        self.config.channels
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// Takes one of this node's channels, if it is up and has one free.
    pub fn claim(self: &Arc<Self>) -> Option<ChannelClaim> {
        if !self.is_up() {
            return None;
        }
        let limit = self.config.channels;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(ChannelClaim(self.clone()))
    }

    /// Routes this node's events for `keys` (channel UUID, Job-UUID) to the
    /// returned receiver until [`Node::forget`].
    pub fn follow(&self, keys: &[&str]) -> Receiver<Signal> {
        let (tx, rx) = mpsc::channel();
        let mut calls = lock(&self.calls);
        for key in keys {
            calls.insert((*key).to_owned(), tx.clone());
        }
        rx
    }

    pub fn forget(&self, keys: &[&str]) {
        let mut calls = lock(&self.calls);
        for key in keys {
            calls.remove(*key);
        }
    }

    /// Sends one command (`text` without the final blank line) and waits for
    /// its reply; `-ERR` replies are errors.
    pub fn command(&self, text: &str) -> Result<Headers, EslError> {
        let reply = match self.exchange(text)? {
            Reply::Command(headers) => headers,
            Reply::Api(body) => {
                return Err(EslError::BadEvent(format!(
                    "FreeSWITCH answered a command with an api response: {body:?}"
                )));
            }
        };
        let first_line = text.lines().next().unwrap_or_default();
        match reply.get("Reply-Text") {
            Some(t) if t.starts_with("-ERR") => Err(EslError::CommandFailed {
                command: first_line.chars().take(60).collect(),
                reply: t.to_owned(),
            }),
            _ => Ok(reply),
        }
    }

    /// Runs `api <text>` and returns FreeSWITCH's answer (`true`, `+OK ...`,
    /// `-ERR ...`: the caller reads it).
    pub fn api(&self, text: &str) -> Result<String, EslError> {
        match self.exchange(&format!("api {text}"))? {
            Reply::Api(body) => Ok(body),
            Reply::Command(headers) => Err(EslError::CommandFailed {
                command: format!("api {text}").chars().take(60).collect(),
                reply: headers
                    .get("Reply-Text")
                    .unwrap_or("(no Reply-Text)")
                    .to_owned(),
            }),
        }
    }

    /// Whether FreeSWITCH still has the channel `uuid` (`uuid_exists`).
    pub fn channel_exists(&self, uuid: &str) -> Result<bool, EslError> {
        let answer = self.api(&format!("uuid_exists {uuid}"))?;
        match answer.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(EslError::BadEvent(format!(
                "FreeSWITCH answered uuid_exists with {other:?}"
            ))),
        }
    }

    /// Waits until the node is connected again, at most `within`; false if
    /// it is not (or the node is stopping).
    pub fn wait_up(&self, within: Duration) -> bool {
        let until = std::time::Instant::now() + within;
        while !self.is_up() {
            if self.stopping.load(Ordering::Acquire) || std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Takes a channel for a call FreeSWITCH already has (found again after
    /// a reconnect or a restart of Faxbox): counted even beyond the limit,
    /// since the call is there whether or not there is room.
    pub fn claim_existing(self: &Arc<Self>) -> ChannelClaim {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ChannelClaim(self.clone())
    }

    /// Writes a command and waits for FreeSWITCH's answer to it.
    fn exchange(&self, text: &str) -> Result<Reply, EslError> {
        let (tx, rx) = mpsc::channel();
        {
            let mut connection = lock(&self.connection);
            let writer = connection.writer.as_mut().ok_or(EslError::Closed)?;
            writer
                .write_all(format!("{text}\n\n").as_bytes())
                .map_err(|e| EslError::Io(e.to_string()))?;
            connection.waiting.push_back(tx);
        }
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(reply) => reply,
            Err(_) => {
                // No answer in time: the connection is not usable.
                self.drop_connection();
                Err(EslError::Io(format!(
                    "FreeSWITCH at {} did not answer within {REPLY_TIMEOUT:?}",
                    self.config.esl
                )))
            }
        }
    }

    /// Closes the connection (the thread then reconnects, unless stopping).
    pub fn drop_connection(&self) {
        if let Some(w) = lock(&self.connection).writer.as_ref() {
            let _ = w.shutdown(Shutdown::Both);
        }
    }

    /// Ends the connection thread for good.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.drop_connection();
        if let Some(handle) = lock(&self.thread).take() {
            let _ = handle.join();
        }
    }

    fn keep_connected(self: Arc<Self>, backoff: Backoff) {
        let mut delay = backoff.first;
        while !self.stopping.load(Ordering::Acquire) {
            let mut logged_in = false;
            let error = match self.session(&mut logged_in) {
                Ok(()) => "FreeSWITCH ended the session".to_owned(),
                Err(e) => e.to_string(),
            };
            self.connected.store(false, Ordering::Release);
            self.lose_everything(&error);
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            // A connection that had logged in starts the backoff again; the
            // log names the delay actually waited (issue 25 item 6).
            if logged_in {
                delay = backoff.first;
            }
            warn!(node = %self.config.esl, "FreeSWITCH event socket: {error}; reconnecting in {delay:?}");
            *lock(&self.last_error) = Some(error);
            let until = std::time::Instant::now() + delay;
            while !self.stopping.load(Ordering::Acquire) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !logged_in {
                delay = (delay * 2).min(backoff.max);
            }
        }
    }

    /// Everything waiting on the connection learns it is gone.
    fn lose_everything(&self, why: &str) {
        let mut connection = lock(&self.connection);
        if let Some(w) = connection.writer.take() {
            let _ = w.shutdown(Shutdown::Both);
        }
        for slot in connection.waiting.drain(..) {
            let _ = slot.send(Err(EslError::Closed));
        }
        drop(connection);
        let calls: Vec<Sender<Signal>> = lock(&self.calls).drain().map(|(_, s)| s).collect();
        for call in calls {
            let _ = call.send(Signal::Lost(why.to_owned()));
        }
    }

    /// One connection, from login to loss.
    fn session(&self, logged_in: &mut bool) -> Result<(), EslError> {
        let address = self
            .config
            .esl
            .to_socket_addrs()
            .map_err(|e| EslError::Io(format!("cannot resolve {}: {e}", self.config.esl)))?
            .next()
            .ok_or_else(|| EslError::Io(format!("{} has no address", self.config.esl)))?;
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|e| EslError::Io(format!("cannot connect to {}: {e}", self.config.esl)))?;
        let _ = stream.set_nodelay(true);
        let mut writer = stream
            .try_clone()
            .map_err(|e| EslError::Io(e.to_string()))?;
        {
            // `stop` may come while connecting: let it reach this socket.
            let mut connection = lock(&self.connection);
            if self.stopping.load(Ordering::Acquire) {
                return Ok(());
            }
            connection.writer = Some(
                stream
                    .try_clone()
                    .map_err(|e| EslError::Io(e.to_string()))?,
            );
        }
        let mut reader = FrameReader::new(stream);
        // Login and subscription, before any call may use the connection.
        stream_login(&mut reader, &mut writer, &self.config.password)?;
        write_command(&mut writer, SUBSCRIPTION)?;
        expect_ok(&mut reader, "event plain ...")?;
        *logged_in = true;
        self.connected.store(true, Ordering::Release);
        info!(node = %self.config.esl, channels = self.config.channels, "connected to FreeSWITCH");
        loop {
            match reader.read_message()? {
                Message::CommandReply(headers) => self.answer(Reply::Command(headers)),
                Message::ApiResponse(body) => self.answer(Reply::Api(body)),
                Message::Event(event) => self.route(event),
                Message::Disconnect(text) => {
                    return Err(EslError::Io(format!(
                        "FreeSWITCH closed the connection: {}",
                        text.trim()
                    )));
                }
                Message::AuthRequest => {
                    return Err(EslError::BadEvent(
                        "FreeSWITCH asked for the password again mid-session".into(),
                    ));
                }
            }
        }
    }

    /// Hands a reply to the oldest command waiting for one.
    fn answer(&self, reply: Reply) {
        let slot = lock(&self.connection).waiting.pop_front();
        match slot {
            Some(slot) => drop(slot.send(Ok(reply))),
            None => debug!(node = %self.config.esl, "a reply nobody waited for: {reply:?}"),
        }
    }

    fn route(&self, event: Event) {
        let key = if event.name() == "BACKGROUND_JOB" {
            event.get("Job-UUID")
        } else {
            event.unique_id()
        };
        let target = key.and_then(|k| lock(&self.calls).get(k).cloned());
        match target {
            Some(call) => drop(call.send(Signal::Event(Box::new(event)))),
            // Other channels on a shared FreeSWITCH, events of calls already
            // ended, names we did not ask for: none is ours.
            None => {
                debug!(node = %self.config.esl, event = event.name(), "an event for no call of ours")
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
    }
}

/// One channel of a node, given back when dropped.
pub struct ChannelClaim(Arc<Node>);

impl ChannelClaim {
    pub fn node(&self) -> &Arc<Node> {
        &self.0
    }
}

impl Drop for ChannelClaim {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn write_command(writer: &mut TcpStream, text: &str) -> Result<(), EslError> {
    writer
        .write_all(format!("{text}\n\n").as_bytes())
        .map_err(|e| EslError::Io(e.to_string()))
}

fn expect_ok<R: std::io::Read>(
    reader: &mut FrameReader<R>,
    command: &str,
) -> Result<Headers, EslError> {
    match reader.read_message()? {
        Message::CommandReply(h) if h.get("Reply-Text").is_some_and(|t| t.starts_with("+OK")) => {
            Ok(h)
        }
        Message::CommandReply(h) => Err(EslError::CommandFailed {
            command: command.to_owned(),
            reply: h.get("Reply-Text").unwrap_or("(no Reply-Text)").to_owned(),
        }),
        other => Err(EslError::BadEvent(format!(
            "expected the reply to {command:?}, got {}",
            describe(&other)
        ))),
    }
}

/// `auth/request` -> `auth <password>` -> `+OK accepted`.
pub fn stream_login<R: std::io::Read>(
    reader: &mut FrameReader<R>,
    writer: &mut TcpStream,
    password: &str,
) -> Result<(), EslError> {
    match reader.read_message()? {
        Message::AuthRequest => {}
        other => {
            return Err(EslError::BadEvent(format!(
                "expected FreeSWITCH to ask for the password, got {}",
                describe(&other)
            )));
        }
    }
    write_command(writer, &format!("auth {password}"))?;
    match reader.read_message()? {
        Message::CommandReply(h) if h.get("Reply-Text").is_some_and(|t| t.starts_with("+OK")) => {
            Ok(())
        }
        Message::CommandReply(h) => Err(EslError::AuthRefused(
            h.get("Reply-Text").unwrap_or("no reason given").to_owned(),
        )),
        other => Err(EslError::BadEvent(format!(
            "expected the answer to the password, got {}",
            describe(&other)
        ))),
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::AuthRequest => "a password request".into(),
        Message::CommandReply(h) => format!("the reply {:?}", h.get("Reply-Text").unwrap_or("")),
        Message::ApiResponse(b) => format!("an api response {:?}", b.trim()),
        Message::Event(e) => format!("a {} event", e.name()),
        Message::Disconnect(_) => "a disconnect notice".into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
