//! SMTP intake: emails with a 100 KB PDF each, sent by several concurrent
//! clients over persistent sessions, each acknowledged (`250 queued as`)
//! only after its job and the PDF (opened, its pages counted) are
//! committed; the page is drawn when the fax is sent, as for the API.
//! The target (docs/architecture.md, "Numbers to beat"): 100 emails/s.
//!
//! `cargo bench --bench smtp` (or `make bench-smtp`). The PDF is a one-page
//! letter carrying a 100 KB scanned-photo image, so both the bytes on the
//! wire and the page to render are those of a real office email. The
//! scheduler is not running: the numbers are intake only.
//!
//! The peer is Postfix's `smtp-sink` (Debian package `postfix`), an SMTP
//! server that accepts and discards mail: the same clients send it the same
//! emails, so the ratio says how much of the time is SMTP itself. Without
//! it the peer line says how to get it.

#[path = "common/summary.rs"]
mod summary;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faxbox::model::{FaxId, FaxboxFields};
use faxbox::smtp::{SmtpCtx, SmtpOptions, SmtpServer};
use faxbox::store::Store;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

const CLIENTS: usize = 8;
/// Emails per client. `cargo test --all-targets` runs this benchmark
/// unoptimized just to see that it works: a couple of emails then.
const PER_CLIENT: usize = if cfg!(debug_assertions) { 2 } else { 25 };
const PDF_SIZE: usize = 100 * 1024;

/// A one-page letter with a photo-like JPEG that brings it to 100 KB.
fn letter_pdf() -> Vec<u8> {
    // Noise compresses badly, like a photo: grow it until the JPEG is big enough.
    let mut side = 300u32;
    let jpeg = loop {
        let mut seed = 12345u32;
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            image::Luma([((x ^ y) as u8).wrapping_add((seed >> 24) as u8 / 3)])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        let bytes = out.into_inner();
        if bytes.len() >= PDF_SIZE - 4096 {
            break bytes;
        }
        side += 50;
    };
    let mut pdf = Pdf::new();
    let (catalog, tree, page_id, font, content_id, image_id) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
        .parent(tree)
        .contents(content_id);
    let mut resources = page.resources();
    resources.fonts().pair(Name(b"F1"), font);
    resources.x_objects().pair(Name(b"Im1"), image_id);
    resources.finish();
    page.finish();
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let mut image = pdf.image_xobject(image_id, &jpeg);
    image.filter(Filter::DctDecode);
    image.width(side as i32);
    image.height(side as i32);
    image.color_space().device_gray();
    image.bits_per_component(8);
    image.finish();
    let mut c = Content::new();
    c.begin_text()
        .set_font(Name(b"F1"), 14.0)
        .next_line(72.0, 720.0)
        .show(Str(b"Dear customer, please find the signed order below."))
        .end_text();
    c.save_state();
    c.transform([360.0, 0.0, 0.0, 360.0, 126.0, 200.0]);
    c.x_object(Name(b"Im1"));
    c.restore_state();
    pdf.stream(content_id, &c.finish());
    pdf.finish()
}

fn email(to: &str, pdf: &[u8]) -> Vec<u8> {
    let b64 = BASE64.encode(pdf);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: bob@acme.example\r\nTo: {to}\r\nSubject: order\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nPlease fax.\r\n\
         --b1\r\nContent-Type: application/pdf; name=\"order.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"order.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n.\r\n",
        body.join("\r\n")
    )
    .into_bytes()
}

/// One client: a session, `PER_CLIENT` emails, the ids of the 250 replies.
fn client(addr: SocketAddr, to: &str, message: &[u8]) -> Vec<String> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    let ok = |text: String, want: &str| {
        assert!(text.starts_with(want), "{text}");
        text
    };
    ok(reply(), "220");
    w.write_all(b"EHLO bench.test\r\n").unwrap();
    ok(reply(), "250");
    let mut ids = Vec::new();
    for _ in 0..PER_CLIENT {
        // Pipelined envelope, as real MTAs send it (RFC 2920).
        w.write_all(
            format!("MAIL FROM:<bob@acme.example>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes(),
        )
        .unwrap();
        ok(reply(), "250");
        ok(reply(), "250");
        ok(reply(), "354");
        w.write_all(message).unwrap();
        let end = ok(reply(), "250");
        ids.push(end.trim().rsplit(' ').next().unwrap_or_default().to_owned());
    }
    w.write_all(b"QUIT\r\n").unwrap();
    ids
}

