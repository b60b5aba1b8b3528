//! Email to fax: the SMTP listener (docs/kazoo.md 6).
//!
//! An office mails `15551234567@<faxbox address>` with a PDF; this module
//! speaks SMTP, finds the faxbox and checks the sender on `RCPT`, turns the
//! attachments into one fax document at the end of `DATA`, and answers
//! `250 queued as <fax id>` only after the job and its documents are
//! committed (docs/architecture.md, invariant 1). Everything it refuses is refused with a real
//! SMTP code at the command that caused it (Kazoo answered `250 queued as
//! 554 ...`, docs/kazoo.md 13 item 1).
//!
//! The protocol state machine is `mailin`'s (the engine mailin-embedded
//! wraps). Faxbox drives it from its own accept loop rather than
//! mailin-embedded's `serve()`, because that loop can neither refuse a
//! connection when all sessions are taken (Kazoo's `421 ... too busy`) nor
//! stop; here both are ordinary paths. The few replies mailin words
//! differently from Kazoo (greeting, EHLO's SIZE, VRFY, unknown verbs) and
//! SMTP AUTH are handled in `session`.
//!
//! Owns: the listener and its sessions. Talks to: `intake` (the sender
//! rule, and the one path by which an email becomes faxes), `store`
//! (lookups, the SMTP log, the mail queue), `notify` (composing the error
//! report). Library types (mailin responses,
//! mail-parser messages, rustls) stay in this module.

mod deliver;
mod mime;
mod resolve;
mod session;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::documents::ConvertOptions;
use crate::intake::Intake;
use crate::store::Store;

pub use mime::{ContentRules, Email, MimeError, first_attachment, read_email};
pub use tls::load_tls;

/// What the SMTP listener needs from the rest of the appliance.
#[derive(Clone)]
pub struct SmtpCtx {
    pub store: Arc<Store>,
    /// Where accepted emails become faxes (and are counted).
    pub intake: Intake,
    /// Tells the mail thread a report is queued.
    pub mail_queued: Arc<dyn Fn() + Send + Sync>,
    pub options: SmtpOptions,
}

#[derive(Clone)]
pub struct SmtpOptions {
    /// The name in the greeting (`220 <hostname> ...`).
    pub hostname: String,
    /// STARTTLS, when a certificate is configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub convert: ConvertOptions,
    /// The `From:` of error reports mailed to senders.
    pub report_from: String,
    /// Relays whose mail needs no SMTP AUTH (`smtp.trusted_relays`) and
    /// that the per-client session limit does not count.
    pub trusted_relays: Vec<ipnet::IpNet>,
}

impl SmtpOptions {
    pub fn new(hostname: impl Into<String>, report_from: impl Into<String>) -> SmtpOptions {
        SmtpOptions {
            hostname: hostname.into(),
            tls: None,
            convert: ConvertOptions::default(),
            report_from: report_from.into(),
            trusted_relays: Vec::new(),
        }
    }

    /// Whether `peer` is one of the trusted relays.
    pub fn is_trusted_relay(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_relays.iter().any(|net| net.contains(&peer))
    }
}

/// State shared by the accept loop and every session.
struct Shared {
    ctx: SmtpCtx,
    /// Set when the appliance stops: new commands are answered 421.
    stopping: AtomicBool,
    /// Sessions now open.
    sessions: AtomicUsize,
    /// Sessions now open per client address, for `smtp_sessions_per_client`.
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// The running listener.
pub struct SmtpServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Serves SMTP on an already bound listener, from named threads.
    pub fn start(listener: TcpListener, ctx: SmtpCtx) -> std::io::Result<SmtpServer> {
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            ctx,
            stopping: AtomicBool::new(false),
            sessions: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("smtp-accept".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        info!(smtp = %local_addr, "email to fax is listening");
        Ok(SmtpServer {
            shared,
            local_addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sessions open right now.
    pub fn sessions(&self) -> usize {
        self.shared.sessions.load(Ordering::SeqCst)
    }

    /// Stops taking mail: the listener closes, every session answers its
    /// next command with 421 (the sender's server tries again later), and
    /// a message already being committed is finished, up to `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let mut wake = self.local_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let deadline = Instant::now() + grace;
        while self.shared.sessions.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.shared.sessions.load(Ordering::SeqCst);
        if left > 0 {
            warn!(
                sessions = left,
                "SMTP sessions still open at shutdown; nothing they sent was acknowledged"
            );
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.shared.stopping.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.local_addr, Duration::from_millis(200));
        }
    }
}

/// Counts a session, in all and for its client, for as long as it lives.
struct SessionSlot {
    shared: Arc<Shared>,
    client: Option<IpAddr>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.shared.sessions.fetch_sub(1, Ordering::SeqCst);
        if let Some(client) = self.client {
            let mut per_client = self
                .shared
                .per_client
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = per_client.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    per_client.remove(&client);
                }
            }
        }
    }
}

/// Takes a session slot for a client; false when it already has `limit`
/// sessions open.
fn take_client_slot(shared: &Arc<Shared>, client: IpAddr, limit: usize) -> bool {
    let mut per_client = shared.per_client.lock().unwrap_or_else(|e| e.into_inner());
    let open = per_client.entry(client).or_insert(0);
    if *open >= limit {
        return false;
    }
    *open += 1;
    true
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "an SMTP connection failed before it started");
                // Out of file descriptors and the like: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let host = &shared.ctx.options.hostname;
        if shared.stopping.load(Ordering::SeqCst) {
            session::refuse(
                stream,
                &format!("421 {host} Faxbox is shutting down, try again later\r\n"),
            );
            return;
        }
        // Kazoo's smtp_sessions (docs/kazoo.md 6.1), read at each connection so
        // a change applies at once.
        let limit = shared.ctx.store.system_limit("smtp_sessions") as usize;
        if shared.sessions.fetch_add(1, Ordering::SeqCst) >= limit {
            shared.sessions.fetch_sub(1, Ordering::SeqCst);
            session::refuse(
                stream,
                &format!("421 {host} is too busy to accept mail right now\r\n"),
            );
            continue;
        }
        let mut slot = SessionSlot {
            shared: shared.clone(),
            client: None,
        };
        // One client may not take every session (issue 18: sixty clients
        // trickling a byte at a time locked out all real mail). A trusted
        // relay carries everyone's mail, so it is not limited per client.
        if let Ok(peer) = stream.peer_addr()
            && !shared.ctx.options.is_trusted_relay(peer.ip())
        {
            let client = peer.ip().to_canonical();
            let per_client = shared.ctx.store.system_limit("smtp_sessions_per_client") as usize;
            if !take_client_slot(&shared, client, per_client) {
                drop(slot);
                session::refuse(
                    stream,
                    &format!(
                        "421 {host} too many connections from {client}: at most {per_client} at once, try again later\r\n"
                    ),
                );
                continue;
            }
            slot.client = Some(client);
        }
        let spawned = std::thread::Builder::new()
            .name("smtp-session".into())
            .spawn(move || {
                let shared = slot.shared.clone();
                session::run(stream, &shared);
                drop(slot);
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start a thread for an SMTP session");
        }
    }
}
