//! Many recipients (issue 22): the real `faxbox serve` faxes one document
//! to several numbers over the loopback line, through the API (`to_numbers`),
//! by email (several RCPT TO) and by print (several `destination-uris`).
//! Each time the document is converted once (`/metrics`), each number gets
//! its own fax that completes, the batch summary counts them, and the
//! smarthost gets one combined receipt instead of one per fax. Over
//! `max_recipients_per_fax`, each intake refuses in its own protocol's words.

use std::net::TcpListener;
use std::time::Duration;

use faxbox::client::{Document, Http, RawResponse, Session};
use faxbox::model::{AccountId, FaxId};
use faxbox::store::Store;
use serde_json::{Value, json};

use crate::harness::{MailSink, ReceivedMail, ServeProcess, pdf_of_texts, wait_for};

/// A running box with a loopback line and a smarthost that keeps its mail.
struct BatchBox {
    _dir: tempfile::TempDir,
    serve: ServeProcess,
    sink: MailSink,
    session: Session,
}

impl BatchBox {
    fn start(extra: &str) -> BatchBox {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = MailSink::start(listener);
        let config = format!(
            "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 3\n\
             [smarthost]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
             from = \"faxbox@box.test\"\n{extra}"
        );
        let serve = ServeProcess::start(dir.path(), &config);
        let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
        BatchBox {
            _dir: dir,
            serve,
            sink,
            session,
        }
    }

    fn store(&self) -> Store {
        Store::open_existing(&self.serve.data_dir).unwrap()
    }

    /// `faxbox_documents_converted_total` of the running box.
    fn conversions(&self) -> u64 {
        let r = Http::new()
            .request(
                "GET",
                &format!("{}/metrics", self.session.base()),
                &[("X-Auth-Token", self.session.token())],
                None,
            )
            .unwrap();
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body)
            .lines()
            .find_map(|l| {
                l.strip_prefix("faxbox_documents_converted_total ")?
                    .parse()
                    .ok()
            })
            .expect("/metrics counts conversions")
    }

    /// A faxbox of the API key's account whose outbound mail goes to `notify`.
    fn faxbox(&self, notify: &str) -> String {
        let path = format!("/v2/accounts/{}/faxboxes", self.session.account_id);
        let made = self
            .session
            .put(
                &path,
                &json!({ "data": {
                    "name": "Desk", "caller_id": "+15550100",
                    "notifications": { "outbound": { "email": { "send_to": [notify] } } },
                } }),
            )
            .unwrap();
        made["id"].as_str().unwrap().to_owned()
    }

    /// PUTs the letter as a raw PDF body, its fields in the query string.
    fn put_raw_letter(&self, query: &str) -> RawResponse {
        Http::new()
            .request(
                "PUT",
                &format!(
                    "{}/v2/accounts/{}/faxes/outgoing?{query}",
                    self.session.base(),
                    self.session.account_id
                ),
                &[
                    ("X-Auth-Token", self.session.token()),
                    ("Content-Type", "application/pdf"),
                ],
                Some(letter().bytes),
            )
            .unwrap()
    }

    fn summary(&self, account: &str, batch: &str) -> Value {
        self.session
            .get(&format!("/v2/accounts/{account}/faxes/batches/{batch}"))
            .unwrap()
    }

    /// Waits until every fax of the batch completed; its summary then.
    fn completed(&self, account: &str, batch: &str, n: usize) -> Value {
        let mut summary = Value::Null;
        wait_for("the batch to complete", Duration::from_secs(180), || {
            summary = self.summary(account, batch);
            summary["counts"]["completed"] == n
        });
        summary
    }

    /// The mails the smarthost got once the box's mail queue is empty: a
    /// per-fax receipt would have been queued before the combined one, so
    /// the count is final then.
    fn mails_once_delivered(&self, at_least: usize) -> Vec<ReceivedMail> {
        self.sink.wait_for(at_least, Duration::from_secs(60));
        wait_for("the mail queue to empty", Duration::from_secs(60), || {
            self.store().unsent_mail_count().unwrap() == 0
        });
        self.sink.received()
    }
}

