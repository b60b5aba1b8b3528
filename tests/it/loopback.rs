//! The loopback line end to end: real SpanDSP T.30 on both sides of a
//! simulated telephone line, documents written and read back as fax TIFFs.
//! Calls run faster than real time, so a minute of fax is milliseconds here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use faxbox::config::{FarEnd, LoopbackConfig};
use faxbox::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
use faxbox::lines::selftest::test_pages;
use faxbox::lines::{
    Answer, AttemptResult, CallProgress, DocumentProblem, ErrorCorrection, FaxSettings, Inbound,
    IncomingCall, Line, LineError, LoopbackLine, Modem, Modems, OutgoingFax, ReceivedFax, T30Code,
};

const HEALTHY: &str = "5550100";
const BUSY: &str = "5550001";
const NO_ANSWER: &str = "5550002";
const NOT_A_FAX: &str = "5550003";
const CUT_AT_15S: &str = "5550004";
const NOISY: &str = "5550005";
const HOPELESS: &str = "5550006";
const NO_ECM: &str = "5550007";
const DEAFENING: &str = "5550008";

struct Bench {
    _dir: tempfile::TempDir,
    root: PathBuf,
    line: LoopbackLine,
    pages: Vec<BitPage>,
    document: PathBuf,
}

fn bench(channels: u32, realtime: bool) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let numbers: BTreeMap<String, FarEnd> = [
        (BUSY, FarEnd::Busy),
        (NO_ANSWER, FarEnd::NoAnswer),
        (NOT_A_FAX, FarEnd::NotAFax),
        (CUT_AT_15S, FarEnd::DropsAfter(Duration::from_secs(15))),
        // A long analogue line: 20 dB of loss and noise at -50 dBm0 leave a
        // signal-to-noise ratio where V.17 falls back and non-ECM rows break.
        (
            NOISY,
            FarEnd::Noise {
                db: -50.0,
                loss_db: 20.0,
            },
        ),
        // Noise loud enough to keep V.21's carrier detector on.
        (
            HOPELESS,
            FarEnd::Noise {
                db: -45.0,
                loss_db: 0.0,
            },
        ),
        (NO_ECM, FarEnd::RejectsEcm),
        // So loud that T.30's timers never run (a carrier is always "up").
        (
            DEAFENING,
            FarEnd::Noise {
                db: -30.0,
                loss_db: 0.0,
            },
        ),
    ]
    .into_iter()
    .map(|(n, f)| (n.to_owned(), f))
    .collect();
    let line = LoopbackLine::new(
        "lb",
        LoopbackConfig {
            channels,
            realtime,
            numbers,
        },
        &root,
    );
    let (pages, tiff) = three_pages();
    let document = root.join("three-pages.tiff");
    std::fs::write(&document, tiff).unwrap();
    Bench {
        _dir: dir,
        root,
        line,
        pages: pages.clone(),
        document,
    }
}

/// The selftest's 3 pages and their fax TIFF, made once per test run
/// (drawing and encoding them in a debug build takes a moment).
fn three_pages() -> &'static (Vec<BitPage>, Vec<u8>) {
    static PAGES: OnceLock<(Vec<BitPage>, Vec<u8>)> = OnceLock::new();
    PAGES.get_or_init(|| {
        let pages = test_pages(3);
        let tiff = encode_fax_tiff(&pages).unwrap();
        (pages, tiff)
    })
}

fn settings(modems: Modems, ecm: ErrorCorrection) -> FaxSettings {
    FaxSettings {
        ident: "+1 555 0199".into(),
        error_correction: ecm,
        modems,
        ..FaxSettings::default()
    }
}

fn request(b: &Bench, call_id: &str, number: &str, settings: FaxSettings) -> OutgoingFax {
    OutgoingFax {
        call_id: call_id.into(),
        to_number: number.into(),
        from_number: "5550199".into(),
        document: b.document.clone(),
        settings,
    }
}

