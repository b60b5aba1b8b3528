//! A faxbox's `fax_timezone`: the zone of the time printed in the header
//! line of each page sent. Kazoo passes it to FreeSWITCH; SpanDSP, which
//! draws the header on every line here, reads a POSIX TZ string
//! ("CET-1CEST,M3.5.0,M10.5.0/3"). A time-zone name from the IANA database
//! ("Europe/Berlin") is what people write, so both are accepted, and a name
//! becomes the POSIX string of its UTC offset at the time of the call.

use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{Offset, TimeZone};

use crate::model::UnixTime;

/// The start of the box's local day, for the "today" counts.
pub fn local_day_start() -> UnixTime {
    let today = chrono::Local::now().date_naive();
    today
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
        .map_or_else(
            || crate::model::now() - crate::model::now().rem_euclid(86_400),
            |t| t.timestamp(),
        )
}

/// A POSIX TZ string (POSIX.1-2017, 8.3 TZ) as SpanDSP reads it: a zone
/// name of three or more letters (SpanDSP's parser has no `<...>` quoted
/// form), an offset of hours[:minutes[:seconds]], and
/// optionally a summer-time name, offset and the rule of when it starts
/// and ends.
static POSIX_TZ: LazyLock<regex::Regex> = LazyLock::new(|| {
    let name = r"[A-Za-z]{3,}";
    let offset = r"[+-]?\d{1,2}(?::\d{2}){0,2}";
    let date = r"(?:J\d{1,3}|\d{1,3}|M\d{1,2}\.\d\.\d)(?:/[+-]?\d{1,3}(?::\d{2}){0,2})?";
    regex::Regex::new(&format!(
        "^{name}{offset}(?:{name}(?:{offset})?(?:,{date},{date})?)?$"
    ))
    .expect("a valid pattern")
});

/// Whether `value` is a time zone the fax header can use; the error says
/// what is allowed.
pub fn check(value: &str) -> Result<(), String> {
    if chrono_tz::Tz::from_str(value).is_ok() || POSIX_TZ.is_match(value) {
        return Ok(());
    }
    Err(format!(
        "{value:?} is not a time zone: use a name from the time-zone database such as \
         \"Europe/Berlin\" or \"America/New_York\", or a POSIX TZ string such as \"EST5EDT\""
    ))
}

/// The POSIX TZ string SpanDSP draws the page header with at time `at`: a
/// zone name becomes its offset then (a call lasts minutes, so a change to
/// or from summer time during it does not matter); a POSIX string is kept.
pub fn posix_at(value: &str, at: UnixTime) -> String {
    let Ok(zone) = chrono_tz::Tz::from_str(value) else {
        return value.to_owned();
    };
    let Some(utc) = chrono::DateTime::from_timestamp(at, 0) else {
        return value.to_owned();
    };
    let east = zone
        .offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc();
    // POSIX offsets count west of Greenwich: UTC+1 is "-1".
    let west = -east;
    let sign = if west < 0 { "-" } else { "" };
    let (h, m) = (west.abs() / 3600, west.abs() % 3600 / 60);
    if m == 0 {
        format!("LOC{sign}{h}")
    } else {
        format!("LOC{sign}{h}:{m:02}")
    }
}

/// The zone a faxbox's wall-clock times are read in (a `send_at` without
/// an offset, its sending windows): its `fax_timezone` when that is a zone
/// name; a POSIX string at its standard offset (its summer-time rule is
/// SpanDSP's business, not parsed here: name the zone to get summer time
/// right); without either, the machine's own zone, which on an office
/// appliance is the office's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Named(chrono_tz::Tz),
    Fixed(chrono::FixedOffset),
    Machine,
}

/// A POSIX TZ string's standard offset: its first `hh[:mm]`, counted west.
static POSIX_STD_OFFSET: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[A-Za-z]{3,}([+-]?)(\d{1,2})(?::(\d{2}))?").expect("a valid pattern")
});

