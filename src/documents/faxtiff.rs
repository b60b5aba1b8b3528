//! The fax TIFF container (TIFF 6.0 Class F, RFC 2306): writing multi-page
//! 1-bit G4 TIFFs with the tags libtiff and SpanDSP expect, and reading fax
//! TIFFs back, G4, G3 1-D/2-D, Modified Huffman or uncompressed, in either
//! fill order. The reader is our own (see `ccitt`), independent of libtiff,
//! so tests can compare the two.
//!
//! Owns: `BitPage` (the 1-bit page every other part of `documents` and the
//! fax engine exchange) and the TIFF bytes. No I/O.

use super::DocumentError;
use super::ccitt::{self, Coding};

/// Fine resolution (T.30 "fine", 7.7 lines/mm), the default for sending.
pub const FINE_DPI: (f32, f32) = (204.0, 196.0);
/// Standard resolution (3.85 lines/mm).
pub const STANDARD_DPI: (f32, f32) = (204.0, 98.0);
/// The width of an A4/Letter fax row at 8 dots/mm (T.4 2.2).
pub const FAX_WIDTH: u32 = 1728;

/// Pages beyond this in one TIFF are refused when reading (a loop or a bomb).
const MAX_PAGES: usize = 10_000;
/// Largest width and height accepted when reading, about 80 inches at 204
/// dpi and 330 inches at 196 dpi: larger is not a fax.
const MAX_WIDTH: u32 = 16_384;
const MAX_HEIGHT: u32 = 65_536;
/// Most pixels decoded from one TIFF, all pages together (256 MB of bits):
/// 900 fine A4 pages; beyond that a file is a bomb, not a fax.
const MAX_TOTAL_PIXELS: u64 = 1 << 31;

/// One page of a fax: packed 1 bit per pixel, most significant bit first,
/// 1 = black, rows of `(width + 7) / 8` bytes, top row first. Bits past
/// `width` in the last byte of a row are 0 in every page this module
/// produces, so pages compare with `==`.
#[derive(Clone, PartialEq)]
pub struct BitPage {
    pub width: u32,
    pub height: u32,
    pub x_dpi: f32,
    pub y_dpi: f32,
    pub rows: Vec<u8>,
}

impl std::fmt::Debug for BitPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitPage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("x_dpi", &self.x_dpi)
            .field("y_dpi", &self.y_dpi)
            .field("black_pixels", &self.black_pixels())
            .finish()
    }
}

impl BitPage {
    /// An all-white page.
    pub fn new(width: u32, height: u32, x_dpi: f32, y_dpi: f32) -> Self {
        let stride = width.div_ceil(8) as usize;
        BitPage {
            width,
            height,
            x_dpi,
            y_dpi,
            rows: vec![0; stride * height as usize],
        }
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width.div_ceil(8) as usize
    }

    /// Row `y` as packed bytes.
    pub fn row(&self, y: u32) -> &[u8] {
        let s = self.stride();
        &self.rows[y as usize * s..(y as usize + 1) * s]
    }

    /// Row `y` as packed bytes, mutable.
    pub fn row_mut(&mut self, y: u32) -> &mut [u8] {
        let s = self.stride();
        &mut self.rows[y as usize * s..(y as usize + 1) * s]
    }