/// Each fax of the summary completed, with one try, and its record says
/// which batch it is in.
fn assert_each_completed(b: &BatchBox, account: &str, summary: &Value, batch: &str) {
    let store = b.store();
    for fax in summary["faxes"].as_array().unwrap() {
        assert_eq!(fax["status"], "completed", "{summary}");
        let id = FaxId(fax["id"].as_str().unwrap().to_owned());
        let record = store.fax(&id).unwrap();
        assert_eq!(record.batch_id.as_ref().map(|b| b.as_str()), Some(batch));
        assert_eq!(store.attempts(&id).unwrap().len(), 1);
        let shown = b
            .session
            .get(&format!("/v2/accounts/{account}/faxes/outbox/{id}"))
            .unwrap();
        assert_eq!(shown["batch_id"], batch, "{shown}");
    }
}

/// The one combined receipt: to `to`, every number with its result.
fn assert_combined_receipt(mails: &[ReceivedMail], to: &str, numbers: &[&str], batch: &str) {
    assert_eq!(
        mails.len(),
        1,
        "one combined receipt, no receipt per fax: {:#?}",
        mails.iter().map(ReceivedMail::text).collect::<Vec<_>>()
    );
    let mail = &mails[0];
    assert_eq!(mail.to, [to.to_owned()]);
    let text = mail.text();
    let n = numbers.len();
    assert!(
        text.contains(&format!("Fax to {n} numbers: {n} sent, 0 not sent")),
        "{text}"
    );
    for number in numbers {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(number) && l.contains(": sent (1 attempt")),
            "{number} listed as sent: {text}"
        );
    }
    assert!(text.contains(batch), "{text}");
}

fn letter() -> Document {
    Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(&["One letter", "to three offices"]),
    }
}

#[test]
fn a_fax_to_three_numbers_by_api_converts_once_completes_three_times_and_sends_one_receipt() {
    let b = BatchBox::start("");
    let account = b.session.account_id.clone();
    let desk = b.faxbox("desk@acme.test");
    let before = b.conversions();
    let reply = b
        .session
        .send(
            &json!({
                "faxbox_id": desk,
                // A number given twice is faxed once.
                "to_numbers": ["5551001", "5551002", "5551003", "5551001"],
            }),
            &[letter()],
        )
        .unwrap();
    assert_eq!(b.conversions(), before + 1, "converted once: {reply}");
    assert_eq!(reply["total"], 3, "{reply}");
    // The scheduler may have started some already: the states add up.
    let counted: u64 = reply["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 3, "{reply}");
    let batch = reply["id"].as_str().unwrap().to_owned();
    let numbers: Vec<&str> = reply["faxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["to_number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["5551001", "5551002", "5551003"]);

    let summary = b.completed(&account, &batch, 3);
    assert_eq!(summary["total"], 3);
    assert_eq!(summary["done"], true);
    assert_eq!(summary["counts"]["failed"], 0);
    assert_each_completed(&b, &account, &summary, &batch);
    // Sending converted nothing more: the faxes shared the image.
    assert_eq!(b.conversions(), before + 1);
    let mails = b.mails_once_delivered(1);
    assert_combined_receipt(
        &mails,
        "desk@acme.test",
        &["5551001", "5551002", "5551003"],
        &batch,
    );

    // Another account does not see the batch.
    let other = b
        .session
        .get(&format!(
            "/v2/accounts/{}/faxes/batches/{batch}",
            "0123456789abcdef0123456789abcdef"
        ))
        .unwrap_err()
        .to_string();
    assert!(!other.contains("5551001"), "{other}");

    // A raw PDF with its fields in the query string: to_numbers is a
    // comma-separated list there.
    let r = b.put_raw_letter(&format!("faxbox_id={desk}&to_numbers=5552001,5552002"));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["data"]["total"], 2);
    assert_eq!(b.conversions(), before + 2);
}