/// Runs the clients against `addr`; returns (emails, seconds).
fn drive(addr: SocketAddr, to: &str, message: &[u8]) -> (Vec<String>, f64) {
    let message = Arc::new(message.to_vec());
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (to, message) = (to.to_owned(), message.clone());
            std::thread::spawn(move || client(addr, &to, &message))
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    (ids, started.elapsed().as_secs_f64())
}

fn faxbox_rate(message_for: impl Fn(&str) -> Vec<u8>, pdf_size: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let account = store
        .create_account("Acme", Some("acme.example"))
        .unwrap()
        .id;
    store
        .create_user(&account, "bob@acme.example", "Bob")
        .unwrap();
    store
        .create_faxbox(
            &account,
            FaxboxFields {
                name: Some("Bench".into()),
                custom_smtp_email_address: Some("fax.acme.example".into()),
                ..Default::default()
            },
        )
        .unwrap();
    store
        .set_setting(None, "smtp_sessions", serde_json::json!(CLIENTS + 4))
        .unwrap();
    let server = SmtpServer::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        SmtpCtx {
            store: store.clone(),
            intake: faxbox::intake::Intake::new(store.clone(), Arc::new(|| {})),
            mail_queued: Arc::new(|| {}),
            options: SmtpOptions::new("bench.test", "faxbox@bench.test"),
        },
    )
    .unwrap();
    let to = "5551234@fax.acme.example";
    let message = message_for(to);
    let (ids, secs) = drive(server.local_addr(), to, &message);
    server.stop(Duration::from_secs(5));
    // Every acknowledged email is a durable job with its PDF and the page
    // count taken at intake (the page is drawn when the fax is sent).
    for id in &ids {
        let docs = store.documents(&FaxId(id.clone())).unwrap();
        assert_eq!(docs.len(), 1, "job {id} has its PDF: {docs:?}");
        assert_eq!(docs[0].pages, Some(1), "job {id}'s PDF has its page count");
    }
    let rate = ids.len() as f64 / secs;
    println!(
        "faxbox      {:>4} emails ({} KB each, a {} KB PDF) from {CLIENTS} clients in {secs:>6.2} s: {rate:>7.1} accepted/s (target 100/s)",
        ids.len(),
        message.len() / 1024,
        pdf_size / 1024,
    );
    rate
}

/// Postfix's smtp-sink on a free port, when installed.
fn sink_rate(message_for: impl Fn(&str) -> Vec<u8>) -> Option<f64> {
    let program = ["/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // As root, smtp-sink insists on dropping to another user.
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
    let mut args = vec![];
    if root {
        args.extend(["-u", "nobody"]);
    }
    let listen = addr.to_string();
    args.extend([listen.as_str(), "100"]);
    let mut child = std::process::Command::new(program)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let to = "5551234@fax.acme.example";
    let message = message_for(to);
    let (ids, secs) = drive(addr, to, &message);
    let _ = child.kill();
    let _ = child.wait();
    let rate = ids.len() as f64 / secs;
    println!(
        "smtp-sink   {:>4} emails ({} KB each) from {CLIENTS} clients in {secs:>6.2} s: {rate:>7.1} accepted/s (discards everything)",
        ids.len(),
        message.len() / 1024,
    );
    Some(rate)
}

fn main() {
    let pdf = letter_pdf();
    assert!(
        pdf.len() >= PDF_SIZE - 4096,
        "the PDF is {} bytes",
        pdf.len()
    );
    let message_for = |to: &str| email(to, &pdf);
    let ours = faxbox_rate(message_for, pdf.len());
    summary::record(
        "smtp",
        &format!("{} KB PDF emails accepted/s", pdf.len() / 1024),
        &format!("{ours:.0}/s"),
        "target 100/s",
        &format!("{:.2}x", ours / 100.0),
    );
    match sink_rate(message_for) {
        Some(peer) => println!(
            "ratio       faxbox / smtp-sink = {:.3} (smtp-sink stores and converts nothing)",
            ours / peer
        ),
        None => println!(
            "peer        Postfix's smtp-sink is not installed (apt-get install postfix) - no ratio"
        ),
    }
}