    /// Whether pixel (x, y) is black.
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.row(y)[(x / 8) as usize] & (0x80 >> (x % 8)) != 0
    }

    /// Paints pixel (x, y) black or white.
    pub fn set(&mut self, x: u32, y: u32, black: bool) {
        let mask = 0x80 >> (x % 8);
        let byte = &mut self.row_mut(y)[(x / 8) as usize];
        if black {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }

    /// Number of black pixels.
    pub fn black_pixels(&self) -> u64 {
        let mut n = 0u64;
        for y in 0..self.height {
            let row = self.row(y);
            n += row.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
            // Do not count stray bits past the width.
            let pad = (self.stride() * 8) as u32 - self.width;
            if pad > 0 {
                let last = row[row.len() - 1] & ((1u8 << pad) - 1);
                n -= u64::from(last.count_ones());
            }
        }
        n
    }

    /// Number of pixels that differ from `other` (same size required;
    /// `None` when the sizes differ).
    pub fn differing_pixels(&self, other: &BitPage) -> Option<u64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let mut diff = BitPage::new(self.width, self.height, self.x_dpi, self.y_dpi);
        for ((d, a), b) in diff.rows.iter_mut().zip(&self.rows).zip(&other.rows) {
            *d = a ^ b;
        }
        Some(diff.black_pixels())
    }

    /// Clears the bits past `width` in every row (the canonical form).
    pub fn clear_padding(&mut self) {
        let pad = (self.stride() * 8) as u32 - self.width;
        if pad == 0 {
            return;
        }
        let keep = !((1u8 << pad) - 1);
        for y in 0..self.height {
            let row = self.row_mut(y);
            let last = row.len() - 1;
            row[last] &= keep;
        }
    }

    fn check(&self, index: usize) -> Result<(), DocumentError> {
        let bad = |reason: String| DocumentError::InvalidPage {
            reason: format!("page {}: {reason}", index + 1),
        };
        if self.width == 0 || self.height == 0 {
            return Err(bad(format!(
                "size {}x{} has no pixels",
                self.width, self.height
            )));
        }
        if self.width > MAX_WIDTH || self.height > MAX_HEIGHT {
            return Err(bad(format!(
                "size {}x{} is larger than a fax page",
                self.width, self.height
            )));
        }
        let want = self.stride() * self.height as usize;
        if self.rows.len() != want {
            return Err(bad(format!(
                "{} bytes of rows, {want} expected",
                self.rows.len()
            )));
        }
        for dpi in [self.x_dpi, self.y_dpi] {
            if !(dpi.is_finite() && dpi > 0.0 && dpi < 100_000.0) {
                return Err(bad(format!("resolution {dpi} dpi")));
            }
        }
        Ok(())
    }
}

// TIFF tags written and read (TIFF 6.0 section 8 and Class F, RFC 2306).
const NEW_SUBFILE_TYPE: u16 = 254;
const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const FILL_ORDER: u16 = 266;
const STRIP_OFFSETS: u16 = 273;
const ORIENTATION: u16 = 274;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const X_RESOLUTION: u16 = 282;
const Y_RESOLUTION: u16 = 283;
const PLANAR_CONFIG: u16 = 284;
const T4_OPTIONS: u16 = 292;
const T6_OPTIONS: u16 = 293;
const RESOLUTION_UNIT: u16 = 296;
const PAGE_NUMBER: u16 = 297;
const SOFTWARE: u16 = 305;

const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const ASCII: u16 = 2;

const SOFTWARE_NAME: &[u8] = b"Faxbox\0";

/// Writes `pages` as one multi-page TIFF Class F: 1 bit, CCITT T.6 (G4),
/// one strip and one directory per page, min-is-white, fill order 1,
/// resolution in inches, page numbers `n of total`.
pub fn encode_fax_tiff(pages: &[BitPage]) -> Result<Vec<u8>, DocumentError> {
    if pages.is_empty() {
        return Err(DocumentError::InvalidPage {
            reason: "a fax needs at least one page".into(),
        });
    }
    for (i, p) in pages.iter().enumerate() {
        p.check(i)?;
    }
    let encoded: Vec<EncodedPage> = pages.iter().map(EncodedPage::encode).collect();
    write_tiff(&encoded)
}

/// A page already coded as one G4 strip, ready for the container (pages are
/// coded on the conversion workers, in parallel).
pub(crate) struct EncodedPage {
    pub width: u32,
    pub height: u32,
    pub x_dpi: f32,
    pub y_dpi: f32,
    pub g4: Vec<u8>,
}

impl EncodedPage {
    pub(crate) fn encode(page: &BitPage) -> Self {
        EncodedPage {
            width: page.width,
            height: page.height,
            x_dpi: page.x_dpi,
            y_dpi: page.y_dpi,
            g4: ccitt::encode_g4(&page.rows, page.width, page.height),
        }
    }
}

