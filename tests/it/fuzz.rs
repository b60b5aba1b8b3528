//! The fuzz targets' short run inside the test suite: every seed
//! (fuzz/seeds, and the mails of tests/fixtures/mail) and every input the
//! fuzzer kept (fuzz/corpus, from `make fuzz` runs) goes through its target
//! (src/fuzz.rs) again, so what a long run once reached stays without a
//! crash. `make fuzz TARGET=... SECONDS=...` is the real fuzzing.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("fuzz/seeds").join(target),
        root.join("fuzz/corpus").join(target),
    ];
    if target == "mime" {
        dirs.push(root.join("tests/fixtures/mail"));
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_target_survives_its_seeds_and_corpus() {
    for (target, run) in faxbox::fuzz::TARGETS {
        let files = inputs(target);
        assert!(
            !files.is_empty(),
            "{target} has seeds in fuzz/seeds/{target}"
        );
        let started = Instant::now();
        for file in &files {
            let data = std::fs::read(file).unwrap();
            // Each input on a thread with the stack a listener's thread
            // has, so that recursion too deep for it fails here too.
            let run = *run;
            let outcome = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || run(&data))
                .unwrap()
                .join();
            assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
        }
        println!(
            "fuzz target {target}: {} inputs replayed in {:.1} s",
            files.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
