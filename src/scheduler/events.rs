//! Live events for the API and the dashboard: job states and call progress.
//! Each is sent after the fact it reports is committed to the store, so a
//! listener never sees something the store does not know. A slow listener
//! misses events (and can re-read the store) rather than slowing calls.

use tokio::sync::broadcast;

use crate::model::{AccountId, AttemptStage, Fax, FaxId, JobStatus};

/// What happened, inside the box; the API carries it as
/// [`crate::status::Event`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A job changed state.
    JobStatus {
        fax_id: FaxId,
        account_id: AccountId,
        status: Option<JobStatus>,
        attempts: u8,
        /// When a retry is planned: the delay the retry policy chose, in
        /// seconds (before any test time scaling).
        retry_in_s: Option<i64>,
        error: Option<String>,
    },
    /// A call made progress.
    Call {
        fax_id: FaxId,
        account_id: AccountId,
        line: String,
        attempt: u32,
        stage: AttemptStage,
        /// In words, Kazoo style: `Fax negotiated at 14400`, `Sent Page 2 of 5`.
        status: String,
    },
}

/// The wire form of an event (`/v2/events`, `src/status.rs`).
impl From<Event> for crate::status::Event {
    fn from(event: Event) -> Self {
        match event {
            Event::JobStatus {
                fax_id,
                account_id,
                status,
                attempts,
                retry_in_s,
                error,
            } => crate::status::Event::JobStatus {
                fax_id,
                account_id,
                status,
                attempts,
                retry_in_s,
                error,
            },
            Event::Call {
                fax_id,
                account_id,
                line,
                attempt,
                stage,
                status,
            } => crate::status::Event::Call {
                fax_id,
                account_id,
                line,
                attempt,
                stage,
                status,
            },
        }
    }
}

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
