//! The FreeSWITCH line against the stand-in: real ESL bytes on loopback,
//! the fax fetched from the real file proxy over HTTP, real SpanDSP audio.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::config::{DocumentDelivery, FreeSwitchConfig, FreeSwitchNode};
use faxbox::documents::faxtiff::{decode_fax_tiff, encode_fax_tiff};
use faxbox::lines::freeswitch::{Backoff, FileProxy, FreeSwitchLine};
use faxbox::lines::selftest::test_pages;
use faxbox::lines::{CallProgress, FaxSettings, Line, LineError, OutgoingFax};
use faxbox::model::{AttemptOutcome, JobStatus};
use faxbox::scheduler::Scheduler;

use super::originate_parse::switch_url_decode;
use super::standin::{self, FarEnd, StandIn};
use crate::scheduler::{queue_job, sending_over, small_fax_tiff, wait_terminal};

const PASSWORD: &str = "ClueCon";

/// Quick reconnects, so tests of a lost connection take moments.
fn backoff() -> Backoff {
    Backoff {
        first: Duration::from_millis(50),
        max: Duration::from_millis(400),
    }
}

fn config(nodes: &[(&StandIn, u32)], password: &str) -> FreeSwitchConfig {
    FreeSwitchConfig {
        dial_string: "sofia/gateway/standin/{number}".into(),
        document: DocumentDelivery::Http,
        inbound_socket: None,
        spool_dir: None,
        originate_timeout: Duration::from_secs(30),
        t38: true,
        t38_request: false,
        nodes: nodes
            .iter()
            .map(|(s, channels)| FreeSwitchNode {
                esl: s.addr().to_string(),
                password: password.into(),
                channels: *channels,
            })
            .collect(),
    }
}

fn file_proxy() -> Arc<FileProxy> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    Arc::new(FileProxy::start(listener, vec!["127.0.0.0/8".parse().unwrap()], None).unwrap())
}

fn start_line(config: FreeSwitchConfig, proxy: &Arc<FileProxy>, dir: &Path) -> FreeSwitchLine {
    FreeSwitchLine::start("pstn", config, Some(proxy.clone()), dir, backoff()).unwrap()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_up(line: &FreeSwitchLine) {
    wait_for("the line to connect", Duration::from_secs(10), || {
        line.is_up()
    });
}

fn outgoing(call_id: &str, number: &str, document: PathBuf) -> OutgoingFax {
    OutgoingFax {
        call_id: call_id.into(),
        to_number: number.into(),
        from_number: "15550001111".into(),
        document,
        settings: FaxSettings {
            ident: "+1 555 000 1111".into(),
            header: "Acme Fax, Inc".into(),
            ..FaxSettings::default()
        },
    }
}

/// The channel UUID the line chose, from the originate the stand-in saw.
fn channel_of(originate: &str) -> String {
    originate
        .split("origination_uuid=")
        .nth(1)
        .unwrap()
        .split([',', '}'])
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_three_page_fax_arrives_identical_through_the_file_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    assert_eq!(line.channels(), 2);

    let pages = test_pages(3);
    let document = dir.path().join("job.tif");
    std::fs::write(&document, encode_fax_tiff(&pages).unwrap()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let call = line
        .send(
            outgoing("job-1", "5551234", document),
            Box::new(move |p| sink.lock().unwrap().push(p)),
        )
        .unwrap();
    let result = call.wait();
    assert_eq!(result.outcome, Ok(()), "{result:?}");
    let fax = result.fax.expect("the spandsp result");
    assert_eq!(fax.pages, 3);
    assert_eq!(fax.bit_rate, 14400);
    assert!(fax.ecm);
    assert_eq!(fax.remote_ident, "5550100");
    assert!(result.answered);

    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress[0], CallProgress::Dialling);
    assert!(progress.contains(&CallProgress::Answered));
    assert!(
        progress
            .iter()
            .any(|p| matches!(p, CallProgress::Negotiated(n) if n.bit_rate == 14400))
    );
    let done: Vec<u32> = progress
        .iter()
        .filter_map(|p| match p {
            CallProgress::PageDone(r) => Some(r.page),
            _ => None,
        })
        .collect();
    assert_eq!(done, [1, 2, 3]);

    // The originate as docs/freeswitch.md says it must be.
    let originates = fs.originates();
    assert_eq!(originates.len(), 1);
    let o = &originates[0];
    assert!(o.starts_with("bgapi originate {origination_uuid="), "{o}");
    // What FreeSWITCH's parser makes of it: one variable per setting, each
    // with its exact text.
    let vars = fs.call_variables(0);
    let var = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    // mod_spandsp URL-decodes the ident and header it reads.
    let spandsp = |n: &str| String::from_utf8(switch_url_decode(var(n).unwrap())).unwrap();
    assert_eq!(spandsp("fax_header"), "Acme Fax, Inc", "{o}");
    assert_eq!(spandsp("fax_ident"), "+1 555 000 1111", "{o}");
    assert_eq!(var("fax_use_ecm"), Some("true"));
    assert_eq!(var("origination_caller_id_number"), Some("15550001111"));
    assert_eq!(var("ignore_early_media"), Some("true"));
    assert!(
        o.contains("}sofia/gateway/standin/5551234 &txfax(${http_get(http://"),
        "{o}"
    );

    // FreeSWITCH fetched the fax once, over HTTP, just before dialling (txfax
    // took mod_http_cache's copy)...
    let fetches = fs.fetches();
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    let (url, status, bytes) = &fetches[0];
    assert_eq!(*status, 200);
    assert_eq!(
        *bytes as u64,
        std::fs::metadata(dir.path().join("job.tif")).unwrap().len()
    );
    assert!(
        url.starts_with(&format!("http://{}/fax/", proxy.local_addr())),
        "{url}"
    );
    // ...and after it the URL is gone.
    assert_eq!(standin::http_status(url), 404);
    assert_eq!(proxy.published(), 0);

    // The far end's pages are the sent ones, pixel for pixel.
    let received = std::fs::read(fs.received_file(&channel_of(o))).unwrap();
    let got = decode_fax_tiff(&received).unwrap();
    assert_eq!(got.len(), 3);
    crate::inbound::assert_pages_below_header(&got, &pages);
    assert_eq!(line.calls_in_progress(), 0);
}

#[test]
fn busy_and_no_answer_are_retried_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5550001", FarEnd::Busy);
    fs.set("5550002", FarEnd::NoAnswer);
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    assert_eq!(line.fault(), None, "a connected line is up");
    let (store, account, scheduler) = sending_over(dir.path(), Arc::new(line));
    let tiff = small_fax_tiff();
    // `retries` counts attempts in all (docs/kazoo.md 5.1).
    let busy = queue_job(&store, &account, "5550001", 3, &tiff, &[]);
    let silent = queue_job(&store, &account, "5550002", 2, &tiff, &[]);
    scheduler.wake();
    wait_terminal(
        &store,
        &[busy.clone(), silent.clone()],
        Duration::from_secs(60),
    );
    scheduler.stop(Duration::from_secs(5));

    for (job, tries, cause, text) in [
        (&busy, 3, "USER_BUSY", "the number was busy"),
        (&silent, 2, "NO_ANSWER", "nobody answered"),
    ] {
        assert_eq!(store.fax(job).unwrap().status, Some(JobStatus::Failed));
        let attempts = store.attempts(job).unwrap();
        assert_eq!(attempts.len(), tries, "{attempts:?}");
        for a in &attempts {
            assert_eq!(a.outcome, Some(AttemptOutcome::Failure));
            assert_eq!(a.report.hangup_cause.as_deref(), Some(cause), "{a:?}");
            assert_eq!(a.report.result_text.as_deref(), Some(text), "{a:?}");
            assert_eq!(a.report.pages_sent, 0);
        }
    }
    assert_eq!(
        fs.counters()
            .calls
            .load(std::sync::atomic::Ordering::Acquire),
        5
    );
    // Each attempt had FreeSWITCH fetch its fax once before dialling; busy
    // and unanswered calls never reached txfax, which fetches nothing more.
    let fetches = fs.fetches();
    assert_eq!(fetches.len(), 5, "{fetches:?}");
    assert!(fetches.iter().all(|f| f.1 == 200), "{fetches:?}");
}

