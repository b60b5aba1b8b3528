//! Drawing the dashboard: a pure function of the last snapshot and the UI
//! state, laid out to fit 80x24 and to use whatever more there is.

use ratatui::Frame;
use ratatui::crossterm::event::KeyCode;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use super::snapshot::{Retry, Snapshot};

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
}

/// What a key asks the box to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Cancel { account_id: String, fax_id: String },
    RetryNow { account_id: String, fax_id: String },
    Pause { line: String },
    Resume { line: String },
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

/// What the person at the console chose: the pane in focus, the row
/// selected in it, a cancel waiting for its confirmation, and the answer to
/// the last action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiState {
    pub connection: Connection,
    pub pane: Pane,
    pub selected: usize,
    pub confirm: Option<Action>,
    pub message: Option<String>,
}

impl UiState {
    /// Applies a key (`q` is handled by the caller); returns what the box
    /// is to do, if anything.
    pub fn key(&mut self, key: KeyCode, snapshot: Option<&Snapshot>) -> Option<Action> {
        if let Some(action) = self.confirm.take() {
            return match key {
                KeyCode::Char('y') => Some(action),
                _ => {
                    self.message = Some("not cancelled".into());
                    None
                }
            };
        }
        let empty = Snapshot::default();
        let s = snapshot.unwrap_or(&empty);
        let rows = match self.pane {
            Pane::Lines => s.lines.iter().map(|l| l.channels.len()).sum(),
            Pane::Queues => s.accounts.len(),
            Pane::Retries => retries(s).len(),
        };
        // The fax of the selected row, and the line of a selected channel.
        let (fax, line) = match self.pane {
            Pane::Lines => {
                let chosen = s
                    .lines
                    .iter()
                    .flat_map(|l| l.channels.iter().map(move |c| (l, c)))
                    .nth(self.selected);
                match chosen {
                    Some((l, c)) => (c.account_id.clone().zip(c.fax_id.clone()), Some(l)),
                    None => (None, None),
                }
            }
            Pane::Retries => (
                retries(s)
                    .get(self.selected)
                    .map(|(a, r)| (a.to_string(), r.fax_id.clone())),
                None,
            ),
            Pane::Queues => (None, None),
        };
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
                Some((account_id, fax_id)) if self.pane == Pane::Retries => {
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
                self.pane = match self.pane {
                    Pane::Lines => Pane::Queues,
                    Pane::Queues => Pane::Retries,
                    Pane::Retries => Pane::Lines,
                };
                self.selected = 0;
            }
            KeyCode::Down => self.selected = (self.selected + 1).min(rows.saturating_sub(1)),
            KeyCode::Up => self.selected = self.selected.saturating_sub(1),
            _ => {}
        }
        None
    }
}

/// Every account's faxes waiting to retry with their account, soonest
/// first.
fn retries(s: &Snapshot) -> Vec<(&str, &Retry)> {
    let mut all: Vec<(&str, &Retry)> = s
        .accounts
        .iter()
        .flat_map(|a| a.waiting_retry.iter().map(|r| (a.account_id.as_str(), r)))
        .collect();
    all.sort_by_key(|(_, r)| r.next_attempt);
    all
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

fn pane_block(title: &str, focused: bool) -> Block<'_> {
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
pub fn render(frame: &mut Frame, snapshot: Option<&Snapshot>, ui: &UiState) {
    let area = frame.area();
    let empty = Snapshot::default();
    let s = snapshot.unwrap_or(&empty);
    let channels: u16 = s
        .lines
        .iter()
        .map(|l| l.channels.len() as u16 + u16::from(l.state != "up"))
        .sum();
    let [title, lines, queues, retries_area, totals, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(channels.max(1) + 3),
        Constraint::Length(s.accounts.len().max(1) as u16 + 3),
        Constraint::Min(4),
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
    draw_lines(frame, s, ui, lines);
    draw_queues(frame, s, ui, queues);
    draw_retries(frame, s, ui, retries_area);
    let t = &s.totals;
    frame.render_widget(
        Paragraph::new(format!(
            " today: {} sent ({} pages), {} failed, {} received ({} pages); API {} accepted",
            t.completed_today,
            t.pages_sent_today,
            t.failed_today,
            t.received_today,
            t.pages_received_today,
            t.api_accepted
        )),
        totals,
    );
    let bottom = match (&ui.confirm, &ui.message) {
        (Some(action), _) => action.question(),
        (None, Some(message)) => format!(" {message}"),
        (None, None) => {
            " q quit  tab pane  \u{2191}\u{2193} move  c cancel  r retry now  p pause/resume line"
                .into()
        }
    };
    frame.render_widget(Paragraph::new(bottom), keys);
}

fn draw_lines(frame: &mut Frame, s: &Snapshot, ui: &UiState, area: Rect) {
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

fn draw_queues(frame: &mut Frame, s: &Snapshot, ui: &UiState, area: Rect) {
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

fn draw_retries(frame: &mut Frame, s: &Snapshot, ui: &UiState, area: Rect) {
    let focused = ui.pane == Pane::Retries;
    let rows = retries(s).into_iter().enumerate().map(|(i, (_, r))| {
        Row::new(vec![
            r.fax_id.chars().take(8).collect::<String>(),
            r.to_number.clone(),
            format!("{}/{}", r.attempts, r.retries),
            countdown(r.next_attempt - s.generated),
            r.last_cause.clone().unwrap_or_default(),
        ])
        .style(highlight(focused, ui.selected, i))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new(["fax", "number", "tries", "next", "last cause"])
            .style(Style::default().add_modifier(Modifier::DIM)),
    )
    .block(pane_block("Waiting to retry", focused));
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
