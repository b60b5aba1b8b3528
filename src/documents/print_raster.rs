//! Printer rasters to fax pages: PWG Raster (PWG 5102.4, `image/pwg-raster`)
//! and Apple Raster (`image/urf`, the "UNIRAST" format of AirPrint), the two
//! page formats an IPP Everywhere client sends to a printer, so the ones a
//! "print to fax" job arrives in.
//!
//! Both are a file header, then per page a page header and its lines in one
//! run-length code (CUPS's modified PackBits, PWG 5102.4 section 4.3): a
//! byte saying how many times the line repeats, then runs of whole pixels
//! until the line is full. We read it line by line: each distinct line is
//! turned into grey and scaled to the fax page's width as it arrives, so a
//! 600 dpi colour page is never held in memory (only its rows at fax width),
//! and the grey-to-fax steps are the images' own (`raster`).
//!
//! The decoder trusts nothing in the file: dimensions, resolution, bit
//! depths and line lengths are checked against each other and against caps
//! before anything is allocated, and running out of data is an error naming
//! the page and line, never a panic.

use super::faxtiff::{BitPage, EncodedPage};
use super::raster::{self, Geometry, Grey};
use super::{DocumentError, Watch};

/// Which of the two print formats a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// PWG Raster: "RaS2", then 1796-byte CUPS version 2 page headers.
    Pwg,
    /// Apple Raster: "UNIRAST\0" and a page count, then 32-byte page headers.
    Apple,
}

impl Format {
    /// How the format is named to the sender.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Format::Pwg => "a PWG raster print file",
            Format::Apple => "an Apple raster (URF) print file",
        }
    }
}

/// The PWG sync word (big-endian, PWG 5102.4 section 4.1).
pub(crate) const PWG_SYNC: &[u8; 4] = b"RaS2";
/// The Apple Raster file signature; a 4-byte page count follows.
pub(crate) const APPLE_SYNC: &[u8; 8] = b"UNIRAST\0";

/// Size of a PWG page header (CUPS's `cups_page_header2_t`).
const PWG_HEADER: usize = 1796;
/// Size of an Apple Raster page header.
const APPLE_HEADER: usize = 32;

/// Most pixels on either side of a page: 17 inches at 600 dpi, which holds
/// Legal, Tabloid and A3 at the finest resolution printers are sent (the
/// fax page is 1728 pixels wide; anything finer is only scaled away).
const MAX_SIDE: u32 = 10_200;
/// Highest resolution a page header may claim; 0 would divide by zero.
const MAX_DPI: u32 = 2400;

/// White space kept around the page when fitting it to the fax page: none,
/// as for PDFs, since a printed page already has its margins.
const MARGIN_IN: f32 = 0.0;

/// How a page's samples become grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Colour {
    /// One channel, 0 = black (sGray, device grey).
    Grey,
    /// One channel of ink, 0 = white (PWG "black").
    Black,
    /// Red, green, blue (sRGB, Adobe RGB, device RGB).
    Rgb,
    /// Cyan, magenta, yellow, black ink.
    Cmyk,
}

impl Colour {
    fn channels(self) -> u32 {
        match self {
            Colour::Grey | Colour::Black => 1,
            Colour::Rgb => 3,
            Colour::Cmyk => 4,
        }
    }

    /// The byte that fills a line's remainder with paper white (run code
    /// 128): additive spaces are white at all ones, ink spaces at zero, as
    /// CUPS's reader does it.
    fn white(self) -> u8 {
        match self {
            Colour::Grey | Colour::Rgb => 0xFF,
            Colour::Black | Colour::Cmyk => 0x00,
        }
    }
}

/// What a page header says, checked.
#[derive(Debug, Clone, PartialEq)]
struct PageHeader {
    width: u32,
    height: u32,
    bits_per_colour: u32,
    bytes_per_line: usize,
    colour: Colour,
    x_dpi: u32,
    y_dpi: u32,
    /// PWG back-side transforms (duplex): the page arrives mirrored left to
    /// right, or upside down, and is put right before faxing.
    mirrored: bool,
    upside_down: bool,
}

