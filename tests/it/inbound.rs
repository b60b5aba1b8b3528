//! Receiving: one faxbox faxes another over the loopback line, and what
//! arrives lands in the inbox and in the recipients' mail.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use faxbox::config::FarEnd;
use faxbox::documents::{BitPage, decode_fax_tiff, encode_fax_tiff};
use faxbox::inbound::Receiver;
use faxbox::lines::{Inbound, IncomingCall, Line};
use faxbox::model::{
    AccountId, DocumentKind, EmailTargets, Fax, FaxId, FaxboxFields, FaxboxNotifications, Folder,
    JobStatus,
};
use faxbox::notify::{Backoff, Postman};
use faxbox::scheduler::{Scheduler, SchedulerOptions};
use faxbox::store::{JobFilter, Store};

use crate::harness::MailSink;
use crate::scheduler::{loopback, queue_job, wait_terminal};

/// Pages with a different pattern each, tall enough that a call takes a
/// while per page.
pub fn pages(n: usize, height: u32) -> Vec<BitPage> {
    let width = 1728u32;
    let stride = width.div_ceil(8) as usize;
    (0..n)
        .map(|p| {
            let mut rows = vec![0u8; stride * height as usize];
            for y in 0..height as usize {
                if (y / 8 + p) % 3 == 0 {
                    let start = y * stride + 10 + p * 20;
                    for b in &mut rows[start..start + 60] {
                        *b = 0xf0;
                    }
                }
            }
            BitPage {
                width,
                height,
                x_dpi: 204.0,
                y_dpi: 196.0,
                rows,
            }
        })
        .collect()
}

pub struct Box2 {
    _dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub sender: AccountId,
    pub receiver: Arc<Receiver>,
    pub sink: MailSink,
    _postman: Arc<Postman>,
    pub options: SchedulerOptions,
    pub dir: std::path::PathBuf,
}

