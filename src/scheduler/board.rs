//! The line board: what the scheduler's lines are doing, for `/v2/status`.
//! The scheduler owns the lines; the API reads this board, so it holds no
//! line and imports nothing of `lines` (docs/architecture.md, "Parts, and
//! the one direction data flows").
//!
//! The board is read when asked rather than pushed: a line's fault and its
//! device's activity (a modem's phone ringing) change between calls, and a
//! status must show them as they are now.

use std::sync::Arc;

use crate::lines::Line;

/// A handle on the lines the scheduler dispatches to; cheap to clone.
#[derive(Clone, Default)]
pub struct LineBoard {
    lines: Arc<[Arc<dyn Line>]>,
}

/// One line now, as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineNow {
    pub name: String,
    /// Calls it carries at once when all of it is up.
    pub capacity: u32,
    /// Calls it can carry now (fewer while a part of it is down).
    pub usable: u32,
    /// Why it cannot carry calls now, or `None` when it can.
    pub fault: Option<String>,
    /// What its device does that no call record shows: a channel state of
    /// `/v2/status` and the same in words.
    pub activity: Option<(String, String)>,
}

impl LineBoard {
    pub fn new(lines: Vec<Arc<dyn Line>>) -> LineBoard {
        LineBoard {
            lines: lines.into(),
        }
    }

    /// Every line now, in the order of the configuration.
    pub fn now(&self) -> Vec<LineNow> {
        self.lines
            .iter()
            .map(|line| LineNow {
                name: line.name().to_owned(),
                capacity: line.configured_channels(),
                usable: line.channels(),
                fault: line.fault(),
                activity: line.activity().map(|a| (a.state.to_owned(), a.text)),
            })
            .collect()
    }

    /// The lines' names, in the order of the configuration.
    pub fn names(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.name()).collect()
    }
}
