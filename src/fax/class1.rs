//! T.30 for a Class 1 fax modem: SpanDSP's T.30 engine without its audio
//! modems, driven through its front-end handler interface.
//!
//! A Class 1 modem only modulates; the host runs T.30 (as HylaFAX does).
//! SpanDSP's T.30 tells its front end what to send or listen for
//! (`set_tx_type`/`set_rx_type`), hands it HDLC frames to send, and takes
//! back what was received (`t30_hdlc_accept`, the non-ECM byte pumps,
//! `t30_front_end_status`). [`Class1T30`] records those requests as
//! [`FrontEnd`] values for the modem line to turn into AT commands, and
//! offers the way back as safe methods. Under ECM the image data is HDLC
//! framed at high speed, which Class 1 leaves to the host: [`HdlcFramer`]
//! and [`HdlcDeframer`] do that with SpanDSP's own HDLC code.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::time::Duration;

use spandsp_sys as sys;

use super::session::{
    FaxError, FaxEvent, FaxOutcome, FaxSettings, Hooks, Modem, Role, SAMPLE_RATE, T30Setup,
    Transfer,
};

/// What T.30 wants sent or listened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop sending or listening.
    Nothing,
    /// Silence for this long (`AT+FTS`).
    Pause(Duration),
    /// The answer tone; a Class 1 modem sends it itself on `ATA`.
    Ced,
    /// The calling tone; a Class 1 modem sends it itself on `ATD`.
    Cng,
    /// V.21 at 300 bit/s, HDLC framed (`+FTH=3`/`+FRH=3`).
    V21,
    /// A high-speed modem (`+FTM`/`+FRM`), HDLC framed under ECM.
    Fast {
        modem: Modem,
        bit_rate: u32,
        short_train: bool,
        hdlc: bool,
    },
    /// The call is over: hang up.
    Done,
}

/// One request from T.30 to the modem, in the order made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontEnd {
    Receive(Signal),
    Transmit(Signal),
    /// An HDLC frame to send (address, control, FCF and info; no FCS).
    Frame(Vec<u8>),
    /// No more frames: drop the carrier once the last one is out.
    EndOfFrames,
}

struct FrontHooks {
    requests: RefCell<Vec<FrontEnd>>,
}

/// SpanDSP T.30 with a Class 1 front end.
pub struct Class1T30 {
    t30: NonNull<sys::t30_state_t>,
    hooks: NonNull<Hooks>,
    front: NonNull<FrontHooks>,
    /// Timer time not yet handed to T.30 (below one sample).
    timer_rest: Duration,
}

// SAFETY: the engine exclusively owns its t30 state and hook boxes; SpanDSP
// keeps no global state for it. Not Sync: methods take &mut self and the
// hooks use cells.
unsafe impl Send for Class1T30 {}

impl Class1T30 {
    pub fn new(
        call_id: &str,
        role: Role,
        transfer: &Transfer,
        settings: &FaxSettings,
    ) -> Result<Class1T30, FaxError> {
        let setup = T30Setup::check(transfer, settings)?;
        let hooks = NonNull::from(Box::leak(Box::new(Hooks::new(
            call_id,
            role,
            matches!(transfer, Transfer::Send(_)),
        ))));
        let front = NonNull::from(Box::leak(Box::new(FrontHooks {
            requests: RefCell::new(Vec::new()),
        })));
        let front_user = front.as_ptr().cast::<c_void>();
        // SAFETY: t30_init with a null state allocates one (null on failure).
        // The front-end handlers get the FrontHooks pointer, which outlives
        // the state (Drop frees the state first).
        let t30 = unsafe {
            sys::t30_init(
                std::ptr::null_mut(),
                role == Role::Caller,
                Some(on_set_rx_type),
                front_user,
                Some(on_set_tx_type),
                front_user,
                Some(on_send_hdlc),
                front_user,
            )
        };
        let Some(t30) = NonNull::new(t30) else {
            // SAFETY: both came from Box::leak above and were never shared.
            unsafe {
                drop(Box::from_raw(hooks.as_ptr()));
                drop(Box::from_raw(front.as_ptr()));
            }
            return Err(FaxError::OutOfMemory);
        };
        let engine = Class1T30 {
            t30,
            hooks,
            front,
            timer_rest: Duration::ZERO,
        };
        engine.hooks().t30.set(t30.as_ptr());
        // SAFETY: `t30` is live; `hooks` outlives it.
        unsafe {
            setup.configure(
                t30.as_ptr(),
                hooks.as_ptr().cast::<c_void>(),
                transfer,
                settings,
            )?;
        }
        Ok(engine)
    }