impl Zone {
    pub fn of(fax_timezone: Option<&str>) -> Zone {
        let Some(value) = fax_timezone.map(str::trim).filter(|v| !v.is_empty()) else {
            return Zone::Machine;
        };
        if let Ok(tz) = chrono_tz::Tz::from_str(value) {
            return Zone::Named(tz);
        }
        let fixed = POSIX_STD_OFFSET.captures(value).and_then(|c| {
            let west = c[2].parse::<i32>().ok()? * 3600
                + c.get(3)
                    .map_or(Some(0), |m| m.as_str().parse::<i32>().ok())?
                    * 60;
            let west = if &c[1] == "-" { -west } else { west };
            chrono::FixedOffset::west_opt(west)
        });
        fixed.map_or(Zone::Machine, Zone::Fixed)
    }

    /// The wall-clock time at `t`.
    pub fn local(&self, t: UnixTime) -> chrono::NaiveDateTime {
        let utc = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        match self {
            Zone::Named(tz) => utc.with_timezone(tz).naive_local(),
            Zone::Fixed(off) => utc.with_timezone(off).naive_local(),
            Zone::Machine => utc.with_timezone(&chrono::Local).naive_local(),
        }
    }

    /// The instant a wall-clock time names: the earlier of two when the
    /// clocks go back; when they go forward over it, the first instant
    /// after the gap (a fax due at 02:30 on that night goes at 03:00).
    pub fn instant(&self, local: chrono::NaiveDateTime) -> UnixTime {
        fn resolve<Z: TimeZone>(zone: &Z, local: chrono::NaiveDateTime) -> Option<UnixTime> {
            // Summer-time gaps are at most two hours; step out of one.
            (0..=8).find_map(|quarter| {
                let shifted = local + chrono::Duration::minutes(15 * quarter);
                let shifted = if quarter > 0 {
                    // Back to the quarter hour, so 02:30 in a 02:00-03:00
                    // gap becomes 03:00, not 03:15.
                    shifted
                        - chrono::Duration::seconds(i64::from(
                            chrono::Timelike::num_seconds_from_midnight(&shifted) % 900,
                        ))
                } else {
                    shifted
                };
                zone.from_local_datetime(&shifted)
                    .earliest()
                    .map(|t| t.timestamp())
            })
        }
        let found = match self {
            Zone::Named(tz) => resolve(tz, local),
            Zone::Fixed(off) => resolve(off, local),
            Zone::Machine => resolve(&chrono::Local, local),
        };
        found.unwrap_or_else(|| local.and_utc().timestamp())
    }

    /// `t` in RFC 3339 with this zone's offset then, to the second.
    pub fn rfc3339(&self, t: UnixTime) -> String {
        let utc = chrono::DateTime::from_timestamp(t, 0).unwrap_or_default();
        let form = chrono::SecondsFormat::Secs;
        match self {
            Zone::Named(tz) => utc.with_timezone(tz).to_rfc3339_opts(form, true),
            Zone::Fixed(off) => utc.with_timezone(off).to_rfc3339_opts(form, true),
            Zone::Machine => utc
                .with_timezone(&chrono::Local)
                .to_rfc3339_opts(form, true),
        }
    }
}

/// How a send-later time is written, for the error that refuses one.
pub const SEND_AT_FORMS: &str = "a time such as 2026-12-05T18:00:00+01:00 (RFC 3339, with its \
     offset or Z) or 2026-12-05 18:00 (read in the faxbox's time zone)";

/// How far ahead a fax may be sent later: a year, so that a mistyped year
/// does not hold a fax for decades.
pub const SEND_AT_HORIZON_S: i64 = 366 * 86_400;

/// A fax's `send_at` as every intake reads it: `parse_send_at`, and no more
/// than a year after `now`. A time past is returned as it is (it means now).
pub fn read_send_at(text: &str, zone: Zone, now: UnixTime) -> Result<UnixTime, String> {
    let at = parse_send_at(text, zone)?;
    if at > now + SEND_AT_HORIZON_S {
        return Err(format!(
            "{:?} is more than a year ahead; a fax can be sent at most a year later",
            text.trim()
        ));
    }
    Ok(at)
}

