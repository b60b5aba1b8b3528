//! The schema, versioned by `PRAGMA user_version`: migration N takes a
//! database from version N-1 to N, in one transaction. Never edit a shipped
//! migration; add the next one.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

const MIGRATIONS: &[&str] = &[
    // 1: the data model of a fax server.
    r#"
    CREATE TABLE accounts (
        id        TEXT PRIMARY KEY,
        name      TEXT NOT NULL,
        realm     TEXT UNIQUE COLLATE NOCASE,
        is_admin  INTEGER NOT NULL DEFAULT 0,
        created   INTEGER NOT NULL
    );
    CREATE TABLE users (
        id         TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        email      TEXT NOT NULL COLLATE NOCASE,
        name       TEXT NOT NULL DEFAULT '',
        created    INTEGER NOT NULL,
        UNIQUE (account_id, email)
    );
    CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        key_hash   TEXT NOT NULL UNIQUE,
        label      TEXT NOT NULL DEFAULT '',
        created    INTEGER NOT NULL,
        revoked    INTEGER
    );
    CREATE TABLE faxboxes (
        id                        TEXT PRIMARY KEY,
        account_id                TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name                      TEXT NOT NULL,
        owner_id                  TEXT REFERENCES users(id) ON DELETE SET NULL,
        smtp_email_address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
        custom_smtp_email_address TEXT UNIQUE COLLATE NOCASE,
        -- The remaining Kazoo fields (docs/kazoo.md 1.2) as one JSON object.
        doc                       TEXT NOT NULL,
        created                   INTEGER NOT NULL,
        modified                  INTEGER NOT NULL
    );
    CREATE INDEX faxboxes_account ON faxboxes(account_id);
    CREATE TABLE faxbox_numbers (
        number    TEXT PRIMARY KEY,
        faxbox_id TEXT NOT NULL REFERENCES faxboxes(id) ON DELETE CASCADE
    );
    CREATE TABLE faxes (
        id                   TEXT PRIMARY KEY,
        account_id           TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        faxbox_id            TEXT REFERENCES faxboxes(id) ON DELETE SET NULL,
        folder               TEXT NOT NULL CHECK (folder IN ('inbox', 'outbox')),
        status               TEXT CHECK (status IN ('attaching_files', 'pending',
                               'processing', 'completed', 'failed', 'cancelled')),
        to_number            TEXT NOT NULL,
        to_number_normalized TEXT NOT NULL,
        retries              INTEGER NOT NULL,
        attempts             INTEGER NOT NULL DEFAULT 0,
        retry_after          INTEGER NOT NULL DEFAULT 0,
        due_at               INTEGER NOT NULL,
        error                TEXT,
        -- The other Kazoo fields (names, identity, notifications, ...).
        doc                  TEXT NOT NULL,
        created              INTEGER NOT NULL,
        modified             INTEGER NOT NULL
    );
    CREATE INDEX faxes_due ON faxes(due_at) WHERE status = 'pending';
    CREATE INDEX faxes_active ON faxes(account_id, to_number_normalized)
        WHERE status = 'processing';
    CREATE INDEX faxes_account ON faxes(account_id, folder, created);
    CREATE TABLE attempts (
        id                INTEGER PRIMARY KEY,
        fax_id            TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        number            INTEGER NOT NULL,
        line              TEXT NOT NULL,
        started           INTEGER NOT NULL,
        ended             INTEGER,
        stage             TEXT NOT NULL,
        outcome           TEXT,
        result_code       INTEGER,
        result_text       TEXT,
        hangup_cause      TEXT,
        pages_sent        INTEGER NOT NULL DEFAULT 0,
        pages_total       INTEGER NOT NULL DEFAULT 0,
        bit_rate          INTEGER,
        ecm               INTEGER,
        remote_station_id TEXT,
        UNIQUE (fax_id, number)
    );
    CREATE INDEX attempts_open ON attempts(fax_id) WHERE ended IS NULL;
    CREATE TABLE documents (
        id           TEXT PRIMARY KEY,
        fax_id       TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        kind         TEXT NOT NULL,
        seq          INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        filename     TEXT NOT NULL,
        size         INTEGER NOT NULL,
        sha256       TEXT NOT NULL,
        pages        INTEGER,
        data         BLOB NOT NULL,
        created      INTEGER NOT NULL,
        UNIQUE (fax_id, kind, seq)
    );
    CREATE TABLE settings (
        -- 'system', or an account id.
        scope      TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        modified   INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE TABLE smtp_log (
        id         TEXT PRIMARY KEY,
        account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE,
        faxbox_id  TEXT,
        doc        TEXT NOT NULL,
        created    INTEGER NOT NULL
    );
    CREATE TABLE mail_queue (
        id         INTEGER PRIMARY KEY,
        account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE,
        recipients TEXT NOT NULL,
        message    BLOB NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        due_at     INTEGER NOT NULL,
        last_error TEXT,
        sent_at    INTEGER,
        created    INTEGER NOT NULL
    );
    "#,
    // 2: operator control that works across processes: the CLI asks, the
    // running scheduler acts.
    r#"
    ALTER TABLE faxes ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE line_state (
        name     TEXT PRIMARY KEY,
        paused   INTEGER NOT NULL DEFAULT 0,
        reason   TEXT,
        modified INTEGER NOT NULL
    );
    "#,
    // 3: calls being received, recorded before the line answers.
    r#"
    CREATE TABLE receptions (
        call_id     TEXT PRIMARY KEY,
        line        TEXT NOT NULL,
        account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        faxbox_id   TEXT NOT NULL REFERENCES faxboxes(id) ON DELETE CASCADE,
        from_number TEXT NOT NULL,
        to_number   TEXT NOT NULL,
        tiff        TEXT NOT NULL,
        started     INTEGER NOT NULL
    );
    "#,
    // 4: print jobs of the IPP FaxOut printers. A print job has its own
    // integer id (IPP job-id) and becomes one fax job per destination once
    // its document arrives.
    r#"
    CREATE TABLE ipp_jobs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        faxbox_id    TEXT NOT NULL REFERENCES faxboxes(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        user         TEXT NOT NULL,
        destinations TEXT NOT NULL,
        cancelled    INTEGER NOT NULL DEFAULT 0,
        error        TEXT,
        created      INTEGER NOT NULL
    );
    CREATE TABLE ipp_job_faxes (
        ipp_job INTEGER NOT NULL REFERENCES ipp_jobs(id) ON DELETE CASCADE,
        fax_id  TEXT NOT NULL REFERENCES faxes(id) ON DELETE CASCADE,
        PRIMARY KEY (ipp_job, fax_id)
    );
    "#,
    // 5: Kazoo's users and accounts (issue 20): a login (the username, an
    // Argon2 hash of the password and the md5 credential of Kazoo's
    // user_auth), the other fields of users.json and accounts.json with a
    // client's own keys as one JSON document, and child accounts.
    r#"
    ALTER TABLE users ADD COLUMN username TEXT COLLATE NOCASE;
    ALTER TABLE users ADD COLUMN password_hash TEXT;
    ALTER TABLE users ADD COLUMN credentials TEXT;
    ALTER TABLE users ADD COLUMN doc TEXT NOT NULL DEFAULT '{}';
    CREATE UNIQUE INDEX users_username ON users(account_id, username)
        WHERE username IS NOT NULL;
    CREATE INDEX users_credentials ON users(credentials) WHERE credentials IS NOT NULL;
    ALTER TABLE accounts ADD COLUMN parent_id TEXT REFERENCES accounts(id) ON DELETE SET NULL;
    ALTER TABLE accounts ADD COLUMN doc TEXT NOT NULL DEFAULT '{}';
    "#,
    // 6: faxes are records (issue 23): a mail that announces a fax (and
    // carries it as a PDF) belongs to that fax, so deleting the fax deletes
    // the copy in the mail queue too.
    r#"
    ALTER TABLE mail_queue ADD COLUMN fax_id TEXT REFERENCES faxes(id) ON DELETE CASCADE;
    CREATE INDEX mail_queue_fax ON mail_queue(fax_id) WHERE fax_id IS NOT NULL;
    "#,
    // 7: what the retention purge removed, run by run, for /metrics and
    // for the operator asking what happened to a fax (issue 23).
    r#"
    CREATE TABLE purges (
        id        INTEGER PRIMARY KEY,
        at        INTEGER NOT NULL,
        documents INTEGER NOT NULL,
        records   INTEGER NOT NULL,
        mails     INTEGER NOT NULL
    );
    CREATE INDEX faxes_finished ON faxes(account_id, modified)
        WHERE status IS NULL OR status IN ('completed', 'failed', 'cancelled');
    "#,
    // 8: an attempt whose last page went out and whose confirmation was
    // not yet heard (issue 19): after a crash in that moment the fax has
    // probably arrived, and recovery must not send it again on its own.
    r#"
    ALTER TABLE attempts ADD COLUMN last_page_sent INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: the audit trail (issue 23): who did what to which fax or faxbox,
    // when and from where. Append-only: the database itself refuses to
    // change or remove an entry. No foreign keys: an entry outlives what it
    // names (a deleted fax, a deleted account).
    r#"
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         INTEGER NOT NULL,
        account_id TEXT,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        object     TEXT NOT NULL,
        source     TEXT NOT NULL
    );
    CREATE INDEX audit_account ON audit(account_id, id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
    // 10: send later and priority (issue 22). Due faxes go highest
    // priority first (2 high, 1 normal, 0 low). A fax that fell due outside
    // its faxbox's sending windows waits with `due_at` at the next opening
    // and `held_by_window` set, so a change of the windows looks at it
    // again at once.
    r#"
    ALTER TABLE faxes ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE faxes ADD COLUMN held_by_window INTEGER NOT NULL DEFAULT 0;
    "#,
    // 11: lists and status that scale (issue 27): with 400,000 faxes
    // queued, a listing page and `/v2/status` must not read them all.
    // `fax_counts` holds how many faxes each account has per folder,
    // status and whether they were tried already, kept by triggers in the
    // same transaction as the change (so it can never drift from `faxes`,
    // whichever path inserts, changes or deletes a fax, cascades
    // included); each listing reads a range of an index in its own order
    // (store/listing.rs), a fax being in exactly one of the partial ones.
    r#"
    CREATE TABLE fax_counts (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        folder     TEXT NOT NULL,
        -- '' for a received fax, which has no job status.
        status     TEXT NOT NULL,
        retried    INTEGER NOT NULL,
        n          INTEGER NOT NULL,
        PRIMARY KEY (account_id, folder, status, retried)
    );
    INSERT INTO fax_counts
        SELECT account_id, folder, COALESCE(status, ''), attempts > 0, COUNT(*)
        FROM faxes GROUP BY 1, 2, 3, 4;
    CREATE TRIGGER fax_counts_insert AFTER INSERT ON faxes BEGIN
        INSERT INTO fax_counts
            VALUES (new.account_id, new.folder, COALESCE(new.status, ''), new.attempts > 0, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER fax_counts_delete AFTER DELETE ON faxes BEGIN
        UPDATE fax_counts SET n = n - 1
            WHERE account_id = old.account_id AND folder = old.folder
              AND status = COALESCE(old.status, '') AND retried = (old.attempts > 0);
    END;
    CREATE TRIGGER fax_counts_update AFTER UPDATE OF account_id, folder, status, attempts ON faxes
        WHEN old.account_id IS NOT new.account_id OR old.folder IS NOT new.folder
          OR old.status IS NOT new.status OR (old.attempts > 0) IS NOT (new.attempts > 0)
    BEGIN
        UPDATE fax_counts SET n = n - 1
            WHERE account_id = old.account_id AND folder = old.folder
              AND status = COALESCE(old.status, '') AND retried = (old.attempts > 0);
        INSERT INTO fax_counts
            VALUES (new.account_id, new.folder, COALESCE(new.status, ''), new.attempts > 0, 1)
            ON CONFLICT DO UPDATE SET n = n + 1;
    END;
    CREATE INDEX faxes_outgoing ON faxes(account_id, created)
        WHERE folder = 'outbox' AND status IN ('attaching_files', 'pending', 'processing');
    CREATE INDEX faxes_done ON faxes(account_id, created)
        WHERE folder = 'outbox' AND status IN ('completed', 'failed', 'cancelled');
    CREATE INDEX faxes_faxbox_outgoing ON faxes(faxbox_id, created)
        WHERE folder = 'outbox' AND status IN ('attaching_files', 'pending', 'processing');
    CREATE INDEX faxes_faxbox_done ON faxes(faxbox_id, created)
        WHERE folder = 'outbox' AND status IN ('completed', 'failed', 'cancelled');
    CREATE INDEX faxes_faxbox_inbox ON faxes(faxbox_id, created) WHERE folder = 'inbox';
    CREATE INDEX faxes_created ON faxes(created);
    CREATE INDEX faxes_retrying ON faxes(account_id, due_at, created)
        WHERE status = 'pending' AND attempts > 0;
    CREATE INDEX faxes_sent_later ON faxes(account_id, due_at, created)
        WHERE status = 'pending' AND attempts = 0;
    CREATE INDEX attempts_started ON attempts(started);
    CREATE INDEX smtp_log_account ON smtp_log(account_id, created);
    CREATE INDEX smtp_log_faxbox ON smtp_log(faxbox_id, created);
    "#,
    // 12: faxbox callbacks (issue 22): each event's HTTP request to the
    // faxbox's callback URL, queued with the event and kept with its last
    // answer after delivery; every faxbox gets a key to sign them with.
    r#"
    CREATE TABLE callbacks (
        id           INTEGER PRIMARY KEY,
        event_id     TEXT NOT NULL UNIQUE,
        account_id   TEXT NOT NULL,
        faxbox_id    TEXT NOT NULL REFERENCES faxboxes(id) ON DELETE CASCADE,
        fax_id       TEXT NOT NULL,
        url          TEXT NOT NULL,
        method       TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body         BLOB NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        status_code  INTEGER,
        last_error   TEXT,
        due_at       INTEGER NOT NULL,
        sent_at      INTEGER,
        created      INTEGER NOT NULL
    );
    CREATE INDEX callbacks_due ON callbacks(due_at) WHERE sent_at IS NULL;
    CREATE INDEX callbacks_faxbox ON callbacks(faxbox_id, id);
    ALTER TABLE faxboxes ADD COLUMN callback_key TEXT;
    UPDATE faxboxes SET callback_key = lower(hex(randomblob(32)));
    CREATE TRIGGER faxbox_callback_key AFTER INSERT ON faxboxes
        WHEN NEW.callback_key IS NULL
        BEGIN UPDATE faxboxes SET callback_key = lower(hex(randomblob(32))) WHERE id = NEW.id; END;
    "#,
    // 13: the dispatcher reads due faxes one priority at a time, oldest due
    // first, as a range of this index (with 400,000 queued, ordering by
    // priority through `faxes_due` sorted them all on every pass).
    r#"
    CREATE INDEX faxes_due_by_priority ON faxes(priority, due_at) WHERE status = 'pending';
    "#,
    // 14: a print job's cover sheet (issue 22, PWG 5100.15 `cover-sheet-info`),
    // kept from its Create-Job until its document comes.
    r#"
    ALTER TABLE ipp_jobs ADD COLUMN cover TEXT;
    "#,
    // 15: many recipients (issue 22): the fax jobs of one request to
    // several numbers form a batch, with one combined receipt, queued once
    // when the last of them ends (`receipt_queued`).
    r#"
    CREATE TABLE batches (
        id             TEXT PRIMARY KEY,
        account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        faxbox_id      TEXT REFERENCES faxboxes(id) ON DELETE SET NULL,
        created        INTEGER NOT NULL,
        receipt_queued INTEGER
    );
    CREATE INDEX batches_account ON batches(account_id, created);
    CREATE INDEX batches_unreceipted ON batches(created) WHERE receipt_queued IS NULL;
    ALTER TABLE faxes ADD COLUMN batch_id TEXT REFERENCES batches(id) ON DELETE SET NULL;
    CREATE INDEX faxes_batch ON faxes(batch_id) WHERE batch_id IS NOT NULL;
    "#,
    // 16: documents at rest (issue 23): documents and queued mails are
    // sealed with a key kept outside the database (store/sealing.rs). A row
    // says whether its blob is sealed: rows from before stay readable until
    // the start-up pass seals them. The database keeps only the key's
    // fingerprint, to refuse a wrong key at start.
    r#"
    ALTER TABLE documents ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mail_queue ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX documents_clear ON documents(id) WHERE sealed = 0;
    CREATE INDEX mail_queue_clear ON mail_queue(id) WHERE sealed = 0;
    CREATE TABLE document_key (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        fingerprint TEXT NOT NULL,
        created     INTEGER NOT NULL
    );
    "#,
    // 17: the audit trail is kept by the retention rules (issue 23): the
    // purge may remove entries older than the time it names in
    // `audit_purge`, inside its own transaction; any other delete is
    // still refused, as is any change.
    r#"
    CREATE TABLE audit_purge (before INTEGER NOT NULL);
    DROP TRIGGER audit_no_delete;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        WHEN NOT EXISTS (SELECT 1 FROM audit_purge WHERE old.at < before)
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    "#,
    // 18: the purge counts the audit entries it removes as it counts
    // documents, records and mails, for /metrics.
    r#"
    ALTER TABLE purges ADD COLUMN audit_entries INTEGER NOT NULL DEFAULT 0;
    "#,
    // 19: a queued mail whose sealed bytes no longer open (changed on the
    // disk) can never be sent: it is set aside as failed, with the reason
    // in `last_error`, so the mails queued after it still go.
    r#"
    ALTER TABLE mail_queue ADD COLUMN failed_at INTEGER;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
