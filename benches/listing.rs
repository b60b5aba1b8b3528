//! Listings and status with 400,000 faxes queued (issue 27): the real
//! release `faxbox serve` on a data dir holding that many pending faxes,
//! asked many times for the first page of `faxes/outgoing`, for a page deep
//! in it (by `start_key`), for `/v2/status` (what the dashboard polls) and
//! for `/metrics` (what Prometheus scrapes).
//! Target: every answer under 100 ms. Before issue 27 the unpaged listing
//! took 30.7 s, a page of 50 1.7-2.4 s and the status 6.6 s.
//!
//! `cargo bench --bench listing` (or `make bench-listing`). Prints p50, p99
//! and max of each, and max as a ratio to the target. The faxes are due, in the
//! past and the only line is paused, so they stay queued while measured.
//! `cargo test --all-targets` runs this in a debug build with a small box,
//! as a check that it still works.

#[path = "common/summary.rs"]
mod summary;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faxbox::client::{Http, RawResponse};
use faxbox::model::{JobStatus, NewDocument, NewFax, now};
use faxbox::store::Store;

const TARGET_MS: f64 = 100.0;

/// Fills `data` with `faxes` queued faxes of one account; its API key and
/// how the id of the `i`th fax (0 the oldest) ends (it begins with `i` in
/// eight hex digits).
/// One fax goes in through the store; the rest are copies of its row and
/// its document, made by SQL in one transaction (intake at 1,000 faxes/s
/// would take most of an hour). A new fax every 100 ms of the last
/// `faxes / 10` seconds, as a busy intake makes them.
fn fill(data: &Path, faxes: usize) -> (String, String, String) {
    let store = Store::open_data_dir(data).expect("a store");
    let account = store.create_account("Clinic", None).expect("an account").id;
    let (_, key) = store.create_api_key(&account, "bench").expect("a key");
    let template = store
        .create_job(
            NewFax {
                account_id: account.clone(),
                to_number: "5550100".into(),
                to_number_normalized: "+15550100".into(),
                retries: 3,
                ..Default::default()
            },
            vec![NewDocument {
                kind: faxbox::model::DocumentKind::Original,
                content_type: "application/pdf".into(),
                filename: "referral.pdf".into(),
                pages: Some(1),
                bytes: b"%PDF-1.4 a referral letter".to_vec(),
            }],
            JobStatus::Pending,
        )
        .expect("the first fax")
        .id;
    drop(store);

    let mut conn = rusqlite::Connection::open(data.join("faxbox.sqlite")).expect("the database");
    let tx = conn.transaction().expect("a transaction");
    let t0 = now() - faxes as i64 / 10;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
         INSERT INTO faxes (id, account_id, faxbox_id, folder, status, to_number,
                            to_number_normalized, retries, attempts, retry_after, due_at,
                            error, doc, created, modified)
         SELECT printf('%08x', i) || substr(t.id, 9), t.account_id, t.faxbox_id, t.folder,
                t.status, printf('555%07d', i), printf('+1555%07d', i), t.retries, 0, 0,
                ?3 + i / 10, NULL, t.doc, ?3 + i / 10, ?3 + i / 10
         FROM n, faxes t WHERE t.id = ?1",
        rusqlite::params![template.as_str(), faxes as i64 - 1, t0],
    )
    .expect("the queue");
    // The copies keep the template's `sealed` flag: left at its default
    // (clear), serve's one-time start-up pass would seal all 400,000 of them
    // while the listing is measured (an upgrade's cost, not a listing's).
    // The listing never opens a document, and these copies would not open
    // (a sealed blob is bound to its own row).
    tx.execute(
        "INSERT INTO documents (id, fax_id, kind, seq, content_type, filename, size, sha256,
                                pages, data, sealed, created)
         SELECT f.id || 'd', f.id, d.kind, d.seq, d.content_type, d.filename, d.size, d.sha256,
                d.pages, d.data, d.sealed, f.created
         FROM faxes f, documents d WHERE d.fax_id = ?1 AND f.id != ?1",
        [template.as_str()],
    )
    .expect("their documents");
    // The line is paused (toner, say): every fax is due and stays queued.
    tx.execute(
        "INSERT INTO line_state (name, paused, reason, modified) VALUES ('loopback', 1, 'bench', 0)",
        [],
    )
    .expect("the line is paused");
    tx.commit().expect("the queue is stored");
    (account.to_string(), key, template.as_str()[8..].to_owned())
}

