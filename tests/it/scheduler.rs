//! The scheduler end to end over the loopback line: real T.30 calls, a real
//! store, real mail to an SMTP server on loopback.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::config::{FarEnd, LoopbackConfig};
use faxbox::documents::{BitPage, encode_fax_tiff};
use faxbox::lines::{
    Call, CallProgress, Inbound, Line, LineError, LoopbackLine, OutgoingFax, ProgressSink,
};
use faxbox::model::{
    AccountId, AttemptOutcome, DocumentKind, FaxId, JobStatus, NewDocument, NewFax, Priority,
};
use faxbox::notify::{Backoff, Postman};
use faxbox::scheduler::{Event, Scheduler, SchedulerOptions};
use faxbox::store::Store;

use crate::harness::MailSink;

/// A one-page fax image, short so calls are quick.
pub fn small_fax_tiff() -> Vec<u8> {
    let width = 1728u32;
    let height = 120u32;
    let stride = width.div_ceil(8) as usize;
    let mut rows = vec![0u8; stride * height as usize];
    for y in 0..height as usize {
        // A few black bars so the page is not blank.
        if y % 20 < 4 {
            for b in &mut rows[y * stride + 20..y * stride + 180] {
                *b = 0xff;
            }
        }
    }
    encode_fax_tiff(&[BitPage {
        width,
        height,
        x_dpi: 204.0,
        y_dpi: 196.0,
        rows,
    }])
    .unwrap()
}

pub fn loopback(
    dir: &Path,
    channels: u32,
    numbers: &[(&str, FarEnd)],
    realtime: bool,
) -> LoopbackLine {
    LoopbackLine::new(
        "loopback",
        LoopbackConfig {
            channels,
            realtime,
            numbers: numbers
                .iter()
                .map(|(n, f)| (n.to_string(), f.clone()))
                .collect(),
        },
        dir,
    )
}

pub fn queue_job(
    store: &Store,
    account: &AccountId,
    number: &str,
    retries: u8,
    tiff: &[u8],
    notify: &[&str],
) -> FaxId {
    queue_fax(
        store,
        NewFax {
            account_id: account.clone(),
            to_number: number.into(),
            to_number_normalized: faxbox::model::check_fax_number(
                "to_number",
                number,
                faxbox::model::ServiceNumbers::Allowed,
            )
            .unwrap(),
            retries,
            from_number: Some("15550009999".into()),
            from_name: Some("Acme".into()),
            notify_email: notify.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        tiff,
    )
}

/// Queues `fax` with `tiff` (one page, already a fax image) as its
/// document, ready to send.
pub fn queue_fax(store: &Store, fax: NewFax, tiff: &[u8]) -> FaxId {
    store
        .create_job(
            fax,
            vec![NewDocument {
                kind: DocumentKind::FaxTiff,
                content_type: "image/tiff".into(),
                filename: "fax_file.tiff".into(),
                pages: Some(1),
                bytes: tiff.to_vec(),
            }],
            JobStatus::Pending,
        )
        .unwrap()
        .id
}

/// Waits until every job is in a terminal state.
pub fn wait_terminal(store: &Store, ids: &[FaxId], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let open: Vec<_> = ids
            .iter()
            .filter(|id| {
                !store
                    .fax(id)
                    .unwrap()
                    .status
                    .is_some_and(JobStatus::is_terminal)
            })
            .collect();
        if open.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} jobs still open: {open:?}",
            open.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A box that sends through `line`: its store in `data`, the account
/// "Acme" whose jobs the test queues, and a scheduler over the line (with
/// `options`: retry delays in milliseconds). Queue jobs, then `wake` it.
pub fn sending_over(data: &Path, line: Arc<dyn Line>) -> (Arc<Store>, AccountId, Scheduler) {
    let store = Arc::new(Store::open_data_dir(data).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let scheduler = Scheduler::start(store.clone(), vec![line], options(data)).unwrap();
    (store, account, scheduler)
}

pub fn options(dir: &Path) -> SchedulerOptions {
    let mut o = SchedulerOptions::new(dir.join("spool"), "faxbox@box.test".into());
    // Retry delays of minutes become milliseconds.
    o.retry_delay_scale = 0.001;
    o
}

/// Counts calls in progress per account and per number, and records any
/// moment the scheduling rules were broken.
struct Instrumented {
    inner: LoopbackLine,
    account_of: HashMap<String, AccountId>,
    state: Arc<Mutex<Counts>>,
    /// Numbers redirected to a busy one for their first N calls.
    fail_first: Mutex<HashMap<String, u32>>,
}

#[derive(Default)]
struct Counts {
    per_account: HashMap<AccountId, u32>,
    per_number: HashMap<String, u32>,
    max_per_account: u32,
    violations: Vec<String>,
    calls: u32,
}

impl Line for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn channels(&self) -> u32 {
        self.inner.channels()
    }
    fn calls_in_progress(&self) -> u32 {
        self.inner.calls_in_progress()
    }
    fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        self.inner.set_inbound(inbound)
    }
    fn send(&self, mut fax: OutgoingFax, mut progress: ProgressSink) -> Result<Call, LineError> {
        let fax_id = fax.call_id.split('-').next().unwrap().to_owned();
        let account = self
            .account_of
            .get(&fax_id)
            .cloned()
            .unwrap_or_else(|| AccountId::from("?"));
        let number = fax.to_number.clone();
        {
            let mut left = self.fail_first.lock().unwrap();
            if let Some(n) = left.get_mut(&number).filter(|n| **n > 0) {
                *n -= 1;
                fax.to_number = "5550001".into();
            }
        }
        {
            let mut c = self.state.lock().unwrap();
            c.calls += 1;
            let a = c.per_account.entry(account.clone()).or_default();
            *a += 1;
            let a = *a;
            c.max_per_account = c.max_per_account.max(a);
            if a > 2 {
                c.violations
                    .push(format!("{a} calls at once for account {account}"));
            }
            let n = c.per_number.entry(number.clone()).or_default();
            *n += 1;
            if *n > 1 {
                let n = *n;
                c.violations.push(format!("{n} calls at once to {number}"));
            }
        }
        // The call has ended when the line drops its progress sink.
        struct Done(Arc<Mutex<Counts>>, AccountId, String);
        impl Drop for Done {
            fn drop(&mut self) {
                let mut c = self.0.lock().unwrap();
                *c.per_account.get_mut(&self.1).unwrap() -= 1;
                *c.per_number.get_mut(&self.2).unwrap() -= 1;
            }
        }
        let done = Done(self.state.clone(), account, number);
        let sink: ProgressSink = Box::new(move |p: CallProgress| {
            let _keep = &done;
            progress(p)
        });
        self.inner.send(fax, sink)
    }
}

