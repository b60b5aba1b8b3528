//! One audio fax call: a SpanDSP `fax_state_t` (T.30 plus the V.21, V.27ter,
//! V.29 and V.17 modems) that sends a TIFF file or receives into one over
//! 8 kHz 16-bit linear audio.
//!
//! The session owns the C object and the state its callbacks write to. The
//! callbacks only record plain Rust values; `take_events` hands them over
//! after the C call that produced them has returned, so no caller code ever
//! runs inside SpanDSP.

use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString, c_void};
use std::os::raw::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Duration;

use spandsp_sys as sys;

use super::code::T30Code;
use super::document::{DocumentProblem, FaxDocument, check_engine_path};
use super::ffi;

/// The audio sample rate of every fax call (G.711 telephony).
pub const SAMPLE_RATE: u32 = 8000;
/// The chunk the engine is fed: 20 ms, the usual RTP packet.
pub const CHUNK_SAMPLES: usize = 160;

/// Which side of the call this machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Dials, sends CNG and waits for the called machine's DIS (T.30 clause 5).
    Caller,
    /// Answers with CED and offers its capabilities in DIS.
    Answerer,
}

/// Whether error correction mode (T.30 Annex A) may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCorrection {
    Enabled,
    Disabled,
}

/// A high-speed modem for the page data (DIS bits 11-14, Table 2/T.30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modem {
    /// 2400/4800 bit/s.
    V27ter,
    /// 7200/9600 bit/s.
    V29,
    /// 7200 to 14400 bit/s, trellis coded.
    V17,
}

/// The set of modems a call may train with; the fastest both ends share wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modems(u8);

impl Modems {
    pub const ALL: Modems = Modems(0b111);

    pub fn only(modem: Modem) -> Modems {
        Modems(Self::bit(modem))
    }

    pub fn with(self, modem: Modem) -> Modems {
        Modems(self.0 | Self::bit(modem))
    }

    pub fn without(self, modem: Modem) -> Modems {
        Modems(self.0 & !Self::bit(modem))
    }

    pub fn contains(self, modem: Modem) -> bool {
        self.0 & Self::bit(modem) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(modem: Modem) -> u8 {
        match modem {
            Modem::V27ter => 1,
            Modem::V29 => 2,
            Modem::V17 => 4,
        }
    }

    fn to_spandsp(self) -> c_int {
        let mut bits = 0;
        if self.contains(Modem::V27ter) {
            bits |= ffi::SUPPORT_V27TER;
        }
        if self.contains(Modem::V29) {
            bits |= ffi::SUPPORT_V29;
        }
        if self.contains(Modem::V17) {
            bits |= ffi::SUPPORT_V17;
        }
        bits
    }
}

/// The finest vertical resolution offered or accepted (T.4 clause 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    /// 204 x 98 dpi.
    Standard,
    /// 204 x 196 dpi.
    Fine,
    /// 204 x 391 dpi.
    Superfine,
}

/// The longest page offered or accepted (DIS bits 19-20, Table 2/T.30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLength {
    A4,
    Letter,
    Legal,
    B4,
    Unlimited,
}

/// Per-call fax settings (a job's `fax_identity_*`, `fax_timezone`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct FaxSettings {
    /// Our station ident, sent as TSI when sending and CSI when answering
    /// (T.30 5.3.6.2: up to 20 digits, `+` and space).
    pub ident: String,
    /// Text for the header line SpanDSP prints at the top of every sent
    /// page, next to the date, ident and page number; empty for no header.
    pub header: String,
    /// POSIX TZ string for the header's timestamp (`EST5EDT`), or the
    /// machine's zone.
    pub timezone: Option<String>,
    /// The caller-ID name a line shows the far end where it can
    /// (FreeSWITCH's `origination_caller_id_name`); empty for none.
    pub caller_name: String,
    pub error_correction: ErrorCorrection,
    pub modems: Modems,
    pub max_resolution: Resolution,
    pub max_length: PageLength,
}

impl Default for FaxSettings {
    fn default() -> Self {
        FaxSettings {
            ident: String::new(),
            header: String::new(),
            timezone: None,
            caller_name: String::new(),
            error_correction: ErrorCorrection::Enabled,
            modems: Modems::ALL,
            max_resolution: Resolution::Superfine,
            max_length: PageLength::Unlimited,
        }
    }
}

/// What the session does with the page data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    Send(FaxDocument),
    /// Receive into a new TIFF file at this path (T.6 coded).
    Receive(PathBuf),
}

/// A session that could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaxError {
    #[error("{0}")]
    Document(#[from] DocumentProblem),
    #[error("fax setting `{setting}` = {value:?}: {problem}")]
    Setting {
        setting: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("the fax engine could not allocate a session")]
    OutOfMemory,
}

