//! The courier: a thread that delivers the store's queued faxbox
//! callbacks over HTTP, as the postman delivers mail. Each request is
//! signed with the faxbox's key, carries its event id (a receiver drops a
//! repeat after a crash between sending and recording), must be answered
//! 2xx within the timeout, and is retried with back-off until it is.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use tracing::{info, warn};

use super::Backoff;
use crate::api::fetch::{check_callback_url, guarded_agent};
use crate::doorbell::{BellThread, Doorbell};
use crate::model::{AccountId, FaxboxId, now};
use crate::store::{QueuedCallback, Store, StoreError};

/// The longest the courier sleeps without being woken.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// How long a receiver has to answer.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer is read (for the delivery record).
const MAX_ANSWER: u64 = 4096;

/// `X-Faxbox-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256 with the faxbox's
/// key over `<unix>.` followed by the body.
pub fn signature(key: &str, t: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Handle on the delivery thread.
pub struct Courier {
    thread: BellThread,
}

impl Courier {
    pub fn start(store: Arc<Store>, backoff: Backoff) -> std::io::Result<Courier> {
        let thread = BellThread::start("courier", move |bell| {
            deliver_until_stopped(&store, backoff, bell)
        })?;
        Ok(Courier { thread })
    }

    /// A handle that wakes the courier (a callback was queued) without
    /// keeping it.
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        self.thread.waker()
    }

    /// Finishes the request in hand and stops; queued callbacks stay.
    pub fn stop(self) {
        drop(self.thread);
    }
}

fn deliver_until_stopped(store: &Store, backoff: Backoff, bell: &Doorbell) {
    loop {
        if let Err(e) = deliver_due(store, backoff, bell) {
            warn!("callbacks wait: the store cannot record their delivery: {e}");
        }
        let wait = match store.next_callback_due() {
            Ok(Some(due)) => {
                Duration::from_secs((due - now()).clamp(0, IDLE_WAIT.as_secs() as i64) as u64)
            }
            _ => IDLE_WAIT,
        };
        if !bell.wait(wait.max(Duration::from_millis(200))) {
            return;
        }
    }
}

/// One pass over the due callbacks. A callback whose sending cannot be
/// recorded is not sent.
fn deliver_due(store: &Store, backoff: Backoff, bell: &Doorbell) -> Result<(), StoreError> {
    for cb in store.due_callbacks(now(), 50)? {
        if bell.stopping() {
            return Ok(());
        }
        let wait = backoff.delay(cb.attempts + 1).as_secs().max(1) as i64;
        store.callback_sending(cb.id, wait)?;
        match send(store, &cb) {
            Ok(status) => {
                info!(callback = cb.id, fax = %cb.fax_id, status, "callback delivered");
                store.callback_delivered(cb.id, status)?;
            }
            Err((status, e)) => {
                warn!(
                    callback = cb.id,
                    fax = %cb.fax_id,
                    attempts = cb.attempts + 1,
                    retry_in_s = wait,
                    "callback not delivered, will retry: {e}"
                );
                store.callback_failed(cb.id, status, &e, wait)?;
            }
        }
    }
    Ok(())
}

/// Sends one callback: the 2xx status, or the status (if any) and why not.
fn send(store: &Store, cb: &QueuedCallback) -> Result<u16, (Option<u16>, String)> {
    let account = AccountId(cb.account_id.clone());
    let allow_private = store
        .setting_bool(Some(&account), "allow_private_document_urls")
        .map_err(|e| (None, e.to_string()))?;
    check_callback_url(&cb.url, allow_private, "callback.url").map_err(|e| (None, e.message))?;
    let key = store
        .callback_key(&FaxboxId(cb.faxbox_id.clone()))
        .map_err(|e| (None, e.to_string()))?;
    let request = ureq::http::Request::builder()
        .method(cb.method.as_str())
        .uri(cb.url.as_str())
        .header("Content-Type", cb.content_type.as_str())
        .header("X-Faxbox-Event-Id", cb.event_id.as_str())
        .header("X-Faxbox-Signature", signature(&key, now(), &cb.body))
        .body(cb.body.clone())
        .map_err(|e| (None, e.to_string()))?;
    let agent = guarded_agent(allow_private, CALLBACK_TIMEOUT);
    let mut answer = agent.run(request).map_err(|e| (None, e.to_string()))?;
    let status = answer.status().as_u16();
    let mut text = String::new();
    let _ = answer
        .body_mut()
        .as_reader()
        .take(MAX_ANSWER)
        .read_to_string(&mut text);
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        let text: String = text.chars().take(200).collect();
        Err((
            Some(status),
            format!("the receiver answered {status}: {text}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature("k", 1, b"body");
        assert!(a.starts_with("t=1,v1="));
        assert_ne!(a, signature("k", 2, b"body"));
        assert_ne!(a, signature("k", 1, b"bodx"));
        assert_ne!(a, signature("j", 1, b"body"));
    }
}
