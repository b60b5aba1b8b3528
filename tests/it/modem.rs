//! The modem line end to end: the real driver talks AT over a real pty to
//! SpanDSP's T.31 Class 1 modem, whose audio reaches real SpanDSP fax
//! machines (or a second soft modem) over a simulated telephone line.
//! Line time runs `SCALE` times faster than wall time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::config::ModemConfig;
use faxbox::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
use faxbox::lines::modem::{ModemState, Party, SoftModems};
use faxbox::lines::{
    Answer, AttemptResult, CallProgress, ErrorCorrection, FaxSettings, Inbound, IncomingCall, Line,
    LineError, ModemLine, OutgoingFax, ReceivedFax, T30Code,
};

/// How much faster than real time the soft modems and the driver's timers
/// run.
const SCALE: f64 = 8.0;

const FAX: &str = "5550100";
const FAX_NO_ECM: &str = "5550101";
const BUSY: &str = "5550001";
const NO_ANSWER: &str = "5550002";
const VOICE: &str = "5550003";

struct Rig {
    dir: tempfile::TempDir,
    modems: SoftModems,
    document: PathBuf,
    pages: Vec<BitPage>,
}

/// Three small pages (fine resolution), different from each other.
fn pages() -> Vec<BitPage> {
    (1..=3u32)
        .map(|n| {
            let mut page = BitPage::new(1728, 300, 204.0, 196.0);
            for y in 10..290 {
                page.set(20, y, true);
                page.set(1700, y, true);
            }
            for i in 0..n {
                for y in 40..120 {
                    for x in 100 + i * 60..130 + i * 60 {
                        page.set(x, y, true);
                    }
                }
            }
            for x in (300..1600).step_by(7) {
                page.set(x, 150 + (x % 100), true);
            }
            page
        })
        .collect()
}

fn rig(modems: usize) -> Rig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("MODEM_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let soft = SoftModems::start(&dir.path().join("dev"), modems, SCALE).unwrap();
    soft.add_number(FAX, Party::Fax(FaxSettings::default()));
    soft.add_number(
        FAX_NO_ECM,
        Party::Fax(FaxSettings {
            error_correction: ErrorCorrection::Disabled,
            ..FaxSettings::default()
        }),
    );
    soft.add_number(BUSY, Party::Busy);
    soft.add_number(NO_ANSWER, Party::NoAnswer);
    soft.add_number(VOICE, Party::Voice);
    let pages = pages();
    let document = dir.path().join("three.tiff");
    std::fs::write(&document, encode_fax_tiff(&pages).unwrap()).unwrap();
    Rig {
        dir,
        modems: soft,
        document,
        pages,
    }
}

fn config(device: &Path, numbers: &[&str]) -> ModemConfig {
    ModemConfig {
        device: device.to_owned(),
        speed: 115_200,
        hardware_flow_control: false,
        init: "ATZ".into(),
        dial_prefix: "ATDT".into(),
        answer_after_rings: 2,
        numbers: numbers.iter().map(|n| n.to_string()).collect(),
        probe_every: Duration::from_secs(20),
        time_scale: SCALE,
    }
}

fn line(r: &Rig, n: usize, name: &str) -> ModemLine {
    let line = ModemLine::start(
        name,
        config(&r.modems.device(n), &["5550150"]),
        r.dir.path(),
    );
    let state = line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle);
    assert_eq!(state, ModemState::Idle, "the soft modem probes fine");
    line
}

fn fax(r: &Rig, call_id: &str, number: &str, ecm: ErrorCorrection) -> OutgoingFax {
    OutgoingFax {
        call_id: call_id.into(),
        to_number: number.into(),
        from_number: "5550199".into(),
        document: r.document.clone(),
        settings: FaxSettings {
            ident: "+1 555 0199".into(),
            error_correction: ecm,
            ..FaxSettings::default()
        },
    }
}

fn call(line: &ModemLine, fax: OutgoingFax) -> (AttemptResult, Vec<CallProgress>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let call = line
        .send(fax, Box::new(move |p| sink.lock().unwrap().push(p)))
        .expect("the call is placed");
    let result = call.wait();
    let progress = seen.lock().unwrap().clone();
    (result, progress)
}

fn assert_identical(got: &[BitPage], sent: &[BitPage]) {
    assert_eq!(got.len(), sent.len(), "page count");
    for (i, (got, sent)) in got.iter().zip(sent).enumerate() {
        assert_eq!(
            got.differing_pixels(sent),
            Some(0),
            "page {} differs",
            i + 1
        );
    }
}

