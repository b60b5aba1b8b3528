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
    /// Writes `config` (TOML; listeners on port 0 are added) to
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
        std::fs::write(
            dir.join("faxbox.toml"),
            // Its top-level keys come before any table.
            format!(
                "{config}\n[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
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