#[test]
fn a_dropped_socket_interrupts_the_call_and_it_is_retried_after_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set_once("5550003", FarEnd::ClosesSocket);
    let proxy = file_proxy();
    let line = Arc::new(start_line(
        config(&[(&fs, 1)], PASSWORD),
        &proxy,
        dir.path(),
    ));
    wait_up(&line);
    let (store, account, scheduler) = sending_over(dir.path(), line.clone());
    let tiff = encode_fax_tiff(&test_pages(2)).unwrap();
    let job = queue_job(&store, &account, "5550003", 0, &tiff, &[]);
    scheduler.wake();
    wait_terminal(&store, std::slice::from_ref(&job), Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));

    let fax = store.fax(&job).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Completed), "{fax:?}");
    let attempts = store.attempts(&job).unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(attempts[1].outcome, Some(AttemptOutcome::Success));
    assert_eq!(attempts[1].report.pages_sent, 2);
    // The second call came over a new connection.
    assert!(fs.logins() >= 2, "logins: {}", fs.logins());
    assert_eq!(proxy.published(), 0);
}

#[test]
fn two_nodes_never_exceed_their_channel_limits() {
    let dir = tempfile::tempdir().unwrap();
    let one = StandIn::start(PASSWORD, &dir.path().join("far1"));
    let two = StandIn::start(PASSWORD, &dir.path().join("far2"));
    let proxy = file_proxy();
    let line = Arc::new(start_line(
        config(&[(&one, 1), (&two, 2)], PASSWORD),
        &proxy,
        dir.path(),
    ));
    wait_for("both nodes", Duration::from_secs(10), || {
        line.channels() == 3
    });
    let store = Arc::new(faxbox::store::Store::open_data_dir(dir.path()).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    store
        .set_setting(Some(&account), "max_outbound", serde_json::json!(10))
        .unwrap();
    let scheduler = Scheduler::start(
        store.clone(),
        vec![line.clone()],
        crate::scheduler::options(dir.path()),
    )
    .unwrap();
    let tiff = small_fax_tiff();
    let jobs: Vec<_> = (0..10)
        .map(|i| queue_job(&store, &account, &format!("55520{i:02}"), 0, &tiff, &[]))
        .collect();
    scheduler.wake();
    // Watch the line's own count too, while the jobs run.
    let mut most = vec![0u32; 2];
    let deadline = Instant::now() + Duration::from_secs(120);
    while jobs.iter().any(|j| {
        !store
            .fax(j)
            .unwrap()
            .status
            .is_some_and(JobStatus::is_terminal)
    }) {
        for (m, n) in most.iter_mut().zip(line.calls_per_node()) {
            *m = (*m).max(n);
        }
        assert!(Instant::now() < deadline, "jobs still open");
        std::thread::sleep(Duration::from_millis(5));
    }
    scheduler.stop(Duration::from_secs(5));
    for j in &jobs {
        assert_eq!(store.fax(j).unwrap().status, Some(JobStatus::Completed));
    }
    use std::sync::atomic::Ordering::Acquire;
    let (c1, c2) = (one.counters(), two.counters());
    assert_eq!(c1.calls.load(Acquire) + c2.calls.load(Acquire), 10);
    assert!(
        c1.max_calls.load(Acquire) <= 1,
        "node 1 carried {}",
        c1.max_calls.load(Acquire)
    );
    assert!(
        c2.max_calls.load(Acquire) <= 2,
        "node 2 carried {}",
        c2.max_calls.load(Acquire)
    );
    assert!(most[0] <= 1 && most[1] <= 2, "{most:?}");
    // Both were used: the calls spread over the nodes.
    assert!(c1.calls.load(Acquire) >= 1 && c2.calls.load(Acquire) >= 1);
}

#[test]
fn bad_wire_input_gives_a_clear_error_and_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = file_proxy();
    let document = dir.path().join("job.tif");
    std::fs::write(&document, small_fax_tiff()).unwrap();

    let cases: &[(&[u8], &str)] = &[
        (
            b"Content-Type: api/response\nContent-Length: lots\n\n",
            "not a size",
        ),
        (
            b"Content-Length: 20\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_ANSWER\n\n",
            "not `Name: value`",
        ),
        (
            b"Content-Type: text/event-plain\nContent-Length: 12\n\nNo-Name: x\n\n",
            "no Event-Name",
        ),
        (b"Content-Type: text/shiny\n\n", "unknown type"),
        (
            b"Content-Type: api/response\nContent-Length: 500\n\ntruncated",
            "closed in the middle",
        ),
    ];
    for (bytes, needle) in cases {
        let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
        // A frame cut short is followed by the socket closing.
        fs.inject_after_login(bytes, needle.contains("closed in the middle"));
        let line = start_line(config(&[(&fs, 1)], PASSWORD), &proxy, dir.path());
        wait_for(
            &format!("a second login after {needle:?}"),
            Duration::from_secs(10),
            || fs.logins() >= 2,
        );
        let error = line_error(&line);
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
        // Back up and working.
        wait_up(&line);
        let result = line
            .send(
                outgoing("after-bad", "5551234", document.clone()),
                Box::new(|_| {}),
            )
            .unwrap()
            .wait();
        assert_eq!(result.outcome, Ok(()), "{needle}: {result:?}");
    }

    // An event nobody asked for is ignored, not a reason to reconnect.
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.inject_after_login(b"Content-Length: 44\nContent-Type: text/event-plain\n\nEvent-Name: SOMETHING_NEW\nUnique-ID: x-y-z\n\n", false);
    let line = start_line(config(&[(&fs, 1)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let result = line
        .send(
            outgoing("unknown-event", "5551234", document.clone()),
            Box::new(|_| {}),
        )
        .unwrap()
        .wait();
    assert_eq!(result.outcome, Ok(()));
    assert_eq!(fs.logins(), 1);
    assert!(line_error(&line).is_empty());
}

#[test]
fn a_refused_password_keeps_the_line_down_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], "wrong"), &proxy, dir.path());
    wait_for("the refusal", Duration::from_secs(10), || {
        line_error(&line).contains("refused the event socket password")
    });
    assert!(!line.is_up());
    assert_eq!(line.channels(), 0, "a line that is down offers no channels");
    // `/v2/status` and the dashboard show it down, with the node's error.
    let fault = line.fault().expect("the line is down");
    assert!(
        fault.starts_with("FreeSWITCH unreachable (")
            && fault.contains("refused the event socket password"),
        "{fault}"
    );
    let document = dir.path().join("job.tif");
    std::fs::write(&document, small_fax_tiff()).unwrap();
    let refused = line.send(outgoing("down", "5551234", document), Box::new(|_| {}));
    assert!(
        matches!(refused, Err(LineError::NoFreeChannel { .. })),
        "{refused:?}"
    );
    assert_eq!(fs.logins(), 0);
}