/// Phase B done: what the two machines agreed. The resolution is not known
/// yet at this point (the sender picks it per page in DCS), so it comes with
/// each [`PageReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiation {
    pub bit_rate: u32,
    pub ecm: bool,
    /// The far machine's TSI or CSI, trimmed.
    pub remote_ident: String,
}

/// Phase D of one page done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageReport {
    /// 1-based.
    pub page: u32,
    /// Rows the receiver could not decode (always 0 on the sending side,
    /// and with ECM).
    pub bad_rows: u32,
    pub longest_bad_row_run: u32,
    /// The resolution the page was exchanged at.
    pub x_dpi: u32,
    pub y_dpi: u32,
}

/// Phase E: how the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxOutcome {
    pub code: T30Code,
    /// Pages sent (sending) or received (receiving) and confirmed.
    pub pages: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    pub remote_ident: String,
    /// Sum over all pages received; 0 when sending.
    pub bad_rows: u32,
    pub longest_bad_row_run: u32,
    /// HDLC frames retransmitted under ECM.
    pub ecm_retries: u32,
}

impl FaxOutcome {
    pub fn is_ok(&self) -> bool {
        self.code.is_ok()
    }
}

/// Progress of a session, delivered by [`FaxSession::take_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaxEvent {
    Negotiated(Negotiation),
    /// The sender is about to send EOP (T.30 5.3.6.1.7): the last page is
    /// out and the far end may already have kept it, but its answer (MCF
    /// or RTN) is not yet heard. Reported once per call, before the signal
    /// goes on the line, so that a box that dies now knows on its next
    /// start that the fax may have arrived (issue 19).
    LastPageSent,
    PageDone(PageReport),
    Finished(FaxOutcome),
}

/// What the C callbacks write to. Allocated once with `Box::into_raw` so its
/// address never moves while SpanDSP holds it; only shared references are
/// ever made to it while the C object lives (hence the cells).
pub(super) struct Hooks {
    pub(super) call_id: String,
    pub(super) role: Role,
    pub(super) sending: bool,
    pub(super) t30: Cell<*mut sys::t30_state_t>,
    pub(super) events: RefCell<Vec<FaxEvent>>,
    pub(super) negotiated: RefCell<Option<Negotiation>>,
    /// EOP was sent (`FaxEvent::LastPageSent` reported).
    pub(super) last_page_sent: Cell<bool>,
    pub(super) bad_rows: Cell<u32>,
    pub(super) longest_bad_row_run: Cell<u32>,
    pub(super) outcome: RefCell<Option<FaxOutcome>>,
    pub(super) panicked: Cell<bool>,
}

/// An owning handle on one SpanDSP audio fax session.
pub struct FaxSession {
    fax: NonNull<sys::fax_state_t>,
    hooks: NonNull<Hooks>,
    /// `fax_rx` conditions the samples in place, so input is copied here.
    scratch: Vec<i16>,
    samples_received: u64,
}

// SAFETY: the session exclusively owns its `fax_state_t` and `Hooks`; SpanDSP
// keeps no thread-local or global state for a session (the global log
// handler is never used: each session installs its own), and libtiff file
// handles are per session. Moving the whole session to another thread is
// therefore sound. It is not `Sync`: every method that touches C takes
// `&mut self` or reads cells without synchronization.
unsafe impl Send for FaxSession {}

impl FaxSession {
    /// Sets up a session. Nothing is sent until audio is pulled with
    /// [`transmit`](Self::transmit).
    pub fn new(
        call_id: &str,
        role: Role,
        transfer: &Transfer,
        settings: &FaxSettings,
    ) -> Result<FaxSession, FaxError> {
        let setup = T30Setup::check(transfer, settings)?;

        let hooks = Box::new(Hooks::new(
            call_id,
            role,
            matches!(transfer, Transfer::Send(_)),
        ));
        let hooks = NonNull::from(Box::leak(hooks));

        // SAFETY: fax_init with a null state allocates and initialises a new
        // one, or returns null if allocation fails.
        let fax = unsafe { sys::fax_init(std::ptr::null_mut(), role == Role::Caller) };
        let Some(fax) = NonNull::new(fax) else {
            // SAFETY: `hooks` came from Box::leak above and was never shared.
            drop(unsafe { Box::from_raw(hooks.as_ptr()) });
            return Err(FaxError::OutOfMemory);
        };
        // From here on Drop frees both.
        let session = FaxSession {
            fax,
            hooks,
            scratch: vec![0; CHUNK_SAMPLES],
            samples_received: 0,
        };
        let user = hooks.as_ptr().cast::<c_void>();

        // SAFETY: `fax` is a live state from fax_init; the t30 state is
        // embedded in it and lives exactly as long.
        let t30 = unsafe { sys::fax_get_t30_state(fax.as_ptr()) };
        session.hooks().t30.set(t30);

        // SAFETY: `fax` is live. `user` points at the Hooks, which outlive
        // the C state (Drop frees the state first).
        unsafe {
            // Keep producing audio (silence) between signals so both
            // directions of the simulated line stay sample-aligned.
            sys::fax_set_transmit_on_idle(fax.as_ptr(), 1);
            if tracing::enabled!(target: "faxbox::fax::spandsp", tracing::Level::DEBUG) {
                let log = sys::fax_get_logging_state(fax.as_ptr());
                sys::span_log_set_message_handler(log, Some(on_log), user);
                sys::span_log_set_level(
                    log,
                    (sys::SPAN_LOG_SHOW_PROTOCOL | sys::SPAN_LOG_FLOW) as c_int,
                );
            }
            setup.configure(t30, user, transfer, settings)?;
        }
        Ok(session)
    }

