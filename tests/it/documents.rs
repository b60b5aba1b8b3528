//! Documents: fax TIFFs read back by libtiff's own tools and by our decoder,
//! every kind of input converted, bad input refused with a specific error.

use std::io::Cursor;
use std::process::Command;
use std::time::Duration;

use faxbox::documents::{
    BitPage, ConvertOptions, DocumentError, FaxDocument, Input, PaperSize, Resolution, convert,
    decode_fax_tiff, encode_fax_tiff, tiff_to_pdf,
};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// Whether a command-line tool is installed; prints why a check is skipped.
fn have_tool(tool: &str, for_what: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("skipped: {for_what} needs `{tool}`, which is not installed");
    }
    found
}

/// Runs a tool, insisting it succeeds without complaint; returns stdout.
fn run_clean(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    assert!(stderr.trim().is_empty(), "{cmd:?} complained: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A page that exercises the coder: text-like strokes, a blank band, an
/// all-black band, dithered noise and a pattern touching both edges.
fn test_page(width: u32, height: u32, seed: u32) -> BitPage {
    let mut p = BitPage::new(width, height, 204.0, 196.0);
    let mut s = seed;
    let mut rnd = move || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        s >> 8
    };
    for y in 0..height {
        match (y / 7) % 5 {
            0 => {}
            1 => (0..width).for_each(|x| p.set(x, y, true)),
            2 => (0..width).for_each(|x| p.set(x, y, rnd() % 2 == 0)),
            3 => (0..width).for_each(|x| p.set(x, y, (x / (1 + y % 13)) % 2 == 0)),
            _ => {
                let mut x = 0;
                let mut black = rnd() % 2 == 0;
                while x < width {
                    let run = 1 + rnd() % 90;
                    (x..(x + run).min(width)).for_each(|xx| p.set(xx, y, black));
                    x += run;
                    black = !black;
                }
            }
        }
    }
    p
}

fn three_pages() -> Vec<BitPage> {
    let mut blank_std = BitPage::new(1728, 40, 204.0, 98.0);
    blank_std.set(1727, 39, true);
    vec![test_page(1728, 120, 1), blank_std, test_page(1728, 77, 2)]
}

#[test]
fn fax_tiff_is_read_by_tiffinfo_with_class_f_tags() {
    if !have_tool("tiffinfo", "the libtiff check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.tif");
    std::fs::write(&path, encode_fax_tiff(&three_pages()).unwrap()).unwrap();
    let info = run_clean(Command::new("tiffinfo").arg(&path));
    assert_eq!(info.matches("TIFF Directory").count(), 3, "{info}");
    assert_eq!(info.matches("Image Width: 1728").count(), 3, "{info}");
    assert_eq!(
        info.matches("Compression Scheme: CCITT Group 4").count(),
        3,
        "{info}"
    );
    assert_eq!(
        info.matches("Photometric Interpretation: min-is-white")
            .count(),
        3,
        "{info}"
    );
    assert_eq!(info.matches("FillOrder: msb-to-lsb").count(), 3, "{info}");
    assert!(info.contains("Resolution: 204, 196 pixels/inch"), "{info}");
    assert!(info.contains("Resolution: 204, 98 pixels/inch"), "{info}");
    for n in 0..3 {
        assert!(info.contains(&format!("Page Number: {n}-3")), "{info}");
    }
    assert_eq!(
        info.matches("Subfile Type: multi-page document").count(),
        3,
        "{info}"
    );
}

/// libtiff decodes our G4 and re-encodes it in every CCITT flavour and fill
/// order (and uncompressed); our decoder must read each back to the very
/// pixels we started from. This pits our encoder against libtiff's decoder
/// and libtiff's encoders against our decoder.
#[test]
fn libtiff_and_our_decoder_agree_on_every_ccitt_flavour() {
    if !have_tool("tiffcp", "the libtiff cross-check") {
        return;
    }
    let pages = three_pages();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.tif");
    std::fs::write(&ours, encode_fax_tiff(&pages).unwrap()).unwrap();
    let flavours: &[&[&str]] = &[
        &["-c", "none"],
        &["-c", "none", "-f", "lsb2msb"],
        &["-c", "g4"],
        &["-c", "g4", "-r", "16"],
        &["-c", "g3"],
        &["-c", "g3:fill"],
        &["-c", "g3:2d"],
        &["-c", "g3:2d:fill", "-f", "lsb2msb"],
        &["-c", "g3:2d", "-r", "10", "-B"],
    ];
    for (i, args) in flavours.iter().enumerate() {
        let out = dir.path().join(format!("libtiff-{i}.tif"));
        run_clean(Command::new("tiffcp").args(*args).arg(&ours).arg(&out));
        let back = decode_fax_tiff(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("tiffcp {args:?}: {e}"));
        assert_eq!(back.len(), pages.len(), "tiffcp {args:?}");
        for (n, (a, b)) in back.iter().zip(&pages).enumerate() {
            assert_eq!(a.rows.len(), b.rows.len(), "tiffcp {args:?} page {n}");
            assert_eq!(
                a.differing_pixels(b),
                Some(0),
                "tiffcp {args:?} page {}",
                n + 1
            );
            assert_eq!((a.x_dpi, a.y_dpi), (b.x_dpi, b.y_dpi), "tiffcp {args:?}");
        }
    }
}

/// The G3 file SpanDSP-style receivers write (fill order 2, 2-D, MR rows)
/// made from a page with odd width: our reader decodes it exactly.
#[test]
fn odd_width_page_survives_libtiff_g3_with_reversed_fill_order() {
    if !have_tool("tiffcp", "the libtiff cross-check") {
        return;
    }
    let page = test_page(1001, 50, 9);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("odd.tif");
    let g3 = dir.path().join("odd-g3.tif");
    std::fs::write(&ours, encode_fax_tiff(std::slice::from_ref(&page)).unwrap()).unwrap();
    run_clean(
        Command::new("tiffcp")
            .args(["-c", "g3:2d", "-f", "lsb2msb"])
            .arg(&ours)
            .arg(&g3),
    );
    let back = decode_fax_tiff(&std::fs::read(&g3).unwrap()).unwrap();
    assert_eq!(back, vec![page]);
}

// ---------------------------------------------------------------------------
// Inputs the tests make.

/// What goes on one generated PDF page.
struct PdfPage {
    size: (f32, f32),
    rotate: Option<i32>,
    content: Vec<u8>,
}

/// Builds a PDF with Helvetica as /F1 and, when given, an RGB image as /Im1.
fn make_pdf(pages: &[PdfPage], image: Option<(u32, u32, Vec<u8>)>) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let (catalog, tree, font, img) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    pdf.catalog(catalog).pages(tree);
    let ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(10 + 2 * i as i32))
        .collect();
    pdf.pages(tree)
        .kids(ids.iter().copied())
        .count(pages.len() as i32);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    for (i, spec) in pages.iter().enumerate() {
        let content_id = Ref::new(11 + 2 * i as i32);
        let mut page = pdf.page(ids[i]);
        page.media_box(Rect::new(0.0, 0.0, spec.size.0, spec.size.1))
            .parent(tree)
            .contents(content_id);
        if let Some(r) = spec.rotate {
            page.rotate(r);
        }
        let mut res = page.resources();
        res.fonts().pair(Name(b"F1"), font);
        if image.is_some() {
            res.x_objects().pair(Name(b"Im1"), img);
        }
        res.finish();
        page.finish();
        pdf.stream(content_id, &spec.content);
    }
    if let Some((w, h, rgb)) = &image {
        let mut x = pdf.image_xobject(img, rgb);
        x.width(*w as i32).height(*h as i32).bits_per_component(8);
        x.color_space().device_rgb();
        x.finish();
    }
    pdf.finish()
}

