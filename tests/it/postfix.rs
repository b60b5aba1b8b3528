//! Email to fax through a real Postfix: a private Postfix on loopback
//! (`harness::PrivatePostfix`) is the office relay in front of a running
//! `faxbox serve` and the smarthost behind it, as in the README's setup.
//! Mail is submitted to Postfix with swaks (a network client, as a desktop
//! mail program submits) or Postfix's own `sendmail`; Postfix passes it on
//! to Faxbox's SMTP listener and carries Faxbox's receipts to the office's
//! mail server (a `MailSink`). Checked is what an admin watches in
//! Postfix's log: a fax mail is sent once and becomes one fax, a refused
//! recipient bounces at once (5xx) instead of sitting in the queue, and a
//! temporary refusal (421) is retried and still makes one fax.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use faxbox::model::{Fax, Faxbox, JobStatus};
use faxbox::store::{JobFilter, Store};

use crate::harness::{
    MailSink, PrivatePostfix, ServeProcess, acme_with_desk, faxbox, free_loopback_port, installed,
    pdf_of_texts, run_ok, wait_for,
};

/// The name the box gives in EHLO (`smtp.hostname`), which Postfix's
/// `reject_non_fqdn_helo_hostname` checks.
const BOX_NAME: &str = "fax.acme.example";

/// An office: its mail server (the sink for acme.example), Postfix as relay
/// and smarthost, and the box.
struct Office {
    mailboxes: MailSink,
    postfix: PrivatePostfix,
    faxbox: ServeProcess,
    desk: Faxbox,
    /// Faxbox's SMTP port, which Postfix relays fax mail to.
    smtp_port: u16,
    dir: tempfile::TempDir,
}

impl Office {
    /// `None` (the reason printed) when Postfix cannot run here.
    fn start() -> Option<Office> {
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        let sink_port = sink.local_addr().unwrap().port();
        let smtp_port = free_loopback_port();
        let dir = tempfile::tempdir().unwrap();
        let (_, desk) = acme_with_desk(&dir.path().join("data"));
        let postfix = PrivatePostfix::start(
            free_loopback_port(),
            &[
                (desk.smtp_email_address.as_str(), smtp_port),
                ("acme.example", sink_port),
            ],
        )?;
        let mailboxes = MailSink::start(sink);
        let config = format!(
            "[smtp]\nlisten = \"127.0.0.1:{smtp_port}\"\nhostname = \"{BOX_NAME}\"\n\n\
             [smarthost]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"faxbox@{BOX_NAME}\"\n\n\
             [[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\n",
            postfix.port
        );
        let faxbox = ServeProcess::start(dir.path(), &config);
        Some(Office {
            mailboxes,
            postfix,
            faxbox,
            desk,
            smtp_port,
            dir,
        })
    }

    /// The fax address of `number` on the desk faxbox.
    fn address(&self, number: &str) -> String {
        format!("{number}@{}", self.desk.smtp_email_address)
    }

    /// A PDF as the user's file.
    fn document(&self, name: &str, pages: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pdf_of_texts(pages)).unwrap();
        path
    }

    /// Submits a mail with a PDF to Postfix with swaks, as a mail program
    /// submits to the office relay; swaks's transcript.
    fn swaks(&self, from: &str, to: &str, subject: &str, pdf: &Path) -> String {
        run_ok(
            Command::new(installed("swaks").expect("swaks is installed"))
                .args(["--server", &format!("127.0.0.1:{}", self.postfix.port)])
                .args(["--helo", "pc.acme.example", "--from", from, "--to", to])
                .args(["--header", &format!("Subject: {subject}")])
                .args(["--attach-type", "application/pdf", "--attach"])
                .arg(format!("@{}", pdf.display())),
        )
    }

    fn store(&self) -> Store {
        Store::open_existing(&self.faxbox.data_dir).unwrap()
    }

    fn faxes(&self) -> Vec<Fax> {
        self.store().faxes(&JobFilter::default()).unwrap()
    }
}

