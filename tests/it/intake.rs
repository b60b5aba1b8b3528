//! One intake path (issue 24): a fax sent through the HTTP API, by email
//! (real SMTP from Python's smtplib) and by print (IPP over HTTP) to the
//! same faxbox of a running `faxbox serve` gets the same faxbox defaults, its
//! notification list by the same rule, and its sender judged by the same
//! rule; several numbers become one batch at every door.

use std::net::SocketAddr;

use faxbox::client::{Document, Session};
use faxbox::model::{AccountId, EmailTargets, Fax, Faxbox, FaxboxFields, FaxboxNotifications};
use faxbox::store::{JobFilter, Store};
use serde_json::json;

use crate::harness::{ServeProcess, banner_printers_addr, pdf_of_texts, smtp_port};
use crate::ipp::{Message, http_post, message_of, status_of};
use crate::smtp::{email, smtplib};

/// A running box (API, SMTP and the printers) with Acme's front desk:
/// owned by bob, mailed at `fax.acme.example`, open to `@partner.example`,
/// telling desk@acme.example of what it sends; carol is another user of
/// Acme.
struct Office {
    _dir: tempfile::TempDir,
    serve: ServeProcess,
    store: Store,
    desk: Faxbox,
    key: String,
    /// An API key of another account, Evil, whose user is eve@evil.example.
    evil_key: String,
}