fn text_content(lines: &[(f32, f32, &str)], size: f32) -> Content {
    let mut c = Content::new();
    for (x, y, t) in lines {
        c.begin_text()
            .set_font(Name(b"F1"), size)
            .next_line(*x, *y)
            .show(Str(t.as_bytes()))
            .end_text();
    }
    c
}

/// A smooth colour photo-like picture: gradients and a disc.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let disc = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt() < 0.25;
            let r = if disc { 200 } else { (fx * 255.0) as u8 };
            rgb.extend_from_slice(&[r, (fy * 200.0) as u8 + 30, 120]);
        }
    }
    rgb
}

fn doc(name: &str, bytes: Vec<u8>) -> Input {
    Input::new(name, bytes)
}

fn convert_one(name: &str, bytes: Vec<u8>) -> Result<FaxDocument, DocumentError> {
    convert(&[doc(name, bytes)], &ConvertOptions::default())
}

/// Black pixels inside a rectangle of a page.
fn black_in(p: &BitPage, x0: u32, y0: u32, x1: u32, y1: u32) -> u64 {
    let mut n = 0;
    for y in y0..y1.min(p.height) {
        for x in x0..x1.min(p.width) {
            n += u64::from(p.get(x, y));
        }
    }
    n
}

/// Checks the things every converted fax must be: 1728 wide, fine
/// resolution, Letter length, as many pages as claimed.
fn assert_fax_pages(doc: &FaxDocument, pages: usize) -> Vec<BitPage> {
    let decoded = decode_fax_tiff(&doc.tiff).expect("our TIFF decodes");
    assert_eq!(doc.pages, pages);
    assert_eq!(decoded.len(), pages);
    for p in &decoded {
        assert_eq!(
            (p.width, p.height, p.x_dpi, p.y_dpi),
            (1728, 2156, 204.0, 196.0)
        );
    }
    decoded
}

// ---------------------------------------------------------------------------
// Each kind of input.

#[test]
fn pdf_with_text_and_photo_keeps_text_solid_and_screens_the_photo() {
    let mut c = text_content(
        &[(72.0, 700.0, "Invoice 4711 - please pay by Friday")],
        24.0,
    );
    c.save_state()
        .transform([300.0, 0.0, 0.0, 225.0, 150.0, 250.0])
        .x_object(Name(b"Im1"))
        .restore_state();
    let pdf = make_pdf(
        &[PdfPage {
            size: (612.0, 792.0),
            rotate: None,
            content: c.finish().to_vec(),
        }],
        Some((160, 120, photo(160, 120))),
    );
    let fax = convert_one("invoice.pdf", pdf).unwrap();
    let page = &assert_fax_pages(&fax, 1)[0];
    // Text line: baseline at y=700pt from the bottom, 24pt type; on the fax
    // (scale 1728/1734) that is around row (792-700)*196/72 = 250.
    let text_black = black_in(page, 190, 180, 1500, 260);
    assert!(text_black > 3000, "text should be inked: {text_black}");
    // Text is crisp: inside the text band, black pixels come in runs (no
    // isolated screen dots), measured as few black pixels with both
    // horizontal neighbours white.
    let mut lonely = 0;
    for y in 180..260 {
        for x in 191..1499 {
            if page.get(x, y) && !page.get(x - 1, y) && !page.get(x + 1, y) {
                lonely += 1;
            }
        }
    }
    assert!(
        lonely * 20 < text_black,
        "text edges should not be dithered: {lonely} of {text_black}"
    );
    // The photo (x 150..450pt, y 317..542pt from the top) is screened: a
    // real mix of black and white, not solid.
    let (x0, x1) = (
        (150.0 * 204.0 / 72.0) as u32 + 10,
        (450.0 * 204.0 / 72.0) as u32 - 10,
    );
    let (y0, y1) = (
        (317.0 * 196.0 / 72.0) as u32 + 10,
        (542.0 * 196.0 / 72.0) as u32 - 10,
    );
    let area = u64::from((x1 - x0) * (y1 - y0));
    let photo_black = black_in(page, x0, y0, x1, y1);
    assert!(
        photo_black > area / 10 && photo_black < area * 9 / 10,
        "photo {photo_black} of {area}"
    );
    // Nothing outside the page content: the bottom inch is blank.
    assert_eq!(black_in(page, 0, 2156 - 196, 1728, 2156), 0);
}

