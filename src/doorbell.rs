//! A doorbell for a worker thread: others ring it when there is work, or
//! tell it to stop; the worker sleeps on it until then or a timeout. Used
//! by the scheduler's dispatcher, and through `BellThread` by the postman
//! and the courier.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct State {
    rung: bool,
    stop: bool,
}

#[derive(Default)]
pub struct Doorbell {
    state: Mutex<State>,
    cv: Condvar,
}

impl Doorbell {
    /// There is work: wake the worker now.
    pub fn ring(&self) {
        self.lock().rung = true;
        self.cv.notify_all();
    }

    /// Ask the worker to stop.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Sleeps until rung, stopped or `timeout`; false once stopped.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |s| !s.rung && !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        guard.rung = false;
        !guard.stop
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere does not make a bell unusable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A named thread that works off a queue and sleeps on its own doorbell
/// in between: the postman's and the courier's. Stopping it (or dropping
/// it) rings the stop, lets the work in hand finish and joins the thread;
/// what is queued stays in the store for the next start.
pub struct BellThread {
    bell: Arc<Doorbell>,
    thread: Option<JoinHandle<()>>,
}

impl BellThread {
    /// Starts `work` on a thread called `name`; `work` returns once the
    /// bell it is given says stop.
    pub fn start(
        name: &str,
        work: impl FnOnce(&Doorbell) + Send + 'static,
    ) -> std::io::Result<BellThread> {
        let bell = Arc::new(Doorbell::default());
        let thread = std::thread::Builder::new().name(name.into()).spawn({
            let bell = bell.clone();
            move || work(&bell)
        })?;
        Ok(BellThread {
            bell,
            thread: Some(thread),
        })
    }

    /// There is work: the thread starts on it now rather than at its next
    /// timeout.
    pub fn wake(&self) {
        self.bell.ring();
    }

    /// A handle that rings the bell without keeping the thread: its owner
    /// still decides when it stops.
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let bell = Arc::downgrade(&self.bell);
        move || {
            if let Some(bell) = bell.upgrade() {
                bell.ring();
            }
        }
    }
}

impl Drop for BellThread {
    fn drop(&mut self) {
        self.bell.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn ring_wakes_and_stop_ends() {
        let bell = Arc::new(Doorbell::default());
        let t = Instant::now();
        assert!(
            bell.wait(Duration::from_millis(20)),
            "a timeout is not a stop"
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        let ringer = {
            let bell = bell.clone();
            std::thread::spawn(move || bell.ring())
        };
        assert!(bell.wait(Duration::from_secs(30)));
        ringer.join().unwrap();
        bell.stop();
        assert!(!bell.wait(Duration::from_secs(30)));
        assert!(bell.stopping());
    }
}