#[test]
fn sixty_jobs_respect_account_limits_and_number_serialization() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    store
        .set_setting(None, "max_outbound", serde_json::json!(2))
        .unwrap();
    let accounts: Vec<AccountId> = (0..3)
        .map(|i| {
            store
                .create_account(&format!("Office {i}"), None)
                .unwrap()
                .id
        })
        .collect();
    let tiff = small_fax_tiff();
    let mut account_of = HashMap::new();
    let mut ids = Vec::new();
    for i in 0..60 {
        let account = &accounts[i % 3];
        let number = format!("55510{:02}", i % 10);
        let id = queue_job(&store, account, &number, 1, &tiff, &[]);
        account_of.insert(id.to_string(), account.clone());
        ids.push(id);
    }
    let state = Arc::new(Mutex::new(Counts::default()));
    let line = Instrumented {
        inner: loopback(dir.path(), 8, &[], false),
        account_of,
        state: state.clone(),
        fail_first: Mutex::new(HashMap::new()),
    };
    let scheduler =
        Scheduler::start(store.clone(), vec![Arc::new(line)], options(dir.path())).unwrap();
    wait_terminal(&store, &ids, Duration::from_secs(240));
    scheduler.stop(Duration::from_secs(5));

    let c = state.lock().unwrap();
    assert!(c.violations.is_empty(), "{:?}", c.violations);
    assert_eq!(c.calls, 60);
    // The limit was reached, so it was tested and not merely never hit.
    assert_eq!(c.max_per_account, 2);
    for id in &ids {
        let fax = store.fax(id).unwrap();
        assert_eq!(
            fax.status,
            Some(JobStatus::Completed),
            "{id}: {:?}",
            fax.error
        );
        let attempts = store.attempts(id).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].report.pages_sent, 1);
        assert_eq!(attempts[0].report.result_code, Some(0));
    }
}

