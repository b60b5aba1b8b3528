//! The intake gate: open while the box takes new faxes, closed once it
//! starts to stop. The HTTP API and the fax printers keep answering reads
//! while the calls in progress finish, but refuse new faxes with "try again
//! later" (HTTP 503 with Retry-After, IPP server-error-not-accepting-jobs),
//! so nothing is accepted that no call would send (issue 19).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared by the appliance (which closes it) and every intake (which asks).
#[derive(Debug, Clone, Default)]
pub struct IntakeGate(Arc<AtomicBool>);

impl IntakeGate {
    /// No new faxes from now on.
    pub fn close(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// How long a client refused at a closed gate is told to wait (HTTP
/// Retry-After, RFC 9110 section 10.2.3): about one restart.
pub const RETRY_AFTER_S: u32 = 60;
