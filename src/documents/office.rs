//! Office documents (DOC, DOCX, ODT, RTF, XLS, XLSX, ODS, PPT, PPTX, ODP) to
//! PDF through LibreOffice headless, the one external process `documents`
//! runs (docs/kazoo.md 7.2-7.3). Each run gets a private temporary
//! directory for the input, the output and a throw-away LibreOffice profile
//! (so runs never fight over a shared profile lock); the directory is
//! removed whatever happens. The process is killed when the time budget
//! runs out or the conversion is cancelled. LibreOffice exits 0 even when it
//! fails (docs/kazoo.md 7.3), so success is judged by the PDF it leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::DocumentError;

/// Where LibreOffice usually lives when it is not on PATH.
const KNOWN_LOCATIONS: &[&str] = &[
    "/usr/lib/libreoffice/program/soffice",
    "/opt/libreoffice/program/soffice",
    "/Applications/LibreOffice.app/Contents/MacOS/soffice",
];

/// Whether office documents can be converted on this box.
pub fn office_available() -> bool {
    find_program(None).is_some()
}

fn find_program(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["soffice", "libreoffice"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    KNOWN_LOCATIONS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Converts an office document to PDF bytes.
pub(crate) fn to_pdf(
    bytes: &[u8],
    name: &str,
    program: Option<&Path>,
    budget: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<u8>, DocumentError> {
    to_pdf_in(&std::env::temp_dir(), bytes, name, program, budget, cancel)
}

/// `to_pdf` with its work directory made under `parent`.
fn to_pdf_in(
    parent: &Path,
    bytes: &[u8],
    name: &str,
    program: Option<&Path>,
    budget: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<u8>, DocumentError> {
    let program = find_program(program)
        .ok_or_else(|| DocumentError::NeedsLibreOffice { name: name.into() })?;
    let failed = |reason: String| DocumentError::OfficeFailed {
        name: name.into(),
        reason,
    };
    let dir = tempfile::Builder::new()
        .prefix("faxbox-office-")
        .tempdir_in(parent)
        .map_err(|e| failed(format!("no temporary directory: {e}")))?;
    // LibreOffice picks its import filter partly by extension; keep the
    // sender's (it is one of the office extensions, `detect` made sure).
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .filter(|e| e.len() <= 5);
    let input = dir
        .path()
        .join(format!("document.{}", ext.as_deref().unwrap_or("doc")));
    let outdir = dir.path().join("out");
    std::fs::write(&input, bytes).map_err(|e| failed(format!("cannot stage the document: {e}")))?;
    let log = std::fs::File::create(dir.path().join("log")).map_err(|e| failed(e.to_string()))?;
    let mut child = Command::new(&program)
        .arg("--headless")
        .arg("--norestore")
        .arg("--nolockcheck")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            dir.path().join("profile").display()
        ))
        .args(["--convert-to", "pdf", "--outdir"])
        .arg(&outdir)
        .arg(&input)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| failed(e.to_string()))?)
        .stderr(log)
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    let deadline = Instant::now() + budget;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline || cancel.load(Ordering::Relaxed) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DocumentError::TimedOut {
                    name: name.into(),
                    limit: budget,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(e.to_string()));
            }
        }
    };
    match std::fs::read(outdir.join("document.pdf")) {
        Ok(pdf) if !pdf.is_empty() => Ok(pdf),
        _ => {
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            let last = log
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            Err(failed(format!(
                "it produced no PDF (exit {status}; {last})"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_program_that_is_missing_means_no_libreoffice() {
        let cancel = AtomicBool::new(false);
        let missing = Path::new("/nonexistent/soffice");
        let e = to_pdf(
            b"{\\rtf1 x}",
            "a.rtf",
            Some(missing),
            Duration::from_secs(5),
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(e, DocumentError::NeedsLibreOffice { .. }), "{e:?}");
    }

    /// A stand-in "LibreOffice" that writes nothing: the failure is reported
    /// from its output, and its temporary directory is gone afterwards.
    #[test]
    fn a_helper_that_leaves_no_pdf_is_a_failure_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("soffice");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'Error: source file could not be loaded' >&2\nexit 0\n",
        )
        .unwrap();
        let mut perms = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&fake, perms).unwrap();
        let work = tempfile::tempdir().unwrap();
        let cancel = AtomicBool::new(false);
        let e = to_pdf_in(
            work.path(),
            b"PK\x03\x04",
            "report.docx",
            Some(&fake),
            Duration::from_secs(20),
            &cancel,
        )
        .unwrap_err();
        assert!(
            matches!(&e, DocumentError::OfficeFailed { reason, .. } if reason.contains("could not be loaded")),
            "{e:?}"
        );
        assert_eq!(
            std::fs::read_dir(work.path()).unwrap().count(),
            0,
            "the work directory is removed"
        );
    }

    /// A helper that hangs is killed at the budget.
    #[test]
    fn a_hanging_helper_is_killed_at_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("soffice");
        std::fs::write(&fake, "#!/bin/sh\nexec sleep 30\n").unwrap();
        let mut perms = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&fake, perms).unwrap();
        let cancel = AtomicBool::new(false);
        let e = to_pdf(
            b"x",
            "a.odt",
            Some(&fake),
            Duration::from_millis(300),
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(e, DocumentError::TimedOut { .. }), "{e:?}");
    }
}
