//! The modem line end to end: the real driver talks AT over a real pty to
//! SpanDSP's T.31 Class 1 modem, whose audio reaches real SpanDSP fax
//! machines (or a second soft modem) over a simulated telephone line.
//! Line time runs `SCALE` times faster than wall time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::config::{FlowControl, ModemConfig};
use faxbox::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
use faxbox::lines::modem::{Behaviour, ModemState, Party, SoftModems};
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
        flow_control: FlowControl::Auto,
        lock_dir: None,
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
    // NO DIALTONE is what iaxmodem says for a busy number (issue 26): a
    // missing dial tone is retried as busy, and the line is not blamed.
    r.modems.set_dial_tone(0, false);
    let (result, _) = call(&line, fax(&r, "e9", FAX, ErrorCorrection::Enabled));
    assert_eq!(result.outcome, Err(LineError::Busy));
    assert!(!result.answered);
    assert_eq!(line.fault(), None);
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
            line.wait_for(Duration::from_secs(30), |s| *s == ModemState::Idle),
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
    // Up again; the waiting retry may start the moment it is.
    let up = line.wait_for(Duration::from_secs(10), |s| {
        !matches!(s, ModemState::Down(_))
    });
    assert!(
        !matches!(up, ModemState::Down(_)),
        "probed again and found: {up:?}"
    );
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

/// The three ways iaxmodem 1.2.0 differs from the rig's default modem
/// (issue 26): in-band XON/XOFF pacing, no clock (so no answer to
/// `AT+FTS`) once the far end hung up, and `NO DIALTONE` for a busy number.
const IAXMODEM: Behaviour = Behaviour {
    xon_xoff: true,
    clock_only_in_calls: true,
    busy_is_no_dialtone: true,
};

/// A dense A4 page at fine resolution: lines of "text" (small blobs) over
/// the whole page, many seconds of image data at 14400 bit/s.
fn dense_page() -> BitPage {
    let mut page = BitPage::new(1728, 2200, 204.0, 196.0);
    let mut seed = 0x2545_f491_u32;
    for band in (60..2140).step_by(36) {
        for cell in (40..1690).step_by(4) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            if seed.is_multiple_of(3) {
                for y in band..band + 4 + (seed >> 8) % 16 {
                    for x in cell..cell + 4 {
                        page.set(x, y, true);
                    }
                }
            }
        }
    }
    page
}

/// Ten pages, each different (the n-th has n boxes).
fn ten_pages() -> Vec<BitPage> {
    (1..=10u32)
        .map(|n| {
            let mut page = BitPage::new(1728, 400, 204.0, 196.0);
            for i in 0..n {
                for y in 40..120 + 20 * n {
                    for x in 100 + i * 140..200 + i * 140 {
                        page.set(x, y, true);
                    }
                }
            }
            page
        })
        .collect()
}

fn write_document(dir: &Path, name: &str, pages: &[BitPage]) -> (PathBuf, Vec<u8>) {
    let tiff = encode_fax_tiff(pages).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &tiff).unwrap();
    (path, tiff)
}

