//! The fax engine: safe owners of SpanDSP objects, and the only module in
//! Faxbox allowed `unsafe` code (docs/style.md, principle 9).
//!
//! It owns: the audio T.30 session ([`FaxSession`], caller or answerer,
//! sending a TIFF or receiving into one), the check that a TIFF can be faxed
//! ([`FaxDocument`]), the T.30 completion codes ([`T30Code`]) and a
//! simulated telephone line ([`Wire`], [`LineModel`]) for the loopback line
//! and tests, T.30 for a Class 1 modem ([`Class1T30`]) and a soft Class 1
//! modem for tests ([`SoftModem`], SpanDSP's T.31), and the C allocator's
//! settings and trim ([`configure_for_a_long_running_box`],
//! [`return_freed_memory_to_the_system`]). It must not know about jobs,
//! accounts or the store: `lines` turns its results into attempt results.
//!
//! Every `unsafe` block says why it is sound in a `// SAFETY:` comment. The
//! rules followed throughout: one owning type per C object, null-checked at
//! creation and freed in `Drop`; callback state boxed so its address never
//! moves; callbacks catch panics; SpanDSP's log goes to `tracing` at debug
//! level (target `faxbox::fax::spandsp`) with the call id.
#![allow(unsafe_code)]

mod alloc;
mod class1;
mod code;
mod document;
mod ffi;
mod session;
mod t31;
mod wire;

pub use alloc::{configure_for_a_long_running_box, return_freed_memory_to_the_system};
pub use class1::{Class1T30, FrontEnd, HdlcDeframer, HdlcFramer, Signal};
pub use code::{CodeGroup, T30Code};
pub use document::{DocumentProblem, FAX_WIDTH, FaxDocument, MAX_PAGES};
pub use session::{
    CHUNK_SAMPLES, ErrorCorrection, FaxError, FaxEvent, FaxOutcome, FaxSession, FaxSettings, Modem,
    Modems, Negotiation, PageLength, PageReport, Resolution, Role, SAMPLE_RATE, Transfer,
    check_receive_path,
};
pub use t31::{ModemControl, NetworkEvent, SoftModem};
pub use wire::{LineModel, Terminal, VoiceAnswer, Wire};
