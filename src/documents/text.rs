//! Plain text typeset as fax pages: DejaVu Sans Mono (bundled in
//! `assets/fonts`, Bitstream Vera licence) at 10 pt, half-inch margins, long
//! lines wrapped (at a space when one is near), pages broken when full or at
//! a form feed. Glyphs are drawn at fax resolution and thresholded, never
//! screened, so text stays crisp. UTF-8, UTF-16 with a BOM, and otherwise
//! Windows-1252 text is accepted.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

use super::DocumentError;
use super::faxtiff::{BitPage, EncodedPage};
use super::raster::Geometry;

pub(crate) static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
/// The bold face, for the cover page's headings and labels (`cover`).
pub(crate) static BOLD_FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono-Bold.ttf");

const POINT_SIZE: f32 = 10.0;
const LINE_SPACING: f32 = 1.2;
const MARGIN_IN: f32 = 0.5;
const TAB: usize = 8;
/// The longest line a text document may have, in characters: about two
/// pages once wrapped. Text meant to be read on paper has far shorter lines;
/// a longer one is a data dump (a minified file, a log without newlines),
/// refused with the line's number rather than faxed as pages of wrapped
/// characters (issue 18 item 2).
pub(crate) const MAX_LINE_CHARS: usize = 10_000;

/// Coverage above which a glyph pixel is black: a little under half keeps
/// thin strokes whole at 98 lines per inch.
const INK: f32 = 0.42;

/// Turns the bytes of a text file into text: UTF-8 (with or without a BOM),
/// UTF-16 with a BOM, and anything else as Windows-1252.
fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |le: bool| {
        let units = bytes[2..].chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or('\u{FFFD}'))
            .collect::<String>()
    };
    if bytes.starts_with(&[0xFF, 0xFE]) {
        return utf16(true);
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return utf16(false);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| windows_1252(b)).collect(),
    }
}

/// Windows-1252: Latin-1 plus the printable characters Windows puts in 0x80-0x9F.
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    if (0x80..0xA0).contains(&b) {
        HIGH[usize::from(b - 0x80)]
    } else {
        char::from(b)
    }
}

/// Lays text out into pages of lines no longer than `cols` characters.
fn layout(
    text: &str,
    cols: usize,
    rows: usize,
    max_pages: usize,
    name: &str,
) -> Result<Vec<Vec<Vec<char>>>, DocumentError> {
    let mut pages: Vec<Vec<Vec<char>>> = vec![Vec::new()];
    let push_line =
        |pages: &mut Vec<Vec<Vec<char>>>, line: Vec<char>| -> Result<(), DocumentError> {
            if pages.last().is_some_and(|p| p.len() >= rows) {
                pages.push(Vec::new());
            }
            if pages.len() > max_pages {
                return Err(DocumentError::TooManyPages {
                    name: name.into(),
                    pages: pages.len(),
                    limit: max_pages,
                });
            }
            pages.last_mut().expect("one page at least").push(line);
            Ok(())
        };
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (number, raw) in text.split('\n').enumerate() {
        let chars = raw.chars().count();
        if chars > MAX_LINE_CHARS {
            return Err(DocumentError::LineTooLong {
                name: name.into(),
                line: number + 1,
                chars,
                limit: MAX_LINE_CHARS,
            });
        }
        let mut segments = raw.split('\u{0C}').peekable();
        while let Some(seg) = segments.next() {
            // Expand tabs, drop other control characters.
            let mut line: Vec<char> = Vec::new();
            for c in seg.chars() {
                match c {
                    '\t' => line.extend(std::iter::repeat_n(' ', TAB - line.len() % TAB)),
                    c if c.is_control() => {}
                    c => line.push(c),
                }
            }
            if line.is_empty() {
                push_line(&mut pages, Vec::new())?;
            }
            // Each wrapped line is copied out at its own length from one
            // walk along the source line: splitting the rest off at every
            // wrap kept a buffer the size of the rest per line, quadratic
            // memory on a long unbroken line (issue 18 item 2).
            let mut start = 0;
            while start < line.len() {
                let rest = &line[start..];
                if rest.len() <= cols {
                    push_line(&mut pages, rest.to_vec())?;
                    break;
                }
                // Break at the last space in the second half of the line.
                let cut = rest[..=cols]
                    .iter()
                    .rposition(|&c| c == ' ')
                    .filter(|&i| i > cols / 2)
                    .unwrap_or(cols);
                push_line(&mut pages, rest[..cut].to_vec())?;
                start += cut;
                while line.get(start) == Some(&' ') {
                    start += 1;
                }
            }
            if segments.peek().is_some() {
                pages.push(Vec::new());
            }
        }
    }
    // A trailing newline makes one empty last line, not a blank page.
    while pages.len() > 1 && pages.last().is_some_and(|p| p.iter().all(Vec::is_empty)) {
        pages.pop();
    }
    Ok(pages)
}

