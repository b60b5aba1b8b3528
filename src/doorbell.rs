//! A doorbell for a worker thread: others ring it when there is work, or
//! tell it to stop; the worker sleeps on it until then or a timeout. Used
//! by the scheduler's dispatcher and the postman.

use std::sync::{Condvar, Mutex};
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
