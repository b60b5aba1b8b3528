//! `faxbox backup` and `faxbox restore` (issue 23): a box's faxes are an
//! office's records, so the box must be copied whole while it runs and
//! brought back whole on another machine.
//!
//! A backup is one tar archive: `backup.json` (what it holds), the database
//! copied with SQLite's online backup API (one consistent snapshot, taken
//! while the box keeps sending and receiving: a reader in WAL mode does not
//! stop writers) and the data dir's own files (the API's secrets, pages of a
//! call being received). The live database files, the lock and the send
//! spool are not copied: the snapshot replaces the first two, and the spool
//! only holds the image of a call in progress, drawn again on the next try.
//!
//! A restore unpacks into a new folder beside the target, checks the
//! database, and only then gives the folder its name, so a failed restore
//! leaves nothing half-made; it never touches a folder that holds anything.
//!
//! The documents in the snapshot are sealed (store/sealing.rs) and the
//! document key is never put in the archive: a backup that leaks shows no
//! fax. The manifest names the key by its fingerprint; a restore given the
//! key file (`--key`) checks it is that key and puts it in the new data dir.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::store::{DATABASE_FILE, DataDirOwner, KEY_FILE, OWNER_FILE, SCHEMA_VERSION};

/// The archive's own description, its first entry.
pub const MANIFEST: &str = "backup.json";

/// This build's archive layout.
const FORMAT: u32 = 1;

/// What a backup holds (`backup.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The Faxbox that made it (`faxbox --version`).
    pub faxbox: String,
    /// The database's schema version; a newer Faxbox migrates it on start.
    pub schema: i64,
    /// When the snapshot was taken (Unix seconds).
    pub created: i64,
    /// The data dir it was taken from (paths inside the database that point
    /// into it are moved to the new one on restore).
    pub data_dir: PathBuf,
    pub faxes: u64,
    pub documents: u64,
    /// The fingerprint of the document key the documents are sealed with
    /// (none in a backup of a box from before sealing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What `backup` wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub manifest: Manifest,
    /// The archive's size in bytes.
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Data-dir entries a backup leaves out: the live database (replaced by the
/// snapshot), the lock of the running box, the spool of calls in progress,
/// and the document key (kept apart, or the archive would carry the key
/// to its own faxes).
fn left_out(name: &str) -> bool {
    let live_db = name
        .strip_prefix(DATABASE_FILE)
        .is_some_and(|rest| rest.is_empty() || ["-wal", "-shm", "-journal"].contains(&rest));
    // The key, and the one being made (`document.key-new`).
    let key = name.starts_with(KEY_FILE);
    live_db || key || name == OWNER_FILE || name == "spool"
}

/// Writes a backup of the box in `data_dir` (running or not) to `archive`.
pub fn backup(data_dir: &Path, archive: &Path) -> anyhow::Result<BackupReport> {
    let started = Instant::now();
    let database = data_dir.join(DATABASE_FILE);
    if !database.is_file() {
        bail!(
            "there is no fax box at {}: point `faxbox backup` at the box with --config FILE or --data-dir DIR",
            data_dir.display()
        );
    }
    let folder = match archive.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    // The snapshot and the archive are made beside the archive's final
    // name, which it gets only when complete: a full disk or a stop leaves
    // no truncated backup under that name.
    let snapshot = tempfile::Builder::new()
        .prefix(".faxbox-backup-")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    let manifest = snapshot_database(&database, snapshot.path(), data_dir)?;

    let partial = tempfile::Builder::new()
        .prefix(".faxbox-backup-")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(partial.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        let json = serde_json::to_vec_pretty(&manifest)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(json.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(manifest.created.max(0) as u64);
        tar.append_data(&mut header, MANIFEST, json.as_slice())?;
        tar.append_path_with_name(snapshot.path(), DATABASE_FILE)
            .context("cannot add the database to the archive")?;
        add_folder(&mut tar, data_dir, Path::new(""))?;
        let mut out = tar.into_inner()?;
        out.flush()?;
    }
    partial.as_file().sync_all()?;
    let bytes = partial.as_file().metadata()?.len();
    // Faxes and the API's secrets: for the owner's eyes only.
    set_private(partial.path())?;
    partial
        .persist(archive)
        .with_context(|| format!("cannot write {}", archive.display()))?;
    Ok(BackupReport {
        manifest,
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Copies the database at `database` into the file `copy` with SQLite's
/// online backup, in one step: one read transaction, so one consistent
/// state however busy the box is.
fn snapshot_database(database: &Path, copy: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", database.display()))?;
    source.busy_timeout(Duration::from_secs(30))?;
    let mut target = Connection::open(copy)?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let copy = Backup::new(&source, &mut target)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // -1: every page in one step, under one read lock, so the copy
            // is one state of the database even while the box writes.
            match copy.step(-1).context("cannot copy the database")? {
                StepResult::Done => break,
                StepResult::More => {}
                // A writer is checkpointing or the file is locked: wait.
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => bail!("the database stayed locked for a minute; try the backup again"),
            }
        }
    }
    // A single file, whatever the live box's journal.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = target.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the copy of the database is damaged ({check}); the backup was not written");
    }
    let count = |table: &str| -> rusqlite::Result<u64> {
        target.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0).map(|n| n as u64)
        })
    };
    Ok(Manifest {
        format: FORMAT,
        faxbox: crate::cli::VERSION.to_owned(),
        schema: target.pragma_query_value(None, "user_version", |r| r.get(0))?,
        created: crate::model::now(),
        data_dir: std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned()),
        faxes: count("faxes")?,
        documents: count("documents")?,
        key: crate::store::fingerprint_of(&target),
    })
}

