//! Documents drawn under a budget (issue 18): decompression bombs, absurd
//! page and image sizes and a text that is one enormous line end in a clear
//! refusal naming the document, at intake where it can be seen there and
//! otherwise on the fax's first attempt, while the box keeps sending other
//! faxes and its own memory stays small (the drawing happens in render
//! worker processes of the real binary).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faxbox::documents::{
    ConvertOptions, DocumentError, Drawing, Input, convert, prepare_for_intake,
};
use faxbox::model::{FaxId, JobStatus};
use faxbox::store::Store;

/// The ceiling on the box's own peak memory while it refuses these inputs
/// (the footprint target for any single input).
const PEAK_RSS_CEILING_MB: f64 = 300.0;

/// A one-page PDF whose content stream, a line drawn over and over, is
/// `inflated` bytes once decompressed (about a thousandth of that on disk).
fn bomb_pdf(inflated: usize) -> Vec<u8> {
    use pdf_writer::{Filter, Pdf, Rect, Ref};
    let stroke = b"10 10 m 20 20 l S\n";
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = stroke.repeat(64 * 1024 / stroke.len());
    let mut written = 0;
    while written < inflated {
        deflate.write_all(&chunk).unwrap();
        written += chunk.len();
    }
    let content = deflate.finish().unwrap();
    let mut pdf = Pdf::new();
    let (catalog, tree, page, contents) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page]).count(1);
    pdf.page(page)
        .media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
        .parent(tree)
        .contents(contents);
    pdf.stream(contents, &content).filter(Filter::FlateDecode);
    pdf.finish()
}

/// A one-page PDF whose page objects sit in an object stream (PDF 1.5,
/// ISO 32000-1 7.5.7) padded to `inflated` bytes once decompressed: merely
/// counting its pages decompresses it.
fn object_stream_bomb_pdf(inflated: usize) -> Vec<u8> {
    let pages = "<< /Type /Pages /Kids [3 0 R] /Count 1 >> ";
    let page = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> ";
    let index = format!("2 0 3 {} ", pages.len());
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(index.as_bytes()).unwrap();
    deflate.write_all(pages.as_bytes()).unwrap();
    deflate.write_all(page.as_bytes()).unwrap();
    let padding = vec![b' '; 64 * 1024];
    let mut written = 0;
    while written < inflated {
        deflate.write_all(&padding).unwrap();
        written += padding.len();
    }
    let packed = deflate.finish().unwrap();
    let mut pdf = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    offsets.push(pdf.len());
    pdf.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    offsets.push(pdf.len());
    pdf.extend_from_slice(
        format!(
            "4 0 obj\n<< /Type /ObjStm /N 2 /First {} /Filter /FlateDecode /Length {} >>\nstream\n",
            index.len(),
            packed.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&packed);
    pdf.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = pdf.len();
    // Cross-reference stream entries: type, offset or object stream, index.
    let entry = |kind: u8, field: u32, index: u16| {
        let mut e = vec![kind];
        e.extend_from_slice(&field.to_be_bytes());
        e.extend_from_slice(&index.to_be_bytes());
        e
    };
    let entries: Vec<u8> = [
        entry(0, 0, 65535),
        entry(1, offsets[0] as u32, 0),
        entry(2, 4, 0),
        entry(2, 4, 1),
        entry(1, offsets[1] as u32, 0),
        entry(1, xref_at as u32, 0),
    ]
    .concat();
    pdf.extend_from_slice(
        format!(
            "5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length {} >>\nstream\n",
            entries.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&entries);
    pdf.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    pdf
}

/// A one-page PDF of `side` x `side` points.
fn huge_page_pdf(side: f32) -> Vec<u8> {
    use pdf_writer::{Content, Pdf, Rect, Ref};
    let mut pdf = Pdf::new();
    let (catalog, tree, page, contents) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page]).count(1);
    pdf.page(page)
        .media_box(Rect::new(0.0, 0.0, side, side))
        .parent(tree)
        .contents(contents);
    let mut c = Content::new();
    c.move_to(10.0, 10.0)
        .line_to(side / 2.0, side / 2.0)
        .stroke();
    pdf.stream(contents, &c.finish());
    pdf.finish()
}

