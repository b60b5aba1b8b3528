//! Raster inputs to fax pages: photos and pictures through `image` (EXIF
//! orientation honoured, transparency laid on white), and TIFFs of any
//! layout: bi-level fax TIFFs through our own CCITT reader (kept as they are
//! when already fax-shaped), grey and colour ones through the `tiff` crate.
//! Every picture's pixel count is checked against the limit before its
//! pixels are decoded, so a decompression bomb costs nothing.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

use super::faxtiff::{self, BitPage, EncodedPage};
use super::raster::{self, Geometry, Grey};
use super::{DocumentError, Watch};

/// White space kept around pictures, in inches: photos and scans fill the
/// page up to here, and the far machine's print margins do not clip them.
const MARGIN_IN: f32 = 0.2;

fn too_large(name: &str, w: u64, h: u64, limit: u64) -> DocumentError {
    DocumentError::TooLarge {
        name: name.into(),
        detail: format!(
            "{w} x {h} pixels; at most {} million pixels are accepted",
            limit / 1_000_000
        ),
    }
}

fn corrupt(name: &str, kind: &'static str, e: impl std::fmt::Display) -> DocumentError {
    DocumentError::Corrupt {
        name: name.into(),
        kind: kind.into(),
        reason: e.to_string(),
    }
}

/// One picture (PNG, JPEG, GIF, BMP, WebP) as one fax page.
pub(crate) fn convert_image(
    bytes: &[u8],
    name: &str,
    geom: &Geometry,
    max_pixels: u64,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| corrupt(name, "an image", e))?;
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| corrupt(name, "an image", e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(corrupt(name, "an image", "it has no pixels"));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(too_large(name, w.into(), h.into(), max_pixels));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    decoder
        .set_limits(limits)
        .map_err(|e| corrupt(name, "an image", e))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| corrupt(name, "an image", e))?;
    img.apply_orientation(orientation);
    let grey = grey_over_white(&img);
    Ok(vec![fit_grey(&grey, geom, (1.0, 1.0))])
}

/// Lays an image with any alpha on white paper and takes its luminance.
fn grey_over_white(img: &DynamicImage) -> Grey {
    let data = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        rgba.pixels()
            .map(|p| {
                let l = (u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29 + 128)
                    >> 8;
                let a = u32::from(p[3]);
                ((l * a + 255 * (255 - a) + 127) / 255) as u8
            })
            .collect()
    } else {
        img.to_luma8().into_raw()
    };
    Grey {
        width: img.width(),
        height: img.height(),
        data,
    }
}

/// Fits a grey picture of the given resolution onto a fax page and codes it.
fn fit_grey(grey: &Grey, geom: &Geometry, dpi: (f32, f32)) -> EncodedPage {
    let rotate = raster::should_rotate(grey.width as f32 / dpi.0, grey.height as f32 / dpi.1);
    let page = raster::draw_fitted(grey, geom, rotate, MARGIN_IN, dpi);
    EncodedPage::encode(&raster::binarize(&page, geom.x_dpi, geom.y_dpi))
}

/// Every page of a TIFF.
pub(crate) fn convert_tiff(
    bytes: &[u8],
    name: &str,
    geom: &Geometry,
    max_pages: usize,
    max_pixels: u64,
    watch: &Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    let info = faxtiff::tiff_page_info(bytes).map_err(|e| corrupt(name, "a TIFF image", e))?;
    if info.is_empty() {
        return Err(DocumentError::NoPages { name: name.into() });
    }
    if info.len() > max_pages {
        return Err(DocumentError::TooManyPages {
            name: name.into(),
            pages: info.len(),
            limit: max_pages,
        });
    }
    for p in &info {
        if u64::from(p.width) * u64::from(p.height) > max_pixels {
            return Err(too_large(name, p.width.into(), p.height.into(), max_pixels));
        }
    }
    let bilevel = info
        .iter()
        .all(|p| p.bits_per_sample == 1 && p.samples_per_pixel == 1 && p.compression <= 4);
    if bilevel {
        let pages =
            faxtiff::decode_fax_tiff(bytes).map_err(|e| corrupt(name, "a TIFF image", e))?;
        let mut out = Vec::with_capacity(pages.len());
        for (i, page) in pages.iter().enumerate() {
            if watch.cancelled() {
                break;
            }
            watch.started(i + 1);
            out.push(fax_page(page, geom));
            watch.finished(i + 1);
        }
        return Ok(out);
    }
    decode_general_tiff(bytes, name, geom, watch)
}

