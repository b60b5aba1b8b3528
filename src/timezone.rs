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
}
