//! Loopback T.30 speed: how many times faster than real time one fax call
//! runs on one core (docs/architecture.md, "Numbers to beat": at least 500x per
//! channel). Run with `cargo bench --bench loopback` (release profile).
//!
//! Each round sends the 3-page selftest document over a clean loopback
//! line, both ends real SpanDSP, and divides the call's audio time by the
//! wall-clock time. It then runs one call per core at once, to show the
//! rate holds per channel.

#[path = "common/summary.rs"]
mod summary;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use faxbox::config::LoopbackConfig;
use faxbox::documents::faxtiff::encode_fax_tiff;
use faxbox::lines::selftest::test_pages;
use faxbox::lines::{ErrorCorrection, FaxSettings, Line, LoopbackLine, Modem, Modems, OutgoingFax};

const TARGET: f64 = 500.0;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, in a debug build: then one quick round, as a check
    // that the benchmark still works, and no verdict.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds = if measuring { 9 } else { 1 };
    let dir = std::env::temp_dir().join(format!("faxbox-bench-loopback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let document = dir.join("three-pages.tiff");
    std::fs::write(
        &document,
        encode_fax_tiff(&test_pages(3)).expect("test pages encode"),
    )
    .expect("the document is written");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let line = LoopbackLine::new(
        "bench",
        LoopbackConfig {
            channels: cores.max(1),
            realtime: false,
            numbers: BTreeMap::new(),
        },
        &dir,
    );
    let worst = one_call_at_a_time(&line, &document, rounds);
    one_call_per_core(&line, &document, cores);
    if measuring {
        let verdict = if worst >= TARGET {
            "ok"
        } else {
            "BELOW TARGET"
        };
        println!("slowest case: {worst:.0}x real time (target {TARGET:.0}x): {verdict}");
        summary::record(
            "loopback",
            "T.30 call, slowest case",
            &format!("{worst:.0}x real time"),
            &format!("target {TARGET:.0}x"),
            &format!("{:.2}x", worst / TARGET),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fax `document` to 5550100, with these modems and error correction.
fn fax(document: &Path, id: String, modems: Modems, ecm: ErrorCorrection) -> OutgoingFax {
    OutgoingFax {
        call_id: id,
        to_number: "5550100".into(),
        from_number: "5550199".into(),
        document: document.to_owned(),
        settings: FaxSettings {
            ident: "5550199".into(),
            error_correction: ecm,
            modems,
            ..FaxSettings::default()
        },
    }
}

/// Each modem case as the median of `rounds` calls, one at a time; the
/// slowest case's factor over real time.
fn one_call_at_a_time(line: &LoopbackLine, document: &Path, rounds: usize) -> f64 {
    println!("loopback T.30, 3 pages, one call at a time (median of {rounds} rounds):");
    println!(
        "{:<22} {:>8} {:>9} {:>10}",
        "case", "audio s", "wall ms", "x realtime"
    );
    let cases = [
        (
            "V.17 14400 with ECM",
            Modems::only(Modem::V17),
            ErrorCorrection::Enabled,
        ),
        (
            "V.17 14400 no ECM",
            Modems::only(Modem::V17),
            ErrorCorrection::Disabled,
        ),
        (
            "V.29 9600 with ECM",
            Modems::only(Modem::V29),
            ErrorCorrection::Enabled,
        ),
        (
            "V.27ter 4800 no ECM",
            Modems::only(Modem::V27ter),
            ErrorCorrection::Disabled,
        ),
    ];
    let mut worst = f64::INFINITY;
    for (n, (name, modems, ecm)) in cases.into_iter().enumerate() {
        let mut rounds: Vec<(Duration, Duration)> = (0..rounds)
            .map(|r| {
                let call = line
                    .send(
                        fax(document, format!("c{n}-{r}"), modems, ecm),
                        Box::new(|_| {}),
                    )
                    .expect("the call is placed");
                let result = call.wait();
                assert!(result.succeeded(), "{name}: {:?}", result.outcome);
                (result.duration, result.wall_time)
            })
            .collect();
        rounds.sort_by_key(|(_, wall)| *wall);
        let (audio, wall) = rounds[rounds.len() / 2];
        let factor = audio.as_secs_f64() / wall.as_secs_f64();
        worst = worst.min(factor);
        println!(
            "{name:<22} {:>8.1} {:>9.1} {:>10.0}",
            audio.as_secs_f64(),
            wall.as_secs_f64() * 1000.0,
            factor
        );
    }
    worst
}

/// One call per core at once, to show the rate holds per channel.
fn one_call_per_core(line: &LoopbackLine, document: &Path, cores: u32) {
    let started = Instant::now();
    let calls: Vec<_> = (0..cores)
        .map(|i| {
            line.send(
                fax(
                    document,
                    format!("par-{i}"),
                    Modems::ALL,
                    ErrorCorrection::Enabled,
                ),
                Box::new(|_| {}),
            )
            .expect("the call is placed")
        })
        .collect();
    let audio: f64 = calls
        .into_iter()
        .map(|c| {
            let r = c.wait();
            assert!(r.succeeded(), "{:?}", r.outcome);
            r.duration.as_secs_f64()
        })
        .sum();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{cores} calls at once: {:.0}x real time in total, {:.0}x per call",
        audio / wall,
        audio / wall / f64::from(cores)
    );
}
