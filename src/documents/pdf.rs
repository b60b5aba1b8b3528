//! PDF pages to fax pages with `hayro` (pure Rust, embedded standard fonts
//! and CMaps). Each page is rendered straight at fax resolution onto the
//! fax page (anisotropic pixels, rotated when landscape, fitted and centred),
//! without anti-aliasing so text edges stay sharp, then screened and coded.
//! Pages are spread over the available cores; a renderer panic on one page
//! becomes an error naming that page.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings, render_into};

use super::faxtiff::{BitPage, EncodedPage};
use super::raster::{self, Geometry};
use super::{DocumentError, Watch};

/// Coverage (of 255) above which a pixel is painted: any part of it, the
/// scan conversion rule of ISO 32000-1 10.7.5. With a higher threshold, rules thinner than a pixel
/// (0.1 pt is 0.14 of a pixel row at standard resolution) vanished when
/// they fell between rows, and form fill-in lines with them (issue 27).
const PAINT_COVERAGE: u8 = 1;

/// Coverage above which a pixel of a glyph is painted: a quarter. Text
/// drawn by the any-part rule above printed a pixel bolder on every edge
/// (counters filled, more G4 bytes than Ghostscript's); at half, the thin
/// strokes of a serif face broke at standard resolution. A quarter draws
/// body text with Ghostscript's weight at standard resolution and a little
/// heavier at fine (hayro's threshold for glyphs is a patch of ours,
/// vendor/hayro/PATCHES.md).
const GLYPH_COVERAGE: u8 = 64;

/// The largest page side a PDF may have, in points: 200 inches, the
/// implementation limit of ISO 32000-1 Annex C.2. A page of 100,000 x
/// 100,000 pt is refused before anything is drawn (issue 18).
const MAX_PAGE_SIDE_PT: f32 = 14_400.0;

/// Refuses a PDF with a page larger than any real page (checked on the page
/// boxes only, before any drawing).
fn check_page_sizes(pdf: &Pdf, name: &str) -> Result<(), DocumentError> {
    for (i, page) in pdf.pages().iter().enumerate() {
        let (w, h) = page.render_dimensions();
        if !(w.is_finite() && h.is_finite()) || w > MAX_PAGE_SIDE_PT || h > MAX_PAGE_SIDE_PT {
            return Err(DocumentError::TooLarge {
                name: name.into(),
                detail: format!(
                    "page {} is {:.0} x {:.0} inches; a PDF page is at most {:.0} inches a side",
                    i + 1,
                    w / 72.0,
                    h / 72.0,
                    MAX_PAGE_SIDE_PT / 72.0
                ),
            });
        }
    }
    Ok(())
}

/// A PDF to open: its bytes, what the sender called it, and the password
/// given for it, if any.
pub(crate) struct Source<'a> {
    pub bytes: Arc<Vec<u8>>,
    pub name: &'a str,
    pub password: Option<&'a str>,
}

/// Opens a PDF, telling encrypted from damaged, and a missing password from
/// a wrong one.
pub(crate) fn open(source: &Source<'_>) -> Result<Pdf, DocumentError> {
    let (bytes, name) = (source.bytes.clone(), source.name);
    // An unencrypted PDF opens with any password: hayro tries it only on
    // an encrypted file.
    let password = source.password.unwrap_or("");
    match catch_unwind(AssertUnwindSafe(|| Pdf::new_with_password(bytes, password))) {
        Ok(Ok(pdf)) => Ok(pdf),
        Ok(Err(LoadPdfError::Decryption(e))) => {
            use hayro::hayro_syntax::DecryptionError as D;
            match e {
                D::PasswordProtected if source.password.is_some() => {
                    Err(DocumentError::WrongPassword { name: name.into() })
                }
                D::PasswordProtected => Err(DocumentError::Encrypted { name: name.into() }),
                D::UnsupportedAlgorithm => Err(DocumentError::Corrupt {
                    name: name.into(),
                    kind: "a PDF".into(),
                    reason: "it is encrypted with a method Faxbox cannot read; save it without a password or security settings".into(),
                }),
                D::MissingIDEntry | D::InvalidEncryption => Err(DocumentError::Corrupt {
                    name: name.into(),
                    kind: "a PDF".into(),
                    reason: "its encryption settings are damaged".into(),
                }),
            }
        }
        Ok(Err(LoadPdfError::Invalid)) => Err(DocumentError::Corrupt {
            name: name.into(),
            kind: "a PDF".into(),
            reason: "the file is damaged or not a PDF".into(),
        }),
        Err(_) => Err(DocumentError::RendererFailed {
            name: name.into(),
            page: 0,
        }),
    }
}

