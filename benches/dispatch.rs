//! Dispatch latency: from the moment a job is committed as due (and the
//! scheduler told, as intake does) to the moment a line is asked to place
//! its call. The target (docs/architecture.md, "Numbers to beat"): under 10 ms.
//!
//! `cargo bench --bench dispatch` (or `make bench-dispatch`). Prints p50,
//! p99 and max over a few hundred jobs queued one at a time on an idle box.

#[path = "common/summary.rs"]
mod summary;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faxbox::config::LoopbackConfig;
use faxbox::documents::{BitPage, encode_fax_tiff};
use faxbox::lines::{Call, Inbound, Line, LineError, LoopbackLine, OutgoingFax, ProgressSink};
use faxbox::model::{DocumentKind, JobStatus, NewDocument, NewFax};
use faxbox::scheduler::{Scheduler, SchedulerOptions};
use faxbox::store::Store;

/// Notes when each call was asked for.
struct Stopwatch {
    inner: LoopbackLine,
    seized: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Line for Stopwatch {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn channels(&self) -> u32 {
        self.inner.channels()
    }
    fn calls_in_progress(&self) -> u32 {
        self.inner.calls_in_progress()
    }
    fn set_inbound(&self, inbound: Arc<dyn Inbound>) {
        self.inner.set_inbound(inbound)
    }
    fn send(&self, fax: OutgoingFax, progress: ProgressSink) -> Result<Call, LineError> {
        let id = fax.call_id.split('-').next().unwrap_or_default().to_owned();
        self.seized.lock().unwrap().insert(id, Instant::now());
        self.inner.send(fax, progress)
    }
}

fn main() {
    let jobs = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_data_dir(dir.path()).unwrap());
    let account = store.create_account("Bench", None).unwrap().id;
    let width = 1728;
    let tiff = encode_fax_tiff(&[BitPage {
        width,
        height: 40,
        x_dpi: 204.0,
        y_dpi: 196.0,
        rows: vec![0; (width as usize).div_ceil(8) * 40],
    }])
    .unwrap();
    let seized = Arc::new(Mutex::new(HashMap::new()));
    let line = Stopwatch {
        inner: LoopbackLine::new(
            "loopback",
            LoopbackConfig {
                channels: 64,
                realtime: false,
                numbers: Default::default(),
            },
            dir.path(),
        ),
        seized: seized.clone(),
    };
    let scheduler = Scheduler::start(
        store.clone(),
        vec![Arc::new(line)],
        SchedulerOptions::new(dir.path().join("spool"), "bench@localhost".into()),
    )
    .unwrap();

    let mut latencies = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let fax = store
            .create_job(
                NewFax {
                    account_id: account.clone(),
                    to_number: format!("555{i:04}"),
                    to_number_normalized: format!("555{i:04}"),
                    retries: 1,
                    ..Default::default()
                },
                vec![NewDocument {
                    kind: DocumentKind::FaxTiff,
                    content_type: "image/tiff".into(),
                    filename: "fax_file.tiff".into(),
                    pages: Some(1),
                    bytes: tiff.clone(),
                }],
                JobStatus::Pending,
            )
            .unwrap();
        let due = Instant::now();
        scheduler.wake();
        let deadline = due + Duration::from_secs(5);
        let at = loop {
            if let Some(t) = seized.lock().unwrap().get(fax.id.as_str()) {
                break *t;
            }
            assert!(
                Instant::now() < deadline,
                "job {} never reached the line",
                fax.id
            );
            std::thread::yield_now();
        };
        latencies.push(at.duration_since(due));
        // Let the box go idle again, so each job meets an idle dispatcher.
        std::thread::sleep(Duration::from_millis(5));
    }
    scheduler.stop(Duration::from_secs(30));
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!("dispatch latency over {jobs} jobs (job due -> line seized):");
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (target: under 10 ms)",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    let p99 = pct(0.99).as_secs_f64() * 1e3;
    summary::record(
        "dispatch",
        "job due -> line seized, p99",
        &format!("{p99:.2} ms"),
        "target 10 ms",
        &format!("{:.2}x", p99 / 10.0),
    );
}
