//! The scheduler: which job runs next on which line, under the per-account
//! `max_outbound` limit, per-number serialization and line capacity, and
//! what happens after each attempt (`policy`, applied by `attempt`).
//!
//! One dispatcher thread claims due jobs (highest priority, then oldest due
//! first; a job whose faxbox's sending window is closed waits for it to
//! open, `window`) and starts each
//! attempt on a thread of its own. It wakes at once when told (a new job, a
//! call that ended, a settings change) and otherwise sleeps until the next
//! job falls due, or at most a second, so that changes made by another
//! process (the `faxbox` CLI on the same data dir) are seen promptly.
//! All state lives in the store; the dispatcher keeps only which channels
//! it has handed out.

mod attempt;
mod board;
pub mod events;
pub mod policy;
mod window;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use board::{LineBoard, LineNow};
pub use events::Event;

use crate::documents::ConvertOptions;
use crate::doorbell::Doorbell;
use crate::lines::Line;
use crate::model::{AccountId, now};
use crate::store::Store;

/// The longest the dispatcher sleeps without a wake-up.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How the scheduler runs.
#[derive(Clone)]
pub struct SchedulerOptions {
    /// Where attempts write the fax image the line reads.
    pub spool_dir: PathBuf,
    /// Multiplies retry delays: 1.0 in service; tests shrink the minutes
    /// between attempts instead of sleeping through them. (Stage timeouts
    /// are settings and are not scaled: a real-time call must not time out.)
    pub retry_delay_scale: f64,
    /// The sender address of notification mails.
    pub mail_from: String,
    /// Called after a notification mail was queued (wakes the postman).
    pub mail_queued: Arc<dyn Fn() + Send + Sync>,
    /// How an attempt converts originals that have no fax image yet.
    pub convert: ConvertOptions,
}

impl SchedulerOptions {
    pub fn new(spool_dir: PathBuf, mail_from: String) -> Self {
        SchedulerOptions {
            spool_dir,
            retry_delay_scale: 1.0,
            mail_from,
            mail_queued: Arc::new(|| {}),
            convert: ConvertOptions::default(),
        }
    }

    fn retry_delay(&self, seconds: i64) -> i64 {
        (seconds.max(0) as f64 * self.retry_delay_scale).round() as i64
    }
}

/// What the dispatcher and the attempt threads share.
struct Shared {
    store: Arc<Store>,
    lines: Vec<Arc<dyn Line>>,
    options: SchedulerOptions,
    /// Channels handed out per line: the truth for capacity, since a line
    /// counts a call only once its thread has started.
    reserved: Mutex<HashMap<String, u32>>,
    bell: Doorbell,
    events: events::Bus,
    /// Set at shutdown: attempts still running are hung up and recorded as
    /// interrupted.
    stopping: AtomicBool,
    /// The attempt threads that may still run, for shutdown to wait for.
    /// Finished ones are dropped as the dispatcher loops: a thread's stack
    /// stays mapped until its handle is joined or dropped, and keeping
    /// every handle held about 23 KB per call for good (issue 27: 5.3 MB
    /// after 200 faxes).
    attempts: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn ring(&self) {
        self.bell.ring();
    }

    /// Drops the handles of attempt threads that have ended; how many
    /// still run.
    fn reap_finished_attempts(&self) -> usize {
        let mut list = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|t| !t.is_finished());
        list.len()
    }

    fn release(&self, line: &str) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = reserved.get_mut(line) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The running scheduler.
pub struct Scheduler {
    shared: Arc<Shared>,
    dispatcher: Option<JoinHandle<()>>,
}