/// A PNG that declares `side` x `side` grey pixels (its data is a few
/// rows: a decoder that trusted the header would allocate gigabytes).
fn huge_png(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, deflate, no interlace
    chunk(&mut png, b"IHDR", &header);
    let mut deflate = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    deflate
        .write_all(&vec![0u8; (side as usize + 1) * 16])
        .unwrap();
    chunk(&mut png, b"IDAT", &deflate.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A little-endian TIFF whose one grey page declares `width` x `height`
/// pixels in one strip of `strip_bytes` (the file holds 16 bytes of data).
fn huge_tiff(width: u32, height: u32, strip_bytes: u32) -> Vec<u8> {
    let entries: [(u16, u16, u32); 8] = [
        (256, 4, width),       // ImageWidth
        (257, 4, height),      // ImageLength
        (258, 3, 8),           // BitsPerSample
        (259, 3, 1),           // Compression: none
        (262, 3, 1),           // Photometric: min is black
        (273, 4, 8),           // StripOffsets: right after the header
        (278, 4, height),      // RowsPerStrip
        (279, 4, strip_bytes), // StripByteCounts
    ];
    let ifd = 8 + 16;
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&(ifd as u32).to_le_bytes());
    t.extend_from_slice(&[0x80; 16]);
    t.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            t.extend_from_slice(&(value as u16).to_le_bytes());
            t.extend_from_slice(&[0, 0]);
        } else {
            t.extend_from_slice(&value.to_le_bytes());
        }
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

fn worker_options() -> ConvertOptions {
    ConvertOptions {
        drawing: Drawing::Worker {
            program: crate::harness::faxbox_bin(),
        },
        ..ConvertOptions::default()
    }
}

#[test]
fn a_render_worker_draws_what_this_process_draws_and_dies_alone_on_a_bomb() {
    // The same documents give the same fax image either way.
    let inputs = vec![
        Input::new("letter.pdf", crate::harness::pdf_of_texts(&["one", "two"])),
        Input::new("notes.txt", b"a short note\n\tindented\n".to_vec()),
    ];
    let here = convert(&inputs, &ConvertOptions::default()).unwrap();
    let there = convert(&inputs, &worker_options()).unwrap();
    assert_eq!(there.pages, 3);
    assert!(here.tiff == there.tiff, "the worker's fax image differs");

    // A content stream inflating to 200 MB: the worker reaches its memory
    // ceiling on page 1 and dies; the error says where and why.
    let bomb = bomb_pdf(200 << 20);
    println!("bomb.pdf: {} KB inflating to 200 MB", bomb.len() >> 10);
    let started = Instant::now();
    let e = convert(
        &[
            Input::new("cover.txt", b"cover\n".to_vec()),
            Input::new("bomb.pdf", bomb),
        ],
        &worker_options(),
    )
    .unwrap_err();
    println!("refused in {:?}: {e}", started.elapsed());
    assert!(
        matches!(&e, DocumentError::OutOfMemory { name, page: 1, .. } if name == "bomb.pdf"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("page 1 of 'bomb.pdf' needs more than 256 MB"),
        "{e}"
    );

    // A PDF that must be decompressed to be opened at all (its pages sit in
    // a compressed object stream) is counted at intake by a worker: a small
    // one passes, and opening a bomb kills only the worker.
    let stored = prepare_for_intake(
        vec![Input::new("packed.pdf", object_stream_bomb_pdf(1024))],
        &worker_options(),
    )
    .unwrap();
    assert_eq!(stored[0].pages, Some(1));
    let e = prepare_for_intake(
        vec![Input::new("packed.pdf", object_stream_bomb_pdf(400 << 20))],
        &worker_options(),
    )
    .unwrap_err();
    println!("{e}");
    assert!(
        e.to_string()
            .starts_with("'packed.pdf' needs more than 256 MB of memory to open"),
        "{e}"
    );

    // The time budget holds in the worker too.
    let pages: Vec<String> = (1..=20).map(|n| format!("page {n}")).collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    let hurried = ConvertOptions {
        time_budget: Duration::ZERO,
        ..worker_options()
    };
    let e = convert(
        &[Input::new("long.pdf", crate::harness::pdf_of_texts(&pages))],
        &hurried,
    )
    .unwrap_err();
    assert!(
        matches!(&e, DocumentError::TimedOut { name, .. } if name == "long.pdf"),
        "{e:?}"
    );

    // Errors the worker finds itself come back whole.
    let e = convert(
        &[Input::new("dump.txt", "x".repeat(400_000).into_bytes())],
        &worker_options(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DocumentError::LineTooLong {
                line: 1,
                chars: 400_000,
                ..
            }
        ),
        "{e:?}"
    );

    // And from the command line, which draws the same way.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bomb.pdf"), bomb_pdf(200 << 20)).unwrap();
    let out = crate::harness::faxbox(
        &dir.path().join("data"),
        &["convert", "bomb.pdf", "-o", "out.tif"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("page 1 of 'bomb.pdf' needs more than"),
        "{stderr}"
    );
    assert!(!dir.path().join("out.tif").exists());
}

/// Starts `faxbox serve` in `dir` with a real-time loopback line of two
/// channels; returns it and the API's URL.
fn serve(dir: &Path) -> (std::process::Child, String) {
    std::fs::write(
        dir.join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\n\
         [[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\nrealtime = true\n",
    )
    .unwrap();
    let mut child = Command::new(crate::harness::faxbox_bin())
        .args(["--data-dir", "data", "serve"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let banner = crate::harness::serve_banner(&mut child);
    (child, crate::harness::banner_api_url(&banner))
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A decompression bomb and other documents over budget are refused, and the
/// box keeps sending meanwhile.
///
/// Long on purpose: the point is that it happens at once: the first fax is on
/// the line all the while the bomb is taken in, drawn and failed, and the
/// intake refusals come from that same busy box.
#[test]
fn documents_over_budget_are_refused_while_the_box_keeps_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path());
    let files: [(&str, Vec<u8>); 8] = [
        (
            "normal.pdf",
            crate::harness::pdf_of_texts(&["A fax in progress"]),
        ),
        (
            "later.pdf",
            crate::harness::pdf_of_texts(&["A fax after the bomb"]),
        ),
        ("bomb.pdf", bomb_pdf(200 << 20)),
        ("huge-page.pdf", huge_page_pdf(100_000.0)),
        ("packed.pdf", object_stream_bomb_pdf(400 << 20)),
        ("huge.png", huge_png(50_000)),
        ("huge.tif", huge_tiff(100_000, 100_000, 4_000_000_000)),
        ("dump.txt", "x".repeat(400_000).into_bytes()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let send = |file: &str, to: &str| {
        let out = Command::new(crate::harness::faxbox_bin())
            .args([
                "--data-dir",
                "data",
                "send",
                "--url",
                &url,
                "--to",
                to,
                file,
            ])
            .current_dir(dir.path())
            .env_remove("FAXBOX_TOKEN")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.success(), stdout, stderr)
    };
    let store = Store::open_data_dir(&dir.path().join("data")).unwrap();
    let status = |id: &FaxId| store.fax(id).unwrap().status;

    // A fax is on the line (a real-time call takes many seconds) ...
    let (ok, normal, stderr) = send("normal.pdf", "5550100");
    assert!(ok, "{stderr}");
    let normal = FaxId(normal);
    wait_until("the first call", Duration::from_secs(30), || {
        status(&normal) == Some(JobStatus::Processing)
    });

    // ... while the bomb is taken in (only drawing shows what it is) and
    // fails on its first attempt, naming the document and the limit.
    let (ok, bomb, stderr) = send("bomb.pdf", "5550101");
    assert!(ok, "{stderr}");
    let bomb = FaxId(bomb);
    wait_until("the bomb to fail", Duration::from_secs(60), || {
        status(&bomb).is_some_and(JobStatus::is_terminal)
    });
    let failed = store.fax(&bomb).unwrap();
    assert_eq!(failed.status, Some(JobStatus::Failed));
    let error = failed.error.unwrap_or_default();
    println!("bomb.pdf: {error}");
    assert!(
        error.contains("page 1 of 'bomb.pdf' needs more than 256 MB"),
        "{error}"
    );
    let bomb_attempts = store.attempts(&bomb).unwrap();
    assert_eq!(bomb_attempts.len(), 1, "one attempt only");

    // What intake can see is refused there, with the reason.
    for (file, reason) in [
        ("huge-page.pdf", "page 1 is 1389 x 1389 inches"),
        ("packed.pdf", "needs more than 256 MB of memory to open"),
        ("huge.png", "50000 x 50000 pixels"),
        ("huge.tif", "100000 x 100000 pixels"),
        ("dump.txt", "line 1 of 'dump.txt' is 400000 characters long"),
    ] {
        let (ok, _, stderr) = send(file, "5550103");
        println!("{file}: {}", stderr.trim());
        assert!(!ok, "{file} was accepted");
        assert!(stderr.contains(file), "{file}: {stderr}");
        assert!(stderr.contains(reason), "{file}: {stderr}");
    }

    // A fax sent after all that goes out too, and so does the first.
    let (ok, later, stderr) = send("later.pdf", "5550102");
    assert!(ok, "{stderr}");
    let later = FaxId(later);
    wait_until("both good faxes", Duration::from_secs(180), || {
        [&normal, &later]
            .iter()
            .all(|id| status(id).is_some_and(JobStatus::is_terminal))
    });
    for id in [&normal, &later] {
        let fax = store.fax(id).unwrap();
        assert_eq!(fax.status, Some(JobStatus::Completed), "{:?}", fax.error);
        assert_eq!(
            store.attempts(id).unwrap().len(),
            1,
            "sent at the first try"
        );
    }
    // The first call was on the line all the while the bomb was drawn.
    let call = &store.attempts(&normal).unwrap()[0];
    let drawn = &bomb_attempts[0];
    assert!(
        call.started <= drawn.started && call.ended >= drawn.ended,
        "the call {:?}..{:?} spans the bomb's attempt {:?}..{:?}",
        call.started,
        call.ended,
        drawn.started,
        drawn.ended
    );

    let peak = crate::harness::memory_mb(child.id(), "VmHWM");
    println!(
        "serve's peak RSS: {peak:.1} MB (ceiling {PEAK_RSS_CEILING_MB} MB: {:.2}x)",
        peak / PEAK_RSS_CEILING_MB
    );
    assert!(peak < PEAK_RSS_CEILING_MB, "serve peaked at {peak:.1} MB");
    assert!(
        crate::harness::stop_with_sigterm(&mut child).success(),
        "serve stops cleanly"
    );
}
