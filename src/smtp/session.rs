//! One SMTP conversation on its own thread: reading lines (with an idle
//! timeout and a line-length bound), feeding them to mailin's state
//! machine, and the parts Faxbox answers itself: Kazoo's greeting and
//! replies (docs/kazoo.md 6.1), `SIZE` in EHLO and on `MAIL FROM`, STARTTLS,
//! and SMTP AUTH against Faxbox users.
//!
//! SMTP AUTH: the user name is a Faxbox user's email address and the
//! password an API key of that user's account. It is offered over TLS, or
//! in the clear only to a client on this machine (a local relay).

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mailin::{Action, Handler, Response, SessionBuilder};
use tracing::{debug, warn};

use super::Shared;
use super::deliver::{self, Submission};
use super::resolve::{self, Refusal, Target};

/// Longest command or text line read at once. RFC 5321 allows 1000; longer
/// text lines are passed on in pieces, longer commands are a syntax error.
const MAX_LINE: u64 = 64 * 1024;

/// Recipients in one message, whatever their accounts allow: the highest
/// `max_recipients_per_fax` there can be. Within it, each account's
/// setting applies (RFC 5321 4.5.3.1.8 asks for at least 100; an account
/// may set fewer, and the client sends the rest later after the 452).
const MAX_RECIPIENTS: usize = 1000;

/// Longest a whole session may last. Each line must also arrive within
/// `smtp_idle_timeout_s` (not merely each byte: a client trickling a byte
/// every few seconds held a session for ever, issue 18); this bounds a
/// client that keeps sending commands that lead nowhere.
const MAX_SESSION: Duration = Duration::from_secs(30 * 60);

/// What mailin is given in place of every MAIL and RCPT path. Faxbox reads
/// the path itself (`parse_path`), since mailin's parser takes neither the
/// null reverse-path `<>` nor a quoted local part with spaces.
/// How long a client may take to answer an AUTH prompt.
const AUTH_ANSWER_TIME: Duration = Duration::from_secs(60);

const PATH_PLACEHOLDER: &str = "path@faxbox.invalid";

/// Answers a connection that will not get a session, and closes it.
pub(super) fn refuse(mut stream: TcpStream, reply: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// The connection, before and after STARTTLS.
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    /// Only while the stream is handed from plain to TLS.
    Closed,
}

impl Wire {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.set_read_timeout(Some(timeout)),
            Wire::Tls(s) => s.sock.set_read_timeout(Some(timeout)),
            Wire::Closed => Ok(()),
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
            Wire::Closed => Ok(0),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
            Wire::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
            Wire::Closed => Ok(()),
        }
    }
}

/// What the conversation loop and the handler both see.
#[derive(Default)]
struct Conversation {
    /// The user logged in with SMTP AUTH (their address, lower-cased).
    authenticated: Option<String>,
    /// The reply to the end of DATA. mailin is always told 250, so that its
    /// state machine ends the transaction either way (it would otherwise
    /// stay in DATA after a refusal); this is what the client is sent.
    data_reply: Option<String>,
    /// The path of the MAIL or RCPT command being processed, as Faxbox read
    /// it (mailin is handed a placeholder).
    path: Option<String>,
}

/// The mail transaction being built (MAIL, RCPT..., DATA).
#[derive(Default)]
struct Transaction {
    sender: String,
    targets: Vec<Target>,
    message: Vec<u8>,
    too_big: bool,
    limit: usize,
}

/// mailin's handler: the decisions on MAIL, RCPT and DATA.
struct Intake {
    shared: Arc<Shared>,
    conv: Rc<RefCell<Conversation>>,
    txn: Transaction,
}

fn reply(code: u16, text: impl Into<String>) -> Response {
    Response::custom(code, text.into())
}

