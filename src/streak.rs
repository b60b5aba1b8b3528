//! A run of the same failure in a worker that tries again and again (the
//! scheduler reading its queue, the postman reaching the store or the
//! smarthost): how long to wait before the next try, doubling up to a cap,
//! and when to log, once per interval with how many failures it stands
//! for. A full disk must not turn into thousands of log lines a second
//! (issue 19).

use std::time::{Duration, Instant};

/// How often a repeated failure is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// The wait after the `failures`-th failure in a row (1 for the first):
/// `first`, doubled for each one after it, never more than `max`.
pub fn doubling(first: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    (first * factor).min(max)
}

#[derive(Debug)]
pub struct FailureStreak {
    first: Duration,
    max: Duration,
    failures: u32,
    /// Failures since the last log line.
    unlogged: u32,
    logged_at: Option<Instant>,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Wait this long before trying again.
    pub wait: Duration,
    /// Log now, saying this many failures happened since the last line.
    pub log: Option<u32>,
}

impl FailureStreak {
    /// Waits `first`, doubling with each failure in a row, never more than
    /// `max`.
    pub fn new(first: Duration, max: Duration) -> FailureStreak {
        FailureStreak {
            first,
            max,
            failures: 0,
            unlogged: 0,
            logged_at: None,
        }
    }

    /// One more failure.
    pub fn failed(&mut self) -> Verdict {
        self.failures = self.failures.saturating_add(1);
        self.unlogged = self.unlogged.saturating_add(1);
        let wait = doubling(self.first, self.max, self.failures);
        let log = match self.logged_at {
            Some(at) if at.elapsed() < LOG_EVERY => None,
            _ => {
                self.logged_at = Some(Instant::now());
                Some(std::mem::take(&mut self.unlogged))
            }
        };
        Verdict { wait, log }
    }

    /// A success ends the streak; returns how many failures it had, when
    /// it had any (worth a line saying the trouble is over).
    pub fn succeeded(&mut self) -> Option<u32> {
        let had = std::mem::take(&mut self.failures);
        self.unlogged = 0;
        self.logged_at = None;
        (had > 0).then_some(had)
    }

    pub fn failing(&self) -> bool {
        self.failures > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_only_the_first_failure_of_an_interval_is_logged() {
        let mut s = FailureStreak::new(Duration::from_secs(1), Duration::from_secs(8));
        let verdicts: Vec<Verdict> = (0..6).map(|_| s.failed()).collect();
        let waits: Vec<u64> = verdicts.iter().map(|v| v.wait.as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
        assert_eq!(verdicts[0].log, Some(1));
        assert!(verdicts[1..].iter().all(|v| v.log.is_none()));
        assert_eq!(s.succeeded(), Some(6));
        assert_eq!(s.failed().wait.as_secs(), 1);
        assert_eq!(s.succeeded(), Some(1));
    }
}
