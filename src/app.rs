//! The running appliance: open the store, recover from the last stop, make
//! the first account on a new box, run until asked to stop, stop in order.
//!
//! `run` takes any shutdown future so that tests start the whole appliance
//! in-process and stop it when they like (docs/style.md, the anchors: mini-redis).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::{info, warn};

use crate::api::{Api, ApiOptions, Ctx, LiveStatus};
use crate::config::{Config, LogConfig, LogFormat};
use crate::gate::IntakeGate;
use crate::inbound::Receiver;
use crate::lines::{self, Line};
use crate::model::{Account, Faxbox, FaxboxFields, FaxboxId};
use crate::notify::{Backoff, Courier, Postman};
use crate::scheduler::{Scheduler, SchedulerOptions};
use crate::store::{DataDirOwner, KeyLocation, Store};

/// `faxbox serve`: logging, a runtime, and `run` until SIGINT or SIGTERM.
pub fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("faxbox")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()?;
        run(config, shutdown).await
    })
}

/// `faxbox serve --tui`: the appliance with the dashboard in the
/// foreground on the console. Logs go to the dashboard's log pane (never
/// over the screen); quitting the dashboard stops the appliance, and
/// SIGTERM ends both.
pub fn serve_with_dashboard(config: Config) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let log = crate::tui::LogBuffer::new(1000);
    init_logging_into(&config.log, log.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("faxbox")
        .build()
        .context("cannot start the async runtime")?;
    let data_dir = config.data_dir.clone();
    let (ready, api) = std::sync::mpsc::channel();
    let (quit, quit_asked) = tokio::sync::oneshot::channel::<()>();
    let stopped = Arc::new(AtomicBool::new(false));
    let appliance = {
        let (stopped, banner) = (stopped.clone(), log.clone());
        std::thread::Builder::new()
            .name("appliance".into())
            .spawn(move || {
                let result = runtime.block_on(async {
                    let signal = shutdown_signal()?;
                    // The terminal closing stops the box too, in order.
                    let mut hangup =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                            .context("cannot listen for SIGHUP")?;
                    let shutdown = async move {
                        tokio::select! {
                            _ = signal => {}
                            _ = hangup.recv() => {}
                            _ = quit_asked => {}
                        }
                    };
                    run_inner(config, shutdown, Some(Console { ready, banner })).await
                });
                stopped.store(true, Ordering::Release);
                result
            })
            .context("cannot start the appliance's thread")?
    };
    // No address means the appliance ended before it was ready: its error
    // says why.
    let dashboard = match api.recv() {
        Ok(address) => std::fs::read_to_string(data_dir.join(LOCAL_KEY_FILE))
            .with_context(|| format!("cannot read the local API key in {}", data_dir.display()))
            .and_then(|key| {
                crate::tui::run_with(
                    &format!("http://{address}"),
                    key.trim(),
                    crate::tui::Options {
                        log: Some(log.clone()),
                        stopped: Some(stopped),
                    },
                )
            }),
        Err(_) => Ok(()),
    };
    let _ = quit.send(());
    let served = appliance
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the appliance's thread panicked")));
    if served.is_err() || dashboard.is_err() {
        // The log pane is gone with the screen: its last lines say what led
        // to the error.
        let lines = log.lines();
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{line}");
        }
    }
    served.and(dashboard)
}

/// Where a dashboard in the foreground takes the banner and learns the
/// API's address.
struct Console {
    ready: std::sync::mpsc::Sender<std::net::SocketAddr>,
    banner: crate::tui::LogBuffer,
}

/// What the first start of a new box created.
#[derive(Debug, Clone)]
pub struct FirstRun {
    pub account: Account,
    pub api_key: String,
    pub faxbox: Faxbox,
}

/// How long calls may go on after a stop is asked for when the
/// configuration does not say (`stop_grace_s`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(crate::config::DEFAULT_STOP_GRACE_S);

/// Runs the appliance until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    run_inner(config, shutdown, None).await
}

