//! MIME multipart bodies (RFC 2046 section 5.1): `multipart/mixed` and
//! `multipart/form-data` (RFC 7578) uploads of a fax, split into parts.
//!
//! Small and strict on purpose: the whole body is already in memory
//! (bounded by the API's body limit), so a part is a slice between two
//! delimiters; no streaming parser crate is needed.

use base64::Engine;

/// One part: its headers (names lower-cased) and its decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type").map(media_type)
    }

    /// A `Content-Disposition` parameter (`name`, `filename`).
    pub fn disposition(&self, param: &str) -> Option<String> {
        self.header("content-disposition")
            .and_then(|d| parameter(d, param))
    }
}

/// `application/pdf; charset=x` -> `application/pdf`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A parameter of a header value: `boundary` of a content type, `filename`
/// of a disposition; quoted or not.
pub fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned(),
        )
    })
}

/// Parts in one upload: a fax's fields and its documents.
pub const MAX_PARTS: usize = 100;

/// Bytes of one part's headers (a part names its type and file name).
pub const MAX_PART_HEADER: usize = 16 * 1024;

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(haystack.get(from..)?, needle).map(|p| p + from)
}

/// Splits a multipart body on `boundary`. Errors are for the sender.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("the multipart boundary must be 1 to 70 characters".into());
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter may open the body or follow a preamble.
    let mut at = if body.starts_with(delimiter) {
        0
    } else {
        let mut close = b"\r\n".to_vec();
        close.extend_from_slice(delimiter);
        find(body, &close, 0)
            .map(|p| p + 2)
            .ok_or("the body has no part with the boundary its Content-Type names")?
    };
    let mut next_delimiter = b"\r\n".to_vec();
    next_delimiter.extend_from_slice(delimiter);
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            break;
        }
        // Transport padding, then the line break that ends the delimiter.
        let line_end = find(body, b"\r\n", at).ok_or("a multipart delimiter line is not ended")?;
        if !body[at..line_end].iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err("a multipart delimiter line has text after the boundary".into());
        }
        let start = line_end + 2;
        let end = find(body, &next_delimiter, start)
            .ok_or("the multipart body ends before its closing boundary")?;
        if parts.len() == MAX_PARTS {
            return Err(format!(
                "the multipart body has more than {MAX_PARTS} parts; send at most {MAX_PARTS} documents at once"
            ));
        }
        parts.push(part(&body[start..end])?);
        at = end + 2;
    }
    Ok(parts)
}

fn part(raw: &[u8]) -> Result<Part, String> {
    let (head, body) = if raw.starts_with(b"\r\n") {
        (&raw[..0], &raw[2..])
    } else {
        let split = find(raw, b"\r\n\r\n", 0)
            .ok_or("a multipart part has no blank line after its headers")?;
        if split > MAX_PART_HEADER {
            return Err(format!(
                "a multipart part has more than {MAX_PART_HEADER} bytes of headers"
            ));
        }
        (&raw[..split], &raw[split + 4..])
    };
    let head = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            // A folded header continues the previous one (RFC 5322 2.2.3).
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut part = Part {
        headers,
        body: body.to_vec(),
    };
    // Kazoo decodes base64 parts (docs/kazoo.md 2.3).
    if part
        .header("content-transfer-encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
    {
        let text: Vec<u8> = part
            .body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        part.body = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("a base64 part cannot be decoded: {e}"))?;
    }
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_form_data_and_mixed_bodies() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\nContent-Type: application/json\r\n\r\n{\"data\":{}}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--\r\nx\r\n--XyZ--\r\n";
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type().as_deref(), Some("application/json"));
        assert_eq!(parts[0].disposition("name").as_deref(), Some("data"));
        assert_eq!(parts[0].body, b"{\"data\":{}}");
        assert_eq!(parts[1].disposition("filename").as_deref(), Some("a b.pdf"));
        // A line that merely starts with "--" stays in the body.
        assert_eq!(parts[1].body, b"%PDF\r\n--\r\nx");
    }

    #[test]
    fn decodes_base64_parts() {
        let body = b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n--b--";
        assert_eq!(parse(body, "b").unwrap()[0].body, b"hello");
    }

    #[test]
    fn refuses_broken_bodies_with_a_reason() {
        for (body, boundary) in [
            (&b"no parts here"[..], "b"),
            (b"--b\r\nContent-Type: text/plain\r\n\r\nnever closed", "b"),
            (b"--b\r\nContent-Type: text/plain", "b"),
            (b"--b\r\n\r\nx\r\n--b--", ""),
        ] {
            assert!(parse(body, boundary).is_err(), "{body:?}");
        }
    }

    /// Issue 18: multipart bodies are bounded like every parser.
    #[test]
    fn too_many_parts_or_too_long_headers_are_refused() {
        let many = format!("{}--b--\r\n", "--b\r\n\r\nx\r\n".repeat(MAX_PARTS + 1));
        let err = parse(many.as_bytes(), "b").unwrap_err();
        assert!(err.contains("more than 100 parts"), "{err}");
        let fits = format!("{}--b--\r\n", "--b\r\n\r\nx\r\n".repeat(MAX_PARTS));
        assert_eq!(parse(fits.as_bytes(), "b").unwrap().len(), MAX_PARTS);
        let long = format!(
            "--b\r\nX-Pad: {}\r\n\r\nx\r\n--b--\r\n",
            "a".repeat(MAX_PART_HEADER)
        );
        let err = parse(long.as_bytes(), "b").unwrap_err();
        assert!(err.contains("bytes of headers"), "{err}");
    }

    #[test]
    fn reads_parameters_quoted_or_not() {
        assert_eq!(
            parameter("multipart/mixed; boundary=abc", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parameter("multipart/form-data; BOUNDARY=\"a b\"", "boundary").as_deref(),
            Some("a b")
        );
        assert_eq!(media_type(" Application/PDF ; x=y"), "application/pdf");
    }
}
