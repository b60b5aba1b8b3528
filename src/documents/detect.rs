//! What kind of document an input is: from its bytes first, checked against
//! what its file name or content type claims. A mismatch between two kinds
//! we know ("invoice.pdf" that is really a PNG) is refused with a specific
//! error rather than guessed at, because it usually means the wrong file
//! was attached.

use super::DocumentError;

/// The kinds of input Faxbox converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Pdf,
    Tiff,
    /// PNG, JPEG, GIF, BMP or WebP.
    Image,
    Text,
    /// DOC, DOCX, ODT, RTF, XLS, XLSX, ODS, PPT, PPTX, ODP (via LibreOffice).
    Office,
    /// PWG Raster (`image/pwg-raster`), what IPP Everywhere clients print.
    PwgRaster,
    /// Apple Raster (`image/urf`), what AirPrint clients print.
    AppleRaster,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Pdf => "a PDF",
            Kind::Tiff => "a TIFF image",
            Kind::Image => "an image",
            Kind::Text => "plain text",
            Kind::Office => "an office document",
            Kind::PwgRaster => "a PWG raster print file",
            Kind::AppleRaster => "an Apple raster (URF) print file",
        }
    }
}

const OFFICE_EXTENSIONS: &[&str] = &[
    "doc", "docx", "odt", "rtf", "xls", "xlsx", "ods", "ppt", "pptx", "odp",
];

/// The kind a file name's extension claims; `Err` for an extension that
/// names something we do not fax, `Ok(None)` for no extension.
fn kind_from_name(name: &str) -> Result<Option<Kind>, String> {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return Ok(None);
    };
    if ext.is_empty() || ext.len() > 8 || name.ends_with('/') {
        return Ok(None);
    }
    let ext = ext.to_ascii_lowercase();
    Ok(Some(match ext.as_str() {
        "pdf" => Kind::Pdf,
        "tif" | "tiff" => Kind::Tiff,
        "png" | "jpg" | "jpeg" | "jpe" | "gif" | "bmp" | "webp" => Kind::Image,
        "txt" | "text" | "csv" | "log" | "md" | "asc" => Kind::Text,
        "pwg" => Kind::PwgRaster,
        "urf" => Kind::AppleRaster,
        e if OFFICE_EXTENSIONS.contains(&e) => Kind::Office,
        _ => return Err(format!(".{ext} files")),
    }))
}

/// The kind a MIME content type claims; generic types claim nothing.
fn kind_from_content_type(ct: &str) -> Option<Kind> {
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match ct.as_str() {
        "application/pdf" | "application/x-pdf" => Kind::Pdf,
        "image/tiff" | "image/tif" => Kind::Tiff,
        "text/plain" | "text/csv" => Kind::Text,
        "image/pwg-raster" => Kind::PwgRaster,
        "image/urf" => Kind::AppleRaster,
        "application/msword"
        | "application/rtf"
        | "text/rtf"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint" => Kind::Office,
        c if c.starts_with("image/") => Kind::Image,
        c if c.starts_with("application/vnd.openxmlformats-officedocument.")
            || c.starts_with("application/vnd.oasis.opendocument.") =>
        {
            Kind::Office
        }
        _ => return None,
    })
}

/// What the bytes are, by their signatures.
fn kind_from_bytes(bytes: &[u8]) -> Option<Kind> {
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Some(Kind::Pdf);
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Some(Kind::Tiff);
    }
    if bytes.starts_with(super::print_raster::PWG_SYNC) {
        return Some(Kind::PwgRaster);
    }
    if bytes.starts_with(super::print_raster::APPLE_SYNC) {
        return Some(Kind::AppleRaster);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
        || bytes.starts_with(b"GIF87a")
        || bytes.starts_with(b"GIF89a")
        || (bytes.starts_with(b"BM") && bytes.len() > 26)
        || (bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP")
    {
        return Some(Kind::Image);
    }
    // OLE2 compound files (DOC, XLS, PPT), RTF, and ZIP packages that are
    // OOXML or ODF (their first entry names give them away).
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
        || bytes.starts_with(b"{\\rtf")
    {
        return Some(Kind::Office);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        let probe = &bytes[..bytes.len().min(64 * 1024)];
        let has = |s: &[u8]| probe.windows(s.len()).any(|w| w == s);
        if has(b"[Content_Types].xml") || has(b"application/vnd.oasis.opendocument") {
            return Some(Kind::Office);
        }
        return None;
    }
    if looks_like_text(bytes) {
        return Some(Kind::Text);
    }
    None
}

/// Text: no NULs and few control characters in the first 8 KB (UTF-8 or a
/// single-byte code page; UTF-16 with a BOM counts too).
fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return true;
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return false;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C | 0x1B))
        .count();
    controls * 100 <= head.len()
}