/// [`run`]; with a `console`, the banner goes to it instead of stdout.
async fn run_inner(
    config: Config,
    shutdown: impl Future<Output = ()>,
    console: Option<Console>,
) -> anyhow::Result<()> {
    // Bound first: a port already taken is reported before anything starts.
    let listeners = Listeners::bind(&config)?;
    let grace = config.stop_grace;
    let appliance = {
        let config = config.clone();
        // Opening and recovery touch the disk: keep them off the async workers.
        tokio::task::spawn_blocking(move || Appliance::start(config, listeners)).await??
    };
    let banner = banner(&config, &appliance);
    match console {
        Some(console) => {
            // The hints for a shell ("Next: ...") are not for the console.
            let about = banner.split("\nNext:").next().unwrap_or_default();
            for line in about.lines().filter(|l| !l.is_empty()) {
                console.banner.push(line);
            }
            let _ = console.ready.send(appliance.api_addr());
        }
        None => print!("{banner}"),
    }
    info!(data_dir = %config.data_dir.display(), api = %appliance.api_addr(), "faxbox is running");
    // Under systemd (Type=notify): ready only now that every port listens.
    crate::systemd::ready(&format!("running; API on http://{}", appliance.api_addr()));
    crate::systemd::spawn_watchdog();

    shutdown.await;
    crate::systemd::stopping();
    info!(
        grace_s = grace.as_secs(),
        "stopping: no new faxes; calls in progress may finish"
    );
    tokio::task::spawn_blocking(move || appliance.stop(grace)).await?;
    info!("stopped");
    Ok(())
}

/// The ports of the appliance, bound before anything starts: a port
/// already taken is reported at once, and tests bind port 0 and read the
/// addresses back from the running [`Appliance`].
pub struct Listeners {
    pub http: std::net::TcpListener,
    pub smtp: std::net::TcpListener,
    /// When `ipp.enabled`.
    pub ipp: Option<std::net::TcpListener>,
    /// When a line fetches fax images over HTTP (FreeSWITCH's
    /// `document = "http"`).
    pub file_proxy: Option<std::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses the configuration names.
    pub fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let bind = |addr: std::net::SocketAddr, what: &str, key: &str| {
            std::net::TcpListener::bind(addr).with_context(|| {
                format!("cannot listen for {what} on {addr} ({key} in the configuration)")
            })
        };
        Ok(Listeners {
            http: bind(config.http.listen, "the HTTP API", "http.listen")?,
            smtp: bind(config.smtp.listen, "email to fax", "smtp.listen")?,
            ipp: match config.ipp.enabled {
                true => Some(bind(config.ipp.listen, "print-to-fax", "ipp.listen")?),
                false => None,
            },
            file_proxy: match crate::config::need_file_proxy(&config.lines) {
                true => Some(bind(
                    config.file_proxy.listen,
                    "FreeSWITCH's fax downloads",
                    "file_proxy.listen",
                )?),
                false => None,
            },
        })
    }
}

/// The running fax box: it owns every running part and stops them in
/// order with [`Appliance::stop`]. Nothing else holds the scheduler, so no
/// leftover handle can keep it from stopping (issue 19).
pub struct Appliance {
    config: Config,
    first_run: Option<FirstRun>,
    store: Arc<Store>,
    gate: IntakeGate,
    smtp: Option<crate::smtp::SmtpServer>,
    ipp: Option<crate::ipp::IppServer>,
    announcer: Option<crate::ipp::Announcer>,
    api: Option<Api>,
    scheduler: Option<Scheduler>,
    postman: Option<Postman>,
    courier: Option<Courier>,
    purger: Option<crate::retention::Purger>,
    api_addr: std::net::SocketAddr,
    smtp_addr: std::net::SocketAddr,
    ipp_addr: Option<std::net::SocketAddr>,
    _file_proxy: Option<Arc<lines::freeswitch::FileProxy>>,
    /// Released last, once nothing of this box touches the data dir.
    _owner: DataDirOwner,
}

