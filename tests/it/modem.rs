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
/// run. Fax transfers keep a margin for a loaded machine: the driver must
/// answer the far end within T.30's 3 s, here 3 s / SCALE of wall time.
const SCALE: f64 = 4.0;
/// Calls that fail before any fax is exchanged only wait for timers.
const FAST: f64 = 8.0;

const FAX: &str = "5550100";
const FAX_NO_ECM: &str = "5550101";
const BUSY: &str = "5550001";
const NO_ANSWER: &str = "5550002";
const VOICE: &str = "5550003";

struct Rig {
    scale: f64,
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
    rig_at(modems, SCALE)
}

fn rig_at(modems: usize, scale: f64) -> Rig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("MODEM_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let soft = SoftModems::start(&dir.path().join("dev"), modems, scale).unwrap();
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
        scale,
        dir,
        modems: soft,
        document,
        pages,
    }
}

fn config(device: &Path, numbers: &[&str], scale: f64) -> ModemConfig {
    ModemConfig {
        device: device.to_owned(),
        speed: 115_200,
        hardware_flow_control: false,
        init: "ATZ".into(),
        dial_prefix: "ATDT".into(),
        answer_after_rings: 2,
        numbers: numbers.iter().map(|n| n.to_string()).collect(),
        probe_every: Duration::from_secs(20),
        time_scale: scale,
    }
}

fn line(r: &Rig, n: usize, name: &str) -> ModemLine {
    let line = ModemLine::start(
        name,
        config(&r.modems.device(n), &["5550150"], r.scale),
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
    let r = rig_at(1, FAST);
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

/// Two Faxbox modem lines on two soft modems joined by the exchange send
/// a fax to each other: each side's driver is the real one.
#[test]
fn two_modem_lines_fax_each_other() {
    let r = rig(2);
    r.modems.add_number("5550200", Party::Modem(1));
    r.modems.add_number("5550300", Party::Modem(0));
    let a = line(&r, 0, "modem-a");
    let b = line(&r, 1, "modem-b");
    let inbox_a = inbox(&r);
    let inbox_b = inbox(&r);
    a.set_inbound(inbox_a.clone());
    b.set_inbound(inbox_b.clone());

    let (result, _) = call(&a, fax(&r, "a-to-b", "5550200", ErrorCorrection::Enabled));
    assert!(result.succeeded(), "{result:?}");
    assert_eq!(result.fax.as_ref().unwrap().remote_ident, "+1 555 0150");
    let got = wait_delivered(&inbox_b, 1);
    assert_eq!(got[0].outcome.code, T30Code::Ok, "{:?}", got[0]);
    assert_eq!(got[0].outcome.remote_ident, "+1 555 0199");
    let pages = decode_fax_tiff(&std::fs::read(&got[0].tiff).unwrap()).unwrap();
    assert_identical(&pages, &r.pages);

    // And back, without ECM.
    b.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle);
    let (result, _) = call(&b, fax(&r, "b-to-a", "5550300", ErrorCorrection::Disabled));
    assert!(result.succeeded(), "{result:?}");
    assert!(!result.fax.as_ref().unwrap().ecm);
    let got = wait_delivered(&inbox_a, 1);
    let pages = decode_fax_tiff(&std::fs::read(&got[0].tiff).unwrap()).unwrap();
    assert_identical(&pages, &r.pages);
}

/// The modem's cable pulled mid-page: the call ends in a line fault, the
/// job is retried, the line is down meanwhile (no channels) and comes back
/// by itself when the device returns; the retry then delivers the fax.
#[test]
fn a_modem_unplugged_mid_call_fails_the_attempt_and_the_retry_succeeds_once_it_returns() {
    use faxbox::model::{AttemptOutcome, JobStatus};
    use faxbox::scheduler::Scheduler;
    use faxbox::store::Store;

    let r = rig(1);
    let store = Arc::new(Store::open_data_dir(&r.dir.path().join("data")).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let line = Arc::new(line(&r, 0, "modem1"));
    let tiff = std::fs::read(&r.document).unwrap();
    let id = crate::scheduler::queue_job(&store, &account, FAX, 3, &tiff, &[]);
    let scheduler = Scheduler::start(
        store.clone(),
        vec![line.clone() as Arc<dyn Line>],
        crate::scheduler::options(r.dir.path()),
    )
    .unwrap();
    let sending = line.wait_for(Duration::from_secs(30), |s| *s == ModemState::Sending(2));
    assert_eq!(
        sending,
        ModemState::Sending(2),
        "the second page is going out"
    );
    // What /v2/status shows while no other record says it.
    let doing = line
        .activity()
        .expect("a modem in a call says what it does");
    assert_eq!(doing.state, "sending", "{doing:?}");
    r.modems.unplug(0);
    let down = line.wait_for(Duration::from_secs(10), |s| {
        matches!(s, ModemState::Down(_))
    });
    assert!(matches!(down, ModemState::Down(_)), "{down:?}");
    assert_eq!(line.channels(), 0, "a down line takes no calls");
    let fault = line.fault().expect("a down line says why");
    assert!(fault.contains("ttyFAX0"), "{fault}");
    assert_eq!(line.activity(), None, "down: the fault says it all");
    // The first attempt is recorded as failed by the line, the job waits.
    // (Its row exists from the moment the call was placed; wait for its end.)
    let until = Instant::now() + Duration::from_secs(10);
    while store
        .attempts(&id)
        .unwrap()
        .first()
        .is_none_or(|a| a.outcome.is_none())
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Failure));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.attempts(&id).unwrap().len(), 1, "no call while down");

    r.modems.plug(0).unwrap();
    let up = line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle);
    assert_eq!(up, ModemState::Idle, "probed again and found");
    assert_eq!(line.fault(), None);
    crate::scheduler::wait_terminal(&store, std::slice::from_ref(&id), Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));
    let fax = store.fax(&id).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Completed), "{:?}", fax.error);
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].report.pages_sent, 3);
}

