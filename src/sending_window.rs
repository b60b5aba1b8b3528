//! A faxbox's sending windows (issue 22): the hours, in the faxbox's time
//! zone, in which its faxes may ring out. Outside them a fax that falls
//! due (sent later, queued, or a retry) waits for the next opening, so
//! that nobody's fax machine rings at night. Pure: parsing and the next
//! opening; the scheduler holds the faxes, the store records when they go.
//!
//! A window is written `[DAYS ]HH:MM[:SS]-HH:MM[:SS]`: `mon-fri
//! 08:00-18:00`, `sat 09:00-12:00`, `08:00-18:00` (every day),
//! `mon,wed,fri 09:00-17:00`, `weekdays 22:00-06:00` (overnight: it
//! belongs to the day it starts on). `24:00` ends a day. A faxbox with no
//! windows sends at any hour.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::model::UnixTime;
use crate::timezone::Zone;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_SECONDS: u32 = 86_400;

/// One window: the days it opens on and its hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendingWindow {
    /// Bit 0 is Monday, bit 6 Sunday.
    days: u8,
    /// Seconds after midnight; `end` may be 86400 (24:00), and below
    /// `start` for a window that runs past midnight.
    start: u32,
    end: u32,
}

/// How a window is written, for the errors that refuse one.
pub const WINDOW_FORMS: &str = "a window such as \"mon-fri 08:00-18:00\", \"sat 09:00-12:00\" or \
     \"08:00-18:00\" (every day), in the faxbox's time zone";

impl FromStr for SendingWindow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("{text:?} is not a sending window ({why}): write {WINDOW_FORMS}");
        let trimmed = text.trim();
        let (days, hours) = match trimmed.rsplit_once(char::is_whitespace) {
            Some((days, hours)) => (parse_days(days.trim()).map_err(|e| bad(&e))?, hours),
            None => (0x7f, trimmed),
        };
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| bad("the hours are two times with a dash between"))?;
        let start = parse_time(start).map_err(|e| bad(&e))?;
        let end = parse_time(end).map_err(|e| bad(&e))?;
        if start == DAY_SECONDS {
            return Err(bad("a window cannot start at 24:00; write 00:00"));
        }
        if start == end {
            return Err(bad("it opens and closes at the same time"));
        }
        Ok(SendingWindow { days, start, end })
    }
}