/// A rasterized glyph: offset from the pen position and its ink pixels.
struct GlyphInk {
    dx: i32,
    dy: i32,
    width: u32,
    ink: Vec<bool>,
}

/// One face of the bundled font at one size, drawn at one page's
/// resolution: the text pages and the cover page (`cover`) draw with it,
/// so both come out of the same glyph code. Glyphs are rasterized once.
pub(crate) struct Pen {
    font: FontRef<'static>,
    scale: PxScale,
    cache: HashMap<char, Option<GlyphInk>>,
}

impl Pen {
    /// `face` is `FONT` or `BOLD_FONT`; `None` only if the bundled font
    /// cannot be read.
    pub(crate) fn new(face: &'static [u8], point_size: f32, geom: &Geometry) -> Option<Pen> {
        let font = FontRef::try_from_slice(face).ok()?;
        // PxScale is the font's ascent-to-descent height in pixels; size it so
        // the em is `point_size` at each axis's resolution.
        let em_to_height = font.height_unscaled() / font.units_per_em().unwrap_or(2048.0);
        let scale = PxScale {
            x: point_size / 72.0 * geom.x_dpi * em_to_height,
            y: point_size / 72.0 * geom.y_dpi * em_to_height,
        };
        Some(Pen {
            font,
            scale,
            cache: HashMap::new(),
        })
    }

    /// How far the pen moves per character (the font is monospaced).
    pub(crate) fn advance(&self) -> f32 {
        self.font
            .as_scaled(self.scale)
            .h_advance(self.font.glyph_id('M'))
    }

    /// From the top of a line to its baseline, in pixels.
    pub(crate) fn ascent(&self) -> f32 {
        self.font.as_scaled(self.scale).ascent()
    }

    /// Draws `c` with its origin at `x` on the line whose baseline is `baseline`.
    pub(crate) fn draw(&mut self, page: &mut BitPage, c: char, x: f32, baseline: f32) {
        if c == ' ' {
            return;
        }
        let (font, scale) = (&self.font, self.scale);
        let ink = self.cache.entry(c).or_insert_with(|| {
            let glyph = font
                .glyph_id(c)
                .with_scale_and_position(scale, point(0.0, 0.0));
            font.outline_glyph(glyph).map(|o| {
                let b = o.px_bounds();
                let width = b.width() as u32;
                let mut ink = vec![false; (width * b.height() as u32) as usize];
                o.draw(|x, y, cov| {
                    if cov > INK {
                        ink[(y * width + x) as usize] = true;
                    }
                });
                GlyphInk {
                    dx: b.min.x as i32,
                    dy: b.min.y as i32,
                    width,
                    ink,
                }
            })
        });
        let Some(g) = ink else { return };
        let pen_x = x.round() as i32 + g.dx;
        let pen_y = baseline.round() as i32 + g.dy;
        for (i, _) in g.ink.iter().enumerate().filter(|(_, b)| **b) {
            let x = pen_x + (i as u32 % g.width) as i32;
            let y = pen_y + (i as u32 / g.width) as i32;
            if x >= 0 && y >= 0 && (x as u32) < page.width && (y as u32) < page.height {
                page.set(x as u32, y as u32, true);
            }
        }
    }
}

