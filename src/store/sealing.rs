//! Documents at rest (issue 23): every document, received fax and queued
//! mail is sealed with AES-256-GCM under a key kept outside the database,
//! so a copied database, a backup or a stolen disk without the key shows
//! no fax's contents. This module owns the key (where it is, reading it,
//! making it, checking it against the fingerprint the database keeps) and
//! the format of a sealed blob; the rest of the store only calls `seal` and
//! `open`.
//!
//! A sealed blob is a version byte, a random 96-bit nonce, the ciphertext
//! and GCM's 16-byte tag. The additional data names the row the blob belongs
//! to (`document <id>`, `mail <id>`), so a blob copied into another row does
//! not open. A row says whether its blob is sealed (`sealed` column): rows
//! written before sealing existed stay readable until the start-up pass
//! seals them (`seal_clear_rows`).
//!
//! The database keeps only a fingerprint of the key (a truncated SHA-256),
//! never the key: a box started with another key, or none, is refused at
//! once with the key file named, instead of failing every fax later.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{Result, Store, StoreError, select_all};

/// The key file's name in the data dir when the configuration names none.
pub const KEY_FILE: &str = "document.key";

/// The systemd credential (`LoadCredential=faxbox-document-key:PATH`) the
/// service reads the key from when it has one.
pub const CREDENTIAL: &str = "faxbox-document-key";

/// The first byte of a sealed blob: this format (AES-256-GCM, random nonce).
const VERSION: u8 = 1;

const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Rows sealed per transaction by the start-up pass, so the box keeps
/// taking faxes while old ones are sealed.
const BATCH: usize = 50;

/// The start-up pass rests this long after each batch. Back to back, its
/// writes held API reads for up to 2.7 s (a listing with 400,000 old faxes
/// being sealed, two runs in four); with the rest, none took over 12 ms in
/// three runs, and sealing 400,000 rows takes 40 s longer.
const PAUSE_BETWEEN_BATCHES: std::time::Duration = std::time::Duration::from_millis(5);

/// Where the document key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// A file: `[storage] key_file`, or `document.key` in the data dir. Made
    /// (32 random bytes, mode 0600) when missing on a box that has sealed
    /// nothing yet.
    File(PathBuf),
    /// A systemd credential (`$CREDENTIALS_DIRECTORY/faxbox-document-key`):
    /// read only, never made.
    Credential(PathBuf),
}

impl KeyLocation {
    /// The key of the box in `data_dir`: the configured file, else the
    /// service's systemd credential when it has one, else `document.key`
    /// in the data dir.
    pub fn find(configured: Option<&Path>, data_dir: &Path) -> KeyLocation {
        if let Some(path) = configured {
            return KeyLocation::File(path.to_owned());
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let credential = Path::new(&dir).join(CREDENTIAL);
            if credential.is_file() {
                return KeyLocation::Credential(credential);
            }
        }
        KeyLocation::File(data_dir.join(KEY_FILE))
    }

    pub fn path(&self) -> &Path {
        match self {
            KeyLocation::File(p) | KeyLocation::Credential(p) => p,
        }
    }
}

impl std::fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLocation::File(p) => write!(f, "{}", p.display()),
            KeyLocation::Credential(p) => {
                write!(f, "{} (systemd credential {CREDENTIAL})", p.display())
            }
        }
    }
}

/// What is wrong with the document key, in the operator's words.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the document key {location} is missing, and the faxes in this box are sealed with the key \
         whose fingerprint is {expected}: put that key file back (from where it was kept apart \
         from the box), or name it with `[storage] key_file = PATH` in the configuration"
    )]
    Missing {
        location: KeyLocation,
        expected: String,
    },
    #[error(
        "the document key {location} is not the key the faxes in this box are sealed with \
         (its fingerprint is {found}, the box's is {expected}): put the right key file there, \
         or name it with `[storage] key_file = PATH` in the configuration"
    )]
    Wrong {
        location: KeyLocation,
        found: String,
        expected: String,
    },
    #[error(
        "the document key {location} holds {len} bytes; a Faxbox key is 32 random bytes \
         (or 64 hex digits), e.g. made with `head -c 32 /dev/urandom > FILE`"
    )]
    Malformed { location: KeyLocation, len: usize },
    #[error("cannot read the document key {location}: {source}")]
    Unreadable {
        location: KeyLocation,
        source: std::io::Error,
    },
    #[error("cannot make the document key {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the sealed {row} does not open with the document key: it was changed on the disk \
         or moved from another row"
    )]
    Damaged { row: String },
}

