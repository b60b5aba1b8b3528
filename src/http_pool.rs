//! An HTTP listener whose requests are each served on a thread of their own:
//! the API, the FreeSWITCH file proxy and the IPP printers each run one.
//!
//! Slow clients hold only their own thread (issue 18: ten clients trickling
//! a body a byte every two seconds took every worker of a fixed pool, and
//! `/healthz` with them). What bounds them instead:
//! - at most `max_requests` requests are served at once, and one client
//!   address on the network may hold at most half of them; past that a
//!   client is answered 503 at once (clients on this machine, the CLI and a
//!   local relay, are not limited per address);
//! - every connection has read and write timeouts (`IDLE_TIMEOUT`): a client
//!   silent that long, between requests or inside a body, is cut off;
//! - handlers read bodies with `read_body`, which also bounds the time the
//!   whole body may take.
//!
//! Connections are accepted by tiny_http's own thread, which never waits
//! for a request to be served (issue 27), from a listen queue sized for
//! bursts (`BACKLOG`). Stopping lets every request in progress finish; then
//! the listener closes.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::warn;

/// Pending connections the kernel keeps for the listener (capped by
/// `net.core.somaxconn`). Linux's default of 128 overflowed under bursts of
/// 64 clients, and an overflowed SYN waits seconds for its retransmission.
pub const BACKLOG: i32 = 4096;

/// How long a client may stay silent inside a request or between two, and
/// how long a reply may wait for it to read.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The slowest body upload accepted, in bytes per second once the first
/// `BODY_GRACE` has passed: an office line uploads 30 MB in well under the
/// time this allows; one byte every two seconds does not.
pub const MIN_BODY_RATE: u64 = 16 * 1024;

/// Time any body gets before `MIN_BODY_RATE` counts.
pub const BODY_GRACE: Duration = Duration::from_secs(30);

/// Bytes of request bodies held in memory at once, over every listener:
/// twenty 30 MB uploads at once took 850 MB (issue 18). A large body waits
/// for room (its client's bytes wait in the kernel meanwhile) and holds it
/// until its request is answered. Bodies under `SMALL_BODY` do not count.
/// Intake copies an upload about three times while checking it (90 MB for
/// a 30 MB PDF, measured), so this lets one upload of the API's largest
/// size in at a time, and many of a few megabytes.
pub const BODY_BUDGET: usize = 40 * 1024 * 1024;

/// Bodies this small (JSON requests, most IPP requests) never wait.
pub const SMALL_BODY: usize = 256 * 1024;

/// What is left of `BODY_BUDGET`.
static BODY_ROOM: Mutex<usize> = Mutex::new(BODY_BUDGET);
static BODY_FREED: Condvar = Condvar::new();

thread_local! {
    /// The budget taken by the bodies of the request this thread serves;
    /// given back when it is answered (`give_back_body_budget`).
    static BODY_HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Takes `bytes` of the body budget for this thread's request, waiting
/// until `deadline` for room.
fn take_body_budget(bytes: usize, deadline: Instant) -> bool {
    let bytes = bytes.min(BODY_BUDGET);
    let mut room = BODY_ROOM.lock().unwrap_or_else(|e| e.into_inner());
    while *room < bytes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        room = BODY_FREED
            .wait_timeout(room, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    *room -= bytes;
    BODY_HELD.with(|h| h.set(h.get() + bytes));
    true
}

/// Gives back what this thread's request took of the body budget.
fn give_back_body_budget() {
    let held = BODY_HELD.with(|h| h.replace(0));
    if held > 0 {
        *BODY_ROOM.lock().unwrap_or_else(|e| e.into_inner()) += held;
        BODY_FREED.notify_all();
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Over the limit, declared or as sent.
    TooLarge { limit: usize },
    /// The client sent it too slowly, or stopped.
    TooSlow,
    /// The connection failed.
    Io(std::io::Error),
    /// Other uploads filled `BODY_BUDGET` for longer than this one may wait.
    Busy,
}

/// Reads a request body of at most `limit` bytes: refused from its
/// declared length before anything is read, else while reading, and cut off
/// when it comes slower than `MIN_BODY_RATE`.
pub fn read_body(
    reader: &mut dyn Read,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let expected = declared.unwrap_or(limit);
    let deadline =
        Instant::now() + BODY_GRACE + Duration::from_secs(expected as u64 / MIN_BODY_RATE);
    // A declared length is taken from the budget at once; a chunked body
    // takes it a megabyte at a time as it grows.
    let mut held = 0;
    if let Some(n) = declared.filter(|n| *n > SMALL_BODY) {
        if !take_body_budget(n, deadline) {
            return Err(BodyError::Busy);
        }
        held = n;
    }
    // Grown as the body comes, not reserved from what the client claims.
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(64 * 1024));
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(BodyError::TooSlow);
        }
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(BodyError::TooSlow);
            }
            Err(e) => return Err(BodyError::Io(e)),
        };
        if n == 0 {
            return Ok(body);
        }
        if body.len() + n > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk[..n]);
        if body.len() > SMALL_BODY.max(held) {
            let more = (body.len() - held).max(1024 * 1024);
            if !take_body_budget(more, deadline) {
                return Err(BodyError::Busy);
            }
            held += more;
        }
    }
}

/// Requests being served, in all and per client address.
#[derive(Default)]
struct InFlight {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Signalled when a request finishes (for `stop`).
    finished: Condvar,
}