/// Refuses a PDF holding an image whose declared size would exhaust memory
/// when the renderer decodes it (a decompression bomb hides well in a
/// FlateDecode image stream). Reads dictionaries only, never stream data.
fn check_images(pdf: &Pdf, name: &str, max_pixels: u64) -> Result<(), DocumentError> {
    use hayro::hayro_syntax::object::{Name as PdfName, Object};
    for object in pdf.objects() {
        let Object::Stream(stream) = object else {
            continue;
        };
        let dict = stream.dict();
        if dict
            .get::<PdfName>(b"Subtype")
            .is_none_or(|n| n.as_ref() != b"Image")
        {
            continue;
        }
        let w = dict.get::<f32>(b"Width").unwrap_or(0.0).max(0.0) as u64;
        let h = dict.get::<f32>(b"Height").unwrap_or(0.0).max(0.0) as u64;
        if w.saturating_mul(h) > max_pixels {
            return Err(DocumentError::TooLarge {
                name: name.into(),
                detail: format!(
                    "an image of {w} x {h} pixels; at most {} million pixels are accepted",
                    max_pixels / 1_000_000
                ),
            });
        }
    }
    Ok(())
}

/// Renders every page of a PDF. `watch` is checked between pages (the time
/// budget) and told of each page; `threads` workers share the pages
/// round-robin.
pub(crate) fn convert(
    source: Source<'_>,
    geom: &Geometry,
    limits: (usize, u64),
    threads: usize,
    watch: &Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let (max_pages, max_pixels) = limits;
    let name = source.name;
    let pdf = open(&source)?;
    let count = pdf.pages().len();
    if count == 0 {
        return Err(DocumentError::NoPages { name: name.into() });
    }
    if count > max_pages {
        return Err(DocumentError::TooManyPages {
            name: name.into(),
            pages: count,
            limit: max_pages,
        });
    }
    check_page_sizes(&pdf, name)?;
    check_images(&pdf, name, max_pixels)?;
    let threads = threads.clamp(1, count);
    let mut results: Vec<Option<Result<EncodedPage, DocumentError>>> =
        (0..count).map(|_| None).collect();
    let worker = |t: usize, pdf: &Pdf| {
        let mut out = Vec::new();
        let mut renderer = PageRenderer::new(geom);
        let cache = RenderCache::new();
        for i in (t..count).step_by(threads) {
            if watch.cancelled() {
                break;
            }
            let page = &pdf.pages()[i];
            watch.started(i + 1);
            let r =
                catch_unwind(AssertUnwindSafe(|| renderer.render(page, &cache))).map_err(|_| {
                    DocumentError::RendererFailed {
                        name: name.into(),
                        page: i + 1,
                    }
                });
            watch.finished(i + 1);
            let failed = r.is_err();
            out.push((i, r));
            if failed {
                break;
            }
        }
        out
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let own = Source {
                    bytes: source.bytes.clone(),
                    ..source
                };
                let worker = &worker;
                std::thread::Builder::new()
                    .name("faxbox-pdf".into())
                    .spawn_scoped(s, move || match open(&own) {
                        Ok(pdf) => worker(t, &pdf),
                        Err(e) => vec![(t, Err(e))],
                    })
                    .map_err(|_| ())
            })
            .collect();
        for (i, r) in worker(0, &pdf) {
            results[i] = Some(r);
        }
        for h in handles {
            // A thread that could not start or died outside the per-page
            // guard leaves its pages missing; they are rendered below.
            if let Ok(Ok(list)) = h.map(|h| h.join()) {
                for (i, r) in list {
                    results[i] = Some(r);
                }
            }
        }
    });
    if watch.cancelled() {
        // The caller has already reported the time-out.
        return Err(DocumentError::RendererFailed {
            name: name.into(),
            page: 0,
        });
    }
    let mut pages = Vec::with_capacity(count);
    let mut renderer = None;
    let cache = RenderCache::new();
    for (i, r) in results.into_iter().enumerate() {
        let r = match r {
            Some(r) => r,
            None => {
                let renderer = renderer.get_or_insert_with(|| PageRenderer::new(geom));
                let page = &pdf.pages()[i];
                watch.started(i + 1);
                let r = catch_unwind(AssertUnwindSafe(|| renderer.render(page, &cache))).map_err(
                    |_| DocumentError::RendererFailed {
                        name: name.into(),
                        page: i + 1,
                    },
                );
                watch.finished(i + 1);
                r
            }
        };
        pages.push(r?);
    }
    Ok(pages)
}

