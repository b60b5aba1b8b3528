//! Reads the ESL transcripts of docs/freeswitch.md (section 10, transcripts): each
//! chunk is a marker line `##<< S->C <t>s <n>B` or `##>> C->S <t>s <n>B`,
//! then exactly `n` wire bytes (` +LF` on the marker: one extra LF follows
//! that is not wire data). The oldest file has markers without a count; its
//! chunks run to the next marker.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// FreeSWITCH to the client.
    Server,
    Client,
}

#[derive(Debug, Clone)]
pub struct Chunk {
    pub side: Side,
    pub bytes: Vec<u8>,
}

/// The transcripts folder, when the shared reference is beside the checkout.
pub fn dir() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/freeswitch/transcripts");
    dir.is_dir().then_some(dir)
}

pub fn read(path: &Path) -> Vec<Chunk> {
    let raw = std::fs::read(path).unwrap();
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let line_end = raw[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |i| at + i);
        let marker = String::from_utf8_lossy(&raw[at..line_end]).into_owned();
        let side = if marker.starts_with("##<< S->C") {
            Side::Server
        } else if marker.starts_with("##>> C->S") {
            Side::Client
        } else {
            panic!("{}: no marker at byte {at}: {marker:?}", path.display());
        };
        let start = line_end + 1;
        let words: Vec<&str> = marker.split_whitespace().collect();
        let count = words
            .get(3)
            .and_then(|w| w.strip_suffix('B'))
            .and_then(|n| n.parse::<usize>().ok());
        let end = match count {
            Some(n) => start + n,
            None => {
                let mut i = start;
                loop {
                    if i >= raw.len() {
                        break raw.len();
                    }
                    if raw[i..].starts_with(b"##<< S->C") || raw[i..].starts_with(b"##>> C->S") {
                        break i;
                    }
                    i += raw[i..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(raw.len() - i, |p| p + 1);
                }
            }
        };
        assert!(end <= raw.len(), "{}: chunk past the end", path.display());
        chunks.push(Chunk {
            side,
            bytes: raw[start..end].to_vec(),
        });
        at = end + usize::from(marker.ends_with("+LF"));
    }
    chunks
}

/// Everything one side sent, in order.
pub fn stream(chunks: &[Chunk], side: Side) -> Vec<u8> {
    chunks
        .iter()
        .filter(|c| c.side == side)
        .flat_map(|c| c.bytes.iter().copied())
        .collect()
}
