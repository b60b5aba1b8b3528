//! The HTTP API the way programs use it: a real HTTP client over loopback
//! against the API started in-process on 127.0.0.1:0, with a real store,
//! the scheduler and the loopback line, so an uploaded fax is really sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faxbox::api::{Api, ApiOptions, Ctx, LiveStatus};
use faxbox::client::{Document, Http, RawResponse, Session, multipart_body};
use faxbox::config::LoopbackConfig;
use faxbox::lines::{Line, LoopbackLine};
use faxbox::model::{AccountId, JobStatus};
use faxbox::scheduler::{Scheduler, SchedulerOptions};
use faxbox::store::{JobFilter, Store};
use serde_json::{Value, json};

/// A number the loopback line's far end answers busy.
const BUSY_NUMBER: &str = "5550666";

/// A running box: store, scheduler on a loopback line, and the API.
struct TestBox {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    api: Option<Api>,
    scheduler: Option<Arc<Scheduler>>,
    base: String,
    http: Http,
}

/// An account with its API key.
struct Tenant {
    id: AccountId,
    key: String,
}

impl TestBox {
    fn start() -> TestBox {
        TestBox::start_with(|_| {})
    }

    fn start_with(tune: impl FnOnce(&mut ApiOptions)) -> TestBox {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_data_dir(&dir.path().join("data")).unwrap());
        let line: Arc<dyn Line> = Arc::new(LoopbackLine::new(
            "loopback",
            LoopbackConfig {
                channels: 2,
                realtime: false,
                numbers: [(BUSY_NUMBER.to_owned(), faxbox::config::FarEnd::Busy)].into(),
            },
            dir.path(),
        ));
        // A number of one of the box's faxboxes rings that faxbox's inbox.
        let receiver = faxbox::inbound::Receiver::new(
            store.clone(),
            dir.path().join("incoming"),
            Default::default(),
            "faxbox@box.test".into(),
            Arc::new(|| {}),
        )
        .unwrap();
        line.set_inbound(Arc::new(receiver));
        let options = SchedulerOptions::new(dir.path().join("spool"), "faxbox@box.test".into());
        let scheduler =
            Arc::new(Scheduler::start(store.clone(), vec![line.clone()], options).unwrap());
        let live = LiveStatus::default();
        live.follow(scheduler.subscribe()).unwrap();
        let wake = crate::harness::waker(Some(&scheduler));
        let mut options = ApiOptions {
            workers: 4,
            max_body: 2 * 1024 * 1024,
            ..ApiOptions::default()
        };
        tune(&mut options);
        let api = Api::start(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            Ctx::new(store.clone(), wake, live, options).with_lines(scheduler.board()),
        )
        .unwrap();
        let base = format!("http://{}", api.local_addr());
        TestBox {
            _dir: dir,
            store,
            api: Some(api),
            scheduler: Some(scheduler),
            base,
            http: Http::new(),
        }
    }

    fn tenant(&self, name: &str) -> Tenant {
        let id = self.store.create_account(name, None).unwrap().id;
        let (_, key) = self.store.create_api_key(&id, "test").unwrap();
        Tenant { id, key }
    }

    fn token(&self, tenant: &Tenant) -> String {
        let r = self.call(
            "PUT",
            "/v2/api_auth",
            None,
            Some(json!({"data": {"api_key": tenant.key}})),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.json()["auth_token"].as_str().unwrap().to_owned()
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> RawResponse {
        let body = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, token, Some("application/json"), body)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> RawResponse {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(("X-Auth-Token", t));
        }
        if let (Some(ct), Some(_)) = (content_type, &body) {
            headers.push(("Content-Type", ct));
        }
        self.http
            .request(method, &format!("{}{path}", self.base), &headers, body)
            .unwrap()
    }
}

impl Drop for TestBox {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop();
        }
        if let Some(s) = self.scheduler.take().and_then(|s| Arc::try_unwrap(s).ok()) {
            s.stop(Duration::from_secs(5));
        }
    }
}

/// A one-page PDF with a line of text.
fn text_pdf(text: &str) -> Vec<u8> {
    crate::harness::pdf_of_texts(&[text])
}