    /// Produces the next `out.len()` samples this end puts on the line.
    pub fn transmit(&mut self, out: &mut [i16]) {
        for chunk in out.chunks_mut(CHUNK_SAMPLES) {
            // SAFETY: `fax` is live; `chunk` is a writable buffer of exactly
            // `len` samples (len <= 160, fits c_int). With transmit-on-idle
            // set, fax_tx fills all of it.
            unsafe {
                sys::fax_tx(self.fax.as_ptr(), chunk.as_mut_ptr(), chunk.len() as c_int);
            }
        }
        self.after_c_call();
    }

    /// Feeds samples heard from the line; T.30 timers advance with them.
    pub fn receive(&mut self, audio: &[i16]) {
        for chunk in audio.chunks(CHUNK_SAMPLES) {
            let scratch = &mut self.scratch[..chunk.len()];
            scratch.copy_from_slice(chunk);
            // SAFETY: `fax` is live; `scratch` is a writable buffer of
            // `len` samples that fax_rx may modify (DC restoration).
            unsafe {
                sys::fax_rx(
                    self.fax.as_ptr(),
                    scratch.as_mut_ptr(),
                    scratch.len() as c_int,
                );
            }
            self.samples_received += chunk.len() as u64;
        }
        self.after_c_call();
    }

    /// The line went dead or the call is being abandoned: end T.30 now.
    /// Unless the far end had already confirmed the end of the document,
    /// the call ends as `CallDropped` (49).
    pub fn hang_up(&mut self) {
        if self.is_finished() {
            return;
        }
        // SAFETY: the t30 state is live (embedded in `fax`); t30_terminate
        // calls our phase E handler before returning.
        unsafe { sys::t30_terminate(self.hooks().t30.get()) };
        self.after_c_call();
    }

    /// Phase E has happened: nothing more will be sent or received.
    pub fn is_finished(&self) -> bool {
        self.hooks().outcome.borrow().is_some()
    }

    /// The result, once finished.
    pub fn outcome(&self) -> Option<FaxOutcome> {
        self.hooks().outcome.borrow().clone()
    }

    /// What happened since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<FaxEvent> {
        std::mem::take(&mut *self.hooks().events.borrow_mut())
    }

    /// Audio time this session has heard.
    pub fn audio_time(&self) -> Duration {
        Duration::from_micros(self.samples_received * 1_000_000 / SAMPLE_RATE as u64)
    }

    pub fn call_id(&self) -> &str {
        &self.hooks().call_id
    }

    pub fn role(&self) -> Role {
        self.hooks().role
    }

    fn hooks(&self) -> &Hooks {
        // SAFETY: `hooks` stays allocated until Drop; only shared references
        // are made to it (mutation goes through cells).
        unsafe { self.hooks.as_ref() }
    }

    /// A callback that panicked left T.30 in an unknown state: end the call.
    fn after_c_call(&mut self) {
        if self.hooks().panicked.get() && !self.is_finished() {
            tracing::error!(call = %self.call_id(), "a fax engine callback panicked; ending the call");
            self.hooks().panicked.set(false);
            // SAFETY: as in hang_up.
            unsafe { sys::t30_terminate(self.hooks().t30.get()) };
        }
    }
}

/// Settings checked and turned into C strings, ready for a T.30 engine
/// (the audio session's or the Class 1 driver's).
pub(super) struct T30Setup {
    ident: CString,
    header: CString,
    timezone: Option<CString>,
    file: CString,
}

impl T30Setup {
    pub(super) fn check(transfer: &Transfer, settings: &FaxSettings) -> Result<T30Setup, FaxError> {
        // T.30 5.3.6.2 asks for digits, '+' and space only, but
        // machines in the field send and show letters too; SpanDSP passes any
        // printable ASCII, and so do we.
        let ident = c_setting("ident", &settings.ident, ffi::MAX_IDENT_LEN, |c| {
            c.is_ascii() && !c.is_ascii_control()
        })?;
        let header = c_setting("header", &settings.header, ffi::MAX_HEADER_LEN, |c| {
            c.is_ascii() && !c.is_ascii_control()
        })?;
        let timezone = settings
            .timezone
            .as_deref()
            .map(|tz| c_setting("timezone", tz, 64, |c| c.is_ascii_graphic()))
            .transpose()?;
        if settings.modems.is_empty() {
            return Err(FaxError::Setting {
                setting: "modems",
                value: String::new(),
                problem: "allow at least one of V.17, V.29 and V.27ter",
            });
        }
        let file = match transfer {
            Transfer::Send(doc) => doc.path(),
            Transfer::Receive(path) => path.as_path(),
        };
        check_engine_path(file)?;
        let file = CString::new(file.to_str().unwrap_or_default()).map_err(|_| {
            DocumentProblem::BadPath {
                path: file.to_owned(),
            }
        })?;

        Ok(T30Setup {
            ident,
            header,
            timezone,
            file,
        })
    }

