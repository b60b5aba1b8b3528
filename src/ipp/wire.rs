//! The IPP message format (RFC 8010) at the edge: a request body becomes a
//! `Request` (or the IPP status that refuses it), a `Response` becomes
//! bytes. Tags, values and collections are the `ipp` crate's; this module
//! adds what a server needs on top of its parser: the version and
//! request-id checks, the limits, and statuses instead of parse errors.

use std::io::Cursor;

use ipp::attribute::{IppAttribute, IppAttributeGroup, IppAttributes};
use ipp::model::{DelimiterTag, IppVersion, StatusCode};
use ipp::parser::IppParser;
use ipp::reader::IppReader;
use ipp::value::IppValue;

/// IPP versions this server speaks (major, minor). 1.0 clients are
/// answered as 1.1 ones (RFC 8011 section 4.1.8 allows it).
pub const VERSIONS: &[(u8, u8)] = &[(1, 0), (1, 1), (2, 0)];

/// The attributes of a request must fit in this many bytes (a document
/// may follow them); a request whose attributes run past it is malformed.
pub const MAX_ATTRIBUTES: usize = 1024 * 1024;

/// Attribute values (and collection members) in one request: printing
/// asks for a few dozen; the `ipp` crate keeps each in memory.
pub const MAX_VALUES: usize = 10_000;

/// Collections nested in collections: `media-col` holds `media-size`, two
/// levels. A value nested thousands deep would be freed recursively and
/// overflow the stack.
pub const MAX_COLLECTION_DEPTH: usize = 16;

