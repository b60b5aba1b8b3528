//! Email to fax the way mail servers and people use it: a real SMTP client
//! (lettre) and raw SMTP dialogues over loopback against the listener
//! started in-process on 127.0.0.1:0, with a real store, the scheduler on
//! the loopback line where a fax must really go out, and a real smarthost
//! (mailin-embedded) receiving the receipts and error reports.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faxbox::config::LoopbackConfig;
use faxbox::intake::Intake;
use faxbox::lines::{Line, LoopbackLine};
use faxbox::model::{
    AccountId, DocumentKind, Fax, FaxId, Faxbox, FaxboxFields, FaxboxId, JobStatus, User,
};
use faxbox::notify::{Backoff, Postman};
use faxbox::scheduler::{Scheduler, SchedulerOptions};
use faxbox::smtp::{SmtpCtx, SmtpOptions, SmtpServer};
use faxbox::store::{JobFilter, Store};
use serde_json::json;

use crate::harness::{MailSink, ReceivedMail, pdf_of_texts as pdf, smarthost};

/// A running email-to-fax box.
struct SmtpBox {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    smtp: Option<SmtpServer>,
    scheduler: Option<Arc<Scheduler>>,
    postman: Option<Arc<Postman>>,
    sink: MailSink,
    addr: SocketAddr,
    /// The dashboard's intake counts, as the app shares them.
    intake: Arc<faxbox::intake::IntakeCounts>,
}

/// An account with a realm, a user and the faxbox the user owns.
struct Office {
    account: AccountId,
    bob: User,
    faxbox: Faxbox,
}

impl SmtpBox {
    /// No line: jobs stay queued, which is all most tests look at.
    fn start() -> SmtpBox {
        SmtpBox::start_with(false, None)
    }

    fn start_with(line: bool, tls: Option<Arc<rustls::ServerConfig>>) -> SmtpBox {
        SmtpBox::start_trusting(line, tls, Vec::new())
    }

    /// With `smtp.trusted_relays`.
    fn start_trusting(
        line: bool,
        tls: Option<Arc<rustls::ServerConfig>>,
        trusted_relays: Vec<ipnet::IpNet>,
    ) -> SmtpBox {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_data_dir(&dir.path().join("data")).unwrap());
        let smarthost_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = smarthost_listener.local_addr().unwrap().port();
        let sink = MailSink::start(smarthost_listener);
        let postman = Arc::new(
            Postman::start(
                store.clone(),
                smarthost(port),
                Backoff {
                    first: Duration::from_secs(1),
                    max: Duration::from_secs(1),
                },
            )
            .unwrap(),
        );
        let mail_queued: Arc<dyn Fn() + Send + Sync> = {
            let p = postman.clone();
            Arc::new(move || p.wake())
        };
        let scheduler = line.then(|| {
            let line: Arc<dyn Line> = Arc::new(LoopbackLine::new(
                "loopback",
                LoopbackConfig {
                    channels: 2,
                    realtime: false,
                    numbers: Default::default(),
                },
                dir.path(),
            ));
            let mut options =
                SchedulerOptions::new(dir.path().join("spool"), "faxbox@box.test".into());
            options.mail_queued = mail_queued.clone();
            Arc::new(Scheduler::start(store.clone(), vec![line], options).unwrap())
        });
        let wake = crate::harness::waker(scheduler.as_ref());
        let mut options = SmtpOptions::new("fax.test", "faxbox@box.test");
        options.tls = tls;
        options.trusted_relays = trusted_relays;
        let intake = Arc::new(faxbox::intake::IntakeCounts::default());
        let smtp = SmtpServer::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            SmtpCtx {
                store: store.clone(),
                intake: Intake::new(store.clone(), wake).with_counts(intake.clone()),
                mail_queued,
                options,
            },
        )
        .unwrap();
        let addr = smtp.local_addr();
        SmtpBox {
            _dir: dir,
            store,
            smtp: Some(smtp),
            scheduler,
            postman: Some(postman),
            sink,
            addr,
            intake,
        }
    }

    /// "Acme": realm acme.example, user bob@acme.example owning a faxbox
    /// whose custom address is fax.acme.example.
    /// The box's HTTP API over the same store, on loopback, and its base
    /// URL: what an admin reads the SMTP log and edits faxboxes through.
    fn api(&self) -> (faxbox::api::Api, String) {
        use faxbox::api::{Api, ApiOptions, Ctx, LiveStatus};
        let api = Api::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            Ctx::new(
                self.store.clone(),
                Arc::new(|| {}),
                LiveStatus::default(),
                ApiOptions::default(),
            ),
        )
        .unwrap();
        let base = format!("http://{}", api.local_addr());
        (api, base)
    }

    /// An auth token of `account`, got as a client gets one: a new API key
    /// put to `/v2/api_auth` at `base`.
    fn token(&self, base: &str, account: &AccountId) -> String {
        let (_, key) = self.store.create_api_key(account, "t").unwrap();
        faxbox::client::Session::login(base, &key)
            .unwrap()
            .token()
            .to_owned()
    }

    fn office(&self) -> Office {
        let account = self
            .store
            .create_account("Acme", Some("acme.example"))
            .unwrap()
            .id;
        let bob = self
            .store
            .create_user(&account, "Bob@Acme.example", "Bob")
            .unwrap();
        let faxbox = self
            .store
            .create_faxbox(
                &account,
                FaxboxFields {
                    name: Some("Front desk".into()),
                    owner_id: Some(bob.id.clone()),
                    custom_smtp_email_address: Some("fax.acme.example".into()),
                    fax_header: Some("Acme Ltd".into()),
                    caller_id: Some("+15550100".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        Office {
            account,
            bob,
            faxbox,
        }
    }

    fn faxes(&self) -> Vec<Fax> {
        self.store.faxes(&JobFilter::default()).unwrap()
    }

    fn fax(&self, id: &str) -> Fax {
        self.store.fax(&FaxId(id.to_owned())).unwrap()
    }

    fn originals(&self, id: &str) -> Vec<String> {
        self.store
            .documents(&FaxId(id.to_owned()))
            .unwrap()
            .into_iter()
            .filter(|d| d.kind == DocumentKind::Original)
            .map(|d| d.filename)
            .collect()
    }

    /// The fax's pages as intake recorded them: the fax image's when the
    /// email was converted at once, else the sum of its PDFs' page counts
    /// (PDF-only emails are rendered when the fax is sent).
    fn pages(&self, id: &str) -> u32 {
        let docs = self.store.documents(&FaxId(id.to_owned())).unwrap();
        match docs.iter().find(|d| d.kind == DocumentKind::FaxTiff) {
            Some(fax) => fax.pages.unwrap(),
            None => docs
                .iter()
                .filter(|d| d.kind == DocumentKind::Original)
                .map(|d| d.pages.expect("a PDF's page count, taken at intake"))
                .sum(),
        }
    }

    fn set(&self, key: &str, value: serde_json::Value) {
        self.store.set_setting(None, key, value).unwrap();
    }
}

impl Drop for SmtpBox {
    fn drop(&mut self) {
        if let Some(smtp) = self.smtp.take() {
            smtp.stop(Duration::from_secs(2));
        }
        if let Some(s) = self.scheduler.take().and_then(|s| Arc::try_unwrap(s).ok()) {
            s.stop(Duration::from_secs(5));
        }
        if let Some(p) = self.postman.take().and_then(|p| Arc::try_unwrap(p).ok()) {
            p.stop();
        }
    }
}

/// A raw SMTP client: one command, one (possibly multi-line) reply.
struct Dialogue {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    greeting: String,
}

impl Dialogue {
    fn open(addr: SocketAddr) -> Dialogue {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut d = Dialogue {
            reader: BufReader::new(stream),
            writer,
            greeting: String::new(),
        };
        d.greeting = d.reply();
        d
    }

    /// Opens a session and says EHLO.
    fn hello(addr: SocketAddr) -> Dialogue {
        let mut d = Dialogue::open(addr);
        assert!(d.greeting.starts_with("220 "), "{}", d.greeting);
        let r = d.cmd("EHLO client.test");
        assert!(r.starts_with("250"), "{r}");
        d
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// DATA, the message (dot-stuffed) and the final dot; the final reply.
    fn data(&mut self, message: &[u8]) -> String {
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "{r}");
        let mut body = Vec::new();
        for line in message.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                body.push(b'.');
            }
            body.extend_from_slice(line);
        }
        if !body.ends_with(b"\n") {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.writer.write_all(&body).unwrap();
        self.reply()
    }

    /// One whole transaction; the reply to the end of DATA.
    fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "{r}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "RCPT {rcpt}: {r}");
        }
        self.data(message)
    }
}