/// Places one call and waits for it, collecting its progress.
fn call(b: &Bench, fax: OutgoingFax) -> (AttemptResult, Vec<CallProgress>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let call = b
        .line
        .send(fax, Box::new(move |p| sink.lock().unwrap().push(p)))
        .expect("the call is placed");
    let result = call.wait();
    let progress = seen.lock().unwrap().clone();
    (result, progress)
}

fn received(b: &Bench, call_id: &str) -> Vec<BitPage> {
    let bytes = std::fs::read(b.line.received_file(call_id)).expect("the far end kept a file");
    decode_fax_tiff(&bytes).expect("the received file decodes")
}

fn assert_identical(b: &Bench, call_id: &str) {
    let got = received(b, call_id);
    assert_eq!(got.len(), b.pages.len(), "{call_id}: page count");
    for (i, (got, sent)) in got.iter().zip(&b.pages).enumerate() {
        assert_eq!(
            got.differing_pixels(sent),
            Some(0),
            "{call_id}: page {} differs ({}x{} received)",
            i + 1,
            got.width,
            got.height
        );
    }
}

#[test]
fn three_pages_arrive_pixel_identical_with_and_without_ecm_on_every_modem() {
    let b = bench(8, false);
    let cases = [
        (Modem::V17, ErrorCorrection::Enabled, 14400),
        (Modem::V17, ErrorCorrection::Disabled, 14400),
        (Modem::V29, ErrorCorrection::Enabled, 9600),
        (Modem::V29, ErrorCorrection::Disabled, 9600),
        (Modem::V27ter, ErrorCorrection::Enabled, 4800),
        (Modem::V27ter, ErrorCorrection::Disabled, 4800),
    ];
    // All six at once: the line runs each call on its own thread.
    let calls: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (modem, ecm, _))| {
            let id = format!("modem-{i}");
            let seen = Arc::new(Mutex::new(Vec::new()));
            let sink = seen.clone();
            let fax = request(&b, &id, HEALTHY, settings(Modems::only(*modem), *ecm));
            let call = b
                .line
                .send(fax, Box::new(move |p| sink.lock().unwrap().push(p)))
                .unwrap();
            (id, call, seen)
        })
        .collect();
    for ((id, call, seen), (modem, ecm, rate)) in calls.into_iter().zip(cases) {
        let r = call.wait();
        let what = format!("{id} {modem:?} {ecm:?}");
        assert_eq!(r.outcome, Ok(()), "{what}");
        assert!(r.answered, "{what}");
        let fax = r.fax.as_ref().unwrap();
        assert_eq!(fax.code, T30Code::Ok, "{what}");
        assert_eq!(fax.pages, 3, "{what}");
        assert_eq!(fax.bit_rate, rate, "{what}");
        assert_eq!(fax.ecm, ecm == ErrorCorrection::Enabled, "{what}");
        // The far machine answers with the dialled number as its CSI.
        assert_eq!(fax.remote_ident, HEALTHY, "{what}");
        assert_eq!(r.document_pages, 3);
        assert!(r.duration > Duration::from_secs(20), "{what}: {r:?}");
        assert_identical(&b, &id);

        let progress = seen.lock().unwrap().clone();
        assert_eq!(progress[0], CallProgress::Dialling, "{what}");
        assert_eq!(progress[1], CallProgress::Answered, "{what}");
        let CallProgress::Negotiated(n) = &progress[2] else {
            panic!("{what}: third event {:?}", progress[2]);
        };
        assert_eq!((n.bit_rate, n.ecm), (rate, fax.ecm), "{what}");
        assert_eq!(n.remote_ident, HEALTHY, "{what}");
        let pages: Vec<u32> = progress
            .iter()
            .filter_map(|p| match p {
                CallProgress::PageDone(p) => {
                    assert_eq!((p.x_dpi, p.y_dpi), (204, 196), "{what}");
                    Some(p.page)
                }
                _ => None,
            })
            .collect();
        assert_eq!(pages, [1, 2, 3], "{what}");
    }
    assert_eq!(b.line.calls_in_progress(), 0);
}