/// A fax's `send_at`: RFC 3339 with an offset, or a local date and time
/// (`T` or a space between, seconds optional) read in `zone`.
pub fn parse_send_at(text: &str, zone: Zone) -> Result<UnixTime, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    for form in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(local) = chrono::NaiveDateTime::parse_from_str(text, form) {
            return Ok(zone.instant(local));
        }
    }
    Err(format!("{text:?} is not a time: write {SEND_AT_FORMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_and_posix_strings_pass_and_nonsense_is_named() {
        for good in [
            "Europe/Berlin",
            "America/New_York",
            "UTC",
            "Asia/Kolkata",
            "EST5EDT",
            "CET-1CEST,M3.5.0,M10.5.0/3",
            "IST-5:30",
        ] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in ["Mars/Olympus", "", "Europe/Berlinn", "12", "utc+1 "] {
            let e = check(bad).unwrap_err();
            assert!(e.contains("Europe/Berlin"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_zone_name_becomes_its_offset_at_the_time_of_the_call() {
        // 2026-01-15 12:00 UTC: winter in Berlin (UTC+1), New York UTC-5.
        let winter = 1_768_478_400;
        // 2026-07-15 12:00 UTC: summer, UTC+2 and UTC-4.
        let summer = 1_784_116_800;
        assert_eq!(posix_at("Europe/Berlin", winter), "LOC-1");
        assert_eq!(posix_at("Europe/Berlin", summer), "LOC-2");
        assert_eq!(posix_at("America/New_York", winter), "LOC5");
        assert_eq!(posix_at("America/New_York", summer), "LOC4");
        assert_eq!(posix_at("Asia/Kolkata", winter), "LOC-5:30");
        let rule = "CET-1CEST,M3.5.0,M10.5.0/3";
        assert_eq!(posix_at(rule, winter), rule);
    }

    #[test]
    fn send_at_reads_rfc3339_and_local_times_in_the_faxbox_zone() {
        // 2026-01-15 12:00 UTC.
        let noon = 1_768_478_400;
        let berlin = Zone::of(Some("Europe/Berlin"));
        assert_eq!(parse_send_at("2026-01-15T12:00:00Z", berlin), Ok(noon));
        assert_eq!(
            parse_send_at("2026-01-15T13:00:00+01:00", Zone::Machine),
            Ok(noon)
        );
        assert_eq!(parse_send_at("2026-01-15 13:00", berlin), Ok(noon));
        assert_eq!(parse_send_at(" 2026-01-15T13:00:00 ", berlin), Ok(noon));
        assert_eq!(
            parse_send_at("2026-01-15 08:00", Zone::of(Some("EST5EDT"))),
            Ok(noon + 3600)
        );
        assert_eq!(berlin.rfc3339(noon), "2026-01-15T13:00:00+01:00");
        for bad in [
            "tomorrow",
            "",
            "2026-13-01 10:00",
            "18:00",
            "2026-01-15T25:00:00Z",
            "1768478400",
        ] {
            let e = parse_send_at(bad, berlin).unwrap_err();
            assert!(
                e.contains("RFC 3339") && e.contains("2026-12-05 18:00"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_local_time_in_a_summer_time_gap_is_the_end_of_the_gap() {
        // 2026-03-29: Berlin's clocks go from 02:00 to 03:00 (01:00 UTC).
        let berlin = Zone::of(Some("Europe/Berlin"));
        let three = parse_send_at("2026-03-29 03:00", berlin).unwrap();
        assert_eq!(parse_send_at("2026-03-29 02:30", berlin), Ok(three));
        assert_eq!(berlin.rfc3339(three), "2026-03-29T03:00:00+02:00");
    }
}
