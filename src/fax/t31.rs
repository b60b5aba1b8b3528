//! A soft Class 1 fax modem: SpanDSP's T.31 (the modem iaxmodem is built
//! on), with an AT command side and an 8 kHz audio side.
//!
//! Tests and the selftest put one behind a pty, so the modem line's driver
//! talks AT to a real modem implementation whose audio goes over a
//! simulated telephone line ([`super::Wire`]). The owner decides what the
//! "telephone network" does: [`SoftModem::take_controls`] says when the
//! modem went off hook to dial or answer, and [`SoftModem::call_event`]
//! reports the network's answer (ringing, connected, busy, ...).

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use spandsp_sys as sys;

use super::session::CHUNK_SAMPLES;
use super::wire::Terminal;

/// What the modem asked of the telephone line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModemControl {
    /// `ATD`: go off hook and dial this number.
    Dial(String),
    /// `ATA`: pick up the ringing line.
    Answer,
    /// `ATH` or the end of a call: back on hook.
    HangUp,
}

/// What the network tells the modem (`at_call_event_e` in at_interpreter.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkEvent {
    /// The line rings (the modem says `RING`).
    Ringing,
    /// The dialled number picked up.
    Connected,
    /// The modem's `ATA` took the call.
    Answered,
    Busy,
    NoDialTone,
    NoAnswer,
    /// The far end hung up.
    HungUp,
}

impl NetworkEvent {
    fn to_spandsp(self) -> c_int {
        // at_interpreter.h `enum at_call_event_e`, which bindgen leaves out.
        match self {
            NetworkEvent::Ringing => 1,
            NetworkEvent::Connected => 2,
            NetworkEvent::Answered => 3,
            NetworkEvent::Busy => 4,
            NetworkEvent::NoDialTone => 5,
            NetworkEvent::NoAnswer => 6,
            NetworkEvent::HungUp => 7,
        }
    }
}

// at_interpreter.h, which bindgen leaves these out of.
unsafe extern "C" {
    fn at_reset_call_info(s: *mut sys::at_state_t);
    fn at_set_call_info(s: *mut sys::at_state_t, id: *const c_char, value: *const c_char);
}

// at_interpreter.h `enum at_modem_control_operation_e`.
const AT_MODEM_CONTROL_CALL: c_int = 0;
const AT_MODEM_CONTROL_ANSWER: c_int = 1;
const AT_MODEM_CONTROL_HANGUP: c_int = 2;
const AT_MODEM_CONTROL_ONHOOK: c_int = 4;
const AT_MODEM_CONTROL_CTS: c_int = 7;

/// What the callbacks write to; boxed so its address never moves.
struct ModemHooks {
    /// Bytes for the DTE (responses and received data).
    to_dte: RefCell<Vec<u8>>,
    controls: RefCell<Vec<ModemControl>>,
    /// The modem's flow control towards the DTE (circuit 106).
    clear_to_send: Cell<bool>,
}

/// An owning handle on one SpanDSP T.31 modem.
pub struct SoftModem {
    t31: NonNull<sys::t31_state_t>,
    hooks: NonNull<ModemHooks>,
    scratch: Vec<i16>,
    on_hook: bool,
}

// SAFETY: the modem exclusively owns its t31 state and hooks; SpanDSP keeps
// no global state for it. Moving it to another thread is sound; it is not
// Sync (methods take &mut self, hooks use cells).
unsafe impl Send for SoftModem {}

impl SoftModem {
    pub fn new() -> SoftModem {
        let hooks = NonNull::from(Box::leak(Box::new(ModemHooks {
            to_dte: RefCell::new(Vec::new()),
            controls: RefCell::new(Vec::new()),
            clear_to_send: Cell::new(true),
        })));
        let user = hooks.as_ptr().cast::<c_void>();
        // SAFETY: t31_init with a null state allocates a new one (null on
        // allocation failure). `user` points at the hooks, which outlive the
        // state (Drop frees the state first); the handlers match the
        // signatures in at_interpreter.h and t31.h.
        let t31 = unsafe {
            sys::t31_init(
                std::ptr::null_mut(),
                Some(on_at_tx),
                user,
                Some(on_modem_control),
                user,
                None,
                std::ptr::null_mut(),
            )
        };
        let t31 = NonNull::new(t31).expect("allocating a soft modem");
        // SAFETY: the state is live.
        unsafe { sys::t31_set_transmit_on_idle(t31.as_ptr(), true) };
        SoftModem {
            t31,
            hooks,
            scratch: vec![0; CHUNK_SAMPLES],
            on_hook: true,
        }
    }