/// Assembles the container around already-encoded G4 strips.
pub(crate) fn write_tiff(pages: &[EncodedPage]) -> Result<Vec<u8>, DocumentError> {
    let total_strip: usize = pages.iter().map(|p| p.g4.len()).sum();
    let mut out = Vec::with_capacity(total_strip + pages.len() * 300 + 8);
    out.extend_from_slice(b"II\x2a\x00");
    out.extend_from_slice(&[0; 4]); // first IFD offset, patched below
    let mut link_at = 4usize; // where the pointer to the next IFD goes
    let total = u16::try_from(pages.len()).unwrap_or(u16::MAX);
    for (index, page) in pages.iter().enumerate() {
        let strip = &page.g4;
        let strip_offset = out.len();
        out.extend_from_slice(strip);
        if out.len() % 2 == 1 {
            out.push(0); // IFDs start on a word boundary (TIFF 6.0 section 2)
        }
        let entries: [(u16, u16, u32, Value); 20] = [
            (NEW_SUBFILE_TYPE, LONG, 1, Value::Inline(2)), // 2 = one page of many
            (IMAGE_WIDTH, LONG, 1, Value::Inline(page.width)),
            (IMAGE_LENGTH, LONG, 1, Value::Inline(page.height)),
            (BITS_PER_SAMPLE, SHORT, 1, Value::Inline(1)),
            (COMPRESSION, SHORT, 1, Value::Inline(4)),
            (PHOTOMETRIC, SHORT, 1, Value::Inline(0)), // min-is-white
            (FILL_ORDER, SHORT, 1, Value::Inline(1)),
            (
                STRIP_OFFSETS,
                LONG,
                1,
                Value::Inline(offset32(strip_offset)?),
            ),
            (ORIENTATION, SHORT, 1, Value::Inline(1)),
            (SAMPLES_PER_PIXEL, SHORT, 1, Value::Inline(1)),
            (ROWS_PER_STRIP, LONG, 1, Value::Inline(page.height)),
            (
                STRIP_BYTE_COUNTS,
                LONG,
                1,
                Value::Inline(offset32(strip.len())?),
            ),
            (
                X_RESOLUTION,
                RATIONAL,
                1,
                Value::Rational(rational(page.x_dpi)),
            ),
            (
                Y_RESOLUTION,
                RATIONAL,
                1,
                Value::Rational(rational(page.y_dpi)),
            ),
            (PLANAR_CONFIG, SHORT, 1, Value::Inline(1)),
            (T6_OPTIONS, LONG, 1, Value::Inline(0)),
            (RESOLUTION_UNIT, SHORT, 1, Value::Inline(2)), // inch
            (PAGE_NUMBER, SHORT, 2, Value::Shorts(index as u16, total)),
            (
                SOFTWARE,
                ASCII,
                SOFTWARE_NAME.len() as u32,
                Value::Bytes(SOFTWARE_NAME),
            ),
            // Class F: 0 = no lines were damaged in transmission.
            (327, SHORT, 1, Value::Inline(0)),
        ];
        let ifd_offset = out.len();
        let extra_start = ifd_offset + 2 + entries.len() * 12 + 4;
        let mut extra: Vec<u8> = Vec::new();
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in &entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            match value {
                Value::Inline(v) if *kind == SHORT => {
                    out.extend_from_slice(&(*v as u16).to_le_bytes());
                    out.extend_from_slice(&[0, 0]);
                }
                Value::Inline(v) => out.extend_from_slice(&v.to_le_bytes()),
                Value::Shorts(a, b) => {
                    out.extend_from_slice(&a.to_le_bytes());
                    out.extend_from_slice(&b.to_le_bytes());
                }
                Value::Rational((n, d)) => {
                    out.extend_from_slice(&offset32(extra_start + extra.len())?.to_le_bytes());
                    extra.extend_from_slice(&n.to_le_bytes());
                    extra.extend_from_slice(&d.to_le_bytes());
                }
                Value::Bytes(b) => {
                    out.extend_from_slice(&offset32(extra_start + extra.len())?.to_le_bytes());
                    extra.extend_from_slice(b);
                    if extra.len() % 2 == 1 {
                        extra.push(0);
                    }
                }
            }
        }
        let next_link = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&extra);
        let ifd = offset32(ifd_offset)?.to_le_bytes();
        out[link_at..link_at + 4].copy_from_slice(&ifd);
        link_at = next_link;
    }
    offset32(out.len())?;
    Ok(out)
}

