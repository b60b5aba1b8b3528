//! Static configuration: the TOML file, read once at start.
//!
//! Two phases (docs/style.md, principle 4): `RawConfig` mirrors the file with
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

use crate::model::is_domain;

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
    /// How long calls in progress may go on after a stop is asked for
    /// (`stop_grace_s`); the rest are hung up and recorded as interrupted.
    pub stop_grace: std::time::Duration,
    /// How long an API token stays good, restarts included
    /// (`http.token_lifetime_s`; Kazoo's 3600 s by default).
    pub token_lifetime: std::time::Duration,
    /// The wait after a faxbox callback's first failed delivery
    /// (`callback_retry_s`, 30 s), doubling with each failure up to an hour.
    pub callback_retry: std::time::Duration,
}

/// The default of `stop_grace_s`: a typical multi-page fax (five pages at
/// 9600 bit/s with training) fits; the systemd unit's TimeoutStopSec is
/// above it.
pub const DEFAULT_STOP_GRACE_S: u64 = 180;

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub listen: SocketAddr,
}

/// The HTTP API's listener and who may call it from a web page.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Origins (`https://pbx.example.com`) whose pages may call the API;
    /// `*` (the default, as Kazoo) lets any page.
    pub cors_origins: Vec<String>,
}

/// The email-to-fax listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// STARTTLS certificate chain and key (PEM files); `None` offers no TLS.
    pub tls: Option<TlsFiles>,
    /// Relays (the office's Postfix, say) whose mail is taken without SMTP
    /// AUTH even when `smtp_require_auth` is on: they checked the sender.
    pub trusted_relays: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// The IPP FaxOut printers (print to fax), one per faxbox.
#[derive(Debug, Clone, PartialEq)]
pub struct IppConfig {
    /// Off unless asked for: it opens a port to the LAN.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Client networks that may print; others get 403.
    pub allow: Vec<ipnet::IpNet>,
    /// Jobs need an HTTP Basic login (user email + API key).
    pub require_auth: bool,
    /// Announce the printers over DNS-SD (mDNS) on the LAN.
    pub mdns: bool,
}

/// The file proxy FreeSWITCH fetches fax images from (Kazoo's
/// `fax_file_proxy`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileProxyConfig {
    pub listen: SocketAddr,
    /// Client networks that may fetch faxes; others get 403.
    pub allow: Vec<ipnet::IpNet>,
    /// How FreeSWITCH reaches the proxy (`http://host:port`); `None` uses
    /// the listen address (loopback for a wildcard one).
    pub url: Option<String>,
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
    Modem(ModemConfig),
    FreeSwitch(FreeSwitchConfig),
}

impl LineConfig {
    /// How many calls this line can carry at once.
    pub fn channels(&self) -> u32 {
        match &self.kind {
            LineKind::Loopback(l) => l.channels,
            LineKind::Modem(_) => 1,
            LineKind::FreeSwitch(f) => f.nodes.iter().map(|n| n.channels).sum(),
        }
    }
}

/// A line whose calls a FreeSWITCH with mod_spandsp places and takes,
/// driven over its Event Socket (issue 9).
#[derive(Debug, Clone, PartialEq)]
pub struct FreeSwitchConfig {
    /// The originate dial string; `{number}` is replaced by the number
    /// dialled (`sofia/gateway/carrier/{number}`).
    pub dial_string: String,
    pub document: DocumentDelivery,
    /// Where FreeSWITCH's dialplan `socket` application connects for
    /// incoming faxes; `None` takes no calls.
    pub inbound_socket: Option<SocketAddr>,
    /// A folder FreeSWITCH writes received faxes into and Faxbox reads;
    /// `None` lets FreeSWITCH write straight into Faxbox's data dir.
    pub spool_dir: Option<PathBuf>,
    /// FreeSWITCH's `originate_timeout`: how long the far end may ring.
    pub originate_timeout: Duration,
    /// `fax_enable_t38`: use T.38 when the gateway offers it.
    pub t38: bool,
    /// `fax_enable_t38_request`: ask the far end to switch to T.38.
    pub t38_request: bool,
    pub nodes: Vec<FreeSwitchNode>,
}