pub(crate) fn convert(
    bytes: &[u8],
    name: &str,
    geom: &Geometry,
    max_pages: usize,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let mut pen =
        Pen::new(FONT, POINT_SIZE, geom).ok_or_else(|| DocumentError::RendererFailed {
            name: name.into(),
            page: 0,
        })?;
    let advance = pen.advance();
    let line_px = POINT_SIZE * LINE_SPACING / 72.0 * geom.y_dpi;
    let left = MARGIN_IN * geom.x_dpi;
    let top = MARGIN_IN * geom.y_dpi;
    let cols = ((geom.width as f32 - 2.0 * left) / advance)
        .floor()
        .max(10.0) as usize;
    let rows = ((geom.height as f32 - 2.0 * top) / line_px)
        .floor()
        .max(5.0) as usize;
    let pages = layout(&decode(bytes), cols, rows, max_pages, name)?;

    let mut out = Vec::with_capacity(pages.len());
    for lines in &pages {
        let mut page = BitPage::new(geom.width, geom.height, geom.x_dpi, geom.y_dpi);
        for (row, line) in lines.iter().enumerate() {
            let baseline = top + row as f32 * line_px + pen.ascent();
            for (col, &c) in line.iter().enumerate() {
                pen.draw(&mut page, c, left + col as f32 * advance, baseline);
            }
        }
        out.push(EncodedPage::encode(&page));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_at_spaces_and_form_feeds_break_pages() {
        let text = format!("{}\nshort\n\u{0C}next page\n", "word ".repeat(40));
        let pages = layout(&text, 30, 50, 10, "t").unwrap();
        assert_eq!(pages.len(), 2);
        assert!(pages[0].iter().all(|l| l.len() <= 30));
        assert_eq!(
            pages[0][0].iter().collect::<String>(),
            "word word word word word word"
        );
        assert_eq!(pages[1][0].iter().collect::<String>(), "next page");
    }

    #[test]
    fn unbroken_lines_are_cut_hard_and_pages_fill_up() {
        let pages = layout(&"x".repeat(95), 30, 2, 10, "t").unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
        assert!(matches!(
            layout(&"line\n".repeat(100), 30, 2, 10, "t"),
            Err(DocumentError::TooManyPages { .. })
        ));
    }

    #[test]
    fn a_long_line_costs_memory_in_proportion_to_its_length() {
        // Issue 18 item 2: wrapping kept the rest of the line per line.
        let text = "x".repeat(MAX_LINE_CHARS);
        let pages = layout(&text, 80, 60, 500, "t").unwrap();
        let lines: Vec<&Vec<char>> = pages.iter().flatten().collect();
        assert_eq!(lines.len(), MAX_LINE_CHARS.div_ceil(80));
        let held: usize = lines.iter().map(|l| l.capacity()).sum();
        assert_eq!(held, MAX_LINE_CHARS, "each line holds only its characters");
    }

    #[test]
    fn a_400_kb_single_line_is_refused_naming_the_line() {
        let text = format!("short\n{}\n", "x".repeat(400_000));
        let e = layout(&text, 80, 60, 500, "dump.txt").unwrap_err();
        assert!(
            matches!(
                e,
                DocumentError::LineTooLong {
                    line: 2,
                    chars: 400_000,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("line 2 of 'dump.txt'"), "{e}");
    }

    #[test]
    fn tabs_expand_and_legacy_encodings_decode() {
        let pages = layout("a\tb", 80, 5, 1, "t").unwrap();
        assert_eq!(pages[0][0].iter().collect::<String>(), "a       b");
        assert_eq!(decode(b"caf\xe9 \x80"), "café €");
        assert_eq!(decode(&[0xFF, 0xFE, b'h', 0, b'i', 0]), "hi");
    }
}
