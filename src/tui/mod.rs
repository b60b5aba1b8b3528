//! The live dashboard (`faxbox tui`, `faxbox serve --tui`): what the lines
//! are doing, each account's queue, the faxes waiting to retry, the latest
//! faxes with a filter and a detail view, today's counts, and a log pane,
//! from a running box's `GET /v2/status` and its event stream.
//!
//! Drawing is a pure function of a snapshot and the UI state (`render`), so
//! it is tested on ratatui's `TestBackend` without a terminal; `run` is
//! the thin loop around it: read the snapshot when the event stream says
//! something changed (and slowly anyway), draw, read keys, restore the
//! terminal (also on a panic: `ratatui::init` installs that hook).

pub mod events;
mod log;
mod snapshot;
mod view;

pub use log::LogBuffer;
pub use snapshot::{AttemptDetail, FaxDetail, RxDetail};
pub use view::{Action, Connection, Detail, Pane, UiState, age, countdown, render};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::client::Session;
use crate::status::Status;

/// How often the snapshot is read when no event says anything changed:
/// the event stream is the news; this is the safety net.
const SLOW_POLL: Duration = Duration::from_secs(5);
/// How often it is tried while the box does not answer.
const RECONNECT: Duration = Duration::from_secs(1);
/// Events closer together than this are one reading of the snapshot.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the screen is drawn again (countdowns, the log).
const TICK: Duration = Duration::from_millis(250);
/// How long the answer to an action stands in the key line before the keys
/// come back.
const MESSAGE_FOR: Duration = Duration::from_secs(6);
/// The longest the dashboard waits on one request: a box that is stopping
/// must not hold the screen (issue 19).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

fn login(url: &str, key: &str) -> anyhow::Result<Session> {
    Session::login_with(crate::client::Http::with_timeout(REQUEST_TIMEOUT), url, key)
}

/// How the dashboard is attached.
#[derive(Default)]
pub struct Options {
    /// The log pane's source (`serve --tui`); without it the pane shows the
    /// event stream.
    pub log: Option<LogBuffer>,
    /// Set when the box the dashboard runs in has stopped (`serve --tui`
    /// after SIGTERM): the dashboard ends too.
    pub stopped: Option<std::sync::Arc<AtomicBool>>,
}

/// Attaches to the box at `url` with the API key `key` and shows the
/// dashboard until `q`.
pub fn run(url: &str, key: &str) -> anyhow::Result<()> {
    // SIGTERM, SIGINT and SIGHUP end the dashboard like `q`, so the
    // terminal is put back (its alternate screen and cursor).
    let stopped = std::sync::Arc::new(AtomicBool::new(false));
    end_on_signals(stopped.clone())?;
    run_with(
        url,
        key,
        Options {
            stopped: Some(stopped),
            ..Options::default()
        },
    )
}

/// Sets `stopped` on the first SIGTERM, SIGINT or SIGHUP, from a thread of
/// its own; the handlers are in place when this returns.
pub fn end_on_signals(stopped: std::sync::Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot watch for signals")?;
    let mut signals = runtime.block_on(async {
        [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ]
        .map(signal)
    });
    for s in &signals {
        if let Err(e) = s {
            anyhow::bail!("cannot watch for signals: {e}");
        }
    }
    std::thread::Builder::new()
        .name("tui-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                let [Ok(term), Ok(int), Ok(hup)] = &mut signals else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
            });
            stopped.store(true, Ordering::Release);
        })
        .context("cannot watch for signals")?;
    Ok(())
}