fn line_error(line: &FreeSwitchLine) -> String {
    line.node_errors().join("; ")
}

#[test]
fn a_far_end_that_is_no_fax_or_cuts_the_line_fails_with_its_t30_code() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5550004", FarEnd::NotAFax);
    fs.set("5550005", FarEnd::DropsAfter(Duration::from_secs(12)));
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let document = dir.path().join("job.tif");
    std::fs::write(&document, encode_fax_tiff(&test_pages(3)).unwrap()).unwrap();
    let voice = line
        .send(
            outgoing("voice", "5550004", document.clone()),
            Box::new(|_| {}),
        )
        .unwrap();
    let cut = line
        .send(outgoing("cut", "5550005", document), Box::new(|_| {}))
        .unwrap();
    let (voice, cut) = (voice.wait(), cut.wait());
    assert_eq!(
        voice.outcome,
        Err(LineError::Fax(faxbox::lines::T30Code::T0Expired))
    );
    assert!(voice.answered);
    assert_eq!(
        cut.outcome,
        Err(LineError::Fax(faxbox::lines::T30Code::CallDropped)),
        "{cut:?}"
    );
    assert!(cut.fax.unwrap().pages < 3);
}

#[test]
fn an_incoming_call_through_the_outbound_socket_lands_in_the_right_inbox() {
    let (b, faxbox) = crate::inbound::two_offices();
    let fs = StandIn::start(PASSWORD, &b.dir.join("far"));
    let proxy = file_proxy();
    let mut cfg = config(&[(&fs, 2)], PASSWORD);
    cfg.inbound_socket = Some("127.0.0.1:0".parse().unwrap());
    let spool = b.dir.join("fs-spool");
    cfg.spool_dir = Some(spool.clone());
    let line = start_line(cfg, &proxy, &b.dir);
    line.set_inbound(b.receiver.clone());
    let socket = line.inbound_address().expect("the outbound-socket server");

    let sent = crate::inbound::pages(2, 300);
    let tiff = b.dir.join("caller.tif");
    std::fs::write(&tiff, encode_fax_tiff(&sent).unwrap()).unwrap();
    let report = standin::place_inbound_call(socket, "15550009999", "5557000", &tiff);
    // Faxbox drove the channel as docs/freeswitch.md, transcript 06 does.
    let firsts: Vec<&str> = report.commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(
        firsts,
        [
            "connect",
            "myevents plain",
            "event plain CUSTOM spandsp::rxfaxresult spandsp::rxfaxpageresult spandsp::rxfaxnegociateresult",
            "linger",
            "sendmsg",
            "sendmsg",
            "sendmsg",
            "sendmsg",
            "sendmsg",
            "sendmsg"
        ],
        "{:?}",
        report.commands
    );
    assert!(report.commands[4].contains(&"execute-app-name: answer".to_owned()));
    // Percent-encoded: `set` expands `${...}`, mod_spandsp decodes it.
    assert!(
        report.commands[5]
            .contains(&"execute-app-arg: fax_ident=%2B1%20555%20700%200000".to_owned()),
        "{:?}",
        report.commands[5]
    );
    assert!(report.commands[6].contains(&"execute-app-arg: fax_enable_t38=true".to_owned()));
    assert!(
        report.commands[7].contains(&"execute-app-arg: fax_enable_t38_request=false".to_owned())
    );
    assert!(report.commands[8].contains(&"execute-app-name: rxfax".to_owned()));
    assert!(
        report.rx_path.as_ref().unwrap().starts_with(&spool),
        "{report:?}"
    );
    assert_eq!(report.hung_up_with.as_deref(), Some("NORMAL_CLEARING"));
    let outcome = report.outcome.unwrap();
    assert!(outcome.is_ok() && outcome.pages == 2, "{outcome:?}");

    // Delivery happens once the socket session ends.
    wait_for("the inbox", Duration::from_secs(20), || {
        crate::inbound::inbox(&b.store).len() == 1
    });
    let inbox = crate::inbound::inbox(&b.store);
    let fax = &inbox[0];
    assert_eq!(fax.faxbox_id.as_ref(), Some(&faxbox.id));
    let rx = fax.rx_result.clone().unwrap();
    assert!(rx.success && rx.pages == 2, "{rx:?}");
    let got = crate::inbound::received_pages(&b.store, fax);
    crate::inbound::assert_pages_below_header(&got, &sent);
    // The spool file was taken into Faxbox's own folder.
    assert!(!report.rx_path.unwrap().exists());
    let mails = b.sink.wait_for(1, Duration::from_secs(20));
    let mut to = mails[0].to.clone();
    to.sort();
    assert_eq!(to, vec!["desk@office.example", "owner@office.example"]);
    assert!(
        mails[0]
            .text()
            .contains("Subject: New fax from 15550009999")
    );

    // A number no faxbox claims is refused before answering.
    let refused = standin::place_inbound_call(socket, "15550009999", "5559999", &tiff);
    assert_eq!(refused.hung_up_with.as_deref(), Some("CALL_REJECTED"));
    assert!(refused.rx_path.is_none());
    assert_eq!(crate::inbound::inbox(&b.store).len(), 1);

    // Garbage instead of channel data ends that session only.
    {
        use std::io::{Read, Write};
        let mut garbage = std::net::TcpStream::connect(socket).unwrap();
        garbage
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut hello = [0u8; 9];
        garbage.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"connect\n\n");
        garbage.write_all(b"this is not a header\n\n").unwrap();
        let mut rest = Vec::new();
        let _ = garbage.read_to_end(&mut rest);
        assert!(rest.is_empty(), "Faxbox sent nothing more and closed");
    }
    let again = standin::place_inbound_call(socket, "15550009999", "5557000", &tiff);
    assert!(again.outcome.unwrap().is_ok());
    wait_for("the second fax", Duration::from_secs(20), || {
        crate::inbound::inbox(&b.store).len() == 2
    });
}

