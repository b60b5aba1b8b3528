//! One running box per data dir: `faxbox serve` holds an exclusive `flock`
//! on a file in the data dir for as long as it runs, taken before crash
//! recovery. A second `serve` on the same folder would otherwise "recover"
//! the first one's live calls and send those faxes again (issue 19).
//!
//! The lock is the kernel's, so it ends with the process however it ends
//! (kill -9 included); the PID written into the file is only there to tell
//! the second box whom to look for.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file inside the data dir.
pub const OWNER_FILE: &str = "faxbox.lock";

/// Why the data dir could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(
        "another `faxbox serve` (PID {pid}) is running on the data dir {dir}; stop it first, \
         or give this one its own folder with --data-dir"
    )]
    Taken { dir: PathBuf, pid: String },
    #[error("cannot lock the data dir {dir} ({file}): {source}")]
    Io {
        dir: PathBuf,
        file: &'static str,
        source: std::io::Error,
    },
}

/// Held while the box runs; dropping it (or the process ending) frees the
/// data dir.
#[derive(Debug)]
pub struct DataDirOwner {
    _file: File,
}

impl DataDirOwner {
    /// Takes the data dir (creating the folder when it is new), or says
    /// which process holds it.
    pub fn claim(dir: &Path) -> Result<DataDirOwner, OwnerError> {
        let io = |source| OwnerError::Io {
            dir: dir.to_owned(),
            file: OWNER_FILE,
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(OWNER_FILE))
            .map_err(io)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(OwnerError::Taken {
                    dir: dir.to_owned(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_owned()
                    },
                });
            }
            return Err(io(e.into()));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirOwner { _file: file })
    }

    /// The PID of the box running on `dir` now, if one is; looks without
    /// taking or changing anything (`faxbox restore` refuses a live box).
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(OWNER_FILE)).ok()?;
        match flock(&file, FlockOperation::NonBlockingLockShared) {
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Some(pid.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .or_else(|| Some("unknown".into()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirOwner::claim(dir.path()).unwrap();
        let err = DataDirOwner::claim(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&std::process::id().to_string()),
            "names the holder: {err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert_eq!(
            DataDirOwner::holder(dir.path()),
            Some(std::process::id().to_string())
        );
        drop(first);
        assert_eq!(DataDirOwner::holder(dir.path()), None);
        DataDirOwner::claim(dir.path()).unwrap();
    }
}
