//! `faxbox selftest`: proves the fax engine works on this machine.
//!
//! Makes a 3-page test document in memory, sends it over a private loopback
//! line with each modem and with and without ECM, checks that the far end
//! received every page pixel for pixel, and prints a table. Nothing outside
//! a temporary folder is touched.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::LoopbackConfig;
use crate::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};

use super::{
    AttemptResult, ErrorCorrection, FaxSettings, Line, LoopbackLine, Modem, Modems, OutgoingFax,
};

/// One row of the table.
#[derive(Debug, Clone)]
pub struct SelftestRow {
    pub name: &'static str,
    pub attempt: AttemptResult,
    /// Every received page equals the page sent.
    pub identical: bool,
}

impl SelftestRow {
    pub fn passed(&self) -> bool {
        self.attempt.succeeded() && self.identical
    }

    /// Audio seconds per wall-clock second.
    pub fn real_time_factor(&self) -> f64 {
        self.attempt.duration.as_secs_f64() / self.attempt.wall_time.as_secs_f64().max(1e-9)
    }
}

/// `pages` deterministic test pages, 1728 x 2200 at 204 x 196 dpi (fine),
/// with a border, a page-numbered block pattern, diagonals and texture.
pub fn test_pages(pages: u32) -> Vec<BitPage> {
    (1..=pages).map(test_page).collect()
}

fn test_page(number: u32) -> BitPage {
    let (w, h) = (1728u32, 2200u32);
    let mut page = BitPage::new(w, h, 204.0, 196.0);
    let mut fill = |x0: u32, y0: u32, x1: u32, y1: u32| {
        for y in y0..y1.min(h) {
            for x in x0..x1.min(w) {
                page.set(x, y, true);
            }
        }
    };
    // A border 8 px in from the edges.
    fill(8, 8, w - 8, 14);
    fill(8, h - 14, w - 8, h - 8);
    fill(8, 8, 14, h - 8);
    fill(w - 14, 8, w - 8, h - 8);
    // The page number as that many thick bars.
    for i in 0..number {
        fill(100 + i * 60, 100, 140 + i * 60, 300);
    }
    // Text-like texture: rows of short "words" from a linear congruential
    // generator seeded by the page number.
    let mut seed = number.wrapping_mul(2_654_435_761).wrapping_add(12345);
    let mut next = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 16) & 0x7fff
    };
    let mut y = 400;
    while y + 24 < h - 400 {
        let mut x = 100;
        while x < w - 200 {
            let word = 20 + next() % 120;
            fill(x, y, x + word, y + 18 + next() % 6);
            x += word + 15 + next() % 20;
        }
        y += 40;
    }
    // Two diagonals near the bottom: many short runs on every row.
    for i in 0..300u32 {
        for t in 0..3 {
            page.set(200 + i * 4 + t, h - 350 + i, true);
            page.set(1500 - i * 4 + t, h - 350 + i, true);
        }
    }
    page
}

