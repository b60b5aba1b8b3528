//! The FreeSWITCH Event Socket wire format (ESL), as observed in
//! docs/freeswitch.md (section 10, transcripts): framing, URL-decoding, the message
//! kinds, and the events as plain header maps.
//!
//! A message is a block of `Name: value` lines ended by an empty line,
//! optionally followed by exactly `Content-Length` bytes of body. Events
//! (`text/event-plain`) carry a second header block in that body, with
//! URL-encoded values and possibly a body of their own (a BACKGROUND_JOB's
//! result); `text/event-json` carries one JSON object instead.
//!
//! Everything here is pure parsing: no sockets, no calls. Anything that does
//! not fit the format is an [`EslError`] naming what was wrong; the
//! connection that read it is then closed and opened again.

use std::io::Read;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Bounds on what one message may take, so a broken peer cannot make the
/// reader hold unbounded memory. Real events are a few kilobytes.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;

/// What went wrong on the event socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EslError {
    #[error("FreeSWITCH closed the event socket connection")]
    Closed,
    #[error(
        "the event socket connection closed in the middle of a message from FreeSWITCH ({got} of {wanted} bytes arrived)"
    )]
    Truncated { got: usize, wanted: usize },
    #[error("FreeSWITCH sent a header line that is not `Name: value`: {0:?}")]
    BadHeader(String),
    #[error("FreeSWITCH sent a Content-Length that is not a size: {0:?}")]
    BadLength(String),
    #[error("FreeSWITCH sent a message of {0} bytes, more than an event socket message can be")]
    TooLarge(usize),
    #[error("FreeSWITCH sent an event that cannot be read: {0}")]
    BadEvent(String),
    #[error("FreeSWITCH sent a message of unknown type {0:?}")]
    UnknownType(String),
    #[error("FreeSWITCH refused the event socket password ({0})")]
    AuthRefused(String),
    #[error("FreeSWITCH refused the connection: {0}")]
    Rejected(String),
    #[error("FreeSWITCH answered {command:?} with {reply:?}")]
    CommandFailed { command: String, reply: String },
    #[error("event socket: {0}")]
    Io(String),
}

/// Header lines in wire order; a name may repeat (CHANNEL_HANGUP_COMPLETE
/// carries `Hangup-Cause` twice), and lookups take the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses `Name: value` lines, decoding values when `url_encoded`.
    fn parse(block: &str, url_encoded: bool) -> Result<Headers, EslError> {
        let mut headers = Vec::new();
        for line in block.split('\n').filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|n| (n, "")))
                .ok_or_else(|| BadHeaderLine(line).into_error())?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(BadHeaderLine(line).into_error());
            }
            let value = if url_encoded {
                url_decode(value)
            } else {
                value.to_owned()
            };
            headers.push((name.to_owned(), value));
        }
        Ok(Headers(headers))
    }
}

/// A line that is not a header, shortened for the error message.
struct BadHeaderLine<'a>(&'a str);

impl BadHeaderLine<'_> {
    fn into_error(self) -> EslError {
        EslError::BadHeader(self.0.chars().take(80).collect())
    }
}

/// One message as framed on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub headers: Headers,
    pub body: Option<String>,
}

/// What a message means.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The first thing FreeSWITCH says on an inbound connection.
    AuthRequest,
    /// The answer to a command (`auth`, `event`, `bgapi`, `sendmsg`, ...).
    /// For `connect` on an outbound socket it also carries the channel data,
    /// URL-decoded.
    CommandReply(Headers),
    /// The answer to `api`.
    ApiResponse(String),
    Event(Event),
    /// FreeSWITCH is closing the connection.
    Disconnect(String),
}

impl Message {
    /// The `Reply-Text` of a command reply.
    pub fn reply_text(&self) -> Option<&str> {
        match self {
            Message::CommandReply(h) => h.get("Reply-Text"),
            _ => None,
        }
    }
}