#[test]
fn landscape_pdf_page_is_turned_with_its_top_to_the_left_as_ghostscript_does() {
    // A landscape page with a thick bar along its top edge and an
    // orientation mark in its bottom-left corner. Landscape is +90 degrees
    // (anticlockwise, RFC 8011 5.2.10): the top goes to the left edge and
    // the bottom-left corner to the bottom-right; a mirror image or the
    // other turn would put the mark in another corner.
    let mut c = Content::new();
    c.set_fill_gray(0.0)
        .rect(0.0, 562.0, 792.0, 50.0)
        .fill_nonzero();
    c.rect(0.0, 0.0, 100.0, 100.0).fill_nonzero();
    let pdf = make_pdf(
        &[PdfPage {
            size: (792.0, 612.0),
            rotate: None,
            content: c.finish().to_vec(),
        }],
        None,
    );
    let page = &assert_fax_pages(&convert_one("wide.pdf", pdf.clone()).unwrap(), 1)[0];
    let left = black_in(page, 0, 0, 128, 1800);
    let right = black_in(page, 1600, 0, 1728, 1800);
    assert!(left > 100_000, "bar should run up the left edge: {left}");
    assert_eq!(right, 0);
    let corner = |x: u32, y: u32| black_in(page, x, y, x + 200, y + 200);
    assert!(
        corner(1500, 1940) > 30_000,
        "mark in the bottom-right corner"
    );
    assert_eq!(corner(1500, 0), 0, "nothing in the top-right corner");
    assert_eq!(
        corner(200, 1940),
        0,
        "nothing beside the bar at the bottom left"
    );

    // Ghostscript, the reference, turns it the same way.
    if !have_tool("gs", "comparing the turn with Ghostscript's") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wide.pdf"), &pdf).unwrap();
    run_clean(
        Command::new("gs")
            .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4"])
            .args(["-r204x196", "-sPAPERSIZE=letter", "-dPDFFitPage"])
            .args(["-sOutputFile=gs.tif", "wide.pdf"])
            .current_dir(dir.path()),
    );
    let theirs = &decode_fax_tiff(&std::fs::read(dir.path().join("gs.tif")).unwrap()).unwrap()[0];
    let their_left = black_in(theirs, 0, 0, 128, 1800);
    let their_right = black_in(theirs, 1600, 0, 1728, 1800);
    assert!(
        their_left > 100_000 && their_right == 0,
        "Ghostscript: left {their_left}, right {their_right}"
    );
    assert!(black_in(theirs, 1500, 1940, 1700, 2140) > 30_000);
}

#[test]
fn page_rotate_attribute_is_honoured() {
    // A portrait page with /Rotate 270 displays as landscape, its left edge
    // at the bottom; turned to fit (top to the left), that displayed bottom
    // goes to the right edge. (If /Rotate were ignored the page would stay
    // portrait, bar on the left.)
    let mut c = Content::new();
    c.set_fill_gray(0.0)
        .rect(0.0, 0.0, 50.0, 792.0)
        .fill_nonzero();
    let pdf = make_pdf(
        &[PdfPage {
            size: (612.0, 792.0),
            rotate: Some(270),
            content: c.finish().to_vec(),
        }],
        None,
    );
    let page = &assert_fax_pages(&convert_one("rotated.pdf", pdf).unwrap(), 1)[0];
    let right = black_in(page, 1600, 0, 1728, 2156);
    let left = black_in(page, 0, 0, 128, 2156);
    assert!(right > 100_000, "{right}");
    assert_eq!(left, 0);
}

#[test]
fn colour_png_becomes_one_fitted_page() {
    let (w, h) = (600u32, 800u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        if y < 100 {
            image::Rgb([200, 0, 0])
        } else if x < 300 {
            image::Rgb([0, 0, 180])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let page = &assert_fax_pages(&convert_one("scan.png", png).unwrap(), 1)[0];
    // Portrait picture, fitted by height with 0.2 in margins: a blue left
    // half prints dark, the right half white, the red top band in between.
    let mid = 2156 / 2;
    let left = black_in(page, 500, mid, 800, mid + 100);
    let right = black_in(page, 1000, mid, 1200, mid + 100);
    assert!(
        left > 300 * 100 * 9 / 10,
        "dark blue should print nearly solid: {left}"
    );
    assert_eq!(right, 0);
    assert_eq!(black_in(page, 0, 0, 1728, 30), 0, "top margin stays white");
}

/// A JPEG whose EXIF says "turn 90 degrees anticlockwise to view": the
/// marked top row must end up on the left, as a viewer shows it.
#[test]
fn jpeg_exif_orientation_is_honoured() {
    let (w, h) = (300u32, 100u32);
    let img = image::GrayImage::from_fn(w, h, |_, y| image::Luma([if y < 15 { 0 } else { 255 }]));
    let mut jpeg = Vec::new();
    img.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    // APP1 Exif with one IFD entry: Orientation (0x0112) = 8.
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0]);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend_from_slice(&app1);
    with_exif.extend_from_slice(&jpeg[2..]);
    let page = &assert_fax_pages(&convert_one("phone.jpg", with_exif).unwrap(), 1)[0];
    let left_half = black_in(page, 0, 0, 864, 2156);
    let right_half = black_in(page, 864, 0, 1728, 2156);
    assert!(
        left_half > 10_000 && right_half < left_half / 20,
        "left {left_half} right {right_half}"
    );
}