    /// Applies the settings, the file and the phase handlers to `t30`.
    ///
    /// # Safety
    /// `t30` must be a live T.30 state and `user` a Hooks pointer that
    /// outlives it.
    pub(super) unsafe fn configure(
        &self,
        t30: *mut sys::t30_state_t,
        user: *mut c_void,
        transfer: &Transfer,
        settings: &FaxSettings,
    ) -> Result<(), FaxError> {
        // SAFETY: `t30` is live. Every string passed is a CString that
        // SpanDSP copies (strcpy/strncpy into its own buffers: t30_api.c)
        // before returning, and lengths were checked against those buffers
        // above. `user` points at the Hooks, which outlive the C state
        // (Drop frees the state first), and the handlers match the
        // signatures bindgen derived from t30.h.
        unsafe {
            if tracing::enabled!(target: "faxbox::fax::spandsp", tracing::Level::DEBUG) {
                let log = sys::t30_get_logging_state(t30);
                sys::span_log_set_message_handler(log, Some(on_log), user);
                sys::span_log_set_level(
                    log,
                    (sys::SPAN_LOG_SHOW_PROTOCOL | sys::SPAN_LOG_FLOW) as c_int,
                );
            }
            sys::t30_set_tx_ident(t30, self.ident.as_ptr());
            if !settings.header.is_empty() {
                sys::t30_set_tx_page_header_info(t30, self.header.as_ptr());
            }
            if let Some(tz) = &self.timezone
                && sys::t30_set_tx_page_header_tz(t30, tz.as_ptr()) != 0
            {
                return Err(FaxError::Setting {
                    setting: "timezone",
                    value: settings.timezone.clone().unwrap_or_default(),
                    problem: "not a POSIX TZ string such as \"EST5EDT\" or \"CET-1CEST\"",
                });
            }
            sys::t30_set_ecm_capability(t30, settings.error_correction == ErrorCorrection::Enabled);
            sys::t30_set_supported_modems(t30, settings.modems.to_spandsp());
            // T.6 (MMR) needs ECM; SpanDSP only picks it when ECM is on.
            sys::t30_set_supported_compressions(
                t30,
                ffi::COMPRESSION_T4_1D | ffi::COMPRESSION_T4_2D | ffi::COMPRESSION_T6,
            );
            // Received pages are stored as T.6 (G4), the format the rest of
            // Faxbox reads and converts to PDF.
            sys::t30_set_supported_output_compressions(t30, ffi::COMPRESSION_T6);
            sys::t30_set_supported_bilevel_resolutions(
                t30,
                resolutions_up_to(settings.max_resolution),
            );
            sys::t30_set_supported_image_sizes(
                t30,
                ffi::SUPPORT_WIDTH_215MM | lengths_up_to(settings.max_length),
            );
            match transfer {
                Transfer::Send(_) => sys::t30_set_tx_file(t30, self.file.as_ptr(), -1, -1),
                Transfer::Receive(_) => sys::t30_set_rx_file(t30, self.file.as_ptr(), -1),
            }
            sys::t30_set_phase_b_handler(t30, Some(on_phase_b), user);
            sys::t30_set_phase_d_handler(t30, Some(on_phase_d), user);
            sys::t30_set_phase_e_handler(t30, Some(on_phase_e), user);
            if matches!(transfer, Transfer::Send(_)) {
                sys::t30_set_real_time_frame_handler(t30, Some(on_frame), user);
            }
        }
        Ok(())
    }
}

impl Drop for FaxSession {
    fn drop(&mut self) {
        // SAFETY: `fax` came from fax_init and is freed exactly once, here;
        // fax_free closes any open TIFF. The Hooks are freed only after,
        // because fax_free may still log through them. `hooks` came from
        // Box::leak and no reference to it outlives this point.
        unsafe {
            sys::fax_free(self.fax.as_ptr());
            drop(Box::from_raw(self.hooks.as_ptr()));
        }
    }
}

impl std::fmt::Debug for FaxSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaxSession")
            .field("call_id", &self.call_id())
            .field("role", &self.role())
            .field("finished", &self.is_finished())
            .finish()
    }
}

