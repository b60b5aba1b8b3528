//! Printer rasters (PWG Raster and Apple URF) as CUPS's own filters make
//! them from a PDF: faxed page for page, with the ink where the PDF has it.
//! CUPS (`cupsfilter`, package `cups` with `cups-filters`) and Ghostscript's
//! CUPS raster devices are test prerequisites (`make test-deps`).

use std::path::{Path, PathBuf};
use std::process::Command;

use faxbox::documents::{
    BitPage, ConvertOptions, DocumentError, Input, Resolution, convert, decode_fax_tiff,
};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// Where the black boxes of the test PDF are, in points from the bottom
/// left of a Letter page: (x, y, width, height), one per page.
const BOXES: [(f32, f32, f32, f32); 2] =
    [(72.0, 430.0, 200.0, 200.0), (340.0, 100.0, 200.0, 150.0)];

/// A two-page Letter PDF: a line of Helvetica and a solid black box on each
/// page, in different places.
pub fn two_page_pdf() -> Vec<u8> {
    let mut pdf = Pdf::new();
    let (catalog, tree, font) = (Ref::new(1), Ref::new(2), Ref::new(3));
    pdf.catalog(catalog).pages(tree);
    let ids = [Ref::new(10), Ref::new(12)];
    pdf.pages(tree).kids(ids).count(2);
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let texts = ["Page one, printed to fax", "Page two, printed to fax"];
    for (i, id) in ids.iter().enumerate() {
        let content_id = Ref::new(11 + 2 * i as i32);
        let mut page = pdf.page(*id);
        page.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
            .parent(tree)
            .contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), font);
        page.finish();
        let (x, y, w, h) = BOXES[i];
        let mut c = Content::new();
        c.begin_text()
            .set_font(Name(b"F1"), 28.0)
            .next_line(72.0, 700.0 - 300.0 * i as f32)
            .show(Str(texts[i].as_bytes()))
            .end_text();
        c.rect(x, y, w, h).fill_nonzero();
        pdf.stream(content_id, &c.finish());
    }
    pdf.finish()
}

/// A tool the tests need: `make test-deps` installs it, so it missing is a
/// failure that says what to install, not a skip.
fn tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("`{name}` is not installed; install the Debian package {package} (make test-deps)");
}

