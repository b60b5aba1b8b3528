//! Faxbox callbacks (Kazoo's `notifications.{inbound,outbound}.callback`):
//! an HTTP request to a faxbox's own URL when a fax arrives, completes or
//! fails. Like the mail queue, a callback is queued in the store, in the
//! same transaction as the event where the store makes it, and delivered
//! by the courier thread (`notify::Courier`) until the receiver answers 2xx.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use super::{ChangedRow, Result, Store, StoreError, select_all};
use crate::model::{Fax, FaxboxId, Folder, JobStatus, UnixTime, now};

/// Where and how a faxbox's callback for one direction is sent, as the
/// client stored it in `notifications.<direction>.callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    pub url: String,
    /// `POST` or `PUT`.
    pub method: &'static str,
    /// Form-encoded (`www-url-form-encoded`) rather than JSON.
    pub form: bool,
}

/// The callback settings of one direction in a faxbox's stored `extra`
/// (its `notifications` object is kept as the client sent it).
pub fn callback_target(
    extra: &serde_json::Map<String, Value>,
    direction: &str,
) -> Option<CallbackTarget> {
    let cb = extra
        .get("notifications")?
        .get(direction)?
        .get("callback")?;
    let url = cb.get("url")?.as_str()?.trim();
    if url.is_empty() {
        return None;
    }
    let text = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or_default();
    Some(CallbackTarget {
        url: url.to_owned(),
        method: if text("method").eq_ignore_ascii_case("put") {
            "PUT"
        } else {
            "POST"
        },
        form: text("type") == "www-url-form-encoded",
    })
}

/// What a callback tells the receiver (README "Callbacks").
#[derive(Debug, Clone, Serialize)]
pub struct CallbackBody {
    pub event_id: String,
    /// `received`, `completed` or `failed`.
    pub event: String,
    pub fax_id: String,
    pub faxbox_id: String,
    pub account_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub status: String,
    pub pages: u32,
    pub from_number: String,
    pub to_number: String,
    pub result_code: Option<i64>,
    pub result_text: String,
    pub created: UnixTime,
    pub modified: UnixTime,
}

impl CallbackBody {
    /// The body of the event `event` of `fax`; pages and result as the
    /// caller knows them (the receive report, the last attempt).
    pub fn of(fax: &Fax, event: &str, pages: u32, code: Option<i64>, text: &str) -> Self {
        let inbound = fax.folder == Folder::Inbox;
        CallbackBody {
            event_id: format!("{}.{event}", fax.id.as_str()),
            event: event.to_owned(),
            fax_id: fax.id.as_str().to_owned(),
            faxbox_id: fax
                .faxbox_id
                .as_ref()
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default(),
            account_id: fax.account_id.as_str().to_owned(),
            direction: if inbound { "inbound" } else { "outbound" }.to_owned(),
            status: match fax.status {
                Some(s) => s.as_str().to_owned(),
                None => "received".to_owned(),
            },
            pages,
            from_number: fax.from_number.clone().unwrap_or_default(),
            to_number: fax.to_number.clone(),
            result_code: code,
            result_text: text.to_owned(),
            created: fax.created,
            modified: fax.modified,
        }
    }

    /// The bytes sent and the content type, as the faxbox asks.
    pub fn encode(&self, form: bool) -> (Vec<u8>, &'static str) {
        if !form {
            let json = serde_json::to_vec(self).expect("callback bodies serialize");
            return (json, "application/json");
        }
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Value::Object(m) = serde_json::to_value(self).expect("callback bodies serialize") {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.append_pair(&k, &v);
            }
        }
        (
            out.finish().into_bytes(),
            "application/x-www-form-urlencoded",
        )
    }
}

/// A callback waiting for (or done with) its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedCallback {
    pub id: i64,
    pub event_id: String,
    pub account_id: String,
    pub faxbox_id: String,
    pub fax_id: String,
    pub url: String,
    pub method: String,
    pub content_type: String,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub attempts: u32,
    pub status_code: Option<u16>,
    pub last_error: Option<String>,
    pub due_at: UnixTime,
    pub sent_at: Option<UnixTime>,
    pub created: UnixTime,
}

const COLUMNS: &str = "id, event_id, account_id, faxbox_id, fax_id, url, method, content_type, \
     body, attempts, status_code, last_error, due_at, sent_at, created";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedCallback> {
    Ok(QueuedCallback {
        id: r.get(0)?,
        event_id: r.get(1)?,
        account_id: r.get(2)?,
        faxbox_id: r.get(3)?,
        fax_id: r.get(4)?,
        url: r.get(5)?,
        method: r.get(6)?,
        content_type: r.get(7)?,
        body: r.get(8)?,
        attempts: r.get(9)?,
        status_code: r.get(10)?,
        last_error: r.get(11)?,
        due_at: r.get(12)?,
        sent_at: r.get(13)?,
        created: r.get(14)?,
    })
}