impl Handler for Intake {
    fn mail(&mut self, ip: IpAddr, _domain: &str, from: &str) -> Response {
        let store = &self.shared.ctx.store;
        // Empty for the null reverse-path `<>` (RFC 5321 4.5.5: bounces and
        // delivery reports); such mail is never answered with a report.
        let path = self.conv.borrow_mut().path.take();
        let sender = path.as_deref().unwrap_or(from).trim().to_lowercase();
        let trusted = self.shared.ctx.options.is_trusted_relay(ip);
        let (required, limit) = match (
            store.setting_bool(None, "smtp_require_auth"),
            store.setting_i64(None, "smtp_max_msg_size"),
        ) {
            (Ok(r), Ok(l)) => (r, l.max(0) as usize),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot read the SMTP settings");
                return reply(451, "Temporary local problem, try again later");
            }
        };
        self.txn = Transaction {
            sender: sender.clone(),
            limit,
            ..Transaction::default()
        };
        match &self.conv.borrow().authenticated {
            None if required && !trusted => {
                return reply(530, "Authentication required: log in with SMTP AUTH first");
            }
            Some(user) if *user != sender && !sender.is_empty() => {
                return reply(
                    553,
                    format!("You are logged in as {user}; send from that address, not {sender}"),
                );
            }
            _ => {}
        }
        reply(250, "sender Ok")
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let path = self.conv.borrow_mut().path.take();
        let recipient = path.as_deref().unwrap_or(to).trim().to_lowercase();
        if self.txn.targets.len() >= MAX_RECIPIENTS {
            return reply(
                452,
                format!("Too many recipients: at most {MAX_RECIPIENTS} fax numbers per email"),
            );
        }
        let ctx = &self.shared.ctx;
        match resolve::resolve(&ctx.store, &self.txn.sender, &recipient) {
            Ok(target) => {
                // The same number through the same faxbox twice is one fax.
                if self
                    .txn
                    .targets
                    .iter()
                    .any(|t| t.faxbox.id == target.faxbox.id && t.number == target.number)
                {
                    return reply(250, "recipient Ok");
                }
                let account = &target.faxbox.account_id;
                let limit = match ctx
                    .store
                    .setting_i64(Some(account), "max_recipients_per_fax")
                {
                    Ok(n) => n.max(1) as usize,
                    Err(e) => {
                        warn!(error = %e, "cannot read max_recipients_per_fax");
                        return reply(451, "Temporary local problem, try again later");
                    }
                };
                let of_account = self
                    .txn
                    .targets
                    .iter()
                    .filter(|t| &t.faxbox.account_id == account)
                    .count();
                if of_account >= limit {
                    // RFC 5321 4.5.3.1.10: the client sends the rest later.
                    return reply(
                        452,
                        format!(
                            "Too many recipients: one email may fax to at most {limit} numbers \
                             (max_recipients_per_fax); send the others in another email"
                        ),
                    );
                }
                self.txn.targets.push(target);
                reply(250, "recipient Ok")
            }
            Err(Refusal::Store(e)) => {
                warn!(error = %e, "cannot look up an SMTP recipient");
                reply(451, "Cannot look up the faxbox now, try again later")
            }
            Err(refusal) => {
                let text = match &refusal {
                    Refusal::NotFound { reason, .. } => format!("Not Found: {reason}"),
                    Refusal::NotAllowed { reason, .. } => format!("not allowed: {reason}"),
                    Refusal::Store(_) => unreachable!("handled above"),
                };
                deliver::log_refusal(ctx, &self.txn.sender, &recipient, refusal);
                reply(554, text)
            }
        }
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        let txn = &mut self.txn;
        if txn.too_big {
            return Ok(());
        }
        if txn.message.len() + buf.len() > txn.limit {
            // Keep reading to the end of DATA, keep nothing: 552 then.
            txn.too_big = true;
            txn.message = Vec::new();
        } else {
            txn.message.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let txn = std::mem::take(&mut self.txn);
        let answer = deliver::deliver(
            &self.shared.ctx,
            Submission {
                sender: txn.sender,
                targets: txn.targets,
                message: txn.message,
                too_big: txn.too_big,
                limit: txn.limit,
            },
        );
        self.conv.borrow_mut().data_reply = Some(answer);
        mailin::response::OK
    }
}

/// Runs one conversation to its end.
pub(super) fn run(stream: TcpStream, shared: &Arc<Shared>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Err(e) = converse(stream, shared, peer) {
        debug!(%peer, error = %e, "SMTP session ended");
    }
}