/// [`run`], with the log pane and the end as `options` say.
pub fn run_with(url: &str, key: &str, options: Options) -> anyhow::Result<()> {
    let mut session =
        login(url, key).with_context(|| format!("cannot reach the fax box at {url}"))?;
    let event_log = LogBuffer::new(500);
    let (changed_tx, changed) = mpsc::channel();
    events::follow(
        url.to_owned(),
        key.to_owned(),
        changed_tx,
        event_log.clone(),
    );
    let log = options.log.clone().unwrap_or(event_log);

    // Also installs the panic hook that puts the terminal back first.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            anyhow::bail!("the dashboard needs a terminal: {e}");
        }
    };
    let mut ui = UiState::default();
    let mut snapshot: Option<Status> = None;
    let mut read_at = Instant::now();
    let mut next_read = Instant::now();
    // The message on the key line and since when it is there.
    let mut message_since: Option<(String, Instant)> = None;
    let result = loop {
        if options
            .stopped
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
        {
            break Ok(());
        }
        // News from the event stream: read again soon (once per burst).
        let mut news = false;
        while changed.try_recv().is_ok() {
            news = true;
        }
        if news {
            next_read = next_read.min(read_at + SETTLE);
        }
        if Instant::now() >= next_read {
            match session.status() {
                Ok(s) => {
                    snapshot = Some(s);
                    ui.connection = Connection::Live;
                    read_at = Instant::now();
                    next_read = read_at + SLOW_POLL;
                    // The open fax may have changed too.
                    if let Some(detail) = &mut ui.detail {
                        load_detail(&session, detail);
                    }
                }
                Err(e) => {
                    ui.connection = Connection::Reconnecting(e.to_string());
                    next_read = Instant::now() + RECONNECT;
                    // The box may have restarted: its tokens ended with it.
                    if let Ok(s) = login(url, key) {
                        session = s;
                    }
                }
            }
        }
        ui.since_snapshot = read_at.elapsed().as_secs() as i64;
        match (&ui.message, &message_since) {
            (None, _) => message_since = None,
            (Some(m), Some((shown, at))) if m == shown => {
                if at.elapsed() >= MESSAGE_FOR {
                    ui.message = None;
                    message_since = None;
                }
            }
            (Some(m), _) => message_since = Some((m.clone(), Instant::now())),
        }
        ui.log = log.lines();
        if let Err(e) = terminal.draw(|f| render(f, snapshot.as_ref(), &ui)) {
            break Err(e.into());
        }
        match event::poll(TICK) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    let typing = ui.filtering;
                    let quit = (k.code == KeyCode::Char('q') && !typing)
                        || (k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL));
                    if quit {
                        break Ok(());
                    }
                    match ui.key(k.code, snapshot.as_ref()) {
                        Some(Action::OpenDetail { .. }) => {
                            if let Some(detail) = &mut ui.detail {
                                load_detail(&session, detail);
                            }
                        }
                        Some(action) => {
                            ui.message = Some(perform(&session, &action));
                            // Show the outcome at once.
                            next_read = Instant::now();
                        }
                        None => {}
                    }
                }
                // A resize is drawn on the next turn (ratatui follows the
                // new size by itself).
                Ok(_) => {}
                Err(e) => break Err(e.into()),
            },
            Ok(false) => {}
            Err(e) => break Err(e.into()),
        }
    };
    // Blank the dashboard before leaving it: after the window grew, a
    // terminal (tmux) shows what was drawn on the larger alternate screen
    // through to the restored one (issue 21).
    let _ = terminal.clear();
    ratatui::restore();
    result
}

/// Reads the fax of the detail view.
fn load_detail(session: &Session, detail: &mut Detail) {
    let path = format!(
        "/v2/accounts/{}/faxes/{}/{}",
        detail.account_id, detail.folder, detail.fax_id
    );
    let read = session.get(&path).or_else(|e| {
        // It may have moved from outgoing to the outbox meanwhile.
        if detail.folder == "outgoing" {
            let done = path.replace("/faxes/outgoing/", "/faxes/outbox/");
            let fax = session.get(&done)?;
            detail.folder = "outbox".into();
            Ok(fax)
        } else {
            Err(e)
        }
    });
    match read.and_then(|v| Ok(serde_json::from_value::<FaxDetail>(v)?)) {
        Ok(fax) => {
            // A fax of a batch shows how its batch is going (issue 22).
            detail.batch = fax.batch_id.as_ref().map(|batch| {
                let path = format!("/v2/accounts/{}/faxes/batches/{batch}", detail.account_id);
                match session.get(&path) {
                    Ok(summary) => batch_progress(&summary),
                    Err(e) => format!("batch {batch}: cannot read it: {e}"),
                }
            });
            detail.fax = Some(fax);
            detail.error = None;
        }
        Err(e) => detail.error = Some(e.to_string()),
    }
}