    fn hooks(&self) -> &Hooks {
        // SAFETY: allocated until Drop; only shared references are made.
        unsafe { self.hooks.as_ref() }
    }

    fn front(&self) -> &FrontHooks {
        // SAFETY: as for hooks.
        unsafe { self.front.as_ref() }
    }

    fn user(&self) -> *mut c_void {
        self.t30.as_ptr().cast()
    }

    /// Requests T.30 made since the last call, oldest first.
    pub fn take_requests(&mut self) -> Vec<FrontEnd> {
        std::mem::take(&mut *self.front().requests.borrow_mut())
    }

    /// An HDLC frame the modem received, without its two FCS bytes; `ok`
    /// is false when the modem reported a bad FCS (`ERROR`).
    pub fn frame_received(&mut self, frame: &[u8], ok: bool) {
        // SAFETY: the state is live; `frame` is valid for its length.
        unsafe {
            sys::t30_hdlc_accept(
                self.user(),
                frame.as_ptr(),
                frame.len() as c_int,
                c_int::from(ok),
            )
        };
        self.after_c_call();
    }

    /// The high-speed modem trained (`CONNECT` to `+FRM`).
    pub fn data_carrier_up(&mut self) {
        // SAFETY: the state is live; negative "bits" are status codes.
        unsafe { sys::t30_non_ecm_put_bit(self.user(), super::ffi::SIG_STATUS_TRAINING_SUCCEEDED) };
        self.after_c_call();
    }

    /// Non-ECM page data (or TCF) received, in line order.
    pub fn data_received(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // SAFETY: the state is live; `data` is valid for its length.
        unsafe { sys::t30_non_ecm_put(self.user(), data.as_ptr(), data.len() as c_int) };
        self.after_c_call();
    }

    /// Fills `buf` with non-ECM data to send; fewer bytes than asked means
    /// the page (or TCF) is complete.
    pub fn data_to_send(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: the state is live; `buf` is writable for its length.
        let n = unsafe { sys::t30_non_ecm_get(self.user(), buf.as_mut_ptr(), buf.len() as c_int) };
        self.after_c_call();
        (n.max(0) as usize).min(buf.len())
    }

    /// What was asked to be sent has been sent.
    pub fn sent(&mut self) {
        self.front_end_status(sys::T30_FRONT_END_SEND_STEP_COMPLETE);
    }

    /// The carrier T.30 listens for has started.
    pub fn signal_present(&mut self) {
        self.front_end_status(sys::T30_FRONT_END_SIGNAL_PRESENT);
    }

    /// The carrier being received has gone.
    pub fn carrier_down(&mut self) {
        self.front_end_status(sys::T30_FRONT_END_RECEIVE_COMPLETE);
    }

    fn front_end_status(&mut self, status: u32) {
        // SAFETY: the state is live; the status is one of t30.h's values.
        unsafe { sys::t30_front_end_status(self.user(), status as c_int) };
        self.after_c_call();
    }

    /// Lets T.30's timers run for `elapsed`.
    pub fn advance(&mut self, elapsed: Duration) {
        let total = self.timer_rest + elapsed;
        let samples = total.as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000;
        let used = Duration::from_micros(samples * 1_000_000 / u64::from(SAMPLE_RATE));
        self.timer_rest = total.saturating_sub(used);
        let mut left = samples;
        while left > 0 {
            let step = left.min(i32::MAX as u64);
            // SAFETY: the state is live.
            unsafe { sys::t30_timer_update(self.t30.as_ptr(), step as c_int) };
            left -= step;
        }
        self.after_c_call();
    }

    /// Ends T.30 now (the line failed or the call is abandoned).
    pub fn hang_up(&mut self) {
        if self.is_finished() {
            return;
        }
        // SAFETY: the state is live; t30_terminate calls phase E.
        unsafe { sys::t30_terminate(self.t30.as_ptr()) };
        self.after_c_call();
    }

    pub fn is_finished(&self) -> bool {
        self.hooks().outcome.borrow().is_some()
    }

    pub fn outcome(&self) -> Option<FaxOutcome> {
        self.hooks().outcome.borrow().clone()
    }

    pub fn take_events(&mut self) -> Vec<FaxEvent> {
        std::mem::take(&mut *self.hooks().events.borrow_mut())
    }

    fn after_c_call(&mut self) {
        if self.hooks().panicked.get() && !self.is_finished() {
            tracing::error!(call = %self.hooks().call_id, "a fax engine callback panicked; ending the call");
            self.hooks().panicked.set(false);
            // SAFETY: the state is live.
            unsafe { sys::t30_terminate(self.t30.as_ptr()) };
        }
    }
}

