//! Static configuration: the TOML file, read once at start.
//!
//! Two phases (STYLE.md principle 4): `RawConfig` mirrors the file with
//! `deny_unknown_fields`, so a typo is an error rather than a silent default;
//! `Config` is the resolved value with every default filled in and nothing
//! optional left. Runtime settings (Kazoo's `system_config.fax` keys) are not
//! here: they live in the store and can change while the box runs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `faxbox` looks when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "faxbox.toml";
/// Where installed appliances keep it (see systemd/faxbox.service).
pub const INSTALLED_CONFIG_FILE: &str = "/etc/faxbox/faxbox.toml";

/// A configuration problem, phrased for the person editing the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}` = {value}: {problem}")]
    Value {
        path: PathBuf,
        key: String,
        value: String,
        problem: String,
    },
}

/// The resolved configuration of one appliance.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the file came from (`built-in defaults` when none was read).
    pub source: String,
    pub data_dir: PathBuf,
    pub http: Listener,
    pub smtp: SmtpConfig,
    pub file_proxy: Listener,
    pub lines: Vec<LineConfig>,
    pub smarthost: Smarthost,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub listen: SocketAddr,
}

/// The email-to-fax listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// STARTTLS certificate chain and key (PEM files); `None` offers no TLS.
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// One line: a named source of channels that can place and take fax calls.
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    pub name: String,
    pub kind: LineKind,
    /// The faxbox (id) that takes calls to numbers no faxbox claims; with
    /// none, such calls are refused.
    pub default_faxbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    Loopback(LoopbackConfig),
}

impl LineConfig {
    /// How many calls this line can carry at once.
    pub fn channels(&self) -> u32 {
        match &self.kind {
            LineKind::Loopback(l) => l.channels,
        }
    }
}

/// The built-in line whose far end is a simulated fax machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackConfig {
    pub channels: u32,
    /// Pace the audio at 8 kHz (for demos); otherwise calls run as fast as
    /// the CPU allows.
    pub realtime: bool,
    /// How the simulated far end behaves for particular dialled numbers;
    /// any other number is answered by a healthy fax machine.
    pub numbers: BTreeMap<String, FarEnd>,
}

/// What the loopback line's far end does when a number is dialled.
#[derive(Debug, Clone, PartialEq)]
pub enum FarEnd {
    Fax,
    Busy,
    NoAnswer,
    /// Answers with a voice, never with fax tones.
    NotAFax,
    /// Answers as a fax but refuses error correction mode.
    RejectsEcm,
    /// The call is cut after this long.
    DropsAfter(Duration),
    /// White noise at this level (dBm0) on the line, after the signal has
    /// lost `loss_db` (a long analogue line; 0 unless configured). Above
    /// about -46 dBm0 the noise keeps the V.21 receivers' carrier detectors
    /// on and the call fails; with `loss_db = 20`, -50 dBm0 costs non-ECM
    /// pages some rows.
    Noise {
        db: f32,
        loss_db: f32,
    },
}

