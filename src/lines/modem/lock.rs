//! UUCP lock files: the convention by which programs that drive serial
//! devices (HylaFAX, mgetty, minicom, cu) keep off each other's modem.
//!
//! A program about to open `/dev/ttyUSB0` creates `LCK..ttyUSB0` in the
//! lock directory (`/var/lock`), holding its PID as ten ASCII digits and a
//! newline (the HDB UUCP format; an old binary 4-byte PID is read too). A
//! lock whose PID is no longer running is stale and removed. The lock is
//! made atomically: written under a temporary name, then hard-linked to its
//! real name, which fails if another program got there first.
//!
//! It owns the lock files it creates and nothing else; whether a locked
//! modem is "down" is the modem line's decision.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A lock file this process created; removed when dropped.
#[derive(Debug)]
pub struct UucpLock {
    paths: Vec<PathBuf>,
}

/// Why the device could not be locked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("is in use by another program (process {pid} holds {})", path.display())]
    Held { pid: u32, path: PathBuf },
    #[error("cannot create the lock file {}: {why} (give Faxbox write access to {}, or set the line's lock_dir)", path.display(), dir.display())]
    Unwritable {
        path: PathBuf,
        dir: PathBuf,
        why: String,
    },
}

impl UucpLock {
    /// Locks `device` in `dir`: under the device's configured name (as
    /// HylaFAX names `ttyIAX0`), and also under the name of the device it
    /// links to when that differs (as minicom locks `ttyUSB0`), so that a
    /// program using either name sees the lock.
    pub fn acquire(dir: &Path, device: &Path) -> Result<UucpLock, LockError> {
        let mut lock = UucpLock { paths: Vec::new() };
        for name in lock_names(device) {
            let path = dir.join(format!("LCK..{name}"));
            lock.take(dir, &path)?;
            lock.paths.push(path);
        }
        Ok(lock)
    }

    fn take(&self, dir: &Path, path: &Path) -> Result<(), LockError> {
        let me = std::process::id();
        let unwritable = |e: std::io::Error| LockError::Unwritable {
            path: path.to_owned(),
            dir: dir.to_owned(),
            why: e.to_string(),
        };
        let temp = dir.join(format!("LTMP.{me}"));
        let mut file = std::fs::File::create(&temp).map_err(unwritable)?;
        let written = file
            .write_all(format!("{me:>10}\n").as_bytes())
            .and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(unwritable(e));
        }
        // Twice at most: once more after removing a stale lock.
        let mut result = Ok(());
        for _ in 0..2 {
            result = match std::fs::hard_link(&temp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match holder(path) {
                    Some(pid) if pid == me => Ok(()),
                    Some(pid) if is_running(pid) => Err(LockError::Held {
                        pid,
                        path: path.to_owned(),
                    }),
                    stale => {
                        tracing::info!(lock = %path.display(), pid = ?stale, "removing a stale UUCP lock");
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                },
                Err(e) => Err(unwritable(e)),
            };
            break;
        }
        let _ = std::fs::remove_file(&temp);
        result
    }
}

impl Drop for UucpLock {
    fn drop(&mut self) {
        let me = std::process::id();
        for path in &self.paths {
            // Only our own: never remove a lock someone else took since.
            if holder(path) == Some(me) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The names a lock for `device` goes by: its own file name, and the file
/// name of what it links to, if different (not for ptys, whose numbers say
/// nothing to other programs).
fn lock_names(device: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(name) = device.file_name() {
        names.push(name.to_string_lossy().into_owned());
    }
    if let Ok(real) = std::fs::canonicalize(device)
        && !real.starts_with("/dev/pts")
        && let Some(name) = real.file_name()
    {
        let name = name.to_string_lossy().into_owned();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The PID in a lock file: ten ASCII digits (HDB UUCP), or a 4-byte
/// binary PID (older UUCP). `None` for an empty or unreadable file.
fn holder(path: &Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && let Ok(pid) = text.trim().parse::<u32>()
    {
        return Some(pid);
    }
    let binary: [u8; 4] = bytes.as_slice().try_into().ok()?;
    Some(u32::from_ne_bytes(binary))
}

/// Whether a process with this PID exists (Linux: its /proc entry).
fn is_running(pid: u32) -> bool {
    pid > 0 && Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_created_honoured_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("ttyFAX0");
        std::fs::write(&device, "").unwrap();
        let path = dir.path().join("LCK..ttyFAX0");
        {
            let _lock = UucpLock::acquire(dir.path(), &device).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text, format!("{:>10}\n", std::process::id()));
            // No temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        }
        assert!(!path.exists(), "removed when dropped");

        // Another live program's lock (PID 1 always runs) keeps us off.
        std::fs::write(&path, format!("{:>10}\n", 1)).unwrap();
        let err = UucpLock::acquire(dir.path(), &device).unwrap_err();
        assert_eq!(
            err,
            LockError::Held {
                pid: 1,
                path: path.clone()
            }
        );
        assert!(err.to_string().contains("process 1 holds"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "         1\n");

        // A dead program's lock (and a binary one) is stale: taken over.
        for stale in [
            format!("{:>10}\n", u32::MAX - 1).into_bytes(),
            (u32::MAX - 2).to_ne_bytes().to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&path, &stale).unwrap();
            let lock = UucpLock::acquire(dir.path(), &device).unwrap();
            assert_eq!(holder(&path), Some(std::process::id()));
            drop(lock);
            assert!(!path.exists());
        }
    }

    #[test]
    fn an_unwritable_lock_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let err = UucpLock::acquire(&missing, Path::new("/dev/ttyUSB7")).unwrap_err();
        assert!(
            matches!(&err, LockError::Unwritable { path, .. } if path.ends_with("LCK..ttyUSB7")),
            "{err:?}"
        );
        assert!(err.to_string().contains("lock_dir"), "{err}");
    }
}