impl InFlight {
    /// Takes a place for a request from `client`, if there is one.
    fn enter(&self, client: Option<IpAddr>, max: usize) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *counts;
        let mine = client.map_or(0, |c| per_client.get(&c).copied().unwrap_or(0));
        if *total >= max || mine >= (max / 2).max(1) {
            return false;
        }
        *total += 1;
        if let Some(c) = client {
            *per_client.entry(c).or_insert(0) += 1;
        }
        true
    }

    fn leave(&self, client: Option<IpAddr>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_client) = &mut *counts;
        *total -= 1;
        if let Some(c) = client
            && let Some(n) = per_client.get_mut(&c)
        {
            *n -= 1;
            if *n == 0 {
                per_client.remove(&c);
            }
        }
        self.finished.notify_all();
    }

    fn wait_idle(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        while counts.0 > 0 {
            counts = self
                .finished
                .wait(counts)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

pub struct HttpPool {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    dispatcher: Option<JoinHandle<()>>,
    in_flight: Arc<InFlight>,
    addr: SocketAddr,
}

impl HttpPool {
    /// Serves `listener`, each request on a thread named `name` calling
    /// `serve`, at most `max_requests` (at least 16: a client's event
    /// stream and a few uploads must not lock it out) at once.
    pub fn start<F>(
        listener: TcpListener,
        name: &str,
        max_requests: usize,
        serve: F,
    ) -> std::io::Result<HttpPool>
    where
        F: Fn(tiny_http::Request) + Send + Sync + 'static,
    {
        let addr = listener.local_addr()?;
        // Accepted sockets inherit the listener's timeouts (Linux copies
        // SO_RCVTIMEO and SO_SNDTIMEO to them); tiny_http has no setting.
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        set_socket_timeout(&listener, Timeout::Recv, Some(IDLE_TIMEOUT))?;
        set_socket_timeout(&listener, Timeout::Send, Some(IDLE_TIMEOUT))?;
        // listen() again on a listening socket resizes its queue.
        rustix::net::listen(&listener, BACKLOG)?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(InFlight::default());
        let max = max_requests.max(16);
        let serve = Arc::new(serve);
        let dispatcher = {
            let (server, stopping, in_flight) =
                (server.clone(), stopping.clone(), in_flight.clone());
            let name = name.to_owned();
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    while !stopping.load(Ordering::Acquire) {
                        // `recv` fails when `stop` unblocks this thread.
                        let Ok(request) = server.recv() else {
                            continue;
                        };
                        dispatch(request, &name, max, &in_flight, &serve);
                    }
                })?
        };
        Ok(HttpPool {
            server,
            stopping,
            dispatcher: Some(dispatcher),
            in_flight,
            addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests and waits for those being served to finish.
    /// Calling it again does nothing.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.server.unblock();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        self.in_flight.wait_idle();
    }
}

/// Hands one request to a thread of its own, or answers 503 when the pool
/// or this client is at its limit.
fn dispatch<F>(
    request: tiny_http::Request,
    name: &str,
    max: usize,
    in_flight: &Arc<InFlight>,
    serve: &Arc<F>,
) where
    F: Fn(tiny_http::Request) + Send + Sync + 'static,
{
    let client = request
        .remote_addr()
        .map(|a| a.ip().to_canonical())
        .filter(|ip| !ip.is_loopback());
    if !in_flight.enter(client, max) {
        let mut busy = tiny_http::Response::from_string(
            "Faxbox is serving as many requests as it can right now; try again in a moment\n",
        )
        .with_status_code(503);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Retry-After"[..], &b"1"[..]) {
            busy.add_header(h);
        }
        let _ = request.respond(busy);
        return;
    }
    // Leaves when the request is done, also when `serve` panics or the
    // thread cannot be started.
    struct Leave(Arc<InFlight>, Option<IpAddr>);
    impl Drop for Leave {
        fn drop(&mut self) {
            give_back_body_budget();
            self.0.leave(self.1);
        }
    }
    let leave = Leave(in_flight.clone(), client);
    let serve = serve.clone();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _leave = leave;
            serve(request);
        });
    if let Err(e) = spawned {
        // The request went with the closure that could not start (tiny_http
        // answers a dropped request 500).
        warn!(error = %e, "cannot start a thread for an HTTP request");
    }
}

impl Drop for HttpPool {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_bounded_by_declared_and_sent_length() {
        let read = |bytes: &[u8], declared: Option<usize>, limit: usize| {
            read_body(&mut std::io::Cursor::new(bytes.to_vec()), declared, limit)
        };
        assert_eq!(read(b"hello", Some(5), 10).unwrap(), b"hello");
        // A terabyte declared is refused before a byte is read.
        assert!(matches!(
            read(b"", Some(1 << 40), 10),
            Err(BodyError::TooLarge { limit: 10 })
        ));
        // Chunked (no length): cut at the limit as it comes.
        assert!(matches!(
            read(&[b'x'; 11], None, 10),
            Err(BodyError::TooLarge { limit: 10 })
        ));
        // A large chunked body takes budget as it grows, and gives it back
        // when its request is done.
        let big = vec![b'x'; 3 * SMALL_BODY];
        assert_eq!(read(&big, None, 4 * SMALL_BODY).unwrap().len(), big.len());
        assert!(BODY_HELD.with(|h| h.get()) > 0);
        give_back_body_budget();
        assert_eq!(BODY_HELD.with(|h| h.get()), 0);
    }
}