fn c_setting(
    setting: &'static str,
    value: &str,
    max_len: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<CString, FaxError> {
    let bad = |problem| FaxError::Setting {
        setting,
        value: value.to_owned(),
        problem,
    };
    if value.len() > max_len {
        return Err(bad(match setting {
            "ident" => "at most 20 characters (T.30 5.3.6.2)",
            "header" => "at most 50 characters",
            _ => "too long",
        }));
    }
    if !value.chars().all(allowed) {
        return Err(bad("only printable ASCII characters"));
    }
    CString::new(value).map_err(|_| bad("contains a NUL character"))
}

fn resolutions_up_to(max: Resolution) -> c_int {
    // Both the R8 (204 dpi) and the metric 200 dpi families, as SpanDSP's
    // own default does, so inch-based machines are met too.
    let mut bits = ffi::RESOLUTION_R8_STANDARD | ffi::RESOLUTION_200_100;
    if max >= Resolution::Fine {
        bits |= ffi::RESOLUTION_R8_FINE | ffi::RESOLUTION_200_200;
    }
    if max >= Resolution::Superfine {
        bits |= ffi::RESOLUTION_R8_SUPERFINE | ffi::RESOLUTION_200_400;
    }
    bits
}

fn lengths_up_to(max: PageLength) -> c_int {
    let a4 = ffi::SUPPORT_LENGTH_A4 | ffi::SUPPORT_LENGTH_US_LETTER;
    match max {
        PageLength::A4 => ffi::SUPPORT_LENGTH_A4,
        PageLength::Letter => ffi::SUPPORT_LENGTH_US_LETTER,
        PageLength::Legal => a4 | ffi::SUPPORT_LENGTH_US_LEGAL,
        PageLength::B4 => a4 | ffi::SUPPORT_LENGTH_US_LEGAL | ffi::SUPPORT_LENGTH_B4,
        PageLength::Unlimited => {
            a4 | ffi::SUPPORT_LENGTH_US_LEGAL
                | ffi::SUPPORT_LENGTH_B4
                | ffi::SUPPORT_LENGTH_UNLIMITED
        }
    }
}

// ---------------------------------------------------------------------------
// Callbacks. SpanDSP calls these from inside fax_rx/fax_tx/t30_terminate on
// the thread that owns the session. A panic must not unwind into C (that
// aborts the process), so each body runs under catch_unwind.

/// Runs `f` on the session's Hooks, catching panics.
///
/// # Safety
/// `user` must be the Hooks pointer registered in `FaxSession::new`, still
/// allocated (SpanDSP only calls back while the session is alive).
pub(super) unsafe fn with_hooks(user: *mut c_void, f: impl FnOnce(&Hooks)) {
    // SAFETY: guaranteed by the caller; only a shared reference is made.
    let hooks = unsafe { &*(user as *const Hooks) };
    if catch_unwind(AssertUnwindSafe(|| f(hooks))).is_err() {
        hooks.panicked.set(true);
    }
}

impl Hooks {
    pub(super) fn new(call_id: &str, role: Role, sending: bool) -> Hooks {
        Hooks {
            call_id: call_id.to_owned(),
            role,
            sending,
            t30: Cell::new(std::ptr::null_mut()),
            events: RefCell::new(Vec::new()),
            negotiated: RefCell::new(None),
            last_page_sent: Cell::new(false),
            bad_rows: Cell::new(0),
            longest_bad_row_run: Cell::new(0),
            outcome: RefCell::new(None),
            panicked: Cell::new(false),
        }
    }

    fn stats(&self) -> sys::t30_stats_t {
        // SAFETY: t30_stats_t is plain integers, so all-zero is valid; the
        // t30 pointer is live while callbacks can run, and the function only
        // writes the struct.
        unsafe {
            let mut stats: sys::t30_stats_t = std::mem::zeroed();
            sys::t30_get_transfer_statistics(self.t30.get(), &mut stats);
            stats
        }
    }

    fn remote_ident(&self) -> String {
        // SAFETY: t30 is live; t30_get_rx_ident returns null or a pointer to
        // a NUL-terminated buffer inside the t30 state, copied at once.
        unsafe {
            let p = sys::t30_get_rx_ident(self.t30.get());
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().trim().to_owned()
            }
        }
    }

    fn pages(&self, stats: &sys::t30_stats_t) -> u32 {
        let n = if self.sending {
            stats.pages_tx
        } else {
            stats.pages_rx
        };
        n.max(0) as u32
    }
}

fn nonneg(v: c_int) -> u32 {
    v.max(0) as u32
}

/// Pixels per metre to dots per inch, rounded (SpanDSP keeps metric units).
fn dpi(per_metre: c_int) -> u32 {
    ((per_metre.max(0) as f64) * 0.0254).round() as u32
}

