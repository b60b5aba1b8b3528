//! CCITT bi-level decoding: Modified Huffman (TIFF compression 2), T.4 1-D and
//! 2-D (G3, compression 3) and T.6 (G4, compression 4), written here from the
//! recommendations rather than taken from libtiff, so that tests can hold
//! libtiff's reading of our files against ours. Only the code tables come from
//! the `fax` crate. Rows are exchanged as lists of changing elements
//! ("transitions"): positions where the colour flips, starting from white.
//!
//! Every loop either consumes input or errors, and reading past the end of the
//! data yields zero bits that no code accepts, so a hostile stream ends in an
//! error, never a hang or a panic.

use fax::BitReader;
use fax::maps::{Mode, black, mode, white};

/// Which CCITT scheme a strip uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// TIFF compression 2: 1-D rows, no EOLs, each row starts on a byte.
    ModifiedHuffman,
    /// TIFF compression 3 (T.4), 1-D only or with 2-D rows (T4Options bit 0).
    /// Rows are preceded by EOL codes, optionally byte-aligned with fill bits.
    Group3 { two_d: bool },
    /// TIFF compression 4 (T.6): every row 2-D against the previous one.
    Group4,
}

/// A bit cursor over a byte slice, most significant bit first. Bits beyond
/// the end read as zero; `overrun` tells how far a decoder strayed.
struct SliceBits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl SliceBits<'_> {
    fn exhausted(&self) -> bool {
        self.pos >= self.data.len() * 8
    }
    /// No valid code is longer than 13 bits, so straying more than 32 bits
    /// past the end means the decoder is reading padding as data.
    fn overrun(&self) -> bool {
        self.pos > self.data.len() * 8 + 32
    }
    fn align_to_byte(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }
}

impl BitReader for SliceBits<'_> {
    type Error = std::convert::Infallible;

    fn peek(&self, bits: u8) -> Option<u16> {
        if bits == 0 {
            return Some(0);
        }
        if bits > 16 {
            return None;
        }
        let byte = self.pos / 8;
        let mut word = 0u32;
        for i in 0..4 {
            word = (word << 8) | u32::from(*self.data.get(byte + i).unwrap_or(&0));
        }
        let shifted = word << (self.pos % 8);
        Some((shifted >> (32 - u32::from(bits))) as u16)
    }

    fn consume(&mut self, bits: u8) -> Result<(), Self::Error> {
        self.pos += usize::from(bits);
        Ok(())
    }

    fn bits_to_byte_boundary(&self) -> u8 {
        ((8 - self.pos % 8) % 8) as u8
    }
}

/// How a row ended.
#[derive(Debug, PartialEq, Eq)]
enum RowEnd {
    /// All `width` pixels were decoded.
    Complete,
    /// An EOL (G3) or EOFB (G4) code came first; the rest of the row is white.
    Marker,
}

const EOL: u16 = 0b0000_0000_0001;

/// Decodes one strip of `rows` rows, calling `emit(row_index, transitions)`
/// once per row in order. A strip that ends early (RTC/EOFB or truncated
/// data after at least one row) leaves the remaining rows white, as fax
/// receivers do; a code that no table accepts is an error.
pub(crate) fn decode_strip(
    data: &[u8],
    width: u32,
    rows: u32,
    coding: Coding,
    mut emit: impl FnMut(u32, &[u32]),
) -> Result<(), String> {
    let mut r = SliceBits { data, pos: 0 };
    let mut reference: Vec<u32> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    for y in 0..rows {
        let end = match coding {
            Coding::ModifiedHuffman => {
                if r.exhausted() {
                    break;
                }
                decode_1d_row(&mut r, &mut current, width, false)?
            }
            Coding::Group3 { two_d } => {
                skip_eol(&mut r);
                if r.exhausted() {
                    break;
                }
                // T.4 4.2.1: after the EOL, 1 = next row one-dimensional.
                let one_d = if two_d {
                    let tag = r.peek(1).unwrap_or(1);
                    r.pos += 1;
                    tag == 1
                } else {
                    true
                };
                if one_d {
                    decode_1d_row(&mut r, &mut current, width, true)?
                } else {
                    decode_2d_row(&mut r, &reference, &mut current, width)?
                }
            }
            Coding::Group4 => decode_2d_row(&mut r, &reference, &mut current, width)?,
        };
        if end == RowEnd::Marker && coding == Coding::Group4 && current.is_empty() {
            // EOFB: the encoder left the trailing white rows out.
            break;
        }
        if r.overrun() {
            if y == 0 {
                return Err("the image data ends before the first row".into());
            }
            break;
        }
        emit(y, &current);
        if coding == Coding::ModifiedHuffman {
            r.align_to_byte();
        }
        std::mem::swap(&mut reference, &mut current);
    }
    Ok(())
}

