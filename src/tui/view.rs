//! Drawing the dashboard: a pure function of the last snapshot and the UI
//! state, laid out to fit 80x24 and to use whatever more there is.

use ratatui::Frame;
use ratatui::crossterm::event::KeyCode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

use super::snapshot::FaxDetail;
use crate::status::{Line, Recent, Retry, Status};

/// Whether the dashboard hears from the box.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Connection {
    #[default]
    Connecting,
    Live,
    /// The last read failed (the box restarted, the network is down).
    Reconnecting(String),
}

/// The panes keys move between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pane {
    #[default]
    Lines,
    Queues,
    Retries,
    Jobs,
    /// The log (under `serve --tui`) or the event stream (attached).
    Log,
}

impl Pane {
    fn next(self) -> Pane {
        match self {
            Pane::Lines => Pane::Queues,
            Pane::Queues => Pane::Retries,
            Pane::Retries => Pane::Jobs,
            Pane::Jobs => Pane::Log,
            Pane::Log => Pane::Lines,
        }
    }

    fn previous(self) -> Pane {
        match self {
            Pane::Lines => Pane::Log,
            Pane::Queues => Pane::Lines,
            Pane::Retries => Pane::Queues,
            Pane::Jobs => Pane::Retries,
            Pane::Log => Pane::Jobs,
        }
    }
}

/// The fax whose detail is open, and what the box said about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    pub account_id: String,
    /// The API folder: `outgoing`, `outbox` or `inbox`.
    pub folder: String,
    pub fax_id: String,
    /// The first document's name (from the job list).
    pub document: Option<String>,
    /// `None` until it is read.
    pub fax: Option<FaxDetail>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// The progress of its batch, for a fax sent to several numbers
    /// (`batch_progress`).
    pub batch: Option<String>,
}

/// What a key asks the box to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Cancel {
        account_id: String,
        fax_id: String,
    },
    RetryNow {
        account_id: String,
        fax_id: String,
    },
    Pause {
        line: String,
    },
    Resume {
        line: String,
    },
    /// Read a fax for the detail view.
    OpenDetail {
        account_id: String,
        folder: String,
        fax_id: String,
    },
}

impl Action {
    /// The question asked before a cancel.
    fn question(&self) -> String {
        match self {
            Action::Cancel { fax_id, .. } => {
                format!(
                    " cancel fax {}? y to cancel it, n to keep it",
                    short(fax_id)
                )
            }
            other => format!(" {other:?}?"),
        }
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A fax id as wide as the screen allows: whole on a wide one, else its
/// first 8 characters (which `faxbox jobs show` also takes).
fn id_for(id: &str, width: u16) -> String {
    if width >= WHOLE_IDS_FROM {
        id.to_owned()
    } else {
        short(id)
    }
}

/// From this many columns the lists show whole fax ids.
const WHOLE_IDS_FROM: u16 = 160;

/// The width of a number column: the longest number shown (a number is
/// never cut), at least `least`.
fn number_width<'a>(least: u16, numbers: impl Iterator<Item = &'a str>) -> u16 {
    numbers
        .map(|n| n.chars().count() as u16 + 1)
        .max()
        .unwrap_or(0)
        .clamp(least, 40)
}

/// What the person at the console chose: the pane in focus, the row
/// selected in it, a cancel waiting for its confirmation, the job-list
/// filter, the detail or help shown, the answer to the last action; and
/// what the loop around it keeps for drawing (the log's last lines, the
/// seconds since the snapshot was read, for countdowns).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiState {
    pub connection: Connection,
    pub pane: Pane,
    pub selected: usize,
    pub confirm: Option<Action>,
    pub message: Option<String>,
    /// The job-list filter (empty: every fax).
    pub filter: String,
    /// The filter prompt is open and takes the keys.
    pub filtering: bool,
    pub help: bool,
    pub detail: Option<Detail>,
    /// The log pane's lines, oldest first.
    pub log: Vec<String>,
    /// Seconds since the snapshot was read.
    pub since_snapshot: i64,
}

