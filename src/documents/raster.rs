//! Grey pixels to fax pixels: the fax page geometry, fitting a picture onto
//! it (rotating landscape, keeping the aspect ratio), and turning grey into
//! 1 bit with a tone curve and a clustered-dot screen.
//!
//! Why a clustered-dot screen: error diffusion (Floyd-Steinberg) scatters
//! single pixels that G4 codes badly (a photo page grows to ~1.2 MB, eleven
//! minutes on the wire); clustered dots make runs, so pages stay near 0.4 MB,
//! and survive the far machine's printer better. Pure black and white pass
//! through the screen untouched, so text rendered without anti-aliasing
//! stays crisp.

use super::faxtiff::{BitPage, FAX_WIDTH};

/// A greyscale picture, 0 = black, 255 = white, rows top to bottom.
pub(crate) struct Grey {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// The pixel size and resolution of the fax pages being made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geometry {
    pub width: u32,
    pub height: u32,
    pub x_dpi: f32,
    pub y_dpi: f32,
}

impl Geometry {
    pub(crate) fn new(x_dpi: f32, y_dpi: f32, length_inches: f32) -> Self {
        Geometry {
            width: FAX_WIDTH,
            height: (length_inches * y_dpi).round() as u32,
            x_dpi,
            y_dpi,
        }
    }
    /// Page width and length in inches.
    pub(crate) fn inches(&self) -> (f32, f32) {
        (
            self.width as f32 / self.x_dpi,
            self.height as f32 / self.y_dpi,
        )
    }
}

/// Where content of a given physical size (inches, after any rotation)
/// lands on the page: uniform scale to fit within `margin` inches of each
/// edge, centred. Returns (scale, left px, top px, width px, height px).
pub(crate) struct Placement {
    pub scale: f32,
    pub left: f32,
    pub top: f32,
    pub width: u32,
    pub height: u32,
}

/// Whether content wider than it is tall is turned a quarter anticlockwise
/// to fit the portrait fax page: its top goes to the left edge, as RFC 8011
/// 5.2.10 defines landscape (+90 degrees) and as Ghostscript and printer
/// drivers turn it, so the reader turns the sheet clockwise to read it.
pub(crate) fn should_rotate(content_w: f32, content_h: f32) -> bool {
    content_w > content_h * 1.05
}

pub(crate) fn place(
    geom: &Geometry,
    content_w_in: f32,
    content_h_in: f32,
    margin_in: f32,
) -> Placement {
    let (page_w, page_h) = geom.inches();
    let avail_w = (page_w - 2.0 * margin_in).max(0.5);
    let avail_h = (page_h - 2.0 * margin_in).max(0.5);
    let scale = (avail_w / content_w_in.max(1e-3)).min(avail_h / content_h_in.max(1e-3));
    let w_px = (content_w_in * scale * geom.x_dpi)
        .round()
        .clamp(1.0, geom.width as f32);
    let h_px = (content_h_in * scale * geom.y_dpi)
        .round()
        .clamp(1.0, geom.height as f32);
    Placement {
        scale,
        left: ((geom.width as f32 - w_px) / 2.0).floor(),
        top: ((geom.height as f32 - h_px) / 2.0).floor(),
        width: w_px as u32,
        height: h_px as u32,
    }
}

/// Ulichney's 8x8 clustered-dot screen at 45 degrees (two dots per cell,
/// about 36 lines per inch at 204 dpi): thresholds 0..63 in growth order.
const SCREEN: [u8; 64] = [
    24, 10, 12, 26, 35, 47, 49, 37, //
    8, 0, 2, 14, 45, 59, 61, 51, //
    22, 6, 4, 16, 43, 57, 63, 53, //
    30, 20, 18, 28, 33, 41, 55, 39, //
    34, 46, 48, 36, 25, 11, 13, 27, //
    44, 58, 60, 50, 9, 1, 3, 15, //
    42, 56, 62, 52, 23, 7, 5, 17, //
    32, 40, 54, 38, 31, 21, 19, 29, //
];