/// The key documents are sealed with, and its fingerprint.
pub struct DocumentKey {
    key: LessSafeKey,
    fingerprint: String,
}

impl std::fmt::Debug for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        write!(f, "DocumentKey({})", self.fingerprint)
    }
}

/// The row a blob belongs to: its additional data.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    Document(&'a str),
    Mail(i64),
}

impl Row<'_> {
    fn aad(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl std::fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Document(id) => write!(f, "document {id}"),
            Row::Mail(id) => write!(f, "mail {id}"),
        }
    }
}

impl DocumentKey {
    fn from_bytes(bytes: &[u8; KEY_LEN]) -> DocumentKey {
        let digest = Sha256::new()
            .chain_update(b"faxbox document key\0")
            .chain_update(bytes)
            .finalize();
        DocumentKey {
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"),
            ),
            fingerprint: hex::encode(&digest[..8]),
        }
    }

    /// A truncated SHA-256 of the key: names it in messages and in the
    /// database without revealing it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals `clear` as the blob of `row`.
    pub fn seal(&self, row: Row<'_>, clear: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + clear.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(clear);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.aad()),
                &mut out[1 + NONCE_LEN..],
            )
            .expect("AES-GCM seals any length a database row holds");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens the blob of `row`.
    pub fn open(&self, row: Row<'_>, mut sealed: Vec<u8>) -> Result<Vec<u8>, KeyError> {
        let damaged = || KeyError::Damaged {
            row: row.to_string(),
        };
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(damaged());
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN]).map_err(|_| damaged())?;
        let clear_len = self
            .key
            .open_in_place(nonce, Aad::from(row.aad()), &mut sealed[1 + NONCE_LEN..])
            .map_err(|_| damaged())?
            .len();
        sealed.drain(..1 + NONCE_LEN);
        sealed.truncate(clear_len);
        Ok(sealed)
    }
}

/// Reads the key at `location`: 32 bytes, or 64 hex digits (a trailing
/// newline allowed). `None` when there is no such file.
fn read_key(location: &KeyLocation) -> Result<Option<DocumentKey>, KeyError> {
    let bytes = match std::fs::read(location.path()) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Unreadable {
                location: location.clone(),
                source,
            });
        }
    };
    let malformed = || KeyError::Malformed {
        location: location.clone(),
        len: bytes.len(),
    };
    let key: [u8; KEY_LEN] = if bytes.len() == KEY_LEN {
        bytes.as_slice().try_into().map_err(|_| malformed())?
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed())?.trim();
        let decoded = hex::decode(text).map_err(|_| malformed())?;
        decoded.as_slice().try_into().map_err(|_| malformed())?
    };
    Ok(Some(DocumentKey::from_bytes(&key)))
}

/// Makes a new key file at `path`: 32 random bytes, readable by its owner
/// only, written under another name first so a crash leaves no short key.
fn create_key(path: &Path) -> Result<DocumentKey, KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| failed(std::io::Error::other("no random source")))?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(folder).map_err(failed)?;
    let partial = path.with_extension("key-new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(failed)?;
    file.write_all(&key).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    // Another process may have made the key meanwhile: keep the first.
    std::fs::hard_link(&partial, path)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(failed)?;
    let _ = std::fs::remove_file(&partial);
    match read_key(&KeyLocation::File(path.to_owned()))? {
        Some(k) => Ok(k),
        None => Err(failed(std::io::ErrorKind::NotFound.into())),
    }
}

/// The fingerprint of the key this database's rows are sealed with.
fn recorded_fingerprint(conn: &rusqlite::Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT fingerprint FROM document_key", [], |r| r.get(0))
        .optional()
}