impl fmt::Display for SendingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days & (1 << d) != 0)
            .map(|d| DAY_NAMES[d])
            .collect();
        let time = |s: u32| format!("{:02}:{:02}", s / 3600, s % 3600 / 60);
        write!(
            f,
            "{} {}-{}",
            days.join(","),
            time(self.start),
            time(self.end)
        )
    }
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`, `weekdays`, `weekend`, `daily`.
fn parse_days(text: &str) -> Result<u8, String> {
    let day = |name: &str| {
        let name = name.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|d| name.len() >= 3 && d.starts_with(&name[..3]) && is_day_word(&name))
            .ok_or_else(|| format!("{name:?} is not a day: use mon, tue, wed, thu, fri, sat, sun"))
    };
    let mut days = 0u8;
    for part in text.split(',') {
        let part = part.trim().to_ascii_lowercase();
        days |= match part.as_str() {
            "weekdays" => 0x1f,
            "weekend" | "weekends" => 0x60,
            "daily" | "every day" => 0x7f,
            _ => match part.split_once('-') {
                // A range may wrap: fri-mon is Friday to Monday.
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut bits = 0u8;
                    let mut d = a;
                    loop {
                        bits |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                    bits
                }
                None => 1 << day(&part)?,
            },
        };
    }
    Ok(days)
}

/// A day's short or full English name.
fn is_day_word(name: &str) -> bool {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    name.len() == 3 || FULL.contains(&name)
}

/// `HH:MM` or `HH:MM:SS`, up to `24:00`, as seconds after midnight.
fn parse_time(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(':').collect();
    let number = |p: &str, max: u32| {
        p.parse::<u32>()
            .ok()
            .filter(|n| p.len() == 2 && *n <= max)
            .ok_or_else(|| format!("{text:?} is not a time of day such as 08:00"))
    };
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (number(h, 24)?, number(m, 59)?, 0),
        [h, m, s] => (number(h, 24)?, number(m, 59)?, number(s, 59)?),
        _ => return Err(format!("{text:?} is not a time of day such as 08:00")),
    };
    let seconds = h * 3600 + m * 60 + s;
    if seconds > DAY_SECONDS {
        return Err(format!("{text:?} is after 24:00"));
    }
    Ok(seconds)
}

/// Reads a faxbox's windows; the error names the one that is wrong.
pub fn parse_all(windows: &[String]) -> Result<Vec<SendingWindow>, String> {
    windows.iter().map(|w| w.parse()).collect()
}

/// The first moment at or after `at` inside one of `windows` (read in
/// `zone`); `at` itself when there are no windows.
pub fn next_opening(windows: &[SendingWindow], zone: Zone, at: UnixTime) -> UnixTime {
    if windows.is_empty() {
        return at;
    }
    let today = zone.local(at).date();
    // Yesterday's overnight window may still be open; a week on, every
    // window has opened again.
    let mut best: Option<UnixTime> = None;
    for offset in -1..=7 {
        let Some(day) = today.checked_add_signed(chrono::Duration::days(offset)) else {
            continue;
        };
        let weekday = day.weekday().num_days_from_monday();
        for w in windows.iter().filter(|w| w.days & (1 << weekday) != 0) {
            let open = zone.instant(at_seconds(day, w.start));
            let close_day = if w.end > w.start {
                day
            } else {
                day.succ_opt().unwrap_or(day)
            };
            let close = zone.instant(at_seconds(close_day, w.end));
            if at < close && open < close {
                let candidate = open.max(at);
                best = Some(best.map_or(candidate, |b| b.min(candidate)));
            }
        }
    }
    best.unwrap_or(at)
}

fn at_seconds(day: NaiveDate, seconds: u32) -> NaiveDateTime {
    day.and_hms_opt(0, 0, 0).unwrap_or_default() + chrono::Duration::seconds(i64::from(seconds))
}

/// A faxbox's windows; a stored one that no longer reads (it was checked
/// when saved) is logged and left out rather than holding faxes forever.
pub fn of_faxbox(faxbox: &crate::model::Faxbox) -> Vec<SendingWindow> {
    faxbox
        .sending_windows
        .iter()
        .filter_map(|w| match w.parse() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(faxbox = %faxbox.id, "a sending window is ignored: {e}");
                None
            }
        })
        .collect()
}

/// When a fax of `faxbox` due at `at` may ring out: `at`, or the next
/// opening of the faxbox's windows in its time zone. The dispatcher holds
/// a due fax to the same time.
pub fn faxbox_opening(faxbox: &crate::model::Faxbox, at: UnixTime) -> UnixTime {
    next_opening(
        &of_faxbox(faxbox),
        Zone::of(faxbox.fax_timezone.as_deref()),
        at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(list: &[&str]) -> Vec<SendingWindow> {
        parse_all(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// 2026-01-15 is a Thursday; times in UTC.
    fn utc(text: &str) -> UnixTime {
        crate::timezone::parse_send_at(text, Zone::of(Some("UTC"))).unwrap()
    }

    #[test]
    fn windows_are_read_in_their_written_forms() {
        for (text, shown) in [
            ("mon-fri 08:00-18:00", "mon,tue,wed,thu,fri 08:00-18:00"),
            ("08:00-18:00", "mon,tue,wed,thu,fri,sat,sun 08:00-18:00"),
            ("Sat 09:00-12:00", "sat 09:00-12:00"),
            ("mon,wed-fri 09:00:00-17:30", "mon,wed,thu,fri 09:00-17:30"),
            ("fri-mon 22:00-06:00", "mon,fri,sat,sun 22:00-06:00"),
            ("weekdays 00:00-24:00", "mon,tue,wed,thu,fri 00:00-24:00"),
            ("weekend 10:00-11:00", "sat,sun 10:00-11:00"),
            ("Monday 10:00-11:00", "mon 10:00-11:00"),
        ] {
            let w: SendingWindow = text.parse().unwrap();
            assert_eq!(w.to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "mon-fri",
            "mon-fri 8-18",
            "mon-fri 08:00",
            "mon-fri 08:00-08:00",
            "mon-fri 18:00-25:00",
            "mon-fri 08:60-18:00",
            "moonday 08:00-18:00",
            "mo 08:00-18:00",
            "24:00-06:00",
            "mon-fri 8:00-18:00",
        ] {
            let e = bad.parse::<SendingWindow>().unwrap_err();
            assert!(e.contains("mon-fri 08:00-18:00"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_fax_outside_its_windows_waits_for_the_next_opening() {
        let zone = Zone::of(Some("UTC"));
        let office = windows(&["mon-fri 08:00-18:00"]);
        // Thursday noon: open.
        let noon = utc("2026-01-15 12:00");
        assert_eq!(next_opening(&office, zone, noon), noon);
        // Thursday 20:00: Friday 08:00.
        assert_eq!(
            next_opening(&office, zone, utc("2026-01-15 20:00")),
            utc("2026-01-16 08:00")
        );
        // Friday 18:00 sharp is closed: Monday 08:00.
        assert_eq!(
            next_opening(&office, zone, utc("2026-01-16 18:00")),
            utc("2026-01-19 08:00")
        );
        // Saturday morning with a Saturday window too.
        let both = windows(&["mon-fri 08:00-18:00", "sat 09:00-12:00"]);
        assert_eq!(
            next_opening(&both, zone, utc("2026-01-17 07:00")),
            utc("2026-01-17 09:00")
        );
        // An overnight window started yesterday is still open at 03:00.
        let night = windows(&["wed 22:00-06:00"]);
        let three = utc("2026-01-15 03:00");
        assert_eq!(next_opening(&night, zone, three), three);
        assert_eq!(
            next_opening(&night, zone, utc("2026-01-15 06:00")),
            utc("2026-01-21 22:00")
        );
        assert_eq!(next_opening(&[], zone, three), three);
    }

    #[test]
    fn windows_are_read_in_the_faxbox_zone() {
        // 08:00 in New York in January is 13:00 UTC.
        let ny = Zone::of(Some("America/New_York"));
        let office = windows(&["mon-fri 08:00-18:00"]);
        assert_eq!(
            next_opening(&office, ny, utc("2026-01-15 12:00")),
            utc("2026-01-15 13:00")
        );
        // In July (summer time) it is 12:00 UTC.
        assert_eq!(
            next_opening(&office, ny, utc("2026-07-16 11:00")),
            utc("2026-07-16 12:00")
        );
    }
}