/// Queues the callback of `event` for `fax` inside a caller's transaction,
/// if its faxbox has one for the fax's direction. One event is queued once
/// (its id is unique), however often it is reported.
pub(super) fn queue_callback(
    tx: &rusqlite::Transaction<'_>,
    fax: &Fax,
    body: &CallbackBody,
) -> Result<Option<i64>> {
    let Some(faxbox) = &fax.faxbox_id else {
        return Ok(None);
    };
    let doc: Option<String> = tx
        .query_row(
            "SELECT doc FROM faxboxes WHERE id = ?1",
            [faxbox.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let extra = doc
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        .and_then(|d| d.get("extra").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    let Some(target) = callback_target(&extra, &body.direction) else {
        return Ok(None);
    };
    let (bytes, content_type) = body.encode(target.form);
    let t = now();
    let n = tx.execute(
        "INSERT OR IGNORE INTO callbacks (event_id, account_id, faxbox_id, fax_id, url, method,
             content_type, body, due_at, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            body.event_id,
            fax.account_id.as_str(),
            faxbox.as_str(),
            fax.id.as_str(),
            target.url,
            target.method,
            content_type,
            bytes,
            t
        ],
    )?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

impl Store {
    /// Queues the callback of a fax's event (see [`queue_callback`]).
    pub fn enqueue_callback(&self, fax: &Fax, body: &CallbackBody) -> Result<Option<i64>> {
        self.write(|tx| queue_callback(tx, fax, body))
    }

    /// The callback of a finished outbound job: `completed` or `failed`
    /// with the last attempt's pages and result.
    pub fn enqueue_outbound_callback(&self, fax: &Fax) -> Result<Option<i64>> {
        let event = match fax.status {
            Some(JobStatus::Completed) => "completed",
            Some(JobStatus::Failed) => "failed",
            _ => return Ok(None),
        };
        let last = self.attempts(&fax.id)?.pop();
        let (pages, code, text) = match &last {
            Some(a) => (
                a.report.pages_sent,
                a.report.result_code,
                a.report
                    .result_text
                    .clone()
                    .or_else(|| fax.error.clone())
                    .unwrap_or_default(),
            ),
            None => (0, None, fax.error.clone().unwrap_or_default()),
        };
        let body = CallbackBody::of(fax, event, pages, code, &text);
        self.enqueue_callback(fax, &body)
    }

    /// Callbacks due for a delivery attempt, oldest first.
    pub fn due_callbacks(&self, at: UnixTime, limit: u32) -> Result<Vec<QueuedCallback>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM callbacks WHERE sent_at IS NULL AND due_at <= ?1
                 ORDER BY due_at, id LIMIT ?2"
                ),
                params![at, limit],
                from_row,
            )
        })
    }

    /// When the next undelivered callback falls due.
    pub fn next_callback_due(&self) -> Result<Option<UnixTime>> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT min(due_at) FROM callbacks WHERE sent_at IS NULL",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Records that a callback is about to be sent: it is not due again for
    /// `retry_in_s`, so a crash before the answer is recorded does not
    /// send it again at once (the receiver drops a repeat by its event id).
    pub fn callback_sending(&self, id: i64, retry_in_s: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE callbacks SET due_at = ?2 WHERE id = ?1 AND sent_at IS NULL",
                params![id, now() + retry_in_s.max(0)],
            )?;
            Ok(())
        })
    }

    /// Records the receiver's 2xx answer: the callback is done.
    pub fn callback_delivered(&self, id: i64, status: u16) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE callbacks SET sent_at = ?2, attempts = attempts + 1, status_code = ?3,
                     last_error = NULL WHERE id = ?1",
                params![id, now(), status],
            )?;
            Ok(())
        })
    }

    /// Records a failed try (no answer, or not 2xx); the next is
    /// `retry_in_s` from now.
    pub fn callback_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry_in_s: i64,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE callbacks SET attempts = attempts + 1, status_code = ?2, last_error = ?3,
                     due_at = ?4 WHERE id = ?1",
                params![id, status, error, now() + retry_in_s.max(0)],
            )?;
            Ok(())
        })
    }

    /// The callbacks of a faxbox, newest first: what was sent, how often,
    /// and what the receiver last answered.
    pub fn faxbox_callbacks(&self, faxbox: &FaxboxId, limit: u32) -> Result<Vec<QueuedCallback>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM callbacks WHERE faxbox_id = ?1 ORDER BY id DESC LIMIT ?2"
                ),
                params![faxbox.as_str(), limit],
                from_row,
            )
        })
    }

    /// The key a faxbox signs its callbacks with.
    pub fn callback_key(&self, faxbox: &FaxboxId) -> Result<String> {
        self.read(|conn| {
            conn.query_row(
                "SELECT callback_key FROM faxboxes WHERE id = ?1",
                [faxbox.as_str()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten()
            .ok_or_else(|| StoreError::NotFound {
                kind: "faxbox",
                id: faxbox.as_str().to_owned(),
            })
        })
    }

    /// Gives a faxbox a new callback signing key and returns it; the old
    /// one stops working at once.
    pub fn rotate_callback_key(&self, faxbox: &FaxboxId) -> Result<String> {
        let key = hex::encode(rand::random::<[u8; 32]>());
        self.write(|tx| {
            tx.execute(
                "UPDATE faxboxes SET callback_key = ?2 WHERE id = ?1",
                params![faxbox.as_str(), key],
            )
            .changed("faxbox", faxbox)
        })?;
        Ok(key)
    }
}
