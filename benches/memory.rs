//! Memory of the running box under calls (issue 27): `faxbox serve` with a
//! 4-channel loopback line sends 200 one-page faxes taken in over the API
//! at full speed (not real time). Prints the resident memory (VmRSS) idle,
//! the peak during the calls (VmHWM) and after them, each as a ratio to its
//! target: idle under 20 MB, under 60 MB during the calls, and back within
//! 5 MB of idle after them.
//!
//! `cargo bench --bench memory` (or `make bench-memory`). Under `cargo test
//! --all-targets` (a debug build, without `--bench`) it sends a few faxes
//! as a check that the benchmark works, and gives no verdict.

#[path = "common/summary.rs"]
mod summary;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faxbox::client::{Document, Session};
use faxbox::model::{FaxId, JobStatus};
use faxbox::store::Store;

const CHANNELS: u32 = 4;
const FAXES: usize = 200;
const CLIENTS: usize = 4;
const IDLE_TARGET_MB: f64 = 20.0;
const PEAK_TARGET_MB: f64 = 60.0;
const AFTER_ABOVE_IDLE_MB: f64 = 5.0;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let faxes = if measuring { FAXES } else { 8 };
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path());
    let at_start = memory_mb(serve.pid(), "VmRSS");
    let parts_at_start = parts(serve.pid());
    let sessions: Vec<Session> = (0..CLIENTS)
        .map(|_| Session::login(&serve.api_url, &serve.api_key).unwrap())
        .collect();
    // Idle: started, and has answered its first clients.
    let idle = memory_mb(serve.pid(), "VmRSS");

    let started = Instant::now();
    let ids = send_all(&sessions, faxes);
    let taken_in = started.elapsed();
    let store = Store::open_existing(&dir.path().join("data")).unwrap();
    wait_until_sent(&store, &ids);
    let sent = started.elapsed();
    let peak = memory_mb(serve.pid(), "VmHWM");

    // The box gives memory back once its last call has ended; its
    // dispatcher looks at least once a second. Read after two of its looks.
    std::thread::sleep(Duration::from_secs(2));
    let after = memory_mb(serve.pid(), "VmRSS");
    let after_parts = parts(serve.pid());
    serve.stop();

    println!(
        "faxbox serve, {faxes} one-page faxes over {CHANNELS} loopback channels from {CLIENTS} API clients: \
         taken in within {:.1} s, all sent within {:.1} s",
        taken_in.as_secs_f64(),
        sent.as_secs_f64()
    );
    println!("RSS at start       {at_start:>6.1} MB  ({parts_at_start})");
    report("RSS idle", idle, IDLE_TARGET_MB, "under 20 MB", measuring);
    report(
        "RSS peak during",
        peak,
        PEAK_TARGET_MB,
        "under 60 MB",
        measuring,
    );
    report(
        "RSS after",
        after,
        idle + AFTER_ABOVE_IDLE_MB,
        &format!("idle + 5 MB = {:.1} MB", idle + AFTER_ABOVE_IDLE_MB),
        measuring,
    );
    println!(
        "  ({:+.1} MB over idle, 2 s after the last fax was sent; {after_parts})",
        after - idle
    );
}

fn report(what: &str, mb: f64, target: f64, words: &str, measuring: bool) {
    let verdict = match (measuring, mb <= target) {
        (false, _) => "",
        (true, true) => ": ok",
        (true, false) => ": OVER TARGET",
    };
    println!(
        "{what:<18} {mb:>6.1} MB  {:.2}x of the target ({words}){verdict}",
        mb / target
    );
    summary::record(
        "memory",
        what,
        &format!("{mb:.1} MB"),
        words,
        &format!("{:.2}x", mb / target),
    );
}

/// Queues `faxes` one-page PDFs, spread over the clients, as fast as the
/// API takes them; their ids.
fn send_all(sessions: &[Session], faxes: usize) -> Vec<FaxId> {
    let document = Document {
        name: "letter.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: one_page_pdf(),
    };
    std::thread::scope(|scope| {
        let clients: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(c, session)| {
                let document = &document;
                scope.spawn(move || {
                    (c..faxes)
                        .step_by(sessions.len())
                        .map(|i| {
                            let job = session
                                .send(
                                    &serde_json::json!({ "to_number": format!("5550{i:03}") }),
                                    std::slice::from_ref(document),
                                )
                                .unwrap();
                            FaxId(job["id"].as_str().unwrap().to_owned())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    })
}

fn wait_until_sent(store: &Store, ids: &[FaxId]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut left: Vec<&FaxId> = ids.iter().collect();
    while !left.is_empty() {
        assert!(Instant::now() < deadline, "{} faxes not sent", left.len());
        left.retain(|id| {
            let status = store.fax(id).unwrap().status;
            assert_ne!(status, Some(JobStatus::Failed), "{id:?} failed");
            status != Some(JobStatus::Completed)
        });
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `faxbox serve` on a fresh data dir in `dir`, with the loopback line.
struct Serve {
    child: Child,
    api_url: String,
    api_key: String,
}

impl Serve {
    fn start(dir: &Path) -> Serve {
        std::fs::write(
            dir.join("faxbox.toml"),
            format!(
                "[[line]]\nname = \"loopback\"\ntype = \"loopback\"\nchannels = {CHANNELS}\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_faxbox"))
            .args(["--data-dir", dir.join("data").to_str().unwrap(), "serve"])
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        // Drained to the end, so that the box never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let (mut api_url, mut api_key) = (None, None);
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("serve prints its banner");
            let line = line.trim();
            if let Some(url) = line.strip_prefix("api:") {
                api_url = Some(url.trim().trim_end_matches("/v2").to_owned());
            }
            if let Some(key) = line.strip_prefix("API key:") {
                api_key = Some(key.trim().to_owned());
            }
            if line.contains("Press Ctrl-C to stop") {
                break;
            }
        }
        Serve {
            child,
            api_url: api_url.expect("the banner names the API"),
            api_key: api_key.expect("a first start prints an API key"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What RSS is made of: the pages of the program file that ran (shared,
/// and paged in once), and the memory the box allocated.
fn parts(pid: u32) -> String {
    format!(
        "program file {:.1} MB, anonymous {:.1} MB",
        memory_mb(pid, "RssFile"),
        memory_mb(pid, "RssAnon")
    )
}

/// A memory figure of a process from `/proc/PID/status`, in MB.
fn memory_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb / 1024.0
}

fn one_page_pdf() -> Vec<u8> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
    let mut pdf = Pdf::new();
    let (catalog, tree, page, font, content) = (
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
    p.resources().fonts().pair(Name(b"F1"), font);
    p.finish();
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    let mut c = Content::new();
    c.begin_text()
        .set_font(Name(b"F1"), 14.0)
        .next_line(72.0, 700.0)
        .show(Str(b"A one-page fax for the memory benchmark."))
        .end_text();
    pdf.stream(content, &c.finish());
    pdf.finish()
}
