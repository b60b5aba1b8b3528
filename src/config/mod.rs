//! Static configuration: the TOML file, read once at start.
//!
//! Two phases (docs/style.md, principle 4): the raw forms mirror the file
//! with `deny_unknown_fields`, so a typo is an error rather than a silent
//! default; `Config` is the resolved value with every default filled in and
//! nothing optional left. Each section has its own file and its own resolve
//! function (`listeners`, `lines`, `smarthost`, `log`); this one reads the
//! file, resolves the top-level keys and checks what spans sections (no two
//! listeners on one port). Runtime settings (Kazoo's `system_config.fax`
//! keys) are not here: they live in the store and can change while the box
//! runs. `config` imports nothing above it (docs/architecture.md, "Who owns
//! what"): the defaults other parts share (`LAN`, `DEFAULT_TOKEN_LIFETIME`)
//! live here.

mod lines;
mod listeners;
mod log;
mod smarthost;
mod storage;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use self::lines::{
    DocumentDelivery, FarEnd, FlowControl, FreeSwitchConfig, FreeSwitchNode, LineConfig, LineKind,
    LoopbackConfig, ModemConfig, need_file_proxy,
};
pub use self::listeners::{
    DEFAULT_TOKEN_LIFETIME, FileProxyConfig, HttpConfig, IppConfig, LAN, SmtpConfig, TlsFiles,
};
pub use self::log::{LogConfig, LogFormat};
pub use self::smarthost::{Smarthost, SmarthostServer, TlsMode};
pub use self::storage::StorageConfig;

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
    pub http: HttpConfig,
    pub smtp: SmtpConfig,
    pub file_proxy: FileProxyConfig,
    pub ipp: IppConfig,
    pub lines: Vec<LineConfig>,
    pub smarthost: Smarthost,
    pub log: LogConfig,
    pub storage: StorageConfig,
    /// How long calls in progress may go on after a stop is asked for
    /// (`stop_grace_s`); the rest are hung up and recorded as interrupted.
    pub stop_grace: Duration,
    /// How long an API token stays good, restarts included
    /// (`http.token_lifetime_s`; Kazoo's 3600 s by default).
    pub token_lifetime: Duration,
    /// The wait after a faxbox callback's first failed delivery
    /// (`callback_retry_s`, 30 s), doubling with each failure up to an hour.
    pub callback_retry: Duration,
}

/// The default of `stop_grace_s`: a typical multi-page fax (five pages at
/// 9600 bit/s with training) fits; the systemd unit's TimeoutStopSec is
/// above it.
pub const DEFAULT_STOP_GRACE_S: u64 = 180;

// ---------------------------------------------------------------------------
// Phase one: the file as written. Each `[[line]]` stays a table here: its
// `type` decides which form it is read into (`lines`).

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    http: Option<listeners::RawHttp>,
    smtp: Option<listeners::RawSmtp>,
    file_proxy: Option<listeners::RawFileProxy>,
    ipp: Option<listeners::RawIpp>,
    #[serde(rename = "line")]
    lines: Option<Vec<toml::Table>>,
    smarthost: Option<smarthost::RawSmarthost>,
    log: Option<log::RawLog>,
    storage: Option<storage::RawStorage>,
    stop_grace_s: Option<i64>,
    callback_retry_s: Option<i64>,
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

/// The file being resolved: every error names it, with the key and value.
struct ConfigFile<'a> {
    path: &'a Path,
}