impl PageHeader {
    /// Bytes of one pixel, the unit the run-length code counts in.
    fn pixel_bytes(&self) -> usize {
        (self.colour.channels() * self.bits_per_colour).div_ceil(8) as usize
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A print file being read: where we are, and what to call it in errors.
pub(crate) struct RasterReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    name: &'a str,
    format: Format,
    /// Pages the file header or first page header promises (0: unknown).
    declared_pages: u32,
    pages_read: u32,
}

impl<'a> RasterReader<'a> {
    /// Opens a print file: checks its signature.
    pub(crate) fn open(
        bytes: &'a [u8],
        name: &'a str,
        format: Format,
    ) -> Result<Self, DocumentError> {
        let mut r = RasterReader {
            bytes,
            pos: 0,
            name,
            format,
            declared_pages: 0,
            pages_read: 0,
        };
        match format {
            Format::Pwg => {
                if !bytes.starts_with(PWG_SYNC) {
                    return Err(r.corrupt(
                        "it does not start with the PWG raster sync word \"RaS2\"".into(),
                    ));
                }
                r.pos = PWG_SYNC.len();
            }
            Format::Apple => {
                if !bytes.starts_with(APPLE_SYNC) {
                    return Err(r.corrupt(
                        "it does not start with the Apple raster signature \"UNIRAST\"".into(),
                    ));
                }
                let Some(count) = bytes.get(8..12) else {
                    return Err(r.corrupt("it ends inside its file header".into()));
                };
                r.declared_pages = be32(count, 0);
                r.pos = 12;
            }
        }
        Ok(r)
    }

    fn corrupt(&self, reason: String) -> DocumentError {
        DocumentError::Corrupt {
            name: self.name.into(),
            kind: self.format.describe().into(),
            reason,
        }
    }

    fn cut_off(&self, page: u32, line: Option<(u32, u32)>) -> DocumentError {
        let at = match line {
            Some((y, h)) => format!("in the middle of page {page} (line {} of {h})", y + 1),
            None => format!("inside the header of page {page}"),
        };
        self.corrupt(format!(
            "the file ends {at}; it was cut off on the way, print it again"
        ))
    }

    /// The next page's header, or `None` at the end of the file.
    fn next_page(&mut self, max_pixels: u64) -> Result<Option<PageHeader>, DocumentError> {
        if self.pos == self.bytes.len() {
            if self.declared_pages > self.pages_read {
                return Err(self.corrupt(format!(
                    "it announces {} pages but ends after {}; it was cut off on the way, print it again",
                    self.declared_pages, self.pages_read
                )));
            }
            return Ok(None);
        }
        let page = self.pages_read + 1;
        let size = match self.format {
            Format::Pwg => PWG_HEADER,
            Format::Apple => APPLE_HEADER,
        };
        let Some(h) = self.bytes.get(self.pos..self.pos + size) else {
            return Err(self.cut_off(page, None));
        };
        self.pos += size;
        self.pages_read = page;
        let header = match self.format {
            Format::Pwg => self.pwg_header(h, page)?,
            Format::Apple => self.apple_header(h, page)?,
        };
        self.check_size(&header, page, max_pixels)?;
        self.check_line_length(&header, page)?;
        Ok(Some(header))
    }

    /// A PWG page header (PWG 5102.4 section 4.2; fields are big-endian
    /// 32-bit words at CUPS's `cups_page_header2_t` offsets).
    fn pwg_header(&mut self, h: &[u8], page: u32) -> Result<PageHeader, DocumentError> {
        let bits_per_colour = be32(h, 384);
        let bits_per_pixel = be32(h, 388);
        let bytes_per_line = be32(h, 392);
        let order = be32(h, 396);
        let space = be32(h, 400);
        if page == 1 {
            // cupsInteger[0], TotalPageCount: 0 when the sender did not know.
            self.declared_pages = be32(h, 452);
        }
        let colour = match space {
            // W, sGray
            0 | 18 => Colour::Grey,
            // K
            3 => Colour::Black,
            // RGB, sRGB, Adobe RGB
            1 | 19 | 20 => Colour::Rgb,
            6 => Colour::Cmyk,
            other => {
                return Err(self.corrupt(format!(
                    "page {page} uses colour space {other}, which Faxbox cannot turn into a fax; print in colour or greyscale"
                )));
            }
        };
        if order != 0 {
            return Err(self.corrupt(format!(
                "page {page} stores its colours in separate planes (colour order {order}), which PWG raster does not allow"
            )));
        }
        let header = PageHeader {
            width: be32(h, 372),
            height: be32(h, 376),
            bits_per_colour,
            bytes_per_line: bytes_per_line as usize,
            colour,
            x_dpi: be32(h, 276),
            y_dpi: be32(h, 280),
            // CrossFeedTransform and FeedTransform: 1 as is, -1 reversed.
            mirrored: be32(h, 456) == u32::MAX,
            upside_down: be32(h, 460) == u32::MAX,
        };
        self.check_depths(&header, bits_per_pixel, page)?;
        Ok(header)
    }

