//! Documents: turning any accepted input into a fax-ready TIFF, and a fax
//! TIFF into a PDF. Pure functions over bytes; the only external process is
//! the optional LibreOffice helper for office formats. Knows nothing of jobs,
//! storage or lines (DESIGN.md).

mod ccitt;
mod error;
pub mod faxtiff;

pub use error::DocumentError;
pub use faxtiff::{BitPage, decode_fax_tiff, encode_fax_tiff};