fn pdf_document(name: &str, bytes: Vec<u8>) -> Document {
    Document {
        name: name.into(),
        content_type: "application/pdf".into(),
        bytes,
    }
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A body the route does not read is skipped, so the connection carries
/// the next request: ureq sends a PUT without a body as one empty chunk,
/// and the chunk was read as the next request line (400, connection
/// closed), failing a kept-alive client's next call at random.
#[test]
fn an_unread_chunked_body_leaves_a_kept_alive_connection_usable() {
    use std::io::{BufRead, BufReader, Read, Write};
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let addr = b.base.trim_start_matches("http://").to_owned();
    let mut socket = std::net::TcpStream::connect(&addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Pipelined, so the second request is already on the connection when
    // the first is answered: an empty chunked body, one with data, then a
    // plain GET.
    let head = |method: &str, path: &str| {
        format!(
            "{method} /v2/accounts/{}{path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\n",
            acme.id
        )
    };
    let mut requests = String::new();
    requests += &head("PUT", "/api_key");
    requests += "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    requests += &head("GET", "/api_key");
    requests += "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    requests += &head("GET", "");
    requests += "\r\n";
    socket.write_all(requests.as_bytes()).unwrap();
    let mut reader = BufReader::new(socket);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        statuses.push(status.trim().to_owned());
    }
    assert_eq!(
        statuses,
        ["HTTP/1.1 201 Created", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]
    );
}

#[test]
fn api_needs_a_token_and_a_token_reaches_only_its_account() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");

    let health = b.call("GET", "/healthz", None, None);
    assert_eq!(health.status, 200);

    let path = format!("/v2/accounts/{}/faxboxes", acme.id);
    let r = b.call("GET", &path, None, None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["status"], "error");
    assert_eq!(r.json()["error"], "401");
    let r = b.call("GET", &path, Some("not-a-token"), None);
    assert_eq!(r.status, 401);

    let r = b.call(
        "PUT",
        "/v2/api_auth",
        None,
        Some(json!({"data": {"api_key": "wrong"}})),
    );
    // A key has 64 characters (api_auth.json, docs/kazoo.md 2.7 item 1).
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "validation error");

    let token = b.token(&acme);
    let r = b.call("GET", &path, Some(&token), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["auth_token"], token.as_str());
    assert_eq!(r.json()["data"], json!([]));
    // The same token as a bearer token.
    let bearer = format!("Bearer {token}");
    let r = b
        .http
        .request(
            "GET",
            &format!("{}{path}", b.base),
            &[("Authorization", &bearer)],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);

    // Another account's faxbox, and another account's path, are not found.
    let theirs = b
        .store
        .create_faxbox(
            &other.id,
            faxbox::model::FaxboxFields {
                name: Some("Theirs".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let r = b.call("GET", &format!("{path}/{}", theirs.id), Some(&token), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "bad_identifier");
    let r = b.call(
        "DELETE",
        &format!("{path}/{}", theirs.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
    assert!(b.store.faxbox(&theirs.id).is_ok(), "nothing was deleted");
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxboxes", other.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn faxboxes_are_created_read_replaced_patched_and_deleted() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/faxboxes", acme.id);

    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {
            "name": "Front desk",
            "caller_id": "+15551230000",
            "notifications": {"outbound": {"email": {"send_to": "desk@acme.test"}}},
            "media": {"fax_option": true},
            "smtp_email_address": "ignored.example.com",
        }})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let created = r.json()["data"].clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(created["name"], "Front desk");
    assert_ne!(created["smtp_email_address"], "ignored.example.com");
    assert_eq!(
        created["notifications"]["outbound"]["email"]["send_to"],
        json!(["desk@acme.test"])
    );
    assert_eq!(created["media"]["fax_option"], true);
    // Gregorian seconds (docs/kazoo.md 1.1): after 2020 in that scale.
    assert!(created["created"].as_i64().unwrap() > 63_745_000_000);

    let r = b.call("GET", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.json()["data"]["caller_id"], "+15551230000");

    let r = b.call(
        "PATCH",
        &format!("{path}/{id}"),
        Some(&token),
        Some(json!({"data": {"fax_header": "ACME"}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["fax_header"], "ACME");
    assert_eq!(r.json()["data"]["caller_id"], "+15551230000", "patch keeps");

    let r = b.call(
        "POST",
        &format!("{path}/{id}"),
        Some(&token),
        Some(json!({"data": {"name": "Back office"}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["name"], "Back office");
    assert!(r.json()["data"].get("caller_id").is_none(), "replace drops");
    assert_eq!(
        r.json()["data"]["smtp_email_address"],
        created["smtp_email_address"]
    );

    let r = b.call("GET", &path, Some(&token), None);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);

    // Validation: each bad field has its own entry, with Kazoo's rule
    // name, target and value (the client's own `colour` is no error);
    // nothing changes.
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"name": "", "retries": 9, "colour": "red"}})),
    );
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(body["message"], "validation error");
    assert_eq!(body["data"]["retries"]["maximum"]["target"], 4, "{body}");
    assert_eq!(body["data"]["retries"]["maximum"]["value"], 9, "{body}");
    assert_eq!(body["data"]["name"]["minLength"]["target"], 1, "{body}");
    assert!(body["data"].get("colour").is_none(), "{body}");
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"name": "X", "retries": 9}})),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["data"]["retries"]["maximum"]["message"]
            .as_str()
            .unwrap()
            .contains("0 to 4"),
        "{:?}",
        r.json()
    );
    let r = b.call("PUT", &path, Some(&token), Some(json!({"data": {}})));
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["name"]["required"].is_object());
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("application/json"),
        Some(b"{\"data\": {\"name\": ".to_vec()),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["data"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(b.store.faxboxes(&acme.id).unwrap().len(), 1);

    let r = b.call("DELETE", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    let r = b.call("GET", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.status, 404);
}

#[test]
fn a_pdf_uploaded_as_multipart_is_faxed_over_the_loopback_line() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let faxbox = b
        .store
        .create_faxbox(
            &acme.id,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                caller_id: Some("+15550001111".into()),
                retries: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    let session = Session::login(&b.base, &acme.key).unwrap();
    assert_eq!(session.account_id, acme.id.as_str());
    let job = session
        .send(
            &json!({"to_number": "555-0100", "faxbox_id": faxbox.id}),
            &[pdf_document("hello.pdf", text_pdf("Hello from the API"))],
        )
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    // Accepted means committed: the job and its document are in the store
    // (a PDF is rendered into the fax image when it is sent).
    let docs = b
        .store
        .documents(&faxbox::model::FaxId(id.clone()))
        .unwrap();
    assert_eq!(docs.len(), 1, "the original: {docs:?}");
    assert_eq!(docs[0].pages, Some(1));
    assert_eq!(job["from_number"], "+15550001111", "from the faxbox");
    assert_eq!(job["retries"], 2);
    assert_eq!(job["pages"], 1);

    let end = faxbox::client::follow(&session, &id, |_| {}).unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    let kinds: Vec<_> = b
        .store
        .documents(&faxbox::model::FaxId(id.clone()))
        .unwrap()
        .into_iter()
        .map(|d| d.kind)
        .collect();
    assert!(
        kinds.contains(&faxbox::model::DocumentKind::FaxTiff),
        "kept when sent: {kinds:?}"
    );
    let history = end["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["success"], true);
    assert_eq!(history[0]["pages_sent"], 1);
    assert_eq!(end["tx_result"]["success"], true);
    assert!(end["delivered"].is_i64());

    // Finished: in the outbox, no longer outgoing; downloads as PDF and TIFF.
    let outbox = format!("/v2/accounts/{}/faxes/outbox", acme.id);
    let token = b.token(&acme);
    let r = b.call("GET", &outbox, Some(&token), None);
    assert_eq!(r.json()["data"][0]["id"], id.as_str());
    assert_eq!(r.json()["data"][0]["to"], "555-0100");
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxes/outgoing", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"], json!([]));
    let r = b.call(
        "GET",
        &format!("{outbox}/{id}/attachment"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert!(r.body.starts_with(b"%PDF"));
    let disposition = r.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=fax_document_"),
        "{disposition}"
    );
    assert!(!disposition.contains(':'), "{disposition}");
    let r = b.call(
        "GET",
        &format!("{outbox}/{id}/attachment?format=tiff"),
        Some(&token),
        None,
    );
    assert_eq!(r.header("content-type"), Some("image/tiff"));
    assert_eq!(faxbox::documents::count_tiff_pages(&r.body).unwrap(), 1);
    let r = b.call(
        "GET",
        &format!("{outbox}/{id}/attachment?format=original"),
        Some(&token),
        None,
    );
    assert_eq!(r.body, text_pdf("Hello from the API"));

    // Prometheus metrics, open like /healthz: the fax, its attempt, the
    // 201s (two tokens and the fax).
    let r = b.call("GET", "/metrics", None, None);
    assert_eq!(r.status, 200);
    let metrics = String::from_utf8(r.body).unwrap();
    for line in [
        "faxbox_faxes{folder=\"outbox\",status=\"completed\"} 1",
        "faxbox_attempts_total{outcome=\"success\",result_code=\"0\"} 1",
        "faxbox_pages_sent_total 1",
        "faxbox_api_replies_total{code=\"201\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    let r = b.call("DELETE", &format!("{outbox}/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert!(b.store.fax(&faxbox::model::FaxId(id)).is_err());
}

#[test]
fn bad_uploads_are_refused_with_the_reason_and_store_nothing() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/faxes/outgoing", acme.id);
    let upload = |data: Value, docs: &[Document]| {
        let (ct, body) = multipart_body(&data, docs);
        b.raw("PUT", &path, Some(&token), Some(&ct), Some(body))
    };

    // A corrupt PDF: the conversion's own words, nothing stored.
    let mut broken = text_pdf("x");
    broken.truncate(40);
    let r = upload(
        json!({"to_number": "5550100"}),
        &[pdf_document("broken.pdf", broken)],
    );
    assert_eq!(r.status, 400, "{:?}", r.json());
    let text = r.json()["data"]["document"]["convert"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("broken.pdf"), "{text}");

    // No document, and a number that is not one: both named.
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"to_number": "12"}})),
    );
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(
        body["data"]["document.url"]["required"]["message"],
        "add document url or upload a document"
    );
    assert!(
        body["data"]["to_number"]["required"]["message"]
            .as_str()
            .unwrap()
            .starts_with("add a valid number to send the fax to"),
        "{body}"
    );

    // An unknown faxbox, a bad field, a wrong content type, a body too large.
    let r = upload(
        json!({"to_number": "5550100", "faxbox_id": "0123456789abcdef0123456789abcdef"}),
        &[pdf_document("a.pdf", text_pdf("a"))],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["faxbox_id"]["not_found"].is_object());
    let r = upload(
        json!({"to_number": "5550100", "retries": "many"}),
        &[pdf_document("a.pdf", text_pdf("a"))],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["retries"]["type"]["target"], "integer");
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("text/csv"),
        Some(b"a,b".to_vec()),
    );
    assert_eq!(r.status, 415);
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("application/pdf"),
        Some(vec![b'x'; 3 * 1024 * 1024]),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["message"], "request_entity_too_large");
    // A raw PDF body whose query string gives a field a bad value.
    let r = b.raw(
        "PUT",
        &format!("{path}?to_number=5550100&retries=many"),
        Some(&token),
        Some("application/pdf"),
        Some(text_pdf("raw")),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["retries"]["type"].is_object());

    let faxes = b
        .store
        .faxes(&JobFilter {
            account: Some(acme.id.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(faxes.is_empty(), "nothing stored: {faxes:?}");
}

#[test]
fn another_accounts_fax_is_not_found() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");
    let session = Session::login(&b.base, &other.key).unwrap();
    let job = session
        .send(
            &json!({"to_number": "5550100"}),
            &[pdf_document("a.pdf", text_pdf("theirs"))],
        )
        .unwrap();
    let id = job["id"].as_str().unwrap();
    let token = b.token(&acme);
    for path in ["outgoing", "outbox"] {
        let r = b.call(
            "GET",
            &format!("/v2/accounts/{}/faxes/{path}/{id}", acme.id),
            Some(&token),
            None,
        );
        assert_eq!(r.status, 404, "{path}");
    }
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxes/outbox/{id}/attachment", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
    wait_for("their fax to finish", Duration::from_secs(60), || {
        b.store
            .fax(&faxbox::model::FaxId(id.to_owned()))
            .unwrap()
            .status
            .is_some_and(JobStatus::is_terminal)
    });
}

/// Starts `faxbox serve` on a free port in `dir`; returns it and the API
/// address from its banner.
fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    std::fs::write(
        dir.join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::harness::faxbox_bin())
        .args(["--data-dir", "data", "serve"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let banner = crate::harness::serve_banner(&mut child);
    (child, crate::harness::banner_api_url(&banner))
}

#[test]
fn send_wait_follows_a_fax_through_a_running_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path());
    std::fs::write(
        dir.path().join("hello.pdf"),
        text_pdf("Sent by faxbox send"),
    )
    .unwrap();
    let send = |args: &[&str]| {
        std::process::Command::new(crate::harness::faxbox_bin())
            .args(["--data-dir", "data", "send", "--url", &url])
            .args(args)
            .current_dir(dir.path())
            .env_remove("FAXBOX_TOKEN")
            .output()
            .unwrap()
    };

    // The local admin key that serve wrote is found without --token.
    let out = send(&["--to", "555-0100", "--wait", "hello.pdf"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 32, "the job id alone on stdout: {id:?}");
    assert!(stderr.contains("completed"), "{stderr}");

    // A refused fax: a non-zero exit and the server's reason.
    let out = send(&["--to", "12", "hello.pdf"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("add a valid number to send the fax to"),
        "{stderr}"
    );
    let out = send(&["--to", "5550100", "--token", "wrong", "hello.pdf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the API key"));

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "serve stops cleanly");
    let store = Store::open_data_dir(&dir.path().join("data")).unwrap();
    let fax = store.fax(&faxbox::model::FaxId(id)).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Completed));
}

