//! The live dashboard (`faxbox tui`): what the lines are doing, each
//! account's queue and the faxes waiting to retry, from a running box's
//! `GET /v2/status`.
//!
//! Drawing is a pure function of a snapshot and the UI state (`render`), so
//! it is tested on ratatui's `TestBackend` without a terminal; `run` is
//! the thin loop around it: poll, draw, read keys, restore the terminal.

mod snapshot;
mod view;

pub use snapshot::{Account, Channel, Line, Retry, Snapshot, Totals};
pub use view::{Action, Connection, Pane, UiState, countdown, render};

use std::time::{Duration, Instant};

use anyhow::Context;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::api::client::Session;

/// How often the snapshot is read again.
const POLL: Duration = Duration::from_secs(1);

/// Attaches to the box at `url` with the API key `key` and shows the
/// dashboard until `q`.
pub fn run(url: &str, key: &str) -> anyhow::Result<()> {
    let mut session =
        Session::login(url, key).with_context(|| format!("cannot reach the fax box at {url}"))?;
    let mut terminal = ratatui::init();
    let mut ui = UiState::default();
    let mut snapshot: Option<Snapshot> = None;
    let mut next_poll = Instant::now();
    let result = loop {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + POLL;
            match fetch(&session) {
                Ok(s) => {
                    snapshot = Some(s);
                    ui.connection = Connection::Live;
                }
                Err(e) => {
                    ui.connection = Connection::Reconnecting(e.to_string());
                    // The box may have restarted: its tokens ended with it.
                    if let Ok(s) = Session::login(url, key) {
                        session = s;
                    }
                }
            }
        }
        if let Err(e) = terminal.draw(|f| render(f, snapshot.as_ref(), &ui)) {
            break Err(e.into());
        }
        let wait = next_poll.saturating_duration_since(Instant::now());
        match event::poll(wait) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    let quit = k.code == KeyCode::Char('q')
                        || (k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL));
                    if quit {
                        break Ok(());
                    }
                    if let Some(action) = ui.key(k.code, snapshot.as_ref()) {
                        ui.message = Some(perform(&session, &action));
                        // Show the outcome at once.
                        next_poll = Instant::now();
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e.into()),
            },
            Ok(false) => {}
            Err(e) => break Err(e.into()),
        }
    };
    ratatui::restore();
    result
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
    };
    match session.put(&path, &body) {
        Ok(_) => done,
        Err(e) => format!("not done: {e}"),
    }
}

fn fetch(session: &Session) -> anyhow::Result<Snapshot> {
    let data = session.status()?;
    serde_json::from_value(data).context("the fax box sent a status this dashboard cannot read")
}

#[cfg(test)]
mod tests {
    //! Render tests: each screen is compared with a text file under
    //! `src/tui/snapshots/` (`FAXBOX_UPDATE_SNAPSHOTS=1` rewrites them after
    //! a deliberate change; review the diff).

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn screen(snapshot: Option<&Snapshot>, ui: &UiState, width: u16, height: u16) -> String {
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

    fn status(json: serde_json::Value) -> Snapshot {
        serde_json::from_value(json).unwrap()
    }

    fn idle() -> Snapshot {
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

    fn busy(modem: &str, reason: Option<&str>) -> Snapshot {
        let t = 63_900_000_000i64;
        status(serde_json::json!({
            "generated": t,
            "lines": [
                {"name": "loopback", "capacity": 2, "state": "up", "reason": null, "channels": [
                    {"channel": 1, "state": "sending", "fax_id": "f1",
                     "text": "sending page 2 of 5 at 14400 bps, ECM, to +1 555 0100"},
                    {"channel": 2, "state": "dialling", "fax_id": "f2", "text": "dialling 5550123"}]},
                {"name": "modem1", "capacity": 1, "state": modem, "reason": reason, "channels": [
                    {"channel": 1, "state": if modem == "up" { "receiving" } else { modem },
                     "text": if modem == "up" { "receiving from 5550199" } else { modem }}]}
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
                       "received_today": 4, "pages_received_today": 9, "api_accepted": 25}
        }))
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
        for what in [
            "reconnecting",
            "sending page 2 of 5",
            "Acme Legal",
            "in 4m 05s",
            "q quit",
        ] {
            assert!(text.contains(what), "{what} in\n{text}");
        }
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
        ui.key(KeyCode::Tab, Some(&s));
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
}