/// Two accounts; the second has a faxbox that rings on 5557000, owned by a
/// user and copying a second address.
pub fn two_offices() -> (Box2, faxbox::model::Faxbox) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let store = Arc::new(Store::open_data_dir(&root).unwrap());
    let sender = store.create_account("Sender", None).unwrap().id;
    let office = store.create_account("Receiver", None).unwrap().id;
    let owner = store
        .create_user(&office, "owner@office.example", "Owner")
        .unwrap();
    let faxbox = store
        .create_faxbox(
            &office,
            FaxboxFields {
                name: Some("Front desk".into()),
                numbers: Some(vec!["5557000".into()]),
                owner_id: Some(owner.id),
                fax_identity: Some("+1 555 700 0000".into()),
                notifications: Some(FaxboxNotifications {
                    inbound: EmailTargets {
                        send_to: vec!["desk@office.example".into()],
                    },
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A smarthost as strict as Postfix with reject_non_fqdn_helo_hostname.
    let sink = MailSink::start_fqdn_helo_only(listener);
    let postman = Arc::new(
        Postman::start(
            store.clone(),
            crate::harness::smarthost(port),
            Backoff::default(),
        )
        .unwrap(),
    );
    let mut options = SchedulerOptions::new(root.join("spool"), "faxbox@box.test".into());
    options.retry_delay_scale = 0.001;
    options.mail_queued = {
        let p = postman.clone();
        Arc::new(move || p.wake())
    };
    let receiver = Arc::new(
        Receiver::new(
            store.clone(),
            root.join("incoming"),
            HashMap::new(),
            "faxbox@box.test".into(),
            options.mail_queued.clone(),
        )
        .unwrap(),
    );
    (
        Box2 {
            _dir: dir,
            store,
            sender,
            receiver,
            sink,
            _postman: postman,
            options,
            dir: root,
        },
        faxbox,
    )
}

pub fn inbox(store: &Store) -> Vec<Fax> {
    store
        .faxes(&JobFilter {
            folder: Some(Folder::Inbox),
            ..Default::default()
        })
        .unwrap()
}

pub fn received_pages(store: &Store, fax: &Fax) -> Vec<BitPage> {
    let docs = store.documents(&fax.id).unwrap();
    let tiff = docs
        .iter()
        .find(|d| d.kind == DocumentKind::ReceivedTiff)
        .unwrap();
    decode_fax_tiff(&store.document_bytes(&tiff.id).unwrap()).unwrap()
}

/// Received pages against the sent ones: a sender adds its header line
/// (rows of its own) above each page, as fax machines do; below those rows
/// every row must be the sent one, pixel for pixel.
pub fn assert_pages_below_header(got: &[BitPage], sent: &[BitPage]) {
    assert_eq!(got.len(), sent.len(), "pages received");
    for (i, (g, s)) in got.iter().zip(sent).enumerate() {
        assert_eq!(g.width, s.width, "page {}: width", i + 1);
        assert!(g.height >= s.height, "page {}: rows missing", i + 1);
        let header = (g.height - s.height) as usize * s.width.div_ceil(8) as usize;
        assert!(
            g.rows[header..] == s.rows[..],
            "page {} differs from the sent one",
            i + 1
        );
    }
}

/// `pdfinfo` (poppler) reads the PDF independently of Faxbox.
fn pdf_pages(pdf: &[u8], dir: &Path) -> Option<u32> {
    let path = dir.join("check.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = match Command::new("pdfinfo").arg(&path).output() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("pdfinfo is not installed (poppler-utils): PDF check skipped");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "pdfinfo rejects the PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|n| n.trim().parse().unwrap()))
}

/// Sends `tiff` from the sender's account to the front desk's number over
/// a loopback line whose far ends behave as `far_ends` say; returns the
/// job once it has ended.
fn send_to_front_desk(b: &Box2, tiff: &[u8], far_ends: &[(&str, FarEnd)]) -> FaxId {
    let line = loopback(&b.dir, 2, far_ends, false);
    line.set_inbound(b.receiver.clone());
    let scheduler =
        Scheduler::start(b.store.clone(), vec![Arc::new(line)], b.options.clone()).unwrap();
    let job = queue_job(&b.store, &b.sender, "5557000", 1, tiff, &[]);
    scheduler.wake();
    wait_terminal(
        &b.store,
        std::slice::from_ref(&job),
        Duration::from_secs(60),
    );
    scheduler.stop(Duration::from_secs(5));
    job
}

#[test]
fn one_faxbox_faxes_another_and_the_pages_arrive_identical() {
    let (b, faxbox) = two_offices();
    let sent = pages(2, 300);
    let tiff = encode_fax_tiff(&sent).unwrap();
    let job = send_to_front_desk(&b, &tiff, &[]);
    assert_eq!(
        b.store.fax(&job).unwrap().status,
        Some(JobStatus::Completed)
    );

    let inbox = inbox(&b.store);
    assert_eq!(inbox.len(), 1);
    let fax = &inbox[0];
    assert_eq!(fax.faxbox_id.as_ref(), Some(&faxbox.id));
    let rx = fax.rx_result.clone().unwrap();
    assert!(rx.success && !rx.partial, "{rx:?}");
    assert_eq!(rx.pages, 2);
    // The sender saw our faxbox's ident as the CSI.
    let attempt = &b.store.attempts(&job).unwrap()[0];
    assert_eq!(
        attempt.report.remote_station_id.as_deref(),
        Some("+1 555 700 0000")
    );
    let got = received_pages(&b.store, fax);
    assert_eq!(got.len(), 2);
    for (g, s) in got.iter().zip(&sent) {
        // The sender prints its header line (the job's from_name).
        let header = (g.height - s.height) as usize * s.width.div_ceil(8) as usize;
        assert!(
            header > 0 && g.rows[..header].iter().any(|b| *b != 0),
            "a header line was printed"
        );
    }
    assert_pages_below_header(&got, &sent);
    let docs = b.store.documents(&fax.id).unwrap();
    let pdf = docs
        .iter()
        .find(|d| d.kind == DocumentKind::Pdf)
        .expect("a PDF is kept");
    if let Some(n) = pdf_pages(&b.store.document_bytes(&pdf.id).unwrap(), &b.dir) {
        assert_eq!(n, 2);
    }

    let mails = b.sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1);
    let mut to = mails[0].to.clone();
    to.sort();
    assert_eq!(to, vec!["desk@office.example", "owner@office.example"]);
    let text = mails[0].text();
    assert!(text.contains("Subject: New fax from 15550009999"), "{text}");
    assert!(text.contains("application/pdf"));
    // The mail names the fax it announces (it is composed before the fax
    // is stored, in the same transaction).
    assert!(
        text.contains(&format!("Fax id:        {}", fax.id)),
        "{text}"
    );
    // Headers of a well-behaved machine sender, greeted with the box's
    // fully qualified name.
    assert_eq!(mails[0].helo, "faxbox.box.test");
    let headers = &text[..text.find("\r\n\r\n").expect("a header block")];
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_owned)
    };
    let id = header("Message-ID").expect("a Message-ID");
    assert!(id.starts_with('<') && id.ends_with("@box.test>"), "{id}");
    assert!(
        header("Date").is_some_and(|d| d.ends_with("+0000")),
        "{headers}"
    );
    assert_eq!(header("Auto-Submitted").as_deref(), Some("auto-generated"));
    // The attachment's name (lettre may fold it as RFC 2231 `filename*0=`).
    let disposition = &text[text
        .find("Content-Disposition: attachment")
        .expect("an attachment")..];
    let name = disposition
        .split('"')
        .nth(1)
        .expect("the PDF has a file name");
    assert!(
        name.contains("15550009999_") && !name.contains(':'),
        "{name}"
    );
}