/// The mail server that carries outgoing email (receipts, received faxes).
#[derive(Debug, Clone, PartialEq)]
pub struct Smarthost {
    /// `None` leaves mail queued in the store until one is configured.
    pub server: Option<SmarthostServer>,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmarthostServer {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub tls: TlsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `faxbox=debug`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Text,
    /// One JSON object per line, for journald and log shippers.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

// ---------------------------------------------------------------------------
// Phase one: the file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    http: Option<RawListener>,
    smtp: Option<RawSmtp>,
    file_proxy: Option<RawListener>,
    #[serde(rename = "line")]
    lines: Option<Vec<RawLine>>,
    smarthost: Option<RawSmarthost>,
    log: Option<RawLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Option<String>,
    hostname: Option<String>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    channels: Option<i64>,
    realtime: Option<bool>,
    numbers: Option<BTreeMap<String, RawFarEnd>>,
    default_faxbox: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFarEnd {
    Word(String),
    Table(RawFarEndTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFarEndTable {
    drops_after_s: Option<f64>,
    noise_db: Option<f64>,
    loss_db: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmarthost {
    host: Option<String>,
    port: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<String>,
    from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

// ---------------------------------------------------------------------------
// Phase two: resolution.

impl Config {
    /// The embedded default: everything on this machine, one loopback line.
    pub fn embedded_default() -> Config {
        resolve(RawConfig::default(), Path::new("built-in defaults"))
            .expect("the built-in defaults resolve")
    }

    /// Reads and resolves a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Resolves TOML text; `path` is used only to name the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        resolve(raw, path)
    }

    /// Finds the configuration the way `faxbox` does: an explicit path, else
    /// `./faxbox.toml` when present, else the embedded default.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        match explicit {
            Some(path) => Config::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Config::load(Path::new(DEFAULT_CONFIG_FILE))
            }
            None => Ok(Config::embedded_default()),
        }
    }
}

fn resolve(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let bad = |key: &str, value: &dyn fmt::Display, problem: &str| ConfigError::Value {
        path: path.to_owned(),
        key: key.to_owned(),
        value: value.to_string(),
        problem: problem.to_owned(),
    };
    let listener = |section: &str, raw: Option<RawListener>, default: &str| {
        let text = raw
            .and_then(|l| l.listen)
            .unwrap_or_else(|| default.to_owned());
        text.parse::<SocketAddr>()
            .map(|listen| Listener { listen })
            .map_err(|_| {
                bad(
                    &format!("{section}.listen"),
                    &format!("{text:?}"),
                    &format!("expected an address and port such as \"{default}\""),
                )
            })
    };

    let data_dir = raw
        .data_dir
        .unwrap_or_else(|| PathBuf::from("./faxbox-data"));
    if data_dir.as_os_str().is_empty() {
        return Err(bad(
            "data_dir",
            &"\"\"",
            "give a folder for the faxbox data",
        ));
    }
    // Kazoo's ports: crossbar 8000, fax_smtp 19025, fax_file_proxy 30950.
    let http = listener("http", raw.http, "127.0.0.1:8000")?;
    let smtp = {
        let raw_smtp = raw.smtp.unwrap_or_default();
        let listen = listener(
            "smtp",
            Some(RawListener {
                listen: raw_smtp.listen,
            }),
            "127.0.0.1:19025",
        )?
        .listen;
        let hostname = match raw_smtp.hostname {
            Some(h) if h.trim().is_empty() || h.contains(char::is_whitespace) => {
                return Err(bad(
                    "smtp.hostname",
                    &format!("{h:?}"),
                    "expected the box's mail name such as \"fax.example.com\"",
                ));
            }
            Some(h) => h,
            None => system_hostname(),
        };
        let tls = match (raw_smtp.tls_certificate, raw_smtp.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsFiles { certificate, key }),
            (None, None) => None,
            (Some(c), None) => {
                return Err(bad(
                    "smtp.tls_key",
                    &"(missing)",
                    &format!(
                        "tls_certificate = {:?} needs the key file beside it",
                        c.display()
                    ),
                ));
            }
            (None, Some(k)) => {
                return Err(bad(
                    "smtp.tls_certificate",
                    &"(missing)",
                    &format!(
                        "tls_key = {:?} needs the certificate file beside it",
                        k.display()
                    ),
                ));
            }
        };
        SmtpConfig {
            listen,
            hostname,
            tls,
        }
    };
    let file_proxy = listener("file_proxy", raw.file_proxy, "127.0.0.1:30950")?;

    let raw_lines = raw.lines.unwrap_or_else(|| {
        vec![RawLine {
            name: Some("loopback".into()),
            kind: Some("loopback".into()),
            channels: None,
            realtime: None,
            numbers: None,
            default_faxbox: None,
        }]
    });
    let mut lines = Vec::with_capacity(raw_lines.len());
    for (i, line) in raw_lines.into_iter().enumerate() {
        let key = |k: &str| format!("line[{i}].{k}");
        let name = line
            .name
            .ok_or_else(|| bad(&key("name"), &"(missing)", "every line needs a name"))?;
        if name.trim().is_empty() || lines.iter().any(|l: &LineConfig| l.name == name) {
            return Err(bad(
                &key("name"),
                &format!("{name:?}"),
                "line names must be non-empty and unique",
            ));
        }
        let kind_word = line.kind.unwrap_or_else(|| "(missing)".into());
        let kind = match kind_word.as_str() {
            "loopback" => {
                let channels = line.channels.unwrap_or(4);
                if !(1..=64).contains(&channels) {
                    return Err(bad(&key("channels"), &channels, "expected 1 to 64"));
                }
                let mut numbers = BTreeMap::new();
                for (number, behaviour) in line.numbers.unwrap_or_default() {
                    let k = key(&format!("numbers.\"{number}\""));
                    numbers.insert(number, resolve_far_end(behaviour, &k, &bad)?);
                }
                LineKind::Loopback(LoopbackConfig {
                    channels: channels as u32,
                    realtime: line.realtime.unwrap_or(false),
                    numbers,
                })
            }
            other => {
                return Err(bad(
                    &key("type"),
                    &format!("{other:?}"),
                    "the line types are: loopback",
                ));
            }
        };
        let default_faxbox = line.default_faxbox.filter(|f| !f.trim().is_empty());
        lines.push(LineConfig {
            name,
            kind,
            default_faxbox,
        });
    }

    let smarthost = match raw.smarthost {
        None => Smarthost {
            server: None,
            from: "faxbox@localhost".into(),
        },
        Some(s) => {
            let tls = match s.tls.as_deref().unwrap_or("starttls") {
                "none" => TlsMode::None,
                "starttls" => TlsMode::StartTls,
                "tls" => TlsMode::Tls,
                other => {
                    return Err(bad(
                        "smarthost.tls",
                        &format!("{other:?}"),
                        "expected \"none\", \"starttls\" or \"tls\"",
                    ));
                }
            };
            let default_port = match tls {
                TlsMode::Tls => 465,
                _ => 587,
            };
            let port = s.port.unwrap_or(default_port);
            let port = u16::try_from(port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("smarthost.port", &port, "expected 1 to 65535"))?;
            let server = s.host.map(|host| SmarthostServer {
                host,
                port,
                username: s.username.unwrap_or_default(),
                password: s.password.unwrap_or_default(),
                tls,
            });
            let from = s.from.unwrap_or_else(|| "faxbox@localhost".into());
            if !from.contains('@') {
                return Err(bad(
                    "smarthost.from",
                    &format!("{from:?}"),
                    "expected an email address",
                ));
            }
            Smarthost { server, from }
        }
    };

    let log = {
        let raw = raw.log.unwrap_or(RawLog {
            level: None,
            format: None,
        });
        let format = match raw.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    &format!("{other:?}"),
                    "expected \"text\" or \"json\"",
                ));
            }
        };
        let level = raw.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(bad(
                "log.level",
                &format!("{level:?}"),
                "expected a level such as \"info\" or \"faxbox=debug\"",
            ));
        }
        LogConfig { level, format }
    };

    Ok(Config {
        source: path.display().to_string(),
        data_dir,
        http,
        smtp,
        file_proxy,
        lines,
        smarthost,
        log,
    })
}

