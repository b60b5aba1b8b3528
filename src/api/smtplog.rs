//! `/v2/accounts/{A}/faxes/smtplog`: the emails that could not become a
//! fax, newest first (under a faxbox: that faxbox's), and one of them in full (Kazoo's `fax_smtp_log`,
//! docs/kazoo.md 1.6 and 2.2). Timestamps are Gregorian seconds.

use serde_json::{Value, json};

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, Paging};
use crate::model::{AccountId, FaxboxId, to_gregorian};
use crate::store::SmtpLogEntry;

/// The newest entries a listing pages through: a log older than these is
/// history no client pages back to.
const MAX_ROWS: u32 = 10_000;

/// The listing row: `id`, `from`, `to`, `error` (the first), `created`,
/// paged as every Kazoo listing (`page_size`, `start_key`, `filter_*`).
pub fn list(
    ctx: &Ctx,
    account: &AccountId,
    faxbox: Option<&FaxboxId>,
    paging: &Paging,
) -> Result<Answer, ApiError> {
    let rows: Vec<Value> = ctx
        .store
        .smtp_log(account, faxbox, MAX_ROWS)?
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
    paging.answer(rows)
}

/// One entry with every Kazoo key.
pub fn get(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let entry: SmtpLogEntry = ctx.store.smtp_log_entry(account, id)?;
    let created = to_gregorian(entry.created);
    let mut doc = serde_json::to_value(&entry).expect("log entries serialize");
    doc["created"] = json!(created);
    Ok(Answer::Json(Success::ok(&doc)))
}