#[test]
fn a_fax_whose_calls_keep_being_lost_ends_failed_instead_of_looping() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5550006", FarEnd::ClosesSocket);
    let proxy = file_proxy();
    let line = Arc::new(start_line(
        config(&[(&fs, 1)], PASSWORD),
        &proxy,
        dir.path(),
    ));
    wait_up(&line);
    let (store, account, scheduler) = sending_over(dir.path(), line.clone());
    let tiff = encode_fax_tiff(&test_pages(2)).unwrap();
    let job = queue_job(&store, &account, "5550006", 1, &tiff, &[]);
    scheduler.wake();
    wait_terminal(&store, std::slice::from_ref(&job), Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));
    let fax = store.fax(&job).unwrap();
    assert_eq!(fax.status, Some(JobStatus::Failed), "{fax:?}");
    let outcomes: Vec<_> = store
        .attempts(&job)
        .unwrap()
        .iter()
        .map(|a| a.outcome)
        .collect();
    let n = faxbox::store::MAX_INTERRUPTED_ATTEMPTS as usize;
    assert_eq!(outcomes.len(), n, "{outcomes:?}");
    assert!(
        outcomes[..n - 1]
            .iter()
            .all(|o| *o == Some(AttemptOutcome::Interrupted))
    );
    assert_eq!(outcomes[n - 1], Some(AttemptOutcome::Failure));
    assert!(
        fax.error
            .unwrap_or_default()
            .contains("connection to FreeSWITCH")
    );
}