/// # Safety
/// Only SpanDSP calls this, with the Hooks pointer registered in
/// `FaxSession::new`, while the session is alive.
unsafe extern "C" fn on_phase_b(user: *mut c_void, _frame: c_int) -> c_int {
    // SAFETY: registered with this Hooks pointer in FaxSession::new.
    unsafe {
        with_hooks(user, |hooks| {
            let stats = hooks.stats();
            let negotiation = Negotiation {
                bit_rate: nonneg(stats.bit_rate),
                ecm: stats.error_correcting_mode != 0,
                remote_ident: hooks.remote_ident(),
            };
            // Phase B can repeat (EOM, fallback after failed training):
            // report only what changed.
            let mut last = hooks.negotiated.borrow_mut();
            if last.as_ref() != Some(&negotiation) {
                *last = Some(negotiation.clone());
                hooks
                    .events
                    .borrow_mut()
                    .push(FaxEvent::Negotiated(negotiation));
            }
        });
    }
    sys::t30_err_e::T30_ERR_OK as c_int
}

/// # Safety
/// Only SpanDSP calls this, with the Hooks pointer registered in
/// `FaxSession::new`, while the session is alive.
unsafe extern "C" fn on_phase_d(user: *mut c_void, _frame: c_int) -> c_int {
    // SAFETY: registered with this Hooks pointer in FaxSession::new.
    unsafe {
        with_hooks(user, |hooks| {
            let stats = hooks.stats();
            let report = PageReport {
                page: hooks.pages(&stats),
                bad_rows: nonneg(stats.bad_rows),
                longest_bad_row_run: nonneg(stats.longest_bad_row_run),
                x_dpi: dpi(stats.x_resolution),
                y_dpi: dpi(stats.y_resolution),
            };
            if !hooks.sending {
                hooks.bad_rows.set(hooks.bad_rows.get() + report.bad_rows);
                hooks.longest_bad_row_run.set(
                    hooks
                        .longest_bad_row_run
                        .get()
                        .max(report.longest_bad_row_run),
                );
            }
            hooks.events.borrow_mut().push(FaxEvent::PageDone(report));
        });
    }
    sys::t30_err_e::T30_ERR_OK as c_int
}

/// Whether an HDLC control frame (address, control, FCF, ...) ends the
/// procedure after the last page: EOP or PRI-EOP, or in error correction
/// mode a PPS whose second FCF is one of them (T.30 5.3.6.1.7, A.4.3). The
/// low bit of an FCF is the X bit (whether the sender received DIS), so it
/// is masked off.
fn ends_procedure(frame: &[u8]) -> bool {
    let is_end = |fcf: u8| {
        let fcf = fcf & 0xFE;
        fcf == ffi::T30_EOP || fcf == ffi::T30_PRI_EOP
    };
    match frame {
        [_, _, fcf, rest @ ..] if fcf & 0xFE == ffi::T30_PPS => {
            rest.first().is_some_and(|f| is_end(*f))
        }
        [_, _, fcf, ..] => is_end(*fcf),
        _ => false,
    }
}

/// # Safety
/// Only SpanDSP calls this, with the Hooks pointer registered in
/// `FaxSession::new` and a frame of `len` bytes, while the session is alive.
unsafe extern "C" fn on_frame(user: *mut c_void, incoming: bool, msg: *const u8, len: c_int) {
    if incoming || msg.is_null() || len < 3 {
        return;
    }
    // SAFETY: SpanDSP passes the frame it is about to send, `len` bytes at
    // `msg` (t30.c send_frame), valid for the duration of the call.
    let frame = unsafe { std::slice::from_raw_parts(msg, len as usize) };
    // SAFETY: registered with this Hooks pointer in FaxSession::new.
    unsafe {
        with_hooks(user, |hooks| {
            if ends_procedure(frame) && !hooks.last_page_sent.replace(true) {
                hooks.events.borrow_mut().push(FaxEvent::LastPageSent);
            }
        });
    }
}

/// # Safety
/// Only SpanDSP calls this, with the Hooks pointer registered in
/// `FaxSession::new`, while the session is alive.
unsafe extern "C" fn on_phase_e(user: *mut c_void, completion_code: c_int) {
    // SAFETY: registered with this Hooks pointer in FaxSession::new.
    unsafe {
        with_hooks(user, |hooks| {
            let stats = hooks.stats();
            let code = T30Code::from_number(completion_code.into()).unwrap_or_else(|| {
                tracing::warn!(
                    call = %hooks.call_id,
                    completion_code,
                    text = ffi::completion_code_text(completion_code),
                    "unknown T.30 completion code"
                );
                T30Code::Unexpected
            });
            let outcome = FaxOutcome {
                code,
                pages: hooks.pages(&stats),
                bit_rate: nonneg(stats.bit_rate),
                ecm: stats.error_correcting_mode != 0,
                remote_ident: hooks.remote_ident(),
                bad_rows: hooks.bad_rows.get(),
                longest_bad_row_run: hooks.longest_bad_row_run.get(),
                ecm_retries: nonneg(stats.error_correcting_mode_retries),
            };
            *hooks.outcome.borrow_mut() = Some(outcome.clone());
            hooks.events.borrow_mut().push(FaxEvent::Finished(outcome));
        });
    }
}