impl Scheduler {
    pub fn start(
        store: Arc<Store>,
        lines: Vec<Arc<dyn Line>>,
        options: SchedulerOptions,
    ) -> std::io::Result<Scheduler> {
        std::fs::create_dir_all(&options.spool_dir)?;
        let shared = Arc::new(Shared {
            store,
            lines,
            options,
            reserved: Mutex::new(HashMap::new()),
            bell: Doorbell::default(),
            events: events::Bus::new(),
            stopping: AtomicBool::new(false),
            attempts: Mutex::new(Vec::new()),
        });
        let dispatcher = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn({
                let shared = shared.clone();
                move || dispatch_until_stopped(&shared)
            })?;
        Ok(Scheduler {
            shared,
            dispatcher: Some(dispatcher),
        })
    }

    /// Something changed (a new job, a setting): look for work now.
    pub fn wake(&self) {
        self.shared.ring();
    }

    /// A handle that rings [`wake`](Self::wake) for the intakes. It shares
    /// only the doorbell, not the scheduler, so whoever owns the scheduler
    /// still decides when it stops (issue 19: a shared handle kept it
    /// alive past shutdown).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let shared = Arc::downgrade(&self.shared);
        Arc::new(move || {
            if let Some(shared) = shared.upgrade() {
                shared.ring();
            }
        })
    }

    /// Queues the receipts and error reports of jobs that start-up recovery
    /// finished: completed, or failed as not confirmed (issue 19). Their
    /// senders hear of them as of any other finished fax.
    pub fn notify_recovered(&self, faxes: &[crate::model::FaxId]) {
        for id in faxes {
            attempt::notify_recovered(&self.shared, id);
        }
    }

    /// What its lines are doing, for `/v2/status`.
    pub fn board(&self) -> LineBoard {
        LineBoard::new(self.shared.lines.clone())
    }

    /// Live events: job states and call progress, each sent after the fact
    /// it reports was committed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Stops claiming jobs, lets calls finish for up to `grace`, then hangs
    /// up the rest and records them as interrupted (they are sent again
    /// after the next start).
    pub fn stop(mut self, grace: Duration) {
        self.shut(grace);
    }

    fn shut(&mut self, grace: Duration) {
        self.shared.bell.stop();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
        let deadline = Instant::now() + grace;
        loop {
            let running = self.shared.reap_finished_attempts();
            if running == 0 {
                break;
            }
            if Instant::now() >= deadline && !self.shared.stopping.swap(true, Ordering::AcqRel) {
                warn!(
                    calls = running,
                    "hanging up calls still running at shutdown"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if self.dispatcher.is_some() {
            self.shut(Duration::ZERO);
        }
    }
}

fn dispatch_until_stopped(shared: &Arc<Shared>) {
    let mut trouble =
        crate::streak::FailureStreak::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut calls_running = false;
    loop {
        let left_waiting = match dispatch_due(shared) {
            Ok(waiting) => {
                if let Some(n) = trouble.succeeded() {
                    info!(failures = n, "the scheduler can use the store again");
                }
                waiting
            }
            Err(e) => {
                // A full or failing disk: back off rather than spin, and
                // log a line per interval with the count (issue 19).
                let verdict = trouble.failed();
                if let Some(n) = verdict.log {
                    warn!(
                        failures = n,
                        retry_in_s = verdict.wait.as_secs_f64(),
                        "the scheduler cannot use the store; faxes wait: {e}"
                    );
                }
                let deadline = Instant::now() + verdict.wait;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if !shared.bell.wait(left) {
                        return;
                    }
                }
                continue;
            }
        };
        // A batch whose last fax ended (on a line, by a cancel, or before
        // a crash) gets its combined receipt (issue 22).
        if crate::notify::queue_batch_receipts(&shared.store, &shared.options.mail_from) > 0 {
            (shared.options.mail_queued)();
        }
        // After dispatching, so that the attempts just started count.
        calls_running = settle_finished_attempts(shared, calls_running);
        // Due jobs that no line or limit let start wait for what frees one:
        // an attempt ending or a line resumed rings the bell, and a limit
        // raised in the settings is seen within MAX_IDLE. Without this the
        // dispatcher would spin on a queue behind busy or paused lines.
        let wait = match shared.store.next_due_at() {
            _ if left_waiting => MAX_IDLE,
            Ok(Some(due)) => {
                Duration::from_secs((due - now()).clamp(0, MAX_IDLE.as_secs() as i64) as u64)
            }
            _ => MAX_IDLE,
        };
        if !shared.bell.wait(wait) {
            return;
        }
    }
}

/// Forgets the attempt threads that have ended and, when the last call
/// has just ended, gives the memory the calls used back to the system
/// (glibc keeps it otherwise: `fax::alloc`). Whether calls still run.
fn settle_finished_attempts(shared: &Shared, calls_were_running: bool) -> bool {
    let running = shared.reap_finished_attempts();
    if calls_were_running && running == 0 {
        crate::fax::return_freed_memory_to_the_system();
    }
    running > 0
}

/// Starts every due job that the limits allow, highest priority first,
/// then oldest due: a high fax skips the queue, but a job the limits stop
/// (its account's `max_outbound`, a call to its number) is passed over, not
/// waited for, so priority never breaks them. Whether a due job was left
/// waiting for a line or a limit.
fn dispatch_due(shared: &Arc<Shared>) -> crate::store::Result<bool> {
    let store = &shared.store;
    let t = now();
    let due = store.due_jobs(t, 500)?;
    if due.is_empty() {
        return Ok(false);
    }
    let mut left_waiting = false;
    let paused = store.paused_lines()?;
    let serialize = store.setting_bool(None, "serialize_outbound_numbers")?;
    let mut limits: HashMap<AccountId, u32> = HashMap::new();
    let mut windows = window::Windows::default();
    for job in due {
        if let Some(opens) = windows.opening(store, &job, t)? {
            if store.hold_for_window(&job.id, opens)? {
                info!(fax = %job.id, until = opens, "outside the faxbox's sending windows: held until they open");
            }
            continue;
        }
        let Some(line) = free_line(shared, &paused) else {
            left_waiting = true;
            break;
        };
        let limit = match limits.get(&job.account_id) {
            Some(l) => *l,
            None => {
                let l = store.setting_i64(Some(&job.account_id), "max_outbound")? as u32;
                limits.insert(job.account_id.clone(), l);
                l
            }
        };
        // Both counts include jobs claimed moments ago in this loop: a claim
        // is committed before the next job is looked at.
        if store.active_jobs(&job.account_id)? >= limit {
            left_waiting = true;
            continue;
        }
        if serialize && store.number_is_active(&job.to_number_normalized)? {
            left_waiting = true;
            continue;
        }
        let Some((fax, attempt)) = store.claim(&job.id, line.name())? else {
            continue;
        };
        *shared
            .reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(line.name().to_owned())
            .or_default() += 1;
        info!(fax = %fax.id, attempt = attempt.number, line = line.name(), to = %fax.to_number, "starting attempt");
        shared.events.job_status(&fax);
        let handle = {
            let shared = shared.clone();
            let line = line.clone();
            let name = format!(
                "attempt-{}",
                &fax.id.as_str()[..8.min(fax.id.as_str().len())]
            );
            std::thread::Builder::new().name(name).spawn(move || {
                let line_name = line.name().to_owned();
                attempt::run(&shared, line, fax, attempt);
                shared.release(&line_name);
                shared.ring();
            })
        };
        match handle {
            Ok(h) => shared
                .attempts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(h),
            Err(e) => {
                // The claim stands; recovery at the next start re-queues it.
                warn!("cannot start an attempt thread: {e}");
                shared.release(line.name());
            }
        }
    }
    Ok(left_waiting)
}

/// The first line that is not paused and has a channel free.
fn free_line(
    shared: &Shared,
    paused: &std::collections::BTreeSet<String>,
) -> Option<Arc<dyn Line>> {
    let reserved = shared.reserved.lock().unwrap_or_else(|e| e.into_inner());
    shared
        .lines
        .iter()
        .find(|l| {
            !paused.contains(l.name())
                && reserved.get(l.name()).copied().unwrap_or(0) < l.channels()
        })
        .cloned()
}