#[test]
fn a_hang_up_request_ends_the_call_through_uuid_kill() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5551234", FarEnd::WaitsForHangUpAfterFirstPage);
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 1)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let document = dir.path().join("job.tif");
    std::fs::write(&document, encode_fax_tiff(&test_pages(3)).unwrap()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let call = line
        .send(
            outgoing("hung-up", "5551234", document),
            Box::new(move |p| drop(tx.send(p))),
        )
        .unwrap();
    // Hang up once the first page is through, as the stage timeouts and
    // the operator's cancel do.
    loop {
        match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
            CallProgress::PageDone(_) => break,
            _ => continue,
        }
    }
    call.hang_up();
    let result = call.wait();
    assert_eq!(
        result.outcome,
        Err(LineError::Fax(faxbox::lines::T30Code::CallDropped))
    );
    assert!(result.fax.unwrap().pages < 3);
    assert_eq!(line.calls_in_progress(), 0);
}

#[test]
fn path_mode_gives_freeswitch_the_file_and_a_missing_one_is_a_document_error() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let mut cfg = config(&[(&fs, 1)], PASSWORD);
    cfg.document = DocumentDelivery::Path;
    let line = FreeSwitchLine::start("pstn", cfg, None, dir.path(), backoff()).unwrap();
    wait_up(&line);
    let document = dir.path().join("job.tif");
    std::fs::write(&document, small_fax_tiff()).unwrap();
    let result = line
        .send(
            outgoing("path-1", "5551234", document.clone()),
            Box::new(|_| {}),
        )
        .unwrap()
        .wait();
    assert_eq!(result.outcome, Ok(()));
    let o = &fs.originates()[0];
    assert!(
        o.ends_with(&format!("&txfax({})", document.display())),
        "{o}"
    );
    assert!(fs.fetches().is_empty());

    // FreeSWITCH on a host that does not share the data dir: its own words
    // and a document error, not retried.
    fs.set_path_root(&dir.path().join("elsewhere"));
    let result = line
        .send(outgoing("path-2", "5551234", document), Box::new(|_| {}))
        .unwrap()
        .wait();
    let error = result.outcome.unwrap_err();
    assert!(
        matches!(&error, LineError::Document(_))
            && error
                .to_string()
                .contains("Cannot send non-existant fax file"),
        "{error:?}"
    );
    assert!(!error.retry_may_help());
    assert!(result.answered);
}

/// The whole appliance with a FreeSWITCH line from its configuration file:
/// the app binds the file proxy, the line fetches through it, a queued fax
/// is sent.
#[test]
fn the_appliance_sends_through_a_configured_freeswitch_line() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let data = dir.path().join("data");
    let text = format!(
        r#"
        data_dir = "{}"
        [http]
        listen = "127.0.0.1:0"
        [file_proxy]
        listen = "127.0.0.1:0"
        [[line]]
        name = "pstn"
        type = "freeswitch"
        dial_string = "sofia/gateway/carrier/{{number}}"
        [[line.node]]
        esl = "{}"
        password = "{PASSWORD}"
        channels = 2
        "#,
        data.display(),
        fs.addr()
    );
    let config = faxbox::config::Config::parse(&text, Path::new("test.toml")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(faxbox::app::run(config, async {
            let _ = stopped.await;
        }))
    });
    wait_for("the first start", Duration::from_secs(30), || {
        data.join(faxbox::app::LOCAL_KEY_FILE).exists()
    });
    let store = faxbox::store::Store::open_data_dir(&data).unwrap();
    let account = store.accounts().unwrap().remove(0).id;
    let job = queue_job(&store, &account, "5551234", 1, &small_fax_tiff(), &[]);
    wait_terminal(&store, std::slice::from_ref(&job), Duration::from_secs(60));
    assert_eq!(store.fax(&job).unwrap().status, Some(JobStatus::Completed));
    let fetches = fs.fetches();
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert_eq!(fetches[0].1, 200);
    assert!(fetches[0].0.starts_with("http://127.0.0.1:"), "{fetches:?}");
    stop.send(()).unwrap();
    app.join().unwrap().unwrap();
}