/// Busy, no answer, a cut call and a line that fails twice then recovers: each
/// retried after its cause's delay, and only the people who asked get one mail.
///
/// Long on purpose: the four jobs run through one scheduler and one postman at
/// once, so the delays and the mails are seen side by side as on a real box.
#[test]
fn retries_follow_the_cause_and_the_people_who_asked_hear_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let sink_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink_listener.local_addr().unwrap().port();
    let sink = MailSink::start(sink_listener);
    let postman = Arc::new(
        Postman::start(
            store.clone(),
            crate::harness::smarthost(port),
            Backoff::default(),
        )
        .unwrap(),
    );
    let tiff = small_fax_tiff();
    let busy = queue_job(&store, &account, "5550001", 2, &tiff, &["busy@example.com"]);
    let silent = queue_job(&store, &account, "5550002", 2, &tiff, &[]);
    let drops = queue_job(&store, &account, "5550004", 2, &tiff, &[]);
    let recovers = queue_job(&store, &account, "5550007", 3, &tiff, &["ok@example.com"]);
    let numbers = [
        ("5550001", FarEnd::Busy),
        ("5550002", FarEnd::NoAnswer),
        // Cut during the page (training and the page take a few seconds).
        ("5550004", FarEnd::DropsAfter(Duration::from_millis(5500))),
    ];
    let line = Instrumented {
        inner: loopback(dir.path(), 4, &numbers, false),
        account_of: HashMap::new(),
        state: Arc::new(Mutex::new(Counts::default())),
        fail_first: Mutex::new(HashMap::from([("5550007".to_string(), 2)])),
    };
    let mut opts = options(dir.path());
    opts.mail_queued = {
        let p = postman.clone();
        Arc::new(move || p.wake())
    };
    let scheduler = Scheduler::start(store.clone(), vec![Arc::new(line)], opts).unwrap();
    let mut events = scheduler.subscribe();
    let ids = [
        busy.clone(),
        silent.clone(),
        drops.clone(),
        recovers.clone(),
    ];
    wait_terminal(&store, &ids, Duration::from_secs(120));

    // The retry delays the policy chose, per job.
    let mut delays: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    while let Ok(e) = events.try_recv() {
        if let Event::JobStatus {
            fax_id,
            retry_in_s: Some(s),
            ..
        } = e
        {
            delays.entry(fax_id.to_string()).or_default().push(s);
        }
    }
    scheduler.stop(Duration::from_secs(5));

    let outcome = |id: &FaxId| {
        let fax = store.fax(id).unwrap();
        let attempts = store.attempts(id).unwrap();
        (fax.status, attempts.len(), fax.error)
    };
    let (status, n, error) = outcome(&busy);
    assert_eq!((status, n), (Some(JobStatus::Failed), 2));
    assert!(error.unwrap().contains("busy"));
    assert_eq!(delays[busy.as_str()], vec![180]);
    let (status, n, _) = outcome(&silent);
    assert_eq!((status, n), (Some(JobStatus::Failed), 2));
    assert_eq!(delays[silent.as_str()], vec![300]);
    let (status, n, _) = outcome(&drops);
    assert_eq!((status, n), (Some(JobStatus::Failed), 2));
    let cut = store.attempts(&drops).unwrap();
    assert!(
        cut.iter()
            .all(|a| a.outcome == Some(AttemptOutcome::Failure)
                && a.report.result_code.is_some_and(|c| c != 0)),
        "{cut:?}"
    );
    assert_eq!(
        delays[drops.as_str()],
        vec![60],
        "a T.30 failure retries after a minute"
    );
    let (status, n, _) = outcome(&recovers);
    assert_eq!((status, n), (Some(JobStatus::Completed), 3));
    assert_eq!(delays[recovers.as_str()], vec![180, 180]);

    // One error mail for the failed job that asked, one receipt for the
    // recovered one; the others named nobody.
    let mails = sink.wait_for(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let mails = if sink.received().len() > mails.len() {
        sink.received()
    } else {
        mails
    };
    assert_eq!(mails.len(), 2, "{mails:?}");
    let error_mail = mails
        .iter()
        .find(|m| m.to == ["busy@example.com"])
        .expect("error mail");
    assert!(
        error_mail
            .text()
            .contains("Subject: Error sending Fax to 5550001")
    );
    let receipt = mails
        .iter()
        .find(|m| m.to == ["ok@example.com"])
        .expect("receipt");
    assert!(
        receipt
            .text()
            .contains("Subject: Fax has been sent to 5550007")
    );
    assert!(
        receipt.text().contains("application/pdf"),
        "the receipt carries the fax"
    );
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Operator actions from the CLI steer the running scheduler: pause and
/// resume a line, cancel a call in progress, resubmit the cancelled fax.
#[test]
fn cli_pauses_cancels_and_resubmits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Arc::new(Store::open_data_dir(&data).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let tiff = small_fax_tiff();
    // Real-time audio, so a call lasts long enough to cancel it.
    let line = loopback(&data, 2, &[], true);
    let scheduler = Scheduler::start(store.clone(), vec![Arc::new(line)], options(&data)).unwrap();
    let cli = |args: &[&str]| {
        let out = crate::harness::faxbox(&data, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };

    cli(&["line", "pause", "loopback"]);
    assert!(cli(&["line", "list"]).contains("(paused)"));
    let id = queue_job(&store, &account, "5550100", 1, &tiff, &[]);
    scheduler.wake();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        store.fax(&id).unwrap().status,
        Some(JobStatus::Pending),
        "a paused line takes no call"
    );
    cli(&["line", "resume", "loopback"]);
    wait_for("the call to start", Duration::from_secs(10), || {
        store
            .attempts(&id)
            .unwrap()
            .first()
            .is_some_and(|a| a.stage != faxbox::model::AttemptStage::Prepare)
    });

    cli(&["jobs", "cancel", id.as_str()]);
    wait_terminal(&store, std::slice::from_ref(&id), Duration::from_secs(10));
    let fax = store.fax(&id).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Cancelled));
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Cancelled));

    let again = FaxId(cli(&["jobs", "retry", id.as_str()]));
    assert_ne!(again, id);
    scheduler.wake();
    wait_terminal(
        &store,
        std::slice::from_ref(&again),
        Duration::from_secs(60),
    );
    assert_eq!(
        store.fax(&again).unwrap().status,
        Some(JobStatus::Completed)
    );
    scheduler.stop(Duration::from_secs(1));
}