impl Appliance {
    /// Takes the data dir, recovers from the last stop, makes the first
    /// account on a new box and starts every part on `listeners`. Blocks
    /// (disk and threads): call it off the async workers.
    ///
    /// Long on purpose: the start order is one sequence read top to bottom,
    /// each part built from what the ones before it made, and `stop` undoes
    /// it in reverse (docs/style.md, principle 7); split, the order would
    /// hide across functions.
    pub fn start(config: Config, listeners: Listeners) -> anyhow::Result<Appliance> {
        let smtp_tls = match &config.smtp.tls {
            Some(files) => Some(
                crate::smtp::load_tls(&files.certificate, &files.key)
                    .map_err(|e| anyhow::anyhow!("smtp.tls_certificate / smtp.tls_key: {e}"))?,
            ),
            None => None,
        };
        let data_dir = config.data_dir.clone();
        // Before recovery: recovery closes the calls of a box that is gone,
        // never those of one still running (issue 19).
        let owner = DataDirOwner::claim(&data_dir)?;
        let store = Store::open_data_dir(&data_dir)?;
        // Refused here, naming the key file, rather than failing each fax.
        store.set_key_location(KeyLocation::find(
            config.storage.key_file.as_deref(),
            &data_dir,
        ));
        let key = store.unlock()?;
        info!(
            fingerprint = key.fingerprint(),
            "documents are sealed at rest"
        );
        store.set_mail_domain(&config.smtp.hostname);
        let recovered = recover(&store, &data_dir.join("spool"))?;
        let first_run = bootstrap(&store)?;
        ensure_local_key(&store, &data_dir)?;
        let store = Arc::new(store);

        // The file proxy runs only for lines that fetch faxes from it.
        let file_proxy = match listeners.file_proxy {
            Some(listener) => {
                let fp = &config.file_proxy;
                Some(Arc::new(
                    lines::freeswitch::FileProxy::start(listener, fp.allow.clone(), fp.url.clone())
                        .context("cannot start the file proxy")?,
                ))
            }
            None => None,
        };
        let lines: Vec<Arc<dyn Line>> = config
            .lines
            .iter()
            .map(|l| lines::from_config(l, &config.data_dir, file_proxy.as_ref()))
            .collect::<anyhow::Result<_>>()?;
        let postman = Postman::start(store.clone(), config.smarthost.clone(), Backoff::default())
            .context("cannot start the mail delivery thread")?;
        let callback_backoff = Backoff {
            first: config.callback_retry,
            max: Duration::from_secs(3600),
        };
        let courier = Courier::start(store.clone(), callback_backoff)
            .context("cannot start the callback delivery thread")?;
        // What queues mail (a finished or received fax) may queue the
        // faxbox's callback with it: one ring wakes both.
        let mail_queued: Arc<dyn Fn() + Send + Sync> = {
            let (mail, callback) = (postman.waker(), courier.waker());
            Arc::new(move || {
                mail();
                callback();
            })
        };
        let mut options =
            SchedulerOptions::new(config.data_dir.join("spool"), config.smarthost.from.clone());
        options.mail_queued = mail_queued.clone();
        // Every conversion, at intake and at send time, is drawn in a render
        // worker process under memory and CPU limits (issue 18).
        let drawing = crate::documents::Drawing::worker_of_this_program();
        options.convert.drawing = drawing.clone();
        let receiver = Arc::new(
            Receiver::new(
                store.clone(),
                config.data_dir.join("incoming"),
                config
                    .lines
                    .iter()
                    .filter_map(|l| Some((l.name.clone(), FaxboxId(l.default_faxbox.clone()?))))
                    .collect(),
                config.smarthost.from.clone(),
                mail_queued.clone(),
            )
            .context("cannot prepare the folder for incoming faxes")?,
        );
        // Pages that arrived before the last stop go to their inbox first.
        let delivered = receiver.recover()?;
        if delivered > 0 {
            warn!(
                faxes = delivered,
                "delivered faxes received just before the last stop"
            );
        }
        for line in &lines {
            line.set_inbound(receiver.clone());
        }
        let scheduler = Scheduler::start(store.clone(), lines, options)
            .context("cannot start the scheduler")?;
        scheduler.notify_recovered(&recovered);
        let live = LiveStatus::default();
        live.follow(scheduler.subscribe())
            .context("cannot start the API's status thread")?;
        let wake = scheduler.waker();
        let gate = IntakeGate::default();
        let intake = Arc::new(crate::intake::IntakeCounts::default());
        let mut api_options = ApiOptions {
            token_lifetime: config.token_lifetime,
            cors_origins: config.http.cors_origins.clone(),
            ..ApiOptions::default()
        };
        api_options.convert.drawing = drawing.clone();
        let api = Api::start(
            listeners.http,
            Ctx::new(store.clone(), wake.clone(), live, api_options)
                .with_lines(scheduler.board())
                .with_intake(intake.clone())
                .with_gate(gate.clone()),
        )
        .context("cannot start the HTTP API")?;
        let smtp = {
            let mut options =
                crate::smtp::SmtpOptions::new(&config.smtp.hostname, &config.smarthost.from);
            options.tls = smtp_tls;
            options.trusted_relays = config.smtp.trusted_relays.clone();
            options.convert.drawing = drawing.clone();
            let counts = intake.clone();
            options.accepted = Arc::new(move |n| counts.count(crate::intake::Door::Smtp, n));
            crate::smtp::SmtpServer::start(
                listeners.smtp,
                crate::smtp::SmtpCtx {
                    store: store.clone(),
                    wake: wake.clone(),
                    mail_queued,
                    options,
                },
            )
            .context("cannot start the SMTP listener")?
        };
        let ipp = match listeners.ipp {
            Some(listener) => Some(
                crate::ipp::IppServer::start(
                    listener,
                    crate::ipp::IppCtx {
                        store: store.clone(),
                        wake,
                        options: crate::ipp::IppOptions {
                            allow: config.ipp.allow.clone(),
                            require_auth: config.ipp.require_auth,
                            accepted: Arc::new(move |n| intake.count(crate::intake::Door::Ipp, n)),
                            gate: gate.clone(),
                            convert: crate::documents::ConvertOptions {
                                drawing,
                                ..Default::default()
                            },
                            ..Default::default()
                        },
                    },
                )
                .context("cannot start the IPP printers")?,
            ),
            None => None,
        };
        let announcer = match &ipp {
            Some(ipp) if config.ipp.mdns => announce_printers(&store, ipp.local_addr(), &config),
            _ => None,
        };
        // Faxes past their retention go at start and then daily (issue 23).
        let purger = crate::retention::Purger::start(store.clone())
            .context("cannot start the retention purge")?;
        Ok(Appliance {
            api_addr: api.local_addr(),
            smtp_addr: smtp.local_addr(),
            ipp_addr: ipp.as_ref().map(|i| i.local_addr()),
            config,
            first_run,
            store,
            gate,
            smtp: Some(smtp),
            ipp,
            announcer,
            api: Some(api),
            scheduler: Some(scheduler),
            postman: Some(postman),
            courier: Some(courier),
            purger: Some(purger),
            _file_proxy: file_proxy,
            _owner: owner,
        })
    }

    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api_addr
    }

    pub fn smtp_addr(&self) -> std::net::SocketAddr {
        self.smtp_addr
    }

    pub fn ipp_addr(&self) -> Option<std::net::SocketAddr> {
        self.ipp_addr
    }

    /// What the first start of this box created, when this was it.
    pub fn first_run(&self) -> Option<&FirstRun> {
        self.first_run.as_ref()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stops in order: intake closes first (SMTP answers 421, the API 503
    /// with Retry-After, the printers not-accepting-jobs) so nothing is
    /// accepted that no call would send; calls in progress may finish for
    /// up to `grace`, then the rest are hung up and recorded interrupted;
    /// then the API and the printers stop, the postman puts down its mail
    /// and the data dir is released.
    pub fn stop(mut self, grace: Duration) {
        self.shut(grace);
    }

    fn shut(&mut self, grace: Duration) {
        self.gate.close();
        if let Some(mut purger) = self.purger.take() {
            purger.stop();
        }
        if let Some(smtp) = self.smtp.take() {
            smtp.stop(Duration::from_secs(10));
        }
        drop(self.announcer.take());
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.stop(grace);
        }
        if let Some(ipp) = self.ipp.take() {
            ipp.stop();
        }
        if let Some(api) = self.api.take() {
            api.stop();
        }
        if let Some(postman) = self.postman.take() {
            postman.stop();
        }
        if let Some(courier) = self.courier.take() {
            courier.stop();
        }
    }
}

