//! Cover pages (issue 22): the real `faxbox serve` faxes one of its
//! faxboxes from another over the loopback line, through the API and by
//! email. The page that arrives first is compared bit for bit with the
//! cover drawn from the fax's facts (whose text says what is on it), and
//! the document's pages follow it unchanged.

use std::path::Path;
use std::time::Duration;

use faxbox::client::{Document, Session};
use faxbox::documents::cover::{self, CoverFacts};
use faxbox::documents::{BitPage, decode_fax_tiff};
use faxbox::model::{AccountId, DocumentKind, Fax, FaxId, FaxboxId, Folder};
use faxbox::store::{JobFilter, Store};
use serde_json::{Value, json};

use crate::harness::{ServeProcess, pdf_of_texts, send_mail, smtp_port, wait_for};

const LINE: &str = "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\n";
/// The receiving faxbox's number: the loopback line rings it.
const RECEPTION: &str = "5557000";

/// A faxbox made over the API; its id.
fn faxbox(session: &Session, fields: Value) -> String {
    let path = format!("/v2/accounts/{}/faxboxes", session.account_id);
    let made = session.put(&path, &json!({ "data": fields })).unwrap();
    made["id"].as_str().unwrap().to_owned()
}

/// `PATCH` of a JSON body; the reply's `data`.
fn patch(session: &Session, path: &str, body: &Value) -> Value {
    let r = faxbox::client::Http::new()
        .request(
            "PATCH",
            &format!("{}{path}", session.base()),
            &[
                ("X-Auth-Token", session.token()),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().into_bytes()),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["data"].clone()
}

/// The pages of the fax that reached `faxbox`'s inbox, once one has.
fn received(data: &Path, faxbox: &str) -> Vec<BitPage> {
    let mut pages = Vec::new();
    wait_for("a fax in the inbox", Duration::from_secs(90), || {
        let store = Store::open_existing(data).unwrap();
        let inbox = store
            .faxes(&JobFilter {
                faxbox: Some(FaxboxId(faxbox.to_owned())),
                folder: Some(Folder::Inbox),
                ..Default::default()
            })
            .unwrap();
        let Some(fax) = inbox.first() else {
            return false;
        };
        let docs = store.documents(&fax.id).unwrap();
        let tiff = docs
            .iter()
            .find(|d| d.kind == DocumentKind::ReceivedTiff)
            .expect("a received fax keeps its pages");
        pages = decode_fax_tiff(&store.document_bytes(&tiff.id).unwrap()).unwrap();
        true
    });
    pages
}

/// The sent fax and the document's own pages as stored for sending.
fn sent(data: &Path, id: &FaxId) -> (Fax, Vec<BitPage>) {
    let store = Store::open_existing(data).unwrap();
    let fax = store.fax(id).unwrap();
    let docs = store.documents(id).unwrap();
    let image = docs
        .iter()
        .find(|d| d.kind == DocumentKind::FaxTiff)
        .expect("the fax image is kept (store_fax_tiff)");
    let pages = decode_fax_tiff(&store.document_bytes(&image.id).unwrap()).unwrap();
    (fax, pages)
}

/// The cover as Faxbox draws it for `fax`, at the size of `like`.
fn cover_of(data: &Path, fax: &Fax, pages: u32, like: &BitPage) -> (CoverFacts, BitPage) {
    let store = Store::open_existing(data).unwrap();
    let faxbox = store.faxbox(fax.faxbox_id.as_ref().unwrap()).unwrap();
    let facts = faxbox::cover::facts(fax, Some(&faxbox), pages);
    let sheet = cover::fill(faxbox.cover_page.template.as_deref(), &facts);
    let page = sheet
        .draw(like.width, like.height, like.x_dpi, like.y_dpi)
        .unwrap();
    (facts, page)
}

/// The received fax is the cover and then the document, page for page
/// below the header line the sending machine prints on each.
fn assert_cover_then_document(got: &[BitPage], cover: &BitPage, document: &[BitPage]) {
    assert_ne!(
        cover.rows, document[0].rows,
        "the cover is not the document's page"
    );
    let mut sent = vec![cover.clone()];
    sent.extend_from_slice(document);
    crate::inbound::assert_pages_below_header(got, &sent);
}

#[test]
fn a_fax_sent_through_the_api_arrives_with_its_cover_page_first() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(dir.path(), LINE);
    let data = serve.data_dir.clone();
    let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
    let desk = faxbox(
        &session,
        json!({
            "name": "Desk", "caller_id": "+15550100", "caller_name": "Acme Dental",
            "fax_timezone": "Europe/Berlin", "cover_page": { "enabled": true },
        }),
    );
    let reception = faxbox(
        &session,
        json!({ "name": "Reception", "numbers": [RECEPTION] }),
    );
    let letter = Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(&["Page one", "Page two"]),
    };
    let job = session
        .send(
            &json!({
                "to_number": RECEPTION, "to_name": "Dr. Ada Smith", "faxbox_id": desk,
                "subject": "Referral", "cover_note": "Please call back.\nThanks!",
            }),
            std::slice::from_ref(&letter),
        )
        .unwrap();
    assert_eq!(job["cover_note"], "Please call back.\nThanks!");
    let id = FaxId(job["id"].as_str().unwrap().to_owned());

    let got = received(&data, &reception);
    let (fax, document) = sent(&data, &id);
    assert_eq!(
        document.len(),
        2,
        "the stored image is the document's alone"
    );
    let (facts, cover) = cover_of(&data, &fax, 3, &document[0]);
    assert_eq!(
        (facts.to_name.as_str(), facts.to_number.as_str()),
        ("Dr. Ada Smith", RECEPTION)
    );
    assert_eq!(
        (facts.from_name.as_str(), facts.from_number.as_str()),
        ("Acme Dental", "+15550100")
    );
    assert_eq!(facts.subject, "Referral");
    assert_eq!(facts.pages, 3, "the real total: two pages and the cover");
    assert!(facts.date.ends_with("(UTC+01:00)"), "{}", facts.date);
    let text = cover::fill(None, &facts).text();
    assert!(text.contains("Pages:    3 (this page included)"), "{text}");
    assert!(text.contains("Please call back.\nThanks!\n"), "{text}");
    assert_cover_then_document(&got, &cover, &document);

    // The attempt reports the pages sent, the cover included.
    let record = session
        .get(&format!(
            "/v2/accounts/{}/faxes/outbox/{}",
            session.account_id, id
        ))
        .unwrap();
    assert_eq!(record["tx_result"]["total_pages"], 3, "{record}");

    // A fax may go without the faxbox's cover.
    let plain = session
        .send(
            &json!({"to_number": "5551234", "faxbox_id": desk, "cover_page": false}),
            std::slice::from_ref(&letter),
        )
        .unwrap();
    let plain_id = plain["id"].as_str().unwrap().to_owned();
    wait_for("the fax without a cover", Duration::from_secs(90), || {
        let r = session
            .get(&format!(
                "/v2/accounts/{}/faxes/outbox/{plain_id}",
                session.account_id
            ))
            .unwrap();
        r["status"] == "completed"
    });
    let r = session
        .get(&format!(
            "/v2/accounts/{}/faxes/outbox/{plain_id}",
            session.account_id
        ))
        .unwrap();
    assert_eq!(r["tx_result"]["total_pages"], 2, "{r}");
}