enum Value {
    Inline(u32),
    Shorts(u16, u16),
    Rational((u32, u32)),
    Bytes(&'static [u8]),
}

fn offset32(n: usize) -> Result<u32, DocumentError> {
    u32::try_from(n).map_err(|_| DocumentError::OutputTooLarge { bytes: n as u64 })
}

/// Resolution as a TIFF RATIONAL: exact for whole numbers, 1/1000 otherwise.
fn rational(dpi: f32) -> (u32, u32) {
    if dpi.fract() == 0.0 {
        (dpi as u32, 1)
    } else {
        ((dpi * 1000.0).round() as u32, 1000)
    }
}

/// Reads every page of a bi-level TIFF. Accepted: compression none, CCITT
/// Modified Huffman, G3 (1-D or 2-D, with or without byte-aligned EOLs), G4;
/// fill order 1 or 2; min-is-white or min-is-black; any number of strips.
/// Reduced-resolution subfiles (thumbnails) are skipped. A missing
/// resolution is taken as fine (204x196), as Class F readers do.
pub fn decode_fax_tiff(bytes: &[u8]) -> Result<Vec<BitPage>, DocumentError> {
    let tiff = Tiff::parse_header(bytes)?;
    let mut pages = Vec::new();
    let mut total = 0u64;
    for dir in tiff.pages()? {
        let dir = dir?;
        let w = u64::from(dir.uint(IMAGE_WIDTH).unwrap_or(0));
        let h = u64::from(dir.uint(IMAGE_LENGTH).unwrap_or(0));
        total = total.saturating_add(w * h);
        if total > MAX_TOTAL_PIXELS {
            return Err(DocumentError::bad_tiff(
                "its pages hold more pixels than any fax",
            ));
        }
        pages.push(decode_page(&tiff, &dir, pages.len() + 1)?);
    }
    if pages.is_empty() {
        return Err(DocumentError::bad_tiff("it contains no pages"));
    }
    Ok(pages)
}

/// The number of pages (full-resolution directories) in a TIFF, without
/// decoding any image data.
pub fn count_tiff_pages(bytes: &[u8]) -> Result<usize, DocumentError> {
    let tiff = Tiff::parse_header(bytes)?;
    let mut n = 0;
    for dir in tiff.pages()? {
        dir?;
        n += 1;
    }
    Ok(n)
}

/// What a TIFF page is, as far as the fax path cares.
#[derive(Debug, Clone, PartialEq)]
pub struct TiffPageInfo {
    pub width: u32,
    pub height: u32,
    pub bits_per_sample: u32,
    pub samples_per_pixel: u32,
    /// The TIFF compression code (1 none, 2 MH, 3 G3, 4 G4, 5 LZW, ...).
    pub compression: u32,
}

/// Describes each full-resolution page of a TIFF, so a caller can tell a
/// bi-level fax TIFF (readable by `decode_fax_tiff`) from a colour or grey
/// one (which needs a general image decoder).
pub fn tiff_page_info(bytes: &[u8]) -> Result<Vec<TiffPageInfo>, DocumentError> {
    let tiff = Tiff::parse_header(bytes)?;
    let mut out = Vec::new();
    for dir in tiff.pages()? {
        let dir = dir?;
        out.push(TiffPageInfo {
            width: dir.uint(IMAGE_WIDTH).unwrap_or(0),
            height: dir.uint(IMAGE_LENGTH).unwrap_or(0),
            bits_per_sample: dir.uint(BITS_PER_SAMPLE).unwrap_or(1),
            samples_per_pixel: dir.uint(SAMPLES_PER_PIXEL).unwrap_or(1),
            compression: dir.uint(COMPRESSION).unwrap_or(1),
        });
    }
    Ok(out)
}

/// One page of a TIFF as stored, for copying its coded data into a PDF
/// without decoding it (see `topdf`).
pub(crate) struct StoredPage<'a> {
    pub width: u32,
    pub height: u32,
    pub x_dpi: f32,
    pub y_dpi: f32,
    /// TIFF compression: 2 MH, 3 G3, 4 G4.
    pub compression: u32,
    pub t4_options: u32,
    pub reversed_fill: bool,
    pub min_is_black: bool,
    /// The coded data when the page is one strip; `None` otherwise.
    pub single_strip: Option<&'a [u8]>,
}