/// Issue 27: an encrypted PDF is sent with its password given to `faxbox
/// send` (here in the environment, as its help advises); the password
/// opens it at intake and is written nowhere in the data dir. Without it,
/// or with a wrong one, nothing is stored and the sender is told which.
#[test]
fn an_encrypted_pdf_is_sent_with_its_password_and_the_password_is_not_kept() {
    const PASSWORD: &str = "Lab-2026-secret";
    let Some(locked) = crate::harness::ghostscript_pdf(&text_pdf("Results"), Some(PASSWORD)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path());
    std::fs::write(dir.path().join("results.pdf"), locked).unwrap();
    let send = |password: Option<&str>| {
        let mut cmd = std::process::Command::new(crate::harness::faxbox_bin());
        cmd.args(["--data-dir", "data", "send", "--url", &url])
            .args(["--to", "555-0100", "--wait", "results.pdf"])
            .current_dir(dir.path())
            .env_remove("FAXBOX_TOKEN")
            .env_remove("FAXBOX_DOCUMENT_PASSWORD");
        if let Some(p) = password {
            cmd.env("FAXBOX_DOCUMENT_PASSWORD", p);
        }
        cmd.output().unwrap()
    };
    let out = send(None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'results.pdf' is password-protected"),
        "{stderr}"
    );
    let out = send(Some("lab-2025"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not open it"), "{stderr}");

    let out = send(Some(PASSWORD));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("completed"), "{stderr}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "serve stops cleanly");
    let store = Store::open_data_dir(&dir.path().join("data")).unwrap();
    assert_eq!(
        store.faxes(&JobFilter::default()).unwrap().len(),
        1,
        "refused sends stored nothing"
    );
    let fax = store.fax(&faxbox::model::FaxId(id)).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Completed));
    drop(store);
    for file in walk(&dir.path().join("data")) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "the password is written in {}",
            file.display()
        );
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Long on purpose: the faxes sent in the first steps (a raw PDF body, faxes
/// under the faxbox and beside it) are the set the faxbox-scoped listing, the
/// paging and the resubmission then walk; each later step needs exactly those
/// faxes.
#[test]
fn faxbox_scoped_faxes_resubmit_and_pages() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let desk = b
        .store
        .create_faxbox(
            &acme.id,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                fax_header: Some("ACME DESK".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let base = format!("/v2/accounts/{}", acme.id);
    let send = |path: &str, to: &str| {
        let (ct, body) = multipart_body(
            &json!({ "to_number": to }),
            &[pdf_document("a.pdf", text_pdf(to))],
        );
        let r = b.raw("PUT", path, Some(&token), Some(&ct), Some(body));
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.json()["data"]["id"].as_str().unwrap().to_owned()
    };
    let scoped = send(&format!("{base}/faxboxes/{}/faxes", desk.id), "5550101");
    let plain = send(&format!("{base}/faxes"), "5550102");
    // A raw PDF body with the job's fields in the query string.
    let r = b.raw(
        "PUT",
        &format!("{base}/faxes/outgoing?to_number=5550103&retries=2"),
        Some(&token),
        Some("application/pdf"),
        Some(text_pdf("raw body")),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["data"]["retries"], 2);
    let third = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let ids = [&scoped, &plain, &third].map(|i| faxbox::model::FaxId(i.clone()));
    wait_for("three faxes to finish", Duration::from_secs(120), || {
        ids.iter().all(|id| {
            b.store
                .fax(id)
                .unwrap()
                .status
                .is_some_and(JobStatus::is_terminal)
        })
    });

    // Under the faxbox: its fields, and only its faxes.
    let r = b.call(
        "GET",
        &format!("{base}/faxboxes/{}/faxes/outbox/{scoped}", desk.id),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"]["fax_identity_name"], "ACME DESK");
    assert_eq!(r.json()["data"]["faxbox_id"], desk.id.as_str());
    let r = b.call(
        "GET",
        &format!("{base}/faxboxes/{}/faxes/outbox", desk.id),
        Some(&token),
        None,
    );
    let rows = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], scoped.as_str());
    let r = b.call(
        "GET",
        &format!("{base}/faxboxes/{}/faxes/outbox/{plain}", desk.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404, "not a fax of that faxbox");

    // Pages of two, then the rest, newest first, with no fax twice.
    let r = b.call(
        "GET",
        &format!("{base}/faxes/outbox?page_size=2"),
        Some(&token),
        None,
    );
    let first = r.json();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let next = first["next_start_key"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let r = b.call(
        "GET",
        &format!("{base}/faxes/outbox?page_size=2&start_key={next}"),
        Some(&token),
        None,
    );
    let second = r.json();
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert!(second.get("next_start_key").is_none());
    let mut seen: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut all = vec![scoped.clone(), plain.clone(), third.clone()];
    all.sort();
    assert_eq!(seen, all);
    let r = b.call(
        "GET",
        &format!("{base}/faxes/outbox?page_size=many"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 400);

    // Resubmit: a new job with the same document, sent again.
    let r = b.call(
        "PUT",
        &format!("{base}/faxes/outbox/{plain}"),
        Some(&token),
        Some(json!({"action": "resubmit"})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let again = r.json()["data"]["id"].as_str().unwrap().to_owned();
    assert_ne!(again, plain);
    let r = b.call(
        "PUT",
        &format!("{base}/faxes/outbox/{plain}"),
        Some(&token),
        Some(json!({"action": "shred"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["action"]["enum"].is_object());
    let r = b.call(
        "PUT",
        &format!("{base}/faxes/outbox/{plain}"),
        Some(&token),
        Some(json!({"data": {}})),
    );
    assert_eq!(
        r.json()["data"]["action"]["required"]["message"],
        "action required"
    );
    let again = faxbox::model::FaxId(again);
    wait_for("the resubmitted fax", Duration::from_secs(60), || {
        b.store.fax(&again).unwrap().status == Some(JobStatus::Completed)
    });
}

/// Issue 27: no listing returns everything at once. 120 faxes waiting for
/// their documents (so the line leaves them queued) come in pages of 50
/// unless page_size says otherwise, in the order of the store, each once;
/// a filter reads on past a page of rows it drops.
#[test]
fn listings_are_paged_by_default_and_next_start_key_leads_through_all() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let queued: Vec<String> = b
        .store
        .create_jobs(
            (0..120)
                .map(|i| faxbox::model::NewFax {
                    account_id: acme.id.clone(),
                    to_number: format!("555{i:04}"),
                    to_number_normalized: format!("+1555{i:04}"),
                    retries: 1,
                    ..Default::default()
                })
                .collect(),
            vec![],
            JobStatus::AttachingFiles,
        )
        .unwrap()
        .into_iter()
        .rev()
        .map(|f| f.id.to_string())
        .collect();
    let outgoing = format!("/v2/accounts/{}/faxes/outgoing", acme.id);
    let get = |query: &str| {
        let r = b.call("GET", &format!("{outgoing}{query}"), Some(&token), None);
        assert_eq!(r.status, 200, "{query}: {:?}", r.json());
        r.json()
    };
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = get("");
    assert_eq!(first["page_size"], 50);
    assert_eq!(first["start_key"], queued[0].as_str());
    let mut seen = ids(&first);
    let mut next = first["next_start_key"].as_str().map(str::to_owned);
    while let Some(key) = next {
        let page = get(&format!("?start_key={key}"));
        assert_eq!(page["start_key"], key.as_str());
        seen.extend(ids(&page));
        next = page["next_start_key"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, queued, "every fax once, newest first");

    let all = get("?page_size=5000");
    assert_eq!(all["page_size"], 120);
    assert!(all.get("next_start_key").is_none());
    let oldest = get("?page_size=10&filter_to_number=5550000");
    assert_eq!(ids(&oldest), [queued[119].clone()]);
    let r = b.call(
        "GET",
        &format!("{outgoing}?start_key=0badc0de"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 400, "{:?}", r.json());
    let r = b.call("GET", "/v2/status", Some(&token), None);
    assert_eq!(r.json()["data"]["totals"]["pending"], 120);
}

#[test]
fn a_received_fax_is_listed_downloaded_and_forwarded() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let inbox_box = b
        .store
        .create_faxbox(
            &acme.id,
            faxbox::model::FaxboxFields {
                name: Some("Reception".into()),
                numbers: Some(vec!["5550199".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    let base = format!("/v2/accounts/{}", acme.id);
    let (ct, body) = multipart_body(
        &json!({ "to_number": "5550199" }),
        &[pdf_document("in.pdf", text_pdf("to our own inbox"))],
    );
    let r = b.raw(
        "PUT",
        &format!("{base}/faxes"),
        Some(&token),
        Some(&ct),
        Some(body),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());

    let mut received = String::new();
    wait_for(
        "the fax to arrive in the inbox",
        Duration::from_secs(60),
        || {
            let r = b.call(
                "GET",
                &format!("{base}/faxboxes/{}/faxes/inbox", inbox_box.id),
                Some(&token),
                None,
            );
            match r.json()["data"][0]["id"].as_str() {
                Some(id) => {
                    received = id.to_owned();
                    true
                }
                None => false,
            }
        },
    );
    let r = b.call(
        "GET",
        &format!("{base}/faxes/inbox/{received}"),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"]["folder"], "inbox");
    assert!(
        r.json()["data"].get("status").is_none(),
        "Kazoo: no status on inbox faxes"
    );
    assert_eq!(r.json()["data"]["rx_result"]["pages"], 1);
    let r = b.call(
        "GET",
        &format!("{base}/faxes/inbox/{received}/attachment"),
        Some(&token),
        None,
    );
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert!(r.body.starts_with(b"%PDF"));
    // An inbox fax is not in the outbox.
    let r = b.call(
        "GET",
        &format!("{base}/faxes/outbox/{received}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);

    let r = b.call(
        "PUT",
        &format!("{base}/faxes/inbox/{received}"),
        Some(&token),
        Some(json!({"action": "forward", "data": {"to_number": "5550100"}})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let forwarded = faxbox::model::FaxId(r.json()["data"]["id"].as_str().unwrap().to_owned());
    wait_for(
        "the forwarded fax to be sent",
        Duration::from_secs(60),
        || b.store.fax(&forwarded).unwrap().status == Some(JobStatus::Completed),
    );
}

/// A document server on loopback: `/doc.pdf`, a redirect to it, and 404s.
fn document_server(pdf: Vec<u8>) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    std::thread::spawn(move || {
        for rq in server.incoming_requests() {
            let response = match rq.url() {
                "/doc.pdf" => tiny_http::Response::from_data(pdf.clone()).with_header(
                    tiny_http::Header::from_bytes("Content-Type", "application/pdf").unwrap(),
                ),
                "/hop" => tiny_http::Response::from_data(Vec::new())
                    .with_status_code(302)
                    .with_header(tiny_http::Header::from_bytes("Location", "/doc.pdf").unwrap()),
                _ => tiny_http::Response::from_data(b"no".to_vec()).with_status_code(404),
            };
            let _ = rq.respond(response);
        }
    });
    base
}

#[test]
fn a_document_url_is_fetched_only_where_the_guard_allows() {
    let server = document_server(text_pdf("Fetched by URL"));
    let put = |b: &TestBox, token: &str, account: &AccountId, url: String| {
        b.call(
            "PUT",
            &format!("/v2/accounts/{account}/faxes"),
            Some(token),
            Some(json!({"data": {"to_number": "5550100", "document": {"url": url}}})),
        )
    };

    // By default the box does not fetch from its own machine or network.
    let guarded = TestBox::start();
    let acme = guarded.tenant("Acme");
    let token = guarded.token(&acme);
    let r = put(&guarded, &token, &acme.id, format!("{server}/doc.pdf"));
    assert_eq!(r.status, 400, "{:?}", r.json());
    let message = r.json()["data"]["document.url"]["fetch"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("public addresses"), "{message}");
    assert!(
        guarded
            .store
            .faxes(&JobFilter::default())
            .unwrap()
            .is_empty()
    );

    // An intranet document server, allowed by the account's setting:
    // fetched (through a redirect) and sent.
    let open = TestBox::start();
    let acme = open.tenant("Acme");
    let token = open.token(&acme);
    let r = open.call(
        "POST",
        &format!("/v2/accounts/{}/configs/fax", acme.id),
        Some(&token),
        Some(json!({"data": {"allow_private_document_urls": true}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = put(&open, &token, &acme.id, format!("{server}/hop"));
    assert_eq!(r.status, 201, "{:?}", r.json());
    let id = faxbox::model::FaxId(r.json()["data"]["id"].as_str().unwrap().to_owned());
    let original = open
        .store
        .documents(&id)
        .unwrap()
        .into_iter()
        .find(|d| d.kind == faxbox::model::DocumentKind::Original)
        .expect("the fetched document is kept as the original");
    assert_eq!(original.content_type, "application/pdf");
    assert_eq!(
        open.store.document_bytes(&original.id).unwrap(),
        text_pdf("Fetched by URL")
    );
    let r = put(&open, &token, &acme.id, format!("{server}/missing.pdf"));
    assert_eq!(r.status, 400);
    assert!(
        r.json()["data"]["document.url"]["fetch"]["message"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{:?}",
        r.json()
    );
    wait_for(
        "the fetched fax to be sent",
        Duration::from_secs(60),
        || open.store.fax(&id).unwrap().status == Some(JobStatus::Completed),
    );
}

#[test]
fn fax_settings_are_read_and_written_per_account_and_for_the_box() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/configs/fax", acme.id);

    let r = b.call("GET", &path, Some(&token), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let default = r.json()["data"]["max_outbound"].clone();
    assert!(default.is_i64(), "{:?}", r.json());
    assert!(
        r.json()["data"].get("serialize_outbound_numbers").is_none(),
        "box-wide keys are not an account's"
    );

    let r = b.call(
        "PATCH",
        &path,
        Some(&token),
        Some(json!({"data": {"max_outbound": 2}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["max_outbound"], 2);
    assert_eq!(
        b.store.setting_i64(Some(&acme.id), "max_outbound").unwrap(),
        2
    );

    // Every bad key is named, and none of the changes is made.
    let r = b.call(
        "PATCH",
        &path,
        Some(&token),
        Some(json!({"data": {
            "max_outbound": "many",
            "serialize_outbound_numbers": true,
            "no_such_key": 1,
        }})),
    );
    assert_eq!(r.status, 400);
    let data = r.json()["data"].clone();
    assert!(data["max_outbound"]["type"].is_object(), "{data}");
    assert!(
        data["serialize_outbound_numbers"]["scope"].is_object(),
        "{data}"
    );
    assert!(data["no_such_key"].is_object(), "{data}");
    assert_eq!(
        b.store.setting_i64(Some(&acme.id), "max_outbound").unwrap(),
        2
    );

    let r = b.call(
        "POST",
        &path,
        Some(&token),
        Some(json!({"data": {"max_outbound": null}})),
    );
    assert_eq!(r.json()["data"]["max_outbound"], default);

    // The box's settings are the admin's.
    let r = b.call("GET", "/v2/system_configs/fax", Some(&token), None);
    assert_eq!(r.status, 403);
    let admin = b.store.create_admin_account("Admin").unwrap().id;
    let (_, key) = b.store.create_api_key(&admin, "admin").unwrap();
    let admin_token = b.token(&Tenant { id: admin, key });
    let r = b.call(
        "POST",
        "/v2/system_configs/fax",
        Some(&admin_token),
        Some(json!({"data": {"serialize_outbound_numbers": false}})),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["serialize_outbound_numbers"], false);
    assert!(
        !b.store
            .setting_bool(None, "serialize_outbound_numbers")
            .unwrap()
    );
}

#[test]
fn users_and_api_keys_and_a_revoked_key_ends_its_tokens() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");
    let token = b.token(&acme);
    let base = format!("/v2/accounts/{}", acme.id);

    let r = b.call("GET", &base, Some(&token), None);
    assert_eq!(r.json()["data"]["name"], "Acme");

    let r = b.call(
        "PUT",
        &format!("{base}/users"),
        Some(&token),
        Some(json!({"data": {"email": "Ann@Acme.test", "name": "Ann"}})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let user = r.json()["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["data"]["email"], "ann@acme.test");
    let r = b.call(
        "PUT",
        &format!("{base}/users"),
        Some(&token),
        Some(json!({"data": {"email": "not an address"}})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["email"]["format"].is_object());
    let r = b.call("GET", &format!("{base}/users"), Some(&token), None);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    let theirs = b
        .store
        .create_user(&other.id, "bob@other.test", "Bob")
        .unwrap();
    let r = b.call(
        "DELETE",
        &format!("{base}/users/{}", theirs.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
    let r = b.call(
        "DELETE",
        &format!("{base}/users/{user}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);

    // A new key works once; revoking it ends the tokens it gave at once.
    let r = b.call(
        "PUT",
        &format!("{base}/api_keys"),
        Some(&token),
        Some(json!({"data": {"label": "scanner"}})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let key_id = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let secret = r.json()["data"]["api_key"].as_str().unwrap().to_owned();
    let scanner = b.token(&Tenant {
        id: acme.id.clone(),
        key: secret,
    });
    let r = b.call("GET", &format!("{base}/api_keys"), Some(&scanner), None);
    assert_eq!(r.status, 200);
    let listed = r.json()["data"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        listed.to_string().find("api_key").is_none(),
        "secrets are never listed"
    );
    let r = b.call(
        "DELETE",
        &format!("{base}/api_keys/{key_id}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    let r = b.call("GET", &base, Some(&scanner), None);
    assert_eq!(r.status, 401, "the revoked key's token no longer works");
    let r = b.call("GET", &base, Some(&token), None);
    assert_eq!(r.status, 200, "the other key's token still does");
}

/// An admin account with its key, as a new box makes at first start.
fn admin(b: &TestBox) -> Tenant {
    let id = b.store.create_admin_account("Admin").unwrap().id;
    let (_, key) = b.store.create_api_key(&id, "test").unwrap();
    Tenant { id, key }
}

/// The reply without the envelope keys that differ on every request
/// (`request_id`, `timestamp`) or name the box (`node`, `version`), each
/// checked present.
fn error_body(r: &RawResponse) -> Value {
    let mut body = r.json();
    for key in ["request_id", "timestamp", "node", "version"] {
        assert!(body[key].is_string(), "{key} in {body}");
        body.as_object_mut().unwrap().remove(key);
    }
    body
}

/// Long on purpose: one account is made, bad input about it is refused, another
/// account may not touch it, and the admin deletes it, each step checking the
/// account list the one before it left.
#[test]
fn accounts_are_created_and_deleted_by_the_admin_only() {
    let b = TestBox::start();
    let root = admin(&b);
    let acme = b.tenant("Acme");
    let (admin_token, acme_token) = (b.token(&root), b.token(&acme));

    let r = b.call(
        "PUT",
        "/v2/accounts",
        Some(&admin_token),
        Some(json!({"data": {"name": "Branch", "realm": "Branch.Example.com"}})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    let created = r.json()["data"].clone();
    assert_eq!(created["name"], "Branch");
    assert_eq!(created["realm"], "branch.example.com");
    assert_eq!(created["is_admin"], false);
    let id = created["id"].as_str().unwrap().to_owned();
    let r = b.call("GET", "/v2/accounts", Some(&admin_token), None);
    let list = r.json()["data"].clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Admin", "Acme", "Branch"]);
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{id}"),
        Some(&admin_token),
        None,
    );
    assert_eq!(r.json()["data"]["name"], "Branch");

    // Bad input is named and changes nothing.
    let r = b.call(
        "PUT",
        "/v2/accounts",
        Some(&admin_token),
        Some(json!({"data": {"realm": "branch.example.com"}})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["data"]["name"]["required"]["message"],
        "an account needs a name (1 to 128 characters)"
    );
    let r = b.call(
        "PUT",
        "/v2/accounts",
        Some(&admin_token),
        Some(json!({"data": {"name": "Twin", "realm": "branch.example.com"}})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["realm"]["unique"].is_object());
    assert_eq!(b.store.accounts().unwrap().len(), 3);

    // Another account may neither create nor delete accounts: Kazoo's 403.
    let forbidden = json!({
        "data": {"message": "only the box's admin account may do this"},
        "error": "403",
        "message": "forbidden",
        "status": "error",
        "auth_token": acme_token,
    });
    let r = b.call(
        "PUT",
        "/v2/accounts",
        Some(&acme_token),
        Some(json!({"data": {"name": "Mine"}})),
    );
    assert_eq!(r.status, 403);
    assert_eq!(error_body(&r), forbidden);
    let r = b.call(
        "DELETE",
        &format!("/v2/accounts/{id}"),
        Some(&acme_token),
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(error_body(&r), forbidden);
    let r = b.call("GET", "/v2/accounts", Some(&acme_token), None);
    assert_eq!(r.status, 403);
    assert_eq!(b.store.accounts().unwrap().len(), 3);

    // The admin deletes it; the admin account itself stays.
    let r = b.call(
        "DELETE",
        &format!("/v2/accounts/{id}"),
        Some(&admin_token),
        None,
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["id"], id.as_str());
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{id}"),
        Some(&admin_token),
        None,
    );
    assert_eq!(r.status, 404);
    let r = b.call(
        "DELETE",
        &format!("/v2/accounts/{id}"),
        Some(&admin_token),
        None,
    );
    assert_eq!(r.status, 404);
    let r = b.call(
        "DELETE",
        &format!("/v2/accounts/{}", root.id),
        Some(&admin_token),
        None,
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["data"]["message"],
        "the box's admin account cannot be deleted"
    );
    assert_eq!(b.store.accounts().unwrap().len(), 2);
}

/// Every error body the faxes API gives, byte for byte as Kazoo's.
///
/// Long on purpose: the catalogue side by side (validation, bad JSON, media
/// type, size, unknown ids, another account's fax, tokens, a private document
/// URL), one request each on one box with two accounts, so it reads against
/// docs/kazoo.md in one place.
#[test]
fn error_bodies_are_exactly_kazoos() {
    let server = document_server(text_pdf("local"));
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/faxes", acme.id);
    // Kazoo's error envelope: the HTTP code again, its name, what was wrong.
    let refused = |code: &str, name: &str, data: Value| json!({"data": data, "error": code, "message": name, "status": "error", "auth_token": token});
    let invalid = |data: Value| refused("400", "validation error", data);
    let upload = |data: Value| {
        let (ct, body) = multipart_body(&data, &[pdf_document("a.pdf", text_pdf("a"))]);
        b.raw("PUT", &path, Some(&token), Some(&ct), Some(body))
    };

    // Missing document.
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"to_number": "5550100"}})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        error_body(&r),
        invalid(json!({"document.url": {"required": {
            "message": "add document url or upload a document"}}}))
    );
    // Invalid number.
    let r = upload(json!({"to_number": "12"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        error_body(&r),
        invalid(json!({"to_number": {"required": {
            "message": "add a valid number to send the fax to (invalid fax number: 12: a fax number has 3 to 20 digits)"}}}))
    );
    // Malformed JSON.
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("application/json"),
        Some(b"{\"data\": ".to_vec()),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        error_body(&r),
        refused(
            "400",
            "invalid_request",
            json!({"message": "the body is not valid JSON: EOF while parsing a value at line 1 column 9"})
        )
    );
    // Unsupported content type.
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("text/csv"),
        Some(b"a,b".to_vec()),
    );
    assert_eq!(r.status, 415);
    assert_eq!(
        error_body(&r),
        refused(
            "415",
            "unsupported_media_type",
            json!({"message": "a fax is sent as multipart/mixed or multipart/form-data (one JSON part, then the documents), as JSON with document.url, or as a PDF or TIFF body with its fields in the query string; not as text/csv"})
        )
    );
    // Oversize body (the test box takes 2 MiB).
    let r = b.raw(
        "PUT",
        &path,
        Some(&token),
        Some("application/pdf"),
        Some(vec![b'x'; 3 * 1024 * 1024]),
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        error_body(&r),
        refused(
            "413",
            "request_entity_too_large",
            json!({"message": "the request body is larger than 2097152 bytes"})
        )
    );
    // Unknown faxbox: named in the job, and in the path.
    let unknown = "0123456789abcdef0123456789abcdef";
    let r = upload(json!({"to_number": "5550100", "faxbox_id": unknown}));
    assert_eq!(r.status, 400);
    assert_eq!(
        error_body(&r),
        invalid(json!({"faxbox_id": {"not_found": {
            "message": format!("there is no faxbox {unknown} in this account")}}}))
    );
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxboxes/{unknown}/faxes/outbox", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        error_body(&r),
        refused(
            "404",
            "bad_identifier",
            json!({"message": format!("there is no faxbox {unknown} in this account"), "cause": unknown})
        )
    );
    // Another account's fax.
    let theirs = Session::login(&b.base, &other.key)
        .unwrap()
        .send(
            &json!({"to_number": "5550100"}),
            &[pdf_document("t.pdf", text_pdf("t"))],
        )
        .unwrap();
    let theirs = theirs["id"].as_str().unwrap();
    let r = b.call(
        "GET",
        &format!("{path}/outgoing/{theirs}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        error_body(&r),
        refused(
            "404",
            "bad_identifier",
            json!({"message": format!("there is no fax {theirs} in this account"), "cause": theirs})
        )
    );
    // Missing and bad token.
    let unauthorized = json!({
        "data": {"message": "no valid auth token: authenticate with PUT /v2/api_auth and send the token as X-Auth-Token"},
        "error": "401", "message": "invalid_credentials", "status": "error", "auth_token": ""});
    for t in [None, Some("not-a-token")] {
        let r = b.call("GET", &format!("{path}/outbox"), t, None);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("X-Auth-Token"));
        assert_eq!(error_body(&r), unauthorized);
    }
    // A document URL on 127.0.0.1, with the default guard.
    let url = format!("{server}/doc.pdf");
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"to_number": "5550100", "document": {"url": url}}})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        error_body(&r),
        invalid(json!({"document.url": {"fetch": {"message": format!(
            "{url} points to 127.0.0.1, an address of this fax box or its own network; it fetches documents only from public addresses (an administrator can allow private ones with the fax setting allow_private_document_urls)"
        )}}}))
    );
    wait_for("the other account's fax", Duration::from_secs(60), || {
        b.store
            .fax(&faxbox::model::FaxId(theirs.to_owned()))
            .unwrap()
            .status
            .is_some_and(JobStatus::is_terminal)
    });
}

#[test]
fn resubmit_takes_changes_checked_like_a_new_fax() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let session = Session::login(&b.base, &acme.key).unwrap();
    let job = session
        .send(
            &json!({"to_number": "5550100", "retries": 1}),
            &[pdf_document("a.pdf", text_pdf("again"))],
        )
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let end = faxbox::client::follow(&session, &id, |_| {}).unwrap();
    assert_eq!(end["status"], "completed");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/faxes/outbox/{id}", acme.id);
    let resubmit = |data: Value| {
        b.call(
            "PUT",
            &path,
            Some(&token),
            Some(json!({"action": "resubmit", "data": data})),
        )
    };

    // Bad changes are refused, each named, and nothing is queued.
    let r = resubmit(json!({"to_number": "12", "retries": 9, "colour": "red"}));
    assert_eq!(r.status, 400, "{:?}", r.json());
    let r = resubmit(json!({"to_number": "12", "retries": 9}));
    assert_eq!(r.status, 400, "{:?}", r.json());
    let body = r.json();
    assert!(
        body["data"]["to_number"]["required"]["message"]
            .as_str()
            .unwrap()
            .starts_with("add a valid number to send the fax to")
    );
    assert_eq!(
        body["data"]["retries"]["maximum"]["message"],
        "retries is the total number of attempts, 0 to 4; 9 is out of range"
    );
    let r = resubmit(json!({"document": {"url": "http://example.com/x.pdf"}}));
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["document"]["unsupported"].is_object());
    let r = resubmit(json!({"notifications": {"email": {"send_to": "not-an-address"}}}));
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["notifications.email.send_to"]["format"].is_object());
    assert_eq!(b.store.faxes(&JobFilter::default()).unwrap().len(), 1);

    // Good changes make the new job, with the same document.
    let r = resubmit(json!({"to_number": "555-0199", "retries": 3, "subject": "Second try"}));
    assert_eq!(r.status, 201, "{:?}", r.json());
    let again = r.json()["data"].clone();
    assert_ne!(again["id"], id.as_str());
    assert_eq!(again["to_number"], "555-0199");
    assert_eq!(again["retries"], 3);
    assert_eq!(again["subject"], "Second try");
    let again_id = faxbox::model::FaxId(again["id"].as_str().unwrap().to_owned());
    let stored = b.store.fax(&again_id).unwrap();
    assert_eq!(stored.to_number_normalized, "5550199");
    let original = |fax: &faxbox::model::FaxId| {
        let docs = b.store.documents(fax).unwrap();
        let doc = docs
            .iter()
            .find(|d| d.kind == faxbox::model::DocumentKind::Original)
            .unwrap();
        b.store.document_bytes(&doc.id).unwrap()
    };
    assert_eq!(original(&again_id), text_pdf("again"));
    wait_for("the changed fax", Duration::from_secs(60), || {
        b.store.fax(&again_id).unwrap().status == Some(JobStatus::Completed)
    });
}

/// Long on purpose: one box holding a sent fax, a busy fax waiting to retry and
/// a paused line is looked at by an account and by the admin; who sees what is
/// only shown against that same state, and the busy fax is cancelled at the end
/// so the box stops clean.
#[test]
fn status_shows_lines_queues_and_todays_counts_to_whom_they_concern() {
    let b = TestBox::start();
    let root = admin(&b);
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");
    let (admin_token, acme_token) = (b.token(&root), b.token(&acme));

    let r = b.call("GET", "/v2/status", Some(&admin_token), None);
    assert_eq!(r.status, 200, "{:?}", r.json());
    let idle = r.json()["data"].clone();
    assert_eq!(
        idle["lines"],
        json!([{"name": "loopback", "capacity": 2, "state": "up", "reason": null,
                "channels": [{"channel": 1, "state": "idle", "text": "idle"},
                             {"channel": 2, "state": "idle", "text": "idle"}]}])
    );
    assert_eq!(idle["accounts"].as_array().unwrap().len(), 3);
    assert!(idle["generated"].as_i64().unwrap() >= idle["day_start"].as_i64().unwrap());
    assert!(idle["api"]["requests"].is_u64());

    // Acme: one fax sent, one to a busy number waiting to retry.
    let session = Session::login(&b.base, &acme.key).unwrap();
    let sent = session
        .send(
            &json!({"to_number": "5550100"}),
            &[pdf_document("a.pdf", text_pdf("a"))],
        )
        .unwrap();
    let busy = session
        .send(
            &json!({"to_number": BUSY_NUMBER, "retries": 3}),
            &[pdf_document("b.pdf", text_pdf("b"))],
        )
        .unwrap();
    let busy_id = busy["id"].as_str().unwrap().to_owned();
    wait_for(
        "one sent, one waiting to retry",
        Duration::from_secs(60),
        || {
            let sent = b
                .store
                .fax(&faxbox::model::FaxId(sent["id"].as_str().unwrap().into()))
                .unwrap();
            let busy = b.store.fax(&faxbox::model::FaxId(busy_id.clone())).unwrap();
            sent.status == Some(JobStatus::Completed)
                && busy.status == Some(JobStatus::Pending)
                && busy.attempts == 1
        },
    );
    b.store
        .set_line_paused("loopback", true, "new toner")
        .unwrap();

    let r = b.call("GET", "/v2/status", Some(&acme_token), None);
    assert_eq!(r.status, 200);
    let own = r.json()["data"].clone();
    // An account sees its own queue only, and no box-wide API counters.
    let accounts = own["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1, "{own}");
    let q = &accounts[0];
    assert_eq!(q["account_id"], acme.id.as_str());
    assert_eq!(q["account_name"], "Acme");
    assert_eq!(
        (q["pending"].as_u64(), q["active"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(q["completed_today"], 1);
    assert_eq!(q["failed_today"], 0);
    assert_eq!(q["pages_sent_today"], 1);
    assert_eq!(q["api_accepted"], 2);
    assert_eq!(q["waiting_retry_total"], 1);
    let retry = &q["waiting_retry"][0];
    assert_eq!(retry["fax_id"], busy_id.as_str());
    assert_eq!(retry["to_number"], BUSY_NUMBER);
    assert_eq!(
        (retry["attempts"].as_u64(), retry["retries"].as_u64()),
        (Some(1), Some(3))
    );
    assert!(
        retry["next_attempt"].as_i64().unwrap() > own["generated"].as_i64().unwrap(),
        "{retry}"
    );
    assert_eq!(retry["last_cause"], "the number was busy");
    assert_eq!(own["totals"]["completed_today"], 1);
    assert!(own.get("api").is_none());
    // The job list: newest first, with the number, the pages, the document
    // and how each last ended.
    let recent = own["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{own}");
    assert_eq!(recent[0]["fax_id"], busy_id.as_str());
    assert_eq!(
        (&recent[0]["status"], &recent[0]["number"]),
        (&json!("pending"), &json!(BUSY_NUMBER))
    );
    assert_eq!(recent[0]["document"], "b.pdf");
    assert_eq!(recent[0]["last_result"], "the number was busy");
    assert_eq!(recent[0]["folder"], "outbox");
    assert_eq!(recent[1]["status"], "completed");
    assert_eq!(recent[1]["pages"], 1);
    assert!(
        own.get("intake").is_none(),
        "box-wide counts are the admin's"
    );
    // The paused line: its free channels are paused, with the reason.
    assert_eq!(own["lines"][0]["state"], "paused");
    assert_eq!(own["lines"][0]["reason"], "new toner");
    assert_eq!(own["lines"][0]["channels"][0]["state"], "paused");

    // The admin sees every account, the others' empty queues too.
    let r = b.call("GET", "/v2/status", Some(&admin_token), None);
    let all = r.json()["data"].clone();
    let names: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme", "Admin", "Other"]);
    assert_eq!(all["totals"]["api_accepted"], 2);
    assert_eq!(
        (
            all["intake"]["api"].as_u64(),
            all["intake"]["smtp"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(all["recent"].as_array().unwrap().len(), 2);
    assert_eq!(all["accounts"][2]["account_id"], other.id.as_str());
    assert_eq!(all["accounts"][2]["pending"], 0);

    let r = b.call("GET", "/v2/status", None, None);
    assert_eq!(r.status, 401);
    let r = b.call("PUT", "/v2/status", Some(&admin_token), Some(json!({})));
    assert_eq!(r.status, 405);
    // The busy fax is cancelled, so the box stops without a pending call.
    b.store
        .cancel_job(&faxbox::model::FaxId(busy_id), "test over")
        .unwrap();
}

/// A client of `GET /v2/events` on a plain socket: reads the chunked reply
/// message by message, as an EventSource does.
pub(crate) struct EventStream {
    reader: std::io::BufReader<std::net::TcpStream>,
    text: String,
    ended: bool,
}

impl EventStream {
    /// Opens the stream; returns the status line and headers, and the stream.
    pub(crate) fn open(base: &str, token: &str) -> (String, EventStream) {
        use std::io::{BufRead, Write};
        let addr = base.trim_start_matches("http://");
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            socket,
            "GET /v2/events HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut reader = std::io::BufReader::new(socket);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        (
            head,
            EventStream {
                reader,
                text: String::new(),
                ended: false,
            },
        )
    }

    /// The next message (an event or a comment), `None` once the reply ended.
    fn next(&mut self) -> Option<String> {
        use std::io::{BufRead, Read};
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let message = self.text[..end].to_owned();
                self.text.drain(..end + 2);
                return Some(message);
            }
            if self.ended {
                return None;
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).unwrap();
            assert_eq!(&chunk[size..], b"\r\n");
            if size == 0 {
                self.ended = true;
            }
            self.text
                .push_str(std::str::from_utf8(&chunk[..size]).unwrap());
        }
    }

    /// The next event with its name and JSON data, skipping comments.
    pub(crate) fn next_event(&mut self) -> Option<(String, Value)> {
        loop {
            let message = self.next()?;
            let mut name = None;
            let mut data = None;
            for line in message.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(d).unwrap());
                }
            }
            if let (Some(name), Some(data)) = (name, data) {
                return Some((name, data));
            }
        }
    }
}

#[test]
fn events_stream_a_fax_in_order_per_account_and_end_at_shutdown() {
    let mut b = TestBox::start_with(|o| o.keep_alive = Duration::from_millis(300));
    let root = admin(&b);
    let acme = b.tenant("Acme");
    let other = b.tenant("Other");
    let (head, mut acme_events) = EventStream::open(&b.base, &b.token(&acme));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let (_, mut other_events) = EventStream::open(&b.base, &b.token(&other));
    let (_, mut admin_events) = EventStream::open(&b.base, &b.token(&root));
    // The first message is a comment, sent once the stream is listening.
    for stream in [&mut acme_events, &mut other_events, &mut admin_events] {
        assert!(stream.next().unwrap().starts_with(": faxbox events"));
    }

    let session = Session::login(&b.base, &acme.key).unwrap();
    let job = session
        .send(
            &json!({"to_number": "5550100"}),
            &[
                pdf_document("two.pdf", text_pdf("page one")),
                pdf_document("more.pdf", text_pdf("page two")),
            ],
        )
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    loop {
        let (name, data) = acme_events.next_event().expect("events until the fax ends");
        assert_eq!(data["fax_id"], id.as_str(), "only this fax: {data}");
        assert_eq!(data["event"], name.as_str());
        let end = name == "job_status" && data["status"] == "completed";
        seen.push((name, data));
        if end {
            break;
        }
    }
    // Claimed, then the call step by step, then done.
    assert_eq!(seen[0].0, "job_status");
    assert_eq!(seen[0].1["status"], "processing");
    let calls: Vec<&str> = seen[1..seen.len() - 1]
        .iter()
        .map(|(name, data)| {
            assert_eq!(name, "call");
            assert_eq!(data["line"], "loopback");
            assert_eq!(data["account_id"], acme.id.as_str());
            data["status"].as_str().unwrap()
        })
        .collect();
    let negotiated = calls
        .iter()
        .position(|c| c.starts_with("Fax negotiated at "))
        .expect("negotiated");
    let page1 = calls
        .iter()
        .position(|c| *c == "Sent Page 1 of 2")
        .expect("page 1");
    let page2 = calls
        .iter()
        .position(|c| *c == "Sent Page 2 of 2")
        .expect("page 2");
    assert!(negotiated < page1 && page1 < page2, "{calls:?}");
    assert_eq!(seen.last().unwrap().1["attempts"], 1);

    // The admin saw the same; the other account nothing but keep-alives.
    let admin_seen: Vec<(String, Value)> = (0..seen.len())
        .map(|_| admin_events.next_event().unwrap())
        .collect();
    assert_eq!(admin_seen, seen);
    assert_eq!(other_events.next().unwrap(), ": keep-alive");

    // An event stream needs a token like everything else.
    let r = b.call("GET", "/v2/events", None, None);
    assert_eq!(r.status, 401);

    // Stopping the API ends every stream cleanly: a goodbye, then the end.
    b.api.take().unwrap().stop();
    for stream in [&mut acme_events, &mut other_events, &mut admin_events] {
        let (name, data) = stream.next_event().expect("a goodbye");
        assert_eq!(name, "shutdown", "{data}");
        assert_eq!(stream.next(), None);
    }
}

/// The literal path words the router matches on, read from its source, so
/// a new route's words are probed even before anyone documents them.
fn router_words() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let literal = regex::Regex::new(r#""([a-z][a-z0-9_]*)""#).unwrap();
    let mut words = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| l.contains('[') && l.contains("=>")) {
            for c in literal.captures_iter(line) {
                words.insert(c[1].to_owned());
            }
        }
    }
    words.into_iter().collect()
}

/// The HTTP methods an OpenAPI operation may have, as docs/openapi.json spells them.
const METHODS: [&str; 6] = ["get", "head", "put", "post", "patch", "delete"];

/// The OpenAPI document is well formed: version 3, a title and a version,
/// every `$ref` resolving, and each operation a known method with
/// responses and its path's parameters declared.
fn assert_well_formed_openapi(doc: &Value) {
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    fn refs_resolve(doc: &Value, v: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let target = doc.pointer(r.trim_start_matches('#'));
                    assert!(target.is_some(), "{r} resolves");
                }
                m.values().for_each(|v| refs_resolve(doc, v));
            }
            Value::Array(a) => a.iter().for_each(|v| refs_resolve(doc, v)),
            _ => {}
        }
    }
    refs_resolve(doc, doc);
    let paths = doc["paths"].as_object().unwrap();
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            assert!(op["responses"].is_object(), "{method} {path} has responses");
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                assert!(
                    params.contains(&&seg[1..seg.len() - 1]),
                    "{method} {path} declares {seg}"
                );
            }
        }
    }
}

#[test]
fn the_openapi_document_lists_every_route_the_router_serves() {
    let b = TestBox::start();
    let root = admin(&b);
    let token = b.token(&root);
    let faxbox = b
        .store
        .create_faxbox(
            &root.id,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                ..Default::default()
            },
        )
        .unwrap();

    // Served as kept in the repository, and a well-formed OpenAPI 3 document.
    let r = b.call("GET", "/v2/openapi", None, None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .expect("docs/openapi.json parses");
    assert_eq!(doc, kept);
    assert_well_formed_openapi(&doc);
    let paths = doc["paths"].as_object().unwrap();

    // Ids that exist, except for documented deletes, which get ids that do
    // not (a "bad identifier" 404 still shows the route is served).
    let unknown = "0123456789abcdef0123456789abcdef";
    let concrete = |template: &str, real: bool| -> String {
        template
            .split('/')
            .map(|seg| match seg {
                "{account_id}" if real => root.id.to_string(),
                "{faxbox_id}" if real => faxbox.id.to_string(),
                s if s.starts_with('{') => unknown.to_owned(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    // Whether the router has `method` on `path`: anything but "no such
    // endpoint" (404 `not found`) and 405.
    let serves = |method: &str, path: &str| -> bool {
        if path == "/v2/events" && method == "GET" {
            let (head, _) = EventStream::open(&b.base, &token);
            return head.starts_with("HTTP/1.1 200");
        }
        let body = matches!(method, "PUT" | "POST" | "PATCH").then(|| json!({}));
        let r = b.call(method, path, Some(&token), body);
        let no_route = r.status == 404 && (method == "HEAD" || r.json()["message"] == "not_found");
        !(no_route || r.status == 405)
    };
    let documented = |path: &str| -> Option<&serde_json::Map<String, Value>> {
        paths.iter().find_map(|(t, ops)| {
            let (t, p): (Vec<&str>, Vec<&str>) =
                (t.split('/').collect(), path.split('/').collect());
            (t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p))
                .then(|| ops.as_object().unwrap())
        })
    };

    let mut missing = Vec::new();
    for (template, ops) in paths {
        for method in METHODS {
            let listed = ops.get(method).is_some();
            let upper = method.to_ascii_uppercase();
            let real = !(listed && upper == "DELETE");
            if serves(&upper, &concrete(template, real)) != listed {
                missing.push(format!(
                    "{upper} {template}: {}",
                    if listed {
                        "documented but not served"
                    } else {
                        "served but not documented"
                    }
                ));
            }
        }
    }
    // One level below every documented path (and the top), each word the
    // router matches on and an id: served only if documented.
    let words = router_words();
    assert!(words.contains(&"faxboxes".to_owned()), "{words:?}");
    let bases: Vec<String> = ["", "/v2"]
        .iter()
        .map(|s| s.to_string())
        .chain(paths.keys().cloned())
        .collect();
    for base in &bases {
        for word in words.iter().map(String::as_str).chain(["{id}"]) {
            let template = format!("{base}/{word}");
            if documented(&template).is_some() {
                continue;
            }
            let path = concrete(&template, true);
            if serves("GET", &path) || b.call("GET", &path, Some(&token), None).status == 405 {
                missing.push(format!("{template}: served but not documented"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/openapi.json is out of date:\n{}",
        missing.join("\n")
    );
}

#[test]
fn an_operator_cancels_retries_now_and_pauses_lines_through_the_api() {
    let b = TestBox::start();
    let root = admin(&b);
    let acme = b.tenant("Acme");
    let (admin_token, acme_token) = (b.token(&root), b.token(&acme));
    let session = Session::login(&b.base, &acme.key).unwrap();
    let busy = session
        .send(
            &json!({"to_number": BUSY_NUMBER, "retries": 4}),
            &[pdf_document("b.pdf", text_pdf("b"))],
        )
        .unwrap();
    let id = faxbox::model::FaxId(busy["id"].as_str().unwrap().to_owned());
    wait_for("the first busy attempt", Duration::from_secs(60), || {
        let f = b.store.fax(&id).unwrap();
        f.status == Some(JobStatus::Pending) && f.attempts == 1
    });
    let path = format!("/v2/accounts/{}/faxes/outgoing/{id}", acme.id);
    let act = |action: &str| {
        b.call(
            "PUT",
            &path,
            Some(&acme_token),
            Some(json!({"action": action})),
        )
    };

    // Retry now: due at once, so a second attempt follows without the wait.
    let before = b.store.fax(&id).unwrap().due_at;
    let r = act("retry_now");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert!(
        before > faxbox::model::now() + 60,
        "the retry was minutes away"
    );
    wait_for("the second attempt", Duration::from_secs(60), || {
        b.store.fax(&id).unwrap().attempts >= 2
    });
    let r = act("shred");
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["action"]["enum"].is_object());

    // Cancel: the job ends as cancelled; a second cancel is a conflict.
    wait_for("the job to wait again", Duration::from_secs(60), || {
        b.store.fax(&id).unwrap().status == Some(JobStatus::Pending)
    });
    let r = act("cancel");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["data"]["status"], "cancelled");
    assert_eq!(b.store.fax(&id).unwrap().status, Some(JobStatus::Cancelled));
    let r = act("cancel");
    assert_eq!(r.status, 409);
    let r = act("retry_now");
    assert_eq!(r.status, 409);

    // Lines: the admin pauses and resumes; an account may not.
    let line =
        |token: &str, body: Value| b.call("PUT", "/v2/lines/loopback", Some(token), Some(body));
    let r = line(&acme_token, json!({"action": "pause"}));
    assert_eq!(r.status, 403);
    let r = line(
        &admin_token,
        json!({"action": "pause", "data": {"reason": "paper jam"}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["data"],
        json!({"name": "loopback", "state": "paused"})
    );
    let r = b.call("GET", "/v2/status", Some(&admin_token), None);
    assert_eq!(r.json()["data"]["lines"][0]["reason"], "paper jam");
    // A paused line takes no new call: a new fax waits.
    let waiting = session
        .send(
            &json!({"to_number": "5550100"}),
            &[pdf_document("w.pdf", text_pdf("w"))],
        )
        .unwrap();
    let waiting = faxbox::model::FaxId(waiting["id"].as_str().unwrap().to_owned());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        b.store.fax(&waiting).unwrap().status,
        Some(JobStatus::Pending)
    );
    let r = line(&admin_token, json!({"action": "resume"}));
    assert_eq!(r.json()["data"]["state"], "up");
    wait_for(
        "the waiting fax after resume",
        Duration::from_secs(60),
        || b.store.fax(&waiting).unwrap().status == Some(JobStatus::Completed),
    );
    let r = b.call(
        "PUT",
        "/v2/lines/modem9",
        Some(&admin_token),
        Some(json!({"action": "pause"})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["data"]["message"],
        "there is no line modem9 (the lines are: loopback)"
    );
    let r = line(&admin_token, json!({"action": "unplug"}));
    assert_eq!(r.status, 400);
}

#[test]
fn a_pwg_raster_print_job_is_faxed_over_the_loopback_line() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let faxbox = b
        .store
        .create_faxbox(
            &acme.id,
            faxbox::model::FaxboxFields {
                name: Some("Printer".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let session = Session::login(&b.base, &acme.key).unwrap();
    // Two Letter pages printed by CUPS to 600 dpi greyscale PWG raster,
    // sent as a print client's document would be: no file name extension,
    // only its media type.
    let pwg = crate::print_raster::cups_pwg_raster(
        &crate::print_raster::two_page_pdf(),
        &["print-color-mode=monochrome"],
    );
    let job = session
        .send(
            &json!({"to_number": "555-0100", "faxbox_id": faxbox.id}),
            &[Document {
                name: "print job".into(),
                content_type: "image/pwg-raster".into(),
                bytes: pwg.clone(),
            }],
        )
        .unwrap();
    assert_eq!(job["pages"], 2, "counted at intake: {job}");
    let id = faxbox::model::FaxId(job["id"].as_str().unwrap().to_owned());
    let docs = b.store.documents(&id).unwrap();
    let original = docs
        .iter()
        .find(|d| d.kind == faxbox::model::DocumentKind::Original)
        .expect("the print file is kept as sent");
    assert_eq!(original.content_type, "image/pwg-raster");
    let fax = docs
        .iter()
        .find(|d| d.kind == faxbox::model::DocumentKind::FaxTiff)
        .expect("converted at intake");
    assert_eq!(fax.pages, Some(2));

    let end = faxbox::client::follow(&session, id.as_str(), |_| {}).unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["history"][0]["pages_sent"], 2, "{end}");
    let token = b.token(&acme);
    let r = b.call(
        "GET",
        &format!(
            "/v2/accounts/{}/faxes/outbox/{}/attachment?format=original",
            acme.id,
            id.as_str()
        ),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pwg);

    // The same print file as the request body, its fields in the query.
    let r = b.raw(
        "PUT",
        &format!(
            "/v2/accounts/{}/faxboxes/{}/faxes?to_number=5550101",
            acme.id, faxbox.id
        ),
        Some(&token),
        Some("image/pwg-raster"),
        Some(pwg.clone()),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.json()["data"]["pages"], 2);

    // A print file cut off on the way is refused with where it ends, and
    // nothing is stored.
    let before = b.store.faxes(&JobFilter::default()).unwrap().len();
    let err = session
        .send(
            &json!({"to_number": "555-0100", "faxbox_id": faxbox.id}),
            &[Document {
                name: "print job".into(),
                content_type: "image/pwg-raster".into(),
                bytes: pwg[..pwg.len() / 3].to_vec(),
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut off"), "{err}");
    assert_eq!(b.store.faxes(&JobFilter::default()).unwrap().len(), before);
}

/// Kazoo's own documents and Monster UI's requests, replayed.
#[path = "kazoo.rs"]
mod kazoo;

/// Issue 22 through the API: a faxbox's `sending_windows`, a fax's
/// `send_at` and `priority`, and when it will go (`scheduled_for`) in its
/// record and the listing; the fax does not start before its time and then
/// goes once. Bad values are 400s that name the field and the form to use,
/// and store nothing.
#[test]
fn send_at_priority_and_sending_windows_through_the_api() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let boxes = format!("/v2/accounts/{}/faxboxes", acme.id);
    let r = b.call(
        "PUT",
        &boxes,
        Some(&token),
        Some(json!({"data": {"name": "Desk", "fax_timezone": "UTC",
                             "sending_windows": ["mon-sun 00:00-24:00"]}})),
    );
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(
        r.json()["data"]["sending_windows"],
        json!(["mon-sun 00:00-24:00"])
    );
    let desk = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let r = b.call(
        "PUT",
        &boxes,
        Some(&token),
        Some(json!({"data": {"name": "Night", "sending_windows": ["9-5"]}})),
    );
    assert_eq!(r.status, 400, "{:?}", r.json());
    let message = r.json()["data"]["sending_windows"]["format"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("mon-fri 08:00-18:00"), "{message}");
    assert_eq!(b.store.faxboxes(&acme.id).unwrap().len(), 1);

    // Three seconds ahead, written as a local time in the faxbox's zone.
    let send_at = faxbox::model::now() + 3;
    let local = chrono::DateTime::from_timestamp(send_at, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let rfc3339 = chrono::DateTime::from_timestamp(send_at, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let session = Session::login(&b.base, &acme.key).unwrap();
    let job = session
        .send(
            &json!({"to_number": "555-0100", "faxbox_id": desk,
                    "send_at": local, "priority": "high"}),
            &[pdf_document("later.pdf", text_pdf("Later"))],
        )
        .unwrap();
    assert_eq!(job["send_at"], rfc3339.as_str(), "{job}");
    assert_eq!(job["scheduled_for"], rfc3339.as_str());
    assert_eq!(job["priority"], "high");
    let id = job["id"].as_str().unwrap().to_owned();
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxes/outgoing", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"][0]["scheduled_for"], rfc3339.as_str());
    let end = faxbox::client::follow(&session, &id, |_| {}).unwrap();
    assert_eq!(end["status"], "completed", "{end}");
    assert!(end.get("scheduled_for").is_none(), "sent: {end}");
    let attempts = b.store.attempts(&faxbox::model::FaxId(id.clone())).unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].started >= send_at, "not before its send_at");

    // A send_at past means now; the default priority is normal.
    let job = session
        .send(
            &json!({"to_number": "555-0101", "send_at": "2020-01-01T09:00:00+01:00"}),
            &[pdf_document("now.pdf", text_pdf("Now"))],
        )
        .unwrap();
    assert_eq!(job["priority"], "normal");
    assert_eq!(job["send_at"], "2020-01-01T08:00:00Z");

    let before = b.store.faxes(&JobFilter::default()).unwrap().len();
    let path = format!("/v2/accounts/{}/faxes/outgoing", acme.id);
    for (data, field, says) in [
        (
            json!({"send_at": "tomorrow"}),
            "send_at",
            "2026-12-05 18:00",
        ),
        (json!({"send_at": 1_800_000_000}), "send_at", "RFC 3339"),
        (
            json!({"send_at": "2300-01-01T00:00:00Z"}),
            "send_at",
            "a year",
        ),
        (
            json!({"priority": "urgent"}),
            "priority",
            "low, normal or high",
        ),
        (json!({"priority": 9}), "priority", "low, normal or high"),
    ] {
        let mut fields = json!({"to_number": "5550100"});
        fields
            .as_object_mut()
            .unwrap()
            .extend(data.as_object().unwrap().clone());
        let (ct, body) = multipart_body(&fields, &[pdf_document("a.pdf", text_pdf("a"))]);
        let r = b.raw("PUT", &path, Some(&token), Some(&ct), Some(body));
        assert_eq!(r.status, 400, "{data}: {:?}", r.json());
        let errors = &r.json()["data"][field];
        let message = errors
            .as_object()
            .and_then(|codes| codes.values().next())
            .and_then(|e| e["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(says), "{data}: {message}");
    }
    assert_eq!(b.store.faxes(&JobFilter::default()).unwrap().len(), before);
}