/// Issue 26's "done when", sending: behind a modem that behaves as
/// iaxmodem, a dense full page and a 10-page fax reach a SpanDSP receiver
/// identical, with ECM and without; each call ends in success (not a
/// device fault after the final DCN), the receiver got each fax once; the
/// modem paced the sender mid-page and lost nothing; the line is not
/// blamed afterwards.
#[test]
fn a_dense_page_and_ten_pages_go_out_through_an_iaxmodem_once_each() {
    let r = rig(1);
    r.modems.set_behaviour(0, IAXMODEM);
    let line = line(&r, 0, "modem1");
    let dense = vec![dense_page()];
    let ten = ten_pages();
    let (dense_path, dense_tiff) = write_document(r.dir.path(), "dense.tiff", &dense);
    let (ten_path, ten_tiff) = write_document(r.dir.path(), "ten.tiff", &ten);
    let jobs = [
        ("dense, ECM", FAX, &dense_path, &dense_tiff, &dense),
        (
            "dense, no ECM",
            FAX_NO_ECM,
            &dense_path,
            &dense_tiff,
            &dense,
        ),
        ("ten pages, ECM", FAX, &ten_path, &ten_tiff, &ten),
        ("ten pages, no ECM", FAX_NO_ECM, &ten_path, &ten_tiff, &ten),
    ];
    for (k, (name, number, path, tiff, pages)) in jobs.iter().enumerate() {
        let started = Instant::now();
        let mut outgoing = fax(&r, &format!("iax{k}"), number, ErrorCorrection::Enabled);
        outgoing.document = (*path).clone();
        let (result, progress) = call(&line, outgoing);
        assert!(result.succeeded(), "{name}: {result:?}");
        let outcome = result.fax.as_ref().unwrap();
        assert_eq!(outcome.pages, pages.len() as u32, "{name}");
        assert_eq!(outcome.ecm, *number == FAX, "{name}");
        let pages_done = progress
            .iter()
            .filter(|p| matches!(p, CallProgress::PageDone(_)))
            .count();
        assert_eq!(pages_done, pages.len(), "{name}: {progress:?}");
        let far = r.modems.wait_finished(k + 1, Duration::from_secs(30));
        assert_eq!(far.len(), k + 1, "{name}: the receiver got it once");
        assert_eq!(far[k].outcome.as_ref().unwrap().code, T30Code::Ok, "{name}");
        let got =
            decode_fax_tiff(&std::fs::read(far[k].received.as_ref().unwrap()).unwrap()).unwrap();
        assert_identical(&got, pages);
        let flow = r.modems.flow_stats(0);
        eprintln!(
            "{name}: {} bytes of TIFF, {:?} on the line, {:?} wall; DC3 pauses so far {}",
            tiff.len(),
            result.duration,
            started.elapsed(),
            flow.pauses
        );
        assert_eq!(flow.overrun_bytes, 0, "{name}: the sender heeded every DC3");
        assert_eq!(line.fault(), None, "{name}: the line is not blamed");
    }
    assert!(
        r.modems.flow_stats(0).pauses > 0,
        "the modem paced the sender"
    );
    // Nothing else was dialled.
    assert_eq!(r.modems.finished().len(), jobs.len());
}

/// Issue 26's "done when", receiving: an iaxmodem-like modem rings with
/// the caller's number; a dense page and ten pages, ECM on and off, reach
/// the inbox identical, once each, from that number.
#[test]
fn a_dense_page_and_ten_pages_come_in_through_an_iaxmodem_with_caller_id() {
    let r = rig(1);
    r.modems.set_behaviour(0, IAXMODEM);
    let line = line(&r, 0, "modem1");
    let inbox = inbox(&r);
    line.set_inbound(inbox.clone());
    let dense = vec![dense_page()];
    let ten = ten_pages();
    let (dense_path, _) = write_document(r.dir.path(), "dense.tiff", &dense);
    let (ten_path, _) = write_document(r.dir.path(), "ten.tiff", &ten);
    let calls = [
        ("dense, ECM", &dense_path, &dense, ErrorCorrection::Enabled),
        (
            "dense, no ECM",
            &dense_path,
            &dense,
            ErrorCorrection::Disabled,
        ),
        ("ten pages, ECM", &ten_path, &ten, ErrorCorrection::Enabled),
        (
            "ten pages, no ECM",
            &ten_path,
            &ten,
            ErrorCorrection::Disabled,
        ),
    ];
    for (k, (name, path, pages, ecm)) in calls.iter().enumerate() {
        let started = Instant::now();
        let settings = FaxSettings {
            ident: "+1 555 0777".into(),
            error_correction: *ecm,
            ..FaxSettings::default()
        };
        r.modems.call_in_from(0, path, settings, "5550777").unwrap();
        let far = r.modems.wait_finished(k + 1, Duration::from_secs(240));
        assert_eq!(far.len(), k + 1, "{name}");
        assert_eq!(
            far[k].outcome.as_ref().unwrap().code,
            T30Code::Ok,
            "{name}: {:?}",
            far[k]
        );
        let got = wait_delivered(&inbox, k + 1);
        assert_eq!(got.len(), k + 1, "{name}: delivered once");
        let fax = &got[k];
        assert_eq!(fax.outcome.code, T30Code::Ok, "{name}: {fax:?}");
        assert_eq!(fax.outcome.ecm, *ecm == ErrorCorrection::Enabled, "{name}");
        assert_eq!(fax.from_number, "5550777", "{name}: the caller id");
        let received = decode_fax_tiff(&std::fs::read(&fax.tiff).unwrap()).unwrap();
        assert_identical(&received, pages);
        eprintln!("{name}: received in {:?} wall", started.elapsed());
        assert_eq!(
            line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
            ModemState::Idle,
            "{name}: the line is not blamed"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(inbox.got.lock().unwrap().len(), calls.len(), "no fax twice");
}

/// A busy number on iaxmodem reads `NO DIALTONE`: retried by the busy
/// rule (cause USER_BUSY), the line not blamed.
#[test]
fn a_busy_number_behind_an_iaxmodem_is_retried_as_busy() {
    use faxbox::model::{AttemptOutcome, JobStatus};
    use faxbox::scheduler::Scheduler;
    use faxbox::store::Store;

    let r = rig_at(1, FAST);
    r.modems.set_behaviour(0, IAXMODEM);
    let store = Arc::new(Store::open_data_dir(&r.dir.path().join("data")).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let line = Arc::new(line(&r, 0, "modem1"));
    let tiff = std::fs::read(&r.document).unwrap();
    let id = crate::scheduler::queue_job(&store, &account, BUSY, 2, &tiff, &[]);
    let scheduler = Scheduler::start(
        store.clone(),
        vec![line.clone() as Arc<dyn Line>],
        crate::scheduler::options(r.dir.path()),
    )
    .unwrap();
    crate::scheduler::wait_terminal(&store, std::slice::from_ref(&id), Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));
    let fax = store.fax(&id).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Failed));
    let error = fax.error.unwrap_or_default();
    assert!(error.contains("busy"), "{error}");
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for a in &attempts {
        assert_eq!(a.outcome, Some(AttemptOutcome::Failure));
        assert_eq!(a.report.hangup_cause.as_deref(), Some("USER_BUSY"), "{a:?}");
    }
    assert_eq!(line.fault(), None, "a busy number is not a line fault");
}