/// One event: its headers (URL-decoded) and body, if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub headers: Headers,
    pub body: Option<String>,
}

impl Event {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// `Event-Name`, e.g. `CHANNEL_HANGUP_COMPLETE` or `CUSTOM`.
    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or_default()
    }

    /// `Event-Subclass` of CUSTOM events, e.g. `spandsp::txfaxresult`.
    pub fn subclass(&self) -> Option<&str> {
        self.get("Event-Subclass")
    }

    /// The channel the event is about.
    pub fn unique_id(&self) -> Option<&str> {
        self.get("Unique-ID")
    }

    fn from_plain(text: &str) -> Result<Event, EslError> {
        let (block, rest) = match text.find("\n\n") {
            Some(i) => (&text[..i], Some(&text[i + 2..])),
            None => (text, None),
        };
        let headers = Headers::parse(block, true)?;
        let body = match headers.get("Content-Length") {
            None => None,
            Some(n) => {
                let n: usize = n.trim().parse().map_err(|_| {
                    EslError::BadEvent(format!("its body length {n:?} is not a number"))
                })?;
                let rest = rest.unwrap_or_default();
                if rest.len() < n {
                    return Err(EslError::BadEvent(format!(
                        "its body is {} bytes, not the {n} it announces",
                        rest.len()
                    )));
                }
                Some(rest.get(..n).map(str::to_owned).ok_or_else(|| {
                    EslError::BadEvent("its body length splits a character".into())
                })?)
            }
        };
        Event::checked(Event { headers, body })
    }

    fn from_json(text: &str) -> Result<Event, EslError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EslError::BadEvent(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| EslError::BadEvent("a JSON event must be an object".into()))?;
        let mut headers = Vec::new();
        let mut body = None;
        for (name, value) in object {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if name == "_body" {
                body = Some(text);
            } else {
                headers.push((name.clone(), text));
            }
        }
        Event::checked(Event {
            headers: Headers(headers),
            body,
        })
    }

    fn checked(event: Event) -> Result<Event, EslError> {
        if event.get("Event-Name").is_none_or(str::is_empty) {
            return Err(EslError::BadEvent("it has no Event-Name".into()));
        }
        Ok(event)
    }
}

/// Reads messages from a byte stream, keeping what it read past one.
pub struct FrameReader<R> {
    source: R,
    buffer: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    pub fn new(source: R) -> FrameReader<R> {
        FrameReader {
            source,
            buffer: Vec::new(),
        }
    }

    /// More bytes from the source; false at its end.
    fn fill(&mut self) -> Result<bool, EslError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.source.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(EslError::Io(e.to_string())),
            }
        }
    }

    /// The next message as framed.
    pub fn read_frame(&mut self) -> Result<Frame, EslError> {
        // Blank lines between messages carry nothing (a JSON event has no
        // trailing LF, a plain one may have extra).
        let header_end = loop {
            let skip = self.buffer.iter().take_while(|b| **b == b'\n').count();
            self.buffer.drain(..skip);
            if let Some(i) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                break i;
            }
            if self.buffer.len() > MAX_HEADER_BLOCK {
                return Err(EslError::TooLarge(self.buffer.len()));
            }
            if !self.fill()? {
                return Err(if self.buffer.is_empty() {
                    EslError::Closed
                } else {
                    EslError::Truncated {
                        got: self.buffer.len(),
                        wanted: self.buffer.len() + 2,
                    }
                });
            }
        };
        let block: Vec<u8> = self.buffer.drain(..header_end + 2).collect();
        let block =
            String::from_utf8(block).map_err(|_| EslError::BadHeader("(not UTF-8 text)".into()))?;
        let headers = Headers::parse(block.trim_end_matches('\n'), false)?;
        let body = match headers.get("Content-Length") {
            None => None,
            Some(text) => {
                let length: usize = text
                    .trim()
                    .parse()
                    .map_err(|_| EslError::BadLength(text.to_owned()))?;
                if length > MAX_BODY {
                    return Err(EslError::TooLarge(length));
                }
                while self.buffer.len() < length {
                    if !self.fill()? {
                        return Err(EslError::Truncated {
                            got: self.buffer.len(),
                            wanted: length,
                        });
                    }
                }
                let bytes: Vec<u8> = self.buffer.drain(..length).collect();
                Some(String::from_utf8(bytes).map_err(|_| {
                    EslError::BadEvent("its body is not UTF-8 text (wrong Content-Length?)".into())
                })?)
            }
        };
        Ok(Frame { headers, body })
    }

    /// The next message, interpreted.
    pub fn read_message(&mut self) -> Result<Message, EslError> {
        let frame = self.read_frame()?;
        message_of(frame)
    }
}

