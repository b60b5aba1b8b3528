//! The API's side of the audit trail (issue 23): every change made through
//! the API, and every read of a fax or its document, is recorded with the
//! caller (the user or API key behind the token) and its address; `GET
//! /v2/accounts/{id}/audit` reads an account's trail (the box's admin
//! reaches any account, an account only its own).

use serde_json::{Value, json};

use super::reply::{Answer, ApiError};
use super::{Ctx, Paging, Request, USER_SUBJECT};
use crate::model::AccountId;
use crate::store::{AuditEvent, AuditList, Mark};

/// What a successful request on an account's path did, if it is audited:
/// reads of listings are not.
fn action(method: &str, rest: &[&str]) -> Option<&'static str> {
    let last = rest.last().copied().unwrap_or("");
    let is_fax = |r: &[&str]| {
        matches!(
            r,
            ["faxes", "outbox" | "inbox" | "outgoing", _] | ["outbox" | "inbox" | "outgoing", _]
        )
    };
    let fax_path = match rest {
        ["faxboxes", _, "faxes", tail @ ..] => {
            let mut t = vec!["faxes"];
            t.extend_from_slice(tail);
            t
        }
        _ => rest.to_vec(),
    };
    // A PUT to a collection creates; to one object, acts on it (a fax's
    // resubmit, forward, cancel).
    let collection = matches!(
        last,
        "" | "faxes" | "outgoing" | "faxboxes" | "users" | "api_keys" | "api_key"
    );
    match method {
        "GET" | "HEAD" if last == "attachment" => Some("download"),
        "GET" | "HEAD" if is_fax(&fax_path) => Some("read"),
        "GET" | "HEAD" => None,
        "DELETE" if last == "attachment" => Some("delete_documents"),
        "DELETE" => Some("delete"),
        "POST" | "PATCH" => Some("update"),
        "PUT" if collection => Some("create"),
        "PUT" => Some("action"),
        _ => None,
    }
}

/// Records a request that succeeded; a failure to record is logged, not
/// turned into a failed request (what it did is done).
pub(super) fn record(
    ctx: &Ctx,
    rq: &Request,
    token: &str,
    account: &AccountId,
    rest: &[&str],
    answer: &Answer,
) {
    let Some(action) = action(&rq.method, rest) else {
        return;
    };
    let mut object = rest.join("/");
    // A new object's id is in the reply.
    if action == "create"
        && let Answer::Json(success) = answer
        && let Some(id) = success.data.get("id").and_then(|v| v.as_str())
    {
        object = format!("{object}/{id}");
    }
    let actor = match ctx.sessions.key_hash(token) {
        Some(subject) => match subject.strip_prefix(USER_SUBJECT) {
            Some(user) => format!("user:{user}"),
            None => format!("api_key:{}", &subject[..subject.len().min(12)]),
        },
        None => "unknown".to_owned(),
    };
    let source = rq
        .peer
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if let Err(e) = ctx.store.audit(AuditEvent {
        account: Some(account),
        actor: &actor,
        action,
        object: &object,
        source: &source,
    }) {
        tracing::warn!(%account, action, object, "cannot record in the audit trail: {e}");
    }
}

/// `GET /v2/accounts/{id}/audit`: the account's trail, newest first, paged
/// as every listing (`page_size`, `start_key`, `filter_*`; `limit` is the
/// older name of `page_size`), read a page at a time from its index.
pub(super) fn list(ctx: &Ctx, account: &AccountId, rq: &Request) -> Result<Answer, ApiError> {
    let mut paging = Paging::from_query(&rq.query)?;
    if let Some(n) = rq.query("limit") {
        let n = n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                ApiError::field(
                    "limit",
                    "type",
                    "limit must be a whole number from 1 to 100000",
                )
            })?;
        paging = paging.with_size(n);
    }
    let list = AuditList {
        account: account.clone(),
    };
    let locate = |key: &str| match key.parse::<i64>() {
        Ok(id) => Ok(ctx.store.audit_mark(&list, id)?),
        Err(_) => Ok(None),
    };
    let read = |start, n| -> Result<Vec<(Mark, Value)>, ApiError> {
        Ok(ctx
            .store
            .audit_page(&list, start, n)?
            .into_iter()
            .map(|(mark, e)| (mark, json!(e)))
            .collect())
    };
    paging.answer_from(locate, read, Ok)
}

#[cfg(test)]
mod tests {
    use super::action;

    #[test]
    fn reads_of_faxes_and_every_change_are_audited_listings_are_not() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("GET", &["faxes", "outbox"], None),
            ("GET", &["faxes", "outbox", "f1"], Some("read")),
            (
                "GET",
                &["faxes", "inbox", "f1", "attachment"],
                Some("download"),
            ),
            (
                "GET",
                &["faxboxes", "b1", "faxes", "inbox", "f1"],
                Some("read"),
            ),
            ("GET", &["faxboxes", "b1"], None),
            ("PUT", &["faxes"], Some("create")),
            ("PUT", &["faxes", "outgoing"], Some("create")),
            ("PUT", &["faxes", "outbox", "f1"], Some("action")),
            ("PUT", &["faxboxes"], Some("create")),
            (
                "PUT",
                &["faxboxes", "b1", "faxes", "outgoing"],
                Some("create"),
            ),
            ("PUT", &["faxes", "outgoing", "f1"], Some("action")),
            ("POST", &["faxboxes", "b1"], Some("update")),
            ("PATCH", &["configs", "fax"], Some("update")),
            (
                "DELETE",
                &["faxes", "outbox", "f1", "attachment"],
                Some("delete_documents"),
            ),
            ("DELETE", &["faxes", "outbox", "f1"], Some("delete")),
        ];
        for (method, rest, expected) in cases {
            assert_eq!(action(method, rest), *expected, "{method} {rest:?}");
        }
    }
}