/// Every refusal is a 400 naming what was wrong, and stores nothing.
#[test]
fn the_api_refuses_too_many_bad_or_conflicting_numbers_and_stores_nothing() {
    let b = BatchBox::start("");
    let account = b.session.account_id.clone();
    b.store()
        .set_setting(
            Some(&AccountId(account.to_string())),
            "max_recipients_per_fax",
            json!(2),
        )
        .unwrap();
    let refused = |fields: Value| -> String {
        b.session
            .send(&fields, &[letter()])
            .expect_err("refused")
            .to_string()
    };
    let e = refused(json!({"to_numbers": ["5551001", "5551002", "5551003"]}));
    assert!(
        e.contains("at most 2 numbers") && e.contains("max_recipients_per_fax"),
        "{e}"
    );
    let e = refused(json!({"to_numbers": ["5551001", "not a number"]}));
    assert!(e.contains("to_numbers[1]"), "{e}");
    let e = refused(json!({"to_number": "5559999", "to_numbers": ["5551001", "5551002"]}));
    assert!(
        e.contains("to_number 5559999 is not one of to_numbers"),
        "{e}"
    );
    let e = refused(json!({"to_numbers": []}));
    assert!(e.contains("to_numbers names no number"), "{e}");
    let e = refused(json!({"to_numbers": 5551001}));
    assert!(e.contains("to_numbers is a list"), "{e}");

    // Over the limit in the raw form too: 400, nothing stored.
    let r = b.put_raw_letter("to_numbers=5552001,5552002,5552003");
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("max_recipients_per_fax"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let outbox = b
        .session
        .get(&format!("/v2/accounts/{account}/faxes/outbox"))
        .unwrap();
    assert_eq!(outbox.as_array().unwrap().len(), 0, "{outbox}");

    // At the limit, and to_number repeating one of them: accepted.
    let reply = b
        .session
        .send(
            &json!({"to_number": "5551002", "to_numbers": ["5551001", "5551002"]}),
            &[letter()],
        )
        .unwrap();
    assert_eq!(reply["total"], 2, "{reply}");
}

/// Several RCPT TO in one mail (Python's smtplib): one batch, converted
/// once, three faxes, one receipt to the sender; over the account's limit
/// the extra RCPT TO gets 452 and the accepted ones are faxed.
#[test]
fn a_mail_to_three_fax_addresses_is_one_batch_and_a_rcpt_over_the_limit_gets_452() {
    let b = BatchBox::start("");
    crate::harness::bob_with_desk(&b.serve.data_dir);
    let addr: std::net::SocketAddr =
        ([127, 0, 0, 1], crate::harness::smtp_port(&b.serve.banner)).into();
    let from = "bob@acme.example";
    let pdf = letter().bytes;
    let mail = |to: &[&str]| {
        crate::smtp::email(
            from,
            to[0],
            "Three offices",
            &[("application/pdf", "letter.pdf", &pdf)],
        )
    };
    let to = [
        "5553001@fax.acme.example",
        "5553002@fax.acme.example",
        "5553003@fax.acme.example",
    ];
    let before = b.conversions();
    let replies = crate::smtp::smtplib(addr, "127.0.0.1", from, &to, &mail(&to));
    let last = replies.last().unwrap();
    assert!(
        last.starts_with("250 queued as ") && last.contains("and 2 more faxes"),
        "{replies:?}"
    );
    assert_eq!(b.conversions(), before + 1, "converted once: {replies:?}");
    let first = FaxId(
        last["250 queued as ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned(),
    );
    let fax = b.store().fax(&first).unwrap();
    let batch = fax.batch_id.expect("three numbers: a batch").to_string();
    let account = fax.account_id.to_string();
    let summary = b.completed(&account, &batch, 3);
    assert_each_completed(&b, &account, &summary, &batch);
    assert_eq!(b.conversions(), before + 1);
    let mails = b.mails_once_delivered(1);
    assert_combined_receipt(&mails, from, &["5553001", "5553002", "5553003"], &batch);

    // Over the limit: the third RCPT TO is answered 452 (the sender's
    // server sends it later), the first two are one batch of two.
    b.store()
        .set_setting(
            Some(&AccountId(account.clone())),
            "max_recipients_per_fax",
            json!(2),
        )
        .unwrap();
    let to = [
        "5554001@fax.acme.example",
        "5554002@fax.acme.example",
        "5554003@fax.acme.example",
    ];
    let replies = crate::smtp::smtplib(addr, "127.0.0.1", from, &to, &mail(&to));
    assert!(
        replies[1].starts_with("250") && replies[2].starts_with("250"),
        "{replies:?}"
    );
    assert!(
        replies[3].starts_with("452")
            && replies[3].contains("at most 2 numbers")
            && replies[3].contains("max_recipients_per_fax"),
        "{replies:?}"
    );
    let last = replies.last().unwrap();
    assert!(
        last.starts_with("250 queued as ") && last.contains("and 1 more faxes"),
        "{replies:?}"
    );
    let first = FaxId(
        last["250 queued as ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned(),
    );
    let batch = b.store().fax(&first).unwrap().batch_id.unwrap();
    let summary = b.summary(&account, batch.as_str());
    assert_eq!(summary["total"], 2, "{summary}");
}

/// Prints to the faxbox's printer of the running box with several
/// `destination-uris`; the print job's faxes are one batch.
#[test]
fn a_print_job_to_three_numbers_is_one_batch_and_one_over_the_limit_is_refused_by_name() {
    use crate::ipp::{Message, attr_in, http_post, message_of, status_of};
    let b = BatchBox::start("[ipp]\nenabled = true\nlisten = \"127.0.0.1:0\"\nmdns = false\n");
    let account = b.session.account_id.clone();
    let desk = b.faxbox("print@acme.test");
    let addr = crate::harness::banner_printers_addr(&b.serve.banner);
    let path = format!("/ipp/faxout/{desk}");
    let uri = format!("ipp://{addr}{path}");
    let print = |numbers: &[&str]| {
        let body = Message::new(0x0002, &uri)
            .attr(0x49, "document-format", b"application/pdf")
            .attr(0x42, "job-name", b"Three offices")
            .destinations(numbers)
            .document(&letter().bytes)
            .bytes();
        let (status, _, reply) =
            http_post(addr, &path, &[("Content-Type", "application/ipp")], &body);
        assert_eq!(status, 200);
        ipp::parser::IppParser::new(ipp::reader::IppReader::new(std::io::Cursor::new(reply)))
            .parse()
            .expect("well-formed IPP")
    };
    let faxes_of_desk = || {
        b.store()
            .faxes(&faxbox::store::JobFilter {
                faxbox: Some(faxbox::model::FaxboxId(desk.clone())),
                ..Default::default()
            })
            .unwrap()
    };

    let before = b.conversions();
    let r = print(&["tel:5555001", "tel:5555002", "tel:+1-555-500-3"]);
    assert_eq!(status_of(&r), 0, "{}", message_of(&r));
    assert!(attr_in(&r, ipp::model::DelimiterTag::JobAttributes, "job-id").is_some());
    assert_eq!(b.conversions(), before + 1, "converted once");
    let faxes = faxes_of_desk();
    assert_eq!(faxes.len(), 3);
    let batch = faxes[0]
        .batch_id
        .clone()
        .expect("three numbers: a batch")
        .to_string();
    assert!(
        faxes
            .iter()
            .all(|f| f.batch_id.as_ref().map(|b| b.as_str()) == Some(batch.as_str()))
    );
    let summary = b.completed(&account, &batch, 3);
    assert_each_completed(&b, &account, &summary, &batch);
    assert_eq!(b.conversions(), before + 1);
    let mails = b.mails_once_delivered(1);
    assert_combined_receipt(
        &mails,
        "print@acme.test",
        &["5555001", "5555002", "+15555003"],
        &batch,
    );

    // Over the limit: refused with the status CUPS cancels on (not one it
    // retries), naming the setting; nothing stored.
    b.store()
        .set_setting(
            Some(&AccountId(account.clone())),
            "max_recipients_per_fax",
            json!(2),
        )
        .unwrap();
    let r = print(&["tel:5556001", "tel:5556002", "tel:5556003"]);
    assert_eq!(status_of(&r), 0x040B, "{}", message_of(&r));
    let message = message_of(&r);
    assert!(
        message.contains("at most 2 numbers") && message.contains("max_recipients_per_fax"),
        "{message}"
    );
    assert_eq!(faxes_of_desk().len(), 3, "nothing stored");
}

/// `faxbox jobs batch` shows a batch by its id or by one of its faxes,
/// as text and as the API's JSON; a fax to one number is in no batch.
#[test]
fn faxbox_jobs_batch_shows_the_batch_by_its_id_or_one_of_its_faxes() {
    use faxbox::model::{JobStatus, NewFax};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open_data_dir(&data).unwrap();
    let account = store.create_account("Acme", None).unwrap().id;
    let job = |number: &str| NewFax {
        account_id: account.clone(),
        to_number: number.into(),
        to_number_normalized: number.into(),
        retries: 1,
        ..Default::default()
    };
    let faxes = store
        .create_jobs(
            vec![job("5557001"), job("5557002"), job("5557003")],
            vec![],
            JobStatus::Pending,
        )
        .unwrap();
    store
        .request_cancel(&faxes[1].id, "changed my mind")
        .unwrap();
    let alone = store
        .create_jobs(vec![job("5557009")], vec![], JobStatus::Pending)
        .unwrap();
    drop(store);
    let batch = faxes[0].batch_id.clone().unwrap();
    let run = |args: &[&str]| crate::harness::faxbox(&data, args);

    let out = run(&["jobs", "batch", batch.as_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("batch {batch}: 3 faxes, 1 cancelled, 2 pending\n")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(faxes[1].id.as_str())
            && l.contains("cancelled")
            && l.contains("5557002")
            && l.contains("changed my mind")),
        "{text}"
    );
    // By a fax of it (its first characters, as the dashboard shows them).
    let out = run(&["jobs", "batch", &faxes[2].id.as_str()[..12]]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
    let out = run(&["--json", "jobs", "batch", batch.as_str()]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 3, "{json}");
    assert_eq!(json["counts"]["pending"], 2, "{json}");
    assert_eq!(json["faxes"][1]["status"], "cancelled", "{json}");

    let out = run(&["jobs", "batch", alone[0].id.as_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("went to one number (5557009)"), "{err}");
    let out = run(&["jobs", "batch", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no batch and no fax with id nope"));
}

/// The combined receipt says which numbers were not sent and why, and a
/// batch whose last faxes are cancelled before they ring still gets its
/// one receipt (the dispatcher looks for finished batches when woken).
#[test]
fn a_batch_with_a_busy_number_and_a_cancelled_batch_each_get_one_receipt_saying_so() {
    let b = BatchBox::start("[line.numbers]\n\"5550001\" = \"busy\"\n");
    let account = b.session.account_id.clone();
    let path = format!("/v2/accounts/{account}/faxboxes");
    let desk = b
        .session
        .put(
            &path,
            &json!({ "data": {
                "name": "Desk", "retries": 1,
                "notifications": { "outbound": { "email": { "send_to": ["desk@acme.test"] } } },
            } }),
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = b
        .session
        .send(
            &json!({"faxbox_id": desk, "to_numbers": ["5551201", "5550001"]}),
            &[letter()],
        )
        .unwrap();
    let busy_batch = reply["id"].as_str().unwrap().to_owned();
    let mut summary = Value::Null;
    wait_for("the busy batch to end", Duration::from_secs(180), || {
        summary = b.summary(&account, &busy_batch);
        summary["done"] == true
    });
    assert_eq!(summary["counts"]["completed"], 1, "{summary}");
    assert_eq!(summary["counts"]["failed"], 1, "{summary}");
    let mails = b.mails_once_delivered(1);
    assert_eq!(mails.len(), 1);
    let text = mails[0].text();
    assert!(
        text.contains("Fax to 2 numbers: 1 sent, 1 not sent"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("5550001: NOT SENT") && l.contains("busy")),
        "{text}"
    );

    // Sent later, then all cancelled before they ring.
    let reply = b
        .session
        .send(
            &json!({"faxbox_id": desk, "to_numbers": ["5551301", "5551302"],
                    "send_at": (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339()}),
            &[letter()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let later = reply["id"].as_str().unwrap().to_owned();
    for fax in reply["faxes"].as_array().unwrap() {
        let r = Http::new()
            .request(
                "PUT",
                &format!(
                    "{}/v2/accounts/{account}/faxes/outgoing/{}",
                    b.session.base(),
                    fax["id"].as_str().unwrap()
                ),
                &[
                    ("X-Auth-Token", b.session.token()),
                    ("Content-Type", "application/json"),
                ],
                Some(json!({"action": "cancel"}).to_string().into_bytes()),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let mails = b.mails_once_delivered(2);
    assert_eq!(mails.len(), 2, "one receipt per batch");
    let text = mails[1].text();
    assert!(
        text.contains("Fax to 2 numbers: 0 sent, 2 not sent"),
        "{text}"
    );
    assert!(text.contains(&later), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(": cancelled: cancelled by the operator"))
            .count(),
        2,
        "{text}"
    );
}