#[test]
fn three_pages_reach_a_spandsp_receiver_identical_with_and_without_ecm() {
    let r = rig(1);
    let line = line(&r, 0, "modem1");
    for (k, ecm) in [ErrorCorrection::Disabled, ErrorCorrection::Enabled]
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let (result, progress) = call(&line, fax(&r, &format!("m{k}"), FAX, ecm));
        assert!(result.succeeded(), "{ecm:?}: {result:?}");
        let outcome = result.fax.as_ref().unwrap();
        assert_eq!(outcome.pages, 3);
        assert_eq!(outcome.ecm, ecm == ErrorCorrection::Enabled, "{outcome:?}");
        assert!(progress.contains(&CallProgress::Dialling));
        assert!(progress.contains(&CallProgress::Answered));
        let pages_done = progress
            .iter()
            .filter(|p| matches!(p, CallProgress::PageDone(_)))
            .count();
        assert_eq!(pages_done, 3, "{progress:?}");
        let far = r.modems.wait_finished(k + 1, Duration::from_secs(30));
        let far = &far[k];
        assert_eq!(far.outcome.as_ref().unwrap().code, T30Code::Ok, "{far:?}");
        let got = decode_fax_tiff(&std::fs::read(far.received.as_ref().unwrap()).unwrap()).unwrap();
        assert_identical(&got, &r.pages);
        eprintln!("{ecm:?}: {:?} wall", started.elapsed());
        assert_eq!(line.state(), ModemState::Idle);
    }
}

/// The modem's own words for a call that did not connect become the
/// line errors the scheduler retries on, and the line stays usable.
#[test]
fn busy_no_answer_no_carrier_and_no_dial_tone_map_to_their_causes() {
    let r = rig(1);
    let line = line(&r, 0, "modem1");
    let cases: [(&str, LineError); 3] = [
        (BUSY, LineError::Busy),
        (NO_ANSWER, LineError::NoAnswer),
        // A voice answers: the modem hears no fax carrier.
        (VOICE, LineError::NoCarrier),
    ];
    for (k, (number, want)) in cases.into_iter().enumerate() {
        let (result, _) = call(
            &line,
            fax(&r, &format!("e{k}"), number, ErrorCorrection::Enabled),
        );
        assert_eq!(result.outcome, Err(want.clone()), "{number}: {result:?}");
        assert!(want.retry_may_help());
        assert_eq!(line.state(), ModemState::Idle, "{number}");
    }
    r.modems.set_dial_tone(0, false);
    let (result, _) = call(&line, fax(&r, "e9", FAX, ErrorCorrection::Enabled));
    assert_eq!(
        result.outcome,
        Err(LineError::NoDialTone {
            line: "modem1".into()
        })
    );
    assert!(!result.answered);
    r.modems.set_dial_tone(0, true);
    let (result, _) = call(&line, fax(&r, "ok", FAX, ErrorCorrection::Enabled));
    assert!(result.succeeded(), "{result:?}");
}

/// Where the tests' receive path keeps what the line delivers.
struct Inbox {
    files: PathBuf,
    answer: bool,
    got: Mutex<Vec<ReceivedFax>>,
    calls: Mutex<Vec<IncomingCall>>,
}

impl Inbound for Inbox {
    fn owns_number(&self, _number: &str) -> bool {
        false
    }
    fn answer(&self, call: &IncomingCall) -> Option<Answer> {
        self.calls.lock().unwrap().push(call.clone());
        self.answer.then(|| Answer {
            ident: "+1 555 0150".into(),
            tiff: self.files.join(format!("{}.tiff", call.call_id)),
        })
    }
    fn deliver(&self, fax: ReceivedFax) {
        self.got.lock().unwrap().push(fax);
    }
}

fn inbox(r: &Rig) -> Arc<Inbox> {
    Arc::new(Inbox {
        files: r.dir.path().to_owned(),
        answer: true,
        got: Mutex::new(Vec::new()),
        calls: Mutex::new(Vec::new()),
    })
}

fn wait_delivered(inbox: &Inbox, n: usize) -> Vec<ReceivedFax> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let got = inbox.got.lock().unwrap().clone();
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RING, RING, answer: a SpanDSP sender's pages reach the inbox, with and
/// without ECM.
#[test]
fn a_spandsp_sender_rings_and_its_fax_reaches_the_inbox() {
    let r = rig(1);
    let line = line(&r, 0, "modem1");
    let inbox = inbox(&r);
    line.set_inbound(inbox.clone());
    for (k, ecm) in [ErrorCorrection::Enabled, ErrorCorrection::Disabled]
        .into_iter()
        .enumerate()
    {
        let settings = FaxSettings {
            ident: "+1 555 0777".into(),
            error_correction: ecm,
            ..FaxSettings::default()
        };
        r.modems.call_in(0, &r.document, settings).unwrap();
        let got = wait_delivered(&inbox, k + 1);
        assert_eq!(got.len(), k + 1, "{ecm:?}: delivered");
        let fax = &got[k];
        assert_eq!(fax.outcome.code, T30Code::Ok, "{ecm:?}: {fax:?}");
        assert_eq!(fax.outcome.pages, 3);
        assert_eq!(fax.outcome.ecm, ecm == ErrorCorrection::Enabled);
        assert_eq!(fax.outcome.remote_ident, "+1 555 0777");
        assert_eq!(fax.to_number, "5550150", "the line's number");
        let pages = decode_fax_tiff(&std::fs::read(&fax.tiff).unwrap()).unwrap();
        assert_identical(&pages, &r.pages);
        // The sender saw the same.
        let far = r.modems.wait_finished(k + 1, Duration::from_secs(30));
        assert_eq!(far[k].outcome.as_ref().unwrap().code, T30Code::Ok);
        assert_eq!(
            line.wait_for(Duration::from_secs(5), |s| *s == ModemState::Idle),
            ModemState::Idle
        );
    }
    assert_eq!(inbox.calls.lock().unwrap().len(), 2);
}