/// `faxbox serve` killed with SIGKILL during calls: after a restart every
/// job ends, none is lost or sent to completion twice, and the cut attempts
/// are recorded as interrupted.
#[test]
fn a_killed_appliance_finishes_every_job_after_restart() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("faxbox.toml");
    let write_config = |realtime: bool| {
        std::fs::write(
            &config,
            format!(
                // Port 0: parallel tests and other checkouts on this machine
                // must not fight over the API's default port.
                "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 4\nrealtime = {realtime}\n"
            ),
        )
        .unwrap();
    };
    let ids: Vec<FaxId> = {
        let store = Store::open_data_dir(&data).unwrap();
        let account = store.create_account("Acme", None).unwrap().id;
        let tiff = small_fax_tiff();
        (0..6)
            .map(|i| queue_job(&store, &account, &format!("555020{i}"), 2, &tiff, &[]))
            .collect()
    };
    let serve = || {
        Command::new(crate::harness::faxbox_bin())
            .args([
                "--config",
                config.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "serve",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let store = Store::open_data_dir(&data).unwrap();

    write_config(true);
    let mut child = serve();
    wait_for("calls in progress", Duration::from_secs(30), || {
        ids.iter()
            .filter(|id| store.fax(id).unwrap().status == Some(JobStatus::Processing))
            .count()
            >= 2
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    write_config(false);
    let mut child = serve();
    wait_terminal(&store, &ids, Duration::from_secs(120));
    assert!(crate::harness::stop_with_sigterm(&mut child).success());

    let mut interrupted = 0;
    for id in &ids {
        let fax = store.fax(id).unwrap();
        assert_eq!(
            fax.status,
            Some(JobStatus::Completed),
            "{id}: {:?}",
            fax.error
        );
        let attempts = store.attempts(id).unwrap();
        let successes = attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Success))
            .count();
        assert_eq!(
            successes, 1,
            "{id} sent to completion exactly once: {attempts:?}"
        );
        assert!(
            attempts.iter().all(|a| a.ended.is_some()),
            "no attempt left open"
        );
        interrupted += attempts
            .iter()
            .filter(|a| a.outcome == Some(AttemptOutcome::Interrupted))
            .count();
    }
    assert!(
        interrupted >= 2,
        "the cut calls are recorded as interrupted"
    );
}

/// Issue 22: high-priority faxes overtake normal ones queued before them,
/// in their own account and across accounts on a shared line, while each
/// account's `max_outbound` and the one call per number still hold.
#[test]
fn high_priority_faxes_overtake_queued_normal_ones_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    store
        .set_setting(None, "max_outbound", serde_json::json!(2))
        .unwrap();
    let acme = store.create_account("Acme", None).unwrap().id;
    let other = store.create_account("Other", None).unwrap().id;
    let tiff = small_fax_tiff();
    let mut account_of = HashMap::new();
    let mut queue = |account: &AccountId, number: &str, priority: Priority| {
        let id = queue_fax(
            &store,
            NewFax {
                account_id: account.clone(),
                to_number: number.into(),
                to_number_normalized: number.into(),
                retries: 1,
                priority,
                ..Default::default()
            },
            &tiff,
        );
        account_of.insert(id.to_string(), account.clone());
        id
    };
    // The normal faxes are queued first: oldest first, they would go first.
    let acme_normal: Vec<FaxId> = (1..=3)
        .map(|i| queue(&acme, &format!("555300{i}"), Priority::Normal))
        .collect();
    let other_normal: Vec<FaxId> = (1..=4)
        .map(|i| queue(&other, &format!("555301{i}"), Priority::Normal))
        .collect();
    let low = queue(&other, "5553020", Priority::Low);
    // Two high faxes to one number, one to another.
    let high_a = queue(&acme, "5553100", Priority::High);
    let high_b = queue(&acme, "5553100", Priority::High);
    let high_c = queue(&acme, "5553101", Priority::High);
    let state = Arc::new(Mutex::new(Counts::default()));
    let line = Instrumented {
        inner: loopback(dir.path(), 4, &[], false),
        account_of,
        state: state.clone(),
        fail_first: Mutex::new(HashMap::new()),
    };
    let scheduler =
        Scheduler::start(store.clone(), vec![Arc::new(line)], options(dir.path())).unwrap();
    let all: Vec<FaxId> = [
        acme_normal.clone(),
        other_normal.clone(),
        vec![low.clone(), high_a.clone(), high_b.clone(), high_c.clone()],
    ]
    .concat();
    wait_terminal(&store, &all, Duration::from_secs(180));
    scheduler.stop(Duration::from_secs(5));

    let c = state.lock().unwrap();
    assert!(c.violations.is_empty(), "{:?}", c.violations);
    assert_eq!(c.max_per_account, 2, "Acme's limit was reached");
    // Attempt ids are given as jobs are claimed: the order they went in.
    let mut claims: Vec<(i64, FaxId)> = all
        .iter()
        .flat_map(|id| store.attempts(id).unwrap())
        .map(|a| (a.id, a.fax_id))
        .collect();
    claims.sort();
    assert_eq!(claims.len(), all.len(), "one attempt each: {claims:?}");
    let order: Vec<FaxId> = claims.into_iter().map(|(_, id)| id).collect();
    let at = |id: &FaxId| order.iter().position(|o| o == id).unwrap();
    // A and C (two numbers) first, ahead of every older normal fax of
    // either account; B waits only for A's number to be free.
    let mut first_two = vec![order[0].clone(), order[1].clone()];
    first_two.sort();
    let mut expected = vec![high_a.clone(), high_c.clone()];
    expected.sort();
    assert_eq!(first_two, expected, "{order:?}");
    assert!(at(&high_b) > at(&high_a));
    assert!(
        at(&high_b) < acme_normal.iter().map(at).max().unwrap(),
        "B goes before Acme's normal faxes are through: {order:?}"
    );
    // The low fax goes after every normal fax of its account.
    assert!(other_normal.iter().all(|n| at(n) < at(&low)), "{order:?}");
    for id in &all {
        assert_eq!(store.fax(id).unwrap().status, Some(JobStatus::Completed));
    }
}

/// A sending window "HH:MM:SS-HH:MM:SS" (every day, UTC) from `from` to
/// `to`, both Unix times.
fn window_between(from: i64, to: i64) -> String {
    let clock = |t: i64| {
        let s = t.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    };
    format!("{}-{}", clock(from), clock(to))
}

/// Issue 22: a retry that falls due while its faxbox's sending window is
/// closed waits for the next opening (its due time shows it), then goes;
/// a fax sent later does not start before its time, then goes once.
#[test]
fn a_sending_window_holds_a_retry_and_send_at_holds_a_fax_until_their_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let t0 = faxbox::model::now();
    // Open now until t0 + 4 s, closed until t0 + 12 s.
    let (closes, opens) = (t0 + 4, t0 + 12);
    let desk = store
        .create_faxbox(
            &account,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                fax_timezone: Some("UTC".into()),
                sending_windows: Some(vec![
                    window_between(t0 - 3600, closes),
                    window_between(opens, t0 + 3600),
                ]),
                ..Default::default()
            },
        )
        .unwrap();
    let tiff = small_fax_tiff();
    let job = |number: &str, send_at: Option<i64>| {
        queue_fax(
            &store,
            NewFax {
                account_id: account.clone(),
                faxbox_id: Some(desk.id.clone()),
                to_number: number.into(),
                to_number_normalized: number.into(),
                retries: 2,
                send_at,
                ..Default::default()
            },
            &tiff,
        )
    };
    let retried = job("5553200", None);
    // Inside the window: only its time holds it.
    let later = job("5553201", Some(t0 + 3));
    let line = Instrumented {
        inner: loopback(dir.path(), 2, &[("5550001", FarEnd::Busy)], false),
        account_of: HashMap::new(),
        state: Arc::new(Mutex::new(Counts::default())),
        fail_first: Mutex::new(HashMap::from([("5553200".to_string(), 1)])),
    };
    let mut opts = options(dir.path());
    // A busy number is tried again after 180 s; here after 6 s, when the
    // window is closed.
    opts.retry_delay_scale = 6.0 / 180.0;
    let scheduler = Scheduler::start(store.clone(), vec![Arc::new(line)], opts).unwrap();
    crate::harness::wait_for(
        "the retry to be held for the window",
        Duration::from_secs(20),
        || store.fax(&retried).unwrap().due_at == opens,
    );
    let held = store.fax(&retried).unwrap();
    assert_eq!((held.status, held.attempts), (Some(JobStatus::Pending), 1));
    wait_terminal(
        &store,
        &[retried.clone(), later.clone()],
        Duration::from_secs(60),
    );
    scheduler.stop(Duration::from_secs(5));

    let attempts = store.attempts(&retried).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].started < closes,
        "the first try was in the window"
    );
    assert!(
        attempts[1].started >= opens,
        "the retry waited for the window: started {} before {opens}",
        attempts[1].started
    );
    assert_eq!(
        store.fax(&retried).unwrap().status,
        Some(JobStatus::Completed)
    );
    let attempts = store.attempts(&later).unwrap();
    assert_eq!(attempts.len(), 1, "sent once: {attempts:?}");
    assert!(attempts[0].started >= t0 + 3, "not before its send_at");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Success));
}

