//! The wire shape of `GET /v2/status` and `GET /v2/events` (the contract in
//! `src/status.rs`), held by fixtures: every key path of a real status and
//! of real events, with the JSON types seen there, read from `faxbox serve`
//! over loopback and compared with `tests/fixtures/status/*.shape`. A change
//! on the wire shows as a diff of those files; `FAXBOX_RECORD_SHAPES=1`
//! writes them anew (review the diff before committing it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use faxbox::client::{Document, Session};
use serde_json::{Value, json};

use crate::api::EventStream;
use crate::harness::{ServeProcess, pdf_of_texts, wait_for};

/// A number the loopback line's far end answers busy.
const BUSY: &str = "5550001";

/// Key path -> the JSON types seen there.
type Shape = BTreeMap<String, BTreeSet<&'static str>>;

/// Adds the key paths of `value` under `path` to `shape` (`[]` stands for
/// every element of an array).
fn record(value: &Value, path: String, shape: &mut Shape) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(items) => {
            for item in items {
                record(item, format!("{path}[]"), shape);
            }
            "array"
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                record(field, inner, shape);
            }
            "object"
        }
    };
    shape.entry(path).or_default().insert(kind);
}

fn text_of(shape: &Shape) -> String {
    shape
        .iter()
        .map(|(path, kinds)| {
            let path = if path.is_empty() { "." } else { path };
            let kinds: Vec<&str> = kinds.iter().copied().collect();
            format!("{path}: {}\n", kinds.join("|"))
        })
        .collect()
}

/// Compares `shape` with the fixture `name`, or writes it there when
/// `FAXBOX_RECORD_SHAPES` is set.
fn check(name: &str, shape: &Shape) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/status")
        .join(format!("{name}.shape"));
    let seen = text_of(shape);
    if std::env::var_os("FAXBOX_RECORD_SHAPES").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &seen).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (FAXBOX_RECORD_SHAPES=1 records it)",
            file.display()
        )
    });
    assert!(
        seen == expected,
        "the wire shape of {name} changed; if that is meant, record it with \
         FAXBOX_RECORD_SHAPES=1 and review the diff\nexpected:\n{expected}\nseen:\n{seen}"
    );
}

fn pdf(name: &str, pages: &[&str]) -> Document {
    Document {
        name: name.into(),
        content_type: "application/pdf".into(),
        bytes: pdf_of_texts(pages),
    }
}

/// A box with one real-speed loopback line: a fax waits to retry, another
/// is on the line, sending a page. The admin's status then has every part
/// (a call's fields, a retry, the job list, the box-wide counts), and the
/// stream has a call's progress, a retry planned and the goodbye.
#[test]
fn status_and_events_keep_their_wire_shape() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(
        dir.path(),
        &format!(
            "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\nrealtime = true\n\
             [line.numbers]\n\"{BUSY}\" = \"busy\"\n"
        ),
    );
    let session = Session::login(&serve.api_url(), &serve.api_key()).unwrap();
    let (_, mut events) = EventStream::open(&serve.api_url(), session.token());
    let busy = session
        .send(
            &json!({"to_number": BUSY, "retries": 3}),
            &[pdf("busy.pdf", &["busy"])],
        )
        .unwrap();
    session
        .send(
            &json!({"to_number": "5550100"}),
            &[pdf("letter.pdf", &["one", "two"])],
        )
        .unwrap();

    // A call on a page, with its rate known, beside a fax waiting to retry.
    let mut status = Value::Null;
    wait_for(
        "a page on the line and a retry",
        Duration::from_secs(120),
        || {
            // The JSON as sent, not as this crate's types read it.
            status = session.get("/v2/status").unwrap();
            let sending = status["lines"][0]["channels"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["state"] == "sending" && c["page"].is_u64() && c["bit_rate"].is_u64());
            sending && status["totals"]["waiting_retry"] == 1
        },
    );
    let mut shape = Shape::new();
    record(&status, String::new(), &mut shape);
    check("status", &shape);

    // The events: a call's progress, the busy fax's planned retry, and the
    // goodbye when the box stops.
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    while !(seen.contains_key("call") && seen.contains_key("job_status")) {
        let (name, data) = events.next_event().expect("the stream stays open");
        let retry =
            name == "job_status" && data["fax_id"] == busy["id"] && data["retry_in_s"].is_i64();
        if name == "call" || retry {
            seen.entry(name).or_insert(data);
        }
    }
    serve.signal("TERM");
    loop {
        let (name, data) = events.next_event().expect("a goodbye before the end");
        if name == "shutdown" {
            seen.insert(name, data);
            break;
        }
    }
    let mut shape = Shape::new();
    for (name, data) in &seen {
        record(data, name.clone(), &mut shape);
    }
    check("events", &shape);
}
