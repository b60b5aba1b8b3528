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

/// What the person at the console chose: the pane in focus and the row
/// selected in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiState {
    pub connection: Connection,
    pub pane: Pane,
    pub selected: usize,
}

impl UiState {
    /// Applies a key (`q` is handled by the caller).
    pub fn key(&mut self, key: KeyCode, snapshot: Option<&Snapshot>) {
        let rows = snapshot.map_or(0, |s| match self.pane {
            Pane::Lines => s.lines.iter().map(|l| l.channels.len()).sum(),
            Pane::Queues => s.accounts.len(),
            Pane::Retries => retries(s).len(),
        });
        match key {
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
    }
}

/// Every account's faxes waiting to retry, soonest first.
fn retries(s: &Snapshot) -> Vec<&Retry> {
    let mut all: Vec<&Retry> = s.accounts.iter().flat_map(|a| &a.waiting_retry).collect();
    all.sort_by_key(|r| r.next_attempt);
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
    frame.render_widget(
        Paragraph::new(" q quit  tab next pane  \u{2191}\u{2193} move"),
        keys,
    );
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
    let rows = retries(s).into_iter().enumerate().map(|(i, r)| {
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