/// Loads the key at `location` for the database of `store`, making it
/// when the box has none yet, and checks it is the one the database's
/// rows are sealed with (recording it on first use).
pub(super) fn unlock(store: &Store, location: &KeyLocation) -> Result<DocumentKey> {
    let expected = store.read(|conn| Ok(recorded_fingerprint(conn)?))?;
    let key = match (read_key(location)?, &expected, location) {
        (Some(key), _, _) => key,
        (None, None, KeyLocation::File(path)) => create_key(path)?,
        (None, Some(expected), _) => {
            return Err(KeyError::Missing {
                location: location.clone(),
                expected: expected.clone(),
            }
            .into());
        }
        (None, None, KeyLocation::Credential(_)) => {
            return Err(KeyError::Unreadable {
                location: location.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            }
            .into());
        }
    };
    match expected {
        Some(expected) if expected != key.fingerprint => Err(KeyError::Wrong {
            location: location.clone(),
            found: key.fingerprint.clone(),
            expected,
        }
        .into()),
        Some(_) => Ok(key),
        None => {
            store.write(|tx| {
                // A second process may have recorded its key meanwhile.
                match recorded_fingerprint(tx)? {
                    Some(other) if other != key.fingerprint => Err(KeyError::Wrong {
                        location: location.clone(),
                        found: key.fingerprint.clone(),
                        expected: other,
                    }
                    .into()),
                    Some(_) => Ok(()),
                    None => {
                        tx.execute(
                            "INSERT INTO document_key (id, fingerprint, created) VALUES (1, ?1, ?2)",
                            params![key.fingerprint, crate::model::now()],
                        )?;
                        Ok(())
                    }
                }
            })?;
            Ok(key)
        }
    }
}

/// The fingerprint recorded in the database file `database` (a backup's
/// snapshot), without opening it as a store.
pub fn fingerprint_of(conn: &rusqlite::Connection) -> Option<String> {
    recorded_fingerprint(conn).ok().flatten()
}

/// The fingerprint of the key file `path`, to check it against a box's.
pub fn key_file_fingerprint(path: &Path) -> Result<String, KeyError> {
    let location = KeyLocation::File(path.to_owned());
    match read_key(&location)? {
        Some(k) => Ok(k.fingerprint),
        None => Err(KeyError::Unreadable {
            location,
            source: std::io::ErrorKind::NotFound.into(),
        }),
    }
}

/// What the start-up pass sealed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealReport {
    pub documents: usize,
    pub mails: usize,
}