/// A misbehaving "modem": a real pty whose far side answers each command
/// line with whatever `answer` says.
struct ScriptedModem {
    link: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedModem {
    fn start(dir: &Path, answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> ScriptedModem {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let slave = ptsname(&master, Vec::new()).unwrap();
        let link = dir.join("ttyBAD");
        std::os::unix::fs::symlink(slave.to_str().unwrap(), &link).unwrap();
        let flags = rustix::fs::fcntl_getfl(&master).unwrap();
        rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
        let mut master = std::fs::File::from(master);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut line = Vec::new();
            while !stopped.load(Ordering::Acquire) {
                let mut buf = [0u8; 256];
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        for &b in &buf[..n] {
                            if b == b'\r' {
                                let command = String::from_utf8_lossy(&line).trim().to_owned();
                                line.clear();
                                if !command.is_empty() {
                                    let _ = master.write_all(&answer(&command));
                                }
                            } else if b != 0x18 && b != b'\n' {
                                line.push(b);
                            }
                        }
                    }
                    _ => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        ScriptedModem {
            link,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ScriptedModem {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A probe that meets garbage, an echo without answers, or a modem that
/// refuses Class 1 marks the line down with the reason in plain words;
/// sending then fails at once, with that reason, and nothing hangs.
#[test]
fn a_modem_that_talks_nonsense_is_a_clear_line_error() {
    type Script = fn(&str) -> Vec<u8>;
    let cases: [(&str, Script, &str); 4] = [
        (
            "garbage",
            |_| b"\x01\xfe\x80\x7f\x00\x13\xaa\r\n".to_vec(),
            "not AT responses",
        ),
        (
            "echo",
            |c| format!("{c}\r").into_bytes(),
            "only echoes ATZ back",
        ),
        (
            "no class 1",
            |c| match c {
                "AT+FCLASS=?" => b"\r\n0,2\r\n\r\nOK\r\n".to_vec(),
                _ => b"\r\nOK\r\n".to_vec(),
            },
            "does not offer fax Class 1",
        ),
        (
            "error to class 1",
            |c| match c {
                "AT+FCLASS=?" => b"\r\n0,1,2\r\n\r\nOK\r\n".to_vec(),
                "AT+FCLASS=1" => b"\r\nERROR\r\n".to_vec(),
                _ => b"\r\nOK\r\n".to_vec(),
            },
            "said ERROR to AT+FCLASS=1",
        ),
    ];
    for (name, script, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let modem = ScriptedModem::start(dir.path(), script);
        let line = ModemLine::start("bad", config(&modem.link, &[], FAST), dir.path());
        let state = line.wait_for(
            Duration::from_secs(10),
            |s| matches!(s, ModemState::Down(w) if w != "not probed yet"),
        );
        let ModemState::Down(why) = &state else {
            panic!("{name}: {state:?}");
        };
        assert!(why.contains(reason), "{name}: {why}");
        assert!(why.contains("ttyBAD"), "{name}: names the device: {why}");
        let document = dir.path().join("one.tiff");
        std::fs::write(&document, encode_fax_tiff(&pages()[..1]).unwrap()).unwrap();
        let err = line
            .send(
                OutgoingFax {
                    call_id: "x".into(),
                    to_number: FAX.into(),
                    from_number: String::new(),
                    document,
                    settings: FaxSettings::default(),
                },
                Box::new(|_| {}),
            )
            .expect_err(name);
        assert!(
            matches!(&err, LineError::LineDown { why: w, .. } if w.contains(reason)),
            "{name}: {err}"
        );
        assert!(err.retry_may_help());
        drop(line);
    }
}

/// Frames with a bad FCS (the modem says ERROR after each) never become a
/// DIS: T.30 gives up by its own timers, the call fails with a T.30 code,
/// and the line hangs up and stays usable.
#[test]
fn frames_with_a_bad_fcs_fail_the_call_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let hung_up = Arc::new(Mutex::new(0));
    let counter = hung_up.clone();
    let modem = ScriptedModem::start(dir.path(), move |c| match c {
        "AT+FCLASS=?" => b"\r\n0,1\r\n\r\nOK\r\n".to_vec(),
        "ATH0" => {
            *counter.lock().unwrap() += 1;
            b"\r\nOK\r\n".to_vec()
        }
        c if c.starts_with("ATD") || c == "AT+FRH=3" => {
            // A DIS-like frame, its FCS wrong: ERROR instead of OK.
            let mut v = b"\r\nCONNECT\r\n".to_vec();
            v.extend_from_slice(&[0xff, 0x13, 0x80, 0x00, 0xee, 0xf8, 0x12, 0x34, 0x10, 0x03]);
            v.extend_from_slice(b"\r\nERROR\r\n");
            std::thread::sleep(Duration::from_millis(20));
            v
        }
        _ => b"\r\nOK\r\n".to_vec(),
    });
    let line = ModemLine::start("fcs", config(&modem.link, &[], FAST), dir.path());
    assert_eq!(
        line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
        ModemState::Idle
    );
    let document = dir.path().join("one.tiff");
    std::fs::write(&document, encode_fax_tiff(&pages()[..1]).unwrap()).unwrap();
    let started = Instant::now();
    let (result, _) = call(
        &line,
        OutgoingFax {
            call_id: "fcs".into(),
            to_number: FAX.into(),
            from_number: String::new(),
            document,
            settings: FaxSettings::default(),
        },
    );
    let Err(LineError::Fax(code)) = &result.outcome else {
        panic!("{result:?}");
    };
    assert!(code.retry_may_help(), "{code:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(*hung_up.lock().unwrap(), 1, "the modem was hung up");
    assert_eq!(line.state(), ModemState::Idle);
}

/// A modem that says ERROR to a Class 1 command mid-call: the attempt is a
/// line failure naming what was refused, the line goes down, and the next
/// probe (the modem answers AT again) brings it back.
#[test]
fn error_to_a_class_1_command_mid_call_is_a_line_fault_and_the_line_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let modem = ScriptedModem::start(dir.path(), |c| match c {
        "AT+FCLASS=?" => b"\r\n0,1\r\n\r\nOK\r\n".to_vec(),
        c if c.starts_with("ATD") => {
            // The answerer's DIS (as SpanDSP sends it), FCS good.
            let mut v = b"\r\nCONNECT\r\n".to_vec();
            v.extend_from_slice(&[
                0xff, 0x13, 0x80, 0x00, 0xee, 0xf8, 0xc4, 0x80, 0x99, 0x80, 0x80, 0x80, 0x18, 0x12,
                0x34, 0x10, 0x03,
            ]);
            v.extend_from_slice(b"\r\nOK\r\n");
            v
        }
        "AT+FTH=3" => b"\r\nERROR\r\n".to_vec(),
        _ => b"\r\nOK\r\n".to_vec(),
    });
    let line = ModemLine::start("err", config(&modem.link, &[], FAST), dir.path());
    assert_eq!(
        line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
        ModemState::Idle
    );
    let document = dir.path().join("one.tiff");
    std::fs::write(&document, encode_fax_tiff(&pages()[..1]).unwrap()).unwrap();
    let (result, _) = call(
        &line,
        OutgoingFax {
            call_id: "err".into(),
            to_number: FAX.into(),
            from_number: String::new(),
            document,
            settings: FaxSettings::default(),
        },
    );
    let Err(LineError::LineDown { why, .. }) = &result.outcome else {
        panic!("{result:?}");
    };
    assert!(why.contains("ERROR") && why.contains("+FTH=3"), "{why}");
    // Down at once, then found again by the next probe.
    let fault = line.fault();
    assert!(
        fault.as_deref().is_some_and(|f| f.contains("ttyBAD")),
        "{fault:?}"
    );
    assert_eq!(
        line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
        ModemState::Idle
    );
}