/// The keys, as the help shows them.
const KEYS: [(&str, &str); 12] = [
    ("tab, shift-tab", "next / previous pane"),
    ("\u{2191} \u{2193}", "move in the pane"),
    ("enter", "open the selected fax"),
    ("esc", "back; clear the filter"),
    ("/", "filter the job list (number, status, id)"),
    ("c", "cancel the selected fax (asks first)"),
    ("r", "retry the selected fax now"),
    ("p", "pause or resume the selected line"),
    ("?", "this help"),
    ("q", "quit"),
    ("", ""),
    ("", "any key closes this help"),
];

/// The bottom line when nothing else is said there.
const HINTS: &str = " q quit  tab pane  enter detail  / filter  c cancel  r retry  p pause  ? help";

impl UiState {
    /// Applies a key (`q` is handled by the caller); returns what the box
    /// is to do, if anything.
    pub fn key(&mut self, key: KeyCode, snapshot: Option<&Status>) -> Option<Action> {
        if let Some(action) = self.confirm.take() {
            return match key {
                KeyCode::Char('y') => Some(action),
                _ => {
                    self.message = Some("not cancelled".into());
                    None
                }
            };
        }
        if self.filtering {
            self.filter_key(key);
            return None;
        }
        if self.help {
            self.help = false;
            return None;
        }
        if self.detail.is_some() {
            return self.detail_key(key);
        }
        let empty = Status::default();
        let s = snapshot.unwrap_or(&empty);
        let Chosen {
            rows,
            fax,
            line,
            open,
        } = self.chosen(s);
        match key {
            KeyCode::Char('c') => match fax {
                Some((account_id, fax_id)) => {
                    let action = Action::Cancel { account_id, fax_id };
                    self.message = None;
                    self.confirm = Some(action);
                }
                None => self.message = Some("select a fax to cancel (a line or a retry)".into()),
            },
            KeyCode::Char('r') => match fax {
                Some((account_id, fax_id)) if matches!(self.pane, Pane::Retries | Pane::Jobs) => {
                    return Some(Action::RetryNow { account_id, fax_id });
                }
                _ => self.message = Some("select a fax waiting to retry".into()),
            },
            KeyCode::Char('p') => match line {
                Some(l) if l.state == "paused" => {
                    return Some(Action::Resume {
                        line: l.name.clone(),
                    });
                }
                Some(l) => {
                    return Some(Action::Pause {
                        line: l.name.clone(),
                    });
                }
                None => self.message = Some("select a line to pause or resume".into()),
            },
            KeyCode::Tab => {
                self.pane = self.pane.next();
                self.selected = 0;
            }
            KeyCode::BackTab => {
                self.pane = self.pane.previous();
                self.selected = 0;
            }
            KeyCode::Enter => match open {
                Some(detail) => {
                    let action = Action::OpenDetail {
                        account_id: detail.account_id.clone(),
                        folder: detail.folder.clone(),
                        fax_id: detail.fax_id.clone(),
                    };
                    self.message = None;
                    self.detail = Some(detail);
                    return Some(action);
                }
                None => {
                    self.message = Some("select a fax to open (a job, a retry or a call)".into())
                }
            },
            KeyCode::Char('/') => {
                self.pane = Pane::Jobs;
                self.filtering = true;
                self.selected = 0;
                self.message = None;
            }
            KeyCode::Char('?') => self.help = true,
            KeyCode::Esc => {
                self.filter.clear();
                self.message = None;
            }
            KeyCode::Down => self.selected = (self.selected + 1).min(rows.saturating_sub(1)),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            _ => {}
        }
        None
    }

    /// A key while the job-list filter is typed.
    fn filter_key(&mut self, key: KeyCode) {
        match key {
            KeyCode::Char(c) => self.filter.push(c),
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Enter => self.filtering = false,
            KeyCode::Esc => {
                self.filter.clear();
                self.filtering = false;
            }
            _ => {}
        }
        self.selected = 0;
    }

    /// A key while a fax's detail is open.
    fn detail_key(&mut self, key: KeyCode) -> Option<Action> {
        let detail = self.detail.as_ref()?;
        match key {
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.detail = None,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('c') if detail.folder == "outgoing" => {
                let action = Action::Cancel {
                    account_id: detail.account_id.clone(),
                    fax_id: detail.fax_id.clone(),
                };
                self.message = None;
                self.confirm = Some(action);
            }
            KeyCode::Char('r') if detail.folder == "outgoing" => {
                return Some(Action::RetryNow {
                    account_id: detail.account_id.clone(),
                    fax_id: detail.fax_id.clone(),
                });
            }
            _ => {}
        }
        None
    }