impl Drop for Class1T30 {
    fn drop(&mut self) {
        // SAFETY: the state came from t30_init and is freed once, here,
        // before the hook boxes it may still call into.
        unsafe {
            sys::t30_free(self.t30.as_ptr());
            drop(Box::from_raw(self.hooks.as_ptr()));
            drop(Box::from_raw(self.front.as_ptr()));
        }
    }
}

impl std::fmt::Debug for Class1T30 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Class1T30")
            .field("call_id", &self.hooks().call_id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

fn signal(kind: c_int, bit_rate: c_int, short_train: c_int, hdlc: c_int) -> Signal {
    // t30.h `T30_MODEM_*`.
    let fast = |modem| Signal::Fast {
        modem,
        bit_rate: bit_rate.max(0) as u32,
        short_train: short_train != 0,
        hdlc: hdlc != 0,
    };
    match kind as u32 {
        sys::t30_modem_e_T30_MODEM_PAUSE => {
            // The pause length in milliseconds travels in `short_train`.
            Signal::Pause(Duration::from_millis(short_train.max(0) as u64))
        }
        sys::t30_modem_e_T30_MODEM_CED => Signal::Ced,
        sys::t30_modem_e_T30_MODEM_CNG => Signal::Cng,
        sys::t30_modem_e_T30_MODEM_V21 => Signal::V21,
        sys::t30_modem_e_T30_MODEM_V27TER => fast(Modem::V27ter),
        sys::t30_modem_e_T30_MODEM_V29 => fast(Modem::V29),
        sys::t30_modem_e_T30_MODEM_V17 => fast(Modem::V17),
        sys::t30_modem_e_T30_MODEM_DONE => Signal::Done,
        _ => Signal::Nothing,
    }
}

/// Records a front-end request, catching panics.
///
/// # Safety
/// `user` must be the FrontHooks pointer registered in `Class1T30::new`.
unsafe fn push(user: *mut c_void, request: impl FnOnce() -> FrontEnd) {
    // SAFETY: guaranteed by the caller; only a shared reference is made.
    let front = unsafe { &*(user as *const FrontHooks) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        front.requests.borrow_mut().push(request())
    }));
}

/// # Safety
/// Only SpanDSP calls this, with the registered FrontHooks pointer.
unsafe extern "C" fn on_set_rx_type(
    user: *mut c_void,
    kind: c_int,
    bit_rate: c_int,
    short_train: c_int,
    hdlc: c_int,
) {
    // SAFETY: as documented above.
    unsafe {
        push(user, || {
            FrontEnd::Receive(signal(kind, bit_rate, short_train, hdlc))
        })
    };
}

/// # Safety
/// Only SpanDSP calls this, with the registered FrontHooks pointer.
unsafe extern "C" fn on_set_tx_type(
    user: *mut c_void,
    kind: c_int,
    bit_rate: c_int,
    short_train: c_int,
    hdlc: c_int,
) {
    // SAFETY: as documented above.
    unsafe {
        push(user, || {
            FrontEnd::Transmit(signal(kind, bit_rate, short_train, hdlc))
        })
    };
}

/// # Safety
/// Only SpanDSP calls this, with the registered FrontHooks pointer and a
/// message valid for `len` bytes (or null).
unsafe extern "C" fn on_send_hdlc(user: *mut c_void, msg: *const u8, len: c_int) {
    // SAFETY: as documented above.
    unsafe {
        push(user, || {
            if msg.is_null() || len <= 0 {
                FrontEnd::EndOfFrames
            } else {
                FrontEnd::Frame(std::slice::from_raw_parts(msg, len as usize).to_vec())
            }
        })
    };
}

// ---------------------------------------------------------------------------
// HDLC framing for ECM image data, which Class 1 sends as raw `+FTM` data.

/// Frames HDLC frames into a bit stream (flags, bit stuffing, FCS), as
/// bytes in line order (first bit in the least significant bit, as Class 1
/// sends them).
pub struct HdlcFramer {
    tx: NonNull<sys::hdlc_tx_state_t>,
    /// Set by SpanDSP's underflow report: the queued frame's last bits
    /// (its FCS and closing flag) have been handed out.
    frame_out: NonNull<Cell<bool>>,
}

// SAFETY: plain owned C state whose only callback writes to the owned
// flag; no thread affinity.
unsafe impl Send for HdlcFramer {}