/// How FreeSWITCH gets the fax it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentDelivery {
    /// From the file proxy, through mod_http_cache (`${http_get(...)}`).
    Http,
    /// Read from Faxbox's data dir, which FreeSWITCH shares.
    Path,
}

/// One FreeSWITCH the line drives.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeSwitchNode {
    /// `host:port` of its event socket (mod_event_socket).
    pub esl: String,
    pub password: String,
    /// Calls it may carry at once.
    pub channels: u32,
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

/// A Class 1 fax modem on a serial port (see `lines::modem`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModemConfig {
    /// The serial device, best a stable name from a udev rule.
    pub device: PathBuf,
    /// Bits per second between the computer and the modem.
    pub speed: u32,
    /// How the modem holds back the computer while it sends page data.
    pub flow_control: FlowControl,
    /// Where UUCP lock files (`LCK..ttyUSB0`) are kept, so that Faxbox and
    /// other programs (HylaFAX, mgetty, minicom) never drive the modem at
    /// once; `None` takes no lock.
    pub lock_dir: Option<PathBuf>,
    /// Sent after `ATZ`-style reset at every probe (after `ATE0`).
    pub init: String,
    /// What comes before the number when dialling (`ATDT`, `ATDP`).
    pub dial_prefix: String,
    /// Incoming calls are answered after this many rings; 0 never answers.
    pub answer_after_rings: u32,
    /// The numbers this line answers for (the first is the called number
    /// handed to the receive path).
    pub numbers: Vec<String>,
    /// How often an idle or down modem is checked.
    pub probe_every: Duration,
    /// Line time runs this many times faster than wall time: 1 for a real
    /// modem; tests with the soft modem run faster.
    pub time_scale: f64,
}