impl Drop for Appliance {
    /// Dropped without `stop` (a test that panicked): calls are hung up at
    /// once rather than left running on threads nobody waits for.
    fn drop(&mut self) {
        self.shut(Duration::ZERO);
    }
}

/// The DNS-SD announcement of every faxbox's printer, kept up to date as
/// faxboxes come and go; a failure is logged (printing by address still
/// works) rather than stopping the box.
fn announce_printers(
    store: &Arc<Store>,
    listen: std::net::SocketAddr,
    config: &Config,
) -> Option<crate::ipp::Announcer> {
    let faxboxes = match crate::ipp::all_faxboxes(store) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "cannot list the faxboxes to announce their printers");
            return None;
        }
    };
    match crate::ipp::Announcer::start(&faxboxes, listen, config.ipp.require_auth) {
        Ok(mut a) => {
            if let Err(e) = a.follow(store.clone(), Duration::from_secs(30)) {
                warn!(error = %e, "new faxboxes are announced at the next start only");
            }
            Some(a)
        }
        Err(e) => {
            warn!(error = %e, "the fax printers are not announced on the LAN (ipp.mdns)");
            None
        }
    }
}

/// Start-up recovery (docs/architecture.md, invariant 2): calls cut by the last stop are queued
/// again with their attempt recorded as interrupted, those whose pages were
/// all confirmed are completed, and jobs whose documents were still being
/// converted go to the queue, where the attempt converts their originals
/// (Kazoo left them stuck, docs/kazoo.md 13 item 6). Those whose last page was
/// sent but not confirmed fail with a message saying it has probably
/// arrived, and are not sent again on their own (`AfterStop` in the
/// store). Fax images in the spool of attempts that are over are removed.
/// Returns the jobs recovery finished, whose senders are to be told.
fn recover(store: &Store, spool: &std::path::Path) -> anyhow::Result<Vec<crate::model::FaxId>> {
    let report = store.recover()?;
    if !report.requeued.is_empty() {
        warn!(
            jobs = report.requeued.len(),
            "faxes that were on a line when Faxbox stopped are queued again"
        );
    }
    if !report.completed.is_empty() {
        warn!(
            jobs = report.completed.len(),
            "faxes whose every page was confirmed before Faxbox stopped are completed"
        );
    }
    for id in &report.unconfirmed {
        warn!(
            fax = %id,
            "the last page of this fax was sent but not confirmed when Faxbox stopped: it has \
             probably arrived and is not sent again on its own (faxbox jobs retry sends it again)"
        );
    }
    for id in &report.attaching {
        store.attach_documents(id, Vec::new())?;
    }
    clean_spool(store, spool)?;
    Ok(report
        .completed
        .into_iter()
        .chain(report.unconfirmed)
        .collect())
}

