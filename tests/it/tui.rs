//! The dashboard end to end: the real `faxbox tui` in tmux (send-keys,
//! capture-pane) against a running `faxbox serve` whose loopback line runs
//! at real speed, so that calls are on the screen while they last.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faxbox::client::{Document, Session};
use serde_json::json;

/// A number the loopback line's far end answers busy.
const BUSY: &str = "5550001";

/// The appliance under test, stopped however the test ends (a failed
/// assertion must not leave it running for the next test).
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `faxbox serve` in `dir` with a real-speed loopback line; returns it and
/// the API's base URL.
fn serve(dir: &std::path::Path) -> (Served, String) {
    std::fs::write(
        dir.join("faxbox.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n[[line]]\nname = \"loopback\"\ntype = \"loopback\"\n\
             channels = 2\nrealtime = true\n[line.numbers]\n\"{BUSY}\" = \"busy\"\n"
        ),
    )
    .unwrap();
    let mut served = Served(
        Command::new(crate::harness::faxbox_bin())
            .args(["--config", "faxbox.toml", "--data-dir", "data", "serve"])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let banner = crate::harness::serve_banner(&mut served.0);
    (served, crate::harness::banner_api_url(&banner))
}

/// A tmux server of this test's own, so nothing else is touched, with one
/// window "dash" running the program under test.
struct Tmux {
    socket: String,
    /// Where the pane's shell writes the program's exit status.
    status: tempfile::TempDir,
}

impl Tmux {
    /// Runs `command` (a shell line) in a `columns` x `rows` window that
    /// stays on screen after the program ends. The shell writes the
    /// program's exit status to a file: tmux's own #{pane_dead_status} was
    /// seen empty for seconds after the pane died.
    fn start(name: &str, (columns, rows): (u16, u16), command: &str) -> Tmux {
        let tmux = Tmux {
            socket: format!("faxbox-{name}-{}", std::process::id()),
            status: tempfile::tempdir().unwrap(),
        };
        let command = format!(
            "{command}; echo $? > {}",
            tmux.status.path().join("exit-status").display()
        );
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            &columns.to_string(),
            "-y",
            &rows.to_string(),
            &command,
        ]);
        tmux.run(&["set-option", "-t", "dash", "remain-on-exit", "on"]);
        tmux
    }

    /// Waits for the program in the pane to end; returns its exit status.
    fn exit_status(&self, within: Duration) -> String {
        let file = self.status.path().join("exit-status");
        let deadline = Instant::now() + within;
        loop {
            match std::fs::read_to_string(&file) {
                Ok(status) if status.ends_with('\n') => return status.trim().to_owned(),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "it did not end:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "dash"])
    }

    /// Waits until the screen shows all of `what`; returns it.
    fn wait_for(&self, what: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if what.iter().all(|w| screen.contains(w)) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// The shell line that starts `faxbox serve --tui` on the config and data
/// dir in `dir`.
fn serve_tui(dir: &std::path::Path) -> String {
    format!(
        "cd {} && {} --config faxbox.toml --data-dir data serve --tui",
        dir.display(),
        crate::harness::faxbox_bin().display()
    )
}

fn pdf(text: &str) -> Document {
    Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: crate::harness::pdf_of_texts(&[text]),
    }
}

/// The dashboard in a real terminal (tmux) against a running box.
///
/// Long on purpose: one dashboard driven key by key (a call and a retry
/// countdown on screen, cancel, search, open, quit), each key acting on the
/// screen the previous one left; a new `faxbox serve` and tmux per step would
/// cost seconds each.
#[test]
fn the_dashboard_shows_calls_and_retries_cancels_and_quits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (box_process, url) = serve(dir.path());
    let key = std::fs::read_to_string(dir.path().join("data/api.key"))
        .unwrap()
        .trim()
        .to_owned();
    let session = Session::login(&url, &key).unwrap();
    let busy = session
        .send(&json!({"to_number": BUSY, "retries": 3}), &[pdf("busy")])
        .unwrap();
    let busy_id = busy["id"].as_str().unwrap().to_owned();
    session
        .send(&json!({"to_number": "5550100"}), &[pdf("in flight")])
        .unwrap();
    // `FAXBOX_CAPTURE_DASHBOARD=<file>` writes the busy screen to <file>
    // (`scripts/capture-dashboard` makes `docs/dashboard.txt` so): a few
    // more faxes then wait their turn behind the calls.
    let capture = std::env::var_os("FAXBOX_CAPTURE_DASHBOARD");
    let queued = if capture.is_some() {
        vec!["+1 555 0102", "555-0103", "5550104"]
    } else {
        vec![]
    };
    for number in &queued {
        session
            .send(&json!({"to_number": number}), &[pdf("queued")])
            .unwrap();
    }
    let faxes = 2 + queued.len();

    let tmux = Tmux::start(
        "test",
        (100, 40),
        &format!(
            "{} tui --url {url} --token {key}",
            crate::harness::faxbox_bin().display()
        ),
    );

    // A call on the line, and the busy fax counting down to its retry.
    tmux.wait_for(
        &["Faxbox | live", "loopback     ", "sending page 1 of 1"],
        Duration::from_secs(60),
    );
    tmux.wait_for(
        &["the number was busy", "1/3     in "],
        Duration::from_secs(60),
    );
    if let Some(file) = capture {
        let busy = tmux.wait_for(
            &["sending page", "the number was busy", "1/3     in ", "Log"],
            Duration::from_secs(60),
        );
        std::fs::write(file, busy).unwrap();
    }

    // Cancel the retry: to its pane, `c`, then confirm.
    tmux.run(&["send-keys", "-t", "dash", "Tab", "Tab", "c"]);
    tmux.wait_for(&["cancel fax", "y to cancel it"], Duration::from_secs(10));
    tmux.run(&["send-keys", "-t", "dash", "y"]);
    tmux.wait_for(&["cancelled"], Duration::from_secs(10));
    let fax = session.outgoing(&busy_id).unwrap();
    assert_eq!(fax["status"], "cancelled", "{fax}");

    // `/` narrows the job list to the busy number's fax; `enter` opens it
    // with its attempt and how the attempt ended.
    tmux.wait_for(&[&format!("Faxes ({faxes})")], Duration::from_secs(10));
    tmux.run(&["send-keys", "-t", "dash", "/"]);
    tmux.run(&["send-keys", "-t", "dash", "-l", BUSY]);
    tmux.run(&["send-keys", "-t", "dash", "Enter"]);
    let filtered = tmux.wait_for(
        &[&format!("Faxes matching \"{BUSY}\" (1 of {faxes})")],
        Duration::from_secs(10),
    );
    assert!(filtered.contains(&busy_id[..8]), "{filtered}");
    tmux.run(&["send-keys", "-t", "dash", "Enter"]);
    let detail = tmux.wait_for(
        &[
            &format!("Fax {busy_id}"),
            "cancelled, to 5550001",
            "loopback",
            "the number was busy",
            "esc back",
        ],
        Duration::from_secs(10),
    );
    assert!(detail.contains("document: letter.pdf"), "{detail}");
    tmux.run(&["send-keys", "-t", "dash", "Escape"]);
    tmux.wait_for(&["Queued for later"], Duration::from_secs(10));

    // `q` ends the dashboard, and the terminal is itself again.
    tmux.run(&["send-keys", "-t", "dash", "q"]);
    let status = tmux.exit_status(Duration::from_secs(10));
    assert_eq!(status, "0", "the dashboard's exit status");
    let after = tmux.screen();
    assert!(
        !after.contains("Faxbox | live"),
        "the dashboard's screen is gone:\n{after}"
    );
    drop(box_process);
}

#[test]
fn serve_tui_shows_the_dashboard_with_the_log_in_its_pane_and_q_stops_the_box() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n\
         [[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 1\n",
    )
    .unwrap();
    let tmux = Tmux::start("test-serve", (100, 44), &serve_tui(dir.path()));
    // The log (the banner, then the appliance's own lines) is in its pane,
    // and nothing was written over the dashboard: its title is still the
    // first line.
    let screen = tmux.wait_for(
        &[
            "Faxbox | live",
            "Log",
            "First start: created the account",
            "INFO faxbox is running",
        ],
        Duration::from_secs(60),
    );
    assert!(screen.starts_with(" Faxbox | live"), "{screen}");
    assert!(screen.contains("loopback     1   idle"), "{screen}");

    // Made smaller, it follows: 80 columns, no room for the log pane, the
    // key hints still at the bottom.
    tmux.run(&["resize-window", "-t", "dash", "-x", "80", "-y", "24"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let screen = tmux.screen();
        let widest = screen.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        let rows: Vec<&str> = screen.lines().collect();
        if widest <= 80
            && !screen.contains("┌ Log")
            && rows.len() == 24
            && rows[23].contains("q quit")
            && rows[0].starts_with(" Faxbox | live")
        {
            break;
        }
        assert!(Instant::now() < deadline, "not redrawn at 80x24:\n{screen}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // `q` ends the dashboard and stops the box in order.
    tmux.run(&["send-keys", "-t", "dash", "q"]);
    assert_eq!(
        tmux.exit_status(Duration::from_secs(60)),
        "0",
        "{}",
        tmux.screen()
    );
    let after = tmux.screen();
    assert!(
        !after.contains("Faxbox | live"),
        "the screen is restored:\n{after}"
    );
}

/// The event stream as the dashboard follows it: each event of the box
/// arrives as news (so the snapshot is read again) and as a line in words.
#[test]
fn the_dashboard_hears_the_boxs_events_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let (box_process, url) = serve(dir.path());
    let key = std::fs::read_to_string(dir.path().join("data/api.key"))
        .unwrap()
        .trim()
        .to_owned();
    let log = faxbox::tui::LogBuffer::new(100);
    let (news, heard) = std::sync::mpsc::channel();
    faxbox::tui::events::follow(url.clone(), key.clone(), news, log.clone());
    // Connected first (the stream says so), so the fax's events are in it.
    heard.recv_timeout(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .lines()
        .iter()
        .any(|l| l.contains("following the box's events"))
    {
        assert!(Instant::now() < deadline, "{:?}", log.lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = Session::login(&url, &key).unwrap();
    let busy = session
        .send(&json!({"to_number": BUSY, "retries": 2}), &[pdf("busy")])
        .unwrap();
    let short: String = busy["id"].as_str().unwrap().chars().take(8).collect();
    let want = format!("fax {short} pending after attempt 1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log.lines().iter().any(|l| l.contains(&want)) {
        assert!(Instant::now() < deadline, "{want} in {:?}", log.lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        heard.try_iter().count() > 0,
        "each event is news for the dashboard"
    );
    assert!(
        log.lines()
            .iter()
            .any(|l| l.contains(&format!("fax {short} on loopback: "))),
        "the call's progress too: {:?}",
        log.lines()
    );
    session
        .put(
            &format!(
                "/v2/accounts/{}/faxes/outgoing/{}",
                session.account_id,
                busy["id"].as_str().unwrap()
            ),
            &json!({"action": "cancel"}),
        )
        .unwrap();
    drop(box_process);
}

/// Issue 21 item 14: on a wide screen numbers and ids are whole (the ids
/// shown are taken by `faxbox jobs show`), an action's answer gives the key
/// line back after a while, and `q` after the window grew leaves no
/// fragments.
#[test]
fn a_wide_dashboard_shows_whole_numbers_and_ids_and_quits_clean_after_a_resize() {
    let dir = tempfile::tempdir().unwrap();
    let (box_process, url) = serve(dir.path());
    let key = std::fs::read_to_string(dir.path().join("data/api.key"))
        .unwrap()
        .trim()
        .to_owned();
    let session = Session::login(&url, &key).unwrap();
    // A long number (15 characters; the job list used to cut at 13).
    let long = "+49301234567890".to_owned();
    let busy = session
        .send(&json!({"to_number": long}), &[pdf("long")])
        .unwrap();
    let busy_id = busy["id"].as_str().unwrap().to_owned();

    let tmux = Tmux::start(
        "wide",
        (100, 40),
        &format!(
            "{} tui --url {url} --token {key}",
            crate::harness::faxbox_bin().display()
        ),
    );
    // 100 columns: the first 8 characters of the id, the whole number.
    let narrow = tmux.wait_for(
        &["Faxbox | live", &busy_id[..8], &long],
        Duration::from_secs(60),
    );
    assert!(!narrow.contains(&busy_id), "{narrow}");
    // Those 8 characters are an id the command line takes.
    let shown = Command::new(crate::harness::faxbox_bin())
        .args(["--data-dir", "data", "jobs", "show", &busy_id[..8]])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        shown.status.success() && String::from_utf8_lossy(&shown.stdout).contains(&busy_id),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    // The window grows: whole ids.
    tmux.run(&["resize-window", "-t", "dash", "-x", "200", "-y", "50"]);
    tmux.wait_for(&[&busy_id, &long], Duration::from_secs(30));
    // An action's answer takes the key line, then gives it back.
    // (`r` on the lines pane, where the dashboard opens, asks for a retry.)
    tmux.run(&["send-keys", "-t", "dash", "r"]);
    tmux.wait_for(&["select a fax waiting to retry"], Duration::from_secs(10));
    tmux.wait_for(&["q quit  tab pane"], Duration::from_secs(15));

    tmux.run(&["send-keys", "-t", "dash", "q"]);
    assert_eq!(tmux.exit_status(Duration::from_secs(60)), "0");
    let after = tmux.screen();
    for fragment in ["Faxbox", "│", "─", &busy_id[..8]] {
        assert!(
            !after.contains(fragment),
            "{fragment:?} left on the screen after q:\n{after}"
        );
    }
    drop(box_process);
}

/// Issue 19, item 8: `serve --tui` stopped with SIGTERM while a call is on
/// the line ends within the stop grace plus 5 s (the dashboard used to wait
/// for ever on an API that had stopped), gives the terminal back, and the
/// cut call is recorded interrupted to be sent again.
///
/// Long on purpose: one stop in real time (the box in a tmux pane, a three-page
/// call on a line paced at real speed, SIGTERM mid-call), then its exit time,
/// the terminal and the requeued fax, each a check on that one stop.
#[test]
fn serve_tui_on_sigterm_with_a_call_on_the_line_exits_within_the_grace_and_five_seconds() {
    const GRACE_S: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("faxbox.toml"),
        format!(
            "stop_grace_s = {GRACE_S}\n[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n\
             [[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 1\nrealtime = true\n"
        ),
    )
    .unwrap();
    let tmux = Tmux::start("test-serve-term", (220, 50), &serve_tui(dir.path()));
    let screen = tmux.wait_for(
        &["Faxbox | live", "INFO faxbox is running"],
        Duration::from_secs(60),
    );
    // The API's address, from the box's own log line in the pane.
    let port: u16 = screen
        .split("api=127.0.0.1:")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no API address on the screen:\n{screen}"));

    // A three-page fax, on a line paced at real speed: longer than the grace.
    let data = dir.path().join("data");
    let pdf = dir.path().join("letter.pdf");
    std::fs::write(
        &pdf,
        crate::harness::pdf_of_texts(&["Page 1", "Page 2", "Page 3"]),
    )
    .unwrap();
    let sent = crate::harness::faxbox(
        &data,
        &[
            "send",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--to",
            "5551234",
            pdf.to_str().unwrap(),
        ],
    );
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let fax = faxbox::model::FaxId(String::from_utf8(sent.stdout).unwrap().trim().to_owned());
    let store = faxbox::store::Store::open_existing(&data).unwrap();
    crate::harness::wait_for("the call to send pages", Duration::from_secs(120), || {
        store
            .attempts(&fax)
            .unwrap()
            .first()
            .is_some_and(|a| a.stage == faxbox::model::AttemptStage::Send)
    });

    // SIGTERM to the box (the shell's child in the pane).
    let shell = tmux.run(&["display-message", "-p", "-t", "dash", "#{pane_pid}"]);
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let pid = children
        .split_whitespace()
        .next()
        .expect("the box runs in the pane");
    let asked = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tmux.exit_status(Duration::from_secs(60));
    let took = asked.elapsed();
    println!("serve --tui ended {took:?} after SIGTERM (grace {GRACE_S} s)");
    assert!(
        took < Duration::from_secs(GRACE_S + 5),
        "it took {took:?} to end:\n{}",
        tmux.screen()
    );
    assert_eq!(status, "0", "{}", tmux.screen());
    let after = tmux.screen();
    assert!(
        !after.contains("Faxbox | live"),
        "the screen is restored:\n{after}"
    );
    // The call outlived the grace: hung up, recorded, queued again.
    let attempts = store.attempts(&fax).unwrap();
    assert_eq!(
        attempts[0].outcome,
        Some(faxbox::model::AttemptOutcome::Interrupted),
        "{attempts:?}"
    );
    assert_eq!(
        store.fax(&fax).unwrap().status,
        Some(faxbox::model::JobStatus::Pending)
    );
}