#[test]
fn a_cut_call_keeps_the_pages_that_arrived_and_tells_the_recipients() {
    let (b, _faxbox) = two_offices();
    let tiff = encode_fax_tiff(&pages(3, 1100)).unwrap();
    // Cut during the second page.
    let job = send_to_front_desk(
        &b,
        &tiff,
        &[("5557000", FarEnd::DropsAfter(Duration::from_secs(30)))],
    );
    assert_eq!(b.store.fax(&job).unwrap().status, Some(JobStatus::Failed));

    let inbox = inbox(&b.store);
    assert_eq!(inbox.len(), 1, "the pages that arrived are kept");
    let rx = inbox[0].rx_result.clone().unwrap();
    assert!(rx.partial && !rx.success, "{rx:?}");
    assert!((1..3).contains(&rx.pages), "{rx:?}");
    assert_eq!(received_pages(&b.store, &inbox[0]).len(), rx.pages as usize);
    let mails = b.sink.wait_for(1, Duration::from_secs(20));
    assert!(
        mails[0]
            .text()
            .contains("Subject: Error receiving fax from 15550009999")
    );
    assert!(
        mails[0].text().contains("application/pdf"),
        "the partial pages are attached"
    );
}

#[test]
fn a_call_cut_before_any_page_leaves_no_inbox_entry() {
    let (b, _faxbox) = two_offices();
    let tiff = encode_fax_tiff(&pages(1, 300)).unwrap();
    let job = send_to_front_desk(
        &b,
        &tiff,
        &[("5557000", FarEnd::DropsAfter(Duration::from_secs(2)))],
    );
    assert_eq!(b.store.fax(&job).unwrap().status, Some(JobStatus::Failed));
    assert!(inbox(&b.store).is_empty());
    assert!(
        b.store.receptions().unwrap().is_empty(),
        "the call is not left open"
    );
    assert_eq!(
        std::fs::read_dir(b.dir.join("incoming")).unwrap().count(),
        0,
        "no file left behind"
    );
}

#[test]
fn a_call_to_an_unknown_number_without_a_default_is_refused() {
    let (b, faxbox) = two_offices();
    let call = IncomingCall {
        line: "pstn".into(),
        call_id: "call-1".into(),
        from_number: "15550001111".into(),
        to_number: "5559999".into(),
    };
    assert!(b.receiver.answer(&call).is_none());
    assert!(b.store.receptions().unwrap().is_empty());
    // With a default faxbox for the line, the same call is answered there.
    let with_default = Receiver::new(
        b.store.clone(),
        b.dir.join("incoming"),
        HashMap::from([("pstn".to_string(), faxbox.id.clone())]),
        "faxbox@box.test".into(),
        Arc::new(|| {}),
    )
    .unwrap();
    let answer = with_default
        .answer(&call)
        .expect("answered by the default faxbox");
    assert_eq!(answer.ident, "+1 555 700 0000");
    assert_eq!(b.store.receptions().unwrap()[0].faxbox_id, faxbox.id);
}

