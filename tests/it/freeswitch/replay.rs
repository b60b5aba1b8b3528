//! Every transcript FreeSWITCH really wrote, read by the line's parser: each
//! event of the file's summary is decoded with the same values, and each
//! outbound call folds into the result it really had.

use std::collections::BTreeMap;

use faxbox::lines::freeswitch::call::{CallTrack, Direction, DocumentSource};
use faxbox::lines::freeswitch::esl::{EslError, Event, FrameReader, Message};
use faxbox::lines::{LineError, T30Code};

use super::transcript::{self, Side};

/// The messages FreeSWITCH sent in one transcript; every one must decode.
fn server_messages(name: &str) -> Vec<Message> {
    let dir = transcript::dir().expect("checked by the caller");
    let chunks = transcript::read(&dir.join(name));
    let wire = transcript::stream(&chunks, Side::Server);
    let mut reader = FrameReader::new(wire.as_slice());
    let mut messages = Vec::new();
    loop {
        match reader.read_message() {
            Ok(m) => messages.push(m),
            Err(EslError::Closed) => return messages,
            Err(e) => panic!("{name}: message {}: {e}", messages.len() + 1),
        }
    }
}

fn events(messages: &[Message]) -> Vec<&Event> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The client's commands in one transcript, as text.
fn client_text(name: &str) -> String {
    let dir = transcript::dir().unwrap();
    String::from_utf8(transcript::stream(
        &transcript::read(&dir.join(name)),
        Side::Client,
    ))
    .unwrap()
}

fn summary_matches(event: &Event, want: &serde_json::Map<String, serde_json::Value>) -> bool {
    want.iter().all(|(key, value)| {
        let want = value.as_str();
        let got = match key.as_str() {
            "t" => return true,
            "name" => Some(event.name()),
            "subclass" => event.subclass(),
            "uuid" => event.unique_id(),
            "app" => event.get("Application"),
            "_body" => event.body.as_deref(),
            other => event.get(other),
        };
        got == want
    })
}

#[test]
fn every_transcript_decodes_as_its_summary() {
    let Some(dir) = transcript::dir() else {
        eprintln!("no shared reference beside the checkout: transcript replay skipped");
        return;
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt") && !n.starts_with("KEY_EVENTS"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{files:?}");
    let mut compared = 0;
    for name in &files {
        let messages = server_messages(name);
        assert!(!messages.is_empty(), "{name}");
        if !name.starts_with("06_") {
            assert_eq!(messages[0], Message::AuthRequest, "{name}: the greeting");
        }
        let summary_name = match name.as_str() {
            "09_api_originate_sync.txt" => "09_summary.json".to_owned(),
            other => other.replace(".txt", "_summary.json"),
        };
        let Ok(text) = std::fs::read_to_string(dir.join(&summary_name)) else {
            continue;
        };
        let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
        let wanted = summary["events"].as_array().unwrap();
        let decoded = events(&messages);
        // The summary lists the events after the originate, in order.
        let mut next = 0;
        for (i, want) in wanted.iter().enumerate() {
            let want = want.as_object().unwrap();
            let found = decoded[next..]
                .iter()
                .position(|e| summary_matches(e, want))
                .unwrap_or_else(|| {
                    panic!("{name}: summary event {i} {want:?} not decoded in order")
                });
            next += found + 1;
            compared += 1;
        }
    }
    assert!(compared > 400, "only {compared} events compared");
}

/// The outbound socket transcripts start with `connect`, not a greeting.
#[test]
fn outbound_socket_transcript_decodes() {
    if transcript::dir().is_none() {
        return;
    }
    let messages = server_messages("06_outbound_socket_rxfax.txt");
    let Message::CommandReply(connect) = &messages[0] else {
        panic!("{:?}", messages[0]);
    };
    assert_eq!(connect.get("Reply-Text"), Some("+OK"));
    assert_eq!(connect.get("Socket-Mode"), Some("async"));
    assert_eq!(connect.get("Channel-Destination-Number"), Some("socketfax"));
    let channel = connect.get("Unique-ID").unwrap().to_owned();
    let mut track = CallTrack::new(&channel, "", Direction::Receive);
    for e in events(&messages) {
        track.apply(e);
    }
    let report = track.report().expect("the rxfaxresult");
    assert!(report.success);
    assert_eq!(report.pages, 1);
    assert_eq!(report.remote_ident, "TX-TO-SOCKET");
    assert_eq!(report.local_ident, "SOCKET-RX-ID");
    assert!(matches!(messages.last(), Some(Message::Disconnect(_))));
}

/// What each outbound case amounts to, folded from its events as the line
/// folds them.
#[derive(Debug, PartialEq)]
struct Folded {
    finished: bool,
    outcome: Option<Result<(), LineError>>,
    pages: Option<u32>,
    bit_rate: Option<u32>,
    ecm: Option<bool>,
    progress_pages: Vec<u32>,
}