/// One line on a batch's summary (`GET .../faxes/batches/{id}`): how many
/// of its faxes are done, and the states of the rest.
fn batch_progress(summary: &serde_json::Value) -> String {
    let count = |state: &str| summary["counts"][state].as_u64().unwrap_or(0);
    let total = summary["total"].as_u64().unwrap_or(0);
    let ended = ["completed", "failed", "cancelled"];
    let done: u64 = ended.iter().map(|s| count(s)).sum();
    let states: Vec<String> = summary["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(state, n)| Some((state, n.as_u64()?)))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let id = summary["id"].as_str().unwrap_or("");
    format!(
        "batch {}: {done} of {total} done ({})",
        &id[..8.min(id.len())],
        states.join(", ")
    )
}

/// Does what a key asked through the API; says how it went.
fn perform(session: &Session, action: &Action) -> String {
    let (path, body, done) = match action {
        Action::Cancel { account_id, fax_id } => (
            format!("/v2/accounts/{account_id}/faxes/outgoing/{fax_id}"),
            serde_json::json!({"action": "cancel"}),
            format!("fax {} cancelled", &fax_id[..8.min(fax_id.len())]),
        ),
        Action::RetryNow { account_id, fax_id } => (
            format!("/v2/accounts/{account_id}/faxes/outgoing/{fax_id}"),
            serde_json::json!({"action": "retry_now"}),
            format!("fax {} is due now", &fax_id[..8.min(fax_id.len())]),
        ),
        Action::Pause { line } => (
            format!("/v2/lines/{line}"),
            serde_json::json!({"action": "pause", "data": {"reason": "paused from the dashboard"}}),
            format!("line {line} paused: it takes no new calls"),
        ),
        Action::Resume { line } => (
            format!("/v2/lines/{line}"),
            serde_json::json!({"action": "resume"}),
            format!("line {line} resumed"),
        ),
        Action::OpenDetail { .. } => return String::new(),
    };
    match session.put(&path, &body) {
        Ok(_) => done,
        Err(e) => format!("not done: {e}"),
    }
}

#[cfg(test)]
mod tests {
    //! Render tests: each screen is compared with a text file under
    //! `src/tui/snapshots/` (`FAXBOX_UPDATE_SNAPSHOTS=1` rewrites them after
    //! a deliberate change; review the diff).

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn screen(snapshot: Option<&Status>, ui: &UiState, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(f, snapshot, ui)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..height {
            let row: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
            text.push_str(row.trim_end());
            text.push('\n');
        }
        text
    }

    fn check(name: &str, text: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/tui/snapshots")
            .join(format!("{name}.txt"));
        if std::env::var_os("FAXBOX_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            return;
        }
        let kept = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with FAXBOX_UPDATE_SNAPSHOTS=1 to make it",
                path.display()
            )
        });
        assert_eq!(text, kept, "the screen differs from {}", path.display());
    }

    /// Each of `what` is on the screen.
    fn assert_shows(text: &str, what: &[&str]) {
        for what in what {
            assert!(text.contains(what), "{what} in\n{text}");
        }
    }

    /// `c` only asks; `y` then asks the box to cancel that fax.
    fn assert_cancels(ui: &mut UiState, s: &Status, account_id: &str, fax_id: &str) {
        assert_eq!(ui.key(KeyCode::Char('c'), Some(s)), None);
        assert_eq!(
            ui.key(KeyCode::Char('y'), Some(s)),
            Some(Action::Cancel {
                account_id: account_id.into(),
                fax_id: fax_id.into()
            })
        );
    }

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    fn idle() -> Status {
        status(serde_json::json!({
            "generated": 63_900_000_000i64,
            "lines": [{"name": "loopback", "capacity": 2, "state": "up", "reason": null,
                "channels": [{"channel": 1, "state": "idle", "text": "idle"},
                             {"channel": 2, "state": "idle", "text": "idle"}]}],
            "accounts": [{"account_id": "a1", "account_name": "Admin", "pending": 0, "active": 0,
                "waiting_retry": [], "waiting_retry_total": 0, "completed_today": 0, "failed_today": 0}],
            "totals": {}
        }))
    }

    fn busy(modem: &str, reason: Option<&str>) -> Status {
        let t = 63_900_000_000i64;
        status(serde_json::json!({
            "generated": t,
            "lines": [
                {"name": "loopback", "capacity": 2, "state": "up", "reason": null, "channels": [
                    {"channel": 1, "state": "sending",
                     "text": "sending page 2 of 5 at 14400 bps, ECM, to +1 555 0100",
                     "direction": "outbound", "fax_id": "d0e5000000000000", "account_id": "a1",
                     "to_number": "+15550100", "attempt": 1, "since": t - 40, "page": 2,
                     "pages_sent": 1, "pages": 5, "bit_rate": 14400, "ecm": true,
                     "remote_station_id": "+1 555 0100"},
                    {"channel": 2, "state": "dialling", "text": "dialling 5550123",
                     "direction": "outbound", "fax_id": "f2000000aaaa", "account_id": "a1",
                     "to_number": "5550123", "attempt": 1, "since": t - 5, "page": null,
                     "pages_sent": 0, "pages": 1, "bit_rate": null, "ecm": null,
                     "remote_station_id": null}]},
                {"name": "modem1", "capacity": 1, "state": modem, "reason": reason, "channels": [
                    if modem == "up" {
                        serde_json::json!({"channel": 1, "state": "receiving",
                         "text": "receiving from 5550199",
                         "direction": "inbound", "call_id": "rx-1", "account_id": "a2",
                         "faxbox_id": "fb2", "from_number": "5550199", "to_number": "5550100",
                         "since": t - 12})
                    } else {
                        serde_json::json!({"channel": 1, "state": modem, "text": modem})
                    }]}
            ],
            "accounts": [
                {"account_id": "a1", "account_name": "Acme Legal", "pending": 4, "active": 2,
                 "waiting_retry": [
                    {"fax_id": "0badc0de0badc0de", "to_number": "5550666", "attempts": 1, "retries": 3,
                     "next_attempt": t + 245, "last_cause": "the number was busy"},
                    {"fax_id": "feedfacefeedface", "to_number": "+15551230000", "attempts": 2, "retries": 4,
                     "next_attempt": t + 20, "last_cause": "no answer"}],
                 "waiting_retry_total": 2, "completed_today": 17, "failed_today": 1},
                {"account_id": "a2", "account_name": "Clinic", "pending": 1, "active": 0,
                 "waiting_retry": [
                    {"fax_id": "c0ffeec0ffee0000", "to_number": "5550777", "attempts": 3, "retries": 4,
                     "next_attempt": t - 3, "last_cause": "the fax failed: 48 Disconnected after permitted retries"}],
                 "waiting_retry_total": 1, "completed_today": 3, "failed_today": 0}
            ],
            "totals": {"completed_today": 20, "failed_today": 1, "pages_sent_today": 61,
                       "received_today": 4, "pages_received_today": 9, "api_accepted": 25},
            "intake": {"since": t - 3600, "api": 25, "smtp": 7, "ipp": 3},
            "recent": [
                {"fax_id": "f2000000aaaa", "account_id": "a1", "folder": "outbox",
                 "status": "processing", "number": "5550123", "pages": 1, "attempts": 0,
                 "retries": 1, "document": "quote.pdf", "last_result": null,
                 "created": t - 30, "modified": t - 5},
                {"fax_id": "0badc0de0badc0de", "account_id": "a1", "folder": "outbox",
                 "status": "pending", "number": "5550666", "pages": 3, "attempts": 1,
                 "retries": 3, "document": "contract.pdf", "last_result": "the number was busy",
                 "created": t - 200, "modified": t - 55},
                {"fax_id": "1eceived00000000", "account_id": "a2", "folder": "inbox",
                 "status": "received", "number": "5550199", "pages": 2, "attempts": 0,
                 "retries": 0, "document": null, "last_result": "OK",
                 "created": t - 900, "modified": t - 880},
                {"fax_id": "c0ffeec0ffee0000", "account_id": "a2", "folder": "outbox",
                 "status": "pending", "number": "+1 555 0777", "pages": 1, "attempts": 3,
                 "retries": 4, "document": "lab results.pdf",
                 "last_result": "Disconnected after permitted retries",
                 "created": t - 4000, "modified": t - 400},
                {"fax_id": "d0e5000000000000", "account_id": "a1", "folder": "outbox",
                 "status": "completed", "number": "5550100", "pages": 5, "attempts": 1,
                 "retries": 3, "document": "invoice.pdf", "last_result": "OK",
                 "created": t - 90_000, "modified": t - 89_000}
            ]
        }))
    }

    /// The busy fax as `GET .../faxes/outgoing/{id}` shows it.
    #[test]
    fn a_batch_line_says_how_many_are_done_and_the_states_of_all() {
        let summary = serde_json::json!({
            "id": "6f1c2a3b4d5e6f70", "total": 3,
            "counts": {"attaching_files": 0, "cancelled": 0, "completed": 1,
                       "failed": 1, "pending": 0, "processing": 1},
        });
        assert_eq!(
            batch_progress(&summary),
            "batch 6f1c2a3b: 2 of 3 done (1 completed, 1 failed, 1 processing)"
        );
    }

    fn busy_fax_detail() -> FaxDetail {
        let t = 63_900_000_000i64;
        serde_json::from_value(serde_json::json!({
            "id": "0badc0de0badc0de", "folder": "outbox", "status": "pending",
            "to_number": "5550666", "pages": 3, "attempts": 2, "retries": 3,
            "created": t - 200, "modified": t - 55,
            "history": [
                {"attempt": 1, "line": "loopback", "started": t - 190, "ended": t - 160,
                 "stage": "end", "outcome": "failure", "success": false, "result_code": null,
                 "result_text": null, "hangup_cause": "USER_BUSY", "pages_sent": 0},
                {"attempt": 2, "line": "modem1", "started": t - 100, "ended": t - 55,
                 "stage": "end", "outcome": "failure", "success": false, "result_code": 48,
                 "result_text": "Disconnected after permitted retries", "pages_sent": 2,
                 "fax_speed": 9600, "fax_error_correction": true,
                 "fax_receiver_id": "+1 555 0666"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn an_idle_box() {
        let ui = UiState {
            connection: Connection::Live,
            ..UiState::default()
        };
        check("idle-80x24", &screen(Some(&idle()), &ui, 80, 24));
    }

    #[test]
    fn a_busy_box_with_several_lines_and_retries() {
        let ui = UiState {
            connection: Connection::Live,
            pane: view::Pane::Retries,
            selected: 1,
            ..UiState::default()
        };
        check(
            "busy-100x30",
            &screen(Some(&busy("up", None)), &ui, 100, 30),
        );
    }

    #[test]
    fn a_line_down_shows_why() {
        let ui = UiState {
            connection: Connection::Live,
            ..UiState::default()
        };
        let text = screen(
            Some(&busy("down", Some("no modem answers on /dev/ttyACM0"))),
            &ui,
            100,
            30,
        );
        assert!(
            text.contains("DOWN: no modem answers on /dev/ttyACM0"),
            "{text}"
        );
        check("line-down-100x30", &text);
    }

    #[test]
    fn a_narrow_terminal_still_shows_everything_that_matters() {
        let ui = UiState {
            connection: Connection::Reconnecting("connection refused".into()),
            ..UiState::default()
        };
        let text = screen(Some(&busy("up", None)), &ui, 80, 24);
        assert_shows(
            &text,
            &[
                "reconnecting",
                "sending page 2 of 5",
                "Acme Legal",
                "in 20s",
                "the number was busy",
                "q quit",
            ],
        );
        check("busy-80x24", &text);
    }

    #[test]
    fn cancel_asks_first_and_retry_and_pause_act_on_the_selected_row() {
        let s = busy("up", None);
        let mut ui = UiState {
            pane: view::Pane::Retries,
            ..UiState::default()
        };
        // The soonest retry is selected: the Clinic's fax.
        assert_eq!(ui.key(KeyCode::Char('c'), Some(&s)), None);
        let asked = screen(Some(&s), &ui, 80, 24);
        assert!(
            asked.contains("cancel fax c0ffeec0? y to cancel it"),
            "{asked}"
        );
        assert_eq!(
            ui.key(KeyCode::Char('y'), Some(&s)),
            Some(Action::Cancel {
                account_id: "a2".into(),
                fax_id: "c0ffeec0ffee0000".into()
            })
        );
        assert_eq!(ui.key(KeyCode::Char('c'), Some(&s)), None);
        assert_eq!(ui.key(KeyCode::Char('n'), Some(&s)), None);
        assert_eq!(ui.message.as_deref(), Some("not cancelled"));
        ui.key(KeyCode::Down, Some(&s));
        assert_eq!(
            ui.key(KeyCode::Char('r'), Some(&s)),
            Some(Action::RetryNow {
                account_id: "a1".into(),
                fax_id: "feedfacefeedface".into()
            })
        );
        // On the lines: the selected channel's line.
        ui.key(KeyCode::BackTab, Some(&s));
        ui.key(KeyCode::BackTab, Some(&s));
        assert_eq!(ui.pane, view::Pane::Lines);
        ui.key(KeyCode::Down, Some(&s));
        ui.key(KeyCode::Down, Some(&s));
        assert_eq!(
            ui.key(KeyCode::Char('p'), Some(&s)),
            Some(Action::Pause {
                line: "modem1".into()
            })
        );
        assert_eq!(ui.key(KeyCode::Char('r'), Some(&s)), None);
        assert_eq!(ui.message.as_deref(), Some("select a fax waiting to retry"));
    }

    /// A channel sending a fax opens and cancels that fax; one receiving
    /// a fax has none to act on (a received fax is opened from the list).
    #[test]
    fn a_sending_channel_acts_on_its_fax_and_a_receiving_one_does_not() {
        let s = busy("up", None);
        let channels: Vec<_> = s.lines.iter().flat_map(|l| &l.channels).collect();
        assert!(
            matches!(&channels[2].call, Some(crate::status::Call::Inbound(c)) if c.from_number == "5550199"),
            "{channels:?}"
        );
        let mut ui = UiState::default();
        assert_eq!(ui.pane, view::Pane::Lines);
        ui.key(KeyCode::Down, Some(&s));
        assert!(matches!(
            ui.key(KeyCode::Enter, Some(&s)),
            Some(Action::OpenDetail { account_id, fax_id, .. })
                if account_id == "a1" && fax_id == "f2000000aaaa"
        ));
        ui.key(KeyCode::Esc, Some(&s));
        assert_cancels(&mut ui, &s, "a1", "f2000000aaaa");
        ui.key(KeyCode::Down, Some(&s));
        assert_eq!(ui.key(KeyCode::Enter, Some(&s)), None);
        assert_eq!(ui.key(KeyCode::Char('c'), Some(&s)), None);
        assert_eq!(
            ui.message.as_deref(),
            Some("select a fax to cancel (a line or a retry)")
        );
    }

    #[test]
    fn keys_move_between_panes_and_rows() {
        let s = busy("up", None);
        let mut ui = UiState::default();
        ui.key(KeyCode::Down, Some(&s));
        ui.key(KeyCode::Down, Some(&s));
        ui.key(KeyCode::Down, Some(&s));
        assert_eq!(
            (ui.pane, ui.selected),
            (view::Pane::Lines, 2),
            "three channels"
        );
        ui.key(KeyCode::Tab, Some(&s));
        assert_eq!((ui.pane, ui.selected), (view::Pane::Queues, 0));
        ui.key(KeyCode::Up, Some(&s));
        assert_eq!(ui.selected, 0);
    }

    #[test]
    fn the_job_list_filters_by_number_status_or_id() {
        let s = busy("up", None);
        let mut ui = UiState {
            connection: Connection::Live,
            ..UiState::default()
        };
        ui.key(KeyCode::Char('/'), Some(&s));
        assert_eq!((ui.pane, ui.filtering), (view::Pane::Jobs, true));
        for c in "555 0777".chars() {
            ui.key(KeyCode::Char(c), Some(&s));
        }
        let typing = screen(Some(&s), &ui, 100, 30);
        assert!(typing.contains("/ filter: 555 0777"), "{typing}");
        // `q` is a letter of the filter while the prompt is open.
        ui.key(KeyCode::Enter, Some(&s));
        assert!(!ui.filtering);
        let text = screen(Some(&s), &ui, 100, 30);
        assert!(
            text.contains("Faxes matching \"555 0777\" (1 of 5)"),
            "{text}"
        );
        assert!(text.contains("c0ffeec0"), "{text}");
        assert!(!text.contains("0badc0de  5550666"), "{text}");
        check("filter-100x30", &text);
        // By status and by a piece of the id.
        ui.filter = "complete".into();
        assert!(screen(Some(&s), &ui, 100, 30).contains("(1 of 5)"));
        ui.filter = "BADC0".into();
        assert!(screen(Some(&s), &ui, 100, 30).contains("(1 of 5)"));
        // Esc clears it.
        ui.key(KeyCode::Esc, Some(&s));
        assert_eq!(ui.filter, "");
        assert!(screen(Some(&s), &ui, 100, 30).contains("Faxes (5)"));
    }

    #[test]
    fn enter_opens_a_fax_with_each_attempt_and_esc_goes_back() {
        let s = busy("up", None);
        let mut ui = UiState {
            connection: Connection::Live,
            pane: view::Pane::Jobs,
            selected: 1,
            ..UiState::default()
        };
        assert_eq!(
            ui.key(KeyCode::Enter, Some(&s)),
            Some(Action::OpenDetail {
                account_id: "a1".into(),
                folder: "outgoing".into(),
                fax_id: "0badc0de0badc0de".into(),
            })
        );
        let reading = screen(Some(&s), &ui, 100, 30);
        assert!(reading.contains("reading the fax"), "{reading}");
        ui.detail.as_mut().unwrap().fax = Some(busy_fax_detail());
        let text = screen(Some(&s), &ui, 100, 30);
        assert_shows(
            &text,
            &[
                "Fax 0badc0de0badc0de",
                "pending, to 5550666, attempt 2 of 3, 3 pages",
                "document: contract.pdf",
                "USER_BUSY",
                "48 Disconnected after permitted retries",
                "9600",
                "+1 555 0666",
                "esc back",
            ],
        );
        check("detail-100x30", &text);
        // A fax of a batch shows its batch's progress under its own line.
        ui.detail.as_mut().unwrap().batch = Some(batch_progress(&serde_json::json!({
            "id": "6f1c2a3b4d5e6f70", "total": 3,
            "counts": {"completed": 2, "pending": 1},
        })));
        let text = screen(Some(&s), &ui, 100, 30);
        assert!(
            text.contains("batch 6f1c2a3b: 2 of 3 done (2 completed, 1 pending)"),
            "{text}"
        );
        // `c` in the detail asks to cancel that fax.
        assert_cancels(&mut ui, &s, "a1", "0badc0de0badc0de");
        ui.key(KeyCode::Esc, Some(&s));
        assert_eq!(ui.detail, None);
        // A retry opens its fax too.
        ui.pane = view::Pane::Retries;
        ui.selected = 0;
        assert!(matches!(
            ui.key(KeyCode::Enter, Some(&s)),
            Some(Action::OpenDetail { fax_id, .. }) if fax_id == "c0ffeec0ffee0000"
        ));
    }

    /// A received fax: who sent it and how the reception went, and no
    /// attempts (it had none).
    #[test]
    fn a_received_fax_shows_its_sender_and_reception_without_attempts() {
        let s = busy("up", None);
        let t = 63_900_000_000i64;
        let fax: FaxDetail = serde_json::from_value(serde_json::json!({
            "id": "1eceived00000000", "folder": "inbox", "status": null,
            "to_number": "5550100", "from_number": "5550199", "pages": 2,
            "created": t - 900, "modified": t - 880,
            "rx_result": {"success": true, "pages": 2, "bit_rate": 14400, "ecm": true,
                          "remote_station_id": " +1 555 0199 ", "result_code": 0,
                          "result_text": "OK", "duration_s": 41.6}
        }))
        .unwrap();
        let ui = UiState {
            connection: Connection::Live,
            detail: Some(view::Detail {
                account_id: "a2".into(),
                folder: "inbox".into(),
                fax_id: fax.id.clone(),
                fax: Some(fax),
                ..view::Detail::default()
            }),
            ..UiState::default()
        };
        let text = screen(Some(&s), &ui, 100, 30);
        assert_shows(
            &text,
            &[
                "Fax 1eceived00000000",
                "received from 5550199 on 5550100, 2 pages",
                "created ",
                "2 pages at 14400 bit/s, ECM, from \"+1 555 0199\", 42s: 0 OK",
            ],
        );
        assert!(!text.contains("remote CSI"), "{text}");
    }

    #[test]
    fn help_lists_the_keys_over_the_screen() {
        let s = busy("up", None);
        let mut ui = UiState {
            connection: Connection::Live,
            ..UiState::default()
        };
        ui.key(KeyCode::Char('?'), Some(&s));
        let text = screen(Some(&s), &ui, 80, 24);
        assert_shows(
            &text,
            &[
                "Keys",
                "filter the job list",
                "cancel the selected fax",
                "q quit",
            ],
        );
        check("help-80x24", &text);
        ui.key(KeyCode::Char('x'), Some(&s));
        assert!(!ui.help);
    }

    #[test]
    fn a_tall_screen_shows_the_log_under_the_job_list() {
        let ui = UiState {
            connection: Connection::Live,
            log: (1..=12)
                .map(|n| format!("12:00:{n:02} fax 0badc0de pending after attempt {n}"))
                .collect(),
            since_snapshot: 5,
            ..UiState::default()
        };
        let text = screen(Some(&busy("up", None)), &ui, 120, 44);
        assert!(text.contains("Log"), "{text}");
        assert!(text.contains("after attempt 12"), "the newest line: {text}");
        assert!(
            !text.contains("after attempt 1\n"),
            "the oldest went: {text}"
        );
        // Countdowns run on between readings of the snapshot.
        assert!(text.contains("in 4m 00s"), "{text}");
        check("busy-120x44", &text);
    }

    #[test]
    fn any_screen_size_draws_without_breaking() {
        let s = busy("down", Some("no modem answers on /dev/ttyACM0"));
        let mut states = vec![UiState::default()];
        states.push(UiState {
            help: true,
            ..UiState::default()
        });
        states.push(UiState {
            filtering: true,
            filter: "555".into(),
            pane: view::Pane::Jobs,
            selected: 3,
            ..UiState::default()
        });
        states.push(UiState {
            pane: view::Pane::Log,
            log: vec!["a line".into(); 50],
            ..UiState::default()
        });
        states.push(UiState {
            detail: Some(Detail {
                fax: Some(busy_fax_detail()),
                ..Detail::default()
            }),
            ..UiState::default()
        });
        for ui in &states {
            for (w, h) in [(1, 1), (20, 5), (40, 10), (80, 24), (200, 60)] {
                let text = screen(Some(&s), ui, w, h);
                assert_eq!(text.lines().count(), h as usize);
            }
            screen(None, ui, 80, 24);
        }
    }
}