    /// A PWG line length that agrees with the width and depth (checked
    /// after the size, so an absurd width is called too large first).
    fn check_line_length(&self, h: &PageHeader, page: u32) -> Result<(), DocumentError> {
        let bits = h.bits_per_colour * h.colour.channels();
        let expected = (u64::from(h.width) * u64::from(bits)).div_ceil(8);
        if h.bytes_per_line as u64 != expected {
            return Err(self.corrupt(format!(
                "page {page} says its lines are {} bytes long, but {} pixels of {bits} bits take {expected}",
                h.bytes_per_line, h.width
            )));
        }
        Ok(())
    }

    /// An Apple Raster page header: bits per pixel, colour space, duplex,
    /// quality, then big-endian width, height and resolution at bytes 12,
    /// 16 and 20 (one resolution for both directions).
    fn apple_header(&mut self, h: &[u8], page: u32) -> Result<PageHeader, DocumentError> {
        let bits_per_pixel = u32::from(h[0]);
        let colour = match h[1] {
            // sGray, device grey
            0 | 4 => Colour::Grey,
            // sRGB, Adobe RGB, device RGB
            1 | 3 | 5 => Colour::Rgb,
            6 => Colour::Cmyk,
            2 => {
                return Err(self.corrupt(format!(
                    "page {page} is in CIE Lab colour, which Faxbox cannot turn into a fax; print in sRGB or greyscale"
                )));
            }
            other => {
                return Err(self.corrupt(format!(
                    "page {page} uses colour space {other}, which Apple raster does not define"
                )));
            }
        };
        let dpi = be32(h, 20);
        let header = PageHeader {
            width: be32(h, 12),
            height: be32(h, 16),
            bits_per_colour: bits_per_pixel / colour.channels(),
            bytes_per_line: 0,
            colour,
            x_dpi: dpi,
            y_dpi: dpi,
            mirrored: false,
            upside_down: false,
        };
        // Apple raster has 8 or 16 bits per colour only (its 1-bit variant
        // does not exist in the format; CUPS's writer would produce one
        // whose white is ambiguous).
        if header.bits_per_colour == 1 {
            return Err(self.corrupt(format!(
                "page {page} has 1 bit per pixel, which Apple raster does not define"
            )));
        }
        self.check_depths(&header, bits_per_pixel, page)?;
        let bytes_per_line = u64::from(header.width) * u64::from(bits_per_pixel) / 8;
        Ok(PageHeader {
            bytes_per_line: bytes_per_line as usize,
            ..header
        })
    }

    /// Bits per colour 1 (one-channel spaces only), 8 or 16, and bits per
    /// pixel matching them.
    fn check_depths(
        &self,
        h: &PageHeader,
        bits_per_pixel: u32,
        page: u32,
    ) -> Result<(), DocumentError> {
        let ok_depth = match h.bits_per_colour {
            1 => h.colour.channels() == 1,
            8 | 16 => true,
            _ => false,
        };
        if !ok_depth || bits_per_pixel != h.bits_per_colour * h.colour.channels() {
            return Err(self.corrupt(format!(
                "page {page} has {bits_per_pixel} bits per pixel for {} colour channel(s), which is not a valid depth",
                h.colour.channels()
            )));
        }
        Ok(())
    }