/// The fax id out of `250 queued as <id>`.
fn queued_id(reply: &str) -> String {
    let rest = reply
        .trim()
        .strip_prefix("250 queued as ")
        .unwrap_or_else(|| panic!("not queued: {reply}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

/// A photo-sized JPEG and a signature-logo-sized PNG.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 256) as u8, 30, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Base64 in 76-character lines, as mail clients write it.
fn b64(bytes: &[u8]) -> String {
    BASE64
        .encode(bytes)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A multipart/mixed email: a text part, then each (type, name, bytes).
pub(crate) fn email(from: &str, to: &str, subject: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease fax this.\r\n"
    );
    for (ct, name, bytes) in parts {
        m.push_str(&format!(
            "--b1\r\nContent-Type: {ct}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64(bytes)
        ));
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

/// A fixture from tests/fixtures/mail with its placeholders filled.
fn fixture(name: &str, from: &str, to: &str, pdf_bytes: &[u8]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("{{FROM}}", from)
        .replace("{{TO}}", to)
        .replace("{{PDF}}", &b64(pdf_bytes))
        .replace("{{LOGO}}", &b64(&png(120, 40)))
        .replace('\n', "\r\n")
        .replace("\r\r\n", "\r\n")
        .into_bytes()
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mails_to(sink: &MailSink, to: &str) -> Vec<ReceivedMail> {
    sink.received()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .collect()
}

#[test]
fn an_emailed_pdf_is_faxed_over_the_line_and_the_sender_gets_a_receipt() {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    use lettre::{Message, SmtpTransport, Transport};
    let b = SmtpBox::start_with(true, None);
    let office = b.office();
    let to = format!("+1 555 123 4567@{}", office.faxbox.smtp_email_address);
    let message = Message::builder()
        .from("Bob <bob@acme.example>".parse().unwrap())
        .to(format!("15551234567@{}", office.faxbox.smtp_email_address)
            .parse()
            .unwrap())
        .subject("Quarterly report")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("Please fax this.".to_owned()))
                .singlepart(Attachment::new("report.pdf".into()).body(
                    pdf(&["Quarterly report", "Page two"]),
                    ContentType::parse("application/pdf").unwrap(),
                )),
        )
        .unwrap();
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(b.addr.port())
        .build();
    let response = mailer.send(&message).unwrap();
    assert_eq!(response.code().to_string(), "250");
    let text: Vec<&str> = response.message().collect();
    let id = text[0]
        .strip_prefix("queued as ")
        .unwrap_or_else(|| panic!("{text:?}"))
        .to_owned();
    // Acknowledged means committed: the job and its documents are there.
    let fax = b.fax(&id);
    assert_eq!(fax.faxbox_id.as_ref(), Some(&office.faxbox.id));
    assert_eq!(fax.to_number_normalized, "+15551234567");
    assert_eq!(fax.subject.as_deref(), Some("Quarterly report"));
    assert_eq!(fax.fax_identity_name.as_deref(), Some("Acme Ltd"));
    assert_eq!(fax.from_number.as_deref(), Some("+15550100"));
    assert_eq!(fax.notify_email, vec!["bob@acme.example".to_owned()]);
    assert_eq!(b.originals(&id), vec!["report.pdf".to_owned()]);
    assert_eq!(b.pages(&id), 2);
    assert_eq!(b.intake.today(), (0, 1, 0), "counted as email intake");
    // ... and the fax really goes out over the loopback line.
    wait_for("the fax to be sent", Duration::from_secs(120), || {
        b.fax(&id).status == Some(JobStatus::Completed)
    });
    let attempts = b.store.attempts(&FaxId(id.clone())).unwrap();
    assert_eq!(attempts.last().unwrap().report.pages_sent, 2);
    wait_for("the receipt", Duration::from_secs(30), || {
        !mails_to(&b.sink, "bob@acme.example").is_empty()
    });
    let receipt = &mails_to(&b.sink, "bob@acme.example")[0];
    assert!(
        receipt.text().contains("Fax has been sent"),
        "{}",
        receipt.text()
    );
    // The same number written with spaces and a plus reaches the same faxbox.
    let mut d = Dialogue::hello(b.addr);
    let r = d.cmd("MAIL FROM:<bob@acme.example>");
    assert!(r.starts_with("250"), "{r}");
    let r = d.cmd(&format!("RCPT TO:<{}>", to.replace(' ', "")));
    assert!(r.starts_with("250 recipient Ok"), "{r}");
}

#[test]
fn each_lookup_branch_finds_its_faxbox() {
    let b = SmtpBox::start();
    let office = b.office();
    // A second faxbox in the account, reached through its permission list.
    let partners = b
        .store
        .create_faxbox(
            &office.account,
            FaxboxFields {
                name: Some("Partners".into()),
                smtp_permission_list: Some(vec!["@partner.example".into()]),
                ..Default::default()
            },
        )
        .unwrap();
    let doc = pdf(&["lookup"]);
    let mut d = Dialogue::hello(b.addr);
    let cases: [(&str, String, &FaxboxId); 4] = [
        // 1. the generated address
        (
            "bob@acme.example",
            format!("5551001@{}", office.faxbox.smtp_email_address),
            &office.faxbox.id,
        ),
        // 1. the custom address, in another case
        (
            "BOB@ACME.EXAMPLE",
            "5551002@FAX.Acme.Example".into(),
            &office.faxbox.id,
        ),
        // 2a. the realm: the sender's one faxbox
        (
            "bob@acme.example",
            "5551003@acme.example".into(),
            &office.faxbox.id,
        ),
        // 2b. the realm: a permission list that admits the sender
        (
            "carol@partner.example",
            "5551004@acme.example".into(),
            &partners.id,
        ),
    ];
    for (from, to, want) in &cases {
        let reply = d.send(
            from,
            &[to],
            &email(from, to, "lookup", &[("application/pdf", "a.pdf", &doc)]),
        );
        let fax = b.fax(&queued_id(&reply));
        assert_eq!(&fax.faxbox_id.unwrap(), *want, "{to}");
        assert_eq!(fax.to_number, to.split('@').next().unwrap());
    }
}

#[test]
fn recipients_are_refused_at_rcpt_with_kazoos_codes() {
    let b = SmtpBox::start();
    let office = b.office();
    let ownerless = b
        .store
        .create_faxbox(
            &office.account,
            FaxboxFields {
                name: Some("Nobody's".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let mut d = Dialogue::hello(b.addr);
    assert!(d.cmd("MAIL FROM:<bob@acme.example>").starts_with("250"));
    let cases = [
        ("5551234@nowhere.example".to_owned(), "554 Not Found"),
        (
            "bob@fax.acme.example".to_owned(),
            "554 Not Found: fax number bob is empty",
        ),
        (
            "12@fax.acme.example".to_owned(),
            "554 Not Found: invalid fax number: 12: a fax number has 3 to 20 digits",
        ),
        (
            "911@fax.acme.example".to_owned(),
            "554 Not Found: invalid fax number: 911: emergency and service numbers",
        ),
    ];
    for (to, want) in &cases {
        let r = d.cmd(&format!("RCPT TO:<{to}>"));
        assert!(r.starts_with(want), "{to}: {r}");
    }
    // Nothing accepted, so DATA is out of sequence.
    assert!(d.cmd("DATA").starts_with("503"));
    // A faxbox with no owner and no permission list admits nobody from
    // outside the account (allow_all_addresses_when_empty is off).
    assert!(d.cmd("RSET").starts_with("250"));
    assert!(
        d.cmd("MAIL FROM:<stranger@elsewhere.example>")
            .starts_with("250")
    );
    let r = d.cmd(&format!(
        "RCPT TO:<5551234@{}>",
        ownerless.smtp_email_address
    ));
    assert!(
        r.starts_with("554 not allowed: faxbox permissions is empty and policy doesn't allow it"),
        "{r}"
    );
    // A stranger may not use Bob's faxbox; a pattern must match the whole
    // address, and comparison ignores case.
    b.store
        .update_faxbox(
            &office.faxbox.id,
            FaxboxFields {
                smtp_permission_list: Some(vec![".*@partner\\.example".into()]),
                ..Default::default()
            },
            faxbox::store::UpdateMode::Merge,
        )
        .unwrap();
    assert!(d.cmd("RSET").starts_with("250"));
    assert!(
        d.cmd("MAIL FROM:<mallory@partner.example.evil>")
            .starts_with("250")
    );
    let r = d.cmd("RCPT TO:<5551234@fax.acme.example>");
    assert!(
        r.starts_with("554 not allowed: address mallory@partner.example.evil is not allowed"),
        "{r}"
    );
    assert!(d.cmd("RSET").starts_with("250"));
    assert!(d.cmd("MAIL FROM:<Dave@Partner.Example>").starts_with("250"));
    assert!(
        d.cmd("RCPT TO:<5551234@fax.acme.example>")
            .starts_with("250")
    );
    // Kazoo's other replies.
    assert_eq!(
        d.cmd("VRFY bob"),
        "252 VRFY disabled by policy, just send some mail\r\n"
    );
    assert_eq!(
        d.cmd("FROB x"),
        "500 Error: command not recognized : 'FROB'\r\n"
    );
    assert!(b.faxes().is_empty());
    // The refusals of Bob's account are in its SMTP log (the unknown domain
    // has no account to log for); none is mailed (the sender may be forged).
    let log = b.store.smtp_log(&office.account, None, 50).unwrap();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(
        log.iter()
            .any(|e| e.errors[0].contains("invalid fax number: 12"))
    );
    assert_eq!(b.store.unsent_mail_count().unwrap(), 0);
    assert!(d.cmd("QUIT").starts_with("221"));
}

#[test]
fn bad_messages_are_refused_at_the_end_of_data_and_the_sender_is_told() {
    let b = SmtpBox::start();
    let office = b.office();
    let to = "5551234@fax.acme.example";
    let from = "bob@acme.example";
    let mut d = Dialogue::hello(b.addr);
    // No attachment at all.
    let r = d.send(
        from,
        &[to],
        b"Subject: hi\r\n\r\nJust text, no document.\r\n",
    );
    assert!(r.starts_with("554 no valid attachment"), "{r}");
    // Only a signature logo and an archive: the reply says why each was left out.
    let r = d.send(
        from,
        &[to],
        &email(
            from,
            to,
            "logo",
            &[
                ("image/png", "logo.png", &png(120, 40)),
                ("application/zip", "x.zip", b"PK\x03\x04"),
            ],
        ),
    );
    assert!(r.starts_with("554 no valid attachment"), "{r}");
    assert!(r.contains("logo.png: 120x40 is smaller than 700x10"), "{r}");
    assert!(r.contains("x.zip: application/zip is not a type"), "{r}");
    // A PDF that is not one.
    let r = d.send(
        from,
        &[to],
        &email(
            from,
            to,
            "broken",
            &[(
                "application/pdf",
                "scan.pdf",
                b"%PDF-1.4 this is not really a pdf",
            )],
        ),
    );
    assert!(r.starts_with("554 error converting attachment"), "{r}");
    // Broken MIME: no headers, a boundary that never comes, bad base64.
    let r = d.send(from, &[to], b"\x00\x01\x02 garbage with no headers\r\n");
    assert!(r.starts_with("554 Message decode failed"), "{r}");
    let r = d.send(
        from,
        &[to],
        b"Subject: cut\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%% not base64 %%%%\r\n",
    );
    assert!(r.starts_with("554 "), "{r}");
    // Empty DATA: Kazoo's code.
    let r = d.send(from, &[to], b"");
    assert!(r.starts_with("552 Message too small"), "{r}");
    // Non-ASCII headers do not confuse anything.
    let r = d.send(
        from,
        &[to],
        "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\nFrom: =?UTF-8?B?QsO2Yg==?= <bob@acme.example>\r\n\r\nnur Text\r\n".as_bytes(),
    );
    assert!(r.starts_with("554 no valid attachment"), "{r}");
    // The session is still good for a real fax afterwards.
    let r = d.send(
        from,
        &[to],
        &email(
            from,
            to,
            "ok",
            &[("application/pdf", "ok.pdf", &pdf(&["ok"]))],
        ),
    );
    queued_id(&r);
    assert_eq!(b.faxes().len(), 1);
    // Each refusal is logged, and reported to the sender (report_smtp_errors).
    let log = b.store.smtp_log(&office.account, None, 50).unwrap();
    assert_eq!(log.len(), 7, "{log:?}");
    assert!(log.iter().all(|e| e.from == from && e.to == to));
    wait_for("the error reports", Duration::from_secs(20), || {
        mails_to(&b.sink, from).len() >= 7
    });
    let report = mails_to(&b.sink, from)
        .into_iter()
        .find(|m| m.text().contains("Subject: Error Sending Fax"))
        .expect("an outbound_smtp_fax_error mail");
    assert!(
        report.text().contains("could not be sent as a fax"),
        "{}",
        report.text()
    );
    // With report_smtp_errors off, the refusal is logged but nobody is mailed.
    b.store
        .set_setting(Some(&office.account), "report_smtp_errors", json!(false))
        .unwrap();
    let before = b.store.unsent_mail_count().unwrap() + mails_to(&b.sink, from).len() as u32;
    let r = d.send(from, &[to], b"Subject: hi\r\n\r\ntext\r\n");
    assert!(r.starts_with("554"), "{r}");
    assert_eq!(
        b.store.smtp_log(&office.account, None, 50).unwrap().len(),
        8
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        b.store.unsent_mail_count().unwrap() + mails_to(&b.sink, from).len() as u32,
        before
    );
}

#[test]
fn oversize_mail_is_refused_with_552_when_announced_and_when_sent() {
    let b = SmtpBox::start();
    b.office();
    b.set("smtp_max_msg_size", json!(4096));
    let mut d = Dialogue::open(b.addr);
    let ehlo = d.cmd("EHLO client.test");
    assert!(ehlo.contains("250-SIZE 4096\r\n"), "{ehlo}");
    assert!(ehlo.contains("PIPELINING"), "{ehlo}");
    assert_eq!(
        d.cmd("MAIL FROM:<bob@acme.example> SIZE=5000"),
        "552 Estimated message length 5000 exceeds limit of 4096\r\n"
    );
    assert!(
        d.cmd("MAIL FROM:<bob@acme.example> SIZE=100")
            .starts_with("250")
    );
    assert!(
        d.cmd("RCPT TO:<5551234@fax.acme.example>")
            .starts_with("250")
    );
    let big = email(
        "bob@acme.example",
        "5551234@fax.acme.example",
        "big",
        &[("application/pdf", "big.pdf", &vec![b'x'; 8000])],
    );
    let r = d.data(&big);
    assert!(r.starts_with("552 Message too large"), "{r}");
    assert!(b.faxes().is_empty());
    // The session goes on.
    assert!(d.cmd("NOOP").starts_with("250"));
}

#[test]
fn several_attachments_are_faxed_in_order_and_a_signature_logo_is_skipped() {
    let b = SmtpBox::start();
    b.office();
    let (from, to) = ("bob@acme.example", "5551234@fax.acme.example");
    let mut d = Dialogue::hello(b.addr);
    let r = d.send(
        from,
        &[to],
        &email(
            from,
            to,
            "three",
            &[
                ("application/pdf", "first.pdf", &pdf(&["one"])),
                ("image/png", "signature.png", &png(120, 40)),
                ("application/pdf", "second.pdf", &pdf(&["two", "three"])),
                ("image/jpeg", "photo.JPG", &jpeg(1200, 900)),
            ],
        ),
    );
    let id = queued_id(&r);
    assert_eq!(
        b.originals(&id),
        vec!["first.pdf", "second.pdf", "photo.JPG"]
    );
    assert_eq!(b.pages(&id), 4);
}

#[test]
fn a_single_part_pdf_email_is_faxed() {
    let b = SmtpBox::start();
    b.office();
    let mut d = Dialogue::hello(b.addr);
    let message = format!(
        "From: bob@acme.example\r\nTo: 5551234@fax.acme.example\r\nSubject: bare\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/pdf; name=\"BARE.PDF\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(&pdf(&["bare"]))
    );
    let id = queued_id(&d.send(
        "bob@acme.example",
        &["5551234@fax.acme.example"],
        message.as_bytes(),
    ));
    assert_eq!(b.originals(&id), vec!["BARE.PDF"]);
    assert_eq!(b.pages(&id), 1);
}

#[test]
fn what_thunderbird_outlook_and_apple_mail_send_is_faxed() {
    let b = SmtpBox::start();
    b.office();
    let (from, to) = ("bob@acme.example", "5551234@fax.acme.example");
    let mut d = Dialogue::hello(b.addr);
    let cases = [
        (
            "thunderbird.eml",
            "Bestellung Müller.PDF",
            Some("Bestellung für Müller"),
        ),
        (
            "outlook.eml",
            "INVOICE-2026-114.PDF",
            Some("Invoice 2026-114"),
        ),
        ("apple_mail.eml", "lease-signed.pdf", Some("Signed lease")),
    ];
    for (file, name, subject) in cases {
        let r = d.send(from, &[to], &fixture(file, from, to, &pdf(&[file])));
        let id = queued_id(&r);
        assert_eq!(b.originals(&id), vec![name.to_owned()], "{file}");
        assert_eq!(b.pages(&id), 1, "{file}");
        assert_eq!(b.fax(&id).subject.as_deref(), subject, "{file}");
    }
}

#[test]
fn the_body_can_be_the_first_page_and_the_subject_the_header() {
    let b = SmtpBox::start();
    let office = b.office();
    b.store
        .set_setting(Some(&office.account), "email_body_as_page", json!(true))
        .unwrap();
    b.store
        .set_setting(
            Some(&office.account),
            "email_subject_as_header",
            json!(true),
        )
        .unwrap();
    let (from, to) = ("bob@acme.example", "5551234@fax.acme.example");
    let mut d = Dialogue::hello(b.addr);
    let id = queued_id(&d.send(
        from,
        &[to],
        &email(
            from,
            to,
            "Cover note",
            &[("application/pdf", "a.pdf", &pdf(&["a"]))],
        ),
    ));
    assert_eq!(b.originals(&id), vec!["email.txt", "a.pdf"]);
    assert_eq!(b.pages(&id), 2);
    assert_eq!(b.fax(&id).fax_identity_name.as_deref(), Some("Cover note"));
    // A text-only email is a one-page fax now.
    let id = queued_id(&d.send(from, &[to], b"Subject: memo\r\n\r\nMeet at noon.\r\n"));
    assert_eq!(b.pages(&id), 1);
}

/// Issue 27: PDFs that always come encrypted (from a bank, a lab) are faxed with
/// the account's email_pdf_password; without the setting the sender is
/// told the PDF is password-protected and how to send it.
#[test]
fn an_encrypted_pdf_is_faxed_with_the_accounts_email_password() {
    let Some(locked) = crate::harness::ghostscript_pdf(&pdf(&["Statement"]), Some("lab-2026"))
    else {
        return;
    };
    let b = SmtpBox::start();
    let office = b.office();
    let (from, to) = ("bob@acme.example", "5551234@fax.acme.example");
    let message = email(
        from,
        to,
        "Results",
        &[("application/pdf", "results.pdf", &locked)],
    );
    let mut d = Dialogue::hello(b.addr);
    let r = d.send(from, &[to], &message);
    assert!(r.starts_with("554"), "{r}");
    assert!(r.contains("password-protected"), "{r}");
    assert!(r.contains("email_pdf_password"), "{r}");

    b.store
        .set_setting(
            Some(&office.account),
            "email_pdf_password",
            json!("lab-2026"),
        )
        .unwrap();
    let id = queued_id(&d.send(from, &[to], &message));
    assert_eq!(b.originals(&id), vec!["results.pdf"]);
    assert_eq!(b.pages(&id), 1, "drawn at intake with the password");
}

#[test]
fn fifty_recipients_make_fifty_jobs_in_one_commit() {
    let b = SmtpBox::start();
    b.office();
    let from = "bob@acme.example";
    let to: Vec<String> = (0..50)
        .map(|i| format!("55510{i:02}@fax.acme.example"))
        .collect();
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let mut d = Dialogue::hello(b.addr);
    let r = d.send(
        from,
        &refs,
        &email(
            from,
            &to[0],
            "many",
            &[("application/pdf", "a.pdf", &pdf(&["many"]))],
        ),
    );
    assert!(r.starts_with("250 queued as "), "{r}");
    assert!(r.contains("and 49 more faxes"), "{r}");
    let faxes = b.faxes();
    assert_eq!(faxes.len(), 50);
    let mut numbers: Vec<String> = faxes.iter().map(|f| f.to_number.clone()).collect();
    numbers.sort();
    assert_eq!(numbers[0], "5551000");
    assert_eq!(numbers[49], "5551049");
    for f in &faxes {
        assert_eq!(f.status, Some(JobStatus::Pending));
        assert_eq!(b.pages(f.id.as_str()), 1);
    }
}

#[test]
fn sessions_over_the_limit_get_421_and_a_freed_slot_is_reused() {
    let b = SmtpBox::start();
    b.set("smtp_sessions", json!(2));
    let first = Dialogue::open(b.addr);
    let _second = Dialogue::open(b.addr);
    assert!(
        first
            .greeting
            .starts_with("220 fax.test Faxbox Email to Fax Server")
    );
    let third = Dialogue::open(b.addr);
    assert_eq!(
        third.greeting,
        "421 fax.test is too busy to accept mail right now\r\n"
    );
    drop(first);
    wait_for("a free session", Duration::from_secs(10), || {
        b.smtp.as_ref().unwrap().sessions() < 2
    });
    assert!(Dialogue::open(b.addr).greeting.starts_with("220 "));
}

#[test]
fn a_silent_client_is_disconnected_and_a_stopping_server_answers_421() {
    let mut b = SmtpBox::start();
    b.set("smtp_idle_timeout_s", json!(1));
    let mut silent = Dialogue::open(b.addr);
    assert_eq!(silent.reply(), "421 fax.test Error: timeout exceeded\r\n");
    b.set("smtp_idle_timeout_s", json!(60));
    let mut d = Dialogue::hello(b.addr);
    let smtp = b.smtp.take().unwrap();
    let stopper = std::thread::spawn(move || smtp.stop(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = d.cmd("NOOP");
        if r.starts_with("421") {
            assert!(r.contains("shutting down"), "{r}");
            break;
        }
        assert!(r.starts_with("250"), "{r}");
        assert!(Instant::now() < deadline, "no 421 during shutdown");
        std::thread::sleep(Duration::from_millis(20));
    }
    stopper.join().unwrap();
    // The listener is closed.
    assert!(
        TcpStream::connect(b.addr).is_err() || Dialogue::open(b.addr).greeting.starts_with("421")
    );
}

/// A self-signed certificate for "localhost", as PEM files in `dir`.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path, cert_pem)
}

#[test]
fn starttls_and_auth_let_a_user_send_only_as_themselves() {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};
    let certs = tempfile::tempdir().unwrap();
    let (cert_path, key_path, cert_pem) = self_signed(certs.path());
    let tls = faxbox::smtp::load_tls(&cert_path, &key_path).unwrap();
    let b = SmtpBox::start_with(false, Some(tls));
    let office = b.office();
    let (_, key) = b.store.create_api_key(&office.account, "smtp").unwrap();
    b.set("smtp_require_auth", json!(true));
    // Without AUTH, MAIL is refused.
    let mut d = Dialogue::hello(b.addr);
    assert!(d.cmd("EHLO again.test").contains("STARTTLS"));
    assert!(d.cmd("MAIL FROM:<bob@acme.example>").starts_with("530"));
    // A wrong key is refused.
    let plain = BASE64.encode(format!("\0bob@acme.example\0{key}x"));
    assert!(d.cmd(&format!("AUTH PLAIN {plain}")).starts_with("535"));

    let mailer = |mechanism: Mechanism, user: &str| {
        let params = TlsParameters::builder("localhost".into())
            .add_root_certificate(Certificate::from_pem(cert_pem.as_bytes()).unwrap())
            .build_rustls()
            .unwrap();
        SmtpTransport::builder_dangerous("127.0.0.1")
            .port(b.addr.port())
            .tls(Tls::Required(params))
            .credentials(Credentials::new(user.into(), key.clone()))
            .authentication(vec![mechanism])
            .build()
    };
    let message = |from: &str| {
        Message::builder()
            .from(from.parse().unwrap())
            .to("5551234@fax.acme.example".parse().unwrap())
            .subject("over TLS")
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain("x".to_owned()))
                    .singlepart(Attachment::new("tls.pdf".into()).body(
                        pdf(&["tls"]),
                        ContentType::parse("application/pdf").unwrap(),
                    )),
            )
            .unwrap()
    };
    for mechanism in [Mechanism::Plain, Mechanism::Login] {
        let r = mailer(mechanism, &office.bob.email)
            .send(&message("bob@acme.example"))
            .unwrap();
        assert_eq!(r.code().to_string(), "250");
    }
    assert_eq!(b.faxes().len(), 2);
    // Logged in as Bob, one may not send as someone else.
    let err = mailer(Mechanism::Plain, "bob@acme.example")
        .send(&message("alice@acme.example"))
        .unwrap_err();
    assert!(err.to_string().contains("553"), "{err}");
    assert_eq!(b.faxes().len(), 2);
}

#[test]
fn the_smtp_log_is_read_through_the_api() {
    use faxbox::client::Http;
    let b = SmtpBox::start();
    let office = b.office();
    let other = b.store.create_account("Other", None).unwrap().id;
    let mut d = Dialogue::hello(b.addr);
    let r = d.send(
        "bob@acme.example",
        &["5551234@fax.acme.example"],
        b"Subject: x\r\n\r\nno file\r\n",
    );
    assert!(r.starts_with("554"), "{r}");
    let (api, base) = b.api();
    let http = Http::new();
    let token = |account: &AccountId| b.token(&base, account);
    let get = |path: &str, token: &str| {
        http.request(
            "GET",
            &format!("{base}{path}"),
            &[("X-Auth-Token", token)],
            None,
        )
        .unwrap()
    };
    let mine = token(&office.account);
    let list = get(
        &format!("/v2/accounts/{}/faxes/smtplog", office.account),
        &mine,
    );
    assert_eq!(list.status, 200);
    let rows = list.json()["data"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["from"], "bob@acme.example");
    assert_eq!(rows[0]["to"], "5551234@fax.acme.example");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("no valid attachment")
    );
    assert!(rows[0]["created"].as_i64().unwrap() > 63_000_000_000);
    let id = rows[0]["id"].as_str().unwrap();
    let one = get(
        &format!("/v2/accounts/{}/faxes/smtplog/{id}", office.account),
        &mine,
    );
    assert_eq!(one.status, 200);
    let doc = one.json()["data"].clone();
    assert_eq!(doc["faxbox_id"], office.faxbox.id.as_str());
    assert_eq!(doc["original_number"], "5551234");
    assert_eq!(doc["translated_number"], "5551234");
    assert_eq!(doc["faxbox_domain"], "fax.acme.example");
    // Under a faxbox, only that faxbox's refusals.
    let desk = get(
        &format!(
            "/v2/accounts/{}/faxboxes/{}/faxes/smtplog",
            office.account, office.faxbox.id
        ),
        &mine,
    );
    assert_eq!(desk.json()["data"].as_array().unwrap().len(), 1);
    let spare = b
        .store
        .create_faxbox(
            &office.account,
            FaxboxFields {
                name: Some("Spare".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let spare = get(
        &format!(
            "/v2/accounts/{}/faxboxes/{}/faxes/smtplog",
            office.account, spare.id
        ),
        &mine,
    );
    assert_eq!(spare.json()["data"].as_array().unwrap().len(), 0);
    // Another account sees none of it.
    let theirs = token(&other);
    let list = get(&format!("/v2/accounts/{other}/faxes/smtplog"), &theirs);
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        get(&format!("/v2/accounts/{other}/faxes/smtplog/{id}"), &theirs).status,
        404
    );
    api.stop();
}

/// A `faxbox serve` child, killed and reaped when dropped (a failing test
/// leaves no process behind).
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `faxbox serve` in `dir`; returns it and its SMTP address.
fn serve(dir: &Path) -> (Served, SocketAddr) {
    let mut child = Served(
        std::process::Command::new(crate::harness::faxbox_bin())
            .args(["--data-dir", "data", "serve"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its banner");
        if let Some(rest) = line.trim().strip_prefix("smtp:") {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr);
        }
    }
}

#[test]
fn a_250_survives_sigkill_and_the_fax_goes_out_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (account, desk) = crate::harness::acme_with_desk(&data);
    let domain = desk.smtp_email_address;
    let (mut child, addr) = serve(dir.path());
    let mut d = Dialogue::hello(addr);
    let to = format!("5551234@{domain}");
    let r = d.send(
        "bob@acme.example",
        &[&to],
        &email(
            "bob@acme.example",
            &to,
            "kill",
            &[("application/pdf", "k.pdf", &pdf(&["kill", "-9"]))],
        ),
    );
    let id = queued_id(&r);
    // SIGKILL right after the 250: no chance to flush anything.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    {
        let store = Store::open_data_dir(&data).unwrap();
        let fax = store.fax(&FaxId(id.clone())).unwrap();
        assert_eq!(fax.account_id, account);
        let docs = store.documents(&fax.id).unwrap();
        // A PDF-only email is rendered when the fax is sent: the PDF and
        // its page count are what must survive.
        assert!(docs.iter().any(|d| d.kind == DocumentKind::Original
            && d.filename == "k.pdf"
            && d.pages == Some(2)));
    }
    let (mut child, _) = serve(dir.path());
    let store = Store::open_data_dir(&data).unwrap();
    wait_for(
        "the fax to go out after the restart",
        Duration::from_secs(120),
        || store.fax(&FaxId(id.clone())).unwrap().status == Some(JobStatus::Completed),
    );
    crate::harness::stop_with_sigterm(&mut child.0);
}

/// Python's smtplib, the client desktop scripts and many programs use: one
/// transaction from `source` (an address on this machine) to `addr`.
/// Returns each reply as "CODE text", one per line: MAIL, each RCPT, DATA.
pub(crate) fn smtplib(
    addr: SocketAddr,
    source: &str,
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Vec<String> {
    const CLIENT: &str = r#"
import smtplib, sys
host, port, source, sender = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rcpts = sys.argv[5:]
message = sys.stdin.buffer.read()
s = smtplib.SMTP(host, port, source_address=(source, 0), timeout=60)
s.ehlo("client.test")
def say(reply):
    print(reply[0], reply[1].decode(errors="replace"), flush=True)
say(s.mail(sender))
for r in rcpts:
    say(s.rcpt(r))
try:
    say(s.data(message))
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode(errors="replace"), flush=True)
s.quit()
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .args([
            addr.ip().to_string(),
            addr.port().to_string(),
            source.to_owned(),
            from.to_owned(),
        ])
        .args(to)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (make test-deps installs it)");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "smtplib failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().map(str::to_owned).collect()
}

/// Issue 21 items 5 and 6, through smtplib: a number written with spaces
/// in the quoted form SMTP requires reaches that number, and a bounce-style
/// null sender `MAIL FROM:<>` is taken (RFC 5321 4.5.5).
#[test]
fn a_quoted_number_with_spaces_and_a_null_sender_are_taken_from_smtplib() {
    let b = SmtpBox::start();
    let office = b.office();
    let domain = office.faxbox.smtp_email_address.clone();
    let to = format!("\"+1 555 000 1234\"@{domain}");
    let message = email(
        "bob@acme.example",
        &to,
        "quoted",
        &[("application/pdf", "q.pdf", &pdf(&["quoted"]))],
    );
    let replies = smtplib(b.addr, "127.0.0.1", "bob@acme.example", &[&to], &message);
    assert!(replies[0].starts_with("250 "), "{replies:?}");
    assert!(replies[1].starts_with("250 "), "{replies:?}");
    let id = queued_id(&replies[2]);
    assert_eq!(b.fax(&id).to_number_normalized, "+15550001234");
    // The null reverse-path: the faxbox admits anyone at its account's
    // realm only, so the null sender is refused at RCPT, not at MAIL.
    let replies = smtplib(b.addr, "127.0.0.1", "", &[&to], &message);
    assert!(replies[0].starts_with("250 "), "MAIL FROM:<> {replies:?}");
    assert!(
        replies[1].starts_with("554 not allowed: the null sender <> is not allowed"),
        "{replies:?}"
    );
    // Open to all addresses: the null sender's mail is faxed, and no
    // report is ever mailed to it.
    b.set("allow_all_addresses_when_empty", json!(true));
    let open = b
        .store
        .create_faxbox(
            &office.account,
            FaxboxFields {
                name: Some("Open".into()),
                custom_smtp_email_address: Some("open.acme.example".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let to = format!("\"555 000 4321\"@{}", open.smtp_email_address);
    let replies = smtplib(b.addr, "127.0.0.1", "", &[&to], &message);
    let id = queued_id(&replies[2]);
    assert_eq!(b.fax(&id).to_number_normalized, "+15550004321");
}

/// Issue 21 item 9: with `smtp_require_auth` on, the office's relay is
/// trusted by address and its mail is taken without AUTH; any other client
/// still has to log in.
#[test]
fn a_trusted_relay_sends_without_auth_when_auth_is_required() {
    let b = SmtpBox::start_trusting(false, None, vec!["127.0.0.2/32".parse().unwrap()]);
    let office = b.office();
    b.set("smtp_require_auth", json!(true));
    let to = format!("5551234@{}", office.faxbox.smtp_email_address);
    let message = email(
        "bob@acme.example",
        &to,
        "relayed",
        &[("application/pdf", "r.pdf", &pdf(&["relayed"]))],
    );
    let relayed = smtplib(b.addr, "127.0.0.2", "bob@acme.example", &[&to], &message);
    assert!(relayed[0].starts_with("250 "), "{relayed:?}");
    queued_id(&relayed[2]);
    let mut other = Dialogue::hello(b.addr);
    let r = other.cmd("MAIL FROM:<bob@acme.example>");
    assert!(r.starts_with("530 "), "{r}");
}

/// Issue 18 item 5: a bare `<LF>.<LF>` (and its mixed forms) does not end
/// DATA; what follows it is message text, not a second transaction with
/// a sender the relay never checked.
#[test]
fn a_smuggled_lf_dot_lf_is_message_text_not_the_end_of_data() {
    let b = SmtpBox::start();
    let office = b.office();
    let to = format!("5551234@{}", office.faxbox.smtp_email_address);
    let evil_to = format!("5559999@{}", office.faxbox.smtp_email_address);
    let mut message = email(
        "bob@acme.example",
        &to,
        "legit",
        &[("application/pdf", "a.pdf", &pdf(&["legit"]))],
    );
    for smuggle in ["\n.\n", "\n.\r\n", "\r\n.\n"] {
        message.extend_from_slice(smuggle.as_bytes());
        message.extend_from_slice(
            format!(
                "MAIL FROM:<mallory@evil.example>\r\nRCPT TO:<{evil_to}>\r\nDATA\r\n\
                 From: mallory@evil.example\r\n\r\nsmuggled\r\n"
            )
            .as_bytes(),
        );
    }
    let mut d = Dialogue::hello(b.addr);
    assert!(d.cmd("MAIL FROM:<bob@acme.example>").starts_with("250"));
    assert!(d.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
    assert!(d.cmd("DATA").starts_with("354"));
    // Sent as is (no dot-stuffing, which would hide the attack).
    d.writer.write_all(&message).unwrap();
    d.writer.write_all(b"\r\n.\r\n").unwrap();
    let r = d.reply();
    let id = queued_id(&r);
    // The next reply is to our NOOP: no reply to any smuggled command.
    assert_eq!(d.cmd("NOOP"), "250 OK\r\n");
    let faxes = b.faxes();
    assert_eq!(faxes.len(), 1, "one transaction only");
    assert_eq!(faxes[0].id.0, id);
    assert_eq!(faxes[0].to_number_normalized, "5551234");
    let log = b.store.smtp_log(&office.account, None, 100).unwrap();
    assert!(log.iter().all(|e| !e.from.contains("mallory")), "{log:?}");
}

/// Issue 18 item 4: sixty clients that trickle a byte at a time cannot
/// lock out real mail: one address gets `smtp_sessions_per_client`
/// sessions, each line must arrive within `smtp_idle_timeout_s`, and mail
/// from another address goes through meanwhile.
#[test]
fn sixty_trickling_clients_do_not_lock_out_real_mail() {
    let b = SmtpBox::start();
    let office = b.office();
    b.set("smtp_idle_timeout_s", json!(3));
    let started = Instant::now();
    let trickles: Vec<_> = (0..60)
        .map(|_| {
            let addr = b.addr;
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(900)))
                    .unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                // "EHLO x" one byte a second, never finished; read what
                // the server says meanwhile.
                for byte in b"EHLO slow.example".iter().cycle().take(30) {
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    match std::io::Read::read(&mut stream, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(_) => {}
                    }
                    if got.windows(4).any(|w| w == b"421 ") {
                        break;
                    }
                }
                String::from_utf8_lossy(&got).into_owned()
            })
        })
        .collect();
    // Meanwhile, from another address, a real email.
    std::thread::sleep(Duration::from_millis(500));
    let to = format!("5551234@{}", office.faxbox.smtp_email_address);
    let message = email(
        "bob@acme.example",
        &to,
        "real",
        &[("application/pdf", "r.pdf", &pdf(&["real mail"]))],
    );
    let replies = smtplib(b.addr, "127.0.0.2", "bob@acme.example", &[&to], &message);
    queued_id(&replies[2]);
    let heard: Vec<String> = trickles.into_iter().map(|t| t.join().unwrap()).collect();
    let busy = heard
        .iter()
        .filter(|h| h.contains("421 fax.test too many connections from 127.0.0.1"))
        .count();
    let timed_out = heard
        .iter()
        .filter(|h| h.starts_with("220 ") && h.contains("421 fax.test Error: timeout exceeded"))
        .count();
    assert_eq!((timed_out, busy), (10, 50), "{heard:?}");
    println!(
        "60 trickling clients: 10 sessions cut after their line deadline, 50 refused; real mail \
         queued; all done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Issue 18 item 6: a custom address may not equal or fall under another
/// account's realm or another account's faxbox address; the refusal names
/// nothing of the other account; the office's mail still reaches it.
///
/// Long on purpose: every takeover attempt is aimed at the same office's realm
/// and faxbox address, and the closing mails show that the refused attempts
/// changed nothing for that office.
#[test]
fn another_account_cannot_take_over_an_office_mail_domain() {
    use faxbox::client::Http;
    let b = SmtpBox::start();
    let acme = b.office();
    b.store
        .update_faxbox(
            &acme.faxbox.id,
            FaxboxFields {
                numbers: Some(vec!["5557000".into()]),
                ..Default::default()
            },
            faxbox::store::UpdateMode::Merge,
        )
        .unwrap();
    let mallory = b
        .store
        .create_account("Mallory", Some("evil.example"))
        .unwrap()
        .id;
    let theirs = b
        .store
        .create_faxbox(
            &mallory,
            FaxboxFields {
                name: Some("Grab".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let (api, base) = b.api();
    let http = Http::new();
    let token = b.token(&base, &mallory);
    let patch = |fields: serde_json::Value| {
        http.request(
            "PATCH",
            &format!("{base}/v2/accounts/{mallory}/faxboxes/{}", theirs.id),
            &[
                ("X-Auth-Token", token.as_str()),
                ("Content-Type", "application/json"),
            ],
            Some(json!({ "data": fields }).to_string().into_bytes()),
        )
        .unwrap()
    };
    let secrets = [
        acme.account.as_str().to_owned(),
        acme.faxbox.id.as_str().to_owned(),
    ];
    for (what, fields, field) in [
        (
            "the realm",
            json!({"custom_smtp_email_address": "acme.example"}),
            "custom_smtp_email_address",
        ),
        (
            "under the realm",
            json!({"custom_smtp_email_address": "mail.acme.example"}),
            "custom_smtp_email_address",
        ),
        (
            "the faxbox's address",
            json!({"custom_smtp_email_address": "FAX.acme.example"}),
            "custom_smtp_email_address",
        ),
        (
            "under the faxbox's address",
            json!({"custom_smtp_email_address": "x.fax.acme.example"}),
            "custom_smtp_email_address",
        ),
        (
            "under the generated address",
            json!({"custom_smtp_email_address": format!("y.{}", acme.faxbox.smtp_email_address)}),
            "custom_smtp_email_address",
        ),
        (
            "the office's number",
            json!({"numbers": ["5557000"]}),
            "numbers",
        ),
    ] {
        let r = patch(fields);
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert_eq!(r.status, 400, "{what}: {text}");
        assert!(text.contains(field), "{what}: {text}");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} reveals {secret}: {text}"
            );
        }
    }
    // Nothing changed, and a domain of their own is fine.
    let now = b.store.faxbox(&theirs.id).unwrap();
    assert_eq!(now.custom_smtp_email_address, None);
    assert!(now.numbers.is_empty());
    let r = patch(json!({"custom_smtp_email_address": "fax.evil.example"}));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The office's mail, by realm and by faxbox address, still reaches its
    // own faxbox.
    let mut d = Dialogue::hello(b.addr);
    for to in ["5551234@acme.example", "5551234@fax.acme.example"] {
        let r = d.send(
            "bob@acme.example",
            &[to],
            &fixture("thunderbird.eml", "bob@acme.example", to, &pdf(&["Acme"])),
        );
        assert!(r.starts_with("250"), "{to}: {r}");
        let fax = b.fax(&queued_id(&r));
        assert_eq!(fax.account_id, acme.account, "{to}");
        assert_eq!(fax.faxbox_id.as_ref(), Some(&acme.faxbox.id), "{to}");
    }
    api.stop();
}

/// Issue 22 by email: `X-Fax-Send-At` (read in the faxbox's zone when it
/// has no offset) and `X-Fax-Priority`, or the importance a mail program
/// marks; a header that cannot be read refuses the mail, naming it, and
/// stores nothing.
#[test]
fn send_later_and_priority_ride_in_mail_headers() {
    let b = SmtpBox::start();
    let office = b.office();
    b.store
        .update_faxbox(
            &office.faxbox.id,
            FaxboxFields {
                fax_timezone: Some("America/New_York".into()),
                ..Default::default()
            },
            faxbox::store::UpdateMode::Merge,
        )
        .unwrap();
    let (from, to) = ("bob@acme.example", "5551234@fax.acme.example");
    let mail = |headers: &str| {
        let mut m = email(
            from,
            to,
            "later",
            &[("application/pdf", "a.pdf", &pdf(&["a"]))],
        );
        m.splice(0..0, headers.bytes());
        m
    };
    let mut d = Dialogue::hello(b.addr);
    // 09:00 in New York a month from now.
    use chrono::TimeZone;
    let day = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive();
    let expected = chrono_tz::America::New_York
        .from_local_datetime(&day.and_hms_opt(9, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp();
    let id = queued_id(&d.send(
        from,
        &[to],
        &mail(&format!(
            "X-Fax-Send-At: {day} 09:00\r\nX-Fax-Priority: High\r\n"
        )),
    ));
    let fax = b.fax(&id);
    assert_eq!(fax.send_at, Some(expected));
    assert_eq!(fax.due_at, expected);
    assert_eq!(fax.priority, faxbox::model::Priority::High);
    // Outlook's "high importance" and a low X-Priority.
    let id = queued_id(&d.send(from, &[to], &mail("Importance: High\r\n")));
    assert_eq!(b.fax(&id).priority, faxbox::model::Priority::High);
    let id = queued_id(&d.send(from, &[to], &mail("X-Priority: 5 (Lowest)\r\n")));
    assert_eq!(b.fax(&id).priority, faxbox::model::Priority::Low);
    let id = queued_id(&d.send(from, &[to], &mail("")));
    let plain = b.fax(&id);
    assert_eq!(
        (plain.priority, plain.send_at),
        (faxbox::model::Priority::Normal, None)
    );

    let before = b.faxes().len();
    for (header, named) in [
        ("X-Fax-Send-At: next tuesday\r\n", "X-Fax-Send-At"),
        ("X-Fax-Send-At: 2126-01-01 09:00\r\n", "X-Fax-Send-At"),
        ("X-Fax-Priority: urgent\r\n", "X-Fax-Priority"),
    ] {
        let reply = d.send(from, &[to], &mail(header));
        assert!(reply.starts_with("554 "), "{header}: {reply}");
        assert!(reply.contains(named), "{header}: {reply}");
        assert!(
            reply.contains("2026-12-05 18:00")
                || reply.contains("a year")
                || reply.contains("low, normal or high"),
            "says what to write: {reply}"
        );
    }
    assert_eq!(b.faxes().len(), before, "a refused mail stores nothing");
}
