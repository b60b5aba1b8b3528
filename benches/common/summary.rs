//! One line per headline figure for `make bench`'s combined table: each
//! benchmark prints its own details as before and, when
//! `FAXBOX_BENCH_SUMMARY` names a file, appends its headline figures there
//! (tab-separated: benchmark, figure, measured, against, ratio). `make
//! bench` prints that file as one table after the last benchmark.

use std::io::Write;

/// Records one figure: what was measured, what it is compared with (a
/// target, or a peer measured in the same run) and the ratio of the two
/// (written so that the reader knows which way is better, e.g. "0.40x of
/// 60 MB", "3.75x gs").
pub fn record(bench: &str, figure: &str, measured: &str, against: &str, ratio: &str) {
    let Some(path) = std::env::var_os("FAXBOX_BENCH_SUMMARY") else {
        return;
    };
    let line = format!("{bench}\t{figure}\t{measured}\t{against}\t{ratio}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "cannot add to the bench summary {}: {e}",
            path.to_string_lossy()
        );
    }
}
