//! `GET /v2/events`: the scheduler's events as Server-Sent Events, one JSON
//! event per message (`event: job_status` / `event: call`, `data: {...}`),
//! for the dashboard and for programs that would otherwise poll.
//!
//! Each stream runs on a thread of its own, so a listener never holds one
//! of the API's request workers. The reply is chunked, so the stream ends
//! cleanly (a last `event: shutdown` and the closing chunk) when the API
//! stops; a comment line every `keep_alive` keeps proxies and idle
//! timeouts from closing it. An account token gets its own account's
//! events; the admin account gets all.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::debug;

use super::Ctx;
use crate::model::Account;
use crate::status::Event;

/// How often a stream looks at the stop flag while no event comes.
const TICK: Duration = Duration::from_millis(100);

/// The running streams, so that stopping the API ends them.
#[derive(Default)]
pub struct Streams {
    stopping: AtomicBool,
    threads: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Streams {
    /// Ends every stream (each says goodbye first) and waits for them.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Whether `caller` may see `event`.
fn visible(caller: &Account, event: &Event) -> bool {
    caller.is_admin || event.account().is_none_or(|a| *a == caller.id)
}

/// One event as an SSE message; `id` numbers the events of the stream.
fn message(event: &Event, id: Option<u64>) -> String {
    let data = serde_json::to_string(event).expect("events serialize");
    let id = id.map(|n| format!("id: {n}\n")).unwrap_or_default();
    format!("{id}event: {}\ndata: {data}\n\n", event.name())
}

/// Writes one chunk of a chunked reply and sends it now.
fn chunk(out: &mut dyn Write, text: &str) -> std::io::Result<()> {
    write!(out, "{:x}\r\n{text}\r\n", text.len())?;
    out.flush()
}

/// Answers the request with the event stream and follows it on a thread.
pub fn start(ctx: &Arc<Ctx>, raw: tiny_http::Request, caller: Account, request_id: &str) {
    // Listening before the reply starts: whatever happens after the client
    // sees the first line is in its stream.
    let listening = ctx.live.listen();
    let mut out = raw.into_writer();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Transfer-Encoding: chunked\r\nX-Request-ID: {request_id}\r\n\r\n"
    );
    if out.write_all(head.as_bytes()).is_err()
        || chunk(&mut out, ": faxbox events\nretry: 3000\n\n").is_err()
    {
        return;
    }
    let ctx2 = ctx.clone();
    let keep_alive = ctx.options.keep_alive;
    let thread = std::thread::Builder::new()
        .name("api-events".into())
        .spawn(move || {
            let ctx = ctx2;
            let mut last_write = Instant::now();
            let mut sequence: u64 = 0;
            let ended = loop {
                if ctx.streams.stopping.load(Ordering::Acquire) {
                    let _ = chunk(&mut out, &message(&Event::shutdown(), None));
                    break "the API stopped";
                }
                let written = match listening.events.recv_timeout(TICK) {
                    Ok(event) if visible(&caller, &event) => {
                        sequence += 1;
                        Some(chunk(&mut out, &message(&event, Some(sequence))))
                    }
                    Ok(_) => None,
                    Err(RecvTimeoutError::Timeout) if last_write.elapsed() >= keep_alive => {
                        Some(chunk(&mut out, ": keep-alive\n\n"))
                    }
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break "the event feed ended",
                };
                // Told after the events that did come through, so the
                // client knows its picture has gaps.
                let written = match written {
                    None | Some(Ok(())) if listening.missed_some() => {
                        Some(chunk(&mut out, &message(&Event::missed(), None)))
                    }
                    w => w,
                };
                match written {
                    Some(Ok(())) => last_write = Instant::now(),
                    Some(Err(_)) => break "the client went away",
                    None => {}
                }
            };
            // The closing chunk: the reply is complete.
            let _ = out.write_all(b"0\r\n\r\n");
            let _ = out.flush();
            debug!(why = ended, "event stream ended");
        });
    if let Ok(t) = thread {
        let mut threads = ctx
            .streams
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(t);
    }
}