fn send(io: &mut BufReader<Wire>, text: &str) -> io::Result<()> {
    let wire = io.get_mut();
    wire.write_all(text.as_bytes())?;
    wire.flush()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The SMTP verbs mailin knows; any other gets Kazoo's "not recognized".
const VERBS: &[&str] = &[
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT", "VRFY", "NOOP", "STARTTLS", "AUTH",
];

/// One conversation's state between lines.
struct Talk {
    io: BufReader<Wire>,
    session: mailin::Session<Intake>,
    conv: Rc<RefCell<Conversation>>,
    shared: Arc<Shared>,
    host: String,
    peer: IpAddr,
    /// Between DATA's 354 and the final dot.
    in_data: bool,
    /// Whether the last DATA line ended in CRLF (or was the DATA command):
    /// only then can a dot line end the message.
    after_crlf: bool,
    tls_active: bool,
}

/// What happens after a line.
enum Next {
    Go,
    Close,
}

fn converse(stream: TcpStream, shared: &Arc<Shared>, peer: IpAddr) -> io::Result<()> {
    let idle = shared.ctx.store.system_limit("smtp_idle_timeout_s");
    stream.set_read_timeout(Some(Duration::from_secs(idle)))?;
    stream.set_write_timeout(Some(Duration::from_secs(idle.max(30))))?;
    let mut talk = Talk::open(stream, shared, peer)?;
    let mut line = Vec::with_capacity(1024);
    let session_end = Instant::now() + MAX_SESSION;
    loop {
        line.clear();
        let line_deadline = (Instant::now() + Duration::from_secs(idle)).min(session_end);
        match read_line(&mut talk.io, &mut line, line_deadline) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                let timeout = format!("421 {} Error: timeout exceeded\r\n", talk.host);
                let _ = send(&mut talk.io, &timeout);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        // Bare LF line ends are common from scripts; mailin wants CRLF.
        let bare_lf = line.ends_with(b"\n") && !line.ends_with(b"\r\n");
        if bare_lf {
            line.insert(line.len() - 1, b'\r');
        }
        let next = if talk.in_data {
            talk.data_line(&mut line, bare_lf)?
        } else {
            talk.command(&mut line)?
        };
        if let Next::Close = next {
            return Ok(());
        }
    }
}

impl Talk {
    /// The session, greeted with Kazoo's words (docs/kazoo.md 6.1) in
    /// Faxbox's name.
    fn open(stream: TcpStream, shared: &Arc<Shared>, peer: IpAddr) -> io::Result<Talk> {
        let host = shared.ctx.options.hostname.clone();
        let mut builder = SessionBuilder::new(host.clone());
        if shared.ctx.options.tls.is_some() {
            builder.enable_start_tls();
        }
        let conv = Rc::new(RefCell::new(Conversation::default()));
        let session = builder.build(
            peer,
            Intake {
                shared: shared.clone(),
                conv: conv.clone(),
                txn: Transaction::default(),
            },
        );
        let mut io = BufReader::new(Wire::Plain(stream));
        send(
            &mut io,
            &format!("220 {host} Faxbox Email to Fax Server\r\n"),
        )?;
        Ok(Talk {
            io,
            session,
            conv,
            shared: shared.clone(),
            host,
            peer,
            in_data: false,
            after_crlf: true,
            tls_active: false,
        })
    }

    /// A line of the message. DATA ends only at <CRLF>.<CRLF> (RFC 5321
    /// 4.1.1.4). A dot line next to a bare LF (<LF>.<LF>, <LF>.<CRLF>,
    /// <CRLF>.<LF>) is message text, as Postfix keeps it: ending the
    /// message there would run the rest as new commands that a relay in
    /// front never saw (SMTP smuggling, issue 18). It is dot-stuffed so
    /// that mailin keeps it as text too.
    fn data_line(&mut self, line: &mut Vec<u8>, bare_lf: bool) -> io::Result<Next> {
        let terminator = line == b".\r\n" && !bare_lf && self.after_crlf;
        self.after_crlf = !bare_lf && line.ends_with(b"\r\n");
        if !terminator && line == b".\r\n" {
            line.insert(0, b'.');
        }
        let res = self.session.process(line);
        if terminator {
            self.in_data = false;
            let answer = self
                .conv
                .borrow_mut()
                .data_reply
                .take()
                .unwrap_or_else(|| format!("{} Transaction failed", res.code));
            send(&mut self.io, &format!("{answer}\r\n"))?;
        }
        Ok(Next::Go)
    }

    /// A command: the verbs Faxbox answers itself or reads first, then
    /// mailin's state machine with Faxbox's wording of some replies.
    fn command(&mut self, line: &mut Vec<u8>) -> io::Result<Next> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            let stopping = format!(
                "421 {} Faxbox is shutting down, try again later\r\n",
                self.host
            );
            send(&mut self.io, &stopping)?;
            return Ok(Next::Close);
        }
        let text = String::from_utf8_lossy(line).into_owned();
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if !self.before_mailin(&verb, &text, line)? {
            return Ok(Next::Go);
        }
        let res = self.session.process(line);
        // A path mailin refused before its handler took it is not kept for
        // the next command.
        self.conv.borrow_mut().path = None;
        let answer = match res.code {
            250 if verb == "EHLO" => self.ehlo(),
            500 if !VERBS.contains(&verb.as_str()) => {
                format!("500 Error: command not recognized : '{verb}'\r\n")
            }
            _ => String::from_utf8_lossy(&res.buffer()?).into_owned(),
        };
        send(&mut self.io, &answer)?;
        match res.action {
            Action::Close => return Ok(Next::Close),
            Action::UpgradeTls => return self.start_tls(),
            _ => {}
        }
        if res.code == 354 {
            self.in_data = true;
            self.after_crlf = true;
        }
        Ok(Next::Go)
    }

    /// Whether SMTP AUTH is offered: over TLS, or in the clear to a client
    /// on this machine.
    fn auth_offered(&self) -> bool {
        self.tls_active || self.peer.is_loopback()
    }

    /// The verbs answered here (false: answered, mailin is not asked), and
    /// MAIL and RCPT, whose paths Faxbox reads itself: `line` is rewritten
    /// for mailin.
    fn before_mailin(&mut self, verb: &str, text: &str, line: &mut Vec<u8>) -> io::Result<bool> {
        let rewritten = match verb {
            // Kazoo's answer at any point of the session (mailin only
            // takes VRFY between transactions).
            "VRFY" => Err("252 VRFY disabled by policy, just send some mail\r\n".to_owned()),
            "AUTH" => {
                let offered = self.auth_offered();
                let (shared, conv) = (self.shared.clone(), self.conv.clone());
                Err(authenticate(
                    &mut self.io,
                    text,
                    &shared,
                    &conv,
                    offered,
                    &self.host,
                )?)
            }
            "MAIL" => {
                let limit = self
                    .shared
                    .ctx
                    .store
                    .setting_i64(None, "smtp_max_msg_size")
                    .unwrap_or(10_485_670)
                    .max(0) as u64;
                mail_command(text, limit).map(Some)
            }
            "RCPT" => rcpt_command(text).map(Some),
            _ => Ok(None),
        };
        match rewritten {
            Ok(Some((path, rewritten))) => {
                self.conv.borrow_mut().path = Some(path);
                *line = rewritten.into_bytes();
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(answer) => {
                send(&mut self.io, &answer)?;
                Ok(false)
            }
        }
    }

    /// EHLO's extensions: SIZE with the current limit, STARTTLS when a
    /// certificate is configured, AUTH where it is offered.
    fn ehlo(&self) -> String {
        let ctx = &self.shared.ctx;
        let limit = ctx
            .store
            .setting_i64(None, "smtp_max_msg_size")
            .unwrap_or(10_485_670);
        let mut lines = vec![
            format!("{} Faxbox", self.host),
            "PIPELINING".to_owned(),
            format!("SIZE {limit}"),
            "8BITMIME".to_owned(),
        ];
        if ctx.options.tls.is_some() && !self.tls_active {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        multiline(250, &lines)
    }

    /// After STARTTLS's 220: the rest of the session is encrypted.
    fn start_tls(&mut self) -> io::Result<Next> {
        let Some(config) = self.shared.ctx.options.tls.clone() else {
            return Ok(Next::Close);
        };
        // Anything pipelined after STARTTLS is dropped (RFC 3207 4.2).
        let placeholder = BufReader::new(Wire::Closed);
        let Wire::Plain(tcp) = std::mem::replace(&mut self.io, placeholder).into_inner() else {
            return Ok(Next::Close);
        };
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        self.io = BufReader::new(Wire::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))));
        self.session.tls_active();
        self.tls_active = true;
        // What was learnt before TLS is forgotten (RFC 3207 4.2).
        self.conv.borrow_mut().authenticated = None;
        Ok(Next::Go)
    }
}