/// Describes each page as stored. Pages that are not CCITT-coded in one
/// strip come back with `single_strip: None`.
pub(crate) fn stored_pages(bytes: &[u8]) -> Result<Vec<StoredPage<'_>>, DocumentError> {
    let tiff = Tiff::parse_header(bytes)?;
    let mut out = Vec::new();
    for dir in tiff.pages()? {
        let dir = dir?;
        let width = dir.uint(IMAGE_WIDTH).unwrap_or(0);
        let height = dir.uint(IMAGE_LENGTH).unwrap_or(0);
        let compression = dir.uint(COMPRESSION).unwrap_or(1);
        let offsets = dir.uints(STRIP_OFFSETS).unwrap_or_default();
        let counts = dir.uints(STRIP_BYTE_COUNTS).unwrap_or_default();
        let one_strip = offsets.len() == 1
            && counts.len() == 1
            && dir.uint(ROWS_PER_STRIP).unwrap_or(height) >= height;
        let bilevel = dir.uint(BITS_PER_SAMPLE).unwrap_or(1) == 1
            && dir.uint(SAMPLES_PER_PIXEL).unwrap_or(1) == 1;
        let coded = matches!(compression, 2..=4) && bilevel;
        let single_strip = if one_strip && coded {
            tiff.slice(offsets[0], counts[0])
        } else {
            None
        };
        let (x_dpi, y_dpi) = resolution(&dir);
        out.push(StoredPage {
            width,
            height,
            x_dpi,
            y_dpi,
            compression,
            t4_options: dir.uint(T4_OPTIONS).unwrap_or(0),
            reversed_fill: dir.uint(FILL_ORDER).unwrap_or(1) == 2,
            min_is_black: dir.uint(PHOTOMETRIC).unwrap_or(0) == 1,
            single_strip,
        });
    }
    Ok(out)
}

