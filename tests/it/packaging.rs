//! The appliance as it is installed: `faxbox --version`, systemd's
//! `Type=notify` protocol over a real Unix datagram socket, and `make
//! install` into a temporary DESTDIR whose binary, config and unit are used
//! as installed (selftest, check-config, `systemd-analyze verify`).

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::faxbox_bin;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn version_names_release_commit_target_and_build_date() {
    let out = Command::new(faxbox_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let re = regex::Regex::new(
        r"^faxbox (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}|unknown), ([a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(?:-[a-z0-9_]+)?), built (\d{4}-\d{2}-\d{2})\)\n$",
    )
    .unwrap();
    let caps = re.captures(&text).unwrap_or_else(|| panic!("{text:?}"));
    assert_eq!(&caps[1], env!("CARGO_PKG_VERSION"));
    let target = &caps[3];
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.contains("linux"),
        "{target}"
    );
    let built = chrono::NaiveDate::parse_from_str(&caps[4], "%Y-%m-%d").unwrap();
    assert!(built <= chrono::Utc::now().date_naive(), "{built}");
    // From a git checkout the commit is HEAD's (cargo rebuilt the binary
    // when HEAD moved); from a tarball it says "unknown".
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(manifest_dir())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let is_checkout = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| Path::new(&top).canonicalize().ok())
        .is_some_and(|top| top == manifest_dir().canonicalize().unwrap());
    if is_checkout && std::env::var_os("FAXBOX_GIT_COMMIT").is_none() {
        let head = git(&["rev-parse", "HEAD"]).unwrap();
        assert!(
            head.starts_with(&caps[2]),
            "{} is not HEAD {head}",
            &caps[2]
        );
    }
}

/// A systemd stand-in: the datagram socket `NOTIFY_SOCKET` names, as
/// systemd's manager binds it, and the messages `faxbox serve` sends to it.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self { socket, path }
    }

    /// The next message containing `wanted` (a line such as "READY=1"),
    /// with every message received before it.
    fn wait_for(&self, wanted: &str, timeout: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {wanted} from faxbox serve; got {before:?}"
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(e) => panic!("notify socket: {e}"),
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.lines().any(|l| l == wanted) {
                return (message, before);
            }
            before.push(message);
        }
    }
}

#[test]
fn serve_notifies_systemd_ready_once_listening_then_watchdog_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("faxbox.toml"),
        "[http]\nlisten = \"127.0.0.1:0\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let systemd = NotifySocket::bind(dir.path());
    let mut child = Command::new(faxbox_bin())
        .args(["--data-dir", data.to_str().unwrap(), "serve"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &systemd.path)
        // WatchdogSec=0.4s: pings are due every 0.2 s.
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let (ready, before) = systemd.wait_for("READY=1", Duration::from_secs(60));
    assert!(
        before.iter().all(|m| !m.contains("WATCHDOG=1")),
        "no watchdog ping before ready: {before:?}"
    );
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=running; API on http://")),
        "{ready:?}"
    );
    // The banner came first, and the API it names already takes connections.
    let mut api = None;
    while api.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the banner was printed before READY=1");
        api = line
            .trim()
            .strip_prefix("api:")
            .map(|a| {
                a.trim()
                    .trim_start_matches("http://")
                    .trim_end_matches("/v2")
            })
            .map(str::to_owned);
    }
    let api = api.unwrap();
    std::net::TcpStream::connect(&api)
        .unwrap_or_else(|e| panic!("the API at {api} listens once READY=1 is sent: {e}"));

    // Pings at half the watchdog interval: several within a second.
    let started = Instant::now();
    for _ in 0..3 {
        systemd.wait_for("WATCHDOG=1", Duration::from_secs(5));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "three watchdog pings took {:?}",
        started.elapsed()
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    systemd.wait_for("STOPPING=1", Duration::from_secs(30));
    let status = child.wait().unwrap();
    assert!(status.success(), "serve stops cleanly: {status:?}");
}

/// `systemd-analyze verify` on a unit, with its ExecStart binary (which the
/// check requires to exist) taken from `root` instead of `/`.
fn systemd_verify(unit: &Path, binary: &Path) {
    let text = std::fs::read_to_string(unit).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart=");
    let program = exec.split_whitespace().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("faxbox.service");
    std::fs::write(
        &copy,
        text.replace(
            &format!("ExecStart={program}"),
            &format!("ExecStart={}", binary.display()),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (package `systemd`; `make test` installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {}: {stderr}",
        unit.display()
    );
}

#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let unit = manifest_dir().join("systemd/faxbox.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=faxbox",
        "ConfigurationDirectory=faxbox",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "SupplementaryGroups=dialout",
        "User=faxbox",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(setting)),
            "{setting} in {text}"
        );
    }
    systemd_verify(&unit, &faxbox_bin());
}

#[test]
fn make_install_lays_out_a_box_that_passes_selftest() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("root");
    let install = || {
        Command::new("make")
            .args(["--no-print-directory", "-C"])
            .arg(manifest_dir())
            .arg("install")
            .arg(format!("DESTDIR={}", dest.display()))
            .arg("PREFIX=/usr")
            .arg(format!("FAXBOX_BIN={}", faxbox_bin().display()))
            .output()
            .expect("make runs")
    };
    let out = install();
    assert!(
        out.status.success(),
        "make install: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bin = dest.join("usr/bin/faxbox");
    let unit = dest.join("usr/lib/systemd/system/faxbox.service");
    let config = dest.join("etc/faxbox/faxbox.toml");
    for path in [
        &bin,
        &unit,
        &config,
        &dest.join("etc/faxbox/faxbox.example.toml"),
        &dest.join("usr/lib/sysusers.d/faxbox.conf"),
        &dest.join("usr/share/doc/faxbox/README.md"),
    ] {
        assert!(path.is_file(), "{} installed", path.display());
    }
    assert!(dest.join("var/lib/faxbox").is_dir());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // The unit starts the binary where PREFIX put it.
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains("ExecStart=/usr/bin/faxbox --config /etc/faxbox/faxbox.toml"),
        "{unit_text}"
    );
    systemd_verify(&unit, &bin);

    // The installed binary reads the installed config, which points at the
    // installed data dir.
    let run = |args: &[&str]| {
        Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let checked = run(&["check-config"]);
    let text = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{text}");
    assert!(text.contains("data_dir = /var/lib/faxbox"), "{text}");
    let selftest = run(&["selftest"]);
    let text = String::from_utf8_lossy(&selftest.stdout);
    assert!(selftest.status.success(), "selftest: {text}");
    assert!(text.contains("selftest: all"), "{text}");

    // Installing again keeps the administrator's edited config.
    std::fs::write(&config, "data_dir = \"/srv/fax\"\n").unwrap();
    let out = install();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "data_dir = \"/srv/fax\"\n"
    );
}