/// Decides the kind of one input, or why it cannot be faxed.
pub fn detect(bytes: &[u8], name: &str, content_type: Option<&str>) -> Result<Kind, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty { name: name.into() });
    }
    let claimed = match kind_from_name(name) {
        Ok(Some(k)) => Some(k),
        Ok(None) => content_type.and_then(kind_from_content_type),
        Err(what) => {
            return Err(DocumentError::Unsupported {
                name: name.into(),
                what,
            });
        }
    };
    let actual = kind_from_bytes(bytes);
    match (claimed, actual) {
        (Some(c), Some(a)) if c == a => Ok(a),
        // A CSV or log that happens to start like something else is rare;
        // an office file is often a ZIP we could not look inside far enough.
        (Some(Kind::Office), None) => Ok(Kind::Office),
        (Some(c), Some(a)) => Err(DocumentError::WrongKind {
            name: name.into(),
            claimed: c.describe().into(),
            actual: a.describe().into(),
        }),
        (Some(c), None) => Err(DocumentError::Corrupt {
            name: name.into(),
            kind: c.describe().into(),
            reason: "its contents are not in that format".into(),
        }),
        (None, Some(a)) => Ok(a),
        (None, None) => Err(DocumentError::Unsupported {
            name: name.into(),
            what: "its contents are not a known format".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let png = b"\x89PNG\r\n\x1a\n0000".as_slice();
        type Case<'a> = (&'a [u8], &'a str, Option<&'a str>, Result<Kind, &'a str>);
        let cases: &[Case] = &[
            (b"%PDF-1.7\n", "a.pdf", None, Ok(Kind::Pdf)),
            (
                b"%PDF-1.7\n",
                "noext",
                Some("application/octet-stream"),
                Ok(Kind::Pdf),
            ),
            (png, "photo.PNG", None, Ok(Kind::Image)),
            (png, "invoice.pdf", None, Err("WrongKind")),
            (b"hello\nworld\n", "notes.txt", None, Ok(Kind::Text)),
            (
                b"hello\nworld\n",
                "notes",
                Some("text/plain"),
                Ok(Kind::Text),
            ),
            (b"hello", "report.pdf", None, Err("WrongKind")),
            (
                b"MZ\x90\x00\x03\x00\x00\x00",
                "setup.exe",
                None,
                Err("Unsupported"),
            ),
            (b"\x00\x01\x02garbage", "blob", None, Err("Unsupported")),
            (b"{\\rtf1 hi}", "letter.rtf", None, Ok(Kind::Office)),
            (b"II*\0\x08\0\0\0", "scan.tif", None, Ok(Kind::Tiff)),
            (b"", "empty.pdf", None, Err("Empty")),
            (b"\x00\x00\x00garbage", "broken.pdf", None, Err("Corrupt")),
            (
                b"RaS2PwgRaster\0",
                "job",
                Some("image/pwg-raster"),
                Ok(Kind::PwgRaster),
            ),
            (b"RaS2PwgRaster\0", "page.pwg", None, Ok(Kind::PwgRaster)),
            (
                b"UNIRAST\0\0\0\0\x01",
                "job",
                Some("image/urf"),
                Ok(Kind::AppleRaster),
            ),
            (b"UNIRAST\0\0\0\0\x01", "job", None, Ok(Kind::AppleRaster)),
            (
                b"RaS2PwgRaster\0",
                "job",
                Some("image/urf"),
                Err("WrongKind"),
            ),
            (
                b"%PDF-1.7\n",
                "job",
                Some("image/pwg-raster"),
                Err("WrongKind"),
            ),
        ];
        for (bytes, name, ct, want) in cases {
            let got = detect(bytes, name, *ct);
            match (want, &got) {
                (Ok(k), Ok(g)) => assert_eq!(k, g, "{name}"),
                (Err(v), Err(e)) => assert!(format!("{e:?}").starts_with(v), "{name}: {e:?}"),
                _ => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }
}