/// A bi-level page: kept as it is when already a fax page (1728 wide at 204
/// dpi, standard or fine), else scaled onto one.
fn fax_page(page: &BitPage, geom: &Geometry) -> EncodedPage {
    let near = |a: f32, b: f32| (a - b).abs() < 2.0;
    let fax_shaped = page.width == geom.width
        && near(page.x_dpi, 204.0)
        && (near(page.y_dpi, 196.0) || near(page.y_dpi, 98.0) || near(page.y_dpi, 391.0));
    if fax_shaped {
        return EncodedPage::encode(page);
    }
    let mut data = vec![255u8; (page.width * page.height) as usize];
    for y in 0..page.height {
        for x in 0..page.width {
            if page.get(x, y) {
                data[(y * page.width + x) as usize] = 0;
            }
        }
    }
    let grey = Grey {
        width: page.width,
        height: page.height,
        data,
    };
    let rotate = raster::should_rotate(
        page.width as f32 / page.x_dpi,
        page.height as f32 / page.y_dpi,
    );
    let placed = raster::draw_fitted(&grey, geom, rotate, 0.0, (page.x_dpi, page.y_dpi));
    EncodedPage::encode(&raster::binarize(&placed, geom.x_dpi, geom.y_dpi))
}

/// Grey and colour TIFFs (any compression the `tiff` crate reads), page by page.
fn decode_general_tiff(
    bytes: &[u8],
    name: &str,
    geom: &Geometry,
    watch: &Watch,
) -> Result<Vec<EncodedPage>, DocumentError> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::tags::Tag;
    let bad = |e: tiff::TiffError| corrupt(name, "a TIFF image", e);
    let mut dec = Decoder::new(Cursor::new(bytes)).map_err(bad)?;
    let mut out = Vec::new();
    loop {
        if watch.cancelled() {
            break;
        }
        let subfile = dec
            .find_tag_unsigned::<u32>(Tag::NewSubfileType)
            .ok()
            .flatten()
            .unwrap_or(0);
        if subfile & 1 == 0 {
            let (w, h) = dec.dimensions().map_err(bad)?;
            let colour = dec.colortype().map_err(bad)?;
            let white_is_zero = dec
                .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
                .ok()
                .flatten()
                == Some(0);
            let unit = dec
                .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
                .ok()
                .flatten()
                .unwrap_or(2);
            let scale = if unit == 3 { 2.54 } else { 1.0 };
            let xr = dec
                .get_tag_f32(Tag::XResolution)
                .ok()
                .filter(|v| *v > 1.0)
                .map(|v| v * scale);
            let yr = dec
                .get_tag_f32(Tag::YResolution)
                .ok()
                .filter(|v| *v > 1.0)
                .map(|v| v * scale);
            let dpi = match (xr, yr) {
                (Some(x), Some(y)) => (x, y),
                (Some(x), None) | (None, Some(x)) => (x, x),
                _ => (1.0, 1.0),
            };
            watch.started(out.len() + 1);
            let image = dec.read_image().map_err(bad)?;
            let samples: Vec<u8> = match image {
                DecodingResult::U8(v) => v,
                DecodingResult::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
                _ => {
                    return Err(corrupt(
                        name,
                        "a TIFF image",
                        "its sample format is not supported",
                    ));
                }
            };
            let grey = to_grey(&samples, w, h, colour, white_is_zero).ok_or_else(|| {
                corrupt(
                    name,
                    "a TIFF image",
                    format!("its colour type {colour:?} is not supported"),
                )
            })?;
            out.push(fit_grey(&grey, geom, dpi));
            watch.finished(out.len());
        }
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(bad)?;
    }
    if out.is_empty() && !watch.cancelled() {
        return Err(DocumentError::NoPages { name: name.into() });
    }
    Ok(out)
}

fn to_grey(s: &[u8], w: u32, h: u32, colour: tiff::ColorType, white_is_zero: bool) -> Option<Grey> {
    use tiff::ColorType as C;
    let n = (w * h) as usize;
    let luma = |r: u8, g: u8, b: u8| {
        ((u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29 + 128) >> 8) as u8
    };
    let data: Vec<u8> = match colour {
        C::Gray(8 | 16) => s
            .iter()
            .take(n)
            .map(|&v| if white_is_zero { 255 - v } else { v })
            .collect(),
        C::Gray(1) => {
            let stride = w.div_ceil(8) as usize;
            let mut d = Vec::with_capacity(n);
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let bit = s
                        .get(y * stride + x / 8)
                        .is_some_and(|b| b & (0x80 >> (x % 8)) != 0);
                    d.push(if bit != white_is_zero { 255 } else { 0 });
                }
            }
            d
        }
        C::GrayA(8 | 16) => s.chunks_exact(2).take(n).map(|p| p[0]).collect(),
        C::RGB(8 | 16) => s
            .chunks_exact(3)
            .take(n)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        C::RGBA(8 | 16) => s
            .chunks_exact(4)
            .take(n)
            .map(|p| {
                let a = u32::from(p[3]);
                ((u32::from(luma(p[0], p[1], p[2])) * a + 255 * (255 - a)) / 255) as u8
            })
            .collect(),
        C::CMYK(8 | 16) => s
            .chunks_exact(4)
            .take(n)
            .map(|p| {
                let k = 255 - u32::from(p[3]);
                let ch = |c: u8| ((255 - u32::from(c)) * k / 255) as u8;
                luma(ch(p[0]), ch(p[1]), ch(p[2]))
            })
            .collect(),
        _ => return None,
    };
    (data.len() == n).then_some(Grey {
        width: w,
        height: h,
        data,
    })
}