/// Removes the spool's fax images (`<fax>-<attempt>.tif`) of attempts that
/// are over, and anything else left in it: nothing in the data dir is kept
/// that no row refers to (issue 19).
fn clean_spool(store: &Store, spool: &std::path::Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(spool) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(format!("cannot read the spool {}", spool.display())),
    };
    let open: std::collections::HashSet<String> = store
        .open_attempts()?
        .into_iter()
        .map(|(fax, n)| format!("{fax}-{n}.tif"))
        .collect();
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if open.contains(&name) || !entry.file_type()?.is_file() {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => {
                warn!(file = %entry.path().display(), error = %e, "cannot remove a leftover spool file")
            }
        }
    }
    if removed > 0 {
        info!(
            files = removed,
            "removed fax images left in the spool by the last stop"
        );
    }
    Ok(())
}

/// On a box with no account yet: an admin account, an API key and a
/// default faxbox, so the box can fax at once.
pub fn bootstrap(store: &Store) -> anyhow::Result<Option<FirstRun>> {
    if !store.accounts()?.is_empty() {
        return Ok(None);
    }
    let account = store.create_admin_account("Admin")?;
    let (_, api_key) = store.create_api_key(&account.id, "created at first start")?;
    let faxbox = store.create_faxbox(
        &account.id,
        FaxboxFields {
            name: Some("Default faxbox".into()),
            ..Default::default()
        },
    )?;
    info!(account = %account.id, faxbox = %faxbox.id, "first start: created the admin account");
    Ok(Some(FirstRun {
        account,
        api_key,
        faxbox,
    }))
}

