//! The live status text of jobs on a line (`Sent Page 2 of 3`), kept from
//! the scheduler's events so that `GET /faxes/outgoing/{id}` can show it
//! (reference 2.6) without asking the line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::FaxId;
use crate::scheduler::Event;

/// Fax id -> the last progress text of its call in progress.
#[derive(Clone, Default)]
pub struct LiveStatus {
    texts: Arc<Mutex<HashMap<FaxId, String>>>,
}

impl LiveStatus {
    pub fn text(&self, fax: &FaxId) -> Option<String> {
        self.texts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(fax)
            .cloned()
    }

    pub fn apply(&self, event: &Event) {
        let mut texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Call { fax_id, status, .. } => {
                texts.insert(fax_id.clone(), status.clone());
            }
            // A call that ended leaves nothing live behind.
            Event::JobStatus { fax_id, .. } => {
                texts.remove(fax_id);
            }
        }
    }

    /// Follows `events` on a thread of its own until the scheduler stops.
    pub fn follow(
        &self,
        mut events: tokio::sync::broadcast::Receiver<Event>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        use tokio::sync::broadcast::error::RecvError;
        let live = self.clone();
        std::thread::Builder::new()
            .name("api-live".into())
            .spawn(move || {
                loop {
                    match events.blocking_recv() {
                        Ok(e) => live.apply(&e),
                        // Missed events only mean a stale text for a moment.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    }
                }
            })
    }
}