fn decode_page(tiff: &Tiff, dir: &Directory, number: usize) -> Result<BitPage, DocumentError> {
    let bad = |why: String| DocumentError::bad_tiff(format!("page {number}: {why}"));
    let width = dir
        .uint(IMAGE_WIDTH)
        .ok_or_else(|| bad("no image width".into()))?;
    let height = dir
        .uint(IMAGE_LENGTH)
        .ok_or_else(|| bad("no image length".into()))?;
    if width == 0 || height == 0 || width > MAX_WIDTH || height > MAX_HEIGHT {
        return Err(bad(format!("size {width}x{height} is not a fax page")));
    }
    let bits = dir.uint(BITS_PER_SAMPLE).unwrap_or(1);
    let samples = dir.uint(SAMPLES_PER_PIXEL).unwrap_or(1);
    if bits != 1 || samples != 1 {
        return Err(bad(format!(
            "{samples} sample(s) of {bits} bits per pixel; a fax image has one 1-bit sample"
        )));
    }
    let compression = dir.uint(COMPRESSION).unwrap_or(1);
    let coding = match compression {
        1 => None,
        2 => Some(Coding::ModifiedHuffman),
        3 => {
            let options = dir.uint(T4_OPTIONS).unwrap_or(0);
            if options & 2 != 0 {
                return Err(bad("G3 with uncompressed mode is not supported".into()));
            }
            Some(Coding::Group3 {
                two_d: options & 1 != 0,
            })
        }
        4 => Some(Coding::Group4),
        other => return Err(bad(format!("compression {other} is not a fax compression"))),
    };
    let reverse_bits = dir.uint(FILL_ORDER).unwrap_or(1) == 2;
    let min_is_black = match dir.uint(PHOTOMETRIC).unwrap_or(0) {
        0 => false,
        1 => true,
        other => {
            return Err(bad(format!(
                "photometric interpretation {other} is not black and white"
            )));
        }
    };
    let offsets = dir
        .uints(STRIP_OFFSETS)
        .ok_or_else(|| bad("no strip offsets".into()))?;
    let counts = dir
        .uints(STRIP_BYTE_COUNTS)
        .ok_or_else(|| bad("no strip byte counts".into()))?;
    if offsets.len() != counts.len() {
        return Err(bad("strip offsets and byte counts disagree".into()));
    }
    let rows_per_strip = dir.uint(ROWS_PER_STRIP).unwrap_or(height).clamp(1, height);
    let strips_needed = height.div_ceil(rows_per_strip) as usize;
    if offsets.len() < strips_needed {
        return Err(bad(format!(
            "{} strips for {strips_needed} needed",
            offsets.len()
        )));
    }
    let (x_dpi, y_dpi) = resolution(dir);
    let mut page = BitPage::new(width, height, x_dpi, y_dpi);
    let stride = page.stride();
    let mut reversed = Vec::new();
    for (s, (&off, &len)) in offsets.iter().zip(&counts).take(strips_needed).enumerate() {
        let mut data = tiff
            .slice(off, len)
            .ok_or_else(|| bad(format!("strip {} lies outside the file", s + 1)))?;
        if reverse_bits {
            reversed.clear();
            reversed.extend(data.iter().map(|b| b.reverse_bits()));
            data = &reversed;
        }
        let first_row = s as u32 * rows_per_strip;
        let rows = rows_per_strip.min(height - first_row);
        match coding {
            None => {
                let region = &mut page.rows
                    [first_row as usize * stride..(first_row + rows) as usize * stride];
                let n = region.len().min(data.len());
                region[..n].copy_from_slice(&data[..n]);
            }
            Some(coding) => {
                let rows_buf = &mut page.rows;
                ccitt::decode_strip(data, width, rows, coding, |y, t| {
                    let start = (first_row + y) as usize * stride;
                    ccitt::fill_row(&mut rows_buf[start..start + stride], t, width);
                })
                .map_err(|why| bad(format!("strip {}: {why}", s + 1)))?;
            }
        }
    }
    if min_is_black {
        page.rows.iter_mut().for_each(|b| *b = !*b);
    }
    page.clear_padding();
    Ok(page)
}

fn resolution(dir: &Directory) -> (f32, f32) {
    let scale = match dir.uint(RESOLUTION_UNIT).unwrap_or(2) {
        3 => 2.54, // centimetres
        _ => 1.0,
    };
    let x = dir
        .rational(X_RESOLUTION)
        .filter(|v| *v > 0.0)
        .map(|v| (v * scale) as f32);
    let y = dir
        .rational(Y_RESOLUTION)
        .filter(|v| *v > 0.0)
        .map(|v| (v * scale) as f32);
    match (x, y) {
        (Some(x), Some(y)) => (x, y),
        (Some(x), None) => (x, x),
        (None, Some(y)) => (FINE_DPI.0, y),
        (None, None) => FINE_DPI,
    }
}

/// A TIFF file's bytes and byte order.
struct Tiff<'a> {
    bytes: &'a [u8],
    little: bool,
    first_ifd: u32,
}

impl<'a> Tiff<'a> {
    fn parse_header(bytes: &'a [u8]) -> Result<Self, DocumentError> {
        if bytes.len() < 8 {
            return Err(DocumentError::bad_tiff("it is too short to be a TIFF file"));
        }
        let little = match &bytes[..2] {
            b"II" => true,
            b"MM" => false,
            _ => return Err(DocumentError::bad_tiff("it is not a TIFF file")),
        };
        let t = Tiff {
            bytes,
            little,
            first_ifd: 0,
        };
        match t.u16_at(2) {
            Some(42) => {}
            Some(43) => return Err(DocumentError::bad_tiff("BigTIFF files are not supported")),
            _ => return Err(DocumentError::bad_tiff("it is not a TIFF file")),
        }
        let first_ifd = t.u32_at(4).unwrap_or(0);
        Ok(Tiff { first_ifd, ..t })
    }