impl HdlcFramer {
    pub fn new() -> HdlcFramer {
        let frame_out = NonNull::from(Box::leak(Box::new(Cell::new(false))));
        // SAFETY: a null state asks for a new allocation; 16-bit CRC, two
        // flags between frames. The underflow handler gets the flag's
        // pointer, which outlives the state (Drop frees the state first).
        let tx = unsafe {
            sys::hdlc_tx_init(
                std::ptr::null_mut(),
                false,
                2,
                false,
                Some(on_hdlc_underflow),
                frame_out.as_ptr().cast(),
            )
        };
        HdlcFramer {
            tx: NonNull::new(tx).expect("allocating an HDLC framer"),
            frame_out,
        }
    }

    /// Queues one frame; false when the framer is still busy with the last.
    pub fn frame(&mut self, frame: &[u8]) -> bool {
        // SAFETY: the state is live; `frame` is valid for its length.
        unsafe { sys::hdlc_tx_frame(self.tx.as_ptr(), frame.as_ptr(), frame.len()) == 0 }
    }

    /// One frame as line bytes: whatever flags are still due, the frame
    /// with its FCS, and the byte that closes it, and no idle flags after
    /// (issue 26: padding every ECM frame to its worst-case stuffed size
    /// made pages 16 % longer on the wire).
    pub fn frame_bytes(&mut self, frame: &[u8]) -> Vec<u8> {
        // SAFETY: allocated until Drop; only a shared reference is made.
        let frame_out = unsafe { self.frame_out.as_ref() };
        frame_out.set(false);
        if !self.frame(frame) {
            return Vec::new();
        }
        // Worst case bit stuffing adds one bit in five; the FCS, the flags
        // still due and the closing flag a few bytes more.
        let most = (frame.len() + 4) * 6 / 5 + 8;
        let mut out = Vec::with_capacity(most);
        let mut byte = [0u8];
        while !frame_out.get() && out.len() < most {
            self.bytes(&mut byte);
            out.push(byte[0]);
        }
        out
    }

    /// The next `out.len()` bytes of the bit stream (flags when idle).
    pub fn bytes(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            // SAFETY: the state is live.
            let byte = unsafe { sys::hdlc_tx_get_byte(self.tx.as_ptr()) };
            // SpanDSP sends the most significant bit first; Class 1 data
            // goes least significant bit first.
            *b = (byte.max(0) as u8).reverse_bits();
        }
    }
}

/// # Safety
/// Only SpanDSP calls this, with the registered flag pointer.
unsafe extern "C" fn on_hdlc_underflow(user: *mut c_void) {
    // SAFETY: as documented above; only a shared reference is made.
    unsafe { (*(user as *const Cell<bool>)).set(true) };
}

impl Default for HdlcFramer {
    fn default() -> Self {
        HdlcFramer::new()
    }
}

impl Drop for HdlcFramer {
    fn drop(&mut self) {
        // SAFETY: allocated by hdlc_tx_init and Box::leak, freed once here,
        // the state first (it holds the flag's pointer).
        unsafe {
            sys::hdlc_tx_free(self.tx.as_ptr());
            drop(Box::from_raw(self.frame_out.as_ptr()));
        }
    }
}

struct DeframerHooks {
    frames: RefCell<Vec<(Vec<u8>, bool)>>,
}

/// Finds HDLC frames in a received bit stream (Class 1 byte order).
pub struct HdlcDeframer {
    rx: NonNull<sys::hdlc_rx_state_t>,
    hooks: NonNull<DeframerHooks>,
}

// SAFETY: owned C state whose only callback writes to the owned hooks.
unsafe impl Send for HdlcDeframer {}

impl HdlcDeframer {
    pub fn new() -> HdlcDeframer {
        let hooks = NonNull::from(Box::leak(Box::new(DeframerHooks {
            frames: RefCell::new(Vec::new()),
        })));
        // SAFETY: a null state asks for a new allocation; the handler gets
        // the hooks pointer, which outlives the state. Bad frames are
        // reported (ok = false) so ECM can ask for them again.
        let rx = unsafe {
            sys::hdlc_rx_init(
                std::ptr::null_mut(),
                false,
                true,
                2,
                Some(on_hdlc_frame),
                hooks.as_ptr().cast(),
            )
        };
        HdlcDeframer {
            rx: NonNull::new(rx).expect("allocating an HDLC deframer"),
            hooks,
        }
    }

    /// Feeds received bytes; returns the frames completed (without FCS),
    /// each with whether its FCS was good.
    pub fn push(&mut self, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        for &b in data {
            // SAFETY: the state is live.
            unsafe { sys::hdlc_rx_put_byte(self.rx.as_ptr(), c_int::from(b.reverse_bits())) };
        }
        // SAFETY: allocated until Drop; only a shared reference is made.
        let hooks = unsafe { self.hooks.as_ref() };
        std::mem::take(&mut *hooks.frames.borrow_mut())
    }
}

