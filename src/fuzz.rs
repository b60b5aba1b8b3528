//! What the fuzz targets run (the `fuzz/` crate, `make fuzz`), one function
//! per parser that reads bytes from outside: an email, a multipart upload,
//! a JSON body, an IPP request, a PDF being counted, a fax TIFF, a print
//! raster. The test suite replays each target's saved corpus through the
//! same functions (tests/it/fuzz.rs), so what the fuzzer once found stays
//! fixed.
//!
//! Each function only has to return: an `Err` is the right answer to bad
//! bytes; a panic, an abort, a hang or a runaway allocation is the bug the
//! fuzzer looks for.

/// An email as the SMTP listener reads it at the end of DATA.
pub fn mime(data: &[u8]) {
    let _ = crate::smtp::read_email(data, &crate::smtp::ContentRules::defaults());
    let _ = crate::smtp::first_attachment(data);
}

/// A multipart upload: the first line is the boundary, the rest the body.
pub fn multipart(data: &[u8]) {
    let (boundary, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"b"[..], data),
    };
    let _ = crate::api::multipart::parse(body, &String::from_utf8_lossy(boundary));
}

/// A JSON request body, read as the API reads a fax's fields.
pub fn json(data: &[u8]) {
    let _ = crate::api::parse_data::<serde_json::Map<String, serde_json::Value>>(data, "fax");
}

/// An IPP request body as a fax printer receives it.
pub fn ipp(data: &[u8]) {
    let _ = crate::ipp::decode_request(data);
}

/// A PDF opened and counted, as intake does before taking it.
pub fn pdf(data: &[u8]) {
    let _ = crate::documents::pdf_page_count(data, "fuzz.pdf");
}

/// A fax TIFF read back (received faxes, stored documents).
pub fn tiff(data: &[u8]) {
    let _ = crate::documents::faxtiff::tiff_page_info(data);
    let _ = crate::documents::count_tiff_pages(data);
    let _ = crate::documents::decode_fax_tiff(data);
}

/// A PWG or Apple raster print job decoded into fax pages, with small
/// budgets so that each input is quick.
pub fn raster(data: &[u8]) {
    use crate::documents::print_raster::{Format, convert};
    let geometry = crate::documents::ConvertOptions::default().geometry();
    let format = if data.starts_with(b"UNIRAST") {
        Format::Apple
    } else {
        Format::Pwg
    };
    let watch = crate::documents::Watch::idle();
    let _ = convert(data, "fuzz.pwg", format, &geometry, 4, 4_000_000, &watch);
}

/// One fuzz target: the bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The targets by name, for `make fuzz TARGET=...` and the replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("mime", mime),
    ("multipart", multipart),
    ("json", json),
    ("ipp", ipp),
    ("pdf", pdf),
    ("tiff", tiff),
    ("raster", raster),
];