/// A second program holding the UUCP lock keeps Faxbox off the device
/// (the line is down and says who holds it); once that program is gone,
/// its lock is stale, Faxbox takes the device and locks it itself, and
/// removes its lock when the line stops.
#[test]
fn a_uucp_lock_held_by_another_program_keeps_the_line_off_the_modem() {
    let r = rig_at(1, FAST);
    let locks = r.dir.path().join("lock");
    std::fs::create_dir_all(&locks).unwrap();
    let lock_file = locks.join("LCK..ttyFAX0");
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    std::fs::write(&lock_file, format!("{:>10}\n", other.id())).unwrap();
    let mut config = config(&r.modems.device(0), &["5550150"], FAST);
    config.lock_dir = Some(locks.clone());
    config.probe_every = Duration::from_secs(2);
    let line = ModemLine::start("modem1", config, r.dir.path());
    let state = line.wait_for(
        Duration::from_secs(10),
        |s| matches!(s, ModemState::Down(w) if w != "not probed yet"),
    );
    let ModemState::Down(why) = &state else {
        panic!("{state:?}");
    };
    assert!(
        why.contains("in use by another program") && why.contains(&other.id().to_string()),
        "{why}"
    );
    // Still off it at the next probes; the other program's lock untouched.
    std::thread::sleep(Duration::from_millis(600));
    assert!(matches!(line.state(), ModemState::Down(_)));
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap().trim(),
        other.id().to_string()
    );
    let err = line
        .send(
            fax(&r, "locked", FAX, ErrorCorrection::Enabled),
            Box::new(|_| {}),
        )
        .expect_err("no call on a locked modem");
    assert!(
        matches!(&err, LineError::LineDown { why, .. } if why.contains("in use")),
        "{err}"
    );

    other.kill().unwrap();
    other.wait().unwrap();
    assert_eq!(
        line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
        ModemState::Idle,
        "a dead program's lock is stale"
    );
    assert_eq!(
        std::fs::read_to_string(&lock_file).unwrap().trim(),
        std::process::id().to_string(),
        "Faxbox holds the lock while it has the modem"
    );
    let (result, _) = call(&line, fax(&r, "unlocked", FAX, ErrorCorrection::Enabled));
    assert!(result.succeeded(), "{result:?}");
    drop(line);
    assert!(!lock_file.exists(), "the lock goes with the line");
}

