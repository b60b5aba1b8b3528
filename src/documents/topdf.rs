//! Fax TIFF to PDF, for received faxes and downloads: one PDF page per TIFF
//! page, sized from the page's resolution, each holding the page's CCITT
//! data unchanged as a `CCITTFaxDecode` image (ISO 32000-1 7.4.6). Only
//! pages stored in a way PDF cannot carry (several strips, uncompressed,
//! G3 with uncompressed mode) are decoded and coded afresh as G4.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref};

use super::DocumentError;
use super::faxtiff::{self, EncodedPage};

/// Converts a fax TIFF into a PDF. Long on purpose: each page's objects
/// are written in the order PDF takes them, the stored strip passed
/// through or re-coded as G4 with its CCITTFaxDecode parameters (ISO
/// 32000-1 7.4.6) beside the choice, read top to bottom.
pub fn tiff_to_pdf(tiff: &[u8]) -> Result<Vec<u8>, DocumentError> {
    let stored = faxtiff::stored_pages(tiff)?;
    if stored.is_empty() {
        return Err(DocumentError::bad_tiff("it contains no pages"));
    }
    // Decoded only if some page needs it.
    let mut decoded: Option<Vec<faxtiff::BitPage>> = None;
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let page_ids: Vec<Ref> = (0..stored.len())
        .map(|i| Ref::new(3 + 3 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(stored.len() as i32);
    for (i, page) in stored.iter().enumerate() {
        let (page_id, image_id, content_id) = (
            page_ids[i],
            Ref::new(4 + 3 * i as i32),
            Ref::new(5 + 3 * i as i32),
        );
        let direct = page
            .single_strip
            .filter(|_| page.compression == 4 || page.t4_options & 2 == 0);
        let reencoded;
        let (data, width, height, k, eol, align, invert): (
            std::borrow::Cow<[u8]>,
            u32,
            u32,
            i32,
            bool,
            bool,
            bool,
        ) = match direct {
            Some(strip) => {
                // PDF readers expect the first bit in the high-order bit
                // (fill order 1); reversing bits is not re-encoding.
                let data = if page.reversed_fill {
                    std::borrow::Cow::Owned(strip.iter().map(|b| b.reverse_bits()).collect())
                } else {
                    std::borrow::Cow::Borrowed(strip)
                };
                let (k, eol, align) = match page.compression {
                    4 => (-1, false, false),
                    // MH: no EOLs, every row starts on a byte.
                    2 => (0, false, true),
                    // G3: EOLs present; 2-D (K > 0) when T4Options bit 0;
                    // fill bits (bit 2) put each row on a byte.
                    _ => (
                        if page.t4_options & 1 != 0 { 2 } else { 0 },
                        true,
                        page.t4_options & 4 != 0,
                    ),
                };
                (
                    data,
                    page.width,
                    page.height,
                    k,
                    eol,
                    align,
                    page.min_is_black,
                )
            }
            None => {
                let pages = match &mut decoded {
                    Some(p) => p,
                    None => decoded.insert(faxtiff::decode_fax_tiff(tiff)?),
                };
                let bits = pages
                    .get(i)
                    .ok_or_else(|| DocumentError::bad_tiff("a page could not be read"))?;
                reencoded = EncodedPage::encode(bits);
                (
                    std::borrow::Cow::Borrowed(&reencoded.g4[..]),
                    bits.width,
                    bits.height,
                    -1,
                    false,
                    false,
                    false,
                )
            }
        };
        if width == 0 || height == 0 {
            return Err(DocumentError::bad_tiff(format!(
                "page {} has no pixels",
                i + 1
            )));
        }
        let w_pt = width as f32 / page.x_dpi * 72.0;
        let h_pt = height as f32 / page.y_dpi * 72.0;
        let mut p = pdf.page(page_id);
        p.parent(tree)
            .media_box(Rect::new(0.0, 0.0, w_pt, h_pt))
            .contents(content_id);
        p.resources().x_objects().pair(Name(b"Im0"), image_id);
        p.finish();

        let mut image = pdf.image_xobject(image_id, &data);
        image.filter(Filter::CcittFaxDecode);
        image
            .width(width as i32)
            .height(height as i32)
            .bits_per_component(1);
        image.color_space().device_gray();
        if invert {
            // Min-is-black pages: coded "black" runs are the light pixels.
            image.decode([1.0, 0.0]);
        }
        let mut parms = image.decode_parms();
        parms.k(k).columns(width as i32).rows(height as i32);
        if eol {
            parms.end_of_line(true);
        }
        if align {
            parms.encoded_byte_align(true);
        }
        parms.finish();
        image.finish();

        let mut content = Content::new();
        content
            .save_state()
            .transform([w_pt, 0.0, 0.0, h_pt, 0.0, 0.0])
            .x_object(Name(b"Im0"))
            .restore_state();
        pdf.stream(content_id, &content.finish());
    }
    Ok(pdf.finish())
}
