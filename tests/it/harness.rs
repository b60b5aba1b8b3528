//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `faxbox` binary cargo built for these tests.
pub fn faxbox_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_faxbox"))
}

/// Runs `faxbox ARGS...` against a data dir, with no config file in reach.
pub fn faxbox(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(faxbox_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .env("NO_COLOR", "1")
        .output()
        .expect("the faxbox binary runs")
}

/// The shared corpus of real-world PDFs, when this checkout has one beside it.
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pdf");
    dir.is_dir().then_some(dir)
}

/// A mail a test SMTP server received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The name the client gave in HELO/EHLO.
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

impl ReceivedMail {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A real SMTP server on loopback (mailin-embedded) that keeps every mail.
#[derive(Clone, Default)]
pub struct MailSink {
    received: std::sync::Arc<std::sync::Mutex<Vec<ReceivedMail>>>,
    current: Option<ReceivedMail>,
    /// Refuses a HELO/EHLO name that is not fully qualified with 504, as
    /// Postfix's reject_non_fqdn_helo_hostname does.
    fqdn_helo_only: bool,
}

impl mailin_embedded::Handler for MailSink {
    fn helo(&mut self, _ip: std::net::IpAddr, domain: &str) -> mailin_embedded::Response {
        if self.fqdn_helo_only && !domain.contains('.') {
            return mailin_embedded::Response::custom(
                504,
                format!("5.5.2 <{domain}>: Helo command rejected: need fully-qualified hostname"),
            );
        }
        mailin_embedded::response::OK
    }

