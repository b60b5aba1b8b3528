//! From an email to the documents to fax (docs/kazoo.md 6.7, with Kazoo's
//! quirks fixed): every accepted attachment in the order it appears, not
//! only the last; a single-part PDF email works; images are accepted, but
//! those smaller than `image_min_size` are taken as signature logos and
//! skipped; `application/octet-stream` is typed by its file name, in any
//! case; any charset and transfer encoding (mail-parser decodes them).
//!
//! mail-parser's types stay here: the rest of Faxbox gets an `Email`.

use std::io::Cursor;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde_json::Value;

use crate::documents::Input;
use crate::model::AccountId;
use crate::store::{Store, StoreError};

/// What Faxbox takes from an email.
#[derive(Debug, Default)]
pub struct Email {
    pub subject: Option<String>,
    /// The first plain-text body (for `email_body_as_page`).
    pub body_text: Option<String>,
    /// The parts to fax, in order.
    pub attachments: Vec<Input>,
    /// Parts that were not faxed, and why, in a sender's words.
    pub skipped: Vec<String>,
    /// `X-Fax-Send-At`, as written (issue 22).
    pub send_at: Option<String>,
    /// `X-Fax-Priority` as written; else `high` or `low` from the
    /// importance a mail program marks a message with (`Importance`,
    /// `X-Priority`).
    pub priority: Option<String>,
}

/// The header that asks for a fax to be sent later.
pub const SEND_AT_HEADER: &str = "X-Fax-Send-At";
/// The header that gives a fax's priority.
pub const PRIORITY_HEADER: &str = "X-Fax-Priority";