/// Consumes an EOL code with any fill bits before it, if one is next.
fn skip_eol(r: &mut SliceBits) {
    let Some(next) = r.peek(12) else { return };
    if next == EOL {
        r.pos += 12;
    } else if next == 0 {
        // Twelve or more zeros: fill bits then an EOL (T.4 4.1.2), or the
        // zero padding after the data.
        while !r.exhausted() && r.peek(1) == Some(0) {
            r.pos += 1;
        }
        if !r.exhausted() {
            r.pos += 1;
        }
    }
}

/// Reads one run length of `black`/white: make-up codes then a terminating
/// code below 64 (T.4 4.1.1).
fn read_run(r: &mut SliceBits, black_run: bool) -> Result<u32, String> {
    let mut total = 0u32;
    loop {
        let code = if black_run {
            black::decode(r)
        } else {
            white::decode(r)
        };
        let n = code.ok_or_else(|| {
            format!(
                "invalid {} run code at bit {}",
                if black_run { "black" } else { "white" },
                r.pos
            )
        })?;
        total = total
            .checked_add(u32::from(n))
            .ok_or("run length overflow")?;
        if n < 64 {
            return Ok(total);
        }
        if r.overrun() {
            return Err("the image data ends inside a run".into());
        }
    }
}

fn decode_1d_row(
    r: &mut SliceBits,
    current: &mut Vec<u32>,
    width: u32,
    eols: bool,
) -> Result<RowEnd, String> {
    current.clear();
    let mut a0 = 0u32;
    let mut black_run = false;
    while a0 < width {
        if eols && r.peek(12).is_some_and(|b| b == EOL || b == 0) {
            return Ok(RowEnd::Marker);
        }
        let run = read_run(r, black_run)?;
        // Over-long rows are clipped, as libtiff does, rather than refused.
        a0 = a0.saturating_add(run).min(width);
        if a0 < width {
            current.push(a0);
        }
        black_run = !black_run;
        if r.overrun() {
            return Err("the image data ends inside a row".into());
        }
    }
    Ok(RowEnd::Complete)
}

/// b1 and b2 of T.4 4.2.1.3.1, which the coder and the decoder both find
/// before each mode: the first changing element on the reference row right
/// of `a0` whose colour is opposite to a0's (`white_now` is a0's colour;
/// even indices are changes to black), and the one after it, `width` where
/// the row has none. `i` keeps where the last search ended, so that one
/// row costs one pass over its reference.
fn b1_b2(reference: &[u32], i: &mut usize, a0: i64, white_now: bool, width: i64) -> (i64, i64) {
    while *i > 0 && i64::from(reference[*i - 1]) > a0 {
        *i -= 1;
    }
    while *i < reference.len() && i64::from(reference[*i]) <= a0 {
        *i += 1;
    }
    if *i < reference.len() && i.is_multiple_of(2) != white_now {
        *i += 1;
    }
    let at = |k: usize| reference.get(k).map_or(width, |&b| i64::from(b));
    (at(*i), at(*i + 1))
}