    /// Dimensions and resolution within reason before anything is allocated.
    fn check_size(&self, h: &PageHeader, page: u32, max_pixels: u64) -> Result<(), DocumentError> {
        if h.width == 0 || h.height == 0 {
            return Err(self.corrupt(format!("page {page} has no pixels")));
        }
        for dpi in [h.x_dpi, h.y_dpi] {
            if dpi == 0 || dpi > MAX_DPI {
                return Err(self.corrupt(format!(
                    "page {page} claims a resolution of {dpi} dpi, which no printer uses"
                )));
            }
        }
        let pixels = u64::from(h.width) * u64::from(h.height);
        if h.width > MAX_SIDE || h.height > MAX_SIDE || pixels > max_pixels {
            return Err(DocumentError::TooLarge {
                name: self.name.into(),
                detail: format!(
                    "page {page} is {} x {} pixels; at most {MAX_SIDE} pixels a side (17 inches at 600 dpi) and {} million pixels are accepted",
                    h.width,
                    h.height,
                    max_pixels / 1_000_000
                ),
            });
        }
        Ok(())
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    /// Decodes one coded line into `line` (exactly `bytes_per_line` long)
    /// and returns how many times it repeats. `None` when the data ends.
    /// Counts that overrun the line are cut at its end, as CUPS's reader
    /// does, so what CUPS prints we fax.
    fn line(&mut self, h: &PageHeader, line: &mut [u8]) -> Option<u32> {
        let repeat = u32::from(self.byte()?) + 1;
        let unit = h.pixel_bytes();
        let mut at = 0;
        while at < line.len() {
            let code = self.byte()?;
            let left = line.len() - at;
            if code == 128 {
                line[at..].fill(h.colour.white());
                at = line.len();
            } else if code > 128 {
                // 257 - code pixels follow as they are.
                let n = (257 - usize::from(code)) * unit;
                let n = n.min(left);
                line[at..at + n].copy_from_slice(self.take(n)?);
                at += n;
            } else {
                // One pixel follows, to be used code + 1 times.
                let n = (usize::from(code) + 1) * unit;
                let n = n.min(left);
                if n < unit {
                    // Less room than one pixel: only a damaged file does
                    // this; the line is as full as it can be.
                    break;
                }
                let pixel = self.take(unit)?;
                for chunk in line[at..at + n].chunks_exact_mut(unit) {
                    chunk.copy_from_slice(pixel);
                }
                at += n;
            }
        }
        Some(repeat)
    }

    /// Reads one page's lines, handing each distinct line to `row` as grey
    /// (0 black, 255 white, `width` samples) with its repeat count.
    fn read_page(
        &mut self,
        h: &PageHeader,
        mut row: impl FnMut(&[u8], u32),
    ) -> Result<(), DocumentError> {
        let page = self.pages_read;
        let mut line = vec![0u8; h.bytes_per_line];
        let mut grey = vec![255u8; h.width as usize];
        let mut y = 0;
        while y < h.height {
            let Some(repeat) = self.line(h, &mut line) else {
                return Err(self.cut_off(page, Some((y, h.height))));
            };
            to_grey(h, &line, &mut grey);
            if h.mirrored {
                grey.reverse();
            }
            // A repeat past the page's last line is ignored, as by CUPS.
            let times = repeat.min(h.height - y);
            row(&grey, times);
            y += times;
        }
        Ok(())
    }
}

/// One decoded line's samples as grey, 0 = black, 255 = white (luma as the
/// images use it; 16-bit samples are big-endian, their high byte counts).
fn to_grey(h: &PageHeader, line: &[u8], grey: &mut [u8]) {
    let luma = |r: u8, g: u8, b: u8| {
        ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29 + 128) >> 8) as u8
    };
    let step = (h.bits_per_colour / 8) as usize;
    match (h.colour, h.bits_per_colour) {
        (Colour::Grey | Colour::Black, 1) => {
            // A set bit is white in grey and ink in black.
            let (set, clear) = if h.colour == Colour::Grey {
                (255, 0)
            } else {
                (0, 255)
            };
            for (x, g) in grey.iter_mut().enumerate() {
                *g = if line[x / 8] & (0x80 >> (x % 8)) != 0 {
                    set
                } else {
                    clear
                };
            }
        }
        (Colour::Grey, _) => {
            for (g, s) in grey.iter_mut().zip(line.chunks_exact(step)) {
                *g = s[0];
            }
        }
        (Colour::Black, _) => {
            for (g, s) in grey.iter_mut().zip(line.chunks_exact(step)) {
                *g = 255 - s[0];
            }
        }
        (Colour::Rgb, _) => {
            for (g, s) in grey.iter_mut().zip(line.chunks_exact(3 * step)) {
                *g = luma(s[0], s[step], s[2 * step]);
            }
        }
        (Colour::Cmyk, _) => {
            for (g, s) in grey.iter_mut().zip(line.chunks_exact(4 * step)) {
                let k = 255 - u32::from(s[3 * step]);
                let ink = |c: u8| ((255 - u32::from(c)) * k / 255) as u8;
                *g = luma(ink(s[0]), ink(s[step]), ink(s[2 * step]));
            }
        }
    }
}

/// A page that arrives row by row, fitted onto the fax page as the images
/// are (`raster::draw_fitted`: turned when landscape, scaled to fit, centred)
/// but scaled across as each row comes, so only rows at fax width are kept.
struct PageFitter {
    geom: Geometry,
    rotate: bool,
    placement: raster::Placement,
    /// Samples per kept row: the placed width, or the placed height when the
    /// page is turned (its rows become columns).
    across: usize,
    /// Rows the kept picture is scaled to down the page.
    down: u32,
    src_width: usize,
    rows: Vec<u8>,
    kept: u32,
}

