//! The few SpanDSP constants and helpers that bindgen does not export.
//!
//! SpanDSP declares its capability bits as anonymous C enums, which bindgen
//! leaves out; they are copied here from `spandsp/t4_rx.h` and `t30.h` of the
//! vendored source (spandsp-sys 0.2.4). A constant that changes upstream is
//! caught by the loopback tests, which negotiate with these values.

use std::ffi::CStr;
use std::os::raw::c_int;

use spandsp_sys as sys;

// t30.h `T30_SUPPORT_*` (these ones bindgen does export).
pub const SUPPORT_V27TER: c_int = sys::T30_SUPPORT_V27TER as c_int;
pub const SUPPORT_V29: c_int = sys::T30_SUPPORT_V29 as c_int;
pub const SUPPORT_V17: c_int = sys::T30_SUPPORT_V17 as c_int;

// t4_rx.h bi-level resolutions.
pub const RESOLUTION_R8_STANDARD: c_int = 0x1;
pub const RESOLUTION_R8_FINE: c_int = 0x2;
pub const RESOLUTION_R8_SUPERFINE: c_int = 0x4;
pub const RESOLUTION_200_100: c_int = 0x20;
pub const RESOLUTION_200_200: c_int = 0x40;
pub const RESOLUTION_200_400: c_int = 0x80;

// t4_rx.h image sizes.
pub const SUPPORT_WIDTH_215MM: c_int = 0x01;
pub const SUPPORT_LENGTH_UNLIMITED: c_int = 0x10000;
pub const SUPPORT_LENGTH_A4: c_int = 0x20000;
pub const SUPPORT_LENGTH_B4: c_int = 0x40000;
pub const SUPPORT_LENGTH_US_LETTER: c_int = 0x80000;
pub const SUPPORT_LENGTH_US_LEGAL: c_int = 0x100000;

// t4_rx.h compressions (bindgen exports these with a long prefix).
pub const COMPRESSION_T4_1D: c_int = sys::t4_image_compression_t_T4_COMPRESSION_T4_1D as c_int;
pub const COMPRESSION_T4_2D: c_int = sys::t4_image_compression_t_T4_COMPRESSION_T4_2D as c_int;
pub const COMPRESSION_T6: c_int = sys::t4_image_compression_t_T4_COMPRESSION_T6 as c_int;

// t30_fcf.h frame types (FCF without the X bit) that end a page.
pub const T30_EOP: u8 = sys::T30_EOP as u8;
pub const T30_PRI_EOP: u8 = sys::T30_PRI_EOP as u8;
pub const T30_PPS: u8 = sys::T30_PPS as u8;

// async.h signal status values, passed where a bit or length is expected.
pub const SIG_STATUS_TRAINING_SUCCEEDED: c_int = -4;

// t30.h limits: `T30_MAX_IDENT_LEN`, `T30_MAX_PAGE_HEADER_INFO`, and the
// size of the `tx_file`/`rx_file` buffers in `private/t30.h`.
pub const MAX_IDENT_LEN: usize = 20;
pub const MAX_HEADER_LEN: usize = 50;
pub const MAX_PATH_LEN: usize = 255;

/// SpanDSP's own text for a completion code.
pub fn completion_code_text(code: c_int) -> &'static str {
    // SAFETY: t30_completion_code_to_str accepts any integer and returns a
    // pointer to a static NUL-terminated string ("???" for unknown codes).
    let text = unsafe { CStr::from_ptr(sys::t30_completion_code_to_str(code)) };
    text.to_str().unwrap_or("???")
}
