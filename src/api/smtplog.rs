//! `/v2/accounts/{A}/faxes/smtplog`: the emails that could not become a
//! fax, newest first (under a faxbox: that faxbox's), and one of them in full (Kazoo's `fax_smtp_log`,
//! docs/kazoo.md 1.6 and 2.2). Timestamps are Gregorian seconds.

use serde_json::{Value, json};

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, Paging};
use crate::model::{AccountId, FaxboxId, to_gregorian};
use crate::store::{Mark, SmtpLogEntry, SmtpLogList};

/// The listing row: `id`, `from`, `to`, `error` (the first), `created`,
/// paged as every Kazoo listing (`page_size`, `start_key`, `filter_*`)
/// from the log's index, newest first.
pub fn list(
    ctx: &Ctx,
    account: &AccountId,
    faxbox: Option<&FaxboxId>,
    paging: &Paging,
) -> Result<Answer, ApiError> {
    let list = SmtpLogList {
        account: account.clone(),
        faxbox: faxbox.cloned(),
    };
    let locate = |key: &str| Ok(ctx.store.smtp_log_mark(&list, key)?);
    let read = |start, n| -> Result<Vec<(Mark, Value)>, ApiError> {
        Ok(ctx
            .store
            .smtp_log_page(&list, start, n)?
            .into_iter()
            .map(|(mark, e)| (mark, row(e)))
            .collect())
    };
    paging.answer_from(locate, read, Ok)
}

fn row(e: SmtpLogEntry) -> Value {
    json!({
        "id": e.id,
        "from": e.from,
        "to": e.to,
        "error": e.errors.first(),
        "created": to_gregorian(e.created),
    })
}

/// One entry with every Kazoo key.
pub fn get(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let entry: SmtpLogEntry = ctx.store.smtp_log_entry(account, id)?;
    let created = to_gregorian(entry.created);
    let mut doc = serde_json::to_value(&entry).expect("log entries serialize");
    doc["created"] = json!(created);
    Ok(Answer::Json(Success::ok(&doc)))
}