impl ConfigFile<'_> {
    fn bad(&self, key: &str, value: &dyn fmt::Display, problem: &str) -> ConfigError {
        ConfigError::Value {
            path: self.path.to_owned(),
            key: key.to_owned(),
            value: value.to_string(),
            problem: problem.to_owned(),
        }
    }

    /// A section's `listen` address, `default` when the file gives none.
    fn listen(
        &self,
        section: &str,
        text: Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let text = text.unwrap_or_else(|| default.to_owned());
        text.parse::<SocketAddr>().map_err(|_| {
            self.bad(
                &format!("{section}.listen"),
                &format!("{text:?}"),
                &format!("expected an address and port such as \"{default}\""),
            )
        })
    }

    /// A list of client addresses or networks (`allow`, `trusted_relays`).
    fn networks(
        &self,
        key: &str,
        words: Vec<String>,
        example: &str,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        words
            .iter()
            .map(|word| {
                word.parse::<ipnet::IpNet>()
                    .or_else(|_| word.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        self.bad(
                            key,
                            &format!("{word:?}"),
                            &format!("expected an address or network such as {example}"),
                        )
                    })
            })
            .collect()
    }

    /// Seconds in a range, or the default when the key is absent.
    fn seconds(
        &self,
        key: &str,
        value: Option<i64>,
        default: u64,
        range: std::ops::RangeInclusive<i64>,
        meaning: &str,
    ) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(Duration::from_secs(default)),
            Some(s) if range.contains(&s) => Ok(Duration::from_secs(s as u64)),
            Some(other) => Err(self.bad(
                key,
                &other,
                &format!(
                    "expected seconds from {} to {} {meaning}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// Resolves each section in turn, then what spans them.
fn resolve(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let file = ConfigFile { path };
    let data_dir = raw
        .data_dir
        .unwrap_or_else(|| PathBuf::from("./faxbox-data"));
    if data_dir.as_os_str().is_empty() {
        return Err(file.bad("data_dir", &"\"\"", "give a folder for the faxbox data"));
    }
    let (http, token_lifetime) = listeners::resolve_http(raw.http.unwrap_or_default(), &file)?;
    let smtp = listeners::resolve_smtp(raw.smtp.unwrap_or_default(), &file)?;
    let file_proxy = listeners::resolve_file_proxy(raw.file_proxy.unwrap_or_default(), &file)?;
    let ipp = listeners::resolve_ipp(raw.ipp.unwrap_or_default(), &file)?;
    let lines = lines::resolve_lines(raw.lines, &file)?;
    let smarthost =
        smarthost::resolve_smarthost(raw.smarthost.unwrap_or_default(), &smtp.hostname, &file)?;
    let log = log::resolve_log(raw.log.unwrap_or_default(), &file)?;
    let storage = storage::resolve_storage(raw.storage.unwrap_or_default(), &file)?;
    check_ports(&http, &smtp, &file_proxy, &ipp, &lines, &file)?;
    let stop_grace = file.seconds(
        "stop_grace_s",
        raw.stop_grace_s,
        DEFAULT_STOP_GRACE_S,
        0..=3600,
        "that calls may go on after a stop",
    )?;
    let callback_retry = file.seconds(
        "callback_retry_s",
        raw.callback_retry_s,
        30,
        1..=3600,
        "before a failed callback is tried again",
    )?;
    Ok(Config {
        source: path.display().to_string(),
        data_dir,
        http,
        smtp,
        file_proxy,
        ipp,
        lines,
        smarthost,
        log,
        storage,
        stop_grace,
        token_lifetime,
        callback_retry,
    })
}

/// No two listeners on one port: the second would fail to start, or, with
/// a wildcard address beside a specific one, take the other's clients.
fn check_ports(
    http: &HttpConfig,
    smtp: &SmtpConfig,
    file_proxy: &FileProxyConfig,
    ipp: &IppConfig,
    lines: &[LineConfig],
    file: &ConfigFile,
) -> Result<(), ConfigError> {
    let mut listeners: Vec<(String, SocketAddr)> = vec![
        ("http.listen".into(), http.listen),
        ("smtp.listen".into(), smtp.listen),
    ];
    if need_file_proxy(lines) {
        listeners.push(("file_proxy.listen".into(), file_proxy.listen));
    }
    if ipp.enabled {
        listeners.push(("ipp.listen".into(), ipp.listen));
    }
    for (i, line) in lines.iter().enumerate() {
        if let LineKind::FreeSwitch(f) = &line.kind
            && let Some(socket) = f.inbound_socket
        {
            listeners.push((format!("line[{i}].inbound_socket"), socket));
        }
    }
    for (n, (key, addr)) in listeners.iter().enumerate() {
        // Port 0: the system picks a free port (tests).
        if addr.port() == 0 {
            continue;
        }
        let clash = listeners[..n].iter().find(|(_, other)| {
            other.port() == addr.port()
                && (other.ip() == addr.ip()
                    || other.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
        if let Some((first, _)) = clash {
            return Err(file.bad(
                key,
                &format!("\"{addr}\""),
                &format!(
                    "port {} is already used by {first}; give each listener its own port",
                    addr.port()
                ),
            ));
        }
    }
    Ok(())
}

/// The keys a raw form takes, as its derived `Deserialize` names them:
/// serde hands a struct's field names to `deserialize_struct`, and this
/// deserializer only keeps them. Error messages list these, so what they
/// say a section takes is what it does take.
fn keys_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value::Error as Refusal};
    struct KeysOnly<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for KeysOnly<'_> {
        type Error = Refusal;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Refusal> {
            Err(Refusal::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Refusal> {
            *self.0 = fields;
            Err(Refusal::custom("keys read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut keys: &'static [&'static str] = &[];
    // The error is the point: the keys are read before it.
    let _ = T::deserialize(KeysOnly(&mut keys));
    keys
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
        let allow: Vec<String> = c.file_proxy.allow.iter().map(|n| n.to_string()).collect();
        assert_eq!(allow, ["127.0.0.0/8", "::1/128"]);
        // The printers: off, on IPP's port, for the LAN, announced.
        assert!(!c.ipp.enabled && c.ipp.mdns && !c.ipp.require_auth);
        assert_eq!(c.ipp.listen.to_string(), "0.0.0.0:631");
        let lan: Vec<String> = c.ipp.allow.iter().map(|n| n.to_string()).collect();
        assert!(
            lan.contains(&"192.168.0.0/16".to_owned()) && lan.contains(&"127.0.0.0/8".to_owned())
        );
        assert!(!lan.iter().any(|n| n == "0.0.0.0/0"));
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
        let LineKind::Loopback(l) = &c.lines[0].kind else {
            panic!("{:?}", c.lines[0].kind);
        };
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

    /// The example file's modem section, uncommented, resolves to what its
    /// comments say.
    #[test]
    fn the_example_modem_line_resolves() {
        let example = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/faxbox.example.toml"),
        )
        .unwrap();
        let start = example
            .find("# [[line]]\n# name = \"modem1\"")
            .expect("a modem example");
        let section: String = example[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&section).unwrap_or_else(|e| panic!("{e}\n{section}"));
        let LineKind::Modem(m) = &c.lines[0].kind else {
            panic!("{:?}", c.lines[0].kind);
        };
        assert_eq!(m.device, PathBuf::from("/dev/faxmodem0"));
        assert_eq!(m.speed, 115_200);
        assert_eq!(m.flow_control, FlowControl::XonXoff);
        assert_eq!((m.init.as_str(), m.dial_prefix.as_str()), ("ATZ", "ATDT"));
        assert_eq!(m.answer_after_rings, 2);
        assert_eq!(m.numbers, ["5550100"]);
        assert_eq!(m.probe_every, Duration::from_secs(60));
        assert_eq!(m.time_scale, 1.0);
        assert_eq!(c.lines[0].channels(), 1);
    }

    #[test]
    fn freeswitch_line_resolves_with_defaults() {
        let c = parse(
            r#"
            [[line]]
            name = "pstn"
            type = "freeswitch"
            dial_string = "sofia/gateway/carrier/{number}"
            [[line.node]]
            esl = "127.0.0.1:8021"
            channels = 1
            [[line.node]]
            esl = "fs2:8021"
            password = "x"
            "#,
        )
        .unwrap();
        let LineKind::FreeSwitch(f) = &c.lines[0].kind else {
            panic!("a freeswitch line");
        };
        assert_eq!(f.document, DocumentDelivery::Http);
        assert_eq!(f.inbound_socket, None);
        assert_eq!(f.originate_timeout, Duration::from_secs(60));
        assert!(f.t38 && !f.t38_request);
        assert_eq!(f.nodes[0].password, "ClueCon");
        assert_eq!(f.nodes[1].channels, 2);
        assert_eq!(c.lines[0].channels(), 3);
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
            (
                "[[line]]\nname = \"m\"\ntype = \"modem\"",
                &["line[0].device", "serial device"],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = \"modem\"\ndevice = \"/dev/x\"\nspeed = 1234",
                &["line[0].speed", "1234"],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = \"modem\"\ndevice = \"/dev/x\"\nflow_control = \"xon\"",
                &["line[0].flow_control", "\"xon\""],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = \"modem\"\ndevice = \"/dev/x\"\ndial_prefix = \"X\"",
                &["line[0].dial_prefix", "ATD"],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = \"modem\"\ndevice = \"/dev/x\"\nnumbers = { \"1\" = \"busy\" }",
                &["line[0].numbers", "list"],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = \"loopback\"\nnumbers = [\"1\"]",
                &["line[0].numbers", "far-end"],
            ),
            ("[log]\nformat = \"xml\"", &["log.format", "\"xml\""]),
            (
                "[file_proxy]\nallow = [\"10.0.0.300/8\"]",
                &["file_proxy.allow", "10.0.0.300/8"],
            ),
            ("[ipp]\nallow = [\"the lan\"]", &["ipp.allow", "the lan"]),
            ("[ipp]\nlisten = \"631\"", &["ipp.listen", "631"]),
            (
                "[ipp]\nenabled = \"yes\"",
                &["enabled", "expected a boolean"],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"freeswitch\"\ndial_string = \"x/{number}\"\nchannels = 2\n[[line.node]]",
                &["line[0].channels", "per [[line.node]]"],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"freeswitch\"\ndial_string = \"x/{number}\"\ndocument = \"ftp\"\n[[line.node]]",
                &["line[0].document", "\"ftp\""],
            ),
            (
                "[[line]]\nname = \"a\"\ntype = \"freeswitch\"\ndial_string = \"x/{number}\"\n[[line.node]]\nchannels = 0",
                &["line[0].node[0].channels", "0"],
            ),
            (
                "[file_proxy]\nurl = \"ftp://box\"",
                &["file_proxy.url", "ftp://box"],
            ),
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