/// Walks the attributes of an IPP message (RFC 8010 3.1.1) without keeping
/// them, and says which bound it breaks, if any, before the `ipp` crate's
/// parser builds them: too many values or collections too deep (refused as
/// too large), or a length that runs past its field, which that parser
/// does not check inside textWithLanguage and nameWithLanguage values
/// (it panicked; found by the `ipp` fuzz target).
fn check_bounds(body: &[u8]) -> Result<(), (StatusCode, String)> {
    let too_large = |why: String| Err((StatusCode::ClientErrorRequestEntityTooLong, why));
    let malformed = |why: &str| {
        Err((
            StatusCode::ClientErrorBadRequest,
            format!("the request is not a well-formed IPP message: {why}"),
        ))
    };
    let mut at = 8;
    let (mut values, mut depth) = (0usize, 0usize);
    // A length-prefixed field at `at`: its bytes, and `at` moved past it.
    let field = |at: &mut usize| -> Option<&[u8]> {
        let len = u16::from_be_bytes([*body.get(*at)?, *body.get(*at + 1)?]) as usize;
        let bytes = body.get(*at + 2..*at + 2 + len)?;
        *at += 2 + len;
        Some(bytes)
    };
    while let Some(&tag) = body.get(at) {
        at += 1;
        match tag {
            // end-of-attributes-tag: the document follows.
            0x03 => return Ok(()),
            // Other delimiter tags start a group.
            0x00..=0x0f => continue,
            _ => {}
        }
        let (Some(_name), Some(value)) = (field(&mut at), field(&mut at)) else {
            return malformed("an attribute runs past the end of the request");
        };
        values += 1;
        if values > MAX_VALUES {
            return too_large(format!(
                "the request has more than {MAX_VALUES} attribute values"
            ));
        }
        match tag {
            // textWithLanguage, nameWithLanguage: a language and a text,
            // each with its length, inside the value (RFC 8010 3.9).
            0x35 | 0x36 => {
                let mut inner = 0;
                let part = |inner: &mut usize| -> Option<()> {
                    let len = u16::from_be_bytes([*value.get(*inner)?, *value.get(*inner + 1)?]);
                    *inner += 2 + len as usize;
                    (*inner <= value.len()).then_some(())
                };
                if part(&mut inner).and_then(|_| part(&mut inner)).is_none() {
                    return malformed("a text with language runs past its value");
                }
            }
            // begCollection, endCollection (RFC 8010 3.1.6).
            0x34 => {
                depth += 1;
                if depth > MAX_COLLECTION_DEPTH {
                    return too_large(format!(
                        "the request nests collections more than {MAX_COLLECTION_DEPTH} deep"
                    ));
                }
            }
            0x37 => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The version as sent (e.g. 0x0200).
    pub version: u16,
    pub operation: u16,
    pub request_id: i32,
    pub attributes: IppAttributes,
    /// Whatever follows the attributes: the document of Print-Job and
    /// Send-Document.
    pub document: Vec<u8>,
}

/// A request refused before it could be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    /// The request-id when the header could be read (0 otherwise).
    pub request_id: i32,
    pub version: u16,
    pub message: String,
}

impl Request {
    /// The first group with `tag`, or none.
    pub fn group(&self, tag: DelimiterTag) -> Option<&IppAttributeGroup> {
        self.attributes.groups_of(tag).next()
    }

    /// An attribute of the operation group.
    pub fn operation_attr(&self, name: &str) -> Option<&IppValue> {
        self.group(DelimiterTag::OperationAttributes)
            .and_then(|g| g.get(name))
            .map(IppAttribute::value)
    }

    /// An attribute of the job group.
    pub fn job_attr(&self, name: &str) -> Option<&IppValue> {
        self.group(DelimiterTag::JobAttributes)
            .and_then(|g| g.get(name))
            .map(IppAttribute::value)
    }
}

/// Decodes a request body. Never panics: a short, malformed or truncated
/// message is `client-error-bad-request`, an unknown major version is
/// `server-error-version-not-supported` (RFC 8011 4.1.8), a request-id of 0
/// is a bad request (4.1.1).
pub fn decode(body: &[u8]) -> Result<Request, Refused> {
    let refuse = |status, request_id, version, message: String| Refused {
        status,
        request_id,
        version,
        message,
    };
    if body.len() < 9 {
        return Err(refuse(
            StatusCode::ClientErrorBadRequest,
            0,
            0x0101,
            format!(
                "the request is {} bytes long, too short for an IPP message",
                body.len()
            ),
        ));
    }
    let version = u16::from_be_bytes([body[0], body[1]]);
    let request_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    let (major, minor) = (body[0], body[1]);
    if !VERSIONS.contains(&(major, minor)) {
        return Err(refuse(
            StatusCode::ServerErrorVersionNotSupported,
            request_id,
            0x0101,
            format!("IPP version {major}.{minor} is not supported; use 1.1 or 2.0"),
        ));
    }
    if request_id <= 0 {
        return Err(refuse(
            StatusCode::ClientErrorBadRequest,
            request_id,
            version,
            "the request-id must be a positive number".into(),
        ));
    }
    let attributes_part = &body[..body.len().min(MAX_ATTRIBUTES)];
    if let Err((status, why)) = check_bounds(attributes_part) {
        return Err(refuse(status, request_id, version, why));
    }
    // The parser wants an owned reader; the document is then the rest of
    // `body` after the position where the attributes ended.
    let parser = IppParser::new(IppReader::new(Cursor::new(attributes_part.to_vec())));
    let (header, attributes, reader) = parser.parse_parts().map_err(|e| {
        refuse(
            StatusCode::ClientErrorBadRequest,
            request_id,
            version,
            format!("the request is not a well-formed IPP message: {e}"),
        )
    })?;
    let end = reader.into_inner().position() as usize;
    let document = body.get(end..).unwrap_or_default().to_vec();
    Ok(Request {
        version,
        operation: header.operation_or_status as u16,
        request_id,
        attributes,
        document,
    })
}

/// A response being built.
#[derive(Debug)]
pub struct Response {
    pub version: u16,
    pub status: StatusCode,
    pub request_id: i32,
    pub message: Option<String>,
    /// Groups after the operation group, in order.
    pub groups: Vec<IppAttributeGroup>,
}

impl Response {
    pub fn new(version: u16, status: StatusCode, request_id: i32) -> Response {
        Response {
            // Answer in the request's version, 1.0 as 1.1.
            version: if version == 0x0100 { 0x0101 } else { version },
            status,
            request_id,
            message: None,
            groups: Vec::new(),
        }
    }

    pub fn refused(r: &Refused) -> Response {
        let mut response = Response::new(r.version, r.status, r.request_id);
        response.message = Some(r.message.clone());
        response
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Response {
        self.message = Some(message.into());
        self
    }

    /// Adds a group of attributes (a printer, a job, the unsupported ones).
    pub fn push_group(&mut self, tag: DelimiterTag, attributes: Vec<IppAttribute>) {
        let mut group = IppAttributeGroup::new(tag);
        *group.attributes_mut() = attributes;
        self.groups.push(group);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut attributes = IppAttributes::new();
        let mut operation = IppAttributeGroup::new(DelimiterTag::OperationAttributes);
        operation
            .attributes_mut()
            .push(attr("attributes-charset", charset("utf-8")));
        operation
            .attributes_mut()
            .push(attr("attributes-natural-language", language("en")));
        if let Some(message) = &self.message {
            operation
                .attributes_mut()
                .push(attr("status-message", text(message)));
        }
        attributes.groups_mut().push(operation);
        attributes.groups_mut().extend(self.groups.iter().cloned());
        let header = ipp::IppHeader::new(
            IppVersion(self.version),
            self.status as i16,
            self.request_id,
        );
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(&attributes.to_bytes());
        out
    }
}

// Value constructors that cannot fail for the values this server writes:
// over-long text is cut at the type's limit rather than refused.

pub fn attr(name: &str, value: IppValue) -> IppAttribute {
    IppAttribute::new(ipp::value::IppName::new_truncated(name), value)
}

pub fn keyword(s: &str) -> IppValue {
    IppValue::Keyword(ipp::value::IppKeyword::new_truncated(s))
}

pub fn keywords(list: &[&str]) -> IppValue {
    one_or_set(list.iter().map(|s| keyword(s)).collect())
}

pub fn text(s: &str) -> IppValue {
    IppValue::TextWithoutLanguage(ipp::value::IppTextValue::Long(
        ipp::value::IppString::new_truncated(s),
    ))
}

pub fn name(s: &str) -> IppValue {
    IppValue::NameWithoutLanguage(ipp::value::IppName::new_truncated(s))
}

pub fn uri(s: &str) -> IppValue {
    IppValue::Uri(ipp::value::IppString::new_truncated(s))
}

pub fn uri_scheme(s: &str) -> IppValue {
    IppValue::UriScheme(ipp::value::IppString::new_truncated(s))
}

pub fn charset(s: &str) -> IppValue {
    IppValue::Charset(ipp::value::IppCharset::new_truncated(s))
}

pub fn language(s: &str) -> IppValue {
    IppValue::NaturalLanguage(ipp::value::IppLanguage::new_truncated(s))
}

pub fn mime(s: &str) -> IppValue {
    IppValue::MimeMediaType(ipp::value::IppMimeMediaType::new_truncated(s))
}

pub fn mimes(list: &[&str]) -> IppValue {
    one_or_set(list.iter().map(|s| mime(s)).collect())
}

/// One value as itself, several as a 1setOf.
pub fn one_or_set(mut values: Vec<IppValue>) -> IppValue {
    if values.len() == 1 {
        values.remove(0)
    } else {
        IppValue::Array(values)
    }
}

/// The values of an attribute, whether one or a set.
pub fn values_of(value: &IppValue) -> Vec<&IppValue> {
    match value {
        IppValue::Array(list) => list.iter().collect(),
        one => vec![one],
    }
}

/// A string-like value's text (keyword, name, text, uri, ...).
pub fn string_of(value: &IppValue) -> Option<String> {
    Some(match value {
        IppValue::Keyword(s) => s.to_string(),
        IppValue::NameWithoutLanguage(s) => s.to_string(),
        IppValue::MimeMediaType(s) => s.to_string(),
        IppValue::Charset(s) => s.to_string(),
        IppValue::NaturalLanguage(s) => s.to_string(),
        IppValue::MemberAttrName(s) => s.to_string(),
        IppValue::Uri(s) => s.to_string(),
        IppValue::UriScheme(s) => s.to_string(),
        IppValue::TextWithoutLanguage(t) => t.to_string(),
        IppValue::NameWithLanguage { name, .. } => name.to_string(),
        IppValue::TextWithLanguage { text, .. } => text.to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request built by hand, byte by byte as RFC 8010 lays it out.
    fn message(version: [u8; 2], op: u16, id: i32, attrs: &[(u8, &str, &[u8])]) -> Vec<u8> {
        let mut m = version.to_vec();
        m.extend_from_slice(&op.to_be_bytes());
        m.extend_from_slice(&id.to_be_bytes());
        m.push(0x01);
        for (tag, name, value) in attrs {
            m.push(*tag);
            m.extend_from_slice(&(name.len() as u16).to_be_bytes());
            m.extend_from_slice(name.as_bytes());
            m.extend_from_slice(&(value.len() as u16).to_be_bytes());
            m.extend_from_slice(value);
        }
        m.push(0x03);
        m
    }

    const GOOD: &[(u8, &str, &[u8])] = &[
        (0x47, "attributes-charset", b"utf-8"),
        (0x48, "attributes-natural-language", b"en"),
        (0x45, "printer-uri", b"ipp://localhost/ipp/faxout/x"),
    ];

    #[test]
    fn requests_decode_or_get_the_status_that_refuses_them() {
        let good = message([2, 0], 0x000B, 7, GOOD);
        let mut with_document = good.clone();
        with_document.extend_from_slice(b"%PDF-1.4");
        let truncated = good[..good.len() - 10].to_vec();
        let mut long_length = message([1, 1], 0x000B, 7, &[]);
        // A value claiming 0xFFFF bytes with 3 behind it.
        long_length.truncate(long_length.len() - 1);
        long_length.extend_from_slice(&[0x44, 0, 1, b'a', 0xFF, 0xFF, 1, 2, 3]);
        let bad_tag = {
            let mut m = message([1, 1], 0x000B, 7, &[]);
            m.insert(m.len() - 1, 0x0F);
            m
        };
        // (what, bytes, the operation and request-id decoded or the status)
        type Case = (&'static str, Vec<u8>, Result<(u16, i32), StatusCode>);
        let cases: Vec<Case> = vec![
            (
                "a good Get-Printer-Attributes",
                good.clone(),
                Ok((0x000B, 7)),
            ),
            ("with a document", with_document.clone(), Ok((0x000B, 7))),
            ("IPP 1.0", message([1, 0], 0x0002, 1, GOOD), Ok((0x0002, 1))),
            ("empty body", vec![], Err(StatusCode::ClientErrorBadRequest)),
            (
                "eight bytes",
                good[..8].to_vec(),
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "version 0.0",
                message([0, 0], 0x000B, 7, GOOD),
                Err(StatusCode::ServerErrorVersionNotSupported),
            ),
            (
                "version 3.0",
                message([3, 0], 0x000B, 7, GOOD),
                Err(StatusCode::ServerErrorVersionNotSupported),
            ),
            (
                "request-id 0",
                message([2, 0], 0x000B, 0, GOOD),
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "negative request-id",
                message([2, 0], 0x000B, -5, GOOD),
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "truncated",
                truncated,
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "value longer than the message",
                long_length,
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "unknown delimiter tag",
                bad_tag,
                Err(StatusCode::ClientErrorBadRequest),
            ),
            (
                "no end-of-attributes",
                good[..good.len() - 1].to_vec(),
                Err(StatusCode::ClientErrorBadRequest),
            ),
        ];
        for (what, bytes, want) in cases {
            let got = decode(&bytes);
            match (&got, want) {
                (Ok(r), Ok((op, id))) => {
                    assert_eq!((r.operation, r.request_id), (op, id), "{what}");
                }
                (Err(e), Err(status)) => {
                    assert_eq!(e.status, status, "{what}: {}", e.message);
                    assert!(!e.message.is_empty(), "{what}");
                }
                _ => panic!("{what}: got {got:?}, wanted {want:?}"),
            }
        }
        let r = decode(&with_document).unwrap();
        assert_eq!(r.document, b"%PDF-1.4");
        assert_eq!(
            r.operation_attr("printer-uri")
                .and_then(string_of)
                .as_deref(),
            Some("ipp://localhost/ipp/faxout/x")
        );
    }

    /// A collection nested `levels` deep, as `nested-col`.
    fn deep_collection(levels: usize) -> Vec<u8> {
        let mut m = message([2, 0], 0x0002, 3, GOOD);
        m.pop();
        m.push(0x02);
        for i in 0..levels {
            let name: &[u8] = if i == 0 { b"nested-col" } else { b"" };
            if i > 0 {
                m.push(0x4A);
                m.extend_from_slice(&[0, 0, 0, 1]);
                m.push(b'm');
            }
            m.push(0x34);
            m.extend_from_slice(&(name.len() as u16).to_be_bytes());
            m.extend_from_slice(name);
            m.extend_from_slice(&[0, 0]);
        }
        for _ in 0..levels {
            m.push(0x37);
            m.extend_from_slice(&[0, 0, 0, 0]);
        }
        m.push(0x03);
        m
    }

    /// Issue 18: every parser is bounded. Collections a hundred thousand
    /// deep fit in the attribute limit and would be freed recursively.
    #[test]
    fn deep_collections_and_too_many_values_are_refused() {
        assert!(decode(&deep_collection(MAX_COLLECTION_DEPTH)).is_ok());
        for levels in [MAX_COLLECTION_DEPTH + 1, 100_000] {
            let refused = decode(&deep_collection(levels)).unwrap_err();
            assert_eq!(refused.status, StatusCode::ClientErrorRequestEntityTooLong);
            assert!(refused.message.contains("more than 16 deep"), "{refused:?}");
            assert_eq!(refused.request_id, 3);
        }
        let many: Vec<(u8, &str, &[u8])> = GOOD
            .iter()
            .copied()
            .chain(std::iter::repeat_n((0x44u8, "", &b"a"[..]), MAX_VALUES))
            .collect();
        let refused = decode(&message([2, 0], 0x000B, 9, &many)).unwrap_err();
        assert!(
            refused.message.contains("more than 10000 attribute values"),
            "{refused:?}"
        );
    }

    #[test]
    fn collections_of_destinations_decode() {
        // destination-uris = { destination-uri = tel:+15551234567 }, { ... tel:555 }
        let mut m = message([2, 0], 0x0002, 3, GOOD);
        m.pop();
        m.push(0x02);
        for (i, number) in ["tel:+15551234567", "tel:5550100"].iter().enumerate() {
            let name: &[u8] = if i == 0 { b"destination-uris" } else { b"" };
            m.push(0x34);
            m.extend_from_slice(&(name.len() as u16).to_be_bytes());
            m.extend_from_slice(name);
            m.extend_from_slice(&[0, 0]);
            m.push(0x4A);
            m.extend_from_slice(&[0, 0, 0, 15]);
            m.extend_from_slice(b"destination-uri");
            m.push(0x45);
            m.extend_from_slice(&[0, 0]);
            m.extend_from_slice(&(number.len() as u16).to_be_bytes());
            m.extend_from_slice(number.as_bytes());
            m.push(0x37);
            m.extend_from_slice(&[0, 0, 0, 0]);
        }
        m.push(0x03);
        let r = decode(&m).unwrap();
        let uris: Vec<String> = values_of(r.job_attr("destination-uris").unwrap())
            .into_iter()
            .map(|c| match c {
                IppValue::Collection(map) => {
                    string_of(map.get("destination-uri").unwrap()).unwrap()
                }
                other => panic!("not a collection: {other:?}"),
            })
            .collect();
        assert_eq!(uris, ["tel:+15551234567", "tel:5550100"]);
    }

    #[test]
    fn responses_encode_status_and_groups_that_decode_back() {
        let mut response =
            Response::new(0x0200, StatusCode::ClientErrorNotFound, 42).with_message("no such job");
        response.push_group(
            DelimiterTag::JobAttributes,
            vec![
                attr("job-id", IppValue::Integer(5)),
                attr("job-state-reasons", keywords(&["a", "b"])),
            ],
        );
        let bytes = response.encode();
        assert_eq!(&bytes[..8], &[2, 0, 0x04, 0x06, 0, 0, 0, 42]);
        // Our own decoder reads responses too (the status sits where a
        // request has its operation).
        let back = decode(&bytes).unwrap();
        assert_eq!(back.operation, 0x0406);
        assert_eq!(
            back.operation_attr("status-message")
                .and_then(string_of)
                .as_deref(),
            Some("no such job")
        );
        let job = back.group(DelimiterTag::JobAttributes).unwrap();
        assert_eq!(job.get("job-id").unwrap().value(), &IppValue::Integer(5));
        assert_eq!(
            values_of(job.get("job-state-reasons").unwrap().value()).len(),
            2
        );
    }
}
