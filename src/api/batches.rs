//! `/v2/accounts/{A}/faxes/batches/{B}`: the summary of a fax sent to
//! several numbers at once (issue 22): how many of its faxes are in each
//! state, and each fax's id, number and state. The faxes themselves are
//! ordinary faxes (`/faxes/outbox/{id}`), each with its `batch_id`.

use serde_json::{Value, json};

use super::Ctx;
use super::faxes::Scope;
use super::reply::{Answer, ApiError, Success};
use crate::model::{BatchId, to_gregorian};
use crate::store::{Batch, StoreError};

/// A batch as the API (and `faxbox jobs batch --json`) shows it.
pub fn summary(batch: &Batch) -> Value {
    let faxes: Vec<Value> = batch
        .faxes
        .iter()
        .map(|f| {
            let mut fax = json!({
                "id": f.id,
                "to_number": f.to_number,
                "status": f.status.as_str(),
                "attempts": f.attempts,
            });
            if let Some(name) = &f.to_name {
                fax["to_name"] = json!(name);
            }
            if let Some(error) = &f.error {
                fax["error"] = json!(error);
            }
            fax
        })
        .collect();
    json!({
        "id": batch.id,
        "faxbox_id": batch.faxbox_id,
        "created": to_gregorian(batch.created),
        "total": batch.faxes.len(),
        "counts": batch.counts(),
        "done": batch.is_done(),
        "faxes": faxes,
    })
}

/// `GET .../faxes/batches/{B}`; a batch of another account, or of another
/// faxbox below `/faxboxes/{F}/faxes`, is not found.
pub(super) fn get(ctx: &Ctx, scope: &Scope<'_>, id: &str) -> Result<Answer, ApiError> {
    let not_found = || StoreError::NotFound {
        kind: "batch",
        id: id.to_owned(),
    };
    let batch = ctx.store.batch_in(scope.account, &BatchId(id.to_owned()))?;
    if let Some(faxbox) = &scope.faxbox
        && batch.faxbox_id.as_ref() != Some(&faxbox.id)
    {
        return Err(not_found().into());
    }
    Ok(Answer::Json(Success::ok(&summary(&batch))))
}
