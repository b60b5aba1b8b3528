//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `faxbox` binary cargo built for these tests.
pub fn faxbox_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faxbox"))
}

/// Runs `faxbox ARGS...` against a data dir, with no config file in reach.
pub fn faxbox(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(faxbox_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .env("NO_COLOR", "1")
        .output()
        .expect("the faxbox binary runs")
}

/// The shared corpus of real-world PDFs, when this checkout has one beside it.
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pdf");
    dir.is_dir().then_some(dir)
}