    /// The directories of the pages, in file order, each read when it is
    /// reached: a reduced-resolution subfile (a thumbnail, NewSubfileType
    /// bit 0) is no page.
    fn pages(
        &self,
    ) -> Result<impl Iterator<Item = Result<Directory, DocumentError>> + '_, DocumentError> {
        Ok(self
            .directories()?
            .into_iter()
            .filter_map(|ifd| match Directory::read(self, ifd) {
                Ok(dir) if dir.uint(NEW_SUBFILE_TYPE).unwrap_or(0) & 1 == 1 => None,
                read => Some(read),
            }))
    }

    /// Directory offsets in file order, refusing loops and absurd counts.
    fn directories(&self) -> Result<Vec<u32>, DocumentError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut next = self.first_ifd;
        while next != 0 {
            if !seen.insert(next) {
                return Err(DocumentError::bad_tiff("its directories form a loop"));
            }
            if out.len() >= MAX_PAGES {
                return Err(DocumentError::bad_tiff(format!(
                    "it has more than {MAX_PAGES} pages"
                )));
            }
            let count = self
                .u16_at(next as usize)
                .ok_or_else(|| DocumentError::bad_tiff("a directory lies outside the file"))?;
            out.push(next);
            let link = next as usize + 2 + usize::from(count) * 12;
            next = self
                .u32_at(link)
                .ok_or_else(|| DocumentError::bad_tiff("a directory is cut short"))?;
        }
        Ok(out)
    }

    fn slice(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.bytes.get(start..end)
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
}

/// The tags of one image file directory, values already fetched.
struct Directory {
    entries: Vec<(u16, Vec<u64>, Vec<f64>)>,
}

