//! The combined receipt of a batch (issue 22): one mail when every fax of
//! a request to several numbers has ended, listing each number with its
//! result, in place of one receipt per fax. Queued by `queue_batch_receipts`,
//! which the scheduler runs after each dispatch pass: a batch whose last
//! fax ended (on a line, by a cancel, or before a crash) gets its mail then,
//! exactly once (`Store::queue_batch_receipt`).

use tracing::warn;

use super::{Mail, NotifyError, OutboundFacts, caller, compose, outbound_recipients};
use crate::model::JobStatus;
use crate::store::{Batch, Store};

const OUTBOUND_BATCH: &str = include_str!("../../assets/templates/outbound_batch.txt");

/// The combined receipt of a finished batch; `facts` is one of its faxes
/// (they share the sender, the faxbox and whom to tell). `None` when
/// nobody is to be told.
pub fn batch_receipt(
    from: &str,
    facts: &OutboundFacts<'_>,
    batch: &Batch,
) -> Result<Option<Mail>, NotifyError> {
    let sent = batch
        .faxes
        .iter()
        .filter(|f| f.status == JobStatus::Completed)
        .count();
    let results = batch
        .faxes
        .iter()
        .map(|f| {
            let to = match &f.to_name {
                Some(name) if name != &f.to_number => format!("{} ({name})", f.to_number),
                _ => f.to_number.clone(),
            };
            let result = match f.status {
                JobStatus::Completed => "sent".to_owned(),
                JobStatus::Cancelled => format!(
                    "cancelled{}",
                    f.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
                _ => format!(
                    "NOT SENT{}",
                    f.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            };
            let tries = match f.attempts {
                1 => "1 attempt".to_owned(),
                n => format!("{n} attempts"),
            };
            format!("  {to}: {result} ({tries}; fax id {})", f.id)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let fax = facts.fax;
    let fields = [
        ("total", batch.faxes.len().to_string()),
        ("sent", sent.to_string()),
        ("not_sent", (batch.faxes.len() - sent).to_string()),
        ("results", results),
        ("caller", caller(fax)),
        (
            "faxbox",
            facts.faxbox.map_or("(none)".into(), |f| f.name.clone()),
        ),
        ("batch_id", batch.id.to_string()),
    ];
    compose(
        from,
        outbound_recipients(facts),
        OUTBOUND_BATCH,
        &fields,
        None,
    )
}

/// Queues the combined receipt of every batch whose faxes have all ended
/// and that has none yet; how many mails were queued.
pub fn queue_batch_receipts(store: &Store, from: &str) -> usize {
    let finished = match store.finished_batches_without_receipt(100) {
        Ok(ids) => ids,
        Err(e) => {
            warn!("cannot look for finished batches: {e}");
            return 0;
        }
    };
    let mut queued = 0;
    for id in finished {
        let one = (|| {
            let batch = store.batch(&id)?;
            // Every fax of it deleted: nothing to tell.
            let fax = match batch.faxes.first() {
                Some(f) => Some(store.fax(&f.id)?),
                None => None,
            };
            let faxbox = batch.faxbox_id.as_ref().and_then(|f| store.faxbox(f).ok());
            let owner_email = faxbox
                .as_ref()
                .and_then(|f| f.owner_id.as_ref())
                .and_then(|u| store.user(u).ok())
                .map(|u| u.email);
            store.queue_batch_receipt(&id, |batch| {
                let facts = OutboundFacts {
                    fax: fax.as_ref()?,
                    faxbox: faxbox.as_ref(),
                    owner_email: owner_email.as_deref(),
                    history: &[],
                    pdf: None,
                };
                match batch_receipt(from, &facts, batch) {
                    Ok(mail) => mail.map(|m| (m.recipients, m.message)),
                    Err(e) => {
                        warn!(batch = %batch.id, "cannot compose the batch receipt: {e}");
                        None
                    }
                }
            })
        })();
        match one {
            Ok(true) => queued += 1,
            Ok(false) => {}
            Err(e) => warn!(batch = %id, "cannot queue the batch receipt: {e}"),
        }
    }
    queued
}