/// The machine's name, for the SMTP greeting when the file names none.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "faxbox".to_owned())
}

fn resolve_far_end(
    raw: RawFarEnd,
    key: &str,
    bad: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<FarEnd, ConfigError> {
    const WORDS: &str = "expected \"fax\", \"busy\", \"no_answer\", \"not_a_fax\", \"rejects_ecm\", \
                         { drops_after_s = N } or { noise_db = N, loss_db = N }";
    match raw {
        RawFarEnd::Word(word) => match word.as_str() {
            "fax" => Ok(FarEnd::Fax),
            "busy" => Ok(FarEnd::Busy),
            "no_answer" => Ok(FarEnd::NoAnswer),
            "not_a_fax" => Ok(FarEnd::NotAFax),
            "rejects_ecm" => Ok(FarEnd::RejectsEcm),
            _ => Err(bad(key, &format!("{word:?}"), WORDS)),
        },
        RawFarEnd::Table(RawFarEndTable {
            drops_after_s: Some(s),
            noise_db: None,
            loss_db: None,
        }) => {
            if s.is_finite() && s > 0.0 && s < 86_400.0 {
                Ok(FarEnd::DropsAfter(Duration::from_secs_f64(s)))
            } else {
                Err(bad(
                    key,
                    &s,
                    "drops_after_s must be a number of seconds above 0",
                ))
            }
        }
        RawFarEnd::Table(RawFarEndTable {
            drops_after_s: None,
            noise_db: Some(db),
            loss_db,
        }) => {
            if !(db.is_finite() && (-90.0..=0.0).contains(&db)) {
                return Err(bad(key, &db, "noise_db must be between -90 and 0 (dBm0)"));
            }
            let loss = loss_db.unwrap_or(0.0);
            if !(loss.is_finite() && (0.0..=40.0).contains(&loss)) {
                return Err(bad(key, &loss, "loss_db must be between 0 and 40 (dB)"));
            }
            Ok(FarEnd::Noise {
                db: db as f32,
                loss_db: loss as f32,
            })
        }
        RawFarEnd::Table(_) => Err(bad(key, &"{...}", WORDS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = parse("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./faxbox-data"));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:19025");
        assert_eq!(c.file_proxy.listen.to_string(), "127.0.0.1:30950");
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].name, "loopback");
        assert_eq!(c.lines[0].channels(), 4);
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.smarthost.server.is_none());
    }

    #[test]
    fn loopback_far_end_behaviours_resolve() {
        let c = parse(
            r#"
            [[line]]
            name = "lb"
            type = "loopback"
            channels = 2
            [line.numbers]
            "5550001" = "busy"
            "5550002" = "no_answer"
            "5550003" = "not_a_fax"
            "5550004" = { drops_after_s = 8 }
            "5550005" = { noise_db = -30 }
            "5550006" = "rejects_ecm"
            "5550007" = { noise_db = -50, loss_db = 20 }
            "#,
        )
        .unwrap();
        let LineKind::Loopback(l) = &c.lines[0].kind;
        assert_eq!(l.channels, 2);
        assert_eq!(l.numbers["5550001"], FarEnd::Busy);
        assert_eq!(l.numbers["5550002"], FarEnd::NoAnswer);
        assert_eq!(l.numbers["5550003"], FarEnd::NotAFax);
        assert_eq!(
            l.numbers["5550004"],
            FarEnd::DropsAfter(Duration::from_secs(8))
        );
        assert_eq!(
            l.numbers["5550005"],
            FarEnd::Noise {
                db: -30.0,
                loss_db: 0.0
            }
        );
        assert_eq!(
            l.numbers["5550007"],
            FarEnd::Noise {
                db: -50.0,
                loss_db: 20.0
            }
        );
        assert_eq!(l.numbers["5550006"], FarEnd::RejectsEcm);
    }

    /// Each bad file names the key and the value that is wrong.
    #[test]
    fn errors_name_the_key_and_value() {
        let cases: &[(&str, &[&str])] = &[
            ("colour = \"blue\"", &["unknown field", "colour"]),
            (
                "[http]\nlisten = \"nowhere\"",
                &["http.listen", "\"nowhere\""],
            ),
            (
                "[smtp]\nlisten = \"127.0.0.1:99999\"",
                &["smtp.listen", "99999"],
            ),
            (
                "[smtp]\ntls_certificate = \"/etc/faxbox/cert.pem\"",
                &["smtp.tls_key", "cert.pem"],
            ),
            ("[smtp]\nhostname = \"a b\"", &["smtp.hostname", "\"a b\""]),
            (
                "[[line]]\nname = \"a\"\ntype = \"isdn\"",
                &["line[0].type", "\"isdn\""],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"loopback\"\nchannels = 0",
                &["line[0].channels", "0"],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"loopback\"\n[line.numbers]\n\"1\" = \"bsy\"",
                &["line[0].numbers.\"1\"", "\"bsy\""],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"loopback\"\n[line.numbers]\n\"1\" = { noise_db = -50, loss_db = 99 }",
                &["line[0].numbers.\"1\"", "99", "loss_db"],
            ),
            ("[log]\nformat = \"xml\"", &["log.format", "\"xml\""]),
            ("[smarthost]\nport = 70000", &["smarthost.port", "70000"]),
            ("data_dir = [", &["test.toml"]),
        ];
        for (text, needles) in cases {
            let err = parse(text).expect_err(text).to_string();
            for needle in *needles {
                assert!(err.contains(needle), "{text:?}: {err:?} lacks {needle:?}");
            }
        }
    }

    /// The fixture files: every valid one resolves; every invalid one fails
    /// with an error containing what its `# expect:` line lists.
    #[test]
    fn fixture_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
        let files = |dir: &str| {
            let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v
        };
        let valid = files("valid");
        assert!(valid.len() >= 2);
        for path in valid {
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let invalid = files("invalid");
        assert!(invalid.len() >= 8);
        for path in invalid {
            let text = std::fs::read_to_string(&path).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} lacks an # expect: line", path.display()));
            let err = Config::load(&path)
                .expect_err(&path.display().to_string())
                .to_string();
            for needle in expect.split(", ") {
                assert!(
                    err.contains(needle),
                    "{}: {err:?} lacks {needle:?}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/faxbox.example.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.lines.is_empty());
    }
}
