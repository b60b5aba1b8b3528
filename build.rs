//! Build facts for `faxbox --version`: the git commit, the target triple and
//! the build date, so that a binary found on an appliance says what it is.
//!
//! A build from a release tarball has no git: the commit is then "unknown"
//! (or `FAXBOX_GIT_COMMIT`, for packagers who know it). `SOURCE_DATE_EPOCH`
//! fixes the date for reproducible builds.

use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=FAXBOX_TARGET={target}");

    let from_git = git_commit();
    let commit = std::env::var("FAXBOX_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| from_git.clone())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FAXBOX_COMMIT={commit}");

    let date = match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(secs) => chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    };
    println!(
        "cargo:rustc-env=FAXBOX_BUILD_DATE={}",
        date.format("%Y-%m-%d")
    );

    // Run again when the checked-out commit moves (not on every source
    // change: the date is the day of the last commit change or clean build).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FAXBOX_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    if from_git.is_some() {
        for path in git_paths() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// The short hash of HEAD, when this source tree is itself a git checkout
/// (a tarball unpacked inside some other repository is not).
fn git_commit() -> Option<String> {
    let top = std::path::PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    if top.canonicalize().ok()? != manifest.canonicalize().ok()? {
        return None;
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// The files whose change means HEAD moved: HEAD itself and the branch it
/// points at (in a worktree these live under the main repository's .git).
fn git_paths() -> Vec<String> {
    let mut paths = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        paths.push(head);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &branch])
    {
        paths.push(file);
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        paths.push(packed);
    }
    // Cargo counts a watched file that does not exist as changed, so a
    // repository without packed-refs would rebuild the crate at every
    // cargo command.
    paths.retain(|p| std::path::Path::new(p).exists());
    paths
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
