//! Faxbox callbacks (issue 22): the real `faxbox serve` calls a receiver on
//! loopback, a tiny HTTP server here, once per event, signed with the
//! faxbox's key; across a SIGKILL, and through a receiver that fails first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::client::{Document, Session};
use faxbox::model::AccountId;
use faxbox::store::Store;
use serde_json::{Value, json};

use crate::harness::{ServeProcess, free_loopback_port, pdf_of_texts, wait_for};

const LINE: &str = "callback_retry_s = 1\n[[line]]\nname = \"loopback\"\ntype = \"loopback\"\n";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    content_type: String,
    event_id: String,
    signature: String,
    body: Vec<u8>,
    at: Instant,
}

/// A callback receiver on a loopback port: records each request and
/// answers the next scripted status (200 once the script is used up).
struct Receiver {
    calls: Arc<Mutex<Vec<Call>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, statuses: &[u16]) -> Receiver {
        let server = Arc::new(tiny_http::Server::http(("127.0.0.1", port)).unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut script: VecDeque<u16> = statuses.iter().copied().collect();
        let thread = std::thread::spawn({
            let (server, calls) = (server.clone(), calls.clone());
            move || {
                for mut rq in server.incoming_requests() {
                    let header = |name: &str| {
                        rq.headers()
                            .iter()
                            .find(|h| h.field.to_string().eq_ignore_ascii_case(name))
                            .map(|h| h.value.to_string())
                            .unwrap_or_default()
                    };
                    let mut call = Call {
                        method: rq.method().to_string(),
                        content_type: header("Content-Type"),
                        event_id: header("X-Faxbox-Event-Id"),
                        signature: header("X-Faxbox-Signature"),
                        body: Vec::new(),
                        at: Instant::now(),
                    };
                    std::io::Read::read_to_end(rq.as_reader(), &mut call.body).unwrap();
                    calls.lock().unwrap().push(call);
                    let status = script.pop_front().unwrap_or(200);
                    let _ = rq.respond(
                        tiny_http::Response::from_string("noted").with_status_code(status),
                    );
                }
            }
        });
        Receiver {
            calls,
            server,
            thread: Some(thread),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `signature` (`t=<unix>,v1=<hex>`) is HMAC-SHA256 with `key`
/// over `<unix>.` and the body, as the README tells a receiver to check.
fn signed_with(key: &str, signature: &str, body: &[u8]) -> bool {
    let mut parts = signature.split(',');
    let (Some(t), Some(v1)) = (
        parts.next().and_then(|p| p.strip_prefix("t=")),
        parts.next().and_then(|p| p.strip_prefix("v1=")),
    ) else {
        return false;
    };
    let Ok(mac) = hex::decode(v1) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    ring::hmac::verify(&key, &signed, &mac).is_ok()
}

/// A faxbox whose outbound callback goes to the receiver's port, made
/// over the API as a client makes it: refused while the account may not
/// call private addresses, accepted once it may. Its id and signing key.
fn faxbox_calling(
    session: &Session,
    data_dir: &std::path::Path,
    port: u16,
    callback: Value,
) -> (String, String) {
    let path = format!("/v2/accounts/{}/faxboxes", session.account_id);
    let body = json!({ "data": {
        "name": "Desk",
        "notifications": { "outbound": { "callback": callback } },
    }});
    let refused = session.put(&path, &body).unwrap_err().to_string();
    assert!(
        refused.contains("notifications.outbound.callback.url")
            && refused.contains(&format!("127.0.0.1:{port}"))
            && refused.contains("allow_private_document_urls"),
        "a loopback callback is refused in words: {refused}"
    );
    let store = Store::open_existing(data_dir).unwrap();
    let account = AccountId(session.account_id.clone());
    store
        .set_setting(Some(&account), "allow_private_document_urls", json!(true))
        .unwrap();
    let made = session.put(&path, &body).unwrap();
    let key = made["callback_key"]
        .as_str()
        .expect("the key is shown on creation");
    assert_eq!(key.len(), 64);
    (made["id"].as_str().unwrap().to_owned(), key.to_owned())
}

fn send_from(session: &Session, faxbox: &str) -> String {
    let document = Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(&["Callback"]),
    };
    let job = session
        .send(
            &json!({"to_number": "5551234", "faxbox_id": faxbox}),
            &[document],
        )
        .unwrap();
    job["id"].as_str().unwrap().to_owned()
}

fn callbacks_of(session: &Session, faxbox: &str) -> Vec<Value> {
    let path = format!(
        "/v2/accounts/{}/faxboxes/{faxbox}/callbacks",
        session.account_id
    );
    session.get(&path).unwrap().as_array().unwrap().clone()
}

#[test]
fn a_callback_queued_before_a_sigkill_arrives_once_signed_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let mut serve = ServeProcess::start(dir.path(), LINE);
    let key = serve.api_key();
    let session = Session::login(&serve.api_url(), &key).unwrap();
    let url = format!("http://127.0.0.1:{port}/fax-events");
    let (faxbox, secret) = faxbox_calling(&session, &serve.data_dir, port, json!({ "url": url }));

    // Nobody listens yet: the fax completes, its callback is refused at
    // the door and waits for its retry when the box is killed.
    let fax = send_from(&session, &faxbox);
    wait_for("the callback's first try", Duration::from_secs(60), || {
        callbacks_of(&session, &faxbox)
            .first()
            .is_some_and(|c| c["attempts"].as_u64() >= Some(1))
    });
    serve.signal("KILL");
    serve.wait(Duration::from_secs(30));

    let receiver = Receiver::start(port, &[]);
    let serve = ServeProcess::start(dir.path(), LINE);
    let session = Session::login(&serve.api_url(), &key).unwrap();
    wait_for(
        "the callback after the restart",
        Duration::from_secs(30),
        || !receiver.calls().is_empty(),
    );
    // Retries are a second apart: three seconds more would show a repeat.
    std::thread::sleep(Duration::from_secs(3));
    let calls = receiver.calls();
    assert_eq!(calls.len(), 1, "one call for one event: {calls:?}");
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.content_type, "application/json");
    assert!(
        signed_with(&secret, &call.signature, &call.body),
        "{call:?}"
    );
    assert!(!signed_with("another key", &call.signature, &call.body));
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["fax_id"], fax.as_str());
    assert_eq!(body["faxbox_id"], faxbox.as_str());
    assert_eq!(body["direction"], "outbound");
    assert_eq!(body["event"], "completed");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["pages"], 1);
    assert_eq!(body["to_number"], "5551234");
    assert_eq!(body["event_id"], call.event_id.as_str());

    let record = callbacks_of(&session, &faxbox);
    assert_eq!(record.len(), 1);
    assert_eq!(record[0]["status_code"], 200);
    assert!(record[0]["sent_at"].is_i64());
    assert!(record[0]["attempts"].as_u64() >= Some(2), "{record:?}");
}

