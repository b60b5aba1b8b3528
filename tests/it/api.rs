//! The HTTP API the way programs use it: a real HTTP client over loopback
//! against the API started in-process on 127.0.0.1:0, with a real store,
//! the scheduler and the loopback line, so an uploaded fax is really sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faxbox::api::client::{Document, Http, RawResponse, Session, multipart_body};
use faxbox::api::{Api, ApiOptions, Ctx, LiveStatus};
use faxbox::config::LoopbackConfig;
use faxbox::lines::{Line, LoopbackLine};
use faxbox::model::{AccountId, JobStatus};
use faxbox::scheduler::{Scheduler, SchedulerOptions};
use faxbox::store::{JobFilter, Store};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use serde_json::{Value, json};

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
                numbers: Default::default(),
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
        let scheduler = Arc::new(Scheduler::start(store.clone(), vec![line], options).unwrap());
        let live = LiveStatus::default();
        live.follow(scheduler.subscribe()).unwrap();
        let wake = {
            let s = scheduler.clone();
            Arc::new(move || s.wake())
        };
        let mut options = ApiOptions {
            workers: 4,
            max_body: 2 * 1024 * 1024,
            ..ApiOptions::default()
        };
        tune(&mut options);
        let api = Api::start(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            Ctx::new(store.clone(), wake, live, options),
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
    let mut pdf = Pdf::new();
    let (catalog, tree, page_id, font, content_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
        .parent(tree)
        .contents(content_id);
    page.resources().fonts().pair(Name(b"F1"), font);
    page.finish();
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let mut c = Content::new();
    c.begin_text()
        .set_font(Name(b"F1"), 24.0)
        .next_line(72.0, 700.0)
        .show(Str(text.as_bytes()))
        .end_text();
    pdf.stream(content_id, &c.finish());
    pdf.finish()
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
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "invalid credentials");

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
    assert_eq!(r.json()["message"], "bad identifier");
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
    // Gregorian seconds (reference 1.1): after 2020 in that scale.
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

    // Validation: each bad field has its own entry; nothing changes.
    let r = b.call(
        "PUT",
        &path,
        Some(&token),
        Some(json!({"data": {"name": "X", "retries": 9, "colour": "red"}})),
    );
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(body["message"], "validation failed");
    assert!(
        body["data"]["colour"]["unknown"]["message"].is_string(),
        "{body}"
    );
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
    // Accepted means committed: the job and its documents are in the store.
    let docs = b
        .store
        .documents(&faxbox::model::FaxId(id.clone()))
        .unwrap();
    assert_eq!(docs.len(), 2, "the original and the fax image: {docs:?}");
    assert_eq!(job["from_number"], "+15550001111", "from the faxbox");
    assert_eq!(job["retries"], 2);
    assert_eq!(job["pages"], 1);

    let end = faxbox::api::client::follow(&session, &id, |_| {}).unwrap();
    assert_eq!(end["status"], "completed", "{end}");
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

    // Prometheus metrics, open like /healthz: the fax, its attempt, the 202.
    let r = b.call("GET", "/metrics", None, None);
    assert_eq!(r.status, 200);
    let metrics = String::from_utf8(r.body).unwrap();
    for line in [
        "faxbox_faxes{folder=\"outbox\",status=\"completed\"} 1",
        "faxbox_attempts_total{outcome=\"success\",result_code=\"0\"} 1",
        "faxbox_pages_sent_total 1",
        "faxbox_api_replies_total{code=\"202\"} 1",
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
        json!({"to_number": "5550100", "colour": "red"}),
        &[pdf_document("a.pdf", text_pdf("a"))],
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["colour"]["unknown"].is_object());
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
    assert_eq!(r.json()["message"], "request entity too large");
    // A raw PDF body whose query string names an unknown field.
    let r = b.raw(
        "PUT",
        &format!("{path}?to_number=5550100&colour=red"),
        Some(&token),
        Some("application/pdf"),
        Some(text_pdf("raw")),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["data"]["colour"]["unknown"].is_object());

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
    use std::io::{BufRead, BufReader};
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
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut api = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its banner");
        if let Some(url) = line.trim().strip_prefix("api:") {
            api = Some(url.trim().trim_end_matches("/v2").to_owned());
        }
        if line.contains("Press Ctrl-C to stop") {
            break;
        }
    }
    (child, api.expect("the banner says where the API listens"))
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
        assert_eq!(r.status, 202, "{:?}", r.json());
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
    assert_eq!(r.status, 202, "{:?}", r.json());
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
    assert_eq!(r.status, 202, "{:?}", r.json());
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
    assert_eq!(r.status, 202, "{:?}", r.json());

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
    assert_eq!(r.status, 202, "{:?}", r.json());
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

    // An intranet document server, allowed: fetched (through a redirect)
    // and sent.
    let open = TestBox::start_with(|o| o.fetch.allow_private = true);
    let acme = open.tenant("Acme");
    let token = open.token(&acme);
    let r = put(&open, &token, &acme.id, format!("{server}/hop"));
    assert_eq!(r.status, 202, "{:?}", r.json());
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