/// One row coded against `reference` (T.4 4.2 / T.6 2.2). `a0` starts on the
/// imaginary white pixel before the row, written here as -1.
fn decode_2d_row(
    r: &mut SliceBits,
    reference: &[u32],
    current: &mut Vec<u32>,
    width: u32,
) -> Result<RowEnd, String> {
    current.clear();
    let w = i64::from(width);
    let mut a0: i64 = -1;
    let mut white_now = true;
    let mut i = 0usize;
    let push = |current: &mut Vec<u32>, p: i64| {
        if p < w {
            current.push(p as u32);
        }
    };
    while a0 < w {
        let (b1, b2) = b1_b2(reference, &mut i, a0, white_now, w);
        let m = mode::decode(r).ok_or_else(|| format!("invalid 2-D mode code at bit {}", r.pos))?;
        match m {
            Mode::Pass => a0 = b2,
            Mode::Horizontal => {
                let start = a0.max(0);
                let a1 = start + i64::from(read_run(r, !white_now)?);
                let a2 = a1 + i64::from(read_run(r, white_now)?);
                push(current, a1.min(w));
                push(current, a2.min(w));
                a0 = a2;
            }
            Mode::Vertical(d) => {
                let a1 = b1 + i64::from(d);
                if a1 < a0.max(0) || a1 > w {
                    return Err(format!(
                        "vertical code points outside the row at bit {}",
                        r.pos
                    ));
                }
                push(current, a1);
                a0 = a1;
                white_now = !white_now;
            }
            Mode::Extension => {
                return Err("uncompressed-mode extension codes are not supported".into());
            }
            Mode::EOF => return Ok(RowEnd::Marker),
        }
        if r.overrun() {
            return Err("the image data ends inside a row".into());
        }
    }
    Ok(RowEnd::Complete)
}

/// Sets the black spans of a packed row (MSB first, 1 = black) from a
/// transition list; the row must be zeroed beforehand.
pub(crate) fn fill_row(row: &mut [u8], transitions: &[u32], width: u32) {
    for span in transitions.chunks(2) {
        let start = span[0].min(width) as usize;
        let end = span.get(1).copied().unwrap_or(width).min(width) as usize;
        set_span(row, start, end);
    }
}

/// Sets bits `start..end` to 1.
pub(crate) fn set_span(row: &mut [u8], start: usize, end: usize) {
    if start >= end {
        return;
    }
    let (first, last) = (start / 8, (end - 1) / 8);
    let head = 0xFFu8 >> (start % 8);
    let tail = 0xFFu8 << (7 - (end - 1) % 8);
    if first == last {
        row[first] |= head & tail;
    } else {
        row[first] |= head;
        row[first + 1..last].fill(0xFF);
        row[last] |= tail;
    }
}

/// The changing elements of a packed row: positions where the colour
/// differs from the pixel before it (the first compared with white).
/// Works a 64-pixel word at a time: `word ^ (word >> 1)` marks every pixel
/// that differs from its left neighbour, so a page's long white runs cost
/// one comparison per word.
pub(crate) fn row_transitions(row: &[u8], width: u32, out: &mut Vec<u32>) {
    out.clear();
    let mut carry = 0u64; // the last pixel of the previous word, in bit 63
    for (i, chunk) in row.chunks(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let word = u64::from_be_bytes(bytes);
        let mut changes = word ^ ((word >> 1) | carry);
        carry = (word & 1) << 63;
        let base = i as u32 * 64;
        while changes != 0 {
            let k = changes.leading_zeros();
            let x = base + k;
            if x >= width {
                // Padding past the width (zeros) is not part of the row.
                break;
            }
            out.push(x);
            changes &= !(1u64 << (63 - k));
        }
    }
}

/// Bits accumulated most significant first.
struct BitSink {
    out: Vec<u8>,
    acc: u64,
    used: u32,
}

impl BitSink {
    fn put(&mut self, code: fax::Bits) {
        self.acc = (self.acc << code.len) | u64::from(code.data);
        self.used += u32::from(code.len);
        while self.used >= 8 {
            self.used -= 8;
            self.out.push((self.acc >> self.used) as u8);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push((self.acc << (8 - self.used)) as u8);
        }
        self.out
    }
}

/// Writes one run length: make-up codes (2560 repeated, then a multiple of
/// 64) and a terminating code (T.4 4.1.1, Tables 2 and 3).
fn put_run(sink: &mut BitSink, black_run: bool, mut n: u32) {
    let table = if black_run {
        &black::ENTRIES
    } else {
        &white::ENTRIES
    };
    let code = |n: u32| table[if n >= 64 { 63 + n / 64 } else { n } as usize].1;
    while n >= 2560 {
        sink.put(code(2560));
        n -= 2560;
    }
    if n >= 64 {
        sink.put(code(n & !63));
        n &= 63;
    }
    sink.put(code(n));
}

fn put_mode(sink: &mut BitSink, m: Mode) {
    if let Some(bits) = mode::encode(m) {
        sink.put(bits);
    }
}