/// The file in the data dir holding the local admin API key, readable only
/// by the data dir's owner: whoever can read the data dir administers the
/// box anyway (the CLI opens the store directly), and `faxbox send` on the
/// box needs a key that the store keeps only hashed.
pub const LOCAL_KEY_FILE: &str = "api.key";

/// Makes sure the data dir has a working local admin key, creating one for
/// the admin account when the file is missing or its key was revoked.
pub fn ensure_local_key(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(LOCAL_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && store.account_for_api_key(text.trim())?.is_some()
    {
        return Ok(());
    }
    let Some(admin) = store.accounts()?.into_iter().find(|a| a.is_admin) else {
        return Ok(());
    };
    let (_, secret) = store.create_api_key(&admin.id, "local admin key (faxbox send)")?;
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write the local API key to {}", path.display()))?;
    writeln!(file, "{secret}")?;
    Ok(())
}

fn banner(config: &Config, appliance: &Appliance) -> String {
    let store = appliance.store();
    let first = appliance.first_run();
    let (api, smtp, ipp) = (
        appliance.api_addr(),
        appliance.smtp_addr(),
        appliance.ipp_addr(),
    );
    let mut text = format!(
        "Faxbox {} is running.\n  data:  {} (from {})\n",
        env!("CARGO_PKG_VERSION"),
        store.path().display(),
        config.source
    );
    text.push_str(&format!("  api:   http://{api}/v2\n"));
    text.push_str(&format!("  smtp:  {smtp} (email to fax)\n"));
    if let Some(ipp) = ipp {
        text.push_str(&format!(
            "  ipp:   ipp://{ipp}/ipp/faxout/<faxbox id> (print to fax)\n"
        ));
    }
    for line in &config.lines {
        text.push_str(&format!(
            "  line:  {} ({} channels)\n",
            line.name,
            line.channels()
        ));
    }
    if let Some(first) = first {
        text.push_str(&format!(
            "\nFirst start: created the account \"{}\" ({}).\n  \
             API key:  {}\n            (shown once: keep it somewhere safe)\n  \
             faxbox:   {} ({}), mail address <number>@{}\n            \
             (email it a PDF to fax it; see \"Email to fax\" in the README)\n",
            first.account.name,
            first.account.id,
            first.api_key,
            first.faxbox.name,
            first.faxbox.id,
            first.faxbox.smtp_email_address,
        ));
    }
    text.push_str(
        "\nNext:\n  faxbox send --to <number> --wait <file.pdf>   send a fax and follow it\n  \
         faxbox jobs list      the faxes and their state\n  \
         faxbox faxbox list --account <id>   faxboxes and their addresses\n\
         Press Ctrl-C to stop.\n",
    );
    text
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM (systemd stop) from now on and
/// returns a future that completes on the first of them. The handlers are
/// installed before this returns, so a signal that arrives while the
/// appliance is still starting is not lost (nor does it kill the process).
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// Logs into the dashboard's log pane: short lines (the local time of
/// day, the level, the message), no colours.
fn init_logging_into(log: &LogConfig, buffer: crate::tui::LogBuffer) {
    struct TimeOfDay;
    impl tracing_subscriber::fmt::time::FormatTime for TimeOfDay {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            write!(w, "{}", chrono::Local::now().format("%H:%M:%S"))
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_timer(TimeOfDay)
        .with_writer(buffer);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Human logs on a terminal, JSON lines for log shippers; `RUST_LOG`
/// overrides the configured level.
pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    // Colours only on a terminal: journald and log files would keep the
    // escape codes as text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