/// swaks, or `None` with a note: without it the relay tests cannot submit.
fn swaks_installed() -> bool {
    let found = installed("swaks").is_some();
    if !found {
        println!("skipped: swaks (Debian swaks) is not installed; `make test-deps` installs it");
    }
    found
}

/// A header's value in a mail (first occurrence, unfolded).
fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\r\n\r\n").next().unwrap_or(mail);
    let prefix = format!("{}:", name.to_lowercase());
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if line.to_lowercase().starts_with(&prefix) {
            let mut value = line[prefix.len()..].trim().to_owned();
            while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(lines.next().unwrap().trim());
            }
            return Some(value);
        }
    }
    None
}

#[test]
fn mail_relayed_by_postfix_becomes_one_fax_and_the_receipt_comes_back_through_postfix() {
    if !swaks_installed() {
        return;
    }
    let Some(office) = Office::start() else {
        return;
    };
    let quote = office.document("quote.pdf", &["Quote for Acme", "Page two"]);
    let to = office.address("5554444");
    let transcript = office.swaks("bob@acme.example", &to, "Quote", &quote);
    assert!(transcript.contains("250 2.0.0 Ok: queued"), "{transcript}");

    // Postfix passed it to Faxbox once, and Faxbox took it.
    let sent = office.postfix.wait_delivery(&to, "sent");
    assert!(
        sent.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", office.smtp_port)),
        "{sent}"
    );
    assert_eq!(
        office.postfix.deliveries(&to).len(),
        1,
        "{}",
        office.postfix.maillog()
    );
    let mut faxes = Vec::new();
    wait_for("the fax to be sent", Duration::from_secs(120), || {
        faxes = office.faxes();
        faxes.len() == 1 && faxes[0].status == Some(JobStatus::Completed)
    });
    let fax = &faxes[0];
    assert_eq!(fax.to_number, "5554444");
    assert_eq!(fax.subject.as_deref(), Some("Quote"));
    assert_eq!(fax.notify_email, ["bob@acme.example"]);

    // The receipt went to Postfix as smarthost, which took the box's
    // greeting (a fully qualified name) and passed the mail on to Bob's
    // mail server with the headers Faxbox wrote.
    let receipt = office.postfix.wait_delivery("bob@acme.example", "sent");
    let mails = office.mailboxes.wait_for(1, Duration::from_secs(60));
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = mails[0].text();
    assert_eq!(mails[0].to, ["bob@acme.example"]);
    let received = header(&mail, "Received").expect("Postfix adds its Received line");
    assert!(
        received.starts_with(&format!("from {BOX_NAME} (localhost [127.0.0.1])")),
        "{received}"
    );
    let message_id = header(&mail, "Message-ID").expect("the receipt has a Message-ID");
    assert!(
        !message_id.contains("relay.office.test"),
        "the Message-ID is Faxbox's own, not one Postfix added: {message_id}"
    );
    assert!(
        office
            .postfix
            .maillog()
            .contains(&format!("message-id={message_id}")),
        "{}",
        office.postfix.maillog()
    );
    assert!(header(&mail, "Date").is_some(), "{mail}");
    assert_eq!(
        header(&mail, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    // The queue manager removes the receipt after its delivery is logged.
    wait_for("Postfix's queue to empty", Duration::from_secs(30), || {
        office.postfix.queue().contains("Mail queue is empty")
    });
    println!(
        "postfix: swaks -> Postfix -> Faxbox: 1 delivery ({}), 1 fax {} completed; \
         receipt {message_id} via Postfix ({})",
        sent.split("status=").nth(1).unwrap_or(""),
        fax.id,
        receipt.split("status=").nth(1).unwrap_or("")
    );
}

#[test]
fn a_refused_recipient_bounces_at_once_instead_of_waiting_in_the_queue() {
    let Some(office) = Office::start() else {
        return;
    };
    // A program on the relay mails a number too short to dial.
    let to = office.address("12");
    let sender = "alice@office.test";
    office.postfix.sendmail(
        sender,
        &to,
        format!(
            "From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: Short number\r\n\
             Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <short.1@office.test>\r\n\r\n\
             Hello\r\n"
        )
        .as_bytes(),
    );
    let bounced = office.postfix.wait_delivery(&to, "bounced");
    assert!(bounced.contains("said: 554"), "{bounced}");
    assert!(bounced.contains("in reply to RCPT TO command"), "{bounced}");
    // Faxbox's reason is in Postfix's log, as in the bounce it sends Alice.
    assert!(
        bounced.contains("a fax number has 3 to 20 digits"),
        "{bounced}"
    );
    assert!(
        !office
            .postfix
            .deliveries(&to)
            .iter()
            .any(|l| l.contains("status=deferred")),
        "a permanent refusal is not retried: {}",
        office.postfix.maillog()
    );
    let queue_id = bounced
        .split(": to=<")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_default()
        .to_owned();
    // Postfix's bounce daemon logs the notification after cleanup has
    // queued it, so the line can trail the bounce by a moment.
    wait_for(
        "Postfix to log the non-delivery notice to Alice",
        Duration::from_secs(30),
        || {
            office
                .postfix
                .maillog()
                .contains(&format!("{queue_id}: sender non-delivery notification"))
        },
    );
    office.postfix.wait_delivery(sender, "sent");
    wait_for("Postfix's queue to empty", Duration::from_secs(30), || {
        office.postfix.queue().contains("Mail queue is empty")
    });
    assert!(office.faxes().is_empty());
    println!(
        "postfix: sendmail to {to}: {}",
        bounced.split("status=").nth(1).unwrap_or("")
    );
}

#[test]
fn a_temporary_refusal_is_retried_by_postfix_and_arrives_once() {
    if !swaks_installed() {
        return;
    }
    let Some(office) = Office::start() else {
        return;
    };
    // The box takes one SMTP session at a time (Kazoo's smtp_sessions), and
    // a slow client holds it: Postfix is told 421, too busy.
    let set = faxbox(
        &office.faxbox.data_dir,
        &["config", "set", "fax", "smtp_sessions", "1"],
    );
    assert!(set.status.success(), "{set:?}");
    let mut slow = TcpStream::connect(("127.0.0.1", office.smtp_port)).unwrap();
    let mut greeting = String::new();
    BufReader::new(slow.try_clone().unwrap())
        .read_line(&mut greeting)
        .unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");

    let memo = office.document("memo.pdf", &["Memo"]);
    let to = office.address("5556666");
    office.swaks("bob@acme.example", &to, "Memo", &memo);
    let deferred = office.postfix.wait_delivery(&to, "deferred");
    assert!(deferred.contains("421"), "{deferred}");
    assert!(office.faxes().is_empty());

    // The slow client leaves; Postfix's next try gets through.
    slow.write_all(b"QUIT\r\n").unwrap();
    drop(slow);
    let sent = office.postfix.wait_delivery(&to, "sent");
    wait_for("Postfix's queue to empty", Duration::from_secs(30), || {
        office.postfix.queue().contains("Mail queue is empty")
    });
    let deliveries = office.postfix.deliveries(&to);
    let tries = deliveries.len();
    assert_eq!(
        deliveries
            .iter()
            .filter(|l| l.contains("status=sent"))
            .count(),
        1,
        "{deliveries:?}"
    );
    let faxes = office.faxes();
    assert_eq!(faxes.len(), 1, "one mail, one fax: {faxes:?}");
    assert_eq!(faxes[0].to_number, "5556666");
    println!(
        "postfix: 421 at the first try ({}), {tries} tries in all, then {}; 1 fax",
        deferred.split("status=").nth(1).unwrap_or(""),
        sent.split("status=").nth(1).unwrap_or("")
    );
}