/// Faxes due behind a paused line wait without costing the box CPU: the
/// dispatcher used to spin on them (every pass found them due, no line
/// free, and the next due time already past), a core at 100% for as long
/// as the line stayed paused; with 400,000 queued each pass also sorted
/// them all. Resumed from the command line, the line sends them all.
#[test]
fn faxes_behind_a_paused_line_wait_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open_data_dir(&data).unwrap();
    let account = store.create_account("Acme", None).unwrap().id;
    store
        .set_line_paused("loopback", true, "paper jam")
        .unwrap();
    let tiff = small_fax_tiff();
    let ids: Vec<FaxId> = (0..20)
        .map(|i| queue_job(&store, &account, &format!("55501{i:02}"), 1, &tiff, &[]))
        .collect();
    drop(store);
    let config = "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\n";
    let serve = crate::harness::ServeProcess::start(dir.path(), config);
    let pid = serve.child.id();

    // Past start-up, then three seconds of a paused line.
    std::thread::sleep(Duration::from_secs(1));
    let before = crate::harness::cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = crate::harness::cpu_seconds(pid) - before;
    assert!(
        used < 0.5,
        "the box used {used:.2} s of CPU in 3 s with its only line paused (spinning?)"
    );
    let store = Store::open_existing(&data).unwrap();
    for id in &ids {
        assert_eq!(store.fax(id).unwrap().status, Some(JobStatus::Pending));
    }

    let resumed = crate::harness::faxbox(&data, &["line", "resume", "loopback"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    wait_terminal(&store, &ids, Duration::from_secs(120));
    for id in &ids {
        assert_eq!(store.fax(id).unwrap().status, Some(JobStatus::Completed));
    }
}