fn fold(name: &str) -> Folded {
    let messages = server_messages(name);
    let commands = client_text(name);
    let originate = commands
        .lines()
        .find(|l| l.starts_with("bgapi originate"))
        .unwrap_or_else(|| panic!("{name}: no bgapi originate"));
    let all = events(&messages);
    let channel = originate
        .split("origination_uuid=")
        .nth(1)
        .map(|rest| rest.split([',', '}']).next().unwrap().to_owned())
        .unwrap_or_else(|| {
            all.iter()
                .find(|e| e.name() == "CHANNEL_CREATE")
                .and_then(|e| e.unique_id())
                .unwrap_or_default()
                .to_owned()
        });
    let job = messages
        .iter()
        .find_map(|m| match m {
            Message::CommandReply(h) => h.get("Job-UUID").map(str::to_owned),
            _ => None,
        })
        .unwrap();
    let argument = originate
        .split("&txfax(")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    let document = if argument.starts_with("${http_get") || argument.starts_with("http") {
        DocumentSource::Url(argument.to_owned())
    } else {
        DocumentSource::Path(argument.into())
    };
    let mut track = CallTrack::new(&channel, &job, Direction::Send);
    let mut progress_pages = Vec::new();
    for e in all {
        if let Some(faxbox::lines::CallProgress::PageDone(p)) = track.apply(e) {
            progress_pages.push(p.page);
        }
    }
    let verdict = track.is_finished().then(|| track.verdict(&document));
    Folded {
        finished: track.is_finished(),
        outcome: verdict.as_ref().map(|v| v.outcome.clone()),
        pages: verdict
            .as_ref()
            .and_then(|v| v.fax.as_ref().map(|f| f.pages)),
        bit_rate: verdict
            .as_ref()
            .and_then(|v| v.fax.as_ref().map(|f| f.bit_rate)),
        ecm: verdict.as_ref().and_then(|v| v.fax.as_ref().map(|f| f.ecm)),
        progress_pages,
    }
}

#[test]
fn each_case_folds_into_its_real_result() {
    if transcript::dir().is_none() {
        eprintln!("no shared reference beside the checkout: transcript replay skipped");
        return;
    }
    let ok = |pages: u32, rate: u32, ecm: bool| Folded {
        finished: true,
        outcome: Some(Ok(())),
        pages: Some(pages),
        bit_rate: Some(rate),
        ecm: Some(ecm),
        progress_pages: (1..=pages).collect(),
    };
    let mut cases: BTreeMap<&str, Folded> = BTreeMap::new();
    cases.insert("01_inbound_plain_txfax_rxfax.txt", ok(1, 14400, true));
    cases.insert("03_txfax_http_get_expansion.txt", ok(2, 14400, true));
    cases.insert("05_inbound_json_txfax_rxfax.txt", ok(1, 14400, true));
    cases.insert(
        "07_inbound_side_of_outbound_socket_test.txt",
        ok(1, 14400, true),
    );
    cases.insert("10_timing_2page_run1.txt", ok(2, 14400, true));
    cases.insert("10_timing_2page_run2.txt", ok(2, 14400, true));
    cases.insert("10_timing_2page_run3.txt", ok(2, 14400, true));
    cases.insert("11_2page_ecm_off.txt", ok(2, 14400, false));
    cases.insert("12_2page_v17_disabled.txt", ok(2, 9600, true));
    cases.insert(
        "20_txfax_http_get_refresh_querystring.txt",
        ok(2, 14400, true),
    );
    cases.insert("22_sofia_sip_self_call_g711.txt", ok(2, 14400, true));
    for (name, want) in &cases {
        assert_eq!(&fold(name), want, "{name}");
    }

    let failed = |name: &str| {
        let f = fold(name);
        assert!(f.finished, "{name}: {f:?}");
        f.outcome.unwrap().unwrap_err()
    };
    assert_eq!(failed("16_fail_busy.txt"), LineError::Busy);
    assert_eq!(failed("17_fail_noanswer.txt"), LineError::NoAnswer);
    assert_eq!(
        failed("13_fail_bad_tiff.txt"),
        LineError::Fax(T30Code::FileError)
    );
    assert_eq!(
        failed("14_fail_receiver_hangs_up_mid_fax.txt"),
        LineError::Fax(T30Code::CallDropped)
    );
    assert_eq!(
        failed("15_fail_rx_bad_path.txt"),
        LineError::Fax(T30Code::CallDropped)
    );
    assert_eq!(
        failed("19_fail_remote_not_a_fax.txt"),
        LineError::Fax(T30Code::T0Expired)
    );
    let missing = failed("18_fail_tx_file_missing.txt");
    assert!(
        matches!(&missing, LineError::Document(p) if p.to_string().contains("Cannot send non-existant fax file")),
        "{missing:?}"
    );
    assert!(!missing.retry_may_help(), "a missing file is not retried");
    let direct_url = failed("02_txfax_direct_http_url.txt");
    assert!(
        matches!(direct_url, LineError::Switch(ref t) if t.contains("file proxy")),
        "{direct_url:?}"
    );
    assert!(matches!(
        failed("00_originate_parse_error_space_in_var.txt"),
        LineError::Rejected(t) if t.contains("DESTINATION_OUT_OF_ORDER")
    ));
    // Without `rtp-timer-name=soft` the fax never ends: nothing to fold.
    assert!(!fold("21_sofia_no_rtp_timer_HANGS.txt").finished);
}
