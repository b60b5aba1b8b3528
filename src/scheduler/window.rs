//! Sending windows in the dispatcher (issue 22): a due job whose faxbox's
//! windows are closed now is not started but held until the next opening,
//! its due time moved there so that listings and the dashboard show when
//! it will go. Queued faxes, faxes sent later and retries are all held the
//! same way, since each is simply a job that fell due.

use std::collections::HashMap;

use crate::model::{FaxboxId, UnixTime};
use crate::sending_window::{self, SendingWindow};
use crate::store::{DueJob, Store, StoreError};
use crate::timezone::Zone;

/// Each faxbox's windows, read once per pass of the dispatcher.
#[derive(Default)]
pub(super) struct Windows {
    read: HashMap<FaxboxId, (Vec<SendingWindow>, Zone)>,
}

impl Windows {
    /// When `job` may start: `None` now, else the opening it must wait for.
    pub(super) fn opening(
        &mut self,
        store: &Store,
        job: &DueJob,
        at: UnixTime,
    ) -> crate::store::Result<Option<UnixTime>> {
        let Some(id) = &job.faxbox_id else {
            return Ok(None);
        };
        if !self.read.contains_key(id) {
            let entry = match store.faxbox(id) {
                Ok(f) => (
                    sending_window::of_faxbox(&f),
                    Zone::of(f.fax_timezone.as_deref()),
                ),
                Err(StoreError::NotFound { .. }) => (Vec::new(), Zone::Machine),
                Err(e) => return Err(e),
            };
            self.read.insert(id.clone(), entry);
        }
        let (windows, zone) = &self.read[id];
        let opens = sending_window::next_opening(windows, *zone, at);
        Ok((opens > at).then_some(opens))
    }
}