#[test]
fn grey_lzw_tiff_at_300_dpi_converts_page_by_page() {
    use tiff::encoder::{Compression, Rational, TiffEncoder, colortype};
    use tiff::tags::ResolutionUnit;
    let (w, h) = (2550u32, 3300u32); // Letter at 300 dpi
    let mut bytes = Vec::new();
    {
        let mut enc = TiffEncoder::new(Cursor::new(&mut bytes))
            .unwrap()
            .with_compression(Compression::Lzw);
        for page in 0..2u32 {
            let data: Vec<u8> = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    if y > 300 + page * 100 && y < 360 + page * 100 && x > 300 && x < 2250 {
                        0 // a black rule
                    } else if (1500..2500).contains(&y) && (600..1900).contains(&x) {
                        128 // a grey box
                    } else {
                        255
                    }
                })
                .collect();
            let mut img = enc.new_image::<colortype::Gray8>(w, h).unwrap();
            img.resolution(ResolutionUnit::Inch, Rational { n: 300, d: 1 });
            img.write_data(&data).unwrap();
        }
    }
    let pages = assert_fax_pages(&convert_one("scan300.tif", bytes).unwrap(), 2);
    for (i, page) in pages.iter().enumerate() {
        // Letter fitted within 0.2 in margins: scale 8.07/8.5, centred, so
        // the page's top is at row 54. The rule's middle row:
        let scale = (1728.0 / 204.0 - 0.4) / 8.5;
        let rule_y = 54 + ((330 + i as u32 * 100) as f32 / 300.0 * scale * 196.0) as u32;
        let rule = black_in(page, 700, rule_y - 3, 1000, rule_y + 3);
        assert!(
            rule > 300 * 6 * 95 / 100,
            "page {i}: rule {rule} at row {rule_y}"
        );
        // The mid-grey box is screened to roughly half black.
        let box_black = black_in(page, 600, 1100, 1100, 1500);
        assert!(
            (50_000..150_000).contains(&box_black),
            "page {i}: grey box {box_black}"
        );
    }
}

/// A received fax (G3 2-D, reversed fill order, as SpanDSP may write it) is
/// already fax-shaped: its pages pass through pixel for pixel.
#[test]
fn fax_shaped_g3_tiff_passes_through_unchanged() {
    if !have_tool("tiffcp", "making a G3 TIFF") {
        return;
    }
    let pages = vec![test_page(1728, 300, 5), test_page(1728, 200, 6)];
    let dir = tempfile::tempdir().unwrap();
    let (g4, g3) = (dir.path().join("in.tif"), dir.path().join("g3.tif"));
    std::fs::write(&g4, encode_fax_tiff(&pages).unwrap()).unwrap();
    run_clean(
        Command::new("tiffcp")
            .args(["-c", "g3:2d", "-f", "lsb2msb"])
            .arg(&g4)
            .arg(&g3),
    );
    let fax = convert_one("received.tif", std::fs::read(&g3).unwrap()).unwrap();
    assert_eq!(decode_fax_tiff(&fax.tiff).unwrap(), pages);
}