/// Keeps what an `Inbound` is handed, to see the far end's side of a call.
#[derive(Default)]
struct Inbox {
    numbers: Vec<String>,
    /// Where answered calls write their pages.
    files: PathBuf,
    got: Mutex<Vec<ReceivedFax>>,
}

impl Inbound for Inbox {
    fn owns_number(&self, number: &str) -> bool {
        self.numbers.iter().any(|n| n == number)
    }
    fn answer(&self, call: &IncomingCall) -> Option<Answer> {
        Some(Answer {
            ident: call.to_number.clone(),
            tiff: self.files.join(format!("{}.tiff", call.call_id)),
        })
    }
    fn deliver(&self, fax: ReceivedFax) {
        self.got.lock().unwrap().push(fax);
    }
}

impl Inbox {
    fn take(&self, call_id: &str) -> ReceivedFax {
        let mut got = self.got.lock().unwrap();
        let i = got
            .iter()
            .position(|f| f.call_id == call_id)
            .expect("delivered");
        got.remove(i)
    }
}

#[test]
fn noisy_line_costs_non_ecm_rows_but_ecm_delivers_identical_pages() {
    let b = bench(4, false);
    let inbox = Arc::new(Inbox {
        numbers: vec![NOISY.into()],
        files: b.line.received_file("x").parent().unwrap().to_owned(),
        ..Inbox::default()
    });
    b.line.set_inbound(inbox.clone());

    let (plain, _) = call(
        &b,
        request(
            &b,
            "noisy-plain",
            NOISY,
            settings(Modems::ALL, ErrorCorrection::Disabled),
        ),
    );
    let (ecm, _) = call(
        &b,
        request(
            &b,
            "noisy-ecm",
            NOISY,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
    );

    // Without ECM the pages get through, but damaged: the receiver counts
    // bad rows and the images differ from what was sent.
    assert_eq!(plain.outcome, Ok(()));
    let far = inbox.take("noisy-plain");
    assert_eq!(far.outcome.code, T30Code::Ok);
    assert_eq!(far.outcome.pages, 3);
    assert!(far.outcome.bad_rows > 0, "{:?}", far.outcome);
    assert_eq!(far.tiff, b.line.received_file("noisy-plain"));
    let damaged = received(&b, "noisy-plain");
    assert!(
        damaged
            .iter()
            .zip(&b.pages)
            .any(|(got, sent)| got.differing_pixels(sent) != Some(0)),
        "noise left every page intact"
    );
    // The noise makes V.17 fall back from 14400.
    assert!(plain.fax.as_ref().unwrap().bit_rate < 14400);

    // With ECM every frame is checked and resent: identical pages.
    assert_eq!(ecm.outcome, Ok(()));
    assert!(ecm.fax.as_ref().unwrap().ecm);
    let far = inbox.take("noisy-ecm");
    assert_eq!(far.outcome.bad_rows, 0);
    assert_identical(&b, "noisy-ecm");
}

#[test]
fn hopeless_noise_fails_with_no_response_to_dcs_in_bounded_time() {
    let b = bench(4, false);
    let (r, _) = call(
        &b,
        request(
            &b,
            "hopeless",
            HOPELESS,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
    );
    assert!(r.answered);
    // The answerer never hears DCS/TCF through the noise; after three tries
    // the sender gives up (SpanDSP code 20).
    assert_eq!(r.outcome, Err(LineError::Fax(T30Code::TxPhaseBDead)));
    assert_eq!(r.fax.as_ref().unwrap().pages, 0);
    assert!(r.duration < Duration::from_secs(60), "{:?}", r.duration);
    assert!(r.outcome.as_ref().unwrap_err().retry_may_help());
}

/// Constant loud noise keeps the V.21 carrier detectors on, which suspends
/// the T.30 response timers (SpanDSP, like real machines), so only the line's own limit
/// ends the call: it hangs up, and the call counts as dropped (49).
#[test]
fn endless_noise_is_hung_up_at_the_call_time_limit() {
    let b = bench(4, false);
    let (r, _) = call(
        &b,
        request(
            &b,
            "deafening",
            DEAFENING,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
    );
    assert_eq!(r.outcome, Err(LineError::Fax(T30Code::CallDropped)));
    // 5 minutes plus 2 per page of the 3-page document.
    assert_eq!(r.duration, Duration::from_secs(300 + 3 * 120));
}

#[test]
fn line_cut_mid_page_fails_within_the_t30_timers() {
    let b = bench(4, false);
    let (r, progress) = call(
        &b,
        request(
            &b,
            "cut",
            CUT_AT_15S,
            settings(Modems::ALL, ErrorCorrection::Disabled),
        ),
    );
    // The line died after negotiation and before page 1 was confirmed, so
    // in the middle of the first page.
    assert!(
        progress
            .iter()
            .any(|p| matches!(p, CallProgress::Negotiated(_)))
    );
    assert!(
        !progress
            .iter()
            .any(|p| matches!(p, CallProgress::PageDone(_)))
    );
    // After the page the sender asks three times (T4 = 3 s each) and gives
    // up: "no response after sending a page" (21).
    assert_eq!(r.outcome, Err(LineError::Fax(T30Code::TxPhaseDDead)));
    assert_eq!(r.fax.as_ref().unwrap().pages, 0);
    assert!(
        r.duration > Duration::from_secs(15) && r.duration < Duration::from_secs(60),
        "{:?}",
        r.duration
    );
}

#[test]
fn not_a_fax_ends_with_code_2_when_t0_expires() {
    let b = bench(4, false);
    let (r, progress) = call(
        &b,
        request(
            &b,
            "voice",
            NOT_A_FAX,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
    );
    assert!(r.answered);
    assert_eq!(progress, [CallProgress::Dialling, CallProgress::Answered]);
    assert_eq!(r.outcome, Err(LineError::Fax(T30Code::T0Expired)));
    assert_eq!(r.code().unwrap().number(), 2);
    assert_eq!(
        r.code().unwrap().text(),
        "Timed out waiting for initial communication"
    );
    // T.30 recommends T0 = 60 +- 5 s; SpanDSP uses 60 s.
    assert!(
        r.duration >= Duration::from_secs(55) && r.duration <= Duration::from_secs(65),
        "{:?}",
        r.duration
    );
    assert!(!b.line.received_file("voice").exists());
}

#[test]
fn busy_and_no_answer_end_before_any_t30() {
    let b = bench(4, false);
    for (number, error) in [(BUSY, LineError::Busy), (NO_ANSWER, LineError::NoAnswer)] {
        let (r, progress) = call(
            &b,
            request(
                &b,
                "unanswered",
                number,
                settings(Modems::ALL, ErrorCorrection::Enabled),
            ),
        );
        assert_eq!(r.outcome, Err(error.clone()), "{number}");
        assert!(!r.answered, "{number}");
        assert_eq!(r.fax, None, "{number}");
        assert_eq!(progress, [CallProgress::Dialling], "{number}");
        assert!(error.retry_may_help());
    }
}

#[test]
fn far_end_without_ecm_still_receives_identical_pages() {
    let b = bench(4, false);
    let (r, _) = call(
        &b,
        request(
            &b,
            "no-ecm",
            NO_ECM,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
    );
    assert_eq!(r.outcome, Ok(()));
    assert!(!r.fax.as_ref().unwrap().ecm, "ECM was used: {r:?}");
    assert_identical(&b, "no-ecm");
}

#[test]
fn page_header_is_added_above_each_page() {
    let b = bench(4, false);
    let mut s = settings(Modems::ALL, ErrorCorrection::Enabled);
    s.header = "Faxbox test header".into();
    s.timezone = Some("UTC0".into());
    let (r, _) = call(&b, request(&b, "header", HEALTHY, s));
    assert_eq!(r.outcome, Ok(()));
    for (got, sent) in received(&b, "header").iter().zip(&b.pages) {
        // SpanDSP prepends the header rows; the page itself follows intact.
        let extra = got.height - sent.height;
        assert!(extra > 0 && extra <= 64, "{extra} header rows");
        let header_black = (0..extra).any(|y| got.row(y).iter().any(|&byte| byte != 0));
        assert!(header_black, "the header rows are blank");
        for y in 0..sent.height {
            assert_eq!(got.row(y + extra), sent.row(y), "row {y}");
        }
    }
}

#[test]
fn eight_simultaneous_calls_all_succeed() {
    let b = bench(8, false);
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let id = format!("parallel-{i}");
            let call = b
                .line
                .send(
                    request(
                        &b,
                        &id,
                        HEALTHY,
                        settings(Modems::ALL, ErrorCorrection::Enabled),
                    ),
                    Box::new(|_| {}),
                )
                .unwrap();
            (id, call)
        })
        .collect();
    for (id, call) in calls {
        let r = call.wait();
        assert_eq!(r.outcome, Ok(()), "{id}");
        assert_eq!(r.fax.as_ref().unwrap().pages, 3, "{id}");
        assert_identical(&b, &id);
    }
    assert_eq!(b.line.calls_in_progress(), 0);
}

#[test]
fn a_line_never_carries_more_calls_than_it_has_channels() {
    // In real time a busy number takes 3 s to report busy: long enough to
    // try a second call while the only channel is taken.
    let b = bench(1, true);
    let first = b
        .line
        .send(
            request(
                &b,
                "first",
                BUSY,
                settings(Modems::ALL, ErrorCorrection::Enabled),
            ),
            Box::new(|_| {}),
        )
        .unwrap();
    assert_eq!(b.line.calls_in_progress(), 1);
    let second = b.line.send(
        request(
            &b,
            "second",
            HEALTHY,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        ),
        Box::new(|_| {}),
    );
    assert_eq!(
        second.err(),
        Some(LineError::NoFreeChannel {
            line: "lb".into(),
            channels: 1
        })
    );
    let r = first.wait();
    assert_eq!(r.outcome, Err(LineError::Busy));
    assert!(r.wall_time >= Duration::from_secs(3), "{:?}", r.wall_time);
    assert_eq!(b.line.calls_in_progress(), 0);
}

/// In real time the audio is paced at 8 kHz, and an operator (or shutdown)
/// can hang up a call in progress: it ends at once as dropped (49).
#[test]
fn a_real_time_call_is_paced_and_can_be_hung_up() {
    let b = bench(2, true);
    let call = b
        .line
        .send(
            request(
                &b,
                "hang-up",
                HEALTHY,
                settings(Modems::ALL, ErrorCorrection::Enabled),
            ),
            Box::new(|_| {}),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!call.is_finished());
    call.hang_up();
    let r = call.wait();
    assert_eq!(r.outcome, Err(LineError::Fax(T30Code::CallDropped)));
    assert!(r.answered);
    // Paced: no more audio than wall-clock time (plus one 20 ms chunk).
    assert!(
        r.duration >= Duration::from_millis(400)
            && r.duration <= r.wall_time + Duration::from_millis(20),
        "{:?} of audio in {:?}",
        r.duration,
        r.wall_time
    );
    assert!(r.wall_time < Duration::from_secs(3), "{:?}", r.wall_time);
}

#[test]
fn bad_documents_are_refused_before_any_call() {
    let b = bench(4, false);
    let not_tiff = b.root.join("letter.tiff");
    std::fs::write(&not_tiff, "Dear Sir, this is not an image.").unwrap();
    let zero_pages = b.root.join("empty.tiff");
    // A valid little-endian TIFF header whose first directory offset is 0.
    std::fs::write(&zero_pages, b"II*\0\0\0\0\0").unwrap();
    let wide = b.root.join("wide.tiff");
    let mut wide_page = BitPage::new(2048, 100, 204.0, 196.0);
    wide_page.set(10, 10, true);
    std::fs::write(&wide, encode_fax_tiff(&[wide_page]).unwrap()).unwrap();
    let missing = b.root.join("missing.tiff");

    type Expect = fn(&DocumentProblem) -> bool;
    let cases: [(&Path, Expect); 4] = [
        (&not_tiff, |p| matches!(p, DocumentProblem::NotTiff { .. })),
        (&missing, |p| {
            matches!(p, DocumentProblem::Unreadable { .. })
        }),
        (&zero_pages, |p| {
            matches!(p, DocumentProblem::NoPages { .. })
        }),
        (&wide, |p| {
            matches!(
                p,
                DocumentProblem::WrongWidth {
                    page: 1,
                    width: 2048,
                    ..
                }
            )
        }),
    ];
    for (i, (path, expected)) in cases.into_iter().enumerate() {
        let id = format!("bad-{i}");
        let mut fax = request(
            &b,
            &id,
            HEALTHY,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        );
        fax.document = path.to_owned();
        let progressed = Arc::new(Mutex::new(false));
        let flag = progressed.clone();
        let err = b
            .line
            .send(fax, Box::new(move |_| *flag.lock().unwrap() = true))
            .expect_err("refused");
        let LineError::Document(problem) = &err else {
            panic!("{}: {err:?}", path.display());
        };
        assert!(expected(problem), "{}: {problem:?}", path.display());
        // The message names the file, for the person reading the report.
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert!(!err.retry_may_help());
        assert!(!*progressed.lock().unwrap(), "a call was started");
        assert!(!b.line.received_file(&id).exists());
        assert_eq!(b.line.calls_in_progress(), 0);
    }
}

#[test]
fn bad_settings_are_refused_before_any_call() {
    let b = bench(4, false);
    type Spoil = fn(&mut OutgoingFax);
    let cases: [(&str, Spoil); 5] = [
        ("ident", |f| {
            f.settings.ident = "123456789012345678901".into()
        }),
        ("header", |f| f.settings.header = "Fax für Sie".into()),
        ("timezone", |f| {
            f.settings.timezone = Some("Not a zone!".into())
        }),
        ("modems", |f| {
            f.settings.modems = Modems::only(Modem::V17).without(Modem::V17)
        }),
        ("call id", |f| f.call_id = "../escape".into()),
    ];
    for (what, spoil) in cases {
        let mut fax = request(
            &b,
            "settings",
            HEALTHY,
            settings(Modems::ALL, ErrorCorrection::Enabled),
        );
        spoil(&mut fax);
        let err = b.line.send(fax, Box::new(|_| {})).expect_err(what);
        let LineError::Settings(message) = &err else {
            panic!("{what}: {err:?}");
        };
        assert!(message.contains(what), "{what}: {message}");
        assert!(!err.retry_may_help());
    }
    assert_eq!(b.line.calls_in_progress(), 0);
}

#[test]
fn selftest_command_prints_the_table_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::harness::faxbox(dir.path(), &["selftest"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "V.17 with ECM",
        "V.17 without ECM",
        "V.29 with ECM",
        "V.27ter without ECM",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row:?} row in\n{stdout}"));
        assert!(line.ends_with(" ok"), "{line}");
        assert!(line.contains(" 3 "), "3 pages: {line}");
    }
    assert!(stdout.contains("x real"), "{stdout}");
    assert!(stdout.contains("selftest: all 4 calls passed"), "{stdout}");
    // It works in a temporary folder of its own, not the data dir.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
