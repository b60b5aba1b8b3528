//! The `faxbox` command line: argument parsing and one function per command.
//!
//! Output is scriptable: a `create` prints the new id (for `apikey create`,
//! the key) alone on stdout, `--json` prints whole objects, and errors go to
//! stderr with a non-zero exit status, phrased for the person at the
//! keyboard. Admin commands work directly on the data dir: whoever can read
//! it is the administrator (local trust).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{Config, LogFormat};
use crate::model::{AccountId, FaxboxFields, FaxboxId, Folder, JobStatus, UserId};
use crate::store::{JobFilter, KeyLocation, SETTINGS, Store};

/// `faxbox --version`: which release, from which commit, for which machine
/// and when it was built (set by build.rs; "unknown" commit from a tarball).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FAXBOX_COMMIT"),
    ", ",
    env!("FAXBOX_TARGET"),
    ", built ",
    env!("FAXBOX_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "faxbox",
    version = VERSION,
    about = "A virtual fax machine for small offices",
    after_help = "Start with `faxbox serve`; it prints how to send the first fax."
)]
pub struct Cli {
    /// The configuration file (default: ./faxbox.toml when present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Overrides `data_dir` from the configuration.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print whole objects as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the fax box: lines, scheduler and intake, until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Send a fax through the HTTP API of a running `faxbox serve`; prints the job id.
    Send(SendArgs),
    /// The live dashboard of a running `faxbox serve`: lines, queues, retries.
    Tui(TuiArgs),
    /// Create an empty fax store in the data dir, for setting a box up with
    /// the admin commands before its first `serve` (which does this too).
    Init,
    /// Check a configuration file and print what it resolves to.
    CheckConfig,
    /// Convert documents into a fax TIFF, or a fax TIFF into a PDF.
    Convert(crate::documents::cli::ConvertArgs),
    /// Send a 3-page test fax over a private loopback line with each modem,
    /// check every page arrived intact, and print a table.
    Selftest,
    /// Accounts: one per office or tenant.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Users of an account (they own faxboxes and may send by email).
    #[command(subcommand)]
    User(UserCommand),
    /// Faxboxes: virtual fax machines with a mail address and numbers.
    #[command(subcommand)]
    Faxbox(Box<FaxboxCommand>),
    /// API keys for the HTTP API.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Runtime settings (Kazoo's `system_config.fax` keys), per box or account.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Fax jobs: list, inspect, retry, cancel.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Lines: list them, pause one (it takes no new calls) or resume it.
    #[command(subcommand)]
    Line(LineCommand),
    /// Received faxes: list, inspect, export as PDF.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Copy the whole box (faxes, documents, settings, keys) into one
    /// archive, while it runs.
    Backup {
        /// The archive to write (a tar file; keep it as private as the box).
        #[arg(value_name = "FILE")]
        archive: PathBuf,
    },
    /// Remove what is past its retention (document_retention_days,
    /// record_retention_days) now, as the running box does daily.
    Purge {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// The audit trail: who did what to which fax or faxbox, when and from where.
    Audit {
        /// Only this account's entries.
        #[arg(long)]
        account: Option<String>,
        /// The newest N entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Bring a backup back as a new box in the data dir, which must be a
    /// new or empty folder; then start it with `faxbox serve`.
    Restore {
        /// An archive written by `faxbox backup`.
        #[arg(value_name = "FILE")]
        archive: PathBuf,
        /// The document key of the box the backup was taken from (its
        /// `document.key`, kept apart from the backup): checked and put in
        /// the new data dir.
        #[arg(long, value_name = "KEYFILE")]
        key: Option<PathBuf>,
    },
    /// Internal: draws one conversion sent on stdin under memory and CPU
    /// limits (started by the box itself, see `documents::worker`).
    #[command(hide = true)]
    RenderWorker,
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// Received faxes, newest first.
    List {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        faxbox: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A received fax with its result and documents.
    Show {
        /// The fax id, or its first characters as the dashboard shows them.
        id: String,
    },
    /// Write a received fax as a PDF.
    Export {
        /// The fax id, or its first characters as the dashboard shows them.
        id: String,
        #[arg(short, long, value_name = "FILE.pdf")]
        output: PathBuf,
    },
    /// Delete a received fax for good: its record, pages and mails.
    Delete {
        /// The fax id, or its first characters as the dashboard shows them.
        id: String,
        /// Delete only the pages and keep the record (Kazoo's attachment delete).
        #[arg(long)]
        documents_only: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LineCommand {
    /// The configured lines and whether they are paused.
    List,
    /// Take no new calls on this line; calls in progress finish.
    Pause {
        name: String,
        #[arg(long, default_value = "paused by the operator")]
        reason: String,
    },
    /// Take calls on a paused line again.
    Resume { name: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Log as text for a terminal or JSON for log shippers (overrides the config).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    /// Show the live dashboard on this terminal while serving (logs go to
    /// its log pane; `q` stops the fax box).
    #[arg(long)]
    pub tui: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The number to fax to.
    #[arg(long, value_name = "NUMBER")]
    pub to: String,
    /// The faxbox to send from (its caller id, header and retries apply).
    #[arg(long, value_name = "ID")]
    pub faxbox: Option<String>,
    /// Total attempts, 1 to 4 (default: the faxbox's retries, else the
    /// account's default_retry_count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub retries: Option<u8>,
    /// The caller id number to send.
    #[arg(long, value_name = "NUMBER")]
    pub from: Option<String>,
    /// The text in the page header (fax_identity_name).
    #[arg(long, value_name = "TEXT")]
    pub header: Option<String>,
    #[command(flatten)]
    pub document_password: crate::documents::cli::DocumentPassword,
    /// Send no earlier than this time: 2026-12-05T18:00:00+01:00, or
    /// "2026-12-05 18:00" in the faxbox's time zone.
    #[arg(long, value_name = "TIME")]
    pub send_at: Option<String>,
    /// low, normal (the default) or high: a high fax goes before waiting
    /// normal ones.
    #[arg(long, value_name = "PRIORITY")]
    pub priority: Option<String>,
    /// The recipient's name (on the cover page).
    #[arg(long, value_name = "NAME")]
    pub to_name: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Put a cover page first (default: as the faxbox says).
    #[arg(long, conflicts_with = "no_cover")]
    pub cover: bool,
    /// No cover page, whatever the faxbox says.
    #[arg(long)]
    pub no_cover: bool,
    /// The note on the cover page.
    #[arg(long, value_name = "TEXT")]
    pub cover_note: Option<String>,
    /// The API (default: the http.listen address of the configuration).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An API key (default: the local admin key in the data dir, written by `faxbox serve`).
    #[arg(long, env = "FAXBOX_TOKEN", value_name = "KEY", hide_env_values = true)]
    pub token: Option<String>,
    /// Follow the fax until it is sent or fails; the exit status says which.
    #[arg(long)]
    pub wait: bool,
    /// The documents, faxed in this order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TuiArgs {
    /// The API (default: the http.listen address of the configuration).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An API key (default: the local admin key in the data dir, written by `faxbox serve`).
    #[arg(long, env = "FAXBOX_TOKEN", value_name = "KEY", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its id.
    Create {
        name: String,
        /// Mail domain whose `<number>@realm` addresses reach this account.
        #[arg(long)]
        realm: Option<String>,
    },
    /// Every account with its realm.
    List,
    /// One account as JSON.
    Show { id: String },
    /// Delete an account and everything in it.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints its id.
    Create {
        #[arg(long)]
        account: String,
        email: String,
        #[arg(long, default_value = "")]
        name: String,
        /// The login name for Kazoo clients' user login (`PUT
        /// /v2/user_auth`); the email when a password is given without one.
        #[arg(long)]
        username: Option<String>,
        /// The user's password (Monster UI and kazoo-sdk log in with it).
        #[arg(long, env = "FAXBOX_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// The users of an account.
    List {
        #[arg(long)]
        account: String,
    },
    /// Delete a user; faxboxes they owned stay, without an owner.
    Delete { id: String },
}

/// Faxbox fields settable from the command line (Kazoo names).
#[derive(Debug, Args, Default)]
pub struct FaxboxArgs {
    /// Outbound caller id number.
    #[arg(long)]
    caller_id: Option<String>,
    #[arg(long)]
    caller_name: Option<String>,
    /// Page header text.
    #[arg(long)]
    fax_header: Option<String>,
    /// Station id sent to the far machine (TSI/CSI).
    #[arg(long)]
    fax_identity: Option<String>,
    #[arg(long)]
    fax_timezone: Option<String>,
    /// Total attempts for each fax (0 to 4).
    #[arg(long)]
    retries: Option<i64>,
    /// The user who owns the faxbox (may send from their email address).
    #[arg(long)]
    owner: Option<String>,
    /// A mail domain of your own for this faxbox, e.g. fax.example.com.
    #[arg(long)]
    custom_smtp_email_address: Option<String>,
    /// A sender allowed to fax by email: an address or an anchored pattern (repeat).
    #[arg(long = "permit", value_name = "PATTERN")]
    permit: Vec<String>,
    /// An inbound number (DID) that rings this faxbox (repeat).
    #[arg(long = "number", value_name = "NUMBER")]
    numbers: Vec<String>,
    /// Email a copy of every received fax to this address (repeat).
    #[arg(long = "notify-inbound", value_name = "EMAIL")]
    notify_inbound: Vec<String>,
    /// Email receipts of sent faxes to this address (repeat).
    #[arg(long = "notify-outbound", value_name = "EMAIL")]
    notify_outbound: Vec<String>,
    /// When faxes may ring out, in the faxbox's time zone, e.g.
    /// "mon-fri 08:00-18:00" (repeat); "none" lifts the limit.
    #[arg(long = "sending-window", value_name = "WINDOW")]
    sending_windows: Vec<String>,
    /// Put a cover page before its faxes (a fax may say otherwise).
    #[arg(long = "cover-page", value_name = "on|off", value_parser = ["on", "off"])]
    cover_page: Option<String>,
    /// Its own cover page template, from a file (see the README's "Cover
    /// pages"); "none" goes back to the built-in one.
    #[arg(long = "cover-template", value_name = "FILE")]
    cover_template: Option<PathBuf>,
}

impl FaxboxArgs {
    /// The cover page after these arguments, over `current`; `None` when
    /// they do not touch it.
    fn cover_page(
        &self,
        current: crate::model::CoverPage,
    ) -> anyhow::Result<Option<crate::model::CoverPage>> {
        if self.cover_page.is_none() && self.cover_template.is_none() {
            return Ok(None);
        }
        let mut cover = current;
        if let Some(on) = &self.cover_page {
            cover.enabled = on == "on";
        }
        match &self.cover_template {
            Some(path) if path.as_os_str() == "none" => cover.template = None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the cover page template {}: {e}",
                        path.display()
                    )
                })?;
                cover.template = Some(text);
            }
            None => {}
        }
        Ok(Some(cover))
    }

    fn into_fields(self, name: Option<String>) -> FaxboxFields {
        let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
        let notifications = if self.notify_inbound.is_empty() && self.notify_outbound.is_empty() {
            None
        } else {
            Some(crate::model::FaxboxNotifications {
                inbound: crate::model::EmailTargets {
                    send_to: self.notify_inbound,
                },
                outbound: crate::model::EmailTargets {
                    send_to: self.notify_outbound,
                },
            })
        };
        FaxboxFields {
            name,
            caller_id: self.caller_id,
            caller_name: self.caller_name,
            fax_header: self.fax_header,
            fax_identity: self.fax_identity,
            fax_timezone: self.fax_timezone,
            retries: self.retries,
            owner_id: self.owner.map(UserId),
            custom_smtp_email_address: self.custom_smtp_email_address,
            smtp_permission_list: list(self.permit),
            sending_windows: match self.sending_windows.as_slice() {
                [] => None,
                [none] if none.eq_ignore_ascii_case("none") => Some(Vec::new()),
                _ => Some(self.sending_windows),
            },
            notifications,
            numbers: list(self.numbers),
            ..Default::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum FaxboxCommand {
    /// Create a faxbox; prints its id.
    Create {
        #[arg(long)]
        account: String,
        name: String,
        #[command(flatten)]
        fields: FaxboxArgs,
    },
    /// The faxboxes of an account with their mail addresses.
    List {
        #[arg(long)]
        account: String,
    },
    /// One faxbox with all its fields.
    Show { id: String },
    /// Change the fields given; the others stay as they are.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: FaxboxArgs,
    },
    /// Delete a faxbox; its faxes stay in the account.
    Delete { id: String },
    /// Give faxboxes addresses under the current default_smtp_domain (after
    /// it changed); prints each old and new address. Custom addresses stay.
    Readdress {
        /// Only this account's faxboxes.
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key; prints the key (shown only this once).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// The API keys of an account (ids and labels; the keys are not shown).
    List {
        #[arg(long)]
        account: String,
    },
    /// Revoke an API key: it stops working at once.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a setting's effective value (`faxbox config get fax max_outbound`).
    Get {
        #[arg(long)]
        account: Option<String>,
        #[arg(value_parser = ["fax"])]
        category: String,
        /// The key; omit to list every setting.
        key: Option<String>,
    },
    /// Set a setting for the box, or with --account for one account.
    Set {
        #[arg(long)]
        account: Option<String>,
        #[arg(value_parser = ["fax"])]
        category: String,
        key: String,
        /// The value: a number, true/false, text, or JSON.
        value: String,
    },
    /// Remove a value so the box-wide value or the default applies again.
    Unset {
        #[arg(long)]
        account: Option<String>,
        #[arg(value_parser = ["fax"])]
        category: String,
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Fax jobs, newest first.
    List {
        #[arg(long)]
        account: Option<String>,
        /// attaching_files, pending, processing, completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// inbox or outbox.
        #[arg(long)]
        folder: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A job with its documents and every attempt.
    Show {
        /// The job id, or its first characters as the dashboard shows them.
        id: String,
    },
    /// A pending job: try now. A finished one: send again as a new job (prints its id).
    Retry {
        /// The job id, or its first characters as the dashboard shows them.
        id: String,
    },
    /// Cancel a job; one on a line now is hung up.
    Cancel {
        /// The job id, or its first characters as the dashboard shows them.
        id: String,
    },
    /// The summary of a fax sent to several numbers at once: how many of
    /// its faxes are in each state, and each fax's number and state.
    Batch {
        /// The batch id, or the id of one of its faxes (or its first
        /// characters as the dashboard shows them).
        id: String,
    },
    /// Delete a job for good: its record, documents, attempts and mails. A
    /// job on a line now is refused (cancel it first).
    Delete {
        /// The job id, or its first characters as the dashboard shows them.
        id: String,
        /// Delete only the documents and keep the record (Kazoo's
        /// attachment delete); the job must be finished.
        #[arg(long)]
        documents_only: bool,
    },
}

/// Prints a line to stdout, or fails with the write's error: a reader
/// that went away (`faxbox account list | head -1`) is not a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// Whether `e` is stdout's reader having gone away (a closed pipe).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs one command and turns its outcome into an exit status.
pub fn main(cli: Cli) -> ExitCode {
    // A render worker reads no configuration and touches no data dir.
    if matches!(cli.command, Command::RenderWorker) {
        return crate::documents::worker::serve();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // As `head` closing the pipe early means: the reader has enough.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faxbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command. Long on purpose: one arm per command, so the
/// dispatch reads as the command list of `faxbox --help`; arms longer than
/// a hand-over are the few commands with no module of their own.
fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::discover(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let out = Output { json: cli.json };
    let key_location = || KeyLocation::find(config.storage.key_file.as_deref(), &config.data_dir);
    let open = || {
        // Beside a running box, on its store: never creating one, never
        // running recovery (only `serve` does either).
        let store = Store::open_existing(&config.data_dir).with_context(|| {
            format!("cannot open the fax store in {}", config.data_dir.display())
        })?;
        store.set_key_location(key_location());
        store.set_mail_domain(&config.smtp.hostname);
        anyhow::Ok(store)
    };
    match cli.command {
        Command::Serve(args) => {
            if let Some(format) = args.log_format {
                config.log.format = if format == "json" {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                };
            }
            if args.tui {
                crate::app::serve_with_dashboard(config)
            } else {
                crate::app::serve(config)
            }
        }
        Command::Init => {
            let store = Store::open_data_dir(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the fax store in {}",
                    config.data_dir.display()
                )
            })?;
            store.set_key_location(key_location());
            store.unlock()?;
            println!("{}", store.path().display());
            Ok(())
        }
        Command::CheckConfig => {
            say!("{}: ok", config.source);
            say!("data_dir = {}", config.data_dir.display());
            say!("http     = {}", config.http.listen);
            say!("smtp     = {}", config.smtp.listen);
            say!("proxy    = {}", config.file_proxy.listen);
            for line in &config.lines {
                say!("line {:?}: {} channels", line.name, line.channels());
            }
            Ok(())
        }
        Command::Send(args) => send(&config, args),
        Command::Tui(args) => {
            let (url, key) = api_access(&config, args.url, args.token)?;
            crate::tui::run(&url, &key)
        }
        Command::Selftest => crate::lines::selftest::run(),
        Command::Convert(args) => crate::documents::cli::run(args),
        Command::Account(cmd) => account(&open()?, &out, cmd),
        Command::User(cmd) => user(&open()?, &out, cmd),
        Command::Faxbox(cmd) => faxbox(&open()?, &out, *cmd),
        Command::Apikey(cmd) => apikey(&open()?, &out, cmd),
        Command::Config(cmd) => settings(&open()?, &out, cmd),
        Command::Jobs(cmd) => jobs(&open()?, &out, cmd),
        Command::Line(cmd) => line(&config, &open()?, &out, cmd),
        Command::Inbox(cmd) => inbox(&open()?, &out, cmd),
        Command::Backup { archive } => {
            let done = crate::backup::backup(&config.data_dir, &archive)?;
            say!(
                "{}: {} faxes, {} documents, {:.1} MB in {:.1} s",
                archive.display(),
                done.manifest.faxes,
                done.manifest.documents,
                done.bytes as f64 / 1e6,
                done.elapsed.as_secs_f64()
            );
            if let Some(fingerprint) = &done.manifest.key {
                say!(
                    "The documents in it are sealed with the document key {} (fingerprint {fingerprint}), \
                     which is not in the backup: keep a copy of that key apart from the backups; \
                     a restore needs it (`faxbox restore FILE --key KEYFILE`).",
                    key_location()
                );
            }
            Ok(())
        }
        Command::Purge { dry_run } => {
            let store = open()?;
            let report = crate::retention::purge(&store, crate::model::now(), dry_run)?;
            if !dry_run && !report.is_empty() {
                let what = format!(
                    "documents of {} faxes, {} faxes, {} mails, {} audit entries",
                    report.documents.len(),
                    report.records.len(),
                    report.mails,
                    report.audit_entries
                );
                console_audit(&store, None, "purge", &what);
            }
            if out.json {
                return out.show(&report);
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            for id in &report.documents {
                say!("{id}  documents");
            }
            for id in &report.records {
                say!("{id}  record");
            }
            say!(
                "{verb}: the documents of {} faxes, {} faxes whole, {} sent mails, {} audit entries",
                report.documents.len(),
                report.records.len(),
                report.mails,
                report.audit_entries
            );
            Ok(())
        }
        Command::Audit { account, limit } => {
            let account = account.map(AccountId);
            out.list(&open()?.audit_trail(account.as_ref(), limit)?, |e| {
                format!(
                    "{}  {:<16} {:<28} {:<40} from {}{}",
                    chrono::DateTime::from_timestamp(e.at, 0)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    e.action,
                    e.actor,
                    e.object,
                    e.source,
                    e.account_id
                        .as_ref()
                        .map(|a| format!("  account {a}"))
                        .unwrap_or_default()
                )
            })
        }
        Command::Restore { archive, key } => {
            let done = crate::backup::restore(&archive, &config.data_dir, key.as_deref())?;
            say!(
                "{}: {} faxes, {} documents from the backup of {} taken at {}; start it with `faxbox serve`",
                config.data_dir.display(),
                done.manifest.faxes,
                done.manifest.documents,
                done.manifest.data_dir.display(),
                chrono::DateTime::from_timestamp(done.manifest.created, 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            );
            if let Some(fingerprint) = done.manifest.key.as_ref().filter(|_| !done.key_restored) {
                say!(
                    "Its documents are sealed with the document key whose fingerprint is {fingerprint}: \
                     `faxbox serve` needs that key at {} (or restore again with --key KEYFILE).",
                    key_location()
                );
            }
            Ok(())
        }
        Command::RenderWorker => anyhow::bail!("render-worker is started by the box itself"),
    }
}

/// How a command prints: an id or a line per item, or JSON.
struct Output {
    json: bool,
}

impl Output {
    /// A created object: its id alone, or the whole object with `--json`.
    fn created<T: Serialize>(&self, id: &str, value: &T) -> anyhow::Result<()> {
        if self.json {
            say!("{}", serde_json::to_string_pretty(value)?);
        } else {
            say!("{id}");
        }
        Ok(())
    }

    fn list<T: Serialize>(&self, items: &[T], line: impl Fn(&T) -> String) -> anyhow::Result<()> {
        if self.json {
            say!("{}", serde_json::to_string_pretty(items)?);
        } else {
            for item in items {
                say!("{}", line(item));
            }
        }
        Ok(())
    }

    fn show<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        // One object reads best as indented JSON either way.
        say!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }
}

/// `faxbox send`: an HTTP client of the running box, so that a fax sent
/// from the command line takes the same path as any program's.
/// The API's URL and a key for it: as given, else the configured address
/// and the local admin key that `faxbox serve` keeps in the data dir.
fn api_access(
    config: &Config,
    url: Option<String>,
    token: Option<String>,
) -> anyhow::Result<(String, String)> {
    let url = match url {
        Some(u) => u,
        None => {
            let mut addr = config.http.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let key = match token {
        Some(k) => k,
        None => {
            let path = config.data_dir.join(crate::app::LOCAL_KEY_FILE);
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "no API key: give --token (or FAXBOX_TOKEN), or run this as a user who can read {} (written by `faxbox serve`)",
                        path.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    Ok((url, key))
}

fn send(config: &Config, args: SendArgs) -> anyhow::Result<()> {
    use crate::client::{self, Document, Session};
    let (url, key) = api_access(config, args.url, args.token)?;
    let documents = args
        .files
        .iter()
        .map(|p| Document::read(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let session = Session::login(&url, &key)?;
    let mut data = serde_json::json!({ "to_number": args.to });
    for (field, value) in [
        ("faxbox_id", args.faxbox),
        ("from_number", args.from),
        ("fax_identity_name", args.header),
        ("document_password", args.document_password.password),
        ("send_at", args.send_at),
        ("priority", args.priority),
        ("to_name", args.to_name),
        ("subject", args.subject),
        ("cover_note", args.cover_note),
    ] {
        if let Some(v) = value {
            data[field] = v.into();
        }
    }
    if args.cover || args.no_cover {
        data["cover_page"] = args.cover.into();
    }
    if let Some(n) = args.retries {
        data["retries"] = n.into();
    }
    let job = session.send(&data, &documents)?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    say!("{id}");
    if !args.wait {
        return Ok(());
    }
    let end = client::follow(&session, &id, |line| eprintln!("{id}: {line}"))?;
    match end["status"].as_str() {
        Some("completed") => Ok(()),
        other => anyhow::bail!(
            "fax {id} {}: {}",
            other.unwrap_or("ended"),
            end["error"].as_str().unwrap_or("no reason given")
        ),
    }
}

fn account(store: &Store, out: &Output, cmd: AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::Create { name, realm } => {
            let a = store.create_account(&name, realm.as_deref())?;
            out.created(a.id.as_str(), &a)
        }
        AccountCommand::List => out.list(&store.accounts()?, |a| {
            format!(
                "{}  {}{}{}",
                a.id,
                a.name,
                a.realm
                    .as_deref()
                    .map(|r| format!("  realm {r}"))
                    .unwrap_or_default(),
                if a.is_admin { "  (admin)" } else { "" }
            )
        }),
        AccountCommand::Show { id } => out.show(&store.account(&AccountId(id))?),
        AccountCommand::Delete { id } => Ok(store.delete_account(&AccountId(id))?),
    }
}

fn user(store: &Store, out: &Output, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            account,
            email,
            name,
            username,
            password,
        } => {
            let username = username.or_else(|| password.as_ref().map(|_| email.clone()));
            let changes = crate::store::UserChanges {
                email: Some(email),
                name,
                username,
                password,
                doc: Default::default(),
            };
            let u = store.put_user(&AccountId(account), None, changes)?;
            out.created(u.id.as_str(), &u)
        }
        UserCommand::List { account } => out.list(&store.users(&AccountId(account))?, |u| {
            format!("{}  {}  {}", u.id, u.email, u.name)
        }),
        UserCommand::Delete { id } => Ok(store.delete_user(&UserId(id))?),
    }
}

fn faxbox(store: &Store, out: &Output, cmd: FaxboxCommand) -> anyhow::Result<()> {
    match cmd {
        FaxboxCommand::Create {
            account,
            name,
            fields,
        } => {
            let cover_page = fields.cover_page(Default::default())?;
            let f = store.create_faxbox(
                &AccountId(account),
                FaxboxFields {
                    cover_page,
                    ..fields.into_fields(Some(name))
                },
            )?;
            if out.json {
                out.show(&f)
            } else {
                // The id for scripts, then the address people will use.
                say!("{}", f.id);
                eprintln!(
                    "Fax by email: <number>@{}{}",
                    f.smtp_email_address,
                    f.custom_smtp_email_address
                        .as_deref()
                        .map(|c| format!(" or <number>@{c}"))
                        .unwrap_or_default()
                );
                Ok(())
            }
        }
        FaxboxCommand::List { account } => out.list(&store.faxboxes(&AccountId(account))?, |f| {
            format!(
                "{}  {}  <number>@{}{}",
                f.id,
                f.name,
                f.smtp_email_address,
                if f.numbers.is_empty() {
                    String::new()
                } else {
                    format!("  rings on {}", f.numbers.join(", "))
                }
            )
        }),
        FaxboxCommand::Show { id } => out.show(&store.faxbox(&FaxboxId(id))?),
        FaxboxCommand::Update { id, name, fields } => {
            let id = FaxboxId(id);
            let cover_page = fields.cover_page(store.faxbox(&id)?.cover_page)?;
            let f = store.update_faxbox(
                &id,
                FaxboxFields {
                    cover_page,
                    ..fields.into_fields(name)
                },
                crate::store::UpdateMode::Merge,
            )?;
            if out.json { out.show(&f) } else { Ok(()) }
        }
        FaxboxCommand::Delete { id } => Ok(store.delete_faxbox(&FaxboxId(id))?),
        FaxboxCommand::Readdress { account } => {
            let account = match account {
                Some(id) => Some(store.account(&AccountId(id))?.id),
                None => None,
            };
            let changes = store.readdress_faxboxes(account.as_ref())?;
            #[derive(Serialize)]
            struct Change {
                faxbox: FaxboxId,
                old: String,
                new: String,
            }
            let rows: Vec<Change> = changes
                .into_iter()
                .map(|(faxbox, old, new)| Change { faxbox, old, new })
                .collect();
            if rows.is_empty() && !out.json {
                eprintln!("Every faxbox's address is already under its default_smtp_domain.");
                return Ok(());
            }
            out.list(&rows, |c| {
                format!("{}  <number>@{}  ->  <number>@{}", c.faxbox, c.old, c.new)
            })
        }
    }
}

fn apikey(store: &Store, out: &Output, cmd: ApikeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApikeyCommand::Create { account, label } => {
            let (key, secret) = store.create_api_key(&AccountId(account), &label)?;
            if out.json {
                #[derive(Serialize)]
                struct Created<'a> {
                    #[serde(flatten)]
                    key: &'a crate::model::ApiKey,
                    api_key: &'a str,
                }
                out.show(&Created {
                    key: &key,
                    api_key: &secret,
                })
            } else {
                say!("{secret}");
                Ok(())
            }
        }
        ApikeyCommand::List { account } => out.list(&store.api_keys(&AccountId(account))?, |k| {
            format!(
                "{}  {}{}",
                k.id,
                if k.label.is_empty() { "-" } else { &k.label },
                if k.revoked.is_some() {
                    "  (revoked)"
                } else {
                    ""
                }
            )
        }),
        ApikeyCommand::Revoke { id } => Ok(store.revoke_api_key(&id)?),
    }
}

fn settings(store: &Store, out: &Output, cmd: ConfigCommand) -> anyhow::Result<()> {
    let account_of = |a: Option<String>| -> anyhow::Result<Option<AccountId>> {
        match a {
            Some(id) => Ok(Some(store.account(&AccountId(id))?.id)),
            None => Ok(None),
        }
    };
    match cmd {
        ConfigCommand::Get { account, key, .. } => {
            let account = account_of(account)?;
            let keys: Vec<&str> = match &key {
                Some(k) => vec![k.as_str()],
                None => SETTINGS.iter().map(|s| s.key).collect(),
            };
            let values = keys
                .iter()
                .map(|k| store.setting(account.as_ref(), k))
                .collect::<Result<Vec<_>, _>>()?;
            if out.json {
                let map: serde_json::Map<String, serde_json::Value> = values
                    .into_iter()
                    .map(|v| (v.key.to_owned(), v.value))
                    .collect();
                out.show(&map)
            } else if key.is_some() {
                say!("{}", values[0].value);
                Ok(())
            } else {
                for v in values {
                    say!("{} = {}  ({})", v.key, v.value, v.source);
                }
                Ok(())
            }
        }
        ConfigCommand::Set {
            account,
            key,
            value,
            ..
        } => {
            let account = account_of(account)?;
            let setting = crate::store::find_setting(&key)?;
            store.set_setting(account.as_ref(), &key, setting.parse_word(&value))?;
            Ok(())
        }
        ConfigCommand::Unset { account, key, .. } => {
            let account = account_of(account)?;
            Ok(store.unset_setting(account.as_ref(), &key)?)
        }
    }
}

fn jobs(store: &Store, out: &Output, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List {
            account,
            status,
            folder,
            limit,
        } => {
            let filter = job_filter(account, status, folder, limit)?;
            out.list(&store.faxes(&filter)?, |f| {
                format!(
                    "{}  {:<15} to {:<16} attempts {}/{}{}",
                    f.id,
                    f.status.map_or("received", JobStatus::as_str),
                    f.to_number,
                    f.attempts,
                    f.retries.max(1),
                    why(f.error.as_deref())
                )
            })
        }
        JobsCommand::Show { id } => {
            let id = store.fax_id_by_prefix(&id)?;
            #[derive(Serialize)]
            struct Detail {
                #[serde(flatten)]
                fax: crate::model::Fax,
                documents: Vec<crate::model::DocumentInfo>,
                /// Every attempt; `attempts` (Kazoo's field) is their count.
                history: Vec<crate::model::Attempt>,
            }
            out.show(&Detail {
                fax: store.fax(&id)?,
                documents: store.documents(&id)?,
                history: store.attempts(&id)?,
            })
        }
        JobsCommand::Retry { id } => {
            let id = store.fax_id_by_prefix(&id)?;
            let fax = store.fax(&id)?;
            if fax.status.is_some_and(JobStatus::is_terminal) {
                let again = store.resubmit(&id)?;
                out.created(again.id.as_str(), &again)
            } else {
                store.retry_now(&id)?;
                Ok(())
            }
        }
        JobsCommand::Cancel { id } => {
            let id = store.fax_id_by_prefix(&id)?;
            if !store.request_cancel(&id, "cancelled by the operator")? {
                eprintln!(
                    "The fax is on a line now: the call will be hung up and the fax cancelled."
                );
            }
            Ok(())
        }
        JobsCommand::Delete { id, documents_only } => {
            delete_fax(store, &store.fax_id_by_prefix(&id)?, documents_only)
        }
        JobsCommand::Batch { id } => show_batch(out, &batch_of(store, &id)?),
    }
}

/// `jobs list`'s options as a filter; a status or folder it does not know
/// is refused with the words it takes.
fn job_filter(
    account: Option<String>,
    status: Option<String>,
    folder: Option<String>,
    limit: u32,
) -> anyhow::Result<JobFilter> {
    Ok(JobFilter {
        account: account.map(AccountId),
        status: status
            .map(|s| s.parse::<JobStatus>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        folder: folder
            .map(|f| f.parse::<Folder>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        limit: Some(limit),
        ..Default::default()
    })
}

/// The batch `id` names: a batch's id, or the id (or its first
/// characters) of one of its faxes.
fn batch_of(store: &Store, id: &str) -> anyhow::Result<crate::store::Batch> {
    match store.batch(&crate::model::BatchId(id.trim().to_owned())) {
        Ok(b) => Ok(b),
        Err(crate::store::StoreError::NotFound { .. }) => {
            let fax = store.fax(
                &store
                    .fax_id_by_prefix(id)
                    .map_err(|_| anyhow::anyhow!("no batch and no fax with id {id}"))?,
            )?;
            let Some(batch) = fax.batch_id else {
                anyhow::bail!(
                    "fax {} went to one number ({}); it is in no batch",
                    fax.id,
                    fax.to_number
                );
            };
            Ok(store.batch(&batch)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `jobs batch`: how many faxes are in each state, then each fax.
fn show_batch(out: &Output, batch: &crate::store::Batch) -> anyhow::Result<()> {
    if out.json {
        return out.show(&crate::api::batch_summary(batch));
    }
    let counts: Vec<String> = batch
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    say!(
        "batch {}: {} faxes, {}{}",
        batch.id,
        batch.faxes.len(),
        counts.join(", "),
        if batch.is_done() { " (done)" } else { "" }
    );
    for f in &batch.faxes {
        say!(
            "  {}  {:<15} to {:<16} attempts {}{}",
            f.id,
            f.status.as_str(),
            f.to_number,
            f.attempts,
            why(f.error.as_deref())
        );
    }
    Ok(())
}

/// A fax's last error at the end of its line, or nothing.
fn why(error: Option<&str>) -> String {
    error.map(|e| format!("  {e}")).unwrap_or_default()
}

/// `jobs delete` and `inbox delete`: the whole fax, or only its documents.
fn delete_fax(store: &Store, id: &crate::model::FaxId, documents_only: bool) -> anyhow::Result<()> {
    let fax = store.fax(id)?;
    let action = if documents_only {
        store.delete_documents(id)?;
        "delete_documents"
    } else {
        store.delete_fax(id)?;
        "delete"
    };
    console_audit(
        store,
        Some(&fax.account_id),
        action,
        &format!("faxes/{}/{id}", fax.folder.as_str()),
    );
    Ok(())
}

/// Records a command run on the box in the audit trail (issue 23), as
/// `console:<login name>`; a failure to record is said, not fatal.
fn console_audit(store: &Store, account: Option<&AccountId>, action: &str, object: &str) {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .map_or_else(|_| "console".to_owned(), |u| format!("console:{u}"));
    if let Err(e) = store.audit(crate::store::AuditEvent {
        account,
        actor: &who,
        action,
        object,
        source: "console",
    }) {
        eprintln!("faxbox: cannot record this in the audit trail: {e}");
    }
}

fn line(config: &Config, store: &Store, out: &Output, cmd: LineCommand) -> anyhow::Result<()> {
    let known = |name: &str| -> anyhow::Result<()> {
        if config.lines.iter().any(|l| l.name == name) {
            Ok(())
        } else {
            anyhow::bail!(
                "there is no line {name:?}; the lines are: {}",
                config
                    .lines
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    match cmd {
        LineCommand::List => {
            let paused = store.paused_lines()?;
            // Whether a line is up lives in the running box (a modem that
            // does not answer is only known there): ask its API.
            let live: Option<Vec<crate::status::Line>> = api_access(config, None, None)
                .and_then(|(url, key)| crate::client::Session::login(&url, &key))
                .and_then(|session| session.status())
                .map_err(|e| {
                    eprintln!("faxbox: line states come from the running fax box, which could not be asked: {e:#}")
                })
                .ok()
                .map(|status| status.lines);
            #[derive(Serialize)]
            struct LineRow {
                name: String,
                channels: u32,
                paused: bool,
                /// "up", "down" or "paused" from the running box; null when
                /// it could not be asked.
                state: Option<String>,
                /// Why a line is down (or paused).
                reason: Option<String>,
            }
            let rows: Vec<LineRow> = config
                .lines
                .iter()
                .map(|l| {
                    let now = live.iter().flatten().find(|v| v.name == l.name);
                    LineRow {
                        name: l.name.clone(),
                        channels: l.channels(),
                        paused: paused.contains(&l.name),
                        state: now.map(|v| v.state.clone()),
                        reason: now.and_then(|v| v.reason.clone()),
                    }
                })
                .collect();
            out.list(&rows, |r| {
                let mut text = format!("{}  {} channels", r.name, r.channels);
                match (&r.state, &r.reason) {
                    (Some(state), Some(why)) if state == "paused" => {
                        text.push_str(&format!("  (paused) {why}"))
                    }
                    (Some(state), Some(why)) => text.push_str(&format!("  {state}: {why}")),
                    (Some(state), None) => text.push_str(&format!("  {state}")),
                    (None, _) if r.paused => text.push_str("  (paused)"),
                    (None, _) => {}
                }
                text
            })
        }
        LineCommand::Pause { name, reason } => {
            known(&name)?;
            Ok(store.set_line_paused(&name, true, &reason)?)
        }
        LineCommand::Resume { name } => {
            known(&name)?;
            Ok(store.set_line_paused(&name, false, "")?)
        }
    }
}

fn inbox(store: &Store, out: &Output, cmd: InboxCommand) -> anyhow::Result<()> {
    let received = |id: &str| -> anyhow::Result<crate::model::Fax> {
        let fax = store.fax(&store.fax_id_by_prefix(id)?)?;
        if fax.folder != Folder::Inbox {
            anyhow::bail!("fax {id} is an outgoing fax; see `faxbox jobs show {id}`");
        }
        Ok(fax)
    };
    match cmd {
        InboxCommand::List {
            account,
            faxbox,
            limit,
        } => {
            let filter = JobFilter {
                account: account.map(AccountId),
                faxbox: faxbox.map(FaxboxId),
                folder: Some(Folder::Inbox),
                limit: Some(limit),
                ..Default::default()
            };
            out.list(&store.faxes(&filter)?, |f| {
                let rx = f.rx_result.clone().unwrap_or_default();
                format!(
                    "{}  from {:<16} to {:<12} {} page{}{}",
                    f.id,
                    f.from_number.as_deref().unwrap_or("unknown"),
                    f.to_number,
                    rx.pages,
                    if rx.pages == 1 { "" } else { "s" },
                    if rx.partial { "  (partial)" } else { "" }
                )
            })
        }
        InboxCommand::Show { id } => {
            let fax = received(&id)?;
            #[derive(Serialize)]
            struct Detail {
                #[serde(flatten)]
                fax: crate::model::Fax,
                documents: Vec<crate::model::DocumentInfo>,
            }
            out.show(&Detail {
                documents: store.documents(&fax.id)?,
                fax,
            })
        }
        InboxCommand::Export { id, output } => {
            let fax = received(&id)?;
            let docs = store.documents(&fax.id)?;
            let pdf = match docs
                .iter()
                .find(|d| d.kind == crate::model::DocumentKind::Pdf)
            {
                Some(d) => store.document_bytes(&d.id)?,
                None => {
                    let tiff = docs
                        .iter()
                        .find(|d| d.kind == crate::model::DocumentKind::ReceivedTiff)
                        .ok_or_else(|| anyhow::anyhow!("fax {id} has no received pages"))?;
                    crate::documents::tiff_to_pdf(&store.document_bytes(&tiff.id)?)?
                }
            };
            std::fs::write(&output, pdf)
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(())
        }
        InboxCommand::Delete { id, documents_only } => {
            delete_fax(store, &received(&id)?.id, documents_only)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_filter_takes_known_words_and_names_an_unknown_one() {
        let filter = job_filter(
            Some("a1".into()),
            Some("failed".into()),
            Some("outbox".into()),
            7,
        )
        .unwrap();
        assert_eq!(
            (filter.account, filter.status, filter.folder, filter.limit),
            (
                Some(AccountId("a1".into())),
                Some(JobStatus::Failed),
                Some(Folder::Outbox),
                Some(7)
            )
        );
        let wrong = job_filter(None, Some("sent".into()), None, 7).unwrap_err();
        assert!(wrong.to_string().contains("\"sent\" is not"), "{wrong}");
        let wrong = job_filter(None, None, Some("drafts".into()), 7).unwrap_err();
        assert!(wrong.to_string().contains("\"drafts\" is not"), "{wrong}");
        assert_eq!(why(Some("busy")), "  busy");
        assert_eq!(why(None), "");
    }
}