/// The PDF printed by CUPS's own filter chain to PWG Raster
/// (`cupsfilter -m image/pwg-raster`: pdftopdf, gstoraster, rastertopwg),
/// with extra `-o` options.
pub fn cups_pwg_raster(pdf: &[u8], options: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("letter.pdf");
    std::fs::write(&file, pdf).unwrap();
    let mut cmd = Command::new(tool("cupsfilter", "cups"));
    cmd.args(["-m", "image/pwg-raster"]);
    for o in options {
        cmd.args(["-o", o]);
    }
    let out = cmd.arg(&file).output().expect("cupsfilter runs");
    assert!(
        out.status.success() && out.stdout.starts_with(b"RaS2"),
        "cupsfilter failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The PDF rendered at 300 dpi by one of Ghostscript's CUPS raster devices
/// (`pwgraster`, `appleraster`), which write through CUPS's raster library,
/// the same code as CUPS's own PWG and URF output.
fn ghostscript_raster(
    pdf: &[u8],
    device: &str,
    colour_space: u32,
    bits_per_colour: u32,
) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("letter.pdf");
    let out = dir.path().join("letter.raster");
    std::fs::write(&file, pdf).unwrap();
    let status = Command::new(tool("gs", "ghostscript"))
        .args(["-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-r300"])
        .arg(format!("-sDEVICE={device}"))
        .arg(format!("-dcupsColorSpace={colour_space}"))
        .arg(format!("-dcupsBitsPerColor={bits_per_colour}"))
        .arg(format!("-sOutputFile={}", out.display()))
        .arg(&file)
        .output()
        .expect("gs runs");
    assert!(
        status.status.success(),
        "gs failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read(&out).unwrap()
}

fn fax_pages(
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
    options: &ConvertOptions,
) -> Vec<BitPage> {
    let input = Input {
        bytes,
        name: name.into(),
        content_type: Some(content_type.into()),
        password: None,
    };
    let fax = convert(&[input], options).unwrap_or_else(|e| panic!("{name}: {e}"));
    let pages = decode_fax_tiff(&fax.tiff).unwrap();
    assert_eq!(fax.pages, pages.len());
    pages
}

/// Black pixels of `a` that are also black in `b` within one pixel (the
/// two renderers may round an edge differently), as a share of `a`'s.
fn share_found(a: &BitPage, b: &BitPage) -> f64 {
    let (mut black, mut found) = (0u64, 0u64);
    for y in 0..a.height {
        for x in 0..a.width {
            if !a.get(x, y) {
                continue;
            }
            black += 1;
            let near = (y.saturating_sub(1)..=(y + 1).min(b.height - 1))
                .any(|yy| (x.saturating_sub(1)..=(x + 1).min(b.width - 1)).any(|xx| b.get(xx, yy)));
            found += u64::from(near);
        }
    }
    found as f64 / black.max(1) as f64
}

/// Checks a printed fax against the same PDF faxed directly: same page
/// count and size, the black box solid where the PDF puts it, and nearly
/// every black pixel of each matched in the other.
fn assert_like_the_pdf(printed: &[BitPage], direct: &[BitPage], what: &str) {
    assert_eq!(printed.len(), 2, "{what}: pages");
    assert_eq!(direct.len(), 2);
    for (i, (p, d)) in printed.iter().zip(direct).enumerate() {
        assert_eq!(
            (p.width, p.height, p.x_dpi, p.y_dpi),
            (d.width, d.height, d.x_dpi, d.y_dpi),
            "{what}: page {} size",
            i + 1
        );
        // The box's middle, well inside its edges, is solid in both.
        let (x, y, w, h) = BOXES[i];
        let (sx, sy) = (p.x_dpi / 72.0, p.y_dpi / 72.0);
        let (x0, x1) = (((x + w * 0.1) * sx) as u32, ((x + w * 0.9) * sx) as u32);
        let (y0, y1) = (
            ((792.0 - y - h * 0.9) * sy) as u32,
            ((792.0 - y - h * 0.1) * sy) as u32,
        );
        for page in [p, d] {
            let solid = (y0..y1).all(|yy| (x0..x1).all(|xx| page.get(xx, yy)));
            assert!(solid, "{what}: page {} box at {x0},{y0}-{x1},{y1}", i + 1);
        }
        let ratio = p.black_pixels() as f64 / d.black_pixels() as f64;
        assert!(
            (0.97..1.03).contains(&ratio),
            "{what}: page {} ink ratio {ratio}",
            i + 1
        );
        let (a, b) = (share_found(p, d), share_found(d, p));
        println!(
            "{what}: page {}: ink ratio {ratio:.3}, matched {a:.4} / {b:.4}",
            i + 1
        );
        assert!(
            a > 0.99 && b > 0.99,
            "{what}: page {} agreement {a} {b}",
            i + 1
        );
    }
}

#[test]
fn pwg_raster_from_cupsfilter_faxes_like_the_pdf_it_was_printed_from() {
    let pdf = two_page_pdf();
    let options = ConvertOptions::default();
    let direct = fax_pages("letter.pdf", "application/pdf", pdf.clone(), &options);
    // CUPS's default: 600 dpi sRGB, 8 bits a colour.
    let colour = cups_pwg_raster(&pdf, &[]);
    let printed = fax_pages("job", "image/pwg-raster", colour, &options);
    assert_like_the_pdf(&printed, &direct, "sRGB");
    // Monochrome printing: 8-bit sGray.
    let grey = cups_pwg_raster(&pdf, &["print-color-mode=monochrome"]);
    assert_eq!(&grey[4 + 400..4 + 404], &18u32.to_be_bytes(), "sGray");
    let printed = fax_pages(
        "job.pwg",
        "application/octet-stream",
        grey.clone(),
        &options,
    );
    assert_like_the_pdf(&printed, &direct, "sGray");

    // At standard resolution the pages are half as tall, still two.
    let standard = ConvertOptions {
        resolution: Resolution::Standard,
        ..ConvertOptions::default()
    };
    let pages = fax_pages("job", "image/pwg-raster", grey.clone(), &standard);
    assert_eq!(pages.len(), 2);
    for p in &pages {
        assert_eq!((p.width, p.height, p.y_dpi), (1728, 1078, 98.0));
    }

    // Cut off in the middle of page 2: refused, naming where.
    let cut = grey[..grey.len() * 3 / 4].to_vec();
    let e = convert(
        &[Input {
            bytes: cut,
            name: "job".into(),
            content_type: Some("image/pwg-raster".into()),
            password: None,
        }],
        &options,
    )
    .expect_err("a cut-off raster is refused");
    assert!(matches!(e, DocumentError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("in the middle of page 2"), "{e}");
}

#[test]
fn apple_raster_from_cups_raster_library_faxes_like_the_pdf() {
    let pdf = two_page_pdf();
    let options = ConvertOptions::default();
    let direct = fax_pages("letter.pdf", "application/pdf", pdf.clone(), &options);
    // 8-bit sGray (URF "W8") and 24-bit sRGB ("SRGB24") at 300 dpi.
    for (space, bits, what) in [(18, 8u8, "W8"), (19, 24, "SRGB24")] {
        let urf = ghostscript_raster(&pdf, "appleraster", space, 8);
        assert!(urf.starts_with(b"UNIRAST\0"));
        assert_eq!(urf[12], bits, "{what}: bits per pixel of page 1");
        let printed = fax_pages("job", "image/urf", urf, &options);
        assert_like_the_pdf(&printed, &direct, what);
    }
}

/// One bit a pixel means opposite things in the two one-channel spaces:
/// ink in black (K), paper in sGray. Both must fax black as black.
#[test]
fn one_bit_black_and_sgray_pwg_rasters_keep_the_ink_black() {
    let pdf = two_page_pdf();
    let options = ConvertOptions::default();
    let direct = fax_pages("letter.pdf", "application/pdf", pdf.clone(), &options);
    for (space, what) in [(3u32, "black_1"), (18, "sgray_1")] {
        let pwg = ghostscript_raster(&pdf, "pwgraster", space, 1);
        assert!(pwg.starts_with(b"RaS2"));
        assert_eq!(&pwg[4 + 400..4 + 404], &space.to_be_bytes(), "{what}");
        assert_eq!(&pwg[4 + 388..4 + 392], &1u32.to_be_bytes(), "{what}: 1 bit");
        let printed = fax_pages("job", "image/pwg-raster", pwg, &options);
        assert_like_the_pdf(&printed, &direct, what);
    }
}
