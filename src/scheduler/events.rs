//! Live events for the API and the dashboard: job states and call progress.
//! Each is sent after the fact it reports is committed to the store, so a
//! listener never sees something the store does not know. A slow listener
//! misses events (and can re-read the store) rather than slowing calls.

use tokio::sync::broadcast;

use crate::model::Fax;
/// The scheduler publishes events in the form the API carries them
/// (`GET /v2/events`), so no copy of the type is kept here.
pub use crate::status::Event;

/// The sending side, shared by the scheduler's threads.
pub struct Bus(broadcast::Sender<Event>);

impl Bus {
    pub fn new() -> Bus {
        Bus(broadcast::channel(1024).0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }

    pub fn send(&self, event: Event) {
        // No listener is fine.
        let _ = self.0.send(event);
    }

    pub fn job_status(&self, fax: &Fax) {
        self.job_status_with_retry(fax, None);
    }

    pub fn job_status_with_retry(&self, fax: &Fax, retry_in_s: Option<i64>) {
        self.send(Event::JobStatus {
            fax_id: fax.id.clone(),
            account_id: fax.account_id.clone(),
            status: fax.status,
            attempts: fax.attempts,
            retry_in_s,
            error: fax.error.clone(),
        });
    }
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}