    fn hooks(&self) -> &ModemHooks {
        // SAFETY: allocated until Drop; only shared references are made.
        unsafe { self.hooks.as_ref() }
    }

    /// How many bytes from the DTE the modem can take now (0 while it has
    /// asked the DTE to wait).
    pub fn dte_room(&self) -> usize {
        if !self.hooks().clear_to_send.get() {
            return 0;
        }
        // SAFETY: the state is live.
        unsafe { sys::t31_at_rx_free_space(self.t31.as_ptr()) }.max(0) as usize
    }

    /// Bytes from the DTE (commands, or data after `CONNECT`).
    pub fn from_dte(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(256) {
            // SAFETY: the state is live; `chunk` is valid for its length,
            // which fits c_int; SpanDSP copies what it takes.
            unsafe {
                sys::t31_at_rx(
                    self.t31.as_ptr(),
                    chunk.as_ptr().cast::<c_char>(),
                    chunk.len() as c_int,
                );
            }
        }
    }

    /// Bytes the modem produced for the DTE since the last call.
    pub fn take_to_dte(&mut self) -> Vec<u8> {
        std::mem::take(&mut *self.hooks().to_dte.borrow_mut())
    }

    /// What the modem asked of the line since the last call.
    pub fn take_controls(&mut self) -> Vec<ModemControl> {
        let controls = std::mem::take(&mut *self.hooks().controls.borrow_mut());
        for c in &controls {
            match c {
                ModemControl::Dial(_) | ModemControl::Answer => self.on_hook = false,
                ModemControl::HangUp => self.on_hook = true,
            }
        }
        controls
    }

    /// Whether the modem is on hook (no call).
    pub fn is_on_hook(&self) -> bool {
        self.on_hook
    }

    /// The calling number the modem reports before its first `RING`
    /// (`NMBR=...`), when the DTE asked for it with `AT+VCID=1`.
    pub fn set_caller_id(&mut self, number: &str) {
        let Ok(value) = CString::new(number) else {
            return;
        };
        // SAFETY: the state is live; t31_get_at_state returns its embedded
        // AT state. at_reset_call_info frees the previous call's list;
        // at_set_call_info copies both strings.
        unsafe {
            let at = sys::t31_get_at_state(self.t31.as_ptr());
            at_reset_call_info(at);
            at_set_call_info(at, c"NMBR".as_ptr(), value.as_ptr());
        }
    }

    /// Tells the modem what the network did.
    pub fn call_event(&mut self, event: NetworkEvent) {
        // SAFETY: the state is live; any event number is accepted.
        unsafe { sys::t31_call_event(self.t31.as_ptr(), event.to_spandsp()) };
        if event == NetworkEvent::HungUp {
            self.on_hook = true;
        }
    }
}

impl Default for SoftModem {
    fn default() -> Self {
        SoftModem::new()
    }
}

impl Terminal for SoftModem {
    fn transmit(&mut self, out: &mut [i16]) {
        for chunk in out.chunks_mut(CHUNK_SAMPLES) {
            // SAFETY: the state is live; `chunk` is writable for its length.
            // With transmit-on-idle set, t31_tx fills all of it.
            let n =
                unsafe { sys::t31_tx(self.t31.as_ptr(), chunk.as_mut_ptr(), chunk.len() as c_int) };
            let n = (n.max(0) as usize).min(chunk.len());
            chunk[n..].fill(0);
        }
    }

    fn receive(&mut self, audio: &[i16]) {
        for chunk in audio.chunks(CHUNK_SAMPLES) {
            let scratch = &mut self.scratch[..chunk.len()];
            scratch.copy_from_slice(chunk);
            // SAFETY: the state is live; `scratch` is writable for its
            // length (t31_rx may condition samples in place).
            unsafe {
                sys::t31_rx(
                    self.t31.as_ptr(),
                    scratch.as_mut_ptr(),
                    scratch.len() as c_int,
                )
            };
        }
    }

    fn is_finished(&self) -> bool {
        self.on_hook
    }

    fn hang_up(&mut self) {
        self.call_event(NetworkEvent::HungUp);
    }
}

impl Drop for SoftModem {
    fn drop(&mut self) {
        // SAFETY: allocated by t31_init, freed exactly once here; the hooks
        // only after, since freeing may still call back.
        unsafe {
            sys::t31_free(self.t31.as_ptr());
            drop(Box::from_raw(self.hooks.as_ptr()));
        }
    }
}

impl std::fmt::Debug for SoftModem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftModem")
            .field("on_hook", &self.on_hook)
            .finish()
    }
}