fn multiline(code: u16, lines: &[String]) -> String {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{l}\r\n"));
    }
    out
}

/// Reads one line (up to LF, at most `MAX_LINE` bytes) that must be
/// complete by `deadline`; a client that sends it slower gets a timeout.
/// Returns the bytes read (0 at the end of the connection).
fn read_line(io: &mut BufReader<Wire>, line: &mut Vec<u8>, deadline: Instant) -> io::Result<usize> {
    let start = line.len();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        io.get_ref().set_read_timeout(left)?;
        let available = match io.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(line.len() - start);
        }
        let room = (MAX_LINE as usize).saturating_sub(line.len() - start);
        let (take, done) = match available.iter().take(room).position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len().min(room), available.len() >= room),
        };
        line.extend_from_slice(&available[..take]);
        io.consume(take);
        if done {
            return Ok(line.len() - start);
        }
    }
}

/// The address in an SMTP path (RFC 5321 4.1.2): `<>`, `<a@b>`, a source
/// route `<@relay:a@b>` (ignored, RFC 5321 appendix C), or a quoted local
/// part such as `<"+1 555 000 1234"@fax.example>`, which is unquoted
/// (issue 21: fax numbers written with spaces). Returns the address and
/// what follows the closing `>`.
fn parse_path(text: &str) -> Option<(String, &str)> {
    let rest = text.trim_start().strip_prefix('<')?;
    let mut address = String::new();
    let mut chars = rest.char_indices();
    let mut quoted = false;
    let mut route = rest.starts_with('@');
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => address.push(chars.next()?.1),
            '>' if !quoted => return Some((address, &rest[i + 1..])),
            ':' if route && !quoted => {
                route = false;
                address.clear();
            }
            c if c.is_control() => return None,
            c => address.push(c),
        }
    }
    None
}