impl Store {
    /// Seals the rows written in clear before sealing existed, a batch per
    /// transaction; they are read as they are until then. Afterwards the
    /// log is emptied so the clear pages are gone from the disk too
    /// (`secure_delete` zeroes what the updates freed).
    pub fn seal_clear_rows(&self) -> Result<SealReport> {
        let mut report = SealReport::default();
        let any_clear = self.read(|conn| {
            Ok(conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM documents WHERE sealed = 0)
                     OR EXISTS (SELECT 1 FROM mail_queue WHERE sealed = 0)",
                [],
                |r| r.get::<_, bool>(0),
            )?)
        })?;
        if !any_clear {
            return Ok(report);
        }
        let key = self.key()?;
        loop {
            let (documents, mails) = self.write(|tx| {
                let documents: Vec<(String, Vec<u8>)> = select_all(
                    tx,
                    "SELECT id, data FROM documents WHERE sealed = 0 LIMIT ?1",
                    [BATCH],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                for (id, data) in &documents {
                    tx.execute(
                        "UPDATE documents SET data = ?2, sealed = 1 WHERE id = ?1",
                        params![id, key.seal(Row::Document(id), data)],
                    )?;
                }
                let mails: Vec<(i64, Vec<u8>)> = select_all(
                    tx,
                    "SELECT id, message FROM mail_queue WHERE sealed = 0 LIMIT ?1",
                    [BATCH],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                for (id, message) in &mails {
                    tx.execute(
                        "UPDATE mail_queue SET message = ?2, sealed = 1 WHERE id = ?1",
                        params![id, key.seal(Row::Mail(*id), message)],
                    )?;
                }
                Ok((documents.len(), mails.len()))
            })?;
            report.documents += documents;
            report.mails += mails;
            if documents == 0 && mails == 0 {
                break;
            }
            std::thread::sleep(PAUSE_BETWEEN_BATCHES);
        }
        self.scrub();
        Ok(report)
    }

    /// The blob of `row` as it was written: opened when `sealed`.
    pub(super) fn unseal(&self, row: Row<'_>, sealed: bool, blob: Vec<u8>) -> Result<Vec<u8>> {
        if !sealed {
            return Ok(blob);
        }
        Ok(self.key()?.open(row, blob)?)
    }
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> StoreError {
        StoreError::Key(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DocumentKey {
        DocumentKey::from_bytes(&[7; KEY_LEN])
    }

    #[test]
    fn a_sealed_blob_opens_only_as_its_own_row() {
        let k = key();
        let clear = b"%PDF-1.7 the patient's letter".to_vec();
        let sealed = k.seal(Row::Document("abc"), &clear);
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + clear.len() + TAG_LEN);
        assert!(!sealed.windows(9).any(|w| w == b"patient's"));
        assert_eq!(k.open(Row::Document("abc"), sealed.clone()).unwrap(), clear);
        // Moved to another row, or another table: refused.
        for other in [Row::Document("abd"), Row::Mail(1)] {
            let err = k.open(other, sealed.clone()).unwrap_err();
            assert!(matches!(err, KeyError::Damaged { .. }), "{err}");
        }
        // A flipped bit, a cut blob, an unknown version: refused.
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(k.open(Row::Document("abc"), flipped).is_err());
        assert!(k.open(Row::Document("abc"), sealed[..20].to_vec()).is_err());
        let mut v2 = sealed.clone();
        v2[0] = 2;
        assert!(k.open(Row::Document("abc"), v2).is_err());
        // Another key: refused.
        let other = DocumentKey::from_bytes(&[8; KEY_LEN]);
        assert!(other.open(Row::Document("abc"), sealed.clone()).is_err());
        // Two seals of the same bytes differ (a fresh nonce each time).
        assert_ne!(k.seal(Row::Document("abc"), &clear), sealed);
        // Nothing sealed is empty too.
        let empty = k.seal(Row::Mail(3), b"");
        assert_eq!(k.open(Row::Mail(3), empty).unwrap(), b"");
    }

    #[test]
    fn a_key_file_is_32_bytes_or_64_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let at = KeyLocation::File(path.clone());
        std::fs::write(&path, [7; KEY_LEN]).unwrap();
        assert_eq!(
            read_key(&at).unwrap().unwrap().fingerprint,
            key().fingerprint
        );
        std::fs::write(&path, format!("{}\n", hex::encode([7; KEY_LEN]))).unwrap();
        assert_eq!(
            read_key(&at).unwrap().unwrap().fingerprint,
            key().fingerprint
        );
        for bad in [&b"short"[..], &[0; 33][..], &[b'z'; 64][..]] {
            std::fs::write(&path, bad).unwrap();
            let err = read_key(&at).unwrap_err().to_string();
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains("32"),
                "{err}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(read_key(&at).unwrap().is_none());
    }

    #[test]
    fn a_new_key_file_is_random_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = create_key(&dir.path().join("a.key")).unwrap();
        let b = create_key(&dir.path().join("b.key")).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
        let meta = std::fs::metadata(dir.path().join("a.key")).unwrap();
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    fn letter() -> crate::model::NewDocument {
        crate::model::NewDocument {
            kind: crate::model::DocumentKind::Original,
            content_type: "application/pdf".into(),
            filename: "letter.pdf".into(),
            pages: Some(1),
            bytes: b"%PDF-1.7 Dear doctor, the results of Ms Example".to_vec(),
        }
    }

    fn new_fax(account: &crate::model::AccountId) -> crate::model::NewFax {
        crate::model::NewFax {
            account_id: account.clone(),
            to_number: "5551234".into(),
            to_number_normalized: "+15551234".into(),
            retries: 1,
            ..Default::default()
        }
    }

    /// Every byte of the database's files (the WAL included).
    fn database_bytes(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("faxbox.sqlite")
            {
                all.extend(std::fs::read(path).unwrap());
            }
        }
        all
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn documents_and_mails_are_stored_sealed_and_read_clear() {
        use crate::model::JobStatus;
        let (dir, store) = crate::store::testing::temp_store();
        let account = store.create_account("Clinic", None).unwrap().id;
        let fax = store
            .create_job(new_fax(&account), vec![letter()], JobStatus::Pending)
            .unwrap();
        let mail = b"Subject: your fax\r\n\r\nthe results of Ms Example".to_vec();
        store
            .enqueue_fax_mail(&fax.id, &account, &["a@b.test".into()], &mail)
            .unwrap();
        let doc = &store.documents(&fax.id).unwrap()[0];
        assert_eq!(store.document_bytes(&doc.id).unwrap(), letter().bytes);
        assert_eq!(store.due_mail(i64::MAX, 10).unwrap().mails[0].message, mail);
        // A copy of a fax (resubmit) is sealed for its own rows.
        store.cancel_job(&fax.id, "test").unwrap();
        let again = store.resubmit(&fax.id).unwrap();
        let copy = &store.documents(&again.id).unwrap()[0];
        assert_ne!(copy.id, doc.id);
        assert_eq!(store.document_bytes(&copy.id).unwrap(), letter().bytes);
        store.scrub();
        let disk = database_bytes(dir.path());
        assert!(!disk.is_empty());
        assert!(!contains(&disk, b"results of Ms Example"));
        // The key is beside the database, private; the database has only
        // its fingerprint.
        let key = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(key.len(), KEY_LEN);
        assert!(!contains(&disk, &key));
        assert!(contains(
            &disk,
            store.unlock().unwrap().fingerprint().as_bytes()
        ));
    }

    #[test]
    fn a_box_refuses_a_wrong_or_missing_key_naming_it() {
        let (dir, store) = crate::store::testing::temp_store();
        let fingerprint = store.unlock().unwrap().fingerprint().to_owned();
        drop(store);
        let key = dir.path().join(KEY_FILE);
        let good = std::fs::read(&key).unwrap();

        std::fs::write(&key, [1; KEY_LEN]).unwrap();
        let store = Store::open_data_dir(dir.path()).unwrap();
        let err = store.unlock().unwrap_err().to_string();
        assert!(err.contains(key.to_str().unwrap()), "{err}");
        assert!(
            err.contains("not the key") && err.contains(&fingerprint),
            "{err}"
        );

        std::fs::remove_file(&key).unwrap();
        let err = store.unlock().unwrap_err().to_string();
        assert!(
            err.contains(key.to_str().unwrap()) && err.contains("missing"),
            "{err}"
        );
        assert!(!key.exists(), "no new key is made for a box that has one");

        // Elsewhere, as `[storage] key_file` names it.
        let moved = dir.path().join("elsewhere.key");
        std::fs::write(&moved, &good).unwrap();
        store.set_key_location(KeyLocation::File(moved));
        assert_eq!(store.unlock().unwrap().fingerprint(), fingerprint);
    }

    #[test]
    fn rows_stored_before_sealing_are_read_then_sealed() {
        use crate::model::JobStatus;
        let (dir, store) = crate::store::testing::temp_store();
        let account = store.create_account("Clinic", None).unwrap().id;
        let fax = store
            .create_job(new_fax(&account), vec![letter()], JobStatus::Pending)
            .unwrap();
        let doc = store.documents(&fax.id).unwrap()[0].id.clone();
        let mail = b"Subject: old\r\n\r\nthe results of Ms Example".to_vec();
        // As an older Faxbox wrote them: in clear, unmarked.
        store
            .write(|tx| {
                tx.execute(
                    "UPDATE documents SET data = ?2, sealed = 0 WHERE id = ?1",
                    params![doc, letter().bytes],
                )?;
                tx.execute(
                    "INSERT INTO mail_queue (recipients, message, due_at, created)
                     VALUES ('[\"a@b.test\"]', ?1, 0, 0)",
                    [&mail],
                )?;
                Ok(())
            })
            .unwrap();
        store.scrub();
        assert!(contains(
            &database_bytes(dir.path()),
            b"results of Ms Example"
        ));
        assert_eq!(store.document_bytes(&doc).unwrap(), letter().bytes);

        let done = store.seal_clear_rows().unwrap();
        assert_eq!(
            done,
            SealReport {
                documents: 1,
                mails: 1
            }
        );
        assert_eq!(store.seal_clear_rows().unwrap(), SealReport::default());
        assert_eq!(store.document_bytes(&doc).unwrap(), letter().bytes);
        assert_eq!(store.due_mail(i64::MAX, 10).unwrap().mails[0].message, mail);
        assert!(!contains(
            &database_bytes(dir.path()),
            b"results of Ms Example"
        ));
    }

    #[test]
    fn the_configured_file_comes_before_the_credential_and_the_data_dir() {
        let data = Path::new("/var/lib/faxbox");
        assert_eq!(
            KeyLocation::find(Some(Path::new("/media/key/faxbox.key")), data),
            KeyLocation::File("/media/key/faxbox.key".into())
        );
        // No test sets $CREDENTIALS_DIRECTORY; the unit file does.
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            assert_eq!(
                KeyLocation::find(None, data),
                KeyLocation::File(data.join(KEY_FILE))
            );
        }
    }
}
