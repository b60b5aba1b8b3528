//! The store: every SQL statement of Faxbox, the schema and its migrations,
//! the job state machine and crash recovery.
//!
//! One SQLite file in the data dir (WAL, foreign keys on, `synchronous=FULL`
//! so that a commit that acknowledges intake survives power loss:
//! docs/architecture.md, invariant 1). Document bytes live in the same database as the job rows, so a job and
//! its documents are committed or lost together and a crash can leave
//! neither orphan files nor dangling rows.
//!
//! Nothing outside this module writes SQL; nothing inside it speaks HTTP,
//! SMTP or T.30. Callers get domain types from `model`.

mod accounts;
mod audit;
mod batches;
mod callbacks;
mod faxboxes;
mod inbox;
mod intake;
mod ipp;
mod jobs;
mod lines;
mod listing;
mod mail;
mod owner;
mod records;
mod retention;
mod schema;
mod sealing;
mod settings;
mod smtp_log;
mod status;
mod tally;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use accounts::{UserChanges, hash_api_key, login_credentials};
pub use audit::{AuditEntry, AuditEvent};
pub use batches::{Batch, BatchFax, Receipt as BatchReceipt};
pub use callbacks::{CallbackBody, CallbackTarget, QueuedCallback, callback_target};
pub use faxboxes::UpdateMode;
pub use inbox::MailToQueue;
pub use ipp::{PrintCover, PrintJob};
pub use jobs::{
    AttemptEnd, DueJob, JobFilter, MAX_INTERRUPTED_ATTEMPTS, NextStep, RecoveryReport, UNCONFIRMED,
};
pub use listing::{AuditList, FaxList, Listing, Mark, SmtpLogList, Start};
pub use mail::{DueMail, QueuedMail};
pub use owner::{DataDirOwner, OWNER_FILE, OwnerError};
pub use retention::{PurgeReport, PurgeTotals};
pub use schema::SCHEMA_VERSION;
pub use sealing::{
    CREDENTIAL as KEY_CREDENTIAL, DocumentKey, KEY_FILE, KeyError, KeyLocation, SealReport,
    fingerprint_of, key_file_fingerprint,
};
pub use settings::{SETTINGS, Setting, SettingScope, SettingValue, find as find_setting};
pub use smtp_log::{SmtpErrorReport, SmtpLogEntry};
pub use status::{BoxSnapshot, CallSnapshot, QueueSnapshot, RetrySnapshot};
pub use tally::Tally;

use crate::model::{AccountId, FieldError};

/// The database file inside the data dir.
pub const DATABASE_FILE: &str = "faxbox.sqlite";

/// How many prepared statements a connection keeps (rusqlite keeps 16).
const STATEMENT_CACHE: usize = 64;