impl Default for HdlcDeframer {
    fn default() -> Self {
        HdlcDeframer::new()
    }
}

impl Drop for HdlcDeframer {
    fn drop(&mut self) {
        // SAFETY: allocated by hdlc_rx_init and Box::leak; freed once here,
        // the state first.
        unsafe {
            sys::hdlc_rx_free(self.rx.as_ptr());
            drop(Box::from_raw(self.hooks.as_ptr()));
        }
    }
}

/// # Safety
/// Only SpanDSP calls this, with the registered DeframerHooks pointer.
unsafe extern "C" fn on_hdlc_frame(user: *mut c_void, pkt: *const u8, len: c_int, ok: c_int) {
    if len < 0 || pkt.is_null() {
        // A status report (carrier up or down), not a frame.
        return;
    }
    // SAFETY: as documented above; `pkt` is valid for `len` bytes.
    unsafe {
        let hooks = &*(user as *const DeframerHooks);
        let frame = std::slice::from_raw_parts(pkt, len as usize).to_vec();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hooks.frames.borrow_mut().push((frame, ok != 0))
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdlc_frames_survive_framing_and_deframing() {
        let mut tx = HdlcFramer::new();
        let mut rx = HdlcDeframer::new();
        let frames: Vec<Vec<u8>> = vec![
            vec![0xff, 0x03, 0x06, 0x00, 0x10, 0x7e, 0xff],
            (0..=255u8).collect(),
        ];
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        // The receiver syncs on a run of flags first, as after training.
        tx.bytes(&mut buf);
        assert!(rx.push(&buf).is_empty());
        for f in &frames {
            assert!(tx.frame(f));
            for _ in 0..20 {
                tx.bytes(&mut buf);
                got.extend(rx.push(&buf));
            }
        }
        assert_eq!(
            got,
            frames.iter().map(|f| (f.clone(), true)).collect::<Vec<_>>()
        );
    }

    /// ECM frames go out back to back: each costs its stuffed bits, the
    /// FCS and a flag or two, not a worst-case allowance of idle flags.
    #[test]
    fn ecm_frames_are_framed_without_padding() {
        let mut tx = HdlcFramer::new();
        let mut rx = HdlcDeframer::new();
        let mut flags = [0u8; 32];
        tx.bytes(&mut flags);
        assert!(rx.push(&flags).is_empty());
        // A 256-octet ECM frame of white (0x00: no stuffing) and one of
        // 0xff (the most stuffing).
        let frames: Vec<Vec<u8>> = vec![
            [0xff, 0x03, 0x06, 0x00]
                .into_iter()
                .chain([0u8; 256])
                .collect(),
            [0xff, 0x03, 0x06, 0x01]
                .into_iter()
                .chain([0xffu8; 256])
                .collect(),
        ];
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        for f in &frames {
            let bytes = tx.frame_bytes(f);
            sizes.push(bytes.len());
            got.extend(rx.push(&bytes));
        }
        // The receiver sees a frame end at the next flag.
        tx.bytes(&mut flags);
        got.extend(rx.push(&flags));
        assert_eq!(
            got,
            frames.iter().map(|f| (f.clone(), true)).collect::<Vec<_>>()
        );
        // Frame + FCS + at most three flag octets; 0xff stuffs 1 bit in 5.
        assert!(sizes[0] <= 260 + 2 + 3, "{sizes:?}");
        assert!(sizes[1] <= 260 + 2 + 3 + 260 * 8 / 5 / 8 + 1, "{sizes:?}");
        eprintln!("ECM frame of 260 octets on the wire: {sizes:?} octets");
    }

    #[test]
    fn a_caller_first_listens_for_the_answerer() {
        let dir = tempfile::tempdir().unwrap();
        let mut t30 = Class1T30::new(
            "c1",
            Role::Answerer,
            &Transfer::Receive(dir.path().join("rx.tiff")),
            &FaxSettings::default(),
        )
        .unwrap();
        let first = t30.take_requests();
        assert!(
            first.contains(&FrontEnd::Transmit(Signal::Ced)),
            "{first:?}"
        );
        // After CED, the answerer sends its capabilities on V.21.
        t30.sent();
        let next = t30.take_requests();
        assert!(next.contains(&FrontEnd::Transmit(Signal::V21)), "{next:?}");
        assert!(
            next.iter()
                .any(|r| matches!(r, FrontEnd::Frame(f) if f[0] == 0xff)),
            "{next:?}"
        );
        t30.hang_up();
        assert!(t30.is_finished());
    }
}