/// Idle, the modem line sleeps until the modem says something: its thread
/// barely wakes (it polled every 20 ms before, issue 26).
#[test]
fn an_idle_modem_line_does_not_poll() {
    let dir = tempfile::tempdir().unwrap();
    let modem = ScriptedModem::start(dir.path(), |c| match c {
        "AT+FCLASS=?" => b"\r\n0,1\r\n\r\nOK\r\n".to_vec(),
        _ => b"\r\nOK\r\n".to_vec(),
    });
    let mut config = config(&modem.link, &[], 1.0);
    config.probe_every = Duration::from_secs(60);
    let line = ModemLine::start("idle", config, dir.path());
    assert_eq!(
        line.wait_for(Duration::from_secs(10), |s| *s == ModemState::Idle),
        ModemState::Idle
    );
    let thread = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| t.ok())
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "modem-idle")
        })
        .expect("the line's thread")
        .path();
    let wakeups = || -> u64 {
        let status = std::fs::read_to_string(thread.join("status")).unwrap();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .map(|l| l.split_whitespace().last().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(thread.join("stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime, fields 14 and 15 of stat (11 and 12 after comm).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let (w0, c0) = (wakeups(), cpu());
    std::thread::sleep(Duration::from_secs(2));
    let (w1, c1) = (wakeups(), cpu());
    eprintln!(
        "idle modem line over 2 s: {} wake-ups, {} clock ticks of CPU",
        w1 - w0,
        c1 - c0
    );
    assert!(w1 - w0 <= 4, "{} wake-ups in 2 s", w1 - w0);
    assert!(c1 - c0 <= 1, "{} ticks of CPU", c1 - c0);
    drop(line);
}

/// `faxbox serve` with a modem that is not there: the line is down, the
/// reason is logged once however often it is probed, and `faxbox line
/// list` shows it down with that reason.
#[test]
fn a_missing_modem_is_logged_once_and_line_list_shows_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let device = dir.path().join("ttyNONE");
    std::fs::write(
        dir.path().join("faxbox.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\
             [[line]]\nname = \"modem1\"\ntype = \"modem\"\ndevice = \"{}\"\nlock_dir = \"\"\nprobe_every_s = 0.2\n",
            device.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = std::process::Command::new(crate::harness::faxbox_bin())
        .args(["--config", "faxbox.toml", "--data-dir", "data", "serve"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .env("NO_COLOR", "1")
        .spawn()
        .unwrap();
    crate::harness::serve_banner(&mut child);
    // Several probes find it missing.
    std::thread::sleep(Duration::from_millis(1500));
    let out = std::process::Command::new(crate::harness::faxbox_bin())
        .args([
            "--config",
            "faxbox.toml",
            "--data-dir",
            "data",
            "line",
            "list",
        ])
        .current_dir(dir.path())
        .env_remove("FAXBOX_TOKEN")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    crate::harness::stop_with_sigterm(&mut child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains("modem1  1 channels  down: ") && listed.contains("ttyNONE"),
        "{listed}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let downs = log.matches("modem line down").count();
    assert_eq!(downs, 1, "logged once: {log}");
    assert!(log.contains("ttyNONE"), "with the reason: {log}");
}

/// Issue 26's "done when", modem to modem: two Faxbox modem lines on two
/// iaxmodem-like modems, the sender driven by the scheduler. The fax
/// completes with exactly one attempt, recorded as a success, and the
/// other line's inbox gets it once, identical.
#[test]
fn two_iaxmodems_fax_each_other_through_the_scheduler_once() {
    use faxbox::model::{AttemptOutcome, JobStatus};
    use faxbox::scheduler::Scheduler;
    use faxbox::store::Store;

    let r = rig(2);
    r.modems.set_behaviour(0, IAXMODEM);
    r.modems.set_behaviour(1, IAXMODEM);
    r.modems.add_number("5550200", Party::Modem(1));
    let sender = Arc::new(line(&r, 0, "modem-a"));
    let receiver = line(&r, 1, "modem-b");
    let inbox_b = inbox(&r);
    receiver.set_inbound(inbox_b.clone());

    let store = Arc::new(Store::open_data_dir(&r.dir.path().join("data")).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let tiff = std::fs::read(&r.document).unwrap();
    let id = crate::scheduler::queue_job(&store, &account, "5550200", 3, &tiff, &[]);
    let scheduler = Scheduler::start(
        store.clone(),
        vec![sender.clone() as Arc<dyn Line>],
        crate::scheduler::options(r.dir.path()),
    )
    .unwrap();
    crate::scheduler::wait_terminal(&store, std::slice::from_ref(&id), Duration::from_secs(240));
    scheduler.stop(Duration::from_secs(5));

    let fax = store.fax(&id).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Completed), "{fax:?}");
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Success));
    assert_eq!(attempts[0].report.pages_sent, 3, "{:?}", attempts[0]);
    let got = wait_delivered(&inbox_b, 1);
    assert_eq!(got[0].outcome.code, T30Code::Ok, "{:?}", got[0]);
    // The scheduler's send adds the page header line above each page.
    let pages = decode_fax_tiff(&std::fs::read(&got[0].tiff).unwrap()).unwrap();
    for (i, (g, s)) in pages.iter().zip(&r.pages).enumerate() {
        assert!(g.height > s.height, "page {}: a header line", i + 1);
    }
    crate::inbound::assert_pages_below_header(&pages, &r.pages);
    assert_eq!(inbox_b.calls.lock().unwrap().len(), 1, "received once");
    assert_eq!(sender.fault(), None, "the sending line is not blamed");
}