/// What went wrong in the store, precise enough for callers to branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no {kind} with id {id}")]
    NotFound { kind: &'static str, id: String },
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("fax {id} is {from}; it cannot become {to}")]
    IllegalTransition {
        id: String,
        from: String,
        to: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the database {path} was written by a newer Faxbox (schema {found}, this one knows {known}); upgrade Faxbox"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "there is no fax box at {path}: run this command in the folder `faxbox serve` runs in \
         (where its faxbox.toml is), or point it at the box with --config FILE or --data-dir DIR"
    )]
    Missing { path: PathBuf },
    /// The document key is missing, wrong or unreadable, or a sealed row
    /// does not open with it.
    #[error(transparent)]
    Key(sealing::KeyError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

impl StoreError {
    /// The store cannot write right now (the disk is full, failing or
    /// read-only, or another writer holds it too long), as opposed to a
    /// request it refuses: intake answers "try again later" (HTTP 503, SMTP
    /// 451, IPP busy) and workers back off (issue 19).
    pub fn is_unavailable(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DiskFull
                    | SystemIoFailure
                    | ReadOnly
                    | CannotOpen
                    | DatabaseBusy
                    | DatabaseLocked
                    | OutOfMemory
            ),
            StoreError::DataDir { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database. Each `Store` owns one connection; open one per
/// thread that needs concurrency (SQLite serializes writers, WAL lets
/// readers run beside them).
pub struct Store {
    conn: Mutex<Handle>,
    path: PathBuf,
    /// New jobs waiting to share a commit (`intake`).
    intake: intake::GroupCommit,
    /// The box's own mail name (`smtp.hostname`): the built-in default of
    /// `default_smtp_domain`, set once by whoever opened the store.
    mail_domain: std::sync::OnceLock<String>,
    /// The document key: where it is, and once needed, the key itself
    /// (`sealing`). Loaded on first use, so admin commands that touch no
    /// document run without it.
    key: Mutex<KeyState>,
}

struct KeyState {
    location: KeyLocation,
    key: Option<std::sync::Arc<DocumentKey>>,
}

/// The connection and the sync level it is set to now.
struct Handle {
    conn: Connection,
    sync: Sync,
}

impl std::ops::Deref for Handle {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// How hard a commit insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// `synchronous=FULL`: on the disk before the commit returns. For every
    /// commit that acknowledges something to a person or a program, and for
    /// the result of a call.
    Full,
    /// `synchronous=NORMAL` (WAL): safe against a crash of the process
    /// (`kill -9`); a power cut may lose it until the next full commit. Only
    /// for the dispatch claim and call progress, which sit on the path from
    /// a due job to a seized line (docs/architecture.md, "Numbers to beat": under 10 ms); after a power cut
    /// such a job is simply sent again, as any interrupted job.
    Normal,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir` and brings its
    /// schema up to date.
    pub fn open_data_dir(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        Store::open(&data_dir.join(DATABASE_FILE))
    }

    /// Opens the store of a box that exists: the admin commands, which must
    /// not make a new, empty box in whatever folder they were run from
    /// (issue 19). Only `faxbox serve` creates one.
    pub fn open_existing(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(StoreError::Missing { path });
        }
        Store::open_with(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Opens (creating if needed) a database file and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store> {
        let mut conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        // Writers wait for each other instead of failing at once.
        conn.busy_timeout(Duration::from_secs(10))?;
        // Every list read goes through the statement cache (`select_all`):
        // room for all of the store's statements, so the dispatcher's and
        // the status's are not pushed out by an admin listing.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit that acknowledges intake is on disk (docs/architecture.md, invariant 1).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted rows are overwritten with zeros, not just unlinked: a
        // deleted fax's document must not stay readable in free pages of
        // the file (issue 23). `records::scrub` empties the WAL after.
        conn.pragma_update(None, "secure_delete", "ON")?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn: Mutex::new(Handle {
                conn,
                sync: Sync::Full,
            }),
            path: path.to_owned(),
            intake: Default::default(),
            mail_domain: Default::default(),
            key: Mutex::new(KeyState {
                location: KeyLocation::find(None, path.parent().unwrap_or(Path::new("."))),
                key: None,
            }),
        })
    }

    /// Uses the document key at `location` (the configuration's
    /// `[storage] key_file`) instead of the one in the data dir.
    pub fn set_key_location(&self, location: KeyLocation) {
        let mut state = self.key.lock().unwrap_or_else(|e| e.into_inner());
        *state = KeyState {
            location,
            key: None,
        };
    }

    /// Loads the document key now (making it on a new box) and checks it is
    /// the one this box's documents are sealed with: `faxbox serve` refuses
    /// to start otherwise, rather than fail each fax.
    pub fn unlock(&self) -> Result<std::sync::Arc<DocumentKey>> {
        self.key()
    }

    /// The document key, loaded on first use. Never called while holding
    /// the connection: loading it reads and may write the database.
    fn key(&self) -> Result<std::sync::Arc<DocumentKey>> {
        let mut state = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = &state.key {
            return Ok(key.clone());
        }
        let key = std::sync::Arc::new(sealing::unlock(self, &state.location)?);
        state.key = Some(key.clone());
        Ok(key)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Handle> {
        // A panic while holding the lock leaves the connection usable:
        // SQLite rolls back an unfinished transaction when it is dropped.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one write transaction, taken at its start (IMMEDIATE) so
    /// that two writers never deadlock upgrading a read lock.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Sync::Full, f)
    }

    /// A write that may skip the disk sync (see `Sync::Normal`).
    fn write_fast<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Sync::Normal, f)
    }

    fn write_with<T>(
        &self,
        sync: Sync,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut handle = self.conn();
        if handle.sync != sync {
            let level = match sync {
                Sync::Full => "FULL",
                Sync::Normal => "NORMAL",
            };
            handle.conn.pragma_update(None, "synchronous", level)?;
            handle.sync = sync;
        }
        let tx = handle
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.conn();
        f(&conn)
    }
}

/// Fails with `NotFound` unless the account exists.
pub(super) fn ensure_account(tx: &rusqlite::Transaction<'_>, account: &AccountId) -> Result<()> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM accounts WHERE id = ?1)",
        [account.as_str()],
        |r| r.get(0),
    )?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            kind: "account",
            id: account.to_string(),
        })
    }
}

/// Maps "no row" to a `NotFound` naming what was looked for.
trait OptionalRow<T> {
    fn found(self, kind: &'static str, id: &str) -> Result<T>;
}

impl<T> OptionalRow<T> for rusqlite::Result<T> {
    fn found(self, kind: &'static str, id: &str) -> Result<T> {
        match self {
            Err(rusqlite::Error::QueryReturnedNoRows) => Err(StoreError::NotFound {
                kind,
                id: id.to_owned(),
            }),
            other => other.map_err(StoreError::from),
        }
    }
}

/// Maps "the write changed no row" to a `NotFound` naming what it was for:
/// an update or delete by id whose row is not there (or no longer in the
/// state the write asks for).
trait ChangedRow {
    fn changed(self, kind: &'static str, id: impl std::fmt::Display) -> Result<()>;
}

impl ChangedRow for rusqlite::Result<usize> {
    fn changed(self, kind: &'static str, id: impl std::fmt::Display) -> Result<()> {
        match self? {
            0 => Err(StoreError::NotFound {
                kind,
                id: id.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Every row `sql` returns for `params`, each read by `from_row`: the one
/// way the store reads a list of rows. The statement goes through the
/// connection's statement cache (bounded, the least recently used one
/// leaves first), so a list read on every dispatcher pass or dashboard
/// refresh is parsed once; collecting every row resets the statement
/// before it goes back, so no read is left open across a commit.
fn select_all<C, T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    from_row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<C>
where
    C: FromIterator<T>,
{
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, from_row)?;
    Ok(rows.collect::<rusqlite::Result<C>>()?)
}

/// Decodes a text column into a domain enum, as a SQL conversion error when
/// the database holds a word this build does not know.
fn parse_column<T: std::str::FromStr<Err = String>>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize")
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A store on a real file in a fresh temporary directory.
    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path()).unwrap();
        (dir, store)
    }
}
