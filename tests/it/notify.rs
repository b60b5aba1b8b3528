//! Outgoing mail through a real SMTP server on loopback: delivered when the
//! smarthost is up, kept and retried while it is down.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use faxbox::notify::{Backoff, Postman};
use faxbox::store::Store;

use crate::harness::{MailSink, smarthost, wait_for};

fn quick() -> Backoff {
    Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(1),
    }
}

/// A store in a new data dir, and a smarthost on loopback: its port and
/// what it receives.
fn store_and_smarthost() -> (tempfile::TempDir, Arc<Store>, u16, MailSink) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (dir, store, port, MailSink::start(listener))
}

#[test]
fn queued_mail_is_delivered_to_the_smarthost() {
    let (_dir, store, port, sink) = store_and_smarthost();

    let postman = Postman::start(store.clone(), smarthost(port), quick()).unwrap();
    let message = b"From: faxbox@box.test\r\nTo: bob@example.com\r\nSubject: test\r\n\r\nhello\r\n";
    store
        .enqueue_mail(None, &["bob@example.com".into()], message)
        .unwrap();
    postman.wake();
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].from, "faxbox@box.test");
    assert_eq!(got[0].to, vec!["bob@example.com"]);
    assert!(got[0].text().contains("Subject: test"));
    // The queue knows it was delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.unsent_mail_count().unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    postman.stop();
}

#[test]
fn mail_waits_while_the_smarthost_is_down_and_arrives_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    // A port with nothing listening: the smarthost is down.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let postman = Postman::start(store.clone(), smarthost(port), quick()).unwrap();
    store
        .enqueue_mail(
            None,
            &["carol@example.com".into()],
            b"Subject: late\r\n\r\nbody\r\n",
        )
        .unwrap();
    postman.wake();
    // The failed delivery is recorded and the mail stays queued.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let queued = store.due_mail(i64::MAX, 10).unwrap().mails;
        assert_eq!(queued.len(), 1, "the mail is never lost");
        if queued[0].attempts >= 1 {
            assert!(queued[0].last_error.is_some());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no delivery attempt");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The smarthost comes back on the same port.
    let sink = MailSink::start(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let got = sink.wait_for(1, Duration::from_secs(15));
    assert_eq!(got[0].to, vec!["carol@example.com"]);
    assert!(got[0].text().contains("Subject: late"));
    postman.stop();
}

#[test]
fn a_smarthost_refusing_a_bare_ehlo_name_gets_the_box_fully_qualified_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = MailSink::start_fqdn_helo_only(listener);
    store
        .enqueue_mail(
            None,
            &["bob@example.com".into()],
            b"From: faxbox@box.test\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
        )
        .unwrap();
    // A bare host name is refused (504) and the mail stays queued ...
    let mut bare = smarthost(port);
    bare.hello_name = "faxbox".into();
    let postman = Postman::start(store.clone(), bare, quick()).unwrap();
    postman.wake();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let queued = store.due_mail(i64::MAX, 10).unwrap().mails;
        assert_eq!(queued.len(), 1);
        if let Some(e) = &queued[0].last_error {
            assert!(e.contains("504") || e.contains("fully-qualified"), "{e}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no delivery attempt");
        std::thread::sleep(Duration::from_millis(20));
    }
    postman.stop();
    assert!(sink.received().is_empty());
    // ... and the box's configured name (smtp.hostname) is taken.
    let config = faxbox::config::Config::parse(
        "[smtp]\nhostname = \"fax.office.example\"\n[smarthost]\nhost = \"127.0.0.1\"\n",
        std::path::Path::new("faxbox.toml"),
    )
    .unwrap();
    assert_eq!(config.smarthost.hello_name, "fax.office.example");
    let mut named = smarthost(port);
    named.hello_name = config.smarthost.hello_name.clone();
    let postman = Postman::start(store.clone(), named, quick()).unwrap();
    postman.wake();
    let got = sink.wait_for(1, Duration::from_secs(15));
    assert_eq!(got[0].helo, "fax.office.example");
    postman.stop();
    // Without smtp.hostname the name is still fully qualified.
    let default = faxbox::config::Config::embedded_default();
    assert!(
        default.smarthost.hello_name.contains('.'),
        "{}",
        default.smarthost.hello_name
    );
}

/// A queued mail whose sealed bytes were changed on the disk cannot be
/// opened: it alone is set aside, with a reason the admin can read, and the
/// mail queued after it in the same due batch is still delivered.
#[test]
fn a_tampered_mail_is_set_aside_and_the_rest_of_the_queue_still_goes() {
    let (_dir, store, port, sink) = store_and_smarthost();
    let tampered = store
        .enqueue_mail(
            None,
            &["alice@example.com".into()],
            b"From: faxbox@box.test\r\nTo: alice@example.com\r\nSubject: first\r\n\r\nhello\r\n",
        )
        .unwrap();
    store
        .enqueue_mail(
            None,
            &["bob@example.com".into()],
            b"From: faxbox@box.test\r\nTo: bob@example.com\r\nSubject: second\r\n\r\nhello\r\n",
        )
        .unwrap();
    // One bit of the first mail's sealed bytes changes in the database file.
    let db = rusqlite::Connection::open(store.path()).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut sealed: Vec<u8> = db
        .query_row(
            "SELECT message FROM mail_queue WHERE id = ?1",
            [tampered],
            |r| r.get(0),
        )
        .unwrap();
    let middle = sealed.len() / 2;
    sealed[middle] ^= 1;
    db.execute(
        "UPDATE mail_queue SET message = ?2 WHERE id = ?1",
        rusqlite::params![tampered, sealed],
    )
    .unwrap();

    let postman = Postman::start(store.clone(), smarthost(port), quick()).unwrap();
    postman.wake();
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].to, vec!["bob@example.com"]);
    assert!(got[0].text().contains("Subject: second"));
    wait_for(
        "the second mail recorded sent",
        Duration::from_secs(5),
        || store.unsent_mail_count().unwrap() == 0,
    );
    postman.stop();
    assert_eq!(sink.received().len(), 1, "the tampered mail never went");
    let (failed_at, sent_at, why): (Option<i64>, Option<i64>, String) = db
        .query_row(
            "SELECT failed_at, sent_at, last_error FROM mail_queue WHERE id = ?1",
            [tampered],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(failed_at.is_some() && sent_at.is_none());
    assert!(why.contains("does not open with the document key"), "{why}");
    assert!(store.due_mail(i64::MAX, 10).unwrap().mails.is_empty());
}