/// The path of a `MAIL FROM:` or `RCPT TO:` command and what follows it.
/// `Err` is the reply.
fn command_path<'a>(text: &'a str, verb: &str) -> Result<(String, &'a str), String> {
    let keyword = if verb == "MAIL" { "FROM" } else { "TO" };
    let after_verb = text.trim_end().get(verb.len()..).unwrap_or("").trim_start();
    let path = after_verb
        .split_once(':')
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(keyword))
        .map(|(_, path)| path);
    let Some(path) = path else {
        return Err(format!(
            "501 Syntax error: expected {verb} {keyword}:<address>\r\n"
        ));
    };
    parse_path(path).ok_or_else(|| {
        format!(
            "501 Syntax error in the address of {verb} {keyword}: write it in angle brackets, \
             with any spaces inside double quotes (<\"+1 555 000 1234\"@fax.example>)\r\n"
        )
    })
}

/// `MAIL FROM:<path> [params]`: checks `SIZE=` against the limit (Kazoo's
/// 552 text), keeps `BODY=`, drops `AUTH=`, refuses the rest (555).
/// Returns the reverse-path (empty for `<>`) and the command for mailin.
fn mail_command(text: &str, limit: u64) -> Result<(String, String), String> {
    let (path, params) = command_path(text, "MAIL")?;
    let mut out = format!("MAIL FROM:<{PATH_PLACEHOLDER}>");
    for p in params.split_whitespace() {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("501 Syntax error in parameter {p}\r\n"))?;
                if n > limit {
                    return Err(format!(
                        "552 Estimated message length {n} exceeds limit of {limit}\r\n"
                    ));
                }
            }
            "BODY" => {
                out.push(' ');
                out.push_str(p);
            }
            // RFC 4954's AUTH=<mailbox>: informational only.
            "AUTH" => {}
            _ => return Err(format!("555 Unsupported option: {p}\r\n")),
        }
    }
    out.push_str("\r\n");
    Ok((path, out))
}