impl Directory {
    fn read(tiff: &Tiff, at: u32) -> Result<Self, DocumentError> {
        let at = at as usize;
        let count = usize::from(tiff.u16_at(at).unwrap_or(0));
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let e = at + 2 + i * 12;
            let cut = || DocumentError::bad_tiff("a directory entry is cut short");
            let tag = tiff.u16_at(e).ok_or_else(cut)?;
            let kind = tiff.u16_at(e + 2).ok_or_else(cut)?;
            let n = tiff.u32_at(e + 4).ok_or_else(cut)? as usize;
            let size = match kind {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 => 4,
                5 | 10 | 12 => 8,
                _ => continue, // unknown types are skipped, as TIFF 6.0 asks
            };
            // Only the tags read here matter; large arrays elsewhere
            // (e.g. colour maps) are skipped without reading them.
            if !matches!(tag, 254..=297) {
                continue;
            }
            if n > 1_000_000 {
                return Err(DocumentError::bad_tiff(format!(
                    "tag {tag} claims {n} values"
                )));
            }
            let total = n * size;
            let data_at = if total <= 4 {
                e + 8
            } else {
                tiff.u32_at(e + 8).ok_or_else(cut)? as usize
            };
            let mut ints = Vec::new();
            let mut reals = Vec::new();
            for k in 0..n {
                let p = data_at + k * size;
                let missing =
                    || DocumentError::bad_tiff(format!("tag {tag} points outside the file"));
                match size {
                    1 => ints.push(u64::from(*tiff.bytes.get(p).ok_or_else(missing)?)),
                    2 => ints.push(u64::from(tiff.u16_at(p).ok_or_else(missing)?)),
                    4 => ints.push(u64::from(tiff.u32_at(p).ok_or_else(missing)?)),
                    _ => {
                        let num = tiff.u32_at(p).ok_or_else(missing)?;
                        let den = tiff.u32_at(p + 4).ok_or_else(missing)?;
                        reals.push(if den == 0 {
                            0.0
                        } else {
                            f64::from(num) / f64::from(den)
                        });
                    }
                }
            }
            entries.push((tag, ints, reals));
        }
        Ok(Directory { entries })
    }

    fn uints(&self, tag: u16) -> Option<Vec<u64>> {
        self.entries
            .iter()
            .find(|e| e.0 == tag)
            .map(|e| e.1.clone())
            .filter(|v| !v.is_empty())
    }

    fn uint(&self, tag: u16) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.0 == tag)
            .and_then(|e| e.1.first())
            .map(|&v| v.min(u64::from(u32::MAX)) as u32)
    }

    fn rational(&self, tag: u16) -> Option<f64> {
        self.entries
            .iter()
            .find(|e| e.0 == tag)
            .and_then(|e| e.2.first().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_page(rng: &mut impl Rng, width: u32, height: u32) -> BitPage {
        let mut p = BitPage::new(width, height, 204.0, 196.0);
        for y in 0..height {
            match y % 7 {
                0 => {}                                                          // blank row
                1 => (0..width).for_each(|x| p.set(x, y, true)),                 // all-black row
                2 => (0..width).for_each(|x| p.set(x, y, rng.random_bool(0.5))), // noise
                _ => {
                    // runs of random length, like text strokes
                    let mut x = 0;
                    let mut black = rng.random_bool(0.5);
                    while x < width {
                        let run = rng.random_range(1..=(width / 3).max(2));
                        for xx in x..(x + run).min(width) {
                            p.set(xx, y, black);
                        }
                        x += run;
                        black = !black;
                    }
                }
            }
        }
        p
    }

    #[test]
    fn round_trip_random_pages_of_odd_widths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for &(w, h) in &[
            (1728, 60),
            (1, 5),
            (7, 9),
            (9, 3),
            (1000, 31),
            (2431, 40),
            (64, 64),
        ] {
            let pages = vec![random_page(&mut rng, w, h), BitPage::new(w, h, 204.0, 98.0)];
            let tiff = encode_fax_tiff(&pages).unwrap();
            let back = decode_fax_tiff(&tiff).unwrap();
            assert_eq!(back, pages, "{w}x{h}");
        }
    }

    #[test]
    fn all_black_and_all_white_pages_round_trip() {
        let mut black = BitPage::new(1728, 20, 204.0, 196.0);
        black.rows.fill(0xFF);
        let white = BitPage::new(1728, 20, 204.0, 196.0);
        let back =
            decode_fax_tiff(&encode_fax_tiff(&[black.clone(), white.clone()]).unwrap()).unwrap();
        assert_eq!(back[0].black_pixels(), 1728 * 20);
        assert_eq!(back, vec![black, white]);
    }

    #[test]
    fn wrong_rows_length_is_an_error_not_a_panic() {
        let mut p = BitPage::new(10, 10, 204.0, 196.0);
        p.rows.pop();
        assert!(matches!(
            encode_fax_tiff(&[p]),
            Err(DocumentError::InvalidPage { .. })
        ));
        assert!(matches!(
            encode_fax_tiff(&[]),
            Err(DocumentError::InvalidPage { .. })
        ));
    }

    #[test]
    fn truncated_and_garbage_tiffs_are_errors() {
        let page = BitPage::new(1728, 10, 204.0, 196.0);
        let tiff = encode_fax_tiff(&[page]).unwrap();
        for cut in [0, 3, 8, 20, tiff.len() - 10] {
            assert!(decode_fax_tiff(&tiff[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_fax_tiff(b"%PDF-1.4 not a tiff").is_err());
    }

    /// Thousands of damaged copies of a valid fax TIFF (bytes flipped in the
    /// header, the directories and the coded data): every one is read or
    /// refused, none panics, and `tiff_to_pdf` copes the same way.
    #[test]
    fn damaged_tiffs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(44);
        let pages = vec![
            random_page(&mut rng, 200, 30),
            random_page(&mut rng, 64, 10),
        ];
        let good = encode_fax_tiff(&pages).unwrap();
        for _ in 0..3000 {
            let mut bad = good.clone();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..bad.len());
                bad[at] = rng.random();
            }
            if rng.random_bool(0.2) {
                bad.truncate(rng.random_range(0..bad.len()));
            }
            let _ = decode_fax_tiff(&bad);
            let _ = crate::documents::tiff_to_pdf(&bad);
        }
    }

    #[test]
    fn non_integer_resolution_survives() {
        let p = BitPage::new(16, 2, 203.2, 97.8);
        let back = decode_fax_tiff(&encode_fax_tiff(&[p]).unwrap()).unwrap();
        assert!((back[0].x_dpi - 203.2).abs() < 0.01 && (back[0].y_dpi - 97.8).abs() < 0.01);
    }
}
