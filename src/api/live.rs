//! The live side of the API, fed by the scheduler's events (which are
//! already in their wire form, `status::Event`): the status text
//! of jobs on a line (`Sent Page 2 of 3`), so that `GET
//! /faxes/outgoing/{id}` can show it (docs/kazoo.md 2.6) without asking the
//! line, and the listeners of `GET /v2/events`, each handed every event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::model::FaxId;
use crate::status::Event;

/// Events a listener may fall behind by before it is told it missed some.
const LISTENER_BACKLOG: usize = 256;

/// Fax id -> the last progress text of its call in progress, and the
/// event stream listeners.
#[derive(Clone, Default)]
pub struct LiveStatus {
    texts: Arc<Mutex<HashMap<FaxId, String>>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
}

struct Listener {
    events: SyncSender<Event>,
    missed: Arc<AtomicBool>,
}

/// One listener's end: the events, in order, and whether some were
/// dropped because it did not keep up.
pub struct Listening {
    pub events: Receiver<Event>,
    missed: Arc<AtomicBool>,
}

impl Listening {
    /// Whether events were dropped since the last call (then the listener
    /// should read the status again instead of trusting its picture).
    pub fn missed_some(&self) -> bool {
        self.missed.swap(false, Ordering::AcqRel)
    }
}

impl LiveStatus {
    pub fn text(&self, fax: &FaxId) -> Option<String> {
        self.texts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(fax)
            .cloned()
    }

    /// A new listener: it gets every event applied from now on.
    pub fn listen(&self) -> Listening {
        let (tx, rx) = std::sync::mpsc::sync_channel(LISTENER_BACKLOG);
        let missed = Arc::new(AtomicBool::new(false));
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Listener {
                events: tx,
                missed: missed.clone(),
            });
        Listening { events: rx, missed }
    }

    pub fn apply(&self, event: &Event) {
        {
            let mut texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::Call { fax_id, status, .. } => {
                    texts.insert(fax_id.clone(), status.clone());
                }
                // A call that ended leaves nothing live behind.
                Event::JobStatus { fax_id, .. } => {
                    texts.remove(fax_id);
                }
                Event::Shutdown { .. } | Event::Missed { .. } => {}
            }
        }
        // A slow listener misses events rather than holding up the others.
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| match l.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    l.missed.store(true, Ordering::Release);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    /// Follows `events` (the scheduler's) on a thread of its own until the
    /// scheduler stops.
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
                        // Missed events only mean a stale text for a moment;
                        // stream listeners are told they missed some.
                        Err(RecvError::Lagged(_)) => live.lagged(),
                        Err(RecvError::Closed) => return,
                    }
                }
            })
    }

    fn lagged(&self) {
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            l.missed.store(true, Ordering::Release);
        }
    }
}