#[test]
fn a_failing_receiver_gets_the_callback_again_later_until_it_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let receiver = Receiver::start(port, &[500, 500]);
    let serve = ServeProcess::start(dir.path(), LINE);
    let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
    let callback = json!({
        "url": format!("http://127.0.0.1:{port}/fax-events"),
        "method": "put",
        "type": "www-url-form-encoded",
    });
    let (faxbox, secret) = faxbox_calling(&session, &serve.data_dir, port, callback);
    let fax = send_from(&session, &faxbox);
    wait_for("three tries", Duration::from_secs(60), || {
        receiver.calls().len() >= 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let calls = receiver.calls();
    assert_eq!(calls.len(), 3, "two refusals and one delivery: {calls:?}");
    for call in &calls {
        assert_eq!(call.method, "PUT");
        assert_eq!(call.content_type, "application/x-www-form-urlencoded");
        assert_eq!(call.event_id, calls[0].event_id, "one event, tried again");
        assert!(signed_with(&secret, &call.signature, &call.body));
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&call.body)
            .into_owned()
            .collect();
        assert!(form.contains(&("fax_id".into(), fax.clone())), "{form:?}");
    }
    // Back-off: the second wait (2 s, in whole seconds) is longer than
    // the first (1 s).
    assert!(
        calls[2].at - calls[1].at >= Duration::from_secs(1),
        "{calls:?}"
    );
    let record = callbacks_of(&session, &faxbox);
    assert_eq!(record[0]["attempts"], 3);
    assert_eq!(record[0]["status_code"], 200);
}