    /// What the selected row of the pane holds.
    fn chosen<'a>(&self, s: &'a Status) -> Chosen<'a> {
        let rows = match self.pane {
            Pane::Lines => s.lines.iter().map(|l| l.channels.len()).sum(),
            Pane::Queues => s.accounts.len(),
            Pane::Retries => retries(s).len(),
            Pane::Jobs => jobs(s, &self.filter).len(),
            Pane::Log => 0,
        };
        let (fax, line) = match self.pane {
            Pane::Lines => {
                let chosen = s
                    .lines
                    .iter()
                    .flat_map(|l| l.channels.iter().map(move |c| (l, c)))
                    .nth(self.selected);
                match chosen {
                    Some((l, c)) => (
                        c.outbound_fax()
                            .map(|(a, f)| (a.to_string(), f.to_string())),
                        Some(l),
                    ),
                    None => (None, None),
                }
            }
            Pane::Retries => (
                retries(s)
                    .get(self.selected)
                    .map(|(a, r)| (a.to_string(), r.fax_id.to_string())),
                None,
            ),
            Pane::Jobs => (
                jobs(s, &self.filter)
                    .get(self.selected)
                    .filter(|r| r.api_folder() == "outgoing")
                    .map(|r| (r.account_id.to_string(), r.fax_id.to_string())),
                None,
            ),
            Pane::Queues | Pane::Log => (None, None),
        };
        let open = match self.pane {
            Pane::Jobs => jobs(s, &self.filter).get(self.selected).map(|r| Detail {
                account_id: r.account_id.to_string(),
                folder: r.api_folder().to_owned(),
                fax_id: r.fax_id.to_string(),
                document: r.document.clone(),
                ..Detail::default()
            }),
            _ => fax.clone().map(|(account_id, fax_id)| {
                let known = s.recent.iter().find(|r| r.fax_id.as_str() == fax_id);
                Detail {
                    account_id,
                    folder: known.map_or("outgoing", Recent::api_folder).to_owned(),
                    document: known.and_then(|r| r.document.clone()),
                    fax_id,
                    ..Detail::default()
                }
            }),
        };
        Chosen {
            rows,
            fax,
            line,
            open,
        }
    }
}

/// What the selected row of a pane holds, for the keys that act on it.
struct Chosen<'a> {
    /// Rows in the pane.
    rows: usize,
    /// The fax `c` and `r` act on: (account, fax).
    fax: Option<(String, String)>,
    /// The line of a selected channel, for `p`.
    line: Option<&'a Line>,
    /// The fax `enter` opens: any fax of the row.
    open: Option<Detail>,
}

/// Every account's faxes waiting to retry with their account, soonest
/// first.
fn retries(s: &Status) -> Vec<(&str, &Retry)> {
    let mut all: Vec<(&str, &Retry)> = s
        .accounts
        .iter()
        .flat_map(|a| a.waiting_retry.iter().map(|r| (a.account_id.as_str(), r)))
        .collect();
    all.sort_by_key(|(_, r)| r.next_attempt);
    all
}

/// The job list: the recent faxes the filter picks, newest first.
fn jobs<'a>(s: &'a Status, filter: &str) -> Vec<&'a Recent> {
    s.recent.iter().filter(|r| r.matches(filter)).collect()
}

/// "12s", "4m", "3h", "2d": how long ago.
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A Gregorian time as UTC, e.g. `2026-11-27 15:58:03`.
fn clock(gregorian: i64, with_date: bool) -> String {
    let unix = gregorian - crate::model::GREGORIAN_UNIX_OFFSET;
    match chrono::DateTime::from_timestamp(unix, 0) {
        Some(t) if with_date => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        Some(t) => t.format("%H:%M:%S").to_string(),
        None => "-".into(),
    }
}