impl Office {
    fn start() -> Office {
        let dir = tempfile::tempdir().unwrap();
        let serve = ServeProcess::start(
            dir.path(),
            "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\n\
             [ipp]\nenabled = true\nlisten = \"127.0.0.1:0\"\nmdns = false\n",
        );
        // Made beside the running box, as an administrator's `faxbox`
        // commands would.
        let store = Store::open_existing(&serve.data_dir).unwrap();
        let account = store
            .create_account("Acme", Some("acme.example"))
            .unwrap()
            .id;
        let bob = store
            .create_user(&account, "bob@acme.example", "Bob")
            .unwrap();
        store
            .create_user(&account, "carol@acme.example", "Carol")
            .unwrap();
        let desk = store
            .create_faxbox(
                &account,
                FaxboxFields {
                    name: Some("Front desk".into()),
                    owner_id: Some(bob.id),
                    caller_id: Some("+15550100".into()),
                    caller_name: Some("Acme Front Desk".into()),
                    fax_header: Some("Acme Ltd".into()),
                    fax_identity: Some("+15550199".into()),
                    fax_timezone: Some("Europe/Berlin".into()),
                    retries: Some(3),
                    custom_smtp_email_address: Some("fax.acme.example".into()),
                    smtp_permission_list: Some(vec!["@partner.example".into()]),
                    notifications: Some(FaxboxNotifications {
                        outbound: EmailTargets {
                            send_to: vec!["Desk@Acme.example".into()],
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        let (_, key) = store.create_api_key(&account, "intake test").unwrap();
        let evil = store.create_account("Evil", None).unwrap().id;
        store.create_user(&evil, "eve@evil.example", "Eve").unwrap();
        let (_, evil_key) = store.create_api_key(&evil, "intruder").unwrap();
        Office {
            _dir: dir,
            serve,
            store,
            desk,
            key,
            evil_key,
        }
    }

    fn account(&self) -> &AccountId {
        &self.desk.account_id
    }

    fn session(&self, key: &str) -> Session {
        Session::login(&self.serve.api_url(), key).unwrap()
    }

    fn smtp_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], smtp_port(&self.serve.banner)).into()
    }

    /// A Print-Job of `pdf` to `numbers`, logged in as `login` (user, API
    /// key) if given: the HTTP status, the IPP status and its message.
    fn print(&self, login: Option<(&str, &str)>, numbers: &[&str]) -> (u16, u16, String) {
        use base64::Engine;
        let addr = banner_printers_addr(&self.serve.banner);
        let path = format!("/ipp/faxout/{}", self.desk.id);
        let uris: Vec<String> = numbers.iter().map(|n| format!("tel:{n}")).collect();
        let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
        let body = Message::new(0x0002, &format!("ipp://{addr}{path}"))
            .attr(0x49, "document-format", b"application/pdf")
            .destinations(&uris)
            .document(&letter().bytes)
            .bytes();
        let auth = login.map(|(user, key)| {
            let pair = format!("{user}:{key}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let mut headers = vec![("Content-Type", "application/ipp")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let (status, _, reply) = http_post(addr, &path, &headers, &body);
        if status != 200 {
            return (status, 0, String::from_utf8_lossy(&reply).into_owned());
        }
        let r =
            ipp::parser::IppParser::new(ipp::reader::IppReader::new(std::io::Cursor::new(reply)))
                .parse()
                .expect("the printer answers well-formed IPP");
        (status, status_of(&r), message_of(&r))
    }

    /// The faxes to `numbers`, in that order.
    fn faxes_to(&self, numbers: &[&str]) -> Vec<Fax> {
        let all = self.store.faxes(&JobFilter::default()).unwrap();
        numbers
            .iter()
            .map(|n| {
                all.iter()
                    .find(|f| f.to_number_normalized == *n)
                    .unwrap_or_else(|| panic!("a fax to {n}: {all:?}"))
                    .clone()
            })
            .collect()
    }
}

fn letter() -> Document {
    Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(&["Dear desk"]),
    }
}

/// The faxbox's defaults, the same at every door (docs/kazoo.md 2.3, 6.6),
/// and the faxes of one request in one batch.
fn assert_filled_from_the_desk(door: &str, faxes: &[Fax], desk: &Faxbox) {
    for fax in faxes {
        let what = format!("{door}: {fax:?}");
        assert_eq!(fax.faxbox_id.as_ref(), Some(&desk.id), "{what}");
        assert_eq!(fax.from_number.as_deref(), Some("+15550100"), "{what}");
        assert_eq!(fax.from_name.as_deref(), Some("Acme Front Desk"), "{what}");
        assert_eq!(
            fax.fax_identity_number.as_deref(),
            Some("+15550199"),
            "{what}"
        );
        assert_eq!(fax.fax_identity_name.as_deref(), Some("Acme Ltd"), "{what}");
        assert_eq!(fax.fax_timezone.as_deref(), Some("Europe/Berlin"), "{what}");
        assert_eq!(fax.retries, 3, "{what}");
    }
    let batch = faxes[0].batch_id.clone();
    assert!(batch.is_some(), "{door}: two numbers are one batch");
    assert!(
        faxes.iter().all(|f| f.batch_id == batch),
        "{door}: {faxes:?}"
    );
}

#[test]
fn the_api_email_and_a_printer_fill_a_fax_by_the_same_rules() {
    let office = Office::start();
    let desk = &office.desk;
    let owner_and_desk = ["bob@acme.example", "desk@acme.example"];
    let with_carol = [
        "bob@acme.example",
        "carol@acme.example",
        "desk@acme.example",
    ];

    // The API: an API key of the faxbox's account may use it; a key names
    // nobody, so the list is the owner's and the faxbox's.
    let reply = office
        .session(&office.key)
        .send(
            &json!({"faxbox_id": desk.id, "to_numbers": ["5551101", "5551102"]}),
            &[letter()],
        )
        .unwrap();
    assert!(reply["id"].is_string(), "the batch's summary: {reply}");
    let api = office.faxes_to(&["5551101", "5551102"]);
    assert_filled_from_the_desk("API", &api, desk);
    for fax in &api {
        assert_eq!(fax.notify_email, owner_and_desk, "API: {fax:?}");
    }

    // Email from carol, a user of the account: the same defaults, and the
    // sender joins the list (docs/kazoo.md 6.6).
    let to = ["5551201@fax.acme.example", "5551202@fax.acme.example"];
    let mail = email(
        "carol@acme.example",
        &to.join(", "),
        "Letter",
        &[("application/pdf", "letter.pdf", &letter().bytes)],
    );
    let replies = smtplib(
        office.smtp_addr(),
        "127.0.0.1",
        "carol@acme.example",
        &to,
        &mail,
    );
    assert!(
        replies
            .last()
            .is_some_and(|r| r.starts_with("250 queued as ")),
        "{replies:?}"
    );
    let smtp = office.faxes_to(&["5551201", "5551202"]);
    assert_filled_from_the_desk("SMTP", &smtp, desk);
    for fax in &smtp {
        assert_eq!(fax.notify_email, with_carol, "SMTP: {fax:?}");
    }

    // A printer, carol logged in: the same list as her email's. Without a
    // login, the same list as the API's.
    let (http, status, message) = office.print(
        Some(("carol@acme.example", &office.key)),
        &["+15551301", "+15551302"],
    );
    assert_eq!((http, status), (200, 0), "{message}");
    let ipp = office.faxes_to(&["+15551301", "+15551302"]);
    assert_filled_from_the_desk("IPP", &ipp, desk);
    for fax in &ipp {
        assert_eq!(fax.notify_email, with_carol, "IPP: {fax:?}");
    }
    let (http, status, message) = office.print(None, &["+15551401", "+15551402"]);
    assert_eq!((http, status), (200, 0), "{message}");
    for fax in office.faxes_to(&["+15551401", "+15551402"]) {
        assert_eq!(fax.notify_email, owner_and_desk, "IPP anonymous: {fax:?}");
    }

    // The request's own list is the one rule's first choice.
    office
        .session(&office.key)
        .send(
            &json!({"faxbox_id": desk.id, "to_number": "5551501",
                    "notifications": {"email": {"send_to": ["boss@acme.example"]}}}),
            &[letter()],
        )
        .unwrap();
    assert_eq!(
        office.faxes_to(&["5551501"])[0].notify_email,
        ["boss@acme.example"]
    );
}

#[test]
fn the_sender_rule_is_the_same_at_every_door() {
    let office = Office::start();
    let desk = &office.desk;
    let letter_to = |to: &str| {
        email(
            "x@x.example",
            to,
            "Letter",
            &[("application/pdf", "letter.pdf", &letter().bytes)],
        )
    };
    let mail_from = |from: &str, number: &str| {
        let to = format!("{number}@fax.acme.example");
        smtplib(
            office.smtp_addr(),
            "127.0.0.1",
            from,
            &[to.as_str()],
            &letter_to(&to),
        )
    };

    // Allowed: a user of the faxbox's account, at every door...
    let queued = |replies: &[String]| replies.last().is_some_and(|r| r.starts_with("250 queued"));
    let replies = mail_from("carol@acme.example", "5552101");
    assert!(queued(&replies), "{replies:?}");
    let (http, status, message) =
        office.print(Some(("carol@acme.example", &office.key)), &["+15552102"]);
    assert_eq!((http, status), (200, 0), "{message}");
    office
        .session(&office.key)
        .send(
            &json!({"faxbox_id": desk.id, "to_number": "5552103"}),
            &[letter()],
        )
        .unwrap();
    // ... and, by email, whoever the faxbox's permission list names, the
    // whole address matching (docs/kazoo.md 13 item 5).
    let replies = mail_from("dave@partner.example", "5552104");
    assert!(queued(&replies), "{replies:?}");
    office.faxes_to(&["5552101", "+15552102", "5552103", "5552104"]);

    // Refused: anyone else, each in its own protocol's words, and nothing
    // is stored.
    let replies = mail_from("eve@notpartner.example", "5552201");
    assert_eq!(
        replies[1],
        format!(
            "554 not allowed: address eve@notpartner.example is not allowed on faxbox {}",
            desk.id
        ),
        "{replies:?}"
    );
    let (http, _, _) = office.print(Some(("eve@evil.example", &office.evil_key)), &["+15552202"]);
    assert_eq!(http, 401, "a user of another account cannot print here");
    let evil = office.session(&office.evil_key);
    let refused = evil
        .send(
            &json!({"faxbox_id": desk.id, "to_number": "5552203"}),
            &[letter()],
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("there is no faxbox {} in this account", desk.id)),
        "{refused}"
    );
    // Evil's own account sees nothing of Acme's desk either.
    assert_ne!(evil.account_id, office.account().as_str());
    let all = office.store.faxes(&JobFilter::default()).unwrap();
    assert!(
        all.iter()
            .all(|f| !["+15552201", "+15552202", "5552203"]
                .contains(&f.to_number_normalized.as_str())),
        "{all:?}"
    );
}