/// The stand-in says what FreeSWITCH said: the same client commands as
/// docs/freeswitch.md, transcript 03 get the same replies and the sender's events in the same
/// order, txfaxresult after the hang-up.
#[test]
fn the_standin_answers_as_the_transcript() {
    use faxbox::lines::freeswitch::esl::{FrameReader, Message};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let document = dir.path().join("test2p.tif");
    std::fs::write(&document, encode_fax_tiff(&test_pages(2)).unwrap()).unwrap();
    let mut socket = std::net::TcpStream::connect(fs.addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = FrameReader::new(socket.try_clone().unwrap());
    let mut send = |text: &str| socket.write_all(format!("{text}\n\n").as_bytes()).unwrap();
    assert_eq!(reader.read_message().unwrap(), Message::AuthRequest);
    send("auth ClueCon");
    assert_eq!(
        reader.read_message().unwrap().reply_text(),
        Some("+OK accepted")
    );
    send(
        "event plain BACKGROUND_JOB CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE CUSTOM spandsp::txfaxresult spandsp::rxfaxresult spandsp::txfaxpageresult spandsp::rxfaxpageresult spandsp::txfaxnegociateresult spandsp::rxfaxnegociateresult",
    );
    assert_eq!(
        reader.read_message().unwrap().reply_text(),
        Some("+OK event listener enabled plain")
    );
    let uuid = "cccccccc-0000-0000-0000-000000000001";
    send(&format!(
        "bgapi originate {{origination_uuid={uuid},fax_ident=TX-HTTP-GET}}loopback/rxfax/default &txfax({})",
        document.display()
    ));
    let reply = reader.read_message().unwrap();
    let job = reply
        .reply_text()
        .unwrap()
        .strip_prefix("+OK Job-UUID: ")
        .unwrap()
        .to_owned();
    let Message::CommandReply(h) = &reply else {
        panic!()
    };
    assert_eq!(h.get("Job-UUID"), Some(job.as_str()));
    let mut seen = Vec::new();
    loop {
        let Message::Event(e) = reader.read_message().unwrap() else {
            continue;
        };
        if e.unique_id() != Some(uuid) && e.get("Job-UUID") != Some(job.as_str()) {
            continue;
        }
        seen.push(match e.subclass() {
            Some(sub) => sub.to_owned(),
            None => match e.get("Application") {
                Some(app) => format!("{}/{app}", e.name()),
                None => e.name().to_owned(),
            },
        });
        if e.name() == "BACKGROUND_JOB" {
            assert_eq!(e.body.as_deref(), Some(format!("+OK {uuid}\n").as_str()));
        }
        if e.name() == "CHANNEL_HANGUP_COMPLETE" {
            assert_eq!(e.get("Hangup-Cause"), Some("NORMAL_CLEARING"));
            break;
        }
        if e.subclass() == Some("spandsp::txfaxresult") {
            assert_eq!(e.get("fax-success"), Some("1"));
            assert_eq!(e.get("fax-result-text"), Some("OK"));
            assert_eq!(e.get("fax-document-transferred-pages"), Some("2"));
        }
    }
    // Transcript 03, the sender's channel and its job.
    assert_eq!(
        seen,
        [
            "CHANNEL_CREATE",
            "CHANNEL_ANSWER",
            "BACKGROUND_JOB",
            "CHANNEL_EXECUTE/txfax",
            "spandsp::txfaxnegociateresult",
            "spandsp::txfaxpageresult",
            "spandsp::txfaxpageresult",
            "CHANNEL_HANGUP",
            "spandsp::txfaxresult",
            "CHANNEL_EXECUTE_COMPLETE/txfax",
            "CHANNEL_HANGUP_COMPLETE",
        ]
    );
    send("exit");
    assert_eq!(reader.read_message().unwrap().reply_text(), Some("+OK bye"));
    assert!(matches!(
        reader.read_message().unwrap(),
        Message::Disconnect(_)
    ));
}

/// A FreeSWITCH that cannot be reached: `/v2/status` (what the dashboard
/// draws) shows the line down, with the node and its last error.
#[test]
fn status_shows_the_line_down_with_the_nodes_error_while_freeswitch_is_unreachable() {
    use faxbox::api::{Api, ApiOptions, Ctx, LiveStatus};
    use faxbox::client::Session;
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut unreachable = config(&[], PASSWORD);
    unreachable.nodes.push(FreeSwitchNode {
        esl: closed.to_string(),
        password: PASSWORD.into(),
        channels: 2,
    });
    let proxy = file_proxy();
    let line: Arc<dyn Line> = Arc::new(start_line(unreachable, &proxy, dir.path()));
    let store = Arc::new(faxbox::store::Store::open_data_dir(&dir.path().join("data")).unwrap());
    let first = faxbox::app::bootstrap(&store).unwrap().unwrap();
    let api = Api::start(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Ctx::new(
            store.clone(),
            Arc::new(|| {}),
            LiveStatus::default(),
            ApiOptions::default(),
        )
        .with_lines(faxbox::scheduler::LineBoard::new(vec![line.clone()])),
    )
    .unwrap();
    wait_for("the refused connection", Duration::from_secs(10), || {
        line.fault()
            .is_some_and(|f| !f.contains("not connected yet"))
    });
    let session = Session::login(&format!("http://{}", api.local_addr()), &first.api_key).unwrap();
    let status = session.get("/v2/status").unwrap();
    let pstn = &status["lines"][0];
    assert_eq!(
        (&pstn["name"], &pstn["state"]),
        (&"pstn".into(), &"down".into()),
        "{status}"
    );
    let reason = pstn["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("FreeSWITCH unreachable ({closed}: ")),
        "{reason}"
    );
    assert_eq!(
        pstn["channels"],
        serde_json::json!([
            {"channel": 1, "state": "down", "text": "down"},
            {"channel": 2, "state": "down", "text": "down"}
        ]),
        "the node's two channels, both down (issue 25 item 6)"
    );
    api.stop();
}

/// The free text every intake stores with a job (the API's
/// `fax_identity_name`, `from_name`, `fax_identity_number` and
/// `fax_timezone`; a faxbox's `fax_header`, `caller_name`, `fax_identity`
/// and `fax_timezone`; a mail subject used as the header) reaches
/// FreeSWITCH as exactly one channel variable each, holding the text, and
/// no other variable (issue 25 item 1).
#[test]
fn free_text_from_a_job_reaches_freeswitch_as_one_variable_each() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let store = Arc::new(faxbox::store::Store::open_data_dir(dir.path()).unwrap());
    let account = store.create_account("Acme", None).unwrap().id;
    let texts = [
        (
            "ACME, Dental {x}",
            "O'Brien ^^;a=b,api_on_answer=system touch /tmp/x",
            "Europe/Paris",
        ),
        (
            "x:_:u/1 origination_nested_vars=true ${id}",
            "line one\nline two}<{",
            "EST5EDT,M3.2.0,M11.1.0",
        ),
    ];
    let mut jobs = Vec::new();
    for (header, name, zone) in texts {
        let job = store
            .create_job(
                faxbox::model::NewFax {
                    account_id: account.clone(),
                    to_number: "5551234".into(),
                    to_number_normalized: "5551234".into(),
                    retries: 1,
                    from_number: Some("+15550009999".into()),
                    from_name: Some(name.into()),
                    fax_identity_number: Some("+1 555 000 9999".into()),
                    fax_identity_name: Some(header.into()),
                    fax_timezone: Some(zone.into()),
                    ..Default::default()
                },
                vec![faxbox::model::NewDocument {
                    kind: faxbox::model::DocumentKind::FaxTiff,
                    content_type: "image/tiff".into(),
                    filename: "fax_file.tiff".into(),
                    pages: Some(1),
                    bytes: small_fax_tiff(),
                }],
                JobStatus::Pending,
            )
            .unwrap()
            .id;
        jobs.push(job);
    }
    let scheduler = Scheduler::start(
        store.clone(),
        vec![Arc::new(line)],
        crate::scheduler::options(dir.path()),
    )
    .unwrap();
    scheduler.wake();
    wait_terminal(&store, &jobs, Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));
    for job in &jobs {
        assert_eq!(store.fax(job).unwrap().status, Some(JobStatus::Completed));
    }
    let parsed = fs.parsed();
    assert_eq!(parsed.len(), 2, "{parsed:?}");
    for (n, p) in parsed.iter().enumerate() {
        let vars = fs.call_variables(n);
        let mut names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fax_enable_t38",
                "fax_enable_t38_request",
                "fax_header",
                "fax_ident",
                "fax_timezone",
                "fax_use_ecm",
                "fax_verbose",
                "ignore_early_media",
                "originate_timeout",
                "origination_caller_id_name",
                "origination_caller_id_number",
                "origination_uuid",
            ],
            "no injected variable: {:?}",
            p.args
        );
        let var = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let spandsp = |k: &str| String::from_utf8(switch_url_decode(&var(k))).unwrap();
        let (header, name, zone) = texts
            .iter()
            .find(|(h, _, _)| spandsp("fax_header") == *h)
            .unwrap_or_else(|| panic!("the header arrives as typed: {vars:?}"));
        // The zone as a POSIX TZ string for SpanDSP (issue 21).
        assert_eq!(
            spandsp("fax_timezone"),
            faxbox::timezone::posix_at(zone, faxbox::model::now())
        );
        assert_eq!(spandsp("fax_ident"), "+1 555 000 9999");
        assert_eq!(var("origination_caller_id_number"), "+15550009999");
        // The caller-ID name is the job's caller name, not its header; the
        // page header and caller ID have no line ends, and FreeSWITCH can
        // hold no `}<{` that closes both of its blocks (variables.rs).
        assert_eq!(
            var("origination_caller_id_name"),
            faxbox::lines::freeswitch::variables::carried_text(&name.replace('\n', "")),
        );
        assert!(!header.is_empty());
    }
}