/// `RCPT TO:<path>`: the forward-path and the command for mailin.
fn rcpt_command(text: &str) -> Result<(String, String), String> {
    let (path, params) = command_path(text, "RCPT")?;
    if let Some(p) = params.split_whitespace().next() {
        return Err(format!("555 Unsupported option: {p}\r\n"));
    }
    if path.is_empty() {
        return Err("501 Syntax error: RCPT TO:<> names no recipient\r\n".into());
    }
    Ok((path, format!("RCPT TO:<{PATH_PLACEHOLDER}>\r\n")))
}

/// SMTP AUTH PLAIN and LOGIN (RFC 4954), with the continuation lines read
/// here. Returns the final reply.
fn authenticate(
    io: &mut BufReader<Wire>,
    text: &str,
    shared: &Arc<Shared>,
    conv: &Rc<RefCell<Conversation>>,
    offered: bool,
    host: &str,
) -> io::Result<String> {
    if !offered {
        return Ok(if shared.ctx.options.tls.is_some() {
            "538 Encryption required: use STARTTLS before AUTH\r\n".to_owned()
        } else {
            format!("502 AUTH is not offered: {host} has no TLS certificate configured\r\n")
        });
    }
    if conv.borrow().authenticated.is_some() {
        return Ok("503 Already authenticated\r\n".to_owned());
    }
    let mut words = text.split_whitespace().skip(1);
    let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    // One continuation line, base64; "*" cancels (RFC 4954 4).
    let mut ask = |prompt: &str| -> io::Result<Option<Vec<u8>>> {
        send(io, &format!("334 {prompt}\r\n"))?;
        let mut answer = Vec::new();
        read_line(io, &mut answer, Instant::now() + AUTH_ANSWER_TIME)?;
        let answer = String::from_utf8_lossy(&answer).trim().to_owned();
        if answer == "*" {
            return Ok(None);
        }
        Ok(Some(BASE64.decode(answer).unwrap_or_default()))
    };
    let decode = |s: &str| BASE64.decode(s.trim()).ok();
    let (user, password) = match mechanism.as_str() {
        "PLAIN" => {
            let blob = match initial.as_deref() {
                Some("=") => Vec::new(),
                Some(i) => match decode(i) {
                    Some(b) => b,
                    None => return Ok("501 Cannot decode the AUTH PLAIN response\r\n".into()),
                },
                None => match ask("")? {
                    Some(b) => b,
                    None => return Ok("501 Authentication cancelled\r\n".into()),
                },
            };
            // authzid NUL authcid NUL password
            let parts: Vec<&[u8]> = blob.split(|b| *b == 0).collect();
            match parts.as_slice() {
                [_, user, password] => (
                    String::from_utf8_lossy(user).into_owned(),
                    String::from_utf8_lossy(password).into_owned(),
                ),
                _ => return Ok("501 Cannot decode the AUTH PLAIN response\r\n".into()),
            }
        }
        "LOGIN" => {
            let user = match initial.as_deref().map(decode) {
                Some(Some(u)) => u,
                Some(None) => return Ok("501 Cannot decode the AUTH LOGIN user name\r\n".into()),
                // "Username:" and "Password:", base64.
                None => match ask("VXNlcm5hbWU6")? {
                    Some(u) => u,
                    None => return Ok("501 Authentication cancelled\r\n".into()),
                },
            };
            let password = match ask("UGFzc3dvcmQ6")? {
                Some(p) => p,
                None => return Ok("501 Authentication cancelled\r\n".into()),
            };
            (
                String::from_utf8_lossy(&user).into_owned(),
                String::from_utf8_lossy(&password).into_owned(),
            )
        }
        _ => {
            return Ok(format!(
                "504 Unrecognized authentication type {mechanism}: use PLAIN or LOGIN\r\n"
            ));
        }
    };
    match check_login(shared, &user, &password) {
        Ok(Some(email)) => {
            conv.borrow_mut().authenticated = Some(email);
            Ok("235 Authentication succeeded\r\n".into())
        }
        Ok(None) => Ok("535 Authentication credentials invalid\r\n".into()),
        Err(e) => {
            warn!(error = %e, "cannot check SMTP AUTH credentials");
            Ok("454 Temporary authentication failure\r\n".into())
        }
    }
}