/// Faxbox dies after the last page arrived but before the fax was stored:
/// the next start puts it in the inbox and mails it, once.
#[test]
fn pages_received_before_a_crash_are_delivered_once_after_restart() {
    let (b, faxbox) = two_offices();
    let call = IncomingCall {
        line: "loopback".into(),
        call_id: "crash-1".into(),
        from_number: "15550002222".into(),
        to_number: "5557000".into(),
    };
    let answer = b.receiver.answer(&call).unwrap();
    // The line wrote the pages, then the process died before `deliver`.
    std::fs::write(&answer.tiff, encode_fax_tiff(&pages(2, 200)).unwrap()).unwrap();

    let restarted = Receiver::new(
        b.store.clone(),
        b.dir.join("incoming"),
        HashMap::new(),
        "faxbox@box.test".into(),
        b.options.mail_queued.clone(),
    )
    .unwrap();
    assert_eq!(restarted.recover().unwrap(), 1);
    assert_eq!(restarted.recover().unwrap(), 0, "delivered once");
    let inbox = inbox(&b.store);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].faxbox_id.as_ref(), Some(&faxbox.id));
    assert_eq!(inbox[0].rx_result.as_ref().unwrap().pages, 2);
    assert!(!answer.tiff.exists());
    let mails = b.sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.sink.received().len(), 1, "mailed once");
}

/// The header line SpanDSP draws above a sent page, read back as text.
/// Its layout is fixed ("  %2d-%s-%d  %02d:%02d    <header> ...", one
/// 16-pixel glyph per character, each pixel drawn twice across at 204
/// dpi): the sender's header text is "0123456789", so the glyphs of the
/// ten digits are the characters from position 24 on, and the time's
/// digits (positions 15, 16, 18 and 19) are read by matching them.
fn header_time(page: &BitPage, header_rows: u32) -> (u32, u32) {
    let bytes_per_char = 4;
    let cell = |c: usize| -> Vec<u8> {
        (0..header_rows)
            .flat_map(|y| page.row(y)[c * bytes_per_char..(c + 1) * bytes_per_char].to_vec())
            .collect()
    };
    let digits: Vec<Vec<u8>> = (0..10).map(|d| cell(24 + d)).collect();
    let read = |c: usize| -> u32 {
        digits
            .iter()
            .position(|g| *g == cell(c))
            .unwrap_or_else(|| panic!("the header's character {c} is not a digit")) as u32
    };
    (read(15) * 10 + read(16), read(18) * 10 + read(19))
}

#[test]
fn the_page_header_shows_the_time_in_the_sending_faxbox_zone() {
    use chrono::{TimeZone, Timelike};
    let (b, _) = two_offices();
    // India is UTC+5:30: a header in UTC, or in any whole-hour zone,
    // shows other minutes.
    let zone = "Asia/Kolkata";
    let sales = b
        .store
        .create_faxbox(
            &b.sender,
            FaxboxFields {
                name: Some("Sales".into()),
                fax_header: Some("0123456789".into()),
                fax_timezone: Some(zone.into()),
                ..Default::default()
            },
        )
        .unwrap();
    let sent = pages(1, 300);
    let tiff = encode_fax_tiff(&sent).unwrap();
    let line = loopback(&b.dir, 2, &[], false);
    line.set_inbound(b.receiver.clone());
    let scheduler =
        Scheduler::start(b.store.clone(), vec![Arc::new(line)], b.options.clone()).unwrap();
    let before = faxbox::model::now();
    // What every intake copies from the faxbox into the job.
    let job = crate::scheduler::queue_fax(
        &b.store,
        faxbox::model::NewFax {
            account_id: b.sender.clone(),
            faxbox_id: Some(sales.id.clone()),
            to_number: "5557000".into(),
            to_number_normalized: "5557000".into(),
            retries: 1,
            from_number: Some("15550009999".into()),
            fax_identity_name: Some(sales.fax_header.clone()),
            fax_timezone: sales.fax_timezone.clone(),
            ..Default::default()
        },
        &tiff,
    );
    scheduler.wake();
    wait_terminal(
        &b.store,
        std::slice::from_ref(&job),
        Duration::from_secs(60),
    );
    scheduler.stop(Duration::from_secs(5));
    let after = faxbox::model::now();
    assert_eq!(
        b.store.fax(&job).unwrap().status,
        Some(JobStatus::Completed)
    );
    let fax = &inbox(&b.store)[0];
    let got = &received_pages(&b.store, fax)[0];
    let (hour, minute) = header_time(got, got.height - sent[0].height);
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let expected: Vec<(u32, u32)> = (before..=after + 1)
        .map(|t| {
            let local = tz.timestamp_opt(t, 0).unwrap();
            (local.hour(), local.minute())
        })
        .collect();
    assert!(
        expected.contains(&(hour, minute)),
        "the header says {hour:02}:{minute:02}; in {zone} it was {:02}:{:02}",
        expected[0].0,
        expected[0].1
    );
}
