//! Issue 18's hostile inputs against the real `faxbox serve` process: slow
//! clients, a terabyte Content-Length, an HTTP/2 preface, twenty large
//! uploads at once and a MIME bomb. Each must end in a clear refusal while
//! the box keeps taking a normal fax, and the process's peak RSS (VmHWM in
//! /proc) stays under 300 MB.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faxbox::client::{Document, Http, Session};
use serde_json::json;

/// The ceiling the issue sets for the whole process.
const MAX_RSS_MB: u64 = 300;

/// A running `faxbox serve` with every listener on loopback, an account
/// with a user bob@acme.example and a faxbox.
struct Served {
    child: Child,
    _dir: tempfile::TempDir,
    api: String,
    smtp: SocketAddr,
    ipp: SocketAddr,
    faxbox_id: String,
    faxbox_domain: String,
    api_key: String,
}

impl Served {
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("faxbox.toml"),
            "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\
             [ipp]\nenabled = true\nlisten = \"127.0.0.1:0\"\nmdns = false\n",
        )
        .unwrap();
        let data = dir.path().join("data");
        let (account, desk) = crate::harness::acme_with_desk(&data);
        let (faxbox_id, faxbox_domain) = (desk.id.0, desk.smtp_email_address);
        let (_, api_key) = faxbox::store::Store::open_data_dir(&data)
            .unwrap()
            .create_api_key(&account, "edges test")
            .unwrap();
        let mut child = Command::new(crate::harness::faxbox_bin())
            .args(["--data-dir", "data", "serve"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let banner = crate::harness::serve_banner(&mut child);
        let api = crate::harness::banner_api_url(&banner);
        let addr_after = |label: &str| -> SocketAddr {
            let word = banner
                .lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("{label} in {banner}"))
                .split_whitespace()
                .next()
                .unwrap();
            word.trim_start_matches("ipp://")
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        Served {
            smtp: addr_after("smtp:"),
            ipp: addr_after("ipp:"),
            child,
            _dir: dir,
            api,
            faxbox_id,
            faxbox_domain,
            api_key,
        }
    }

    fn api_addr(&self) -> SocketAddr {
        self.api.trim_start_matches("http://").parse().unwrap()
    }

    /// The process's peak resident memory so far, in MB.
    fn peak_rss_mb(&self) -> u64 {
        crate::harness::memory_mb(self.child.id(), "VmHWM") as u64
    }

    /// A normal one-page fax through the API: must be accepted (202).
    fn send_normal_fax(&self) {
        let session = Session::login(&self.api, &self.api_key).expect("the API answers a login");
        let job = session
            .send(
                &json!({ "to_number": "5550100" }),
                &[Document {
                    name: "normal.pdf".into(),
                    content_type: "application/pdf".into(),
                    bytes: crate::harness::pdf_of_texts(&["A normal fax"]),
                }],
            )
            .expect("a normal fax is accepted");
        assert!(job["id"].is_string(), "{job}");
    }

    fn healthz(&self) -> u16 {
        Http::new()
            .request("GET", &format!("{}/healthz", self.api), &[], None)
            .expect("healthz answers")
            .status
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `head` then reads the whole answer until the server closes or
/// `within` passes; returns what was read and whether it closed.
fn exchange(addr: SocketAddr, head: &[u8], within: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(head).unwrap();
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got).is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Issue 18 item 4: ten unauthenticated clients trickling a body to
/// `PUT /v2/api_auth` (a byte every two seconds) used to stop the whole API,
/// `/healthz` included. Also here: an IPP request declaring a terabyte, and
/// an HTTP/2 preface, each get an answer.
#[test]
fn slow_clients_a_terabyte_and_http2_get_answers_while_the_api_serves() {
    let b = Served::start();
    let done = Arc::new(AtomicBool::new(false));
    let api = b.api_addr();
    let trickles: Vec<_> = (0..10)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(api).unwrap();
                s.write_all(
                    b"PUT /v2/api_auth HTTP/1.1\r\nHost: box\r\n\
                      Content-Type: application/json\r\nContent-Length: 200\r\n\r\n",
                )
                .unwrap();
                while !done.load(Ordering::SeqCst) {
                    if s.write_all(b"{").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(b.healthz(), 200);
    b.send_normal_fax();
    println!(
        "beside 10 trickling clients: /healthz and a normal fax answered in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Content-Length: 1099511627776 to a printer and to the API: answered
    // at once (before any body), not waited on.
    let ipp_head = format!(
        "POST /ipp/faxout/{} HTTP/1.1\r\nHost: box\r\nContent-Type: application/ipp\r\n\
         Content-Length: 1099511627776\r\n\r\n\x02\x00\x00\x02\x00\x00\x00\x01",
        b.faxbox_id
    );
    let (answer, _) = exchange(b.ipp, ipp_head.as_bytes(), Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    let ipp_body = &answer.as_bytes()[answer.find("\r\n\r\n").unwrap() + 4..];
    // client-error-request-entity-too-large (RFC 8011 13.1.4.10).
    assert_eq!(&ipp_body[2..4], &[0x04, 0x08], "{answer:?}");
    let (answer, _) = exchange(
        api,
        b"PUT /v2/api_auth HTTP/1.1\r\nHost: box\r\nContent-Type: application/json\r\n\
          Content-Length: 1099511627776\r\n\r\n{",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");

    // An HTTP/2 client's connection preface (RFC 9113 3.4) and its
    // SETTINGS frame: an HTTP/1.1 answer, then the connection closes.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let (answer, closed) = exchange(api, &preface, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 505 "), "{answer:?}");
    assert!(closed, "the connection is closed after the answer");

    done.store(true, Ordering::SeqCst);
    for t in trickles {
        t.join().unwrap();
    }
    let peak = b.peak_rss_mb();
    println!("peak RSS of serve: {peak} MB (ceiling {MAX_RSS_MB} MB)");
    assert!(peak < MAX_RSS_MB, "peak RSS {peak} MB");
}

/// Issue 18 items 1 and 7: twenty 30 MB uploads at once (damaged PDFs), a
/// MIME bomb 10,000 levels deep: each refused, a normal fax and a normal
/// email still taken, and the process never over 300 MB.
#[test]
fn twenty_large_uploads_and_a_mime_bomb_are_refused_within_300_mb() {
    let b = Served::start();
    let session = Session::login(&b.api, &b.api_key).unwrap();
    let path = format!(
        "/v2/accounts/{}/faxes/outgoing?to_number=5550100",
        session.account_id
    );
    let mut upload = b"%PDF-1.4\n".to_vec();
    upload.resize(30 * 1024 * 1024, b'x');
    let upload = Arc::new(upload);
    let started = Instant::now();
    let senders: Vec<_> = (0..20)
        .map(|_| {
            let (upload, path, token) = (upload.clone(), path.clone(), session.token().to_owned());
            let api = b.api_addr();
            std::thread::spawn(move || {
                let head = format!(
                    "PUT {path} HTTP/1.1\r\nHost: box\r\nX-Auth-Token: {token}\r\n\
                     Content-Type: application/pdf\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    upload.len()
                );
                let mut s = TcpStream::connect(api).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
                s.write_all(head.as_bytes()).unwrap();
                // The box may answer before taking it all; then it stops.
                let _ = s.write_all(&upload);
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
                String::from_utf8_lossy(&answer).into_owned()
            })
        })
        .collect();
    let answers: Vec<String> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    for a in &answers {
        assert!(a.starts_with("HTTP/1.1 400 "), "{}", &a[..a.len().min(400)]);
    }
    println!(
        "20 concurrent 30 MB uploads refused in {:.1} s; peak RSS so far {} MB",
        started.elapsed().as_secs_f64(),
        b.peak_rss_mb()
    );
    b.send_normal_fax();

    // The MIME bomb, then a normal email, in one SMTP session.
    let mut bomb = String::from(
        "From: bob@acme.example\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b0\r\n\r\n",
    );
    for i in 1..10_000 {
        bomb.push_str(&format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
            i - 1
        ));
    }
    let to = format!("5551234@{}", b.faxbox_domain);
    let mut s = TcpStream::connect(b.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    let mut said = |bytes: &[u8]| -> String {
        use std::io::BufRead;
        if !bytes.is_empty() {
            s.write_all(bytes).unwrap();
        }
        let mut all = String::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).unwrap();
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    assert!(said(b"").starts_with("220 "));
    assert!(said(b"EHLO client.test\r\n").starts_with("250"));
    let normal = format!(
        "From: bob@acme.example\r\nSubject: normal\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/pdf; name=n.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            crate::harness::pdf_of_texts(&["A normal email"])
        )
    );
    for (message, expect) in [(bomb, "554 "), (normal, "250 queued as ")] {
        assert!(said(b"MAIL FROM:<bob@acme.example>\r\n").starts_with("250"));
        assert!(said(format!("RCPT TO:<{to}>\r\n").as_bytes()).starts_with("250"));
        assert!(said(b"DATA\r\n").starts_with("354"));
        let answer = said(format!("{message}.\r\n").as_bytes());
        assert!(answer.starts_with(expect), "{answer}");
        if expect == "554 " {
            assert!(answer.contains("more than 100 levels deep"), "{answer}");
        }
    }
    let peak = b.peak_rss_mb();
    println!("peak RSS of serve: {peak} MB (ceiling {MAX_RSS_MB} MB)");
    assert!(peak < MAX_RSS_MB, "peak RSS {peak} MB");
    assert_eq!(b.healthz(), 200);
}