impl PageFitter {
    fn new(geom: &Geometry, h: &PageHeader) -> Self {
        let (w_in, h_in) = (
            h.width as f32 / h.x_dpi as f32,
            h.height as f32 / h.y_dpi as f32,
        );
        let rotate = raster::should_rotate(w_in, h_in);
        let placement = if rotate {
            raster::place(geom, h_in, w_in, MARGIN_IN)
        } else {
            raster::place(geom, w_in, h_in, MARGIN_IN)
        };
        let (across, down) = if rotate {
            (placement.height, placement.width)
        } else {
            (placement.width, placement.height)
        };
        PageFitter {
            geom: *geom,
            rotate,
            placement,
            across: across as usize,
            down,
            src_width: h.width as usize,
            rows: Vec::with_capacity(across as usize * h.height as usize),
            kept: 0,
        }
    }

    /// Takes one grey row of the page, `times` times.
    fn push(&mut self, grey: &[u8], times: u32) {
        let scaled = raster::resample_axis(grey, self.src_width, 1, self.across, true);
        for _ in 0..times {
            self.rows.extend_from_slice(&scaled);
        }
        self.kept += times;
    }

    /// Scales down the page, turns and places it, and screens it to 1 bit.
    fn finish(mut self, upside_down: bool) -> BitPage {
        if upside_down {
            let rows: Vec<&[u8]> = self.rows.chunks_exact(self.across).rev().collect();
            self.rows = rows.concat();
        }
        let data = raster::resample_axis(
            &self.rows,
            self.across,
            self.kept as usize,
            self.down as usize,
            false,
        );
        let scaled = Grey {
            width: self.across as u32,
            height: self.down,
            data,
        };
        let placed = if self.rotate {
            raster::rotate_quarter(&scaled)
        } else {
            scaled
        };
        let g = self.geom;
        let p = &self.placement;
        let mut page = Grey {
            width: g.width,
            height: g.height,
            data: vec![255; g.width as usize * g.height as usize],
        };
        let (left, top) = (p.left as usize, p.top as usize);
        let w = placed.width as usize;
        for (y, from) in placed.data.chunks_exact(w).enumerate() {
            let ty = top + y;
            if ty >= g.height as usize {
                break;
            }
            let n = w.min(g.width as usize - left);
            let at = ty * g.width as usize + left;
            page.data[at..at + n].copy_from_slice(&from[..n]);
        }
        raster::binarize(&page, g.x_dpi, g.y_dpi)
    }
}