/// Reusable buffers for rendering pages of one geometry.
struct PageRenderer {
    geom: Geometry,
    ctx: RenderContext,
    pixmap: Pixmap,
    resources: Resources,
    settings: InterpreterSettings,
    /// The 1-bit page, reused from page to page.
    bits: BitPage,
}

impl PageRenderer {
    fn new(geom: &Geometry) -> Self {
        let (w, h) = (geom.width as u16, geom.height as u16);
        PageRenderer {
            geom: *geom,
            ctx: RenderContext::new(w, h),
            pixmap: Pixmap::new(w, h),
            resources: Resources::default(),
            settings: InterpreterSettings::default(),
            bits: BitPage::new(geom.width, geom.height, geom.x_dpi, geom.y_dpi),
        }
    }

    fn render<'a>(&mut self, page: &'a Page<'a>, cache: &RenderCache<'a>) -> EncodedPage {
        let g = self.geom;
        let (w_pt, h_pt) = page.render_dimensions();
        let rotate = raster::should_rotate(w_pt, h_pt);
        let (cw, ch) = if rotate { (h_pt, w_pt) } else { (w_pt, h_pt) };
        let p = raster::place(&g, cw / 72.0, ch / 72.0, 0.0);
        let sx = f64::from(p.scale * g.x_dpi / 72.0);
        let sy = f64::from(p.scale * g.y_dpi / 72.0);
        // Page space (points, y down, from initial_transform) -> turned a
        // quarter anticlockwise when landscape (its top to the left edge,
        // `raster::should_rotate`) -> scaled -> centred.
        let turn = if rotate {
            Affine::new([0.0, -1.0, 1.0, 0.0, 0.0, f64::from(w_pt)])
        } else {
            Affine::IDENTITY
        };
        let transform = Affine::translate((f64::from(p.left), f64::from(p.top)))
            * Affine::scale_non_uniform(sx, sy)
            * turn
            * page.initial_transform(true).to_kurbo();
        self.ctx.reset_and_resize(g.width as u16, g.height as u16);
        let settings = RenderSettings {
            aliasing_threshold: Some(PAINT_COVERAGE),
            glyph_aliasing_threshold: Some(GLYPH_COVERAGE),
            ..RenderSettings::default()
        };
        render_into(
            page,
            cache,
            &self.settings,
            &settings,
            &mut self.ctx,
            transform,
        );
        self.ctx.flush();
        self.pixmap.resize(g.width as u16, g.height as u16);
        self.ctx.render_with(
            &mut self.pixmap,
            &mut self.resources,
            RasterizerSettings {
                target_init: TargetInit::Clear(WHITE),
                ..Default::default()
            },
        );
        // The scan's pixels per fax pixel, along the axis shrunk most.
        let tones = match scan_resolution(page) {
            Some(dpi) => raster::Tones::line_art(p.scale * g.x_dpi.min(g.y_dpi) / dpi),
            None => raster::Tones::Screened,
        };
        raster::binarize_rgba_into(self.pixmap.data_as_u8_slice(), &mut self.bits, tones);
        EncodedPage::encode(&self.bits)
    }
}