/// A graceful FreeSWITCH restart hangs up with SYSTEM_SHUTDOWN (and code
/// 49): the attempt is interrupted, the fax goes again without using a
/// retry, and every attempt records FreeSWITCH's own hang-up cause, as
/// does a number that does not exist (issue 25 items 3 and 4).
#[test]
fn a_freeswitch_shutdown_requeues_without_a_retry_and_causes_are_freeswitchs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set_once("5551234", FarEnd::ShutsDown);
    fs.set("5550404", FarEnd::Unallocated);
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let (store, account, scheduler) = sending_over(dir.path(), Arc::new(line));
    let tiff = encode_fax_tiff(&test_pages(2)).unwrap();
    // One attempt in all: a shutdown must not use it up.
    let job = queue_job(&store, &account, "5551234", 1, &tiff, &[]);
    let missing = queue_job(&store, &account, "5550404", 1, &tiff, &[]);
    scheduler.wake();
    wait_terminal(
        &store,
        &[job.clone(), missing.clone()],
        Duration::from_secs(60),
    );
    scheduler.stop(Duration::from_secs(5));

    assert_eq!(store.fax(&job).unwrap().status, Some(JobStatus::Completed));
    let attempts = store.attempts(&job).unwrap();
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.outcome, a.report.hangup_cause.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(AttemptOutcome::Interrupted), Some("SYSTEM_SHUTDOWN")),
            (Some(AttemptOutcome::Success), Some("NORMAL_CLEARING")),
        ],
        "{attempts:?}"
    );
    assert_eq!(store.fax(&missing).unwrap().status, Some(JobStatus::Failed));
    let attempts = store.attempts(&missing).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].report.hangup_cause.as_deref(),
        Some("UNALLOCATED_NUMBER"),
        "FreeSWITCH's cause, not one made up: {attempts:?}"
    );
}

/// The event socket drops mid-call while FreeSWITCH keeps the call: the
/// line reconnects, finds the call with uuid_exists and follows it to its
/// end. The far end gets exactly one call and the fax completes on its
/// first attempt (issue 25 item 2).
#[test]
fn an_esl_drop_mid_call_is_followed_to_the_end_without_a_second_call() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5551234", FarEnd::CutsConnectionsMidCall);
    let proxy = file_proxy();
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let (store, account, scheduler) = sending_over(dir.path(), Arc::new(line));
    let pages = test_pages(3);
    let job = queue_job(
        &store,
        &account,
        "5551234",
        3,
        &encode_fax_tiff(&pages).unwrap(),
        &[],
    );
    scheduler.wake();
    wait_terminal(&store, std::slice::from_ref(&job), Duration::from_secs(60));
    scheduler.stop(Duration::from_secs(5));

    assert!(fs.logins() >= 2, "the connection was cut and made again");
    assert_eq!(
        fs.counters()
            .calls
            .load(std::sync::atomic::Ordering::Acquire),
        1,
        "exactly one call at the far end"
    );
    assert_eq!(store.fax(&job).unwrap().status, Some(JobStatus::Completed));
    let attempts = store.attempts(&job).unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Success));
    assert_eq!(attempts[0].report.pages_sent, 3);
    let channel = channel_of(&fs.originates()[0]);
    let received = decode_fax_tiff(&std::fs::read(fs.received_file(&channel)).unwrap()).unwrap();
    assert_eq!(received.len(), 3);
}