/// Runs the selftest in `scratch` (a folder it may fill) and returns the rows.
pub fn run_in(scratch: &Path) -> anyhow::Result<Vec<SelftestRow>> {
    let pages = test_pages(3);
    let document = scratch.join("selftest.tiff");
    std::fs::write(&document, encode_fax_tiff(&pages)?)?;
    let line = LoopbackLine::new(
        "selftest",
        LoopbackConfig {
            channels: 4,
            realtime: false,
            numbers: BTreeMap::new(),
        },
        scratch,
    );
    let cases: [(&'static str, Modems, ErrorCorrection); 4] = [
        (
            "V.17 with ECM",
            Modems::only(Modem::V17),
            ErrorCorrection::Enabled,
        ),
        (
            "V.17 without ECM",
            Modems::only(Modem::V17),
            ErrorCorrection::Disabled,
        ),
        (
            "V.29 with ECM",
            Modems::only(Modem::V29),
            ErrorCorrection::Enabled,
        ),
        (
            "V.27ter without ECM",
            Modems::only(Modem::V27ter),
            ErrorCorrection::Disabled,
        ),
    ];
    let mut rows = Vec::new();
    for (i, (name, modems, ecm)) in cases.into_iter().enumerate() {
        let call_id = format!("selftest-{}", i + 1);
        let call = line.send(
            OutgoingFax {
                call_id: call_id.clone(),
                to_number: "5550100".into(),
                from_number: "5550199".into(),
                document: document.clone(),
                settings: FaxSettings {
                    ident: "5550199".into(),
                    error_correction: ecm,
                    modems,
                    ..FaxSettings::default()
                },
            },
            Box::new(|_| {}),
        )?;
        let attempt = call.wait();
        let identical = received_pages(&line.received_file(&call_id)).is_some_and(|r| r == pages);
        rows.push(SelftestRow {
            name,
            attempt,
            identical,
        });
    }
    Ok(rows)
}

fn received_pages(path: &PathBuf) -> Option<Vec<BitPage>> {
    decode_fax_tiff(&std::fs::read(path).ok()?).ok()
}

/// The table `faxbox selftest` prints.
pub fn render(rows: &[SelftestRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>6} {:>4} {:>8} {:>8} {:>8} {:>9}  result",
        "test", "pages", "bps", "ECM", "audio s", "wall s", "x real", "identical"
    );
    for row in rows {
        let fax = row.attempt.fax.as_ref();
        let result = match &row.attempt.outcome {
            Ok(()) if row.identical => "ok".to_owned(),
            Ok(()) => "FAILED: pages differ".to_owned(),
            Err(e) => format!("FAILED: {e}"),
        };
        let _ = writeln!(
            out,
            "{:<20} {:>5} {:>6} {:>4} {:>8.1} {:>8.3} {:>8.0} {:>9}  {}",
            row.name,
            fax.map_or(0, |f| f.pages),
            fax.map_or(0, |f| f.bit_rate),
            if fax.is_some_and(|f| f.ecm) {
                "yes"
            } else {
                "no"
            },
            row.attempt.duration.as_secs_f64(),
            row.attempt.wall_time.as_secs_f64(),
            row.real_time_factor(),
            if row.identical { "yes" } else { "no" },
            result
        );
    }
    out
}

/// The `faxbox selftest` command: prints the table; an error (non-zero
/// exit) when any row failed.
pub fn run() -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!(
        "faxbox-selftest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_nanos()
    ));
    std::fs::create_dir_all(&scratch)?;
    let rows = run_in(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let rows = rows?;
    print!("{}", render(&rows));
    let failed = rows.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        anyhow::bail!("selftest: {failed} of {} calls failed", rows.len());
    }
    println!("selftest: all {} calls passed", rows.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::{LineError, T30Code};

    #[test]
    fn test_pages_are_distinct_fax_pages() {
        let pages = test_pages(3);
        assert_eq!(pages.len(), 3);
        for p in &pages {
            assert_eq!((p.width, p.height), (1728, 2200));
            assert!(p.black_pixels() > 10_000);
        }
        assert_ne!(pages[0], pages[1]);
        assert_eq!(test_pages(3), pages, "deterministic");
    }

    #[test]
    fn a_failed_or_damaged_call_fails_the_selftest() {
        let attempt = |outcome| AttemptResult {
            call_id: "c".into(),
            line: "selftest".into(),
            to_number: "1".into(),
            answered: true,
            outcome,
            fax: None,
            document_pages: 3,
            duration: Duration::from_secs(30),
            wall_time: Duration::from_millis(30),
            hangup_cause: None,
        };
        let rows = [
            SelftestRow {
                name: "good",
                attempt: attempt(Ok(())),
                identical: true,
            },
            SelftestRow {
                name: "damaged",
                attempt: attempt(Ok(())),
                identical: false,
            },
            SelftestRow {
                name: "failed",
                attempt: attempt(Err(LineError::Fax(T30Code::TxPhaseBDead))),
                identical: false,
            },
        ];
        assert!(rows[0].passed() && !rows[1].passed() && !rows[2].passed());
        assert!((rows[0].real_time_factor() - 1000.0).abs() < 1e-6);
        let table = render(&rows);
        assert!(table.lines().nth(1).unwrap().ends_with(" ok"), "{table}");
        assert!(table.contains("FAILED: pages differ"), "{table}");
        assert!(
            table.contains(
                "FAILED: the fax failed: Received no response to DCS, training or TCF (20)"
            ),
            "{table}"
        );
    }
}