/// "in 4m 05s", "in 12s", or "due" once the time has come.
pub fn countdown(seconds: i64) -> String {
    match seconds {
        s if s <= 0 => "due".into(),
        s if s < 60 => format!("in {s}s"),
        s if s < 3600 => format!("in {}m {:02}s", s / 60, s % 60),
        s => format!("in {}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn pane_block(title: &str, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::default().add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), style))
}

fn highlight(focused: bool, selected: usize, i: usize) -> Style {
    if focused && selected == i {
        Style::default().add_modifier(Modifier::REVERSED)
    } else {
        Style::default()
    }
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, snapshot: Option<&Status>, ui: &UiState) {
    let area = frame.area();
    let empty = Status::default();
    let s = snapshot.unwrap_or(&empty);
    let [title, body, totals, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);

    let state = match &ui.connection {
        Connection::Connecting => "connecting".to_owned(),
        Connection::Live => "live".to_owned(),
        Connection::Reconnecting(why) => format!("reconnecting: {why}"),
    };
    frame.render_widget(
        Paragraph::new(TextLine::from(vec![
            Span::styled(" Faxbox ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("| {state}")),
        ])),
        title,
    );
    match &ui.detail {
        Some(detail) => draw_detail(frame, s, detail, body),
        None => draw_panes(frame, s, ui, body),
    }
    let t = &s.totals;
    // The box-wide intake counts are the admin's; an account sees zeros.
    let intake = s.intake.clone().unwrap_or_default();
    frame.render_widget(
        Paragraph::new(format!(
            " today: sent {} ({} p), failed {}, received {} ({} p); in: API {}, email {}, print {}",
            t.completed_today,
            t.pages_sent_today,
            t.failed_today,
            t.received_today,
            t.pages_received_today,
            intake.api,
            intake.smtp,
            intake.ipp,
        )),
        totals,
    );
    let bottom = match (&ui.confirm, &ui.message) {
        _ if ui.filtering => format!(
            " / filter: {}\u{2588}   enter keeps it, esc clears it",
            ui.filter
        ),
        (Some(action), _) => action.question(),
        (None, Some(message)) => format!(" {message}"),
        (None, None) if ui.detail.is_some() => {
            " esc back  c cancel  r retry now  ? help  q quit".into()
        }
        (None, None) => HINTS.into(),
    };
    frame.render_widget(Paragraph::new(bottom), keys);
    if ui.help {
        draw_help(frame, area);
    }
}

/// The panes: lines and queues on top; the retries, the job list and the
/// log share the rest (on a short screen the log takes the job list's
/// place while it is in focus).
fn draw_panes(frame: &mut Frame, s: &Status, ui: &UiState, area: Rect) {
    let channels: u16 = s
        .lines
        .iter()
        .map(|l| l.channels.len() as u16 + u16::from(l.state != "up"))
        .sum();
    let [lines, queues, rest] = Layout::vertical([
        Constraint::Length(channels.max(1) + 3),
        Constraint::Length(s.accounts.len().max(1) as u16 + 3),
        Constraint::Fill(1),
    ])
    .areas(area);
    draw_lines(frame, s, ui, lines);
    draw_queues(frame, s, ui, queues);
    let waiting = retries(s).len().max(1) as u16 + 3;
    let tall = rest.height >= 24;
    let [retries_area, jobs_area, log_area] = Layout::vertical([
        Constraint::Length(waiting.min(rest.height / 2).max(3)),
        Constraint::Fill(1),
        Constraint::Length(if tall { 8 } else { 0 }),
    ])
    .areas(rest);
    draw_retries(frame, s, ui, retries_area);
    if tall {
        draw_jobs(frame, s, ui, jobs_area);
        draw_log(frame, ui, log_area);
    } else if ui.pane == Pane::Log {
        draw_log(frame, ui, jobs_area);
    } else {
        draw_jobs(frame, s, ui, jobs_area);
    }
}

fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}

fn draw_jobs(frame: &mut Frame, s: &Status, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Jobs;
    let shown = jobs(s, &ui.filter);
    // Keep the selected row on the screen.
    let room = area.height.saturating_sub(3) as usize;
    let skip = (ui.selected + 1).saturating_sub(room.max(1));
    let rows = shown.iter().enumerate().skip(skip).map(|(i, r)| {
        Row::new(vec![
            age(s.generated + ui.since_snapshot - r.created),
            if r.folder == "inbox" { "in" } else { "out" }.to_owned(),
            id_for(r.fax_id.as_str(), area.width),
            r.number.clone(),
            r.status.clone(),
            r.pages.map(|p| p.to_string()).unwrap_or_default(),
            r.last_result.clone().unwrap_or_default(),
        ])
        .style(highlight(focused, ui.selected, i))
    });
    let title = if ui.filter.is_empty() {
        format!("Faxes ({})", shown.len())
    } else {
        format!(
            "Faxes matching \"{}\" ({} of {})",
            ui.filter,
            shown.len(),
            s.recent.len()
        )
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(3),
            Constraint::Length(if area.width >= WHOLE_IDS_FROM { 32 } else { 8 }),
            Constraint::Length(number_width(13, shown.iter().map(|r| r.number.as_str()))),
            Constraint::Length(10),
            Constraint::Length(3),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["age", "dir", "fax", "number", "status", "pp", "last result"]).style(dim()))
    .block(pane_block(&title, focused));
    frame.render_widget(table, area);
}

fn draw_log(frame: &mut Frame, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Log;
    let room = area.height.saturating_sub(2) as usize;
    let start = ui.log.len().saturating_sub(room);
    let text: Vec<TextLine> = ui.log[start..]
        .iter()
        .map(|l| TextLine::raw(format!(" {l}")))
        .collect();
    frame.render_widget(Paragraph::new(text).block(pane_block("Log", focused)), area);
}

/// One fax: what it is, and each attempt (or the reception).
fn draw_detail(frame: &mut Frame, s: &Status, detail: &Detail, area: Rect) {
    let block = pane_block(&format!("Fax {}", detail.fax_id), true);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(fax) = &detail.fax else {
        let text = match &detail.error {
            Some(e) => format!(" cannot read the fax: {e}"),
            None => " reading the fax...".to_owned(),
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    };
    let inbound = fax.folder == "inbox";
    let text = detail_summary(s, detail, fax);
    let [head, attempts] = Layout::vertical([
        Constraint::Length(text.len() as u16 + 1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }), head);
    if inbound {
        return;
    }
    frame.render_widget(attempts_table(fax), attempts);
}

/// The lines above a fax's attempts: where it went (or came from), its
/// document and batch, its times, why it failed, and a reception's result.
fn detail_summary(s: &Status, detail: &Detail, fax: &FaxDetail) -> Vec<TextLine<'static>> {
    let inbound = fax.folder == "inbox";
    let mut text = Vec::new();
    let status = fax.status.clone().unwrap_or_else(|| "received".into());
    let pages = fax.pages.map_or("-".to_owned(), |p| p.to_string());
    if inbound {
        text.push(TextLine::raw(format!(
            " received from {} on {}, {pages} pages",
            fax.from_number.as_deref().unwrap_or("an unknown number"),
            fax.to_number
        )));
    } else {
        text.push(TextLine::raw(format!(
            " {status}, to {}, attempt {} of {}, {pages} pages",
            fax.to_number,
            fax.attempts,
            fax.retries.max(1)
        )));
    }
    if let Some(doc) = &detail.document {
        text.push(TextLine::raw(format!(" document: {doc}")));
    }
    if let Some(batch) = &detail.batch {
        text.push(TextLine::raw(format!(" {batch}")));
    }
    text.push(TextLine::raw(format!(
        " created {} UTC, last change {} ago",
        clock(fax.created, true),
        age(s.generated - fax.modified)
    )));
    if let Some(e) = &fax.error {
        text.push(TextLine::raw(format!(" why: {e}")));
    }
    if let Some(rx) = &fax.rx_result {
        text.push(TextLine::raw(format!(
            " {} pages at {} bit/s{}, from {:?}, {:.0}s: {} {}",
            rx.pages,
            rx.bit_rate,
            if rx.ecm { ", ECM" } else { "" },
            rx.remote_station_id.trim(),
            rx.duration_s,
            rx.result_code,
            rx.result_text
        )));
    }
    text
}

/// An outgoing fax's attempts, one row each.
fn attempts_table(fax: &FaxDetail) -> Table<'static> {
    let rows = fax.history.iter().map(|a| {
        let result = match (&a.result_code, &a.result_text, &a.hangup_cause) {
            (Some(code), Some(text), _) => format!("{code} {text}"),
            (None, Some(text), _) => text.clone(),
            (_, None, Some(cause)) => cause.clone(),
            _ if a.ended.is_none() => "on the line".to_owned(),
            _ => String::new(),
        };
        Row::new(vec![
            a.attempt.to_string(),
            a.line.clone(),
            clock(a.started, false),
            a.ended
                .map(|e| format!("{}s", e - a.started))
                .unwrap_or_default(),
            a.pages_sent.to_string(),
            a.fax_speed.map(|r| r.to_string()).unwrap_or_default(),
            match a.fax_error_correction {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            }
            .to_owned(),
            a.fax_receiver_id.as_deref().unwrap_or("").trim().to_owned(),
            result,
        ])
    });
    Table::new(
        rows,
        [
            Constraint::Length(2),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(3),
            Constraint::Length(12),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            "#",
            "line",
            "started",
            "took",
            "pp",
            "rate",
            "ECM",
            "remote CSI",
            "result",
        ])
        .style(dim()),
    )
}