/// Issue 25 item 2: Faxbox is killed (SIGKILL) while FreeSWITCH carries
/// one of its calls. The restarted box asks FreeSWITCH about the call of
/// the attempt it did not see end, finds it still up and follows it to
/// its end: the far end gets exactly one call and one full copy, and the
/// fax completes without being dialled again.
#[test]
fn a_faxbox_killed_mid_call_follows_the_call_after_restart_without_a_second_call() {
    use crate::harness::{ServeProcess, wait_for};
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    fs.set("5551234", FarEnd::HoldsAfterFirstPage);
    let config = format!(
        "[file_proxy]\nlisten = \"127.0.0.1:0\"\n[[line]]\nname = \"pstn\"\ntype = \"freeswitch\"\n\
         dial_string = \"sofia/gateway/carrier/{{number}}\"\n[[line.node]]\nesl = \"{}\"\n\
         password = \"{PASSWORD}\"\nchannels = 2\n",
        fs.addr()
    );
    let first = ServeProcess::start(dir.path(), &config);
    let fax = crate::serve::send_fax(&first, "5551234", 3);
    let counters = fs.counters();
    wait_for(
        "the far end to hold the call after page 1",
        Duration::from_secs(60),
        || counters.holding.load(std::sync::atomic::Ordering::Acquire) == 1,
    );
    // Killed: no stop, no hang-up, the event socket just closes.
    drop(first);

    let second = ServeProcess::start(dir.path(), &config);
    let store = faxbox::store::Store::open_existing(&second.data_dir).unwrap();
    wait_terminal(&store, std::slice::from_ref(&fax), Duration::from_secs(120));
    let done = store.fax(&fax).unwrap();
    assert_eq!(done.status, Some(JobStatus::Completed), "{done:?}");
    assert_eq!(
        counters.calls.load(std::sync::atomic::Ordering::Acquire),
        1,
        "exactly one call at the far end: {:?}",
        fs.originates()
    );
    assert!(
        counters
            .exists_asked
            .load(std::sync::atomic::Ordering::Acquire)
            >= 1,
        "the restarted box asked FreeSWITCH about the call"
    );
    let channel = channel_of(&fs.originates()[0]);
    let received = decode_fax_tiff(&std::fs::read(fs.received_file(&channel)).unwrap()).unwrap();
    assert_eq!(received.len(), 3, "one full copy");
    let attempts = store.attempts(&fax).unwrap();
    assert_eq!(
        attempts.last().and_then(|a| a.outcome),
        Some(AttemptOutcome::Success),
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome != Some(AttemptOutcome::Failure)),
        "no attempt counted as a failure: {attempts:?}"
    );
    drop(second);
}

/// Issue 25 item 5: a receive cut after page 1, with no final report from
/// mod_spandsp, keeps page 1 in the inbox, marked partial, and says why.
#[test]
fn a_receive_cut_after_page_one_keeps_page_one_marked_partial() {
    let (b, faxbox) = crate::inbound::two_offices();
    let fs = StandIn::start(PASSWORD, &b.dir.join("far"));
    let proxy = file_proxy();
    let mut cfg = config(&[(&fs, 2)], PASSWORD);
    cfg.inbound_socket = Some("127.0.0.1:0".parse().unwrap());
    let line = start_line(cfg, &proxy, &b.dir);
    line.set_inbound(b.receiver.clone());
    let socket = line.inbound_address().expect("the outbound-socket server");

    let sent = crate::inbound::pages(3, 300);
    let tiff = b.dir.join("caller.tif");
    std::fs::write(&tiff, encode_fax_tiff(&sent).unwrap()).unwrap();
    let report = standin::place_inbound_call_cut(socket, "15550009999", "5557000", &tiff, Some(1));
    assert!(report.outcome.is_none(), "no final report was sent");

    wait_for("the inbox", Duration::from_secs(20), || {
        crate::inbound::inbox(&b.store).len() == 1
    });
    let inbox = crate::inbound::inbox(&b.store);
    let fax = &inbox[0];
    assert_eq!(fax.faxbox_id.as_ref(), Some(&faxbox.id));
    let rx = fax.rx_result.clone().unwrap();
    assert!(!rx.success && rx.partial && rx.pages == 1, "{rx:?}");
    assert_eq!(rx.result_code, 49, "{rx:?}");
    let got = crate::inbound::received_pages(&b.store, fax);
    assert_eq!(got.len(), 1, "page 1 is kept");
    crate::inbound::assert_pages_below_header(&got, &sent[..1]);
}

/// Issue 25 item 6: a file proxy FreeSWITCH cannot fetch from (here it
/// advertises an address nobody listens on) is found before dialling: no
/// call is placed, and the error names the proxy settings to check, not
/// "Faxbox failed".
#[test]
fn a_file_proxy_freeswitch_cannot_reach_places_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StandIn::start(PASSWORD, &dir.path().join("far"));
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Arc::new(
        FileProxy::start(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            vec!["127.0.0.0/8".parse().unwrap()],
            Some(format!("http://{nobody}")),
        )
        .unwrap(),
    );
    let line = start_line(config(&[(&fs, 2)], PASSWORD), &proxy, dir.path());
    wait_up(&line);
    let document = dir.path().join("job.tif");
    std::fs::write(&document, small_fax_tiff()).unwrap();
    let result = line
        .send(outgoing("bad-proxy", "5551234", document), Box::new(|_| {}))
        .unwrap()
        .wait();
    assert_eq!(
        fs.counters()
            .calls
            .load(std::sync::atomic::Ordering::Acquire),
        0,
        "no call was placed"
    );
    assert!(!result.answered);
    let Err(LineError::Switch(why)) = &result.outcome else {
        panic!("a setup error of the phone system: {result:?}");
    };
    assert!(
        why.contains("file_proxy.url") && why.contains(&nobody.to_string()),
        "{why}"
    );
    assert!(result.outcome.as_ref().unwrap_err().retry_may_help());
}