/// The resolution of a black-and-white scan, if the page is one: every
/// image it draws (also inside form XObjects, such as a filled-in form's
/// field appearances) is black and white (an image mask, or one bit per
/// component, as CCITT and JBIG2 scans are, or a scan saved losslessly in
/// 8 bits whose every pixel is black or white: `only_black_and_white`), and
/// those images hold at least as many pixels as the page has at 100 dpi (a
/// scan of the page, not a small logo on a page of shaded vector art). Such
/// a page has no greys of its own; the ones the renderer makes while
/// shrinking the scan to fax resolution are partly inked pixels, so it is
/// drawn as line art (`raster::Tones::line_art`).
fn scan_resolution(page: &Page<'_>) -> Option<f32> {
    let (w_pt, h_pt) = page.render_dimensions();
    let square_inches = f64::from(w_pt / 72.0) * f64::from(h_pt / 72.0);
    let mut scan_pixels = 0.0;
    // Real scans name a few XObjects per page; a thousand looks is plenty.
    let mut looks = 1_000;
    let all_black_and_white = black_and_white_images(
        page.resources().x_objects.clone(),
        0,
        &mut looks,
        &mut scan_pixels,
    );
    let dpi = (all_black_and_white && square_inches > 0.0)
        .then(|| (scan_pixels / square_inches).sqrt())?;
    (dpi >= 100.0).then_some(dpi as f32)
}