/// `faxbox serve` on `dir/data`, its API on a free port; its base URL.
fn serve(dir: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    std::fs::write(
        dir.join("faxbox.toml"),
        format!(
            "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = 2\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .expect("the config");
    let child = Command::new(env!("CARGO_BIN_EXE_faxbox"))
        .args(["--data-dir", dir.join("data").to_str().unwrap(), "serve"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("faxbox serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while Http::new()
        .request("GET", &format!("{base}/healthz"), &[], None)
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "faxbox serve answers within a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, base)
}

/// Asks `url` `times` times (after two to warm up), each answer checked by
/// `check`; the sorted times.
fn time(
    http: &Http,
    token: &str,
    url: &str,
    times: usize,
    check: impl Fn(&RawResponse),
) -> Vec<f64> {
    let ask = || {
        let t = Instant::now();
        let r = http
            .request("GET", url, &[("X-Auth-Token", token)], None)
            .expect("the box answers");
        let took = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        check(&r);
        took
    };
    ask();
    ask();
    let mut ms: Vec<f64> = (0..times).map(|_| ask()).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn report(what: &str, ms: &[f64]) {
    let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    let max = ms[ms.len() - 1];
    println!(
        "{what:<34} {:>4} requests: p50 {:>6.1} ms, p99 {:>6.1} ms ({:.2}x of the {TARGET_MS} ms target), max {:>6.1} ms ({:.2}x)",
        ms.len(),
        pct(0.50),
        pct(0.99),
        pct(0.99) / TARGET_MS,
        max,
        max / TARGET_MS,
    );
    summary::record(
        "listing",
        &format!("{what}, max of {}", ms.len()),
        &format!("{max:.1} ms"),
        &format!("target {TARGET_MS} ms"),
        &format!("{:.2}x", max / TARGET_MS),
    );
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (faxes, times) = if measuring {
        (400_000, 200)
    } else {
        (2_000, 5)
    };
    let dir = tempfile::tempdir().expect("a scratch folder");
    let data = dir.path().join("data");
    let t = Instant::now();
    let (account, key, id_end) = fill(&data, faxes);
    println!(
        "{faxes} queued faxes written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (mut child, base) = serve(dir.path());
    let http = Http::new();
    let token = http
        .request(
            "PUT",
            &format!("{base}/v2/api_auth"),
            &[("Content-Type", "application/json")],
            Some(format!("{{\"data\":{{\"api_key\":\"{key}\"}}}}").into_bytes()),
        )
        .expect("a token")
        .json()["auth_token"]
        .as_str()
        .expect("a token")
        .to_owned();

    let outgoing = format!("{base}/v2/accounts/{account}/faxes/outgoing");
    let first = time(&http, &token, &outgoing, times, |r| {
        let r = r.json();
        assert_eq!(r["page_size"], 50, "a page of the default size");
        assert!(r["next_start_key"].is_string(), "and more to come");
    });
    // A start key most of the way down: the 50 faxes at 80% of the queue.
    let deep_key = format!("{:08x}{id_end}", faxes / 5);
    let deep_url = format!("{outgoing}?start_key={deep_key}");
    let deep = time(&http, &token, &deep_url, times, |r| {
        let r = r.json();
        assert_eq!(r["data"][0]["id"], deep_key.as_str());
        assert_eq!(r["page_size"], 50);
    });
    let status = time(&http, &token, &format!("{base}/v2/status"), times, |r| {
        assert_eq!(
            r.json()["data"]["totals"]["pending"],
            faxes as u64,
            "every queued fax counted"
        );
    });
    let pending = format!("faxbox_faxes{{folder=\"outbox\",status=\"pending\"}} {faxes}");
    let metrics = time(&http, &token, &format!("{base}/metrics"), times, |r| {
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains(&pending), "{text}");
    });
    let _ = child.kill();
    let _ = child.wait();

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("with {faxes} faxes queued ({build} faxbox serve, loopback HTTP):");
    report("faxes/outgoing, first page", &first);
    report("faxes/outgoing, start_key at 80%", &deep);
    report("/v2/status", &status);
    report("/metrics", &metrics);
}