/// The fax tone curve: dark colours (coloured text, dark grey) become solid
/// black and pale tints (paper shade, light backgrounds) white, so what a
/// reader needs stays solid; the screen only works on the middle.
fn tone(v: u8) -> u8 {
    const DARK: i32 = 56;
    const LIGHT: i32 = 228;
    ((i32::from(v) - DARK) * 255 / (LIGHT - DARK)).clamp(0, 255) as u8
}

/// For each of the 64 screen cells, the grey level below which a pixel
/// prints black there. The tone curve is monotonic, so "tone(v) below the
/// cell's threshold" is the same as "v below a cut", which the hot loops
/// compare without a table lookup.
fn screen_cuts() -> [u8; 64] {
    let mut cuts = [0u8; 64];
    for (cut, &s) in cuts.iter_mut().zip(SCREEN.iter()) {
        // The threshold sits mid-step so 0 is always black, 255 always white.
        let t = ((u32::from(s) * 255 + 127) / 63).clamp(1, 255);
        *cut = (0..=255u8)
            .filter(|&v| u32::from(tone(v)) < t)
            .count()
            .min(255) as u8;
    }
    cuts
}

/// How a page's greys become black and white.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tones {
    /// Photographs, tints and shaded fills: the clustered screen keeps
    /// their greys as dot sizes.
    Screened,
    /// A page that is black and white to begin with (a scan stored as a
    /// 1-bit image): a pixel at least half inked prints, as Ghostscript's
    /// sampling draws it, which keeps strokes crisp and their edges cheap to
    /// code in G4; and a thin rule whose ink falls below half in every pixel
    /// it touches (a one-pixel rule of the scan, shrunk and split over two
    /// fax rows) still prints one pixel wide where Ghostscript drops it:
    /// its darkest pixel across the rule prints from `ridge` on, when no
    /// solid pixel beside it already carries the rule. A dot smaller than
    /// a fax pixel (a dotted form line's) prints its darkest pixel, and
    /// two pixels wide when its ink spreads over two in its row, as
    /// Ghostscript draws it.
    LineArt { ridge: u8 },
}

/// Half a pixel's ink: the line-art cut for solid marks.
const HALF_INKED: u8 = 128;

/// How much lighter than the lighter of its two neighbours along a thin
/// rule a pixel of the rule's ridge may be. A rule's ink is even along it;
/// a pixel much lighter than one of its neighbours along the supposed rule
/// is on the slope of a dot (a shrunk dot of a dotted line is darkest in
/// both directions, and its lighter neighbours are each the darkest across
/// one direction): without this the dot printed as an L of three pixels,
/// Ghostscript's as one or two.
const RIDGE_SLOPE: u16 = 24;

/// A quarter of a pixel's ink: beside a one-row mark, the line-art cut.
const QUARTER_INKED: u8 = 191;

impl Tones {
    /// Line art for a scan drawn at `shrink` of its own resolution (0.65
    /// for 300 dpi drawn at 196 lpi). Shrinking averages each one-pixel
    /// rule of the scan with the paper around it: it leaves `shrink` of a
    /// fax pixel's worth of ink, split over two pixels at worst and spread
    /// a little further by the renderer's smooth filter, so the rule's
    /// darkest pixel prints from 40% of that ink on and every rule keeps at
    /// least one pixel (tested at both resolutions).
    pub(crate) fn line_art(shrink: f32) -> Tones {
        let least_ink = shrink.clamp(0.1, 1.0) * 0.4;
        Tones::LineArt {
            ridge: (255.0 * (1.0 - least_ink))
                .round()
                .max(f32::from(HALF_INKED)) as u8,
        }
    }
}

