//! Documents: fax TIFFs read back by libtiff's own tools and by our decoder,
//! every kind of input converted, bad input refused with a specific error.

use std::process::Command;

use faxbox::documents::{BitPage, decode_fax_tiff, encode_fax_tiff};

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
