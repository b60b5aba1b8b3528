//! `/v2/accounts/{A}/faxes/smtplog`: the emails that could not become a
//! fax, newest first (under a faxbox: that faxbox's), and one of them in full (Kazoo's `fax_smtp_log`,
//! reference 1.6 and 2.2). Timestamps are Gregorian seconds.

use serde_json::{Value, json};

use super::Ctx;
use super::reply::{Answer, ApiError, Success};
use crate::model::{AccountId, FaxboxId, FieldError, to_gregorian};
use crate::store::SmtpLogEntry;

/// Most rows in one listing, and the default.
const MAX_ROWS: u32 = 1000;
const DEFAULT_ROWS: u32 = 50;

/// The listing row: `id`, `from`, `to`, `error` (the first), `created`.
pub fn list(
    ctx: &Ctx,
    account: &AccountId,
    faxbox: Option<&FaxboxId>,
    page_size: Option<&str>,
) -> Result<Answer, ApiError> {
    let limit = match page_size {
        None => DEFAULT_ROWS,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_ROWS).contains(&n) => n,
            _ => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "page_size",
                    "format",
                    format!("page_size must be a whole number from 1 to {MAX_ROWS}, not {text:?}"),
                )]));
            }
        },
    };
    let rows: Vec<Value> = ctx
        .store
        .smtp_log(account, faxbox, limit)?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "from": e.from,
                "to": e.to,
                "error": e.errors.first(),
                "created": to_gregorian(e.created),
            })
        })
        .collect();
    Ok(Answer::Json(Success::ok(&rows)))
}

/// One entry with every Kazoo key.
pub fn get(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let entry: SmtpLogEntry = ctx.store.smtp_log_entry(account, id)?;
    let created = to_gregorian(entry.created);
    let mut doc = serde_json::to_value(&entry).expect("log entries serialize");
    doc["created"] = json!(created);
    Ok(Answer::Json(Success::ok(&doc)))
}