#[test]
fn bad_cover_settings_are_refused_in_words_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(dir.path(), LINE);
    let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
    let path = format!("/v2/accounts/{}/faxboxes", session.account_id);
    let refused = session
        .put(
            &path,
            &json!({"data": {"name": "Desk", "cover_page": {"enabled": true, "template": "# To {recipient}"}}}),
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("cover_page.template") && refused.contains("{recipient} is not a field"),
        "{refused}"
    );
    let desk = faxbox(
        &session,
        json!({"name": "Desk", "cover_page": {"enabled": true, "template": "# Memo\n**For** {to_name}, {pages} pages"}}),
    );
    let shown = session.get(&format!("{path}/{desk}")).unwrap();
    assert_eq!(shown["cover_page"]["enabled"], true);
    assert_eq!(
        shown["cover_page"]["template"],
        "# Memo\n**For** {to_name}, {pages} pages"
    );
    // A PATCH of another field keeps the cover page.
    let patched = patch(
        &session,
        &format!("{path}/{desk}"),
        &json!({"data": {"name": "Front desk"}}),
    );
    assert_eq!(patched["cover_page"]["enabled"], true, "{patched}");

    let long_note = "x".repeat(cover::MAX_NOTE_CHARS + 1);
    let refused = session
        .send(
            &json!({"to_number": "5551234", "faxbox_id": desk, "cover_note": long_note}),
            &[Document {
                name: "a.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: pdf_of_texts(&["a"]),
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("cover_note") && refused.contains("at most 4000 characters"),
        "{refused}"
    );
    let store = Store::open_existing(&serve.data_dir).unwrap();
    let outbox = store
        .faxes(&JobFilter {
            folder: Some(Folder::Outbox),
            ..Default::default()
        })
        .unwrap();
    assert!(outbox.is_empty(), "nothing was stored: {outbox:?}");
}

#[test]
fn an_email_fills_the_cover_with_its_subject_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(dir.path(), LINE);
    let data = serve.data_dir.clone();
    let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
    faxbox(
        &session,
        json!({
            "name": "Desk", "caller_name": "Acme Dental",
            "custom_smtp_email_address": "fax.acme.example",
            "smtp_permission_list": ["bob@acme.example"],
            "cover_page": { "enabled": true },
        }),
    );
    let reception = faxbox(
        &session,
        json!({ "name": "Reception", "numbers": [RECEPTION] }),
    );
    let mail = |subject: &str| {
        use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
        lettre::Message::builder()
            .from("Bob <bob@acme.example>".parse().unwrap())
            .to(format!("{RECEPTION}@fax.acme.example").parse().unwrap())
            .subject(subject)
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(
                        "Results attached.\nCall me\u{7} today.".to_owned(),
                    ))
                    .singlepart(Attachment::new("labs.pdf".into()).body(
                        pdf_of_texts(&["Lab results"]),
                        ContentType::parse("application/pdf").unwrap(),
                    )),
            )
            .unwrap()
    };
    let port = smtp_port(&serve.banner);
    let id = send_mail(port, &mail("Lab results for Ada")).unwrap();

    let got = received(&data, &reception);
    let (fax, document) = sent(&data, &id);
    assert_eq!(fax.subject.as_deref(), Some("Lab results for Ada"));
    let note = fax.cover_note.clone().unwrap_or_default();
    assert_eq!(
        note.lines().collect::<Vec<_>>(),
        ["Results attached.", "Call me\u{7} today."]
    );
    let (facts, cover) = cover_of(&data, &fax, 2, &document[0]);
    let text = cover::fill(None, &facts).text();
    assert!(text.contains("Subject:  Lab results for Ada"), "{text}");
    assert!(
        text.contains("Results attached.\nCall me today.\n"),
        "the bell is not printed: {text}"
    );
    assert!(text.contains("Pages:    2"), "{text}");
    assert_cover_then_document(&got, &cover, &document);

    // The account can keep the text off the cover.
    let store = Store::open_existing(&data).unwrap();
    let account = AccountId(session.account_id.clone());
    store
        .set_setting(Some(&account), "email_body_as_cover_note", json!(false))
        .unwrap();
    let id = send_mail(port, &mail("Second")).unwrap();
    let fax = store.fax(&id).unwrap();
    assert_eq!(fax.subject.as_deref(), Some("Second"));
    assert_eq!(fax.cover_note, None);
}