/// Flow control between the computer and a modem (V.250 `+IFC`, T.31
/// `+FLO`): how the modem says "wait" while page data comes faster than
/// the phone line carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// Not configured: XON/XOFF when the modem offers it (`AT+FLO=?`,
    /// `AT+IFC=?`), else RTS/CTS.
    Auto,
    /// RTS/CTS wires (`CRTSCTS`).
    Hardware,
    /// In-band DC3 (pause) and DC1 (resume) from the modem while the
    /// computer sends; received data is left alone.
    XonXoff,
    None,
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
    /// The name the box gives in EHLO: `smtp.hostname`, a fully qualified
    /// name (smarthosts with Postfix's reject_non_fqdn_helo_hostname
    /// refuse a bare one).
    pub hello_name: String,
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
    http: Option<RawHttp>,
    smtp: Option<RawSmtp>,
    file_proxy: Option<RawFileProxy>,
    ipp: Option<RawIpp>,
    #[serde(rename = "line")]
    lines: Option<Vec<RawLine>>,
    smarthost: Option<RawSmarthost>,
    log: Option<RawLog>,
    stop_grace_s: Option<i64>,
    callback_retry_s: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    cors_origins: Option<Vec<String>>,
    token_lifetime_s: Option<i64>,
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
    trusted_relays: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIpp {
    enabled: Option<bool>,
    listen: Option<String>,
    allow: Option<Vec<String>>,
    require_auth: Option<bool>,
    mdns: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileProxy {
    listen: Option<String>,
    allow: Option<Vec<String>>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    channels: Option<i64>,
    realtime: Option<bool>,
    numbers: Option<RawNumbers>,
    default_faxbox: Option<String>,
    device: Option<PathBuf>,
    speed: Option<i64>,
    flow_control: Option<String>,
    lock_dir: Option<PathBuf>,
    init: Option<String>,
    dial_prefix: Option<String>,
    answer_after_rings: Option<i64>,
    probe_every_s: Option<f64>,
    time_scale: Option<f64>,
    dial_string: Option<String>,
    document: Option<String>,
    inbound_socket: Option<String>,
    spool_dir: Option<PathBuf>,
    originate_timeout_s: Option<i64>,
    t38: Option<bool>,
    t38_request: Option<bool>,
    node: Option<Vec<RawNode>>,
}

/// `numbers`: a loopback line's far-end table, or the list of numbers a
/// modem line answers for.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawNumbers {
    FarEnds(BTreeMap<String, RawFarEnd>),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    esl: Option<String>,
    password: Option<String>,
    channels: Option<i64>,
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

    // A list of client addresses or networks (`allow`, `trusted_relays`).
    let networks = |key: &str, words: Vec<String>, example: &str| {
        words
            .iter()
            .map(|word| {
                word.parse::<ipnet::IpNet>()
                    .or_else(|_| word.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        bad(
                            key,
                            &format!("{word:?}"),
                            &format!("expected an address or network such as {example}"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
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
    let token_lifetime = match raw.http.as_ref().and_then(|h| h.token_lifetime_s) {
        None => crate::api::auth::TOKEN_LIFETIME,
        Some(s @ 60..=31_536_000) => std::time::Duration::from_secs(s as u64),
        Some(other) => {
            return Err(bad(
                "http.token_lifetime_s",
                &other,
                "expected seconds from 60 to 31536000 that an API token stays good",
            ));
        }
    };
    let http = {
        let raw_http = raw.http.unwrap_or_default();
        let listen = listener(
            "http",
            Some(RawListener {
                listen: raw_http.listen,
            }),
            "127.0.0.1:8000",
        )?
        .listen;
        let cors_origins = raw_http.cors_origins.unwrap_or_else(|| vec!["*".into()]);
        for origin in &cors_origins {
            let is_origin = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.path() == "/"
                    && !origin.ends_with('/')
            });
            if origin != "*" && !is_origin {
                return Err(bad(
                    "http.cors_origins",
                    &format!("{origin:?}"),
                    "expected \"*\" or a web origin such as \"https://pbx.example.com\" (scheme, host and port; no path)",
                ));
            }
        }
        HttpConfig {
            listen,
            cors_origins,
        }
    };
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
            Some(h) if !is_domain(&h) => {
                return Err(bad(
                    "smtp.hostname",
                    &format!("{h:?}"),
                    "expected the box's fully qualified mail name such as \"fax.example.com\" \
                     (smarthosts refuse a bare host name in EHLO)",
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
        let trusted_relays = networks(
            "smtp.trusted_relays",
            raw_smtp.trusted_relays.unwrap_or_default(),
            "\"127.0.0.1\" or \"10.0.0.0/24\"",
        )?;
        SmtpConfig {
            listen,
            hostname,
            tls,
            trusted_relays,
        }
    };
    let file_proxy = {
        let raw = raw.file_proxy.unwrap_or(RawFileProxy {
            listen: None,
            allow: None,
            url: None,
        });
        let listen = listener(
            "file_proxy",
            Some(RawListener { listen: raw.listen }),
            "127.0.0.1:30950",
        )?
        .listen;
        // Loopback only unless told: the proxy serves people's faxes.
        let allow_words = raw
            .allow
            .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]);
        let allow = networks(
            "file_proxy.allow",
            allow_words,
            "\"127.0.0.1\" or \"10.0.0.0/8\"",
        )?;
        let url = match raw.url {
            None => None,
            Some(u) if u.starts_with("http://") && u.len() > "http://".len() => Some(u),
            Some(u) => {
                return Err(bad(
                    "file_proxy.url",
                    &format!("{u:?}"),
                    "expected an http:// address such as \"http://10.0.0.5:30950\"",
                ));
            }
        };
        FileProxyConfig { listen, allow, url }
    };
    let ipp = {
        let raw = raw.ipp.unwrap_or_default();
        // IPP's own port (631) on every interface: printers are found on the LAN.
        let listen = listener(
            "ipp",
            Some(RawListener { listen: raw.listen }),
            "0.0.0.0:631",
        )?
        .listen;
        let words = raw
            .allow
            .unwrap_or_else(|| crate::ipp::LAN.iter().map(|s| s.to_string()).collect());
        let allow = networks("ipp.allow", words, "\"192.168.1.0/24\"")?;
        IppConfig {
            enabled: raw.enabled.unwrap_or(false),
            listen,
            allow,
            require_auth: raw.require_auth.unwrap_or(false),
            mdns: raw.mdns.unwrap_or(true),
        }
    };

    let raw_lines = raw.lines.unwrap_or_else(|| {
        vec![RawLine {
            name: Some("loopback".into()),
            kind: Some("loopback".into()),
            channels: None,
            realtime: None,
            numbers: None,
            default_faxbox: None,
            device: None,
            speed: None,
            flow_control: None,
            lock_dir: None,
            init: None,
            dial_prefix: None,
            answer_after_rings: None,
            probe_every_s: None,
            time_scale: None,
            dial_string: None,
            document: None,
            inbound_socket: None,
            spool_dir: None,
            originate_timeout_s: None,
            t38: None,
            t38_request: None,
            node: None,
        }]
    });
    let mut lines = Vec::with_capacity(raw_lines.len());
    for (i, mut line) in raw_lines.into_iter().enumerate() {
        let key = |k: &str| format!("line[{i}].{k}");
        let name = line
            .name
            .clone()
            .ok_or_else(|| bad(&key("name"), &"(missing)", "every line needs a name"))?;
        if name.trim().is_empty() || lines.iter().any(|l: &LineConfig| l.name == name) {
            return Err(bad(
                &key("name"),
                &format!("{name:?}"),
                "line names must be non-empty and unique",
            ));
        }
        let kind_word = line.kind.clone().unwrap_or_else(|| "(missing)".into());
        check_line_keys(&line, &kind_word, &key, &bad)?;
        let default_faxbox = line.default_faxbox.clone().filter(|f| !f.trim().is_empty());
        let kind = match kind_word.as_str() {
            "loopback" => {
                let channels = line.channels.unwrap_or(4);
                if !(1..=64).contains(&channels) {
                    return Err(bad(&key("channels"), &channels, "expected 1 to 64"));
                }
                let far_ends = match line.numbers.take() {
                    None => BTreeMap::new(),
                    Some(RawNumbers::FarEnds(m)) => m,
                    Some(RawNumbers::List(_)) => {
                        return Err(bad(
                            &key("numbers"),
                            &"[...]",
                            "a loopback line's numbers are a table of far-end behaviours",
                        ));
                    }
                };
                let mut numbers = BTreeMap::new();
                for (number, behaviour) in far_ends {
                    let k = key(&format!("numbers.\"{number}\""));
                    numbers.insert(number, resolve_far_end(behaviour, &k, &bad)?);
                }
                LineKind::Loopback(LoopbackConfig {
                    channels: channels as u32,
                    realtime: line.realtime.unwrap_or(false),
                    numbers,
                })
            }
            "modem" => LineKind::Modem(resolve_modem(&line, &key, &bad)?),
            "freeswitch" => LineKind::FreeSwitch(resolve_freeswitch(line, &key, &bad)?),
            other => {
                return Err(bad(
                    &key("type"),
                    &format!("{other:?}"),
                    "the line types are: loopback, freeswitch, modem",
                ));
            }
        };
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
            hello_name: smtp.hostname.clone(),
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
            Smarthost {
                server,
                from,
                hello_name: smtp.hostname.clone(),
            }
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
        // EnvFilter takes a bare word as a target name: "verbose" would
        // pass and turn every log line off.
        if !is_log_filter(&level) || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(bad(
                "log.level",
                &format!("{level:?}"),
                "expected one of trace, debug, info, warn, error, off, or per module such as \
                 \"info,faxbox::smtp=debug\"",
            ));
        }
        LogConfig { level, format }
    };

    check_ports(&http, &smtp, &file_proxy, &ipp, &lines, &bad)?;
    let stop_grace = match raw.stop_grace_s {
        None => std::time::Duration::from_secs(DEFAULT_STOP_GRACE_S),
        Some(s @ 0..=3600) => std::time::Duration::from_secs(s as u64),
        Some(other) => {
            return Err(bad(
                "stop_grace_s",
                &other,
                "expected seconds from 0 to 3600 that calls may go on after a stop",
            ));
        }
    };

    let callback_retry = match raw.callback_retry_s {
        None => std::time::Duration::from_secs(30),
        Some(s @ 1..=3600) => std::time::Duration::from_secs(s as u64),
        Some(other) => {
            return Err(bad(
                "callback_retry_s",
                &other,
                "expected seconds from 1 to 3600 before a failed callback is tried again",
            ));
        }
    };

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
        stop_grace,
        token_lifetime,
        callback_retry,
    })
}

/// A log level, or comma-separated `target=level` directives.
fn is_log_filter(text: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|w| w.eq_ignore_ascii_case(l.trim()));
    !text.trim().is_empty()
        && text
            .split(',')
            .all(|directive| match directive.rsplit_once('=') {
                Some((target, level)) => !target.trim().is_empty() && is_level(level),
                None => is_level(directive),
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
    bad: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut listeners: Vec<(String, SocketAddr)> = vec![
        ("http.listen".into(), http.listen),
        ("smtp.listen".into(), smtp.listen),
    ];
    if crate::lines::need_file_proxy(lines) {
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
            return Err(bad(
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

/// The keys each line type takes (besides name, type and default_faxbox).
const LINE_KEYS: [(&str, &[&str]); 3] = [
    ("loopback", &["channels", "realtime", "numbers"]),
    (
        "modem",
        &[
            "device",
            "speed",
            "flow_control",
            "init",
            "dial_prefix",
            "answer_after_rings",
            "probe_every_s",
            "time_scale",
            "numbers",
        ],
    ),
    (
        "freeswitch",
        &[
            "dial_string",
            "document",
            "inbound_socket",
            "spool_dir",
            "originate_timeout_s",
            "t38",
            "t38_request",
            "node",
        ],
    ),
];

/// A key of one line type on a line of another is refused, not dropped:
/// `device` on a loopback line means the admin thinks it is a modem.
fn check_line_keys(
    line: &RawLine,
    kind: &str,
    key: &dyn Fn(&str) -> String,
    bad: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let Some((_, allowed)) = LINE_KEYS.iter().find(|(k, _)| *k == kind) else {
        return Ok(());
    };
    let given: [(&str, Option<String>); 19] = [
        ("channels", line.channels.map(|v| v.to_string())),
        ("realtime", line.realtime.map(|v| v.to_string())),
        ("numbers", line.numbers.as_ref().map(|_| "[...]".into())),
        ("device", line.device.as_ref().map(|v| format!("{v:?}"))),
        ("speed", line.speed.map(|v| v.to_string())),
        (
            "flow_control",
            line.flow_control.as_ref().map(|v| format!("{v:?}")),
        ),
        ("init", line.init.as_ref().map(|v| format!("{v:?}"))),
        (
            "dial_prefix",
            line.dial_prefix.as_ref().map(|v| format!("{v:?}")),
        ),
        (
            "answer_after_rings",
            line.answer_after_rings.map(|v| v.to_string()),
        ),
        ("probe_every_s", line.probe_every_s.map(|v| v.to_string())),
        ("time_scale", line.time_scale.map(|v| v.to_string())),
        (
            "dial_string",
            line.dial_string.as_ref().map(|v| format!("{v:?}")),
        ),
        ("document", line.document.as_ref().map(|v| format!("{v:?}"))),
        (
            "inbound_socket",
            line.inbound_socket.as_ref().map(|v| format!("{v:?}")),
        ),
        (
            "spool_dir",
            line.spool_dir.as_ref().map(|v| format!("{v:?}")),
        ),
        (
            "originate_timeout_s",
            line.originate_timeout_s.map(|v| v.to_string()),
        ),
        ("t38", line.t38.map(|v| v.to_string())),
        ("t38_request", line.t38_request.map(|v| v.to_string())),
        ("node", line.node.as_ref().map(|_| "[[line.node]]".into())),
    ];
    for (name, value) in given {
        let Some(value) = value else { continue };
        // resolve_freeswitch says where a freeswitch line's channels go.
        if allowed.contains(&name) || (kind == "freeswitch" && name == "channels") {
            continue;
        }
        let owners: Vec<&str> = LINE_KEYS
            .iter()
            .filter(|(_, keys)| keys.contains(&name))
            .map(|(k, _)| *k)
            .collect();
        return Err(bad(
            &key(name),
            &value,
            &format!(
                "{name} is a setting of {} lines, not of a {kind} line; a {kind} line takes: \
                 name, type, default_faxbox, {}",
                owners.join(" and "),
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The machine's name, for the SMTP greeting and EHLO when the file names
/// none. A bare host name (an appliance often has one) gets `.localdomain`,
/// so that it is fully qualified as EHLO needs (RFC 5321 4.1.1.1).
fn system_hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && is_domain(&format!("{h}.localdomain")))
        .unwrap_or_else(|| "faxbox".to_owned());
    if is_domain(&host) {
        host
    } else {
        format!("{host}.localdomain")
    }
}

fn resolve_modem(
    line: &RawLine,
    key: &dyn Fn(&str) -> String,
    bad: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<ModemConfig, ConfigError> {
    let device = line
        .device
        .clone()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| {
            bad(
                &key("device"),
                &"(missing)",
                "a modem line needs its serial device, such as \"/dev/ttyUSB0\"",
            )
        })?;
    let speed = line.speed.unwrap_or(115_200);
    const SPEEDS: [i64; 8] = [
        9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
    ];
    if !SPEEDS.contains(&speed) {
        return Err(bad(
            &key("speed"),
            &speed,
            "expected a serial speed such as 19200, 57600 or 115200",
        ));
    }
    let flow_control = match line.flow_control.as_deref() {
        None | Some("auto") => FlowControl::Auto,
        Some("hardware" | "rtscts") => FlowControl::Hardware,
        Some("xonxoff") => FlowControl::XonXoff,
        Some("none") => FlowControl::None,
        Some(other) => {
            return Err(bad(
                &key("flow_control"),
                &format!("{other:?}"),
                "expected \"xonxoff\" (DC1/DC3 from the modem), \"hardware\" (RTS/CTS), \"none\" or \"auto\" (ask the modem)",
            ));
        }
    };
    let at_string = |k: &str, v: Option<&String>, default: &str| {
        let v = v.cloned().unwrap_or_else(|| default.to_owned());
        if v.is_ascii() && !v.chars().any(|c| c.is_ascii_control()) && v.len() <= 60 {
            Ok(v)
        } else {
            Err(bad(
                &key(k),
                &format!("{v:?}"),
                "expected an AT command line of printable characters (at most 60)",
            ))
        }
    };
    let init = at_string("init", line.init.as_ref(), "ATZ")?;
    let dial_prefix = at_string("dial_prefix", line.dial_prefix.as_ref(), "ATDT")?;
    if !dial_prefix.to_ascii_uppercase().starts_with("ATD") {
        return Err(bad(
            &key("dial_prefix"),
            &format!("{dial_prefix:?}"),
            "a dial prefix starts with ATD (ATDT for tone, ATDP for pulse)",
        ));
    }
    let rings = line.answer_after_rings.unwrap_or(2);
    if !(0..=20).contains(&rings) {
        return Err(bad(&key("answer_after_rings"), &rings, "expected 0 to 20"));
    }
    let numbers = match &line.numbers {
        None => Vec::new(),
        Some(RawNumbers::List(list)) => list.clone(),
        Some(RawNumbers::FarEnds(_)) => {
            return Err(bad(
                &key("numbers"),
                &"{...}",
                "a modem line's numbers are a list, such as [\"5550100\"]",
            ));
        }
    };
    let probe = line.probe_every_s.unwrap_or(60.0);
    if !(probe.is_finite() && (0.1..=86_400.0).contains(&probe)) {
        return Err(bad(
            &key("probe_every_s"),
            &probe,
            "expected 0.1 to 86400 seconds",
        ));
    }
    let time_scale = line.time_scale.unwrap_or(1.0);
    if !(time_scale.is_finite() && (1.0..=100.0).contains(&time_scale)) {
        return Err(bad(
            &key("time_scale"),
            &time_scale,
            "expected 1 to 100 (1 for a real modem)",
        ));
    }
    let lock_dir = match &line.lock_dir {
        None => Some(PathBuf::from("/var/lock")),
        Some(d) if d.as_os_str().is_empty() => None,
        Some(d) if d.is_absolute() => Some(d.clone()),
        Some(d) => {
            return Err(bad(
                &key("lock_dir"),
                &d.display(),
                "expected an absolute directory such as \"/var/lock\" (\"\" takes no lock)",
            ));
        }
    };
    Ok(ModemConfig {
        device,
        speed: speed as u32,
        flow_control,
        lock_dir,
        init,
        dial_prefix,
        answer_after_rings: rings as u32,
        numbers,
        probe_every: Duration::from_secs_f64(probe),
        time_scale,
    })
}

fn resolve_freeswitch(
    line: RawLine,
    key: &dyn Fn(&str) -> String,
    bad: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<FreeSwitchConfig, ConfigError> {
    if line.channels.is_some() {
        return Err(bad(
            &key("channels"),
            &line.channels.unwrap_or_default(),
            "a freeswitch line's channels are set per [[line.node]]",
        ));
    }
    let dial_string = line.dial_string.unwrap_or_default();
    // The dial string goes into an originate command: spaces or braces
    // there would change the command, not just the destination.
    if !dial_string.contains("{number}")
        || dial_string.contains(char::is_whitespace)
        || dial_string
            .replace("{number}", "")
            .contains(['{', '}', '&'])
    {
        return Err(bad(
            &key("dial_string"),
            &format!("{dial_string:?}"),
            "expected a FreeSWITCH dial string with {number}, such as \"sofia/gateway/carrier/{number}\"",
        ));
    }
    let document = match line.document.as_deref().unwrap_or("http") {
        "http" => DocumentDelivery::Http,
        "path" => DocumentDelivery::Path,
        other => {
            return Err(bad(
                &key("document"),
                &format!("{other:?}"),
                "expected \"http\" (from the file proxy) or \"path\" (FreeSWITCH shares the data dir)",
            ));
        }
    };
    let inbound_socket = match line.inbound_socket {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            bad(
                &key("inbound_socket"),
                &format!("{text:?}"),
                "expected an address and port such as \"127.0.0.1:8084\"",
            )
        })?),
    };
    let timeout = line.originate_timeout_s.unwrap_or(60);
    if !(5..=600).contains(&timeout) {
        return Err(bad(
            &key("originate_timeout_s"),
            &timeout,
            "expected 5 to 600 seconds",
        ));
    }
    let raw_nodes = line.node.unwrap_or_default();
    if raw_nodes.is_empty() {
        return Err(bad(
            &key("node"),
            &"(none)",
            "a freeswitch line needs at least one [[line.node]] with esl, password and channels",
        ));
    }
    let mut nodes = Vec::with_capacity(raw_nodes.len());
    for (j, node) in raw_nodes.into_iter().enumerate() {
        let nkey = |k: &str| key(&format!("node[{j}].{k}"));
        let esl = node.esl.unwrap_or_else(|| "127.0.0.1:8021".into());
        let port_ok = esl.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !port_ok {
            return Err(bad(
                &nkey("esl"),
                &format!("{esl:?}"),
                "expected the event socket's host and port, such as \"127.0.0.1:8021\"",
            ));
        }
        let channels = node.channels.unwrap_or(2);
        if !(1..=256).contains(&channels) {
            return Err(bad(&nkey("channels"), &channels, "expected 1 to 256"));
        }
        let password = node.password.unwrap_or_else(|| "ClueCon".into());
        if password.contains(['\n', '\r']) {
            return Err(bad(
                &nkey("password"),
                &"(hidden)",
                "the password cannot contain a line break",
            ));
        }
        nodes.push(FreeSwitchNode {
            esl,
            password,
            channels: channels as u32,
        });
    }
    Ok(FreeSwitchConfig {
        dial_string,
        document,
        inbound_socket,
        spool_dir: line.spool_dir,
        originate_timeout: Duration::from_secs(timeout as u64),
        t38: line.t38.unwrap_or(true),
        t38_request: line.t38_request.unwrap_or(false),
        nodes,
    })
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