/// Adds the files under `dir` (as `prefix/...`), but what `left_out` names.
fn add_folder<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &Path,
) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if prefix.as_os_str().is_empty() && left_out(&name.to_string_lossy()) {
            continue;
        }
        let kind = entry.file_type()?;
        let inside = prefix.join(&name);
        if kind.is_dir() {
            add_folder(tar, &entry.path(), &inside)?;
        } else if kind.is_file() {
            match File::open(entry.path()) {
                Ok(mut file) => tar
                    .append_file(&inside, &mut file)
                    .with_context(|| format!("cannot add {}", entry.path().display()))?,
                // A file gone since the listing (a received fax delivered
                // meanwhile) is in the database snapshot or in neither.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot read {}", entry.path().display()));
                }
            }
        }
    }
    Ok(())
}

fn set_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))
}

/// What `restore` brought back.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub manifest: Manifest,
    pub files: usize,
    /// Whether the document key was put in the new data dir.
    pub key_restored: bool,
}

/// Unpacks the backup `archive` as the new data dir `data_dir`, which must
/// not exist or be empty; with `key`, the document key file kept apart
/// from the backup, checked against the backup's and copied in as
/// `document.key`.
pub fn restore(
    archive: &Path,
    data_dir: &Path,
    key: Option<&Path>,
) -> anyhow::Result<RestoreReport> {
    if let Some(pid) = DataDirOwner::holder(data_dir) {
        bail!(
            "a `faxbox serve` (PID {pid}) is running on {}; a restore never replaces a live box: \
             restore into a new folder with --data-dir DIR, or stop that box and move its folder aside first",
            data_dir.display()
        );
    }
    if let Ok(mut entries) = std::fs::read_dir(data_dir)
        && let Some(first) = entries.next()
    {
        bail!(
            "{} is not empty (it holds {:?}); a restore never overwrites a box: \
             restore into a new folder with --data-dir DIR, or move this one aside first",
            data_dir.display(),
            first?.file_name()
        );
    }
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".faxbox-restore-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;

    let mut files = 0;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    for entry in tar
        .entries()
        .context("not a faxbox backup (not a tar archive)")?
    {
        let mut entry = entry.with_context(|| format!("{} is damaged", archive.display()))?;
        let path = entry.path()?.into_owned();
        // Only plain files and folders, inside the data dir.
        let inside = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        if !inside || !(kind.is_file() || kind.is_dir()) {
            bail!(
                "{} holds {:?}, which is not a file of a data dir; not a faxbox backup",
                archive.display(),
                path
            );
        }
        if !entry.unpack_in(staging.path())? {
            bail!(
                "{} holds {:?} outside the data dir",
                archive.display(),
                path
            );
        }
        files += kind.is_file() as usize;
    }
    let manifest = check_restored(staging.path(), archive)?;
    if let Some(key) = key {
        restore_key(key, &manifest, archive, staging.path())?;
    }
    // Schema 3 made the table of calls being received.
    if manifest.schema >= 3 {
        move_paths(staging.path(), &manifest.data_dir, data_dir)?;
    }

    // The folder gets its name only now; an empty one is replaced.
    if data_dir.exists() {
        std::fs::remove_dir(data_dir)
            .with_context(|| format!("cannot replace the empty folder {}", data_dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, data_dir)
        .with_context(|| format!("cannot move {} to {}", staged.display(), data_dir.display()))?;
    Ok(RestoreReport {
        manifest,
        files,
        key_restored: key.is_some(),
    })
}

/// Checks that the key file `key` is the one the backup's documents are
/// sealed with, and copies it into the new data dir, for its owner only.
fn restore_key(key: &Path, manifest: &Manifest, archive: &Path, dir: &Path) -> anyhow::Result<()> {
    let found = crate::store::key_file_fingerprint(key)?;
    match &manifest.key {
        Some(expected) if *expected != found => bail!(
            "the key {} is not the document key of {} (its fingerprint is {found}, the backup's              is {expected}); nothing was restored: give the key file kept with that box",
            key.display(),
            archive.display()
        ),
        Some(_) => {}
        // A box from before sealing makes its key on first start: this one
        // is used instead.
        None => {}
    }
    let copy = dir.join(KEY_FILE);
    std::fs::copy(key, &copy).with_context(|| format!("cannot copy the key {}", key.display()))?;
    set_private(&copy)
}

/// Reads the manifest and checks the database in an unpacked backup.
fn check_restored(dir: &Path, archive: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(dir.join(MANIFEST)).with_context(|| {
        format!(
            "{} is not a faxbox backup (it has no {MANIFEST})",
            archive.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} has a damaged {MANIFEST}", archive.display()))?;
    if manifest.format > FORMAT || manifest.schema > SCHEMA_VERSION {
        bail!(
            "{} was made by a newer Faxbox ({}); restore it with that version or a newer one",
            archive.display(),
            manifest.faxbox
        );
    }
    let conn =
        Connection::open_with_flags(dir.join(DATABASE_FILE), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("{} holds no database", archive.display()))?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!(
            "the database in {} is damaged ({check}); nothing was restored",
            archive.display()
        );
    }
    std::fs::remove_file(dir.join(MANIFEST))?;
    Ok(manifest)
}

/// Paths the database keeps into its data dir (the pages of a call being
/// received) follow the box to its new folder.
fn move_paths(dir: &Path, old: &Path, new: &Path) -> anyhow::Result<()> {
    let new = std::path::absolute(new)?;
    let conn = Connection::open(dir.join(DATABASE_FILE))?;
    let (old, new) = (old.to_string_lossy(), new.to_string_lossy());
    conn.execute(
        "UPDATE receptions SET tiff = ?2 || substr(tiff, length(?1) + 1)
         WHERE substr(tiff, 1, length(?1) + 1) = ?1 || '/'",
        rusqlite::params![old, new],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_database_files_the_lock_and_the_spool_are_left_out() {
        for name in [
            "faxbox.sqlite",
            "faxbox.sqlite-wal",
            "faxbox.sqlite-shm",
            "faxbox.lock",
            "spool",
        ] {
            assert!(left_out(name), "{name}");
        }
        assert!(left_out("document.key"));
        assert!(left_out("document.key-new"));
        for name in ["api.key", "token.key", "incoming", "faxbox.sqlite.old"] {
            assert!(!left_out(name), "{name}");
        }
    }
}