/// Interprets a frame by its `Content-Type`.
pub fn message_of(frame: Frame) -> Result<Message, EslError> {
    let body = frame.body.unwrap_or_default();
    match frame.headers.get("Content-Type") {
        Some("auth/request") => Ok(Message::AuthRequest),
        Some("command/reply") => {
            // The reply to `connect` on an outbound socket is channel data,
            // URL-encoded like an event (`Reply-Text: %2BOK%0A`).
            let decoded = frame
                .headers
                .get("Reply-Text")
                .is_some_and(|t| t.starts_with('%'));
            if decoded {
                let headers = frame
                    .headers
                    .0
                    .into_iter()
                    .map(|(n, v)| (n, url_decode(&v).trim_end_matches('\n').to_owned()))
                    .collect();
                Ok(Message::CommandReply(Headers(headers)))
            } else {
                Ok(Message::CommandReply(frame.headers))
            }
        }
        Some("api/response") => Ok(Message::ApiResponse(body)),
        Some("text/event-plain") => Event::from_plain(&body).map(Message::Event),
        Some("text/event-json") => Event::from_json(&body).map(Message::Event),
        Some("text/disconnect-notice") => Ok(Message::Disconnect(body)),
        // mod_event_socket's answer to a client its ACL refuses.
        Some("text/rude-rejection") => Err(EslError::Rejected(body.trim().to_owned())),
        Some(other) => Err(EslError::UnknownType(other.to_owned())),
        None => Err(EslError::UnknownType("(no Content-Type)".into())),
    }
}

/// What FreeSWITCH's `switch_url_encode` escapes: controls, bytes above
/// `~` and `SWITCH_URL_UNSAFE` (`\r\n #%&+:;<=>?@[\]^`{|}"`).
const FREESWITCH_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'"');

pub fn url_decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Encodes a header value as FreeSWITCH does in plain events.
pub fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, FREESWITCH_UNSAFE).to_string()
}