/// Every page of a PWG or Apple raster file as fax pages. `watch` is
/// checked between pages (the time budget).
pub(crate) fn convert(
    bytes: &[u8],
    name: &str,
    format: Format,
    geom: &Geometry,
    max_pages: usize,
    max_pixels: u64,
    watch: &Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let mut reader = RasterReader::open(bytes, name, format)?;
    let mut out = Vec::new();
    let mut pages = 0usize;
    while let Some(h) = reader.next_page(max_pixels)? {
        if watch.cancelled() {
            return Ok(out);
        }
        pages += 1;
        if pages > max_pages {
            // Past the limit, pages are only read to count them for the
            // error (no scaling, no screening).
            reader.read_page(&h, |_, _| {})?;
            continue;
        }
        watch.started(pages);
        let mut fitter = PageFitter::new(geom, &h);
        reader.read_page(&h, |grey, times| fitter.push(grey, times))?;
        out.push(EncodedPage::encode(&fitter.finish(h.upside_down)));
        watch.finished(pages);
    }
    if pages == 0 {
        return Err(DocumentError::NoPages { name: name.into() });
    }
    if pages > max_pages {
        return Err(DocumentError::TooManyPages {
            name: name.into(),
            pages,
            limit: max_pages,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Codes one line the way CUPS's writer does (runs of equal pixels,
    /// literal stretches of up to 128), for building test files.
    fn code_line(line: &[u8], unit: usize, repeat: u8, out: &mut Vec<u8>) {
        out.push(repeat);
        let px: Vec<&[u8]> = line.chunks_exact(unit).collect();
        let mut i = 0;
        while i < px.len() {
            let mut run = 1;
            while i + run < px.len() && run < 128 && px[i + run] == px[i] {
                run += 1;
            }
            if run > 1 {
                out.push((run - 1) as u8);
                out.extend_from_slice(px[i]);
                i += run;
                continue;
            }
            let mut lit = 1;
            while i + lit < px.len() && lit < 128 && px[i + lit] != px[i + lit - 1] {
                lit += 1;
            }
            out.push((257 - lit) as u8);
            for p in &px[i..i + lit] {
                out.extend_from_slice(p);
            }
            i += lit;
        }
    }

    /// A PWG page header with the fields the decoder reads.
    pub(crate) fn pwg_header(
        width: u32,
        height: u32,
        space: u32,
        bits_per_colour: u32,
        channels: u32,
        dpi: (u32, u32),
        total_pages: u32,
    ) -> Vec<u8> {
        let mut h = vec![0u8; PWG_HEADER];
        h[..9].copy_from_slice(b"PwgRaster");
        let mut put = |at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
        let bpp = bits_per_colour * channels;
        put(276, dpi.0);
        put(280, dpi.1);
        put(372, width);
        put(376, height);
        put(384, bits_per_colour);
        put(388, bpp);
        put(392, (width * bpp).div_ceil(8));
        put(400, space);
        put(420, channels);
        put(452, total_pages);
        put(456, 1);
        put(460, 1);
        h
    }

    /// A PWG file of 8-bit sGray pages, each given as rows of grey.
    pub(crate) fn pwg_grey(pages: &[Vec<Vec<u8>>], dpi: u32) -> Vec<u8> {
        let mut f = PWG_SYNC.to_vec();
        for rows in pages {
            let w = rows[0].len() as u32;
            f.extend(pwg_header(
                w,
                rows.len() as u32,
                18,
                8,
                1,
                (dpi, dpi),
                pages.len() as u32,
            ));
            for r in rows {
                code_line(r, 1, 0, &mut f);
            }
        }
        f
    }

    /// The error of a result that must be one.
    fn refused<T>(r: Result<T, DocumentError>) -> DocumentError {
        match r {
            Ok(_) => panic!("accepted what should be refused"),
            Err(e) => e,
        }
    }

    /// Decodes a file to grey pictures at its own resolution (no fitting).
    fn decode(bytes: &[u8], format: Format) -> Result<Vec<Grey>, DocumentError> {
        decode_at_most(bytes, format, 100_000_000)
    }

    fn decode_at_most(
        bytes: &[u8],
        format: Format,
        max_pixels: u64,
    ) -> Result<Vec<Grey>, DocumentError> {
        let mut r = RasterReader::open(bytes, "t", format)?;
        let mut out = Vec::new();
        while let Some(h) = r.next_page(max_pixels)? {
            let mut data = Vec::new();
            r.read_page(&h, |g, n| {
                for _ in 0..n {
                    data.extend_from_slice(g)
                }
            })?;
            let mut g = Grey {
                width: h.width,
                height: h.height,
                data,
            };
            if h.upside_down {
                let rows: Vec<&[u8]> = g.data.chunks_exact(h.width as usize).rev().collect();
                g.data = rows.concat();
            }
            out.push(g);
        }
        Ok(out)
    }

    fn picture(w: usize, h: usize, seed: u32) -> Vec<Vec<u8>> {
        let mut s = seed;
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| {
                        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        match (y / 3) % 3 {
                            0 => 255,
                            1 => (x * 255 / w) as u8,
                            _ => (s >> 24) as u8,
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn grey_pages_round_trip_through_the_run_length_code() {
        let pages = vec![picture(37, 11, 1), picture(20, 5, 2)];
        let got = decode(&pwg_grey(&pages, 300), Format::Pwg).unwrap();
        assert_eq!(got.len(), 2);
        for (g, rows) in got.iter().zip(&pages) {
            assert_eq!(g.data, rows.concat());
        }
    }

    #[test]
    fn line_repeat_and_fill_to_white_follow_cups() {
        // sRGB 4 pixels wide, 3 lines: one coded line repeated twice more
        // (repeat byte 2) holding a red pixel run, then 128: white to the end.
        let mut f = PWG_SYNC.to_vec();
        f.extend(pwg_header(4, 3, 19, 8, 3, (300, 300), 1));
        f.extend([2, 1, 255, 0, 0, 128]);
        let g = &decode(&f, Format::Pwg).unwrap()[0];
        let red = ((255 * 77 + 128) >> 8) as u8;
        assert_eq!(g.data, [red, red, 255, 255].repeat(3));
        // In black (K), 128 fills with 0, which is white there too; a 1-bit
        // black line with one literal byte 0x81 has ink at pixels 0 and 7.
        let mut f = PWG_SYNC.to_vec();
        f.extend(pwg_header(16, 1, 3, 1, 1, (300, 300), 1));
        f.extend([0, 0, 0x81, 128]);
        let g = &decode(&f, Format::Pwg).unwrap()[0];
        let mut want = [255u8; 16];
        want[0] = 0;
        want[7] = 0;
        assert_eq!(g.data, want);
    }

    #[test]
    fn sixteen_bit_cmyk_and_the_back_side_transforms() {
        // 2 x 2 CMYK16: pure black ink (K) top-left, else paper; marked as
        // a back side that is upside down and mirrored.
        let mut f = PWG_SYNC.to_vec();
        let mut h = pwg_header(2, 2, 6, 16, 4, (300, 300), 1);
        h[456..460].copy_from_slice(&u32::MAX.to_be_bytes());
        h[460..464].copy_from_slice(&u32::MAX.to_be_bytes());
        f.extend(h);
        let ink = [0u8, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        f.push(0);
        f.push(255); // 2 literal pixels
        f.extend(ink);
        f.extend([0u8; 8]);
        f.extend([0, 128]);
        let g = &decode(&f, Format::Pwg).unwrap()[0];
        // Mirrored: the ink moves to the right; upside down: to the bottom.
        assert_eq!(g.data, [255, 255, 255, 0]);
    }

    /// An Apple raster file of 8-bit sGray pages.
    fn urf_grey(pages: &[Vec<Vec<u8>>], dpi: u32) -> Vec<u8> {
        let mut f = APPLE_SYNC.to_vec();
        f.extend((pages.len() as u32).to_be_bytes());
        for rows in pages {
            let mut h = [0u8; APPLE_HEADER];
            h[0] = 8;
            h[2] = 1;
            h[12..16].copy_from_slice(&(rows[0].len() as u32).to_be_bytes());
            h[16..20].copy_from_slice(&(rows.len() as u32).to_be_bytes());
            h[20..24].copy_from_slice(&dpi.to_be_bytes());
            f.extend(h);
            for r in rows {
                code_line(r, 1, 0, &mut f);
            }
        }
        f
    }

    #[test]
    fn apple_raster_pages_round_trip_and_a_missing_page_is_named() {
        let pages = vec![picture(30, 9, 3), picture(30, 9, 4)];
        let f = urf_grey(&pages, 300);
        let got = decode(&f, Format::Apple).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].data, pages[1].concat());
        // Cut after the first page: the header promised two.
        let one = urf_grey(&pages[..1], 300);
        let mut cut = f[..one.len()].to_vec();
        cut[8..12].copy_from_slice(&2u32.to_be_bytes());
        let e = refused(decode(&cut, Format::Apple)).to_string();
        assert!(e.contains("announces 2 pages but ends after 1"), "{e}");
    }

    #[test]
    fn bad_headers_are_refused_with_what_is_wrong() {
        let good = pwg_grey(&[picture(8, 4, 1)], 300);
        let with = |at: usize, v: u32| {
            let mut f = good.clone();
            f[4 + at..8 + at].copy_from_slice(&v.to_be_bytes());
            f
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"RaS3xxxx".to_vec(), "sync word"),
            (with(372, 20_000), "too large"),
            (with(376, 0), "no pixels"),
            (with(276, 0), "resolution of 0 dpi"),
            (with(400, 48), "colour space 48"),
            (with(384, 4), "not a valid depth"),
            (with(392, 9), "lines are 9 bytes long"),
            (with(396, 1), "separate planes"),
            (good[..100].to_vec(), "inside the header of page 1"),
            (good[..good.len() - 3].to_vec(), "line 4 of 4"),
        ];
        for (bytes, want) in cases {
            let e = refused(decode(&bytes, Format::Pwg)).to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
        }
        let e = refused(decode(b"UNIRAST\0\0\0", Format::Apple)).to_string();
        assert!(e.contains("inside its file header"), "{e}");
    }

    /// Truncated and mutated files end in an error or in pages, never in a
    /// panic or a hang.
    #[test]
    fn damaged_files_never_panic() {
        let pwg = pwg_grey(&[picture(40, 12, 5), picture(17, 6, 6)], 150);
        let urf = urf_grey(&[picture(40, 12, 7)], 150);
        let mut s = 12345u32;
        let mut rnd = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s >> 8
        };
        for (file, format) in [(&pwg, Format::Pwg), (&urf, Format::Apple)] {
            for cut in 0..file.len() {
                // Refused, or (cut right after the signature) no pages,
                // which `convert` refuses.
                let got = decode(&file[..cut], format);
                assert!(
                    got.is_err() || got.is_ok_and(|p| p.is_empty()),
                    "cut at {cut}"
                );
            }
            for _ in 0..400 {
                let mut f = file.clone();
                for _ in 0..1 + rnd() % 4 {
                    let at = rnd() as usize % f.len();
                    f[at] = rnd() as u8;
                }
                let _ = decode_at_most(&f, format, 1_000_000);
            }
        }
    }

    #[test]
    fn a_page_is_fitted_onto_the_fax_page_as_an_image_would_be() {
        // A 300 dpi Letter page, white with a black band across a third of
        // the way down: lands at the same place on the fax page.
        let (w, h) = (2550usize, 3300usize);
        let rows: Vec<Vec<u8>> = (0..h)
            .map(|y| {
                let black = (1100..1200).contains(&y);
                vec![if black { 0 } else { 255 }; w]
            })
            .collect();
        let f = pwg_grey(&[rows], 300);
        let geom = Geometry::new(204.0, 196.0, 11.0);
        let pages = convert(
            &f,
            "band.pwg",
            Format::Pwg,
            &geom,
            10,
            100_000_000,
            &crate::documents::Watch::idle(),
        )
        .unwrap();
        assert_eq!(pages.len(), 1);
        let tiff = super::super::faxtiff::write_tiff(&pages).unwrap();
        let page = &super::super::decode_fax_tiff(&tiff).unwrap()[0];
        assert_eq!((page.width, page.height), (1728, 2156));
        let p = raster::place(&geom, 8.5, 11.0, 0.0);
        let row_black = |y: u32| (0..page.width).filter(|&x| page.get(x, y)).count();
        let band = |y: f32| (p.top + y * p.scale * 196.0) as u32;
        // Inside the band: black from edge to edge of the placed page.
        assert!(row_black(band(1150.0 / 300.0)) as u32 >= p.width - 2);
        assert_eq!(row_black(band(1090.0 / 300.0)), 0);
        assert_eq!(row_black(band(1210.0 / 300.0)), 0);
    }

    /// Fits a grey page row by row with `PageFitter`, and in one piece with
    /// the images' `draw_fitted`, both screened.
    fn both_fits(w: usize, h: usize, dpi: u32, ink: impl Fn(usize, usize) -> bool) -> [BitPage; 2] {
        let grey: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| if ink(x, y) { 0 } else { 255 })
            .collect();
        let geom = Geometry::new(204.0, 196.0, 11.0);
        let header = PageHeader {
            width: w as u32,
            height: h as u32,
            bits_per_colour: 8,
            bytes_per_line: w,
            colour: Colour::Grey,
            x_dpi: dpi,
            y_dpi: dpi,
            mirrored: false,
            upside_down: false,
        };
        let mut fitter = PageFitter::new(&geom, &header);
        for row in grey.chunks_exact(w) {
            fitter.push(row, 1);
        }
        let streamed = fitter.finish(false);
        let picture = Grey {
            width: w as u32,
            height: h as u32,
            data: grey,
        };
        let rotate = raster::should_rotate(w as f32, h as f32);
        let whole = raster::binarize(
            &raster::draw_fitted(&picture, &geom, rotate, MARGIN_IN, (dpi as f32, dpi as f32)),
            geom.x_dpi,
            geom.y_dpi,
        );
        [streamed, whole]
    }

    #[test]
    fn row_by_row_fitting_matches_the_images_whole_page_fitting() {
        // Portrait: the same passes in the same order, so the same pixels.
        let [a, b] = both_fits(850, 1100, 100, |x, y| (x / 40 + y / 30) % 3 == 0);
        assert_eq!(a, b);
        assert!(a.black_pixels() > 100_000);
        // Landscape is turned a quarter anticlockwise: its top runs up the
        // left edge. Scaling before turning rounds a few edges otherwise.
        let [a, b] = both_fits(1100, 850, 100, |_, y| y < 60);
        assert_eq!((a.width, a.height), (b.width, b.height));
        let diff = a.differing_pixels(&b).unwrap();
        assert!(
            diff * 100 < a.black_pixels(),
            "{diff} of {}",
            a.black_pixels()
        );
        let right = (0..a.height).filter(|&y| a.get(a.width - 10, y)).count();
        let left = (0..a.height).filter(|&y| a.get(10, y)).count();
        assert!(left > 2000 && right == 0, "right {right}, left {left}");
    }

    #[test]
    fn too_many_pages_are_counted_and_refused() {
        let f = pwg_grey(&[picture(8, 4, 1), picture(8, 4, 2), picture(8, 4, 3)], 72);
        let geom = Geometry::new(204.0, 98.0, 11.0);
        let e = refused(convert(
            &f,
            "long.pwg",
            Format::Pwg,
            &geom,
            2,
            100_000_000,
            &crate::documents::Watch::idle(),
        ));
        assert!(
            matches!(
                e,
                DocumentError::TooManyPages {
                    pages: 3,
                    limit: 2,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