/// Codes one row against `reference` (T.6 2.2, the same two-dimensional
/// scheme the decoder above reads). Works on changing elements only, so an
/// empty row costs one code.
fn encode_2d_row(sink: &mut BitSink, reference: &[u32], current: &[u32], width: u32) {
    let w = i64::from(width);
    let at = |list: &[u32], i: usize| list.get(i).map_or(w, |&v| i64::from(v));
    let mut a0: i64 = -1;
    let mut white_now = true;
    let mut j = 0usize; // index of a1 in `current`
    let mut i = 0usize;
    while a0 < w {
        while j < current.len() && i64::from(current[j]) <= a0 {
            j += 1;
        }
        let a1 = at(current, j);
        let (b1, b2) = b1_b2(reference, &mut i, a0, white_now, w);
        if b2 < a1 {
            put_mode(sink, Mode::Pass);
            a0 = b2;
        } else if (a1 - b1).abs() <= 3 {
            put_mode(sink, Mode::Vertical((a1 - b1) as i8));
            a0 = a1;
            white_now = !white_now;
        } else {
            let a2 = at(current, j + 1);
            put_mode(sink, Mode::Horizontal);
            put_run(sink, !white_now, (a1 - a0.max(0)) as u32);
            put_run(sink, white_now, (a2 - a1) as u32);
            a0 = a2;
        }
    }
}

/// Encodes rows as T.6 (G4), ending with EOFB (T.6 2.4).
pub(crate) fn encode_g4(rows: &[u8], width: u32, height: u32) -> Vec<u8> {
    let stride = width.div_ceil(8) as usize;
    let mut sink = BitSink {
        out: Vec::with_capacity(rows.len() / 16 + 64),
        acc: 0,
        used: 0,
    };
    let mut reference: Vec<u32> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    for y in 0..height as usize {
        row_transitions(&rows[y * stride..(y + 1) * stride], width, &mut current);
        encode_2d_row(&mut sink, &reference, &current, width);
        std::mem::swap(&mut reference, &mut current);
    }
    sink.put(fax::Bits { data: EOL, len: 12 });
    sink.put(fax::Bits { data: EOL, len: 12 });
    sink.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_span_covers_byte_edges() {
        let mut row = [0u8; 3];
        set_span(&mut row, 3, 18);
        assert_eq!(row, [0b0001_1111, 0xFF, 0b1100_0000]);
        let mut row = [0u8; 1];
        set_span(&mut row, 2, 5);
        assert_eq!(row, [0b0011_1000]);
    }

    #[test]
    fn transitions_round_trip_through_fill() {
        let row = [0b0011_1000u8, 0xFF, 0x01, 0x80];
        let mut t = Vec::new();
        row_transitions(&row, 30, &mut t);
        assert_eq!(t, vec![2, 5, 8, 16, 23, 25]);
        let mut back = [0u8; 4];
        fill_row(&mut back, &t, 30);
        assert_eq!(back, row);
    }

    /// Our G4 coder read by the `fax` crate's decoder (a third party).
    #[test]
    fn fax_crate_decodes_our_g4() {
        let (w, h) = (301u32, 40u32);
        let stride = w.div_ceil(8) as usize;
        let mut rows = vec![0u8; stride * h as usize];
        let mut seed = 7u32;
        for y in 0..h as usize {
            for x in 0..w as usize {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let black = match y % 4 {
                    0 => false,
                    1 => true,
                    2 => (seed >> 16).is_multiple_of(2),
                    _ => (x / (1 + y % 17)) % 2 == 0,
                };
                if black {
                    rows[y * stride + x / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        let coded = encode_g4(&rows, w, h);
        let mut back = vec![0u8; rows.len()];
        let mut y = 0usize;
        fax::decoder::decode_g4(coded.into_iter(), w, Some(h), |t| {
            fill_row(&mut back[y * stride..(y + 1) * stride], t, w);
            y += 1;
        })
        .expect("fax crate decodes");
        assert_eq!(y, h as usize);
        assert_eq!(back, rows);
    }

    #[test]
    fn garbage_never_panics_or_hangs() {
        let mut seed = 0x1234_5678u32;
        for len in [0usize, 1, 3, 17, 200] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            for coding in [
                Coding::ModifiedHuffman,
                Coding::Group3 { two_d: false },
                Coding::Group3 { two_d: true },
                Coding::Group4,
            ] {
                let mut n = 0;
                let _ = decode_strip(&data, 1728, 50, coding, |_, _| n += 1);
                assert!(n <= 50);
            }
        }
    }
}