#[test]
fn text_file_with_long_lines_wraps_inside_the_margins() {
    let mut text = String::new();
    text.push_str(&"This line is far too long for one fax line and has to wrap. ".repeat(10));
    text.push('\n');
    text.push_str(&"x".repeat(400));
    text.push('\n');
    for i in 0..150 {
        text.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    let fax = convert_one("notes.txt", text.into_bytes()).unwrap();
    // 10 + 5 wrapped lines and 150 more: three pages of 60 lines.
    let pages = assert_fax_pages(&fax, 3);
    for (i, p) in pages.iter().enumerate() {
        // Half-inch margins left and right (102 px) stay white.
        assert_eq!(black_in(p, 0, 0, 95, 2156), 0, "page {i} left margin");
        assert_eq!(
            black_in(p, 1728 - 95, 0, 1728, 2156),
            0,
            "page {i} right margin"
        );
        assert!(
            black_in(p, 95, 0, 1728 - 95, 2156) > 10_000,
            "page {i} has text"
        );
    }
    // The long lines reach the right side of the text area on page 1.
    assert!(black_in(&pages[0], 1500, 90, 1633, 400) > 500);
}

#[test]
fn standard_resolution_and_a4_change_the_page_geometry() {
    let opts = ConvertOptions {
        resolution: Resolution::Standard,
        paper: PaperSize::A4,
        ..ConvertOptions::default()
    };
    let fax = convert(&[doc("a.txt", b"hello".to_vec())], &opts).unwrap();
    let p = &decode_fax_tiff(&fax.tiff).unwrap()[0];
    assert_eq!(
        (p.width, p.height, p.x_dpi, p.y_dpi),
        (1728, 1146, 204.0, 98.0)
    );
}

#[test]
fn several_inputs_become_one_fax_in_order() {
    let pdf = make_pdf(
        &[
            PdfPage {
                size: (612.0, 792.0),
                rotate: None,
                content: text_content(&[(72.0, 700.0, "one")], 40.0)
                    .finish()
                    .to_vec(),
            },
            PdfPage {
                size: (612.0, 792.0),
                rotate: None,
                content: Vec::new(),
            },
        ],
        None,
    );
    let fax = convert(
        &[doc("a.pdf", pdf), doc("b.txt", b"two".to_vec())],
        &ConvertOptions::default(),
    )
    .unwrap();
    let pages = assert_fax_pages(&fax, 3);
    assert!(pages[0].black_pixels() > 0);
    assert_eq!(pages[1].black_pixels(), 0);
    assert!(pages[2].black_pixels() > 0);
}

#[test]
fn office_document_needs_libreoffice_or_converts_with_it() {
    let rtf = br"{\rtf1\ansi\deff0 {\fonttbl {\f0 Times New Roman;}}\f0\fs48 Hello from an office document.\par}".to_vec();
    let result = convert_one("letter.rtf", rtf);
    if faxbox::documents::office_available() {
        let fax = result.expect("LibreOffice converts RTF");
        assert!(
            assert_fax_pages(&fax, fax.pages)
                .iter()
                .any(|p| p.black_pixels() > 1000)
        );
    } else {
        println!("LibreOffice is not installed: checking the error instead of a conversion");
        let e = result.unwrap_err();
        assert!(matches!(e, DocumentError::NeedsLibreOffice { .. }), "{e:?}");
        assert!(
            e.to_string().contains("office documents need LibreOffice"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------
// Fax TIFF to PDF.

#[test]
fn tiff_to_pdf_embeds_the_g4_data_unchanged() {
    let pages = vec![test_page(1728, 400, 11), test_page(1728, 200, 12)];
    let tiff = encode_fax_tiff(&pages).unwrap();
    let pdf = tiff_to_pdf(&tiff).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        pdf.windows(15).filter(|w| w == b"/CCITTFaxDecode").count(),
        2
    );
    // Each page's G4 strip appears verbatim in the PDF.
    let strip = &faxbox_strip(&tiff, 0);
    assert!(
        pdf.windows(strip.len()).any(|w| w == strip.as_slice()),
        "first page's strip is copied as is"
    );
    assert_eq!(
        faxbox::documents::pdf_page_count(&pdf, "fax.pdf").unwrap(),
        2
    );
}

/// Ghostscript renders our PDF at the fax's own resolution back to exactly
/// the fax's pixels.
#[test]
fn tiff_to_pdf_renders_back_to_the_same_pixels_in_ghostscript() {
    if !have_tool("gs", "rendering the PDF") {
        return;
    }
    let mut pages = vec![test_page(1728, 300, 21), test_page(1728, 120, 22)];
    pages[1].y_dpi = 98.0;
    let pdf = tiff_to_pdf(&encode_fax_tiff(&pages).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fax.pdf"), &pdf).unwrap();
    for (i, page) in pages.iter().enumerate() {
        let out = dir.path().join(format!("p{i}.pbm"));
        run_clean(
            Command::new("gs")
                .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pbmraw"])
                .arg(format!("-r204x{}", page.y_dpi))
                .arg(format!("-dFirstPage={}", i + 1))
                .arg(format!("-dLastPage={}", i + 1))
                .arg(format!("-sOutputFile={}", out.display()))
                .arg(dir.path().join("fax.pdf")),
        );
        let back = read_pbm(&std::fs::read(&out).unwrap(), page.x_dpi, page.y_dpi);
        assert_eq!(
            (back.width, back.height),
            (page.width, page.height),
            "page {i}"
        );
        let diff = back.differing_pixels(page).unwrap();
        assert!(
            diff * 1000 < u64::from(page.width * page.height),
            "page {i}: {diff} pixels differ"
        );
    }
}

/// The strip of page `n` of a TIFF we wrote (one strip per page).
fn faxbox_strip(tiff: &[u8], n: usize) -> Vec<u8> {
    // Walk the little-endian IFD chain written by encode_fax_tiff.
    let u16_at = |o: usize| u16::from_le_bytes([tiff[o], tiff[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes([tiff[o], tiff[o + 1], tiff[o + 2], tiff[o + 3]]) as usize;
    let mut ifd = u32_at(4);
    for _ in 0..n {
        ifd = u32_at(ifd + 2 + u16_at(ifd) * 12);
    }
    let (mut off, mut len) = (0, 0);
    for e in 0..u16_at(ifd) {
        let at = ifd + 2 + e * 12;
        match u16_at(at) {
            273 => off = u32_at(at + 8),
            279 => len = u32_at(at + 8),
            _ => {}
        }
    }
    tiff[off..off + len].to_vec()
}

fn read_pbm(bytes: &[u8], x_dpi: f32, y_dpi: f32) -> BitPage {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 3 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i] == b'#' {
            while bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P4");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let mut p = BitPage::new(w, h, x_dpi, y_dpi);
    let data = &bytes[i + 1..];
    let n = p.rows.len();
    p.rows.copy_from_slice(&data[..n]);
    p.clear_padding();
    p
}

// ---------------------------------------------------------------------------
// The corpus and the CLI.

#[test]
fn every_corpus_pdf_converts_with_ghostscripts_page_count() {
    let Some(dir) = crate::harness::shared_corpus() else {
        println!("skipped: the shared PDF corpus is not beside this checkout");
        return;
    };
    let gs = have_tool("gs", "comparing page counts");
    let tiffinfo = have_tool("tiffinfo", "reading the output with libtiff");
    let scratch = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let fax = convert_one(&name, std::fs::read(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_fax_pages(&fax, fax.pages);
        if tiffinfo {
            let out = scratch.path().join("out.tif");
            std::fs::write(&out, &fax.tiff).unwrap();
            let info = run_clean(Command::new("tiffinfo").arg(&out));
            for field in [
                "Image Width: 1728",
                "Resolution: 204, 196 pixels/inch",
                "Compression Scheme: CCITT Group 4",
            ] {
                assert_eq!(info.matches(field).count(), fax.pages, "{name}: {field}");
            }
        }
        if gs {
            let out = Command::new("gs")
                .args(["-q", "-dNODISPLAY", "-dSAFER"])
                .arg(format!("--permit-file-read={}", file.display()))
                .arg("-c")
                .arg(format!(
                    "({}) (r) file runpdfbegin pdfpagecount = quit",
                    file.display()
                ))
                .output()
                .unwrap();
            let count: usize = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("gs counts {name}"));
            assert_eq!(fax.pages, count, "{name}");
        }
    }
}

#[test]
fn convert_command_makes_a_tiff_then_a_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("note.txt"), "Please call me back.\n").unwrap();
    let img = image::GrayImage::from_fn(200, 100, |x, _| image::Luma([(x % 256) as u8]));
    img.save(dir.path().join("chart.png")).unwrap();
    let tif = dir.path().join("out.tif");
    let out = crate::harness::faxbox(
        &data,
        &[
            "convert",
            dir.path().join("note.txt").to_str().unwrap(),
            dir.path().join("chart.png").to_str().unwrap(),
            "-o",
            tif.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        decode_fax_tiff(&std::fs::read(&tif).unwrap())
            .unwrap()
            .len(),
        2
    );
    let pdf = dir.path().join("out.pdf");
    let out = crate::harness::faxbox(
        &data,
        &[
            "convert",
            tif.to_str().unwrap(),
            "-o",
            pdf.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
}

#[test]
fn convert_command_failure_explains_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = dir.path().join("contract.pdf");
    std::fs::write(&bad, b"%PDF-1.4\nthis is not really a PDF at all\n").unwrap();
    let out = crate::harness::faxbox(
        &data,
        &[
            "convert",
            bad.to_str().unwrap(),
            "-o",
            dir.path().join("out.tif").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("contract.pdf"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("contract.pdf")],
        "nothing but the input remains"
    );
}

// ---------------------------------------------------------------------------
// Bad input: a specific error, quickly, and no panic.

fn expect_err(name: &str, bytes: Vec<u8>) -> DocumentError {
    match convert_one(name, bytes) {
        Ok(f) => panic!("{name}: converted to {} pages, expected an error", f.pages),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "the message names the file: {msg}");
            e
        }
    }
}

#[test]
fn corrupt_pdf_is_refused() {
    let mut bytes = b"%PDF-1.5\n".to_vec();
    let mut s = 99u32;
    bytes.extend((0..4000).map(|_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 24) as u8
    }));
    let e = expect_err("broken.pdf", bytes);
    assert!(matches!(e, DocumentError::Corrupt { .. }), "{e:?}");
}

/// A PDF with a standard security handler whose user password is not empty.
#[test]
fn encrypted_pdf_is_refused_with_the_password_message() {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".to_string(),
        format!(
            "<< /Filter /Standard /V 1 /R 2 /O <{}> /U <{}> /P -4 >>",
            "ab".repeat(32),
            "cd".repeat(32)
        ),
    ];
    let pdf = raw_pdf(
        &objects,
        "/Encrypt 4 0 R /ID [<00112233445566778899aabbccddeeff> <00112233445566778899aabbccddeeff>]",
    );
    let e = expect_err("secret.pdf", pdf);
    assert!(matches!(e, DocumentError::Encrypted { .. }), "{e:?}");
    assert!(e.to_string().contains("password-protected"), "{e}");
}

/// Issue 27: a PDF saved with a password converts when the password is
/// given, to the very pages of the same PDF saved without one; without it,
/// or with a wrong one, the error says which and what to do.
#[test]
fn an_encrypted_pdf_converts_with_its_password_to_the_same_pages() {
    let original = crate::harness::pdf_of_texts(&["Lab results for Ms Meyer", "Page two"]);
    let (Some(plain), Some(locked)) = (
        crate::harness::ghostscript_pdf(&original, None),
        crate::harness::ghostscript_pdf(&original, Some("lab-2026")),
    ) else {
        return;
    };
    assert!(
        locked.windows(8).any(|w| w == b"/Encrypt"),
        "Ghostscript wrote an encrypted PDF"
    );
    let e = expect_err("results.pdf", locked.clone());
    assert!(matches!(e, DocumentError::Encrypted { .. }), "{e:?}");
    assert!(e.to_string().contains("document_password"), "{e}");

    let with = |password: &str| {
        let mut input = doc("results.pdf", locked.clone());
        input.password = Some(password.into());
        convert(&[input], &ConvertOptions::default())
    };
    let e = with("lab-2025").unwrap_err();
    assert!(matches!(e, DocumentError::WrongPassword { .. }), "{e:?}");
    assert!(e.to_string().contains("'results.pdf'"), "{e}");

    let opened = with("lab-2026").unwrap();
    let unlocked = convert_one("results.pdf", plain).unwrap();
    let pages = assert_fax_pages(&opened, 2);
    assert_eq!(pages, assert_fax_pages(&unlocked, 2), "the same pages");
    assert!(
        black_in(&pages[0], 0, 0, 1728, 2156) > 1000,
        "text is drawn"
    );
}

#[test]
fn pdf_without_pages_is_refused() {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [] /Count 0 >>".to_string(),
    ];
    let e = expect_err("empty-pages.pdf", raw_pdf(&objects, ""));
    assert!(matches!(e, DocumentError::NoPages { .. }), "{e:?}");
}

#[test]
fn ten_thousand_page_pdf_is_refused_before_rendering() {
    let pages: Vec<PdfPage> = (0..10_000)
        .map(|_| PdfPage {
            size: (612.0, 792.0),
            rotate: None,
            content: Vec::new(),
        })
        .collect();
    let e = expect_err("huge.pdf", make_pdf(&pages, None));
    assert!(
        matches!(e, DocumentError::TooManyPages { pages: 10_000, .. }),
        "{e:?}"
    );
}

#[test]
fn decompression_bomb_png_is_refused_before_decoding() {
    // A valid PNG header claiming 60000 x 60000 pixels (3.6 gigapixels);
    // the pixel data never needs to exist.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&60_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    png.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    png.extend_from_slice(idat);
    png.extend_from_slice(&crc32(idat).to_be_bytes());
    let e = expect_err("bomb.png", png);
    assert!(matches!(e, DocumentError::TooLarge { .. }), "{e:?}");
}

#[test]
fn empty_file_is_refused() {
    assert!(matches!(
        expect_err("nothing.pdf", Vec::new()),
        DocumentError::Empty { .. }
    ));
}

#[test]
fn wrong_extension_is_refused() {
    let img = image::GrayImage::from_pixel(10, 10, image::Luma([0]));
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let e = expect_err("statement.pdf", png);
    assert!(matches!(e, DocumentError::WrongKind { .. }), "{e:?}");
    let e = expect_err("tool.exe", b"MZ\x90\0".to_vec());
    assert!(matches!(e, DocumentError::Unsupported { .. }), "{e:?}");
}

#[test]
fn exhausted_time_budget_is_a_time_out_error() {
    let pages: Vec<PdfPage> = (0..40)
        .map(|_| PdfPage {
            size: (612.0, 792.0),
            rotate: None,
            content: text_content(&[(72.0, 700.0, "page")], 30.0)
                .finish()
                .to_vec(),
        })
        .collect();
    let opts = ConvertOptions {
        time_budget: Duration::ZERO,
        ..ConvertOptions::default()
    };
    let e = convert(&[doc("slow.pdf", make_pdf(&pages, None))], &opts).unwrap_err();
    assert!(matches!(e, DocumentError::TimedOut { .. }), "{e:?}");
}

/// A PDF from raw object bodies with a correct cross-reference table.
fn raw_pdf(objects: &[String], trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A Letter page that draws one image XObject (written by `image` at the
/// reference it is given) through the matrix `placement`.
fn one_image_pdf(placement: [f32; 6], image: impl FnOnce(&mut Pdf, Ref)) -> Vec<u8> {
    let mut pdf = Pdf::new();
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
    c.save_state()
        .transform(placement)
        .x_object(Name(b"Im1"))
        .restore_state();
    pdf.stream(content, &c.finish());
    image(&mut pdf, img);
    pdf.finish()
}

/// A PDF whose one image claims 50000 x 50000 pixels: refused from the
/// image's dictionary, before the renderer would inflate it.
#[test]
fn pdf_with_a_bomb_image_is_refused_before_rendering() {
    let pdf = one_image_pdf([500.0, 0.0, 0.0, 500.0, 50.0, 50.0], |pdf, img| {
        let zeros = b"\x78\x9c\x03\x00\x00\x00\x00\x01";
        let mut x = pdf.image_xobject(img, zeros);
        x.filter(pdf_writer::Filter::FlateDecode);
        x.width(50_000).height(50_000).bits_per_component(8);
        x.color_space().device_gray();
    });
    let e = expect_err("bomb.pdf", pdf);
    assert!(matches!(e, DocumentError::TooLarge { .. }), "{e:?}");
}

/// What `convert` makes, SpanDSP sends: a converted PDF, text and picture
/// go over the loopback line (real T.30 on both sides) and every page
/// arrives exactly as converted.
#[test]
fn converted_document_crosses_the_loopback_line_intact() {
    use faxbox::config::LoopbackConfig;
    use faxbox::lines::{FaxSettings, Line, LoopbackLine, OutgoingFax, T30Code};
    let mut c = text_content(&[(72.0, 700.0, "Purchase order 12 - ship by Monday")], 22.0);
    c.save_state()
        .transform([240.0, 0.0, 0.0, 180.0, 180.0, 300.0])
        .x_object(Name(b"Im1"))
        .restore_state();
    let pdf = make_pdf(
        &[PdfPage {
            size: (595.0, 842.0),
            rotate: None,
            content: c.finish().to_vec(),
        }],
        Some((80, 60, photo(80, 60))),
    );
    let inputs = [
        doc("order.pdf", pdf),
        doc("note.txt", b"Call me back on 555 0100.\n".to_vec()),
    ];
    let fax = convert(&inputs, &ConvertOptions::default()).unwrap();
    let sent = decode_fax_tiff(&fax.tiff).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let document = dir.path().join("order.tif");
    std::fs::write(&document, &fax.tiff).unwrap();
    let config = LoopbackConfig {
        channels: 1,
        realtime: false,
        numbers: Default::default(),
    };
    let line = LoopbackLine::new("lb", config, dir.path());
    let outgoing = OutgoingFax {
        call_id: "docs-1".into(),
        to_number: "5550100".into(),
        from_number: "5550199".into(),
        document,
        settings: FaxSettings::default(),
    };
    let result = line
        .send(outgoing, Box::new(|_| {}))
        .expect("the call is placed")
        .wait();
    assert_eq!(result.outcome, Ok(()), "{result:?}");
    let t30 = result.fax.as_ref().expect("a fax session ran");
    assert_eq!(t30.code, T30Code::Ok);
    assert_eq!(t30.pages, 2);
    let got = decode_fax_tiff(&std::fs::read(line.received_file("docs-1")).unwrap()).unwrap();
    assert_eq!(got.len(), sent.len());
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(g.differing_pixels(s), Some(0), "page {}", i + 1);
    }
}

/// Black runs along a line of pixels: how many separate marks it crosses.
fn runs(pixels: impl Iterator<Item = bool>) -> usize {
    let mut count = 0;
    let mut inside = false;
    for black in pixels {
        if black && !inside {
            count += 1;
        }
        inside = black;
    }
    count
}

/// Body text keeps its weight: the same words at 10 pt and at 40 pt carry
/// ink in the ratio of their areas, 1:16, within what rounding a stroke's
/// two edges to whole pixels adds at 10 pt. Drawing glyphs by the rule
/// that keeps thin rules (any part of a pixel) added about a pixel to every
/// stroke, printed body text bold and cost G4 bytes (issue 27).
#[test]
fn body_text_is_drawn_with_its_own_weight_at_both_resolutions() {
    let words = "minimum illumination, 1996";
    let c = text_content(&[(40.0, 700.0, words), (40.0, 500.0, words)], 10.0);
    let mut big = text_content(&[], 40.0);
    big.begin_text()
        .set_font(Name(b"F1"), 40.0)
        .next_line(40.0, 300.0)
        .show(Str(words.as_bytes()))
        .end_text();
    let mut content = c.finish().to_vec();
    content.push(b'\n');
    content.extend_from_slice(&big.finish());
    let pdf = make_pdf(
        &[PdfPage {
            size: (612.0, 792.0),
            rotate: None,
            content,
        }],
        None,
    );
    for resolution in [Resolution::Standard, Resolution::Fine] {
        let opts = ConvertOptions {
            resolution,
            ..ConvertOptions::default()
        };
        let doc = convert(&[doc("text.pdf", pdf.clone())], &opts).expect("converts");
        let page = &decode_fax_tiff(&doc.tiff).expect("decodes")[0];
        // Rows by the page's own scale: 792 pt onto the page's height.
        let row = |pt: f32| (page.height as f32 * (792.0 - pt) / 792.0) as u32;
        let small = black_in(page, 0, row(715.0), page.width, row(695.0))
            + black_in(page, 0, row(515.0), page.width, row(495.0));
        let large = black_in(page, 0, row(345.0), page.width, row(280.0));
        let excess = (small * 16) as f64 / (2 * large) as f64;
        assert!(
            (0.9..1.25).contains(&excess),
            "{resolution:?}: 10 pt text carries {excess:.2} times its share of ink"
        );
    }
}

#[test]
fn rules_from_a_tenth_of_a_point_to_one_point_are_all_drawn_at_both_resolutions() {
    // Issue 27: thin rules (form fill-in lines, table borders) vanished when
    // they fell between pixel rows. Rules 0.1 to 1 pt thick, filled and
    // stroked, at spacings that put them at every phase of the pixel grid.
    let widths = [0.1f32, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0];
    let mut c = Content::new();
    c.set_fill_gray(0.0).set_stroke_gray(0.0);
    let mut horizontal = 0;
    for i in 0..60 {
        let w = widths[i % widths.len()];
        let y = 740.0 - i as f32 * 5.37;
        if i % 2 == 0 {
            c.rect(72.0, y, 468.0, w).fill_nonzero();
        } else {
            c.set_line_width(w)
                .move_to(72.0, y)
                .line_to(540.0, y)
                .stroke();
        }
        horizontal += 1;
    }
    let mut vertical = 0;
    for i in 0..60 {
        let w = widths[i % widths.len()];
        let x = 60.0 + i as f32 * 8.13;
        if i % 2 == 0 {
            c.rect(x, 40.0, w, 360.0).fill_nonzero();
        } else {
            c.set_line_width(w)
                .move_to(x, 40.0)
                .line_to(x, 400.0)
                .stroke();
        }
        vertical += 1;
    }
    let pdf = make_pdf(
        &[PdfPage {
            size: (612.0, 792.0),
            rotate: None,
            content: c.finish().to_vec(),
        }],
        None,
    );
    for resolution in [Resolution::Standard, Resolution::Fine] {
        let options = ConvertOptions {
            resolution,
            ..ConvertOptions::default()
        };
        let doc = convert(&[doc("rules.pdf", pdf.clone())], &options).unwrap();
        let page = &decode_fax_tiff(&doc.tiff).unwrap()[0];
        let (w, h) = (page.width, page.height);
        // Down three columns through the horizontal rules (top 48% of the
        // page), across three rows through the vertical ones (below 55%).
        for x in [w / 4, w / 2, 3 * w / 4] {
            let found = runs((0..h * 48 / 100).map(|y| page.get(x, y)));
            assert_eq!(
                found, horizontal,
                "{resolution:?}: horizontal rules crossed at x = {x}"
            );
        }
        for y in [h * 60 / 100, h * 70 / 100, h * 80 / 100] {
            let found = runs((0..w).map(|x| page.get(x, y)));
            assert_eq!(
                found, vertical,
                "{resolution:?}: vertical rules crossed at y = {y}"
            );
        }
    }
}

#[test]
fn a_black_and_white_scan_keeps_its_thin_rules_whole_at_both_resolutions() {
    // Issue 27: a 300 dpi black-and-white scan is shrunk to fax resolution,
    // which turns its one-pixel rules (a form's fill-in lines) into light
    // greys; screened, they came out as dashes. A page of black-and-white
    // images is line art: every rule stays unbroken, whatever its phase on
    // the grid, whether the scan is stored in 1 bit or, as some scanners and
    // PDF writers save it, in 8-bit grey or RGB with only black and white
    // pixels (issue12963.pdf's first page).
    let (w, h) = (2550u32, 3300u32); // Letter at 300 dpi
    let rules: Vec<u32> = (0..40).map(|k| 300 + k * 37).collect();
    let inked = |x: u32, y: u32| rules.contains(&y) && (300..2250).contains(&x);
    let stride = w.div_ceil(8) as usize;
    let mut one_bit = vec![0xFFu8; stride * h as usize]; // DeviceGray 1 bit: 1 is white
    let mut grey = vec![0xFFu8; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            if inked(x, y) {
                one_bit[y as usize * stride + x as usize / 8] &= !(0x80 >> (x % 8));
                grey[(y * w + x) as usize] = 0;
            }
        }
    }
    let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
    let deflate = |raw: &[u8]| {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(raw).unwrap();
        z.finish().unwrap()
    };
    let (grey, rgb) = (deflate(&grey), deflate(&rgb));
    let scans = [
        ("1-bit", &one_bit, 1, false),
        ("8-bit grey", &grey, 8, false),
        ("8-bit RGB", &rgb, 8, true),
    ];
    for (stored, bytes, bits, colour) in scans {
        let pdf = one_image_pdf([612.0, 0.0, 0.0, 792.0, 0.0, 0.0], |pdf, img| {
            let mut x = pdf.image_xobject(img, bytes);
            x.width(w as i32).height(h as i32).bits_per_component(bits);
            if bits == 8 {
                x.filter(pdf_writer::Filter::FlateDecode);
            }
            if colour {
                x.color_space().device_rgb();
            } else {
                x.color_space().device_gray();
            }
        });
        for resolution in [Resolution::Standard, Resolution::Fine] {
            let options = ConvertOptions {
                resolution,
                ..ConvertOptions::default()
            };
            let doc = convert(&[doc("scan.pdf", pdf.clone())], &options).unwrap();
            let page = &decode_fax_tiff(&doc.tiff).unwrap()[0];
            // Every column across the middle of the rules crosses all of them.
            let (from, to) = (page.width * 3 / 10, page.width * 7 / 10);
            for x in from..to {
                let found = runs((0..page.height).map(|y| page.get(x, y)));
                assert_eq!(
                    found,
                    rules.len(),
                    "{stored} scan, {resolution:?}: rules crossed at x = {x}"
                );
            }
        }
    }
}