    fn data_start(
        &mut self,
        domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.current = Some(ReceivedMail {
            helo: domain.to_owned(),
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(m) = &mut self.current {
            m.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        if let Some(m) = self.current.take() {
            self.received.lock().unwrap().push(m);
        }
        mailin_embedded::response::OK
    }
}

impl MailSink {
    /// Serves SMTP on `listener` from a background thread, for the rest of
    /// the test process.
    pub fn start(listener: std::net::TcpListener) -> MailSink {
        MailSink::serve(listener, MailSink::default())
    }

    /// A smarthost that refuses a client greeting with a bare host name.
    pub fn start_fqdn_helo_only(listener: std::net::TcpListener) -> MailSink {
        MailSink::serve(
            listener,
            MailSink {
                fqdn_helo_only: true,
                ..MailSink::default()
            },
        )
    }

    fn serve(listener: std::net::TcpListener, sink: MailSink) -> MailSink {
        let mut server = mailin_embedded::Server::new(sink.clone());
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        sink
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` mails have arrived, or panics after `within`.
    pub fn wait_for(&self, n: usize, within: std::time::Duration) -> Vec<ReceivedMail> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} mails, got {}",
                got.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A smarthost setting that delivers to a test SMTP server on loopback.
pub fn smarthost(port: u16) -> faxbox::config::Smarthost {
    faxbox::config::Smarthost {
        server: Some(faxbox::config::SmarthostServer {
            host: "127.0.0.1".into(),
            port,
            username: String::new(),
            password: String::new(),
            tls: faxbox::config::TlsMode::None,
        }),
        from: "faxbox@box.test".into(),
        hello_name: "faxbox.box.test".into(),
    }
}

/// `pdf` written again by Ghostscript's pdfwrite, encrypted with `password`
/// (RC4 128-bit, revision 3, as office tools save "protected" PDFs) when
/// one is given: an independent maker of encrypted PDFs. Both forms come
/// from the same writer, so they draw the same. `None` without Ghostscript.
pub fn ghostscript_pdf(pdf: &[u8], password: Option<&str>) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.pdf"), dir.path().join("out.pdf"));
    std::fs::write(&input, pdf).unwrap();
    let mut gs = Command::new("gs");
    gs.args(["-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pdfwrite"]);
    if let Some(password) = password {
        gs.arg(format!("-sUserPassword={password}")).args([
            "-sOwnerPassword=owner-secret",
            "-dEncryptionR=3",
            "-dKeyLength=128",
        ]);
    }
    match gs.arg("-o").arg(&output).arg(&input).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "gs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(std::fs::read(&output).unwrap())
        }
        Err(_) => {
            println!("skipped: Ghostscript (gs) is not installed to write encrypted PDFs");
            None
        }
    }
}

/// A PDF with one Helvetica line per page, one page per text.
pub fn pdf_of_texts(pages: &[&str]) -> Vec<u8> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    pdf.catalog(catalog).pages(tree);
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(10 + 2 * i as i32))
        .collect();
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    for (i, text) in pages.iter().enumerate() {
        let content_id = Ref::new(11 + 2 * i as i32);
        let mut page = pdf.page(page_ids[i]);
        page.media_box(Rect::new(0.0, 0.0, 612.0, 792.0))
            .parent(tree)
            .contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), font);
        page.finish();
        let mut c = Content::new();
        c.begin_text()
            .set_font(Name(b"F1"), 24.0)
            .next_line(72.0, 700.0)
            .show(Str(text.as_bytes()))
            .end_text();
        pdf.stream(content_id, &c.finish());
    }
    pdf.type1_font(font).base_font(Name(b"Helvetica"));
    pdf.finish()
}

/// `faxbox serve`'s banner, read from its piped stdout up to "Press Ctrl-C
/// to stop" (30 s at most). A thread keeps draining stdout afterwards, so
/// the box never blocks on a full pipe.
pub fn serve_banner(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("serve's stdout is piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("serve prints its banner");
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Press Ctrl-C to stop") {
            return banner;
        }
    }
}

/// The API's base URL (without `/v2`) from `serve`'s banner.
pub fn banner_api_url(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("api:"))
        .map(|url| url.trim().trim_end_matches("/v2").to_owned())
        .expect("the banner says where the API listens")
}

/// The printers' address from `serve`'s banner line
/// "ipp:   ipp://127.0.0.1:PORT/ipp/faxout/<faxbox id> (print to fax)".
pub fn banner_printers_addr(banner: &str) -> std::net::SocketAddr {
    let printer = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("ipp:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the banner names the printers' address:\n{banner}"));
    printer
        .strip_prefix("ipp://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("the printers' address is ipp://HOST:PORT/...: {printer}"))
}

/// A data dir with an account "Acme", its user bob@acme.example and a
/// faxbox "Desk", made before `faxbox serve` starts on it. Returns the
/// account and the faxbox.
pub fn acme_with_desk(data: &Path) -> (faxbox::model::AccountId, faxbox::model::Faxbox) {
    let store = faxbox::store::Store::open_data_dir(data).unwrap();
    let account = store.create_account("Acme", None).unwrap().id;
    store
        .create_user(&account, "bob@acme.example", "Bob")
        .unwrap();
    let desk = store
        .create_faxbox(
            &account,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                ..Default::default()
            },
        )
        .unwrap();
    (account, desk)
}

/// Waits until `done` holds, polling every 20 ms; panics naming `what`
/// after `within`. The one waiting loop of the tests.
pub fn wait_for(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The whole appliance started in-process on port 0, as `faxbox serve`
/// starts it: tests read its addresses and store from it and stop it in
/// order (or drop it, which hangs up at once).
pub struct TestAppliance {
    pub appliance: Option<faxbox::app::Appliance>,
    pub dir: tempfile::TempDir,
}

impl TestAppliance {
    /// A box on a fresh data dir with one loopback line; `tune` changes the
    /// configuration before it starts.
    pub fn start(tune: impl FnOnce(&mut faxbox::config::Config)) -> TestAppliance {
        let dir = tempfile::tempdir().unwrap();
        let mut config = faxbox::config::Config::embedded_default();
        config.data_dir = dir.path().join("data");
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.smtp.listen = "127.0.0.1:0".parse().unwrap();
        config.ipp.listen = "127.0.0.1:0".parse().unwrap();
        config.ipp.mdns = false;
        config.file_proxy.listen = "127.0.0.1:0".parse().unwrap();
        config.smarthost.server = None;
        tune(&mut config);
        let listeners = faxbox::app::Listeners::bind(&config).unwrap();
        let appliance = faxbox::app::Appliance::start(config, listeners).unwrap();
        TestAppliance {
            appliance: Some(appliance),
            dir,
        }
    }

    pub fn get(&self) -> &faxbox::app::Appliance {
        self.appliance.as_ref().expect("the box is running")
    }

    pub fn store(&self) -> &std::sync::Arc<faxbox::store::Store> {
        self.get().store()
    }

    /// The API's base URL (without `/v2`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.get().api_addr())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops in order with `grace` for calls in progress.
    pub fn stop(&mut self, grace: std::time::Duration) {
        if let Some(a) = self.appliance.take() {
            a.stop(grace);
        }
    }
}

/// `faxbox serve` as a separate process, on port 0, with its own config
/// file beside the data dir.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub banner: String,
    pub data_dir: PathBuf,
}

impl ServeProcess {
    /// Writes `config` (TOML; the API and SMTP listeners on port 0 are
    /// added unless it has its own `[http]` or `[smtp]`) to
    /// `<dir>/faxbox.toml` and starts `faxbox serve` on `<dir>/data`, up to
    /// its banner.
    pub fn start(dir: &Path, config: &str) -> ServeProcess {
        let mut child = ServeProcess::spawn(dir, config, std::process::Stdio::null());
        let banner = serve_banner(&mut child);
        ServeProcess {
            child,
            banner,
            data_dir: dir.join("data"),
        }
    }

    /// Starts it without waiting for anything; its stderr is piped.
    pub fn spawn(dir: &Path, config: &str, stderr: std::process::Stdio) -> std::process::Child {
        // Its top-level keys come before any table.
        let mut text = format!("{config}\n");
        for table in ["http", "smtp"] {
            if !config.contains(&format!("[{table}]")) {
                text.push_str(&format!("[{table}]\nlisten = \"127.0.0.1:0\"\n"));
            }
        }
        std::fs::write(dir.join("faxbox.toml"), text).unwrap();
        Command::new(faxbox_bin())
            .args(["--data-dir", dir.join("data").to_str().unwrap(), "serve"])
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    pub fn api_url(&self) -> String {
        banner_api_url(&self.banner)
    }

    /// The API key the first start of a fresh data dir prints.
    pub fn api_key(&self) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("API key:"))
            .expect("the first start shows the API key")
            .trim()
            .to_owned()
    }

    /// Sends `signal` (a name such as "TERM" or "KILL") to the box.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits for the process to end, at most `within`; its exit status.
    pub fn wait(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_for("faxbox serve to exit", within, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a program is installed: the `PATH`, then the system directories
/// an admin's tools live in (cupsd and postfix are in /usr/sbin, which a
/// normal user's `PATH` may lack).
pub fn installed(program: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// Runs a client program to the end, insisting it succeeds; its stdout.
pub fn run_ok(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 for a server that takes its port from a
/// configuration file (cupsd, Postfix) rather than a socket we hand it.
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// What an intake calls once a fax is committed: wakes the test box's
/// scheduler, when it has one (without, faxes wait in the store).
pub fn waker(
    scheduler: Option<&std::sync::Arc<faxbox::scheduler::Scheduler>>,
) -> std::sync::Arc<dyn Fn() + Send + Sync> {
    match scheduler {
        Some(s) => {
            let s = s.clone();
            std::sync::Arc::new(move || s.wake())
        }
        None => std::sync::Arc::new(|| {}),
    }
}

/// Stops a `faxbox serve` we started as systemd stops it (SIGTERM) and
/// waits for it to end; how it exited (a clean stop is a success).
pub fn stop_with_sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {}", child.id());
    child.wait().unwrap()
}

/// Ends a server process we started: SIGTERM, then SIGKILL if it has not
/// ended within `grace`.
pub fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private CUPS scheduler on loopback, started the way CUPS's own test
/// harness (test/run-stp-tests.sh) starts one: `cupsd -f` with its own
/// cupsd.conf and cups-files.conf, and its spool, cache, state and logs in
/// a temporary folder, using the system's backends, filters and drivers.
/// It listens on a free port on 127.0.0.1 and on a socket in that folder;
/// no root is needed (run as root, cupsd runs filters as `lp`, so the
/// folder is made readable to it). The machine's own CUPS is not touched:
/// every client command is pointed at this one with `CUPS_SERVER`.
pub struct PrivateCups {
    dir: tempfile::TempDir,
    cupsd: std::process::Child,
    /// Its IPP port on 127.0.0.1.
    pub port: u16,
}

impl PrivateCups {
    /// The CUPS programs the tests drive: the scheduler, the admin and
    /// print commands (cups-client), ipptool (cups-ipp-utils), and
    /// cups-filters' fax model.
    const PROGRAMS: &[(&str, &str)] = &[
        ("cupsd", "cups-daemon"),
        ("lpadmin", "cups-client"),
        ("lp", "cups-client"),
        ("lpstat", "cups-client"),
        ("ipptool", "cups-ipp-utils"),
    ];

    /// Starts cupsd and waits until it answers; `None`, with the reason
    /// printed, when CUPS is not installed (`make test-deps` installs it).
    pub fn start() -> Option<PrivateCups> {
        for (program, package) in PrivateCups::PROGRAMS {
            if installed(program).is_none() {
                println!(
                    "skipped: `{program}` (Debian {package}) is not installed; `make test-deps` installs it"
                );
                return None;
            }
        }
        // Debian keeps backends, filters and drivers in /usr/lib/cups,
        // Fedora and macOS in /usr/libexec/cups.
        let Some(server_bin) = ["/usr/lib/cups", "/usr/libexec/cups"]
            .into_iter()
            .map(PathBuf::from)
            .find(|d| d.join("backend/ipp").is_file())
        else {
            println!("skipped: CUPS's ipp backend is not installed (Debian cups-daemon)");
            return None;
        };
        if !server_bin.join("driver/driverless-fax").is_file() {
            println!(
                "skipped: cups-filters' driverless-fax model is not installed (Debian cups-filters)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for sub in ["spool/temp", "cache", "log"] {
            std::fs::create_dir_all(base.join(sub)).unwrap();
        }
        // cupsd runs filters and backends as `lp` when started by root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_loopback_port();
        let b = base.display();
        // ErrorPolicy stop-printer: a job the backend cannot deliver would
        // disable the queue, so a queue still enabled after a refusal shows
        // the backend cancelled the job rather than failing it.
        std::fs::write(
            base.join("cupsd.conf"),
            format!(
                "Browsing Off\nListen 127.0.0.1:{port}\nListen {b}/sock\nMaxLogSize 0\n\
                 LogLevel debug\nErrorPolicy stop-printer\nPreserveJobHistory Yes\n\
                 <Policy default>\n<Limit All>\nOrder Allow,Deny\n</Limit>\n</Policy>\n"
            ),
        )
        .unwrap();
        std::fs::write(
            base.join("cups-files.conf"),
            format!(
                "Printcap {b}/printcap\nServerRoot {b}\nStateDir {b}\nServerBin {}\n\
                 CacheDir {b}/cache\nDataDir /usr/share/cups\nDocumentRoot /usr/share/cups/doc-root\n\
                 RequestRoot {b}/spool\nTempDir {b}/spool/temp\nAccessLog {b}/log/access_log\n\
                 ErrorLog {b}/log/error_log\nPageLog {b}/log/page_log\n",
                server_bin.display()
            ),
        )
        .unwrap();
        let cupsd = Command::new(installed("cupsd").unwrap())
            .arg("-f")
            .arg("-c")
            .arg(base.join("cupsd.conf"))
            .arg("-s")
            .arg(base.join("cups-files.conf"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cupsd starts");
        let mut cups = PrivateCups { dir, cupsd, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = cups.cupsd.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = cups.cupsd.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!(
                    "cupsd stopped at start ({status}): {stderr}\n{}",
                    cups.error_log()
                );
            }
            let answered = cups
                .client("lpstat")
                .arg("-r")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is running"));
            if answered {
                return Some(cups);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cupsd did not answer within 30 s:\n{}",
                cups.error_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A CUPS client program (lp, lpadmin, lpstat, cancel) talking to this
    /// scheduler over its socket, as local users' commands talk to cupsd.
    pub fn client(&self, program: &str) -> Command {
        let mut command = Command::new(installed(program).unwrap_or_else(|| program.into()));
        command
            .env("CUPS_SERVER", self.dir.path().join("sock"))
            .env_remove("PRINTER")
            .env_remove("LPDEST")
            .env("LANG", "C");
        command
    }

    /// Prints `file` with `lp -d QUEUE OPTIONS... FILE`; the CUPS job id
    /// (`request id is fax-3 (1 file(s))` -> 3).
    pub fn print(&self, queue: &str, options: &[&str], file: &Path) -> u32 {
        let out = run_ok(
            self.client("lp")
                .args(["-d", queue])
                .args(options)
                .arg(file),
        );
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{queue}-"))?.parse().ok())
            .unwrap_or_else(|| panic!("lp names the job it queued: {out}"))
    }

    /// A CUPS job's attributes as CUPS's `ipptool` reads them with its
    /// standard `get-job-attributes.test` (`name (type) = value` lines).
    pub fn job_attributes(&self, job: u32) -> String {
        run_ok(
            self.client("ipptool")
                .arg("-tv")
                .arg(format!("ipp://127.0.0.1:{}/jobs/{job}", self.port))
                .arg("get-job-attributes.test"),
        )
    }

    /// One attribute of a CUPS job (`job-state` -> `completed`), or "".
    pub fn job_attribute(&self, job: u32, name: &str) -> String {
        let prefix = format!("{name} (");
        self.job_attributes(job)
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.starts_with(&prefix)
                    .then(|| l.split_once(" = ").map(|(_, v)| v.to_owned()))
                    .flatten()
            })
            .unwrap_or_default()
    }

    /// The model (PPD) CUPS keeps for a queue: what print dialogs offer.
    pub fn ppd(&self, queue: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("ppd").join(format!("{queue}.ppd")))
            .unwrap_or_else(|e| panic!("queue {queue} has a PPD: {e}"))
    }

    /// The scheduler's log (LogLevel debug: each job's backend messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/error_log")).unwrap_or_default()
    }

    /// This job's lines of the log, for failure messages.
    pub fn job_log(&self, job: u32) -> String {
        let tag = format!("[Job {job}]");
        self.error_log()
            .lines()
            .filter(|l| {
                l.contains(&tag)
                    && (!l.starts_with('D')
                        || l.contains("status-message")
                        || l.contains("destination-uri"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for PrivateCups {
    fn drop(&mut self) {
        terminate(&mut self.cupsd, std::time::Duration::from_secs(10));
    }
}

/// An account with bob@acme.example, who owns a faxbox reached by mail at
/// `<number>@fax.acme.example`, made beside the running box.
pub fn bob_with_desk(data: &Path) {
    let store = faxbox::store::Store::open_existing(data).unwrap();
    let account = store
        .create_account("Acme", Some("acme.example"))
        .unwrap()
        .id;
    let bob = store
        .create_user(&account, "bob@acme.example", "Bob")
        .unwrap();
    store
        .create_faxbox(
            &account,
            faxbox::model::FaxboxFields {
                name: Some("Desk".into()),
                owner_id: Some(bob.id),
                custom_smtp_email_address: Some("fax.acme.example".into()),
                ..Default::default()
            },
        )
        .unwrap();
}

/// Where the box takes mail, from its banner.
pub fn smtp_port(banner: &str) -> u16 {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("smtp:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .map(|addr| addr.port())
        .unwrap_or_else(|| panic!("the banner says where SMTP listens: {banner}"))
}

pub fn mail_with(pdf: &[u8]) -> lettre::Message {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    lettre::Message::builder()
        .from("Bob <bob@acme.example>".parse().unwrap())
        .to("5551234@fax.acme.example".parse().unwrap())
        .subject("Chaos")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("Please fax this.".to_owned()))
                .singlepart(
                    Attachment::new("letter.pdf".into())
                        .body(pdf.to_vec(), ContentType::parse("application/pdf").unwrap()),
                ),
        )
        .unwrap()
}

/// Sends `mail` to the box on `port`; the fax's id when the box
/// acknowledged it (`250 queued as <id>`), else the error in words.
pub fn send_mail(port: u16, mail: &lettre::Message) -> Result<faxbox::model::FaxId, String> {
    use lettre::Transport;
    let mailer = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    let response = mailer.send(mail).map_err(|e| e.to_string())?;
    let first = response.message().next().unwrap_or_default().to_owned();
    let id = first
        .strip_prefix("queued as ")
        .unwrap_or_else(|| panic!("an acknowledgement names the fax: {first}"));
    Ok(faxbox::model::FaxId(id.to_owned()))
}

/// A private Postfix on loopback, in front of the box (the office relay
/// that passes mail on to Faxbox's SMTP listener) and behind it (the
/// smarthost that takes Faxbox's receipts). Its own main.cf and master.cf
/// in a temporary folder, with its queue and `maillog_file` there;
/// `postfix -c DIR start-fg` keeps its master a child of the test. Postfix
/// routes each domain of `routes` to a port on 127.0.0.1 (its
/// `transport_maps`; mail for its own domain, office.test, is discarded),
/// relays for loopback clients only, retries deferred
/// mail after 1 to 2 s instead of minutes, and checks client greetings as
/// a smarthost does (`reject_non_fqdn_helo_hostname`).
///
/// Postfix's master must start as root (it binds ports and runs its
/// daemons as the `postfix` user); elsewhere the tests are skipped.
pub struct PrivatePostfix {
    dir: tempfile::TempDir,
    master: std::process::Child,
    /// Its SMTP port on 127.0.0.1.
    pub port: u16,
}

impl PrivatePostfix {
    /// Starts Postfix on `port` (a free one: see `free_loopback_port`) and
    /// waits until it answers; `None`, with the reason printed, when
    /// Postfix is not installed or this is not root.
    pub fn start(port: u16, routes: &[(&str, u16)]) -> Option<PrivatePostfix> {
        for program in ["postfix", "sendmail", "postqueue"] {
            if installed(program).is_none() {
                println!(
                    "skipped: `{program}` (Debian postfix) is not installed; `make test-deps` installs it"
                );
                return None;
            }
        }
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
            println!(
                "skipped: Postfix's master must start as root, and these tests do not run as root"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("queue")).unwrap();
        // Postfix's daemons run as `postfix` and must reach the queue.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = base.display();
        // Mail for the relay's own domain (office.test) is discarded, and
        // logged as delivered: a bounce to a sender there ends at once.
        let transport: Vec<String> = routes
            .iter()
            .map(|(domain, to)| format!("{{{domain} = smtp:[127.0.0.1]:{to}}}"))
            .chain(["{office.test = discard:}".to_owned()])
            .collect();
        // local_header_rewrite_clients empty: Postfix adds no Message-ID or
        // Date to mail from loopback, as a smarthost on another machine
        // would not, so what arrives is what Faxbox wrote.
        std::fs::write(
            base.join("etc/main.cf"),
            format!(
                "compatibility_level = 3.6\nqueue_directory = {b}/queue\ndata_directory = {b}/data\n\
                 mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = relay.office.test\n\
                 mydomain = office.test\nmydestination =\nlocal_recipient_maps =\nalias_maps =\n\
                 alias_database =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
                 mynetworks = 127.0.0.0/8\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
                 smtpd_helo_required = yes\n\
                 smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\n\
                 local_header_rewrite_clients =\n\
                 transport_maps = inline:{{ {} }}\n\
                 maillog_file = {b}/maillog\nmaillog_file_prefixes = {b}\n\
                 queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n\
                 smtp_tls_security_level = none\nbiff = no\n",
                transport.join(", ")
            ),
        )
        .unwrap();
        // Debian's master.cf without the chroot and the unused transports.
        std::fs::write(
            base.join("etc/master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\npickup unix n - n 60 1 pickup\n\
                 cleanup unix n - n - 0 cleanup\nqmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\nbounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\ntrace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\nflush unix n - n 1000? 0 flush\n\
                 proxymap unix - - n - - proxymap\nsmtp unix - - n - - smtp\n\
                 relay unix - - n - - smtp\nshowq unix n - n - - showq\n\
                 error unix - - n - - error\nretry unix - - n - - error\n\
                 discard unix - - n - - discard\nlocal unix - n n - - local\n\
                 anvil unix - - n - 1 anvil\nscache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .unwrap();
        let master = Command::new(installed("postfix").unwrap())
            .arg("-c")
            .arg(base.join("etc"))
            .arg("start-fg")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("postfix starts");
        let mut postfix = PrivatePostfix { dir, master, port };
        wait_for(
            "Postfix to answer",
            std::time::Duration::from_secs(30),
            || {
                if let Ok(Some(status)) = postfix.master.try_wait() {
                    panic!(
                        "Postfix stopped at start ({status}):\n{}",
                        postfix.maillog()
                    );
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        Some(postfix)
    }

    /// Postfix's log (`maillog_file`): one line per delivery with its
    /// `status=` (sent, deferred, bounced) and the far end's answer.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The delivery lines for one recipient (`to=<rcpt>, ... status=...`).
    pub fn deliveries(&self, recipient: &str) -> Vec<String> {
        let to = format!("to=<{recipient}>");
        self.maillog()
            .lines()
            .filter(|l| l.contains(&to) && l.contains("status="))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a delivery to `recipient` has `status=STATUS`; its line.
    pub fn wait_delivery(&self, recipient: &str, status: &str) -> String {
        let mut found = None;
        let wanted = format!("status={status}");
        wait_for(
            &format!("Postfix to log {wanted} for {recipient}"),
            std::time::Duration::from_secs(60),
            || {
                found = self
                    .deliveries(recipient)
                    .into_iter()
                    .find(|l| l.contains(&wanted));
                found.is_some()
            },
        );
        found.unwrap()
    }

    /// `postqueue -p`: what waits in the queue ("Mail queue is empty").
    pub fn queue(&self) -> String {
        run_ok(
            Command::new(installed("postqueue").unwrap())
                .arg("-c")
                .arg(self.dir.path().join("etc"))
                .arg("-p"),
        )
    }

    /// Submits a message as a local program does: Postfix's `sendmail -f
    /// FROM TO` with the message on stdin.
    pub fn sendmail(&self, from: &str, to: &str, message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(installed("sendmail").unwrap())
            .arg("-C")
            .arg(self.dir.path().join("etc"))
            .args(["-i", "-f", from, to])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sendmail runs");
        child.stdin.take().unwrap().write_all(message).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "sendmail: {status}");
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        // `postfix start-fg` runs the master under postfix-script, not as
        // our child itself: stop the master by its pid file, then the rest.
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        if let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let proc_dir = PathBuf::from(format!("/proc/{pid}"));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while proc_dir.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        terminate(&mut self.master, std::time::Duration::from_secs(10));
    }
}

/// A memory figure of a running process from `/proc/PID/status`, in MB:
/// `VmRSS` (resident now) or `VmHWM` (the peak so far).
pub fn memory_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb / 1024.0
}

/// The CPU time a running process has used so far (user + system, all its
/// threads), in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // Fields after the command name (which may hold spaces) in parentheses;
    // utime and stime are the 14th and 15th of the whole line.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let per_second: f64 = run_ok(Command::new("getconf").arg("CLK_TCK"))
        .trim()
        .parse()
        .unwrap();
    ticks / per_second
}