/// Runs `f` on the hooks, catching panics (they must not unwind into C).
///
/// # Safety
/// `user` must be the hooks pointer registered in `SoftModem::new`.
unsafe fn with_hooks(user: *mut c_void, f: impl FnOnce(&ModemHooks)) {
    // SAFETY: guaranteed by the caller; only a shared reference is made.
    let hooks = unsafe { &*(user as *const ModemHooks) };
    let _ = catch_unwind(AssertUnwindSafe(|| f(hooks)));
}

/// # Safety
/// Only SpanDSP calls this, with the registered hooks pointer and a buffer
/// valid for `len` bytes.
unsafe extern "C" fn on_at_tx(user: *mut c_void, buf: *const u8, len: usize) -> c_int {
    // SAFETY: as documented above.
    unsafe {
        with_hooks(user, |hooks| {
            if !buf.is_null() && len > 0 {
                let bytes = std::slice::from_raw_parts(buf, len);
                hooks.to_dte.borrow_mut().extend_from_slice(bytes);
            }
        });
    }
    len as c_int
}

/// # Safety
/// Only SpanDSP calls this, with the registered hooks pointer. `num` is a
/// NUL-terminated string only for `AT_MODEM_CONTROL_CALL`; for other
/// operations it carries an integer and is never dereferenced.
unsafe extern "C" fn on_modem_control(
    _s: *mut sys::t31_state_t,
    user: *mut c_void,
    op: c_int,
    num: *const c_char,
) -> c_int {
    // SAFETY: as documented above.
    unsafe {
        with_hooks(user, |hooks| {
            let control = match op {
                AT_MODEM_CONTROL_CALL => {
                    let number = if num.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(num).to_string_lossy().into_owned()
                    };
                    Some(ModemControl::Dial(number))
                }
                AT_MODEM_CONTROL_ANSWER => Some(ModemControl::Answer),
                AT_MODEM_CONTROL_HANGUP | AT_MODEM_CONTROL_ONHOOK => Some(ModemControl::HangUp),
                AT_MODEM_CONTROL_CTS => {
                    hooks.clear_to_send.set(!num.is_null());
                    None
                }
                _ => None,
            };
            if let Some(control) = control {
                hooks.controls.borrow_mut().push(control);
            }
        });
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(modem: &mut SoftModem, command: &str) -> String {
        modem.from_dte(format!("{command}\r").as_bytes());
        String::from_utf8_lossy(&modem.take_to_dte()).into_owned()
    }

    #[test]
    fn answers_at_commands_as_a_class_1_modem() {
        let mut modem = SoftModem::new();
        assert!(say(&mut modem, "ATE0").contains("OK"));
        assert!(say(&mut modem, "AT+FCLASS=1").contains("OK"));
        let classes = say(&mut modem, "AT+FCLASS=?");
        assert!(
            classes.contains('1') && classes.contains("OK"),
            "{classes:?}"
        );
        let ftm = say(&mut modem, "AT+FTM=?");
        assert!(ftm.contains("146"), "{ftm:?}");
        assert!(say(&mut modem, "AT+FRH=7").contains("ERROR"));
        assert!(modem.dte_room() > 0);
    }

    #[test]
    fn dialling_asks_the_line_and_busy_is_reported() {
        let mut modem = SoftModem::new();
        say(&mut modem, "ATE0");
        say(&mut modem, "AT+FCLASS=1");
        say(&mut modem, "ATDT5550100");
        assert_eq!(
            modem.take_controls(),
            [ModemControl::Dial("5550100".into())]
        );
        assert!(!modem.is_on_hook());
        modem.call_event(NetworkEvent::Busy);
        let said = String::from_utf8_lossy(&modem.take_to_dte()).into_owned();
        assert!(said.contains("BUSY"), "{said:?}");
    }

    #[test]
    fn caller_id_comes_before_the_first_ring_once_asked_for() {
        let mut modem = SoftModem::new();
        say(&mut modem, "ATE0");
        modem.set_caller_id("5550777");
        modem.call_event(NetworkEvent::Ringing);
        let said = String::from_utf8_lossy(&modem.take_to_dte()).into_owned();
        assert!(!said.contains("NMBR"), "not asked for: {said:?}");
        assert!(say(&mut modem, "AT+VCID=1").contains("OK"));
        modem.set_caller_id("5550777");
        modem.call_event(NetworkEvent::Ringing);
        let said = String::from_utf8_lossy(&modem.take_to_dte()).into_owned();
        let nmbr = said.find("NMBR=5550777").expect("caller id");
        assert!(nmbr < said.find("RING").unwrap(), "{said:?}");
    }
}
