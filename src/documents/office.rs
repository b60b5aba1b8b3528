//! Office documents (placeholder, filled in next).
use super::DocumentError;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub fn office_available() -> bool {
    false
}

pub(crate) fn to_pdf(
    _bytes: &[u8],
    name: &str,
    _program: Option<&std::path::Path>,
    _budget: Duration,
    _cancel: &AtomicBool,
) -> Result<Vec<u8>, DocumentError> {
    Err(DocumentError::NeedsLibreOffice { name: name.into() })
}