/// Screens a grey picture of the page's exact size into a fax page.
pub(crate) fn binarize(grey: &Grey, x_dpi: f32, y_dpi: f32) -> BitPage {
    let mut page = BitPage::new(grey.width, grey.height, x_dpi, y_dpi);
    let cuts = screen_cuts();
    let stride = page.stride();
    for y in 0..grey.height as usize {
        let src = &grey.data[y * grey.width as usize..(y + 1) * grey.width as usize];
        let dst = &mut page.rows[y * stride..(y + 1) * stride];
        let row_cuts = &cuts[(y % 8) * 8..(y % 8) * 8 + 8];
        for (x, &v) in src.iter().enumerate() {
            if v < row_cuts[x % 8] {
                dst[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    page
}

/// Screens an RGBA picture (opaque, as rendered over white) straight into
/// a fax page: the PDF path's hot loop. Eight pixels make one output byte;
/// a group that prints white whatever the cell (most of a page) is skipped
/// after one vectorizable minimum over its 32 bytes, and the others are
/// screened without branches.
///
/// The page must have the picture's size; it is cleared first (the PDF
/// path reuses one page buffer for every page it renders).
pub(crate) fn binarize_rgba_into(rgba: &[u8], page: &mut BitPage, tones: Tones) {
    match tones {
        Tones::Screened => screen_rgba_into(rgba, page),
        Tones::LineArt { ridge } => line_art_rgba_into(rgba, page, ridge),
    }
}

fn screen_rgba_into(rgba: &[u8], page: &mut BitPage) {
    page.rows.fill(0);
    let (width, height) = (page.width, page.height);
    let cuts = screen_cuts();
    let white_from = cuts.iter().copied().max().unwrap_or(255);
    let stride = page.stride();
    let w = width as usize;
    for y in 0..height as usize {
        let src = &rgba[y * w * 4..(y + 1) * w * 4];
        let dst = &mut page.rows[y * stride..(y + 1) * stride];
        let row_cuts: &[u8; 8] = cuts[(y % 8) * 8..(y % 8) * 8 + 8]
            .try_into()
            .expect("8 cuts");
        for (bx, group) in src.chunks(32).enumerate() {
            // Luma is a weighted mean, never below the smallest channel: a
            // group whose every byte is at or above the highest cut prints
            // white in any cell (this also skips off-white paper tints).
            if group.iter().fold(255u8, |a, &b| a.min(b)) >= white_from {
                continue;
            }
            let mut byte = 0u8;
            for (k, p) in group.chunks_exact(4).enumerate() {
                byte |= u8::from(luma(p) < row_cuts[k]) << (7 - k);
            }
            dst[bx] = byte;
        }
    }
}

fn luma(p: &[u8]) -> u8 {
    ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29 + 128) >> 8) as u8
}

/// `Tones::LineArt`: solid marks from half ink, thin rules by their
/// darkest pixel, one-row dots two wide from a quarter ink. Works on three
/// rows of luma at a time; outside the page is paper.
fn line_art_rgba_into(rgba: &[u8], page: &mut BitPage, ridge: u8) {
    page.rows.fill(0);
    let (w, h) = (page.width as usize, page.height as usize);
    let stride = page.stride();
    let luma_row = |y: usize, row: &mut Vec<u8>| {
        row.clear();
        if y < h {
            row.extend(rgba[y * w * 4..(y + 1) * w * 4].chunks_exact(4).map(luma));
        } else {
            row.resize(w, 255);
        }
    };
    let (mut above, mut here, mut below) = (vec![255u8; w], Vec::new(), Vec::new());
    luma_row(0, &mut here);
    for y in 0..h {
        luma_row(y + 1, &mut below);
        let dst = &mut page.rows[y * stride..(y + 1) * stride];
        for (x, &v) in here.iter().enumerate() {
            if v >= ridge {
                continue;
            }
            let left = if x > 0 { here[x - 1] } else { 255 };
            let right = here.get(x + 1).copied().unwrap_or(255);
            let (up, down) = (above[x], below[x]);
            let solid = v < HALF_INKED;
            // A light pixel beside a solid one is the edge of a stroke,
            // which the solid pixels draw. Otherwise it is part of a thin
            // rule when it is the darkest across the rule (of two equal
            // pixels, the first one prints, so the rule stays one pixel)
            // and about as dark as its neighbours along it.
            let even_along = |a: u8, b: u8| u16::from(v) <= u16::from(a.min(b)) + RIDGE_SLOPE;
            let thin_rule = || {
                [up, down, left, right].iter().all(|&n| n >= HALF_INKED)
                    && ((v < up && v <= down && even_along(left, right))
                        || (v < left && v <= right && even_along(up, down)))
            };
            // The exception to clean edges: a solid pixel of a one-row
            // mark (a dot of a dotted form line, shrunk from the scan)
            // takes its neighbour in the row from a quarter ink on. Such a
            // dot then prints two pixels wide where its ink spreads over
            // two, as Ghostscript draws it, rather than one; and G4 codes a
            // black run of two in fewer bits than a run of one (T.4 table
            // 3), so the page is smaller too. Strokes (solid above or
            // below) keep their clean edges.
            let one_row_mark =
                |n: usize| here[n] < HALF_INKED && above[n] >= HALF_INKED && below[n] >= HALF_INKED;
            let beside_a_dot = || {
                v < QUARTER_INKED
                    && ((x > 0 && one_row_mark(x - 1)) || (x + 1 < w && one_row_mark(x + 1)))
            };
            if solid || thin_rule() || beside_a_dot() {
                dst[x / 8] |= 0x80 >> (x % 8);
            }
        }
        std::mem::swap(&mut above, &mut here);
        std::mem::swap(&mut here, &mut below);
    }
}

/// Resamples a grey picture to `w` x `h` by box averaging when shrinking and
/// bilinear interpolation when enlarging (separably), then draws it onto a
/// white fax page at `(left, top)`, rotated a quarter turn first when asked.
pub(crate) fn draw_fitted(
    src: &Grey,
    geom: &Geometry,
    rotate: bool,
    margin_in: f32,
    src_dpi: (f32, f32),
) -> Grey {
    let rotated;
    let (src, dpi) = if rotate {
        rotated = rotate_quarter(src);
        (&rotated, (src_dpi.1, src_dpi.0))
    } else {
        (src, src_dpi)
    };
    let content_w = src.width as f32 / dpi.0;
    let content_h = src.height as f32 / dpi.1;
    let p = place(geom, content_w, content_h, margin_in);
    let scaled = resample(src, p.width, p.height);
    let mut page = Grey {
        width: geom.width,
        height: geom.height,
        data: vec![255; (geom.width * geom.height) as usize],
    };
    for y in 0..scaled.height {
        let ty = y + p.top as u32;
        if ty >= page.height {
            break;
        }
        let from = &scaled.data[(y * scaled.width) as usize..((y + 1) * scaled.width) as usize];
        let at = (ty * page.width + p.left as u32) as usize;
        let n = from.len().min(page.width as usize - p.left as usize);
        page.data[at..at + n].copy_from_slice(&from[..n]);
    }
    page
}

/// Turns a picture a quarter anticlockwise (landscape, see
/// `should_rotate`): its top becomes the left edge.
pub(crate) fn rotate_quarter(src: &Grey) -> Grey {
    let (w, h) = (src.width as usize, src.height as usize);
    let mut data = vec![0u8; w * h];
    // New picture is h wide and w tall; new (x', y') = (y, w - 1 - x).
    for y in 0..h {
        for x in 0..w {
            data[(w - 1 - x) * h + y] = src.data[y * w + x];
        }
    }
    Grey {
        width: h as u32,
        height: w as u32,
        data,
    }
}

fn resample(src: &Grey, w: u32, h: u32) -> Grey {
    let horiz = resample_axis(
        &src.data,
        src.width as usize,
        src.height as usize,
        w as usize,
        true,
    );
    let data = resample_axis(&horiz, w as usize, src.height as usize, h as usize, false);
    Grey {
        width: w,
        height: h,
        data,
    }
}

/// Resamples along one axis (rows when `along_x`, else columns) from `n`
/// samples to `m`: area-average when shrinking, linear when enlarging.
pub(crate) fn resample_axis(
    data: &[u8],
    width: usize,
    height: usize,
    m: usize,
    along_x: bool,
) -> Vec<u8> {
    let (n, lines) = if along_x {
        (width, height)
    } else {
        (height, width)
    };
    let (out_w, out_h) = if along_x { (m, height) } else { (width, m) };
    let mut out = vec![255u8; out_w * out_h];
    let at = |line: usize, i: usize| {
        if along_x {
            line * width + i
        } else {
            i * width + line
        }
    };
    let put = |line: usize, j: usize| {
        if along_x {
            line * out_w + j
        } else {
            j * out_w + line
        }
    };
    // Precompute, for each output sample, its source span and weights.
    let ratio = n as f64 / m as f64;
    if ratio >= 1.0 {
        let spans: Vec<(usize, usize, f64, f64)> = (0..m)
            .map(|j| {
                let a = j as f64 * ratio;
                let b = ((j + 1) as f64 * ratio).min(n as f64);
                (a.floor() as usize, (b.ceil() as usize).min(n), a, b)
            })
            .collect();
        for line in 0..lines {
            for (j, &(i0, i1, a, b)) in spans.iter().enumerate() {
                let mut sum = 0.0;
                for i in i0..i1 {
                    let lo = (i as f64).max(a);
                    let hi = ((i + 1) as f64).min(b);
                    sum += f64::from(data[at(line, i)]) * (hi - lo);
                }
                out[put(line, j)] = (sum / (b - a)).round().clamp(0.0, 255.0) as u8;
            }
        }
    } else {
        for line in 0..lines {
            for j in 0..m {
                let x = ((j as f64 + 0.5) * ratio - 0.5).clamp(0.0, (n - 1) as f64);
                let i = x.floor() as usize;
                let f = x - i as f64;
                let a = f64::from(data[at(line, i)]);
                let b = f64::from(data[at(line, (i + 1).min(n - 1))]);
                out[put(line, j)] = (a + (b - a) * f).round() as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_and_white_pass_the_screen_untouched() {
        let g = Grey {
            width: 16,
            height: 16,
            data: (0..256).map(|i| if i % 3 == 0 { 0 } else { 255 }).collect(),
        };
        let p = binarize(&g, 204.0, 196.0);
        for y in 0..16 {
            for x in 0..16 {
                assert_eq!(p.get(x, y), (y * 16 + x) % 3 == 0);
            }
        }
    }

    #[test]
    fn mid_grey_prints_about_half_black_in_clusters() {
        let g = Grey {
            width: 64,
            height: 64,
            data: vec![142; 64 * 64],
        };
        let p = binarize(&g, 204.0, 196.0);
        let black = p.black_pixels() as f64 / (64.0 * 64.0);
        assert!((0.4..0.6).contains(&black), "{black}");
        // Clustered: most black pixels have a black right or lower neighbour.
        let mut joined = 0;
        for y in 0..63 {
            for x in 0..63 {
                if p.get(x, y) && (p.get(x + 1, y) || p.get(x, y + 1)) {
                    joined += 1;
                }
            }
        }
        assert!(joined as f64 > 0.8 * p.black_pixels() as f64);
    }

    /// The fast RGBA path prints exactly what the grey path prints.
    #[test]
    fn rgba_and_grey_paths_agree() {
        let (w, h) = (37u32, 19u32);
        let grey: Vec<u8> = (0..w * h).map(|i| ((i * 37) % 256) as u8).collect();
        let rgba: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v, 255]).collect();
        let a = binarize(
            &Grey {
                width: w,
                height: h,
                data: grey,
            },
            204.0,
            196.0,
        );
        let mut b = BitPage::new(w, h, 204.0, 196.0);
        b.rows.fill(0xAA); // stale content must not survive
        binarize_rgba_into(&rgba, &mut b, Tones::Screened);
        assert_eq!(a, b);
    }

    /// A light grey rule (a thin line of a scan, averaged with the paper
    /// around it) prints as an unbroken line in line art, where the screen
    /// breaks it into dots; paler greys (the scan's paper) stay white.
    #[test]
    fn line_art_keeps_a_light_rule_whole() {
        let (w, h) = (64u32, 3u32);
        let mut grey = vec![255u8; (w * h) as usize];
        grey[w as usize..2 * w as usize].fill(150);
        grey[2 * w as usize..].fill(200);
        let rgba: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v, 255]).collect();
        let mut art = BitPage::new(w, h, 204.0, 196.0);
        binarize_rgba_into(&rgba, &mut art, Tones::line_art(0.68));
        assert!((0..w).all(|x| art.get(x, 1)), "the rule is whole");
        assert!((0..w).all(|x| !art.get(x, 0) && !art.get(x, 2)));
        let mut screened = BitPage::new(w, h, 204.0, 196.0);
        binarize_rgba_into(&rgba, &mut screened, Tones::Screened);
        assert!((0..w).any(|x| !screened.get(x, 1)), "the screen breaks it");
    }

    /// A one-pixel rule of a scan split evenly over two fax rows prints one
    /// row, not two; the light edge of a solid stroke stays white (the
    /// stroke is drawn by its solid pixels), as it does in Ghostscript.
    #[test]
    fn line_art_draws_a_split_rule_once_and_leaves_stroke_edges_clean() {
        let (w, h) = (32u32, 8u32);
        let mut grey = vec![255u8; (w * h) as usize];
        let row = |y: u32| (y * w) as usize..((y + 1) * w) as usize;
        grey[row(1)].fill(170);
        grey[row(2)].fill(170);
        grey[row(5)].fill(180);
        grey[row(6)].fill(0);
        let rgba: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v, 255]).collect();
        let mut art = BitPage::new(w, h, 204.0, 196.0);
        binarize_rgba_into(&rgba, &mut art, Tones::line_art(0.68));
        // The rule's two ends may print on both rows: there the other row's
        // pixel is also the darkest along the rule, a one-pixel cap.
        let inside = 1..w - 1;
        let printed = |y: u32| inside.clone().filter(|&x| art.get(x, y)).count();
        let n = inside.len();
        assert_eq!(printed(1) + printed(2), n, "the split rule prints once");
        assert!(printed(1) == n || printed(2) == n, "on one row");
        assert_eq!(printed(5), 0, "the stroke's light edge");
        assert_eq!(printed(6), n, "the stroke");
    }

    /// A shrunk dot of a dotted line, its ink spread over a few pixels:
    /// when one pixel is solid and its neighbour in the row a third inked,
    /// both print (Ghostscript's two-pixel dot); a faint dot prints its
    /// darkest pixel only, not the L of pixels that are each the darkest
    /// across one direction. A stroke's side edge stays white.
    #[test]
    fn line_art_draws_dots_as_ghostscript_does_and_keeps_stroke_edges() {
        let (w, h) = (40u32, 9u32);
        let mut grey = vec![255u8; (w * h) as usize];
        let mut ink = |x: u32, y: u32, v: u8| grey[(y * w + x) as usize] = v;
        // A dot: solid, a third inked to its right, a little below.
        ink(5, 2, 60);
        ink(6, 2, 170);
        ink(5, 3, 225);
        // A faint dot: nothing solid, a ridge either way around (10, 2).
        ink(10, 2, 150);
        ink(11, 2, 175);
        ink(10, 3, 175);
        ink(11, 3, 200);
        // A vertical stroke three rows tall with a third-inked right edge.
        for y in 5..8 {
            ink(20, y, 0);
            ink(21, y, 170);
        }
        let rgba: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v, 255]).collect();
        let mut art = BitPage::new(w, h, 204.0, 196.0);
        binarize_rgba_into(&rgba, &mut art, Tones::line_art(0.68));
        let printed: Vec<(u32, u32)> = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| art.get(x, y))
            .collect();
        assert_eq!(
            printed,
            [(5, 2), (6, 2), (10, 2), (20, 5), (20, 6), (20, 7)],
            "the dot two wide, the faint dot one pixel, the stroke's edge white"
        );
    }

    #[test]
    fn placement_fits_and_centres() {
        let g = Geometry::new(204.0, 196.0, 11.0);
        assert_eq!((g.width, g.height), (1728, 2156));
        let p = place(&g, 8.5, 11.0, 0.0);
        assert_eq!(p.width, 1728);
        assert!(p.height <= 2156 && p.height > 2140);
        let p = place(&g, 4.0, 4.0, 0.25);
        assert_eq!(p.width, ((8.4706 - 0.5) * 204.0f32).round() as u32);
    }

    #[test]
    fn rotation_puts_the_top_on_the_left() {
        let g = Grey {
            width: 3,
            height: 2,
            data: vec![0, 1, 2, 3, 4, 5],
        };
        let r = rotate_quarter(&g);
        assert_eq!((r.width, r.height), (2, 3));
        // Top row (0,1,2) now runs up the left column.
        assert_eq!(r.data, vec![2, 5, 1, 4, 0, 3]);
    }
}