/// Adds up the pixels of the black-and-white images among `x_objects` and
/// the forms they hold, or returns false at the first image with greys or
/// colours.
/// Forms nest at most a few levels in real documents; deeper ones (or a
/// form that draws itself) count as not a scan, and so does a page naming
/// more XObjects than `looks` allows (forms that name each other many
/// times over would otherwise be walked an exponential number of times).
fn black_and_white_images(
    x_objects: hayro::hayro_syntax::object::Dict<'_>,
    depth: usize,
    looks: &mut usize,
    pixels: &mut f64,
) -> bool {
    use hayro::hayro_syntax::object::{Dict, Name as PdfName, Stream};
    use hayro::hayro_syntax::page::Resources;
    const DEEPEST_FORM: usize = 4;
    if depth > DEEPEST_FORM {
        return false;
    }
    for name in x_objects.keys() {
        if *looks == 0 {
            return false;
        }
        *looks -= 1;
        let Some(stream) = x_objects.get::<Stream<'_>>(&name) else {
            continue;
        };
        let dict = stream.dict();
        match dict.get::<PdfName>(b"Subtype") {
            Some(n) if n.as_ref() == b"Image" => {
                let one_bit = dict.get::<bool>(b"ImageMask").unwrap_or(false)
                    || dict.get::<f32>(b"BitsPerComponent") == Some(1.0);
                if !one_bit && !only_black_and_white(&stream) {
                    return false;
                }
                let w = dict.get::<f32>(b"Width").unwrap_or(0.0).max(0.0);
                let h = dict.get::<f32>(b"Height").unwrap_or(0.0).max(0.0);
                *pixels += f64::from(w) * f64::from(h);
            }
            Some(n) if n.as_ref() == b"Form" => {
                let inner = dict
                    .get::<Dict<'_>>(b"Resources")
                    .map(|r| Resources::new(r).x_objects)
                    .unwrap_or_default();
                if !black_and_white_images(inner, depth + 1, looks, pixels) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The most decoded bytes `only_black_and_white` reads: a Letter or A4
/// page scanned at 300 dpi in RGB is 25-26 MB. Larger images are taken as
/// having greys (screened, as before): the check must stay well inside a
/// render worker's address space (`worker::WORKER_MEMORY`), beside the
/// renderer's own copy of the image.
const LARGEST_CHECKED_IMAGE: f64 = 32.0 * 1024.0 * 1024.0;

/// Whether an 8-bit grey or RGB image, stored without loss, holds only
/// black and white pixels: a scanner or a PDF writer that saved a
/// black-and-white scan in 8 bits. Drawn screened, its shrinking greys
/// became screen dots around every stroke and dot of a form (more G4 bytes
/// than Ghostscript's sampling, and a fuzzier page); it is a scan like a
/// 1-bit one. A soft mask is allowed when it too is only on or off (form
/// writers put fully transparent one-pixel images on the page): black and
/// white shown or hidden over black and white stays black and white. JPEG
/// and JPEG 2000 images are never exactly black and white and are not
/// decoded here.
fn only_black_and_white(image: &hayro::hayro_syntax::object::Stream<'_>) -> bool {
    use hayro::hayro_syntax::object::Stream;
    let mask_is_on_or_off = match image.dict().get::<Stream<'_>>(b"SMask") {
        Some(mask) => black_and_white_pixels(&mask, false),
        None => true,
    };
    mask_is_on_or_off && black_and_white_pixels(image, true)
}

/// The pixel check of `only_black_and_white`, for an image or (with
/// `masked` false: a mask has no mask of its own) its soft mask.
fn black_and_white_pixels(image: &hayro::hayro_syntax::object::Stream<'_>, masked: bool) -> bool {
    use hayro::hayro_syntax::Filter;
    use hayro::hayro_syntax::object::Name as PdfName;
    let dict = image.dict();
    let channels: u8 = match dict.get::<PdfName>(b"ColorSpace") {
        Some(n) if n.as_ref() == b"DeviceGray" => 1,
        Some(n) if n.as_ref() == b"DeviceRGB" => 3,
        _ => return false,
    };
    let lossless = image.filters().iter().all(|f| {
        matches!(
            f,
            Filter::FlateDecode
                | Filter::LzwDecode
                | Filter::RunLengthDecode
                | Filter::AsciiHexDecode
                | Filter::Ascii85Decode
        )
    });
    let w = f64::from(dict.get::<f32>(b"Width").unwrap_or(0.0).max(0.0));
    let h = f64::from(dict.get::<f32>(b"Height").unwrap_or(0.0).max(0.0));
    let size = w * h * f64::from(channels);
    if dict.get::<f32>(b"BitsPerComponent") != Some(8.0)
        || (!masked && dict.contains_key(b"SMask"))
        || !lossless
        || size == 0.0
        || size > LARGEST_CHECKED_IMAGE
    {
        return false;
    }
    let Ok(data) = image.decoded_data() else {
        return false;
    };
    let pixels = &data[..data.len().min(size as usize)];
    pixels.len() == size as usize
        && pixels
            .chunks_exact(usize::from(channels))
            .all(|p| p.iter().all(|&v| v == 0) || p.iter().all(|&v| v == 255))
}

/// Whether a PDF's structure (cross-reference table, page tree, page boxes)
/// can be read as it lies in the file, without inflating anything: true
/// unless it has cross-reference streams or object streams (PDF 1.5, ISO
/// 32000-1 7.5.7 and 7.5.8, compressed and of any size once inflated) or
/// escapes in names (`/Obj#53tm` is `/ObjStm`). Intake counts the pages of
/// such a PDF in this process; any other goes to a render worker.
pub(crate) fn opens_without_inflating(bytes: &[u8]) -> bool {
    static COMPRESSED_STRUCTURE: std::sync::LazyLock<Option<regex::bytes::Regex>> =
        std::sync::LazyLock::new(|| {
            regex::bytes::Regex::new(r"/ObjStm|/XRef|#[0-9A-Fa-f]{2}").ok()
        });
    COMPRESSED_STRUCTURE
        .as_ref()
        .is_some_and(|re| !re.is_match(bytes))
}

/// The number of pages, for intake, which refuses here what drawing would
/// refuse for its page sizes.
pub(crate) fn page_count(source: Source<'_>) -> Result<usize, DocumentError> {
    let pdf = open(&source)?;
    check_page_sizes(&pdf, source.name)?;
    Ok(pdf.pages().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_structure_is_told_from_a_classic_pdf() {
        let classic = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nxref\n0 1\ntrailer";
        assert!(opens_without_inflating(classic));
        for packed in [
            &b"%PDF-1.5\n4 0 obj << /Type /ObjStm /N 2 >>"[..],
            b"%PDF-1.5\n5 0 obj << /Type/XRef /W [1 4 2] >>",
            b"%PDF-1.5\n4 0 obj << /Type /Obj#53tm >>",
        ] {
            assert!(!opens_without_inflating(packed));
        }
    }

    /// A Letter page drawing one 8-bit image of `pixels` over the whole
    /// page (1000 x 1300 pixels: about 118 dpi), stored with Flate.
    fn page_of_8_bit_image(channels: usize, pixels: &[u8]) -> Pdf {
        use pdf_writer::{Content, Filter, Finish, Name, Rect, Ref};
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(pixels).unwrap();
        let packed = z.finish().unwrap();
        let mut pdf = pdf_writer::Pdf::new();
        let (catalog, tree, page, content, img) = (
            Ref::new(1),
            Ref::new(2),
            Ref::new(3),
            Ref::new(4),
            Ref::new(5),
        );
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree).kids([page]).count(1);
        let mut p = pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
            .parent(tree)
            .contents(content);
        p.resources().x_objects().pair(Name(b"Im1"), img);
        p.finish();
        let mut c = Content::new();
        c.transform([612.0, 0.0, 0.0, 792.0, 0.0, 0.0])
            .x_object(Name(b"Im1"));
        pdf.stream(content, &c.finish());
        let mut x = pdf.image_xobject(img, &packed);
        x.width(1000)
            .height(1300)
            .bits_per_component(8)
            .filter(Filter::FlateDecode);
        if channels == 3 {
            x.color_space().device_rgb();
        } else {
            x.color_space().device_gray();
        }
        x.finish();
        Pdf::new(pdf.finish()).unwrap()
    }

    #[test]
    fn an_8_bit_scan_is_line_art_only_while_every_pixel_is_black_or_white() {
        let mut grey = vec![255u8; 1000 * 1300];
        for row in grey.chunks_mut(1000).step_by(40) {
            row[100..900].fill(0);
        }
        let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
        for (channels, pixels) in [(1, &grey), (3, &rgb)] {
            let pdf = page_of_8_bit_image(channels, pixels);
            let dpi = scan_resolution(&pdf.pages()[0]).expect("a black-and-white scan");
            assert!((dpi - 118.0).abs() < 1.0, "{dpi} dpi");
        }
        // One grey pixel, or one red one, and it is a picture: screened.
        let mut with_grey = grey.clone();
        with_grey[500_000] = 128;
        let mut with_red = rgb.clone();
        with_red[3 * 500_000] = 255;
        with_red[3 * 500_000 + 1] = 0;
        with_red[3 * 500_000 + 2] = 0;
        for (channels, pixels) in [(1, &with_grey), (3, &with_red)] {
            let pdf = page_of_8_bit_image(channels, pixels);
            assert_eq!(scan_resolution(&pdf.pages()[0]), None);
        }
    }
}