/// The keys, over the middle of the screen.
fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 64.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let text: Vec<TextLine> = KEYS
        .iter()
        .map(|(key, what)| TextLine::raw(format!(" {key:<16}{what}")))
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(text).block(pane_block("Keys", true)), popup);
}

fn draw_lines(frame: &mut Frame, s: &Status, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Lines;
    let mut rows = Vec::new();
    let mut i = 0;
    for line in &s.lines {
        if line.state != "up" {
            let why = line.reason.as_deref().unwrap_or("");
            rows.push(Row::new(vec![
                line.name.clone(),
                String::new(),
                format!("{}: {why}", line.state.to_uppercase()),
            ]));
        }
        for c in &line.channels {
            rows.push(
                Row::new(vec![
                    line.name.clone(),
                    c.channel.to_string(),
                    c.text.clone(),
                ])
                .style(highlight(focused, ui.selected, i)),
            );
            i += 1;
        }
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(3),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["line", "ch", "doing"]).style(Style::default().add_modifier(Modifier::DIM)))
    .block(pane_block("Lines", focused));
    frame.render_widget(table, area);
}

fn draw_queues(frame: &mut Frame, s: &Status, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Queues;
    let rows = s.accounts.iter().enumerate().map(|(i, a)| {
        Row::new(vec![
            a.account_name.clone(),
            a.pending.to_string(),
            a.active.to_string(),
            a.waiting_retry_total.to_string(),
            a.completed_today.to_string(),
            a.failed_today.to_string(),
        ])
        .style(highlight(focused, ui.selected, i))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(11),
        ],
    )
    .header(
        Row::new([
            "account",
            "pending",
            "active",
            "retrying",
            "sent tdy",
            "failed tdy",
        ])
        .style(Style::default().add_modifier(Modifier::DIM)),
    )
    .block(pane_block("Queues", focused));
    frame.render_widget(table, area);
}

fn draw_retries(frame: &mut Frame, s: &Status, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Retries;
    let rows = retries(s).into_iter().enumerate().map(|(i, (_, r))| {
        Row::new(vec![
            id_for(r.fax_id.as_str(), area.width),
            r.to_number.clone(),
            format!("{}/{}", r.attempts, r.retries),
            countdown(r.next_attempt - s.generated - ui.since_snapshot),
            r.last_cause.clone().unwrap_or_default(),
        ])
        .style(highlight(focused, ui.selected, i))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(if area.width >= WHOLE_IDS_FROM { 32 } else { 8 }),
            Constraint::Length(number_width(
                14,
                retries(s).into_iter().map(|(_, r)| r.to_number.as_str()),
            )),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new(["fax", "number", "tries", "next", "last cause"])
            .style(Style::default().add_modifier(Modifier::DIM)),
    )
    .block(pane_block("Queued for later", focused));
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_read_like_a_clock() {
        assert_eq!(countdown(-5), "due");
        assert_eq!(countdown(0), "due");
        assert_eq!(countdown(42), "in 42s");
        assert_eq!(countdown(245), "in 4m 05s");
        assert_eq!(countdown(7260), "in 2h 01m");
    }
}
