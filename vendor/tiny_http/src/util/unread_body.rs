//! Faxbox patch: what a handler leaves unread of a request body is read and
//! thrown away when the body's reader is dropped, so that the connection
//! can carry the client's next request. Upstream did this for a body with a
//! Content-Length (allocating a buffer of the whole declared rest) and not
//! at all for a chunked body: the chunks left on the connection were then
//! read as the next request line, answered 400 and the connection closed.
//! ureq, for one, sends a PUT without a body as one empty chunk.

use std::io::{Error as IoError, Read, Result as IoResult};
use std::time::{Duration, Instant};

/// At most this much of an unread body is skipped, within this long; past
/// either the rest is left unread, and the connection's next request is
/// read from where this one stopped, which is no request line (answered
/// 400 and closed).
const MAX_SKIPPED: usize = 64 * 1024 * 1024;
const MAX_SKIP_TIME: Duration = Duration::from_secs(10);

/// Reads and drops the rest of a body, through a fixed buffer: `rest` bytes
/// when the length is known, else up to the end of the body.
pub fn skip_unread<R: Read>(reader: &mut R, rest: Option<usize>) -> IoResult<()> {
    if rest.is_some_and(|n| n > MAX_SKIPPED) {
        return Err(IoError::other("request body left unread"));
    }
    let mut left = rest.unwrap_or(MAX_SKIPPED + 1);
    let started = Instant::now();
    let mut buf = [0u8; 8 * 1024];
    while left > 0 {
        if started.elapsed() > MAX_SKIP_TIME {
            return Err(IoError::other("request body left unread"));
        }
        let want = left.min(buf.len());
        match reader.read(&mut buf[..want])? {
            0 => return Ok(()),
            n => left -= n,
        }
    }
    if rest.is_none() {
        return Err(IoError::other("request body left unread"));
    }
    Ok(())
}

/// A chunked body whose unread rest is skipped when it is dropped.
pub struct ChunkedBody<R: Read> {
    reader: R,
}

impl<R: Read> ChunkedBody<R> {
    pub fn new(reader: R) -> Self {
        ChunkedBody { reader }
    }
}

impl<R: Read> Read for ChunkedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.reader.read(buf)
    }
}

impl<R: Read> Drop for ChunkedBody<R> {
    fn drop(&mut self) {
        let _ = skip_unread(&mut self.reader, None);
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedBody;
    use chunked_transfer::Decoder;
    use std::io::{Cursor, Read};

    #[test]
    fn an_unread_chunked_body_is_skipped_up_to_the_next_request() {
        let mut stream = Cursor::new(b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n".to_vec());
        drop(ChunkedBody::new(Decoder::new(stream.by_ref())));
        let mut next = String::new();
        stream.read_to_string(&mut next).unwrap();
        assert_eq!(next, "GET / HTTP/1.1\r\n");
    }

    #[test]
    fn an_empty_chunked_body_is_skipped() {
        let mut stream = Cursor::new(b"0\r\n\r\nGET / HTTP/1.1\r\n".to_vec());
        drop(ChunkedBody::new(Decoder::new(stream.by_ref())));
        let mut next = String::new();
        stream.read_to_string(&mut next).unwrap();
        assert_eq!(next, "GET / HTTP/1.1\r\n");
    }
}