/// The channel UUID (`origination_uuid`) of the call with this call id:
/// derived, not random, so that the attempt row that named the call (fax
/// id and attempt number) is all Faxbox needs to ask FreeSWITCH about it
/// after a restart (issue 25 item 2). Shaped as a version 8 (name-based,
/// RFC 9562) UUID from SHA-256.
pub fn call_uuid(call_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("faxbox call {call_id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

/// A random (version 4) UUID in FreeSWITCH's text form.
pub fn new_uuid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Vec<Result<Message, EslError>> {
        let mut reader = FrameReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match reader.read_message() {
                Err(EslError::Closed) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
                Ok(m) => out.push(Ok(m)),
            }
        }
    }

    #[test]
    fn url_encoding_matches_freeswitch() {
        assert_eq!(
            url_encode("{fax_ident=TX-BUSY}loopback/busy/default &txfax(/srv/fs/test.tif)"),
            "%7Bfax_ident%3DTX-BUSY%7Dloopback/busy/default%20%26txfax(/srv/fs/test.tif)"
        );
        assert_eq!(url_encode("+OK\n"), "%2BOK%0A");
        assert_eq!(url_decode("fd00%3A%3A2"), "fd00::2");
        assert_eq!(
            url_decode(&url_encode("Acme Fax, 5% off")),
            "Acme Fax, 5% off"
        );
    }

    #[test]
    fn uuids_look_like_freeswitch_ones() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_ne!(u, new_uuid());
        let c = call_uuid("f00d-2");
        assert_eq!(c, call_uuid("f00d-2"));
        assert_ne!(c, call_uuid("f00d-3"));
        assert_eq!((c.len(), &c[14..15]), (36, "8"));
    }

    #[test]
    fn frames_with_and_without_bodies() {
        let wire = b"Content-Type: auth/request\n\n\
            Content-Type: command/reply\nReply-Text: +OK accepted\n\n\
            Content-Type: api/response\nContent-Length: 6\n\n-ERR x\
            Content-Length: 75\nContent-Type: text/event-plain\n\n\
            Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 15\n\n-ERR USER_BUSY\n";
        let got = read_all(wire);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Ok(Message::AuthRequest));
        assert_eq!(got[1].as_ref().unwrap().reply_text(), Some("+OK accepted"));
        assert_eq!(got[2], Ok(Message::ApiResponse("-ERR x".into())));
        let Ok(Message::Event(e)) = &got[3] else {
            panic!("{:?}", got[3]);
        };
        assert_eq!(e.name(), "BACKGROUND_JOB");
        assert_eq!(e.get("Job-UUID"), Some("j1"));
        assert_eq!(e.body.as_deref(), Some("-ERR USER_BUSY\n"));
    }

    /// Broken input is an error naming the problem, never a panic.
    #[test]
    fn bad_wire_input_is_a_clear_error() {
        let cases: &[(&[u8], &str)] = &[
            (b"Content-Type: api/response\nContent-Length: 50\n\nshort", "closed in the middle"),
            (b"Content-Type: command/reply\nReply-Te", "closed in the middle"),
            (b"Content-Type: api/response\nContent-Length: ten\n\n", "not a size"),
            (b"Content-Type: api/response\nContent-Length: -1\n\n", "not a size"),
            (b"garbage without colon\n\n", "not `Name: value`"),
            (b"Content-Type: text/event-plain\nContent-Length: 11\n\nNoName: x\n\n", "no Event-Name"),
            (b"Content-Type: text/event-json\nContent-Length: 5\n\n[1,2]", "must be an object"),
            (b"Content-Type: text/event-json\nContent-Length: 4\n\n{\"a\"", "not JSON"),
            (b"Content-Type: text/event-plain\nContent-Length: 39\n\nEvent-Name: X\nContent-Length: 99\n\nshort", "not the 99"),
            (b"Content-Type: text/shiny\n\n", "unknown type"),
            (b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n", "refused the connection"),
            (b"Content-Type: api/response\nContent-Length: 99999999999\n\n", "more than"),
        ];
        for (wire, needle) in cases {
            let got = read_all(wire);
            let err = got
                .iter()
                .find_map(|m| m.as_ref().err())
                .unwrap_or_else(|| {
                    panic!("{:?} gave no error: {got:?}", String::from_utf8_lossy(wire))
                });
            assert!(
                err.to_string().contains(needle),
                "{:?}: {err} lacks {needle:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    /// A Content-Length too long swallows the next message and the reader
    /// then finds garbage or the end: an error, not a silent mix-up.
    #[test]
    fn wrong_content_length_is_detected() {
        let wire = b"Content-Length: 45\nContent-Type: text/event-plain\n\n\
            Event-Name: CHANNEL_ANSWER\nUnique-ID: a\n\n\
            Content-Type: command/reply\nReply-Text: +OK\n\n";
        let got = read_all(wire);
        assert!(got.iter().any(|m| m.is_err()), "{got:?}");
        // Too short: the rest of the event is read as a header block.
        let wire = b"Content-Length: 20\nContent-Type: text/event-plain\n\n\
            Event-Name: CHANNEL_ANSWER\nUnique-ID: a\n\n";
        let got = read_all(wire);
        assert!(got.iter().any(|m| m.is_err()), "{got:?}");
    }
}
