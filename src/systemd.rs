//! Telling systemd how `faxbox serve` is doing (`Type=notify` in
//! `systemd/faxbox.service`): READY=1 once every port listens, a STATUS=
//! line for `systemctl status`, WATCHDOG=1 pings while the runtime is alive,
//! and STOPPING=1 when a stop begins.
//!
//! Outside systemd there is no `NOTIFY_SOCKET` and every call does nothing,
//! so `faxbox serve` in a terminal and the in-process tests are unaffected.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::warn;

/// The box listens and takes work: systemd may start what depends on it.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A stop was asked for; calls in progress may still finish.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: calls in progress may finish"),
    ]);
}

/// When systemd watches this process (`WatchdogSec=`), pings it from the
/// async runtime at half the interval it asked for, as sd_watchdog_enabled(3)
/// advises: if the runtime hangs, the pings stop and systemd restarts the
/// box. Returns the interval, or `None` when no watchdog is set.
pub fn spawn_watchdog() -> Option<Duration> {
    let timeout = sd_notify::watchdog_enabled()?;
    let every = (timeout / 2).max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
    Some(every)
}

/// Does nothing without `NOTIFY_SOCKET`; a failure is logged, never fatal.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}