/// The priority a message asks for: `X-Fax-Priority` as written, else
/// the importance flag mail programs set (Outlook's `Importance: High`,
/// `X-Priority: 1` or `2`; `Low`, `4` or `5`).
fn priority_of(message: &mail_parser::Message<'_>) -> Option<String> {
    let raw = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(p) = raw(PRIORITY_HEADER) {
        return Some(p);
    }
    let importance = raw("Importance").map(|v| v.to_ascii_lowercase());
    let x_priority = raw("X-Priority").and_then(|v| v.chars().next());
    match (importance.as_deref(), x_priority) {
        (Some("high"), _) | (_, Some('1' | '2')) => Some("high".into()),
        (Some("low"), _) | (_, Some('4' | '5')) => Some("low".into()),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MimeError {
    #[error("{0}")]
    Unreadable(String),
}

/// The attachment filters: Kazoo's `allowed_content_types` and
/// `denied_content_types` (longest match wins) and `image_min_size`.
#[derive(Debug, Clone)]
pub struct ContentRules {
    allowed: Vec<TypeRule>,
    denied: Vec<TypeRule>,
    /// Smallest image faxed, width x height in pixels.
    image_min: (u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TypeRule {
    Exact(String),
    Prefix(String),
}

impl TypeRule {
    /// How long a match this rule makes with `ct` (0: none).
    fn matches(&self, ct: &str) -> usize {
        match self {
            TypeRule::Exact(t) if t == ct => t.len(),
            TypeRule::Prefix(p) if ct.starts_with(p.as_str()) => p.len(),
            _ => 0,
        }
    }
}

fn rules_of(value: &Value) -> Vec<TypeRule> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| match e {
                    Value::String(s) => Some(TypeRule::Exact(s.to_ascii_lowercase())),
                    Value::Object(o) => o
                        .get("prefix")
                        .and_then(Value::as_str)
                        .map(|p| TypeRule::Prefix(p.to_ascii_lowercase()))
                        .or_else(|| {
                            o.get("type")
                                .and_then(Value::as_str)
                                .map(|t| TypeRule::Prefix(format!("{}/", t.to_ascii_lowercase())))
                        }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `700x10`, or one number for both sides; anything else is no minimum.
fn image_min_of(text: &str) -> (u32, u32) {
    let text = text.trim().to_ascii_lowercase();
    match text.split_once('x') {
        Some((w, h)) => (w.trim().parse().unwrap_or(0), h.trim().parse().unwrap_or(0)),
        None => {
            let n = text.parse().unwrap_or(0);
            (n, n)
        }
    }
}

impl ContentRules {
    pub fn from_settings(store: &Store, account: &AccountId) -> Result<ContentRules, StoreError> {
        Ok(ContentRules {
            allowed: rules_of(&store.setting(Some(account), "allowed_content_types")?.value),
            denied: rules_of(&store.setting(Some(account), "denied_content_types")?.value),
            image_min: image_min_of(&store.setting_text(Some(account), "image_min_size")?),
        })
    }

    /// Kazoo's built-in defaults with Faxbox's empty deny list.
    pub fn defaults() -> ContentRules {
        let setting = |key| {
            crate::store::find_setting(key)
                .map(|s| s.default_value())
                .unwrap_or(Value::Null)
        };
        ContentRules {
            allowed: rules_of(&setting("allowed_content_types")),
            denied: rules_of(&setting("denied_content_types")),
            image_min: image_min_of(setting("image_min_size").as_str().unwrap_or("")),
        }
    }

    /// Allowed iff the longest allowed match beats the longest denied one.
    fn allows(&self, ct: &str) -> bool {
        let best = |rules: &[TypeRule]| rules.iter().map(|r| r.matches(ct)).max().unwrap_or(0);
        best(&self.allowed) > best(&self.denied)
    }
}

/// The MIME type a file name says, for parts sent as
/// `application/octet-stream` (case-insensitive, help-43608).
fn type_of_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "tif" | "tiff" => "image/tiff",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "pwg" => "image/pwg-raster",
        "urf" => "image/urf",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "odp" => "application/vnd.oasis.opendocument.presentation",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// The usual extension of a MIME type, to name a part that has no name.
fn extension_of(ct: &str) -> &'static str {
    match ct {
        "application/pdf" => "pdf",
        "image/tiff" => "tiff",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "image/pwg-raster" => "pwg",
        "image/urf" => "urf",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        c if c.ends_with("wordprocessingml.document") => "docx",
        c if c.ends_with("spreadsheetml.sheet") => "xlsx",
        c if c.ends_with("presentationml.presentation") => "pptx",
        c if c.ends_with("opendocument.text") => "odt",
        c if c.ends_with("opendocument.spreadsheet") => "ods",
        c if c.ends_with("opendocument.presentation") => "odp",
        _ => "bin",
    }
}

/// Reads an email (the bytes between DATA and the final dot).
pub fn read_email(bytes: &[u8], rules: &ContentRules) -> Result<Email, MimeError> {
    let message = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| MimeError::Unreadable("the message has no headers and no body".into()))?;
    if message.headers().is_empty() {
        return Err(MimeError::Unreadable(
            "the message does not start with mail headers".into(),
        ));
    }
    let mut email = Email {
        subject: message.subject().map(str::to_owned),
        send_at: message
            .header_raw(SEND_AT_HEADER)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        priority: priority_of(&message),
        ..Email::default()
    };
    walk(&message, rules, &mut email)?;
    Ok(email)
}

/// The content type and name of the first part that looks like a file,
/// for the SMTP log.
pub fn first_attachment(bytes: &[u8]) -> Option<(String, String)> {
    let message = MessageParser::default().parse(bytes)?;
    message.parts.iter().find_map(|p| {
        let name = p.attachment_name()?;
        Some((declared_type(p), name.to_owned()))
    })
}

/// The content type a part declares, lower-cased (`image/tiff`); empty
/// when it declares none.
fn declared_type<'x>(part: &impl MimeHeaders<'x>) -> String {
    part.content_type()
        .map(|c| match c.subtype() {
            Some(s) => format!("{}/{s}", c.ctype()),
            None => c.ctype().to_owned(),
        })
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Nested messages deeper than this are not opened (a mail bomb guard).
const MAX_DEPTH: usize = 8;

/// Multiparts nested deeper than this refuse the email, as Postfix's
/// `mime_nesting_limit` does: real mail nests a few levels; ten thousand
/// levels took the box down (issue 18).
pub const MAX_NESTING: usize = 100;

/// Parts in one email, over all nested messages: a thousand attachments is
/// no fax.
pub const MAX_PARTS: usize = 1000;

/// Header fields of one part (a mail that passed through many relays has
/// a few dozen).
pub const MAX_HEADERS: usize = 1000;

/// Bytes of one part's header section, as Postfix's `header_size_limit`.
pub const MAX_HEADER_BYTES: usize = 102_400;

/// The email's parts, in document order, as a loop over an explicit list
/// rather than recursion, so that no nesting can exhaust the thread's
/// stack; every bound above is checked on the way.
fn walk(root: &Message<'_>, rules: &ContentRules, email: &mut Email) -> Result<(), MimeError> {
    let refuse = |what: String| {
        Err(MimeError::Unreadable(format!(
            "{what}; send the documents as plain attachments"
        )))
    };
    // (message, part id, multipart nesting, message nesting)
    let mut todo: Vec<(&Message<'_>, usize, usize, usize)> = vec![(root, 0, 0, 0)];
    let mut seen = 0;
    while let Some((message, id, nesting, depth)) = todo.pop() {
        let Some(part) = message.parts.get(id) else {
            continue;
        };
        seen += 1;
        if seen > MAX_PARTS {
            return refuse(format!("the email has more than {MAX_PARTS} MIME parts"));
        }
        if nesting > MAX_NESTING {
            return refuse(format!(
                "the email nests MIME parts more than {MAX_NESTING} levels deep"
            ));
        }
        if part.headers.len() > MAX_HEADERS {
            return refuse(format!(
                "a part of the email has more than {MAX_HEADERS} header lines"
            ));
        }
        if (part.offset_body as usize).saturating_sub(part.offset_header as usize)
            > MAX_HEADER_BYTES
        {
            return refuse(format!(
                "a part of the email has more than {MAX_HEADER_BYTES} bytes of headers"
            ));
        }
        let declared = declared_type(part);
        let name = part.attachment_name().map(str::to_owned);
        let is_attachment = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        match &part.body {
            PartType::Multipart(children) => {
                // Reversed: the list is taken from its end.
                for child in children.iter().rev() {
                    todo.push((message, *child as usize, nesting + 1, depth));
                }
            }
            PartType::Message(inner) => {
                if depth < MAX_DEPTH {
                    todo.push((inner, 0, nesting + 1, depth + 1));
                }
            }
            PartType::Text(text) if !is_attachment => {
                if (declared.is_empty() || declared == "text/plain") && email.body_text.is_none() {
                    email.body_text = Some(text.to_string());
                }
            }
            // HTML bodies are the same words as the text body, dressed up.
            PartType::Html(_) if !is_attachment => {}
            _ => consider(part.contents(), &declared, name, rules, email),
        }
    }
    Ok(())
}

/// Decides whether one leaf part is faxed.
fn consider(
    bytes: &[u8],
    declared: &str,
    name: Option<String>,
    rules: &ContentRules,
    email: &mut Email,
) {
    let generic = declared.is_empty()
        || declared == "application/octet-stream"
        || declared == "application/x-download"
        || declared == "binary/octet-stream";
    let ct = match (&name, generic) {
        (Some(n), true) => match type_of_name(n) {
            Some(t) => t.to_owned(),
            None => {
                email
                    .skipped
                    .push(format!("{n}: Faxbox cannot tell what kind of file this is"));
                return;
            }
        },
        _ => declared.to_owned(),
    };
    let label = name.clone().unwrap_or_else(|| format!("a {ct} part"));
    if bytes.is_empty() {
        email.skipped.push(format!("{label}: the part is empty"));
        return;
    }
    if !rules.allows(&ct) {
        email
            .skipped
            .push(format!("{label}: {ct} is not a type this fax box accepts"));
        return;
    }
    // Small images are e-mail signature logos (Kazoo's image_min_size);
    // TIFFs are fax images and printer rasters (PWG, URF) printed pages:
    // they always go.
    let pages = matches!(ct.as_str(), "image/tiff" | "image/pwg-raster" | "image/urf");
    if ct.starts_with("image/") && !pages {
        let (min_w, min_h) = rules.image_min;
        match image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok())
        {
            Some((w, h)) if w < min_w || h < min_h => {
                email.skipped.push(format!(
                    "{label}: {w}x{h} is smaller than {min_w}x{min_h}, taken for a signature logo"
                ));
                return;
            }
            Some(_) => {}
            None => {
                email
                    .skipped
                    .push(format!("{label}: the image cannot be read"));
                return;
            }
        }
    }
    let name = name.unwrap_or_else(|| {
        format!(
            "attachment-{}.{}",
            email.attachments.len() + 1,
            extension_of(&ct)
        )
    });
    email.attachments.push(Input {
        bytes: bytes.to_vec(),
        name,
        content_type: Some(ct),
        password: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_match_decides_between_allowed_and_denied() {
        let rules = |denied: Value| ContentRules {
            denied: rules_of(&denied),
            ..ContentRules::defaults()
        };
        let faxbox = ContentRules::defaults();
        for ct in [
            "application/pdf",
            "image/tiff",
            "image/jpeg",
            "image/png",
            "application/msword",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ] {
            assert!(faxbox.allows(ct), "{ct}");
        }
        for ct in ["text/html", "application/zip", "video/mp4"] {
            assert!(!faxbox.allows(ct), "{ct}");
        }
        // Kazoo's deny list: every image but TIFF is refused.
        let kazoo = rules(serde_json::json!([{"prefix": "image/"}]));
        assert!(!kazoo.allows("image/jpeg"));
        assert!(kazoo.allows("image/tiff"));
        assert!(kazoo.allows("application/pdf"));
        let no_pdf = rules(serde_json::json!(["application/pdf"]));
        assert!(!no_pdf.allows("application/pdf"));
    }

    /// MIME parts nested `levels` deep, each a multipart around the next.
    fn nested(levels: usize) -> Vec<u8> {
        let mut m = String::from(
            "From: a@b.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b0\r\n\r\n",
        );
        for i in 1..levels {
            m.push_str(&format!(
                "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
                i - 1
            ));
        }
        m.into_bytes()
    }

    /// Issue 18: ten thousand levels overflowed the SMTP session thread's
    /// stack and aborted the process. Read on a thread with the stack an
    /// SMTP session has (Rust's default, 2 MiB).
    #[test]
    fn a_mime_bomb_is_refused_without_exhausting_the_stack() {
        let bomb = nested(10_000);
        let got = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || read_email(&bomb, &ContentRules::defaults()).map(|_| ()))
            .unwrap()
            .join()
            .expect("the session thread survives");
        let MimeError::Unreadable(why) = got.unwrap_err();
        assert!(why.contains("more than 100 levels deep"), "{why}");
        // Real mail nests a few levels and is read.
        assert!(read_email(&nested(20), &ContentRules::defaults()).is_ok());
    }

    #[test]
    fn too_many_parts_or_headers_are_refused() {
        let mut many =
            String::from("From: a@b.test\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n");
        for _ in 0..=MAX_PARTS {
            many.push_str("--X\r\nContent-Type: text/plain\r\n\r\nhi\r\n");
        }
        many.push_str("--X--\r\n");
        let MimeError::Unreadable(why) =
            read_email(many.as_bytes(), &ContentRules::defaults()).unwrap_err();
        assert!(why.contains("more than 1000 MIME parts"), "{why}");
        let mut headers = String::from("From: a@b.test\r\n");
        for i in 0..=MAX_HEADERS {
            headers.push_str(&format!("X-Trace-{i}: relay\r\n"));
        }
        headers.push_str("\r\nbody\r\n");
        let MimeError::Unreadable(why) =
            read_email(headers.as_bytes(), &ContentRules::defaults()).unwrap_err();
        assert!(why.contains("header lines"), "{why}");
        let long = format!(
            "From: a@b.test\r\nX-Long: {}\r\n\r\nbody\r\n",
            "a".repeat(MAX_HEADER_BYTES)
        );
        let MimeError::Unreadable(why) =
            read_email(long.as_bytes(), &ContentRules::defaults()).unwrap_err();
        assert!(why.contains("bytes of headers"), "{why}");
    }

    #[test]
    fn names_type_generic_parts_in_any_case() {
        assert_eq!(type_of_name("SCAN.PDF"), Some("application/pdf"));
        assert_eq!(type_of_name("page.Tif"), Some("image/tiff"));
        assert_eq!(type_of_name("notes"), None);
        assert_eq!(type_of_name("archive.zip"), None);
        assert_eq!(type_of_name("Job.PWG"), Some("image/pwg-raster"));
        assert_eq!(type_of_name("job.urf"), Some("image/urf"));
        assert_eq!(image_min_of("700x10"), (700, 10));
        assert_eq!(image_min_of("300"), (300, 300));
    }

    /// A print file attached to an email is a document, not a logo to
    /// size up as a picture (issue 13).
    #[test]
    fn printer_rasters_are_faxed_not_taken_for_logos() {
        let email = b"From: a@b.test\r\nTo: 5551234@fax.test\r\nSubject: print\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n\
--XX\r\nContent-Type: image/pwg-raster\r\n\
Content-Disposition: attachment; filename=job\r\n\r\nRaS2PwgRaster\r\n\
--XX\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=page.urf\r\n\r\nUNIRAST\r\n--XX--\r\n";
        let got = read_email(email, &ContentRules::defaults()).unwrap();
        assert!(got.skipped.is_empty(), "{:?}", got.skipped);
        let types: Vec<_> = got
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.content_type.as_deref()))
            .collect();
        assert_eq!(
            types,
            [
                ("job", Some("image/pwg-raster")),
                ("page.urf", Some("image/urf"))
            ]
        );
    }
}