/// # Safety
/// Only SpanDSP calls this, with the Hooks pointer registered in
/// `FaxSession::new`, while the session is alive.
unsafe extern "C" fn on_log(user: *mut c_void, _level: c_int, text: *const c_char) {
    // SAFETY: registered with this Hooks pointer in FaxSession::new; `text`
    // is a NUL-terminated string valid for the duration of the call.
    unsafe {
        with_hooks(user, |hooks| {
            if text.is_null() {
                return;
            }
            let text = CStr::from_ptr(text).to_string_lossy();
            tracing::debug!(target: "faxbox::fax::spandsp", call = %hooks.call_id, "{}", text.trim_end());
        });
    }
}

/// Whether `path` could be handed to the engine as a receive file.
pub fn check_receive_path(path: &Path) -> Result<(), FaxError> {
    check_engine_path(path).map_err(FaxError::from)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::super::wire::{LineModel, Wire};
    use super::*;

    fn receiver(dir: &Path, settings: &FaxSettings) -> Result<FaxSession, FaxError> {
        FaxSession::new(
            "rx",
            Role::Answerer,
            &Transfer::Receive(dir.join("rx.tiff")),
            settings,
        )
    }

    #[test]
    fn settings_are_checked_before_the_engine_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, FaxSettings); 5] = [
            (
                "ident",
                FaxSettings {
                    ident: "x".repeat(21),
                    ..FaxSettings::default()
                },
            ),
            (
                "ident",
                FaxSettings {
                    ident: "tab\there".into(),
                    ..FaxSettings::default()
                },
            ),
            (
                "header",
                FaxSettings {
                    header: "h".repeat(51),
                    ..FaxSettings::default()
                },
            ),
            (
                "timezone",
                FaxSettings {
                    timezone: Some("Europe/Zürich".into()),
                    ..FaxSettings::default()
                },
            ),
            (
                "modems",
                FaxSettings {
                    modems: Modems::only(Modem::V29).without(Modem::V29),
                    ..FaxSettings::default()
                },
            ),
        ];
        for (setting, settings) in cases {
            match receiver(dir.path(), &settings) {
                Err(FaxError::Setting { setting: s, .. }) => assert_eq!(s, setting),
                other => panic!("{setting}: {other:?}"),
            }
        }
        let fine = FaxSettings {
            ident: "+41 44 123 45 67".into(),
            header: "ACME Ltd, Zurich".into(),
            timezone: Some("CET-1CEST,M3.5.0,M10.5.0/3".into()),
            ..FaxSettings::default()
        };
        receiver(dir.path(), &fine).unwrap();
    }

    #[test]
    fn a_file_name_longer_than_the_engine_buffer_is_refused() {
        let long = PathBuf::from(format!("/tmp/{}.tiff", "a".repeat(300)));
        let err = FaxSession::new(
            "rx",
            Role::Answerer,
            &Transfer::Receive(long),
            &FaxSettings::default(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FaxError::Document(DocumentProblem::BadPath { .. })
        ));
    }

    #[test]
    fn modem_sets() {
        let v17 = Modems::only(Modem::V17);
        assert!(v17.contains(Modem::V17) && !v17.contains(Modem::V29));
        assert_eq!(v17.with(Modem::V29).with(Modem::V27ter), Modems::ALL);
        assert!(Modems::ALL.without(Modem::V17).contains(Modem::V29));
        assert!(v17.without(Modem::V17).is_empty());
        assert_eq!(
            Modems::ALL.to_spandsp(),
            ffi::SUPPORT_V17 | ffi::SUPPORT_V29 | ffi::SUPPORT_V27TER
        );
    }

    /// Hanging up before anything was exchanged ends the call as dropped
    /// (49), with exactly one Finished event.
    #[test]
    fn hang_up_before_any_audio_reports_call_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut rx = receiver(dir.path(), &FaxSettings::default()).unwrap();
        assert!(!rx.is_finished());
        rx.hang_up();
        assert!(rx.is_finished());
        let events = rx.take_events();
        assert_eq!(events.len(), 1, "{events:?}");
        let FaxEvent::Finished(outcome) = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(outcome.code, T30Code::CallDropped);
        assert_eq!(outcome.pages, 0);
        rx.hang_up();
        assert!(rx.take_events().is_empty(), "a second hang-up is a no-op");
    }

    /// A panic inside a callback must not unwind into C: it is caught and
    /// recorded, and the session then ends the call.
    #[test]
    fn callback_panics_are_caught() {
        let hooks = Hooks::new("p", Role::Caller, true);
        let user = (&hooks as *const Hooks).cast_mut().cast::<c_void>();
        // SAFETY: `user` points at `hooks`, alive for the whole call.
        unsafe { with_hooks(user, |_| panic!("boom")) };
        assert!(hooks.panicked.get());
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// SpanDSP's own log reaches `tracing` at debug, tagged with the call.
    #[test]
    fn spandsp_log_goes_to_tracing_with_the_call_id() {
        let dir = tempfile::tempdir().unwrap();
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Other tests start SpanDSP sessions on other threads with no
            // subscriber; a callsite they register while this subscriber is
            // being set up can keep a "disabled" interest that misses it
            // (tracing-core computes interest per callsite, globally).
            // Recompute every callsite's interest now that it is in place.
            tracing::callsite::rebuild_interest_cache();
            let mut rx = receiver(dir.path(), &FaxSettings::default()).unwrap();
            let mut silence = vec![0i16; CHUNK_SAMPLES];
            // Past the 2.6 s of CED, when the answerer starts sending DIS.
            for _ in 0..300 {
                rx.transmit(&mut silence);
                rx.receive(&[0; CHUNK_SAMPLES]);
            }
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("faxbox::fax::spandsp"), "{text}");
        assert!(text.contains("call=rx"), "{text}");
        assert!(text.contains("T.30"), "{text}");
    }

    /// Two sessions over a clean wire with a document made here: the
    /// answerer's file holds what was sent, and both ends agree on the
    /// result (the loopback tests cover this in depth).
    #[test]
    fn caller_and_answerer_complete_a_call_over_the_wire() {
        use crate::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
        let dir = tempfile::tempdir().unwrap();
        let mut page = BitPage::new(1728, 400, 204.0, 98.0);
        for x in 100..900 {
            page.set(x, 200, true);
        }
        let doc = dir.path().join("tx.tiff");
        std::fs::write(&doc, encode_fax_tiff(std::slice::from_ref(&page)).unwrap()).unwrap();
        let doc = FaxDocument::open(&doc).unwrap();
        assert_eq!(doc.pages(), 1);
        let settings = FaxSettings {
            ident: "111".into(),
            ..FaxSettings::default()
        };
        let mut tx = FaxSession::new("tx", Role::Caller, &Transfer::Send(doc), &settings).unwrap();
        let mut rx = receiver(dir.path(), &FaxSettings::default()).unwrap();
        let mut wire = Wire::new(LineModel::clean());
        while !(tx.is_finished() && rx.is_finished()) {
            wire.step(&mut tx, &mut rx);
            assert!(wire.elapsed() < Duration::from_secs(120), "no end");
        }
        assert_eq!(tx.outcome().unwrap().code, T30Code::Ok);
        let far = rx.outcome().unwrap();
        assert_eq!((far.code, far.pages), (T30Code::Ok, 1));
        assert_eq!(far.remote_ident, "111");
        let got = decode_fax_tiff(&std::fs::read(dir.path().join("rx.tiff")).unwrap()).unwrap();
        assert_eq!(got, vec![page]);
        assert!(rx.audio_time() >= wire.elapsed() - Duration::from_millis(20));
    }
    /// A receiver that only offers standard resolution (98 dpi) gets a fine
    /// page sent at half the rows: SpanDSP rescales rather than failing
    /// with code 11, and the page report says so.
    #[test]
    fn max_resolution_limits_what_is_exchanged() {
        use crate::documents::faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
        let dir = tempfile::tempdir().unwrap();
        let mut page = BitPage::new(1728, 400, 204.0, 196.0);
        for x in 100..900 {
            page.set(x, 200, true);
            page.set(x, 201, true);
        }
        let doc = dir.path().join("tx.tiff");
        std::fs::write(&doc, encode_fax_tiff(&[page]).unwrap()).unwrap();
        let doc = FaxDocument::open(&doc).unwrap();
        let mut tx = FaxSession::new(
            "tx",
            Role::Caller,
            &Transfer::Send(doc),
            &FaxSettings::default(),
        )
        .unwrap();
        let standard = FaxSettings {
            max_resolution: Resolution::Standard,
            max_length: PageLength::A4,
            ..FaxSettings::default()
        };
        let mut rx = receiver(dir.path(), &standard).unwrap();
        let mut wire = Wire::new(LineModel::clean());
        while !(tx.is_finished() && rx.is_finished()) {
            wire.step(&mut tx, &mut rx);
            assert!(wire.elapsed() < Duration::from_secs(120), "no end");
        }
        assert_eq!(rx.outcome().unwrap().code, T30Code::Ok);
        let reports: Vec<_> = rx
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                FaxEvent::PageDone(p) => Some((p.x_dpi, p.y_dpi)),
                _ => None,
            })
            .collect();
        assert_eq!(reports, [(204, 98)]);
        let got = decode_fax_tiff(&std::fs::read(dir.path().join("rx.tiff")).unwrap()).unwrap();
        assert_eq!((got[0].height, got[0].y_dpi), (200, 98.0));
        assert_eq!(got[0].black_pixels(), 800, "the two rows became one");
    }
}