/// A user of the account the API key belongs to, by email address.
fn check_login(
    shared: &Shared,
    user: &str,
    password: &str,
) -> Result<Option<String>, crate::store::StoreError> {
    Ok(shared
        .ctx
        .store
        .login(user, password)?
        .map(|(_, email)| email))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_parameters_are_checked_and_rewritten_for_mailin() {
        let limit = 1000;
        let ok = |s: &str| mail_command(s, limit).unwrap();
        let err = |s: &str| mail_command(s, limit).unwrap_err();
        assert_eq!(
            ok("MAIL FROM:<a@b.example>\r\n"),
            (
                "a@b.example".to_owned(),
                format!("MAIL FROM:<{PATH_PLACEHOLDER}>\r\n")
            )
        );
        assert_eq!(
            ok("MAIL FROM: <a@b.example> SIZE=999 BODY=8BITMIME AUTH=<>\r\n"),
            (
                "a@b.example".to_owned(),
                format!("MAIL FROM:<{PATH_PLACEHOLDER}> BODY=8BITMIME\r\n")
            )
        );
        // The null reverse-path (RFC 5321 4.5.5).
        assert_eq!(ok("MAIL FROM:<>\r\n").0, "");
        assert!(err("MAIL FROM:a@b.example\r\n").starts_with("501 "));
        assert_eq!(
            err("MAIL FROM:<a@b.example> SIZE=1001\r\n"),
            "552 Estimated message length 1001 exceeds limit of 1000\r\n"
        );
        assert_eq!(
            err("MAIL FROM:<a@b.example> RET=HDRS\r\n"),
            "555 Unsupported option: RET=HDRS\r\n"
        );
        assert!(err("MAIL FROM:<a@b.example> SIZE=lots\r\n").starts_with("501 "));
    }

    #[test]
    fn paths_are_unquoted_and_source_routes_dropped() {
        let path = |s: &str| parse_path(s).map(|(a, rest)| (a, rest.to_owned()));
        assert_eq!(
            path("<\"+1 555 000 1234\"@fax.example>"),
            Some(("+1 555 000 1234@fax.example".into(), "".into()))
        );
        assert_eq!(
            path(" <\"a\\\"b>c\"@x.example> SIZE=1"),
            Some(("a\"b>c@x.example".into(), " SIZE=1".into()))
        );
        assert_eq!(
            path("<@relay.example,@r2.example:bob@x.example>"),
            Some(("bob@x.example".into(), "".into()))
        );
        assert_eq!(path("<>"), Some((String::new(), String::new())));
        assert_eq!(path("<unclosed@x.example"), None);
        assert_eq!(path("<a\nb@x.example>"), None);
        assert_eq!(
            rcpt_command("RCPT TO:<\"555 0001\"@fax.example>\r\n").unwrap(),
            (
                "555 0001@fax.example".into(),
                format!("RCPT TO:<{PATH_PLACEHOLDER}>\r\n")
            )
        );
        assert!(
            rcpt_command("RCPT TO:<>\r\n")
                .unwrap_err()
                .starts_with("501 ")
        );
        assert!(
            rcpt_command("RCPT FROM:<a@b>\r\n")
                .unwrap_err()
                .starts_with("501 ")
        );
    }

    #[test]
    fn multiline_replies_mark_the_last_line() {
        assert_eq!(
            multiline(250, &["a".into(), "b".into(), "c".into()]),
            "250-a\r\n250-b\r\n250 c\r\n"
        );
    }
}
