//! The `[[line]]` sections: the kinds of line, what each takes, and how
//! each resolves.
//!
//! A line's `type` picks its raw form, one struct per kind with
//! `deny_unknown_fields`, so a key of one kind on a line of another (a
//! modem's `device` on a loopback line) is refused with the line, the key
//! and the keys that line takes, never dropped (issue 24). The keys in that
//! message are read from the forms themselves (`keys_of`), so they cannot
//! drift from what is accepted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ConfigError, ConfigFile, keys_of};

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

/// Whether any line fetches its documents from the file proxy (so the app
/// starts it, and its port must be free).
pub fn need_file_proxy(lines: &[LineConfig]) -> bool {
    lines
        .iter()
        .any(|l| matches!(&l.kind, LineKind::FreeSwitch(f) if f.document == DocumentDelivery::Http))
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

// ---------------------------------------------------------------------------
// Phase one: a `[[line]]` table as written, one form per `type`.

/// A line as written, its form picked by its `type`.
#[derive(Debug)]
enum RawLine {
    Loopback(RawLoopbackLine),
    Modem(RawModemLine),
    FreeSwitch(RawFreeSwitchLine),
}

/// The `type` words, in the order error messages list them.
const LINE_TYPES: [&str; 3] = ["loopback", "freeswitch", "modem"];

/// The keys a line of this type takes (besides `type`).
fn keys_of_type(kind: &str) -> &'static [&'static str] {
    match kind {
        "loopback" => keys_of::<RawLoopbackLine>(),
        "modem" => keys_of::<RawModemLine>(),
        "freeswitch" => keys_of::<RawFreeSwitchLine>(),
        _ => &[],
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoopbackLine {
    name: Option<String>,
    default_faxbox: Option<String>,
    channels: Option<i64>,
    realtime: Option<bool>,
    numbers: Option<RawNumbers>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModemLine {
    name: Option<String>,
    default_faxbox: Option<String>,
    device: Option<PathBuf>,
    speed: Option<i64>,
    flow_control: Option<String>,
    lock_dir: Option<PathBuf>,
    init: Option<String>,
    dial_prefix: Option<String>,
    answer_after_rings: Option<i64>,
    numbers: Option<RawNumbers>,
    probe_every_s: Option<f64>,
    time_scale: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreeSwitchLine {
    name: Option<String>,
    default_faxbox: Option<String>,
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
/// modem line answers for. One type for both, so that the wrong shape gets
/// the resolver's words ("a modem line's numbers are a list") rather than
/// serde's.
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

/// The line of a file that has none: the built-in loopback line.
fn default_line() -> RawLine {
    RawLine::Loopback(RawLoopbackLine {
        name: Some("loopback".into()),
        ..RawLoopbackLine::default()
    })
}

/// Reads one `[[line]]` table into the form its `type` names.
fn read_line(
    mut table: toml::Table,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<RawLine, ConfigError> {
    let types = format!("the line types are: {}", LINE_TYPES.join(", "));
    let kind = match table.remove("type") {
        Some(toml::Value::String(word)) => word,
        Some(other) => return Err(file.bad(&key("type"), &other, &types)),
        None => return Err(file.bad(&key("type"), &"(missing)", &types)),
    };
    let takes = keys_of_type(&kind);
    if takes.is_empty() {
        return Err(file.bad(&key("type"), &format!("{kind:?}"), &types));
    }
    // A key no form of this type has: say whose it is and what this line
    // takes, before serde's `deny_unknown_fields` refuses it in its words.
    if let Some((wrong, value)) = table.iter().find(|(k, _)| !takes.contains(&k.as_str())) {
        let line = table.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let problem = not_this_type(&kind, line, wrong);
        return Err(file.bad(&key(wrong), &shown(value), &problem));
    }
    match kind.as_str() {
        "loopback" => read_form(table, key, file).map(RawLine::Loopback),
        "modem" => read_form(table, key, file).map(RawLine::Modem),
        "freeswitch" => read_form(table, key, file).map(RawLine::FreeSwitch),
        other => Err(file.bad(&key("type"), &format!("{other:?}"), &types)),
    }
}

/// Why `key` is refused on the line `name` of type `kind`, and what that
/// line takes.
fn not_this_type(kind: &str, name: &str, key: &str) -> String {
    let takes = format!(
        "a {kind} line takes: type, {}",
        keys_of_type(kind).join(", ")
    );
    let owners: Vec<&str> = LINE_TYPES
        .into_iter()
        .filter(|t| keys_of_type(t).contains(&key))
        .collect();
    if kind == "freeswitch" && key == "channels" {
        format!("a freeswitch line's channels are set per [[line.node]]; {takes}")
    } else if owners.is_empty() {
        format!("no line type has a setting {key} (on {kind} line {name:?}); {takes}")
    } else {
        format!(
            "{key} is a setting of {} lines, not of {kind} line {name:?}; {takes}",
            owners.join(" and ")
        )
    }
}

/// One form from its table; a value of the wrong type is named by its full
/// key (`line[0].node[1].channels`), which a whole-file parse could not do
/// once the `type` has been read.
fn read_form<T: DeserializeOwned>(
    table: toml::Table,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<T, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let at = e.path().to_string();
        let found = find(&value, e.path()).map_or("(missing)".to_owned(), shown);
        // serde names Rust types; the person editing the file wants words.
        let problem = e
            .inner()
            .message()
            .replace("expected i64", "expected a whole number")
            .replace("expected f64", "expected a number");
        file.bad(&key(&at), &found, &problem)
    })
}

/// The value at a serde path inside a line's table, to quote it back.
fn find<'v>(value: &'v toml::Value, path: &serde_path_to_error::Path) -> Option<&'v toml::Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(value, |v, segment| match segment {
        Segment::Seq { index } => v.get(*index),
        Segment::Map { key } => v.get(key.as_str()),
        _ => None,
    })
}

/// A value as the file would write it, tables and arrays of tables abridged.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(_) => "{...}".into(),
        toml::Value::Array(items) if items.iter().any(|v| v.is_table()) => "[...]".into(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Phase two: resolution.

/// Every `[[line]]`, or the built-in loopback line when the file has none.
pub(super) fn resolve_lines(
    tables: Option<Vec<toml::Table>>,
    file: &ConfigFile,
) -> Result<Vec<LineConfig>, ConfigError> {
    let tables = tables.map(|t| t.into_iter().map(Some).collect());
    let tables: Vec<Option<toml::Table>> = tables.unwrap_or_else(|| vec![None]);
    let mut lines: Vec<LineConfig> = Vec::with_capacity(tables.len());
    for (i, table) in tables.into_iter().enumerate() {
        let key = |k: &str| format!("line[{i}].{k}");
        let raw = match table {
            Some(table) => read_line(table, &key, file)?,
            None => default_line(),
        };
        let line = resolve_line(raw, &key, file)?;
        if line.name.trim().is_empty() || lines.iter().any(|l| l.name == line.name) {
            return Err(file.bad(
                &key("name"),
                &format!("{:?}", line.name),
                "line names must be non-empty and unique",
            ));
        }
        lines.push(line);
    }
    Ok(lines)
}

fn resolve_line(
    raw: RawLine,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<LineConfig, ConfigError> {
    let (name, default_faxbox) = match &raw {
        RawLine::Loopback(l) => (&l.name, &l.default_faxbox),
        RawLine::Modem(m) => (&m.name, &m.default_faxbox),
        RawLine::FreeSwitch(f) => (&f.name, &f.default_faxbox),
    };
    let name = name
        .clone()
        .ok_or_else(|| file.bad(&key("name"), &"(missing)", "every line needs a name"))?;
    let default_faxbox = default_faxbox.clone().filter(|f| !f.trim().is_empty());
    let kind = match raw {
        RawLine::Loopback(l) => LineKind::Loopback(resolve_loopback(l, key, file)?),
        RawLine::Modem(m) => LineKind::Modem(resolve_modem(m, key, file)?),
        RawLine::FreeSwitch(f) => LineKind::FreeSwitch(resolve_freeswitch(f, key, file)?),
    };
    Ok(LineConfig {
        name,
        kind,
        default_faxbox,
    })
}

fn resolve_loopback(
    line: RawLoopbackLine,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<LoopbackConfig, ConfigError> {
    let channels = line.channels.unwrap_or(4);
    if !(1..=64).contains(&channels) {
        return Err(file.bad(&key("channels"), &channels, "expected 1 to 64"));
    }
    let far_ends = match line.numbers {
        None => BTreeMap::new(),
        Some(RawNumbers::FarEnds(m)) => m,
        Some(RawNumbers::List(_)) => {
            return Err(file.bad(
                &key("numbers"),
                &"[...]",
                "a loopback line's numbers are a table of far-end behaviours",
            ));
        }
    };
    let mut numbers = BTreeMap::new();
    for (number, behaviour) in far_ends {
        let k = key(&format!("numbers.\"{number}\""));
        numbers.insert(number, resolve_far_end(behaviour, &k, file)?);
    }
    Ok(LoopbackConfig {
        channels: channels as u32,
        realtime: line.realtime.unwrap_or(false),
        numbers,
    })
}

fn resolve_modem(
    line: RawModemLine,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<ModemConfig, ConfigError> {
    let device = line
        .device
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| {
            file.bad(
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
        return Err(file.bad(
            &key("speed"),
            &speed,
            "expected a serial speed such as 19200, 57600 or 115200",
        ));
    }
    let flow_control = resolve_flow_control(line.flow_control.as_deref(), key, file)?;
    let at_string = |k: &str, v: Option<String>, default: &str| {
        let v = v.unwrap_or_else(|| default.to_owned());
        if v.is_ascii() && !v.chars().any(|c| c.is_ascii_control()) && v.len() <= 60 {
            Ok(v)
        } else {
            Err(file.bad(
                &key(k),
                &format!("{v:?}"),
                "expected an AT command line of printable characters (at most 60)",
            ))
        }
    };
    let init = at_string("init", line.init, "ATZ")?;
    let dial_prefix = at_string("dial_prefix", line.dial_prefix, "ATDT")?;
    if !dial_prefix.to_ascii_uppercase().starts_with("ATD") {
        return Err(file.bad(
            &key("dial_prefix"),
            &format!("{dial_prefix:?}"),
            "a dial prefix starts with ATD (ATDT for tone, ATDP for pulse)",
        ));
    }
    let rings = line.answer_after_rings.unwrap_or(2);
    if !(0..=20).contains(&rings) {
        return Err(file.bad(&key("answer_after_rings"), &rings, "expected 0 to 20"));
    }
    let numbers = match line.numbers {
        None => Vec::new(),
        Some(RawNumbers::List(list)) => list,
        Some(RawNumbers::FarEnds(_)) => {
            return Err(file.bad(
                &key("numbers"),
                &"{...}",
                "a modem line's numbers are a list, such as [\"5550100\"]",
            ));
        }
    };
    let probe = line.probe_every_s.unwrap_or(60.0);
    if !(probe.is_finite() && (0.1..=86_400.0).contains(&probe)) {
        return Err(file.bad(
            &key("probe_every_s"),
            &probe,
            "expected 0.1 to 86400 seconds",
        ));
    }
    let time_scale = line.time_scale.unwrap_or(1.0);
    if !(time_scale.is_finite() && (1.0..=100.0).contains(&time_scale)) {
        return Err(file.bad(
            &key("time_scale"),
            &time_scale,
            "expected 1 to 100 (1 for a real modem)",
        ));
    }
    let lock_dir = match line.lock_dir {
        None => Some(PathBuf::from("/var/lock")),
        Some(d) if d.as_os_str().is_empty() => None,
        Some(d) if d.is_absolute() => Some(d),
        Some(d) => {
            return Err(file.bad(
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

fn resolve_flow_control(
    word: Option<&str>,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<FlowControl, ConfigError> {
    match word {
        None | Some("auto") => Ok(FlowControl::Auto),
        Some("hardware" | "rtscts") => Ok(FlowControl::Hardware),
        Some("xonxoff") => Ok(FlowControl::XonXoff),
        Some("none") => Ok(FlowControl::None),
        Some(other) => Err(file.bad(
            &key("flow_control"),
            &format!("{other:?}"),
            "expected \"xonxoff\" (DC1/DC3 from the modem), \"hardware\" (RTS/CTS), \"none\" or \"auto\" (ask the modem)",
        )),
    }
}

fn resolve_freeswitch(
    line: RawFreeSwitchLine,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<FreeSwitchConfig, ConfigError> {
    let dial_string = line.dial_string.unwrap_or_default();
    // The dial string goes into an originate command: spaces or braces
    // there would change the command, not just the destination.
    if !dial_string.contains("{number}")
        || dial_string.contains(char::is_whitespace)
        || dial_string
            .replace("{number}", "")
            .contains(['{', '}', '&'])
    {
        return Err(file.bad(
            &key("dial_string"),
            &format!("{dial_string:?}"),
            "expected a FreeSWITCH dial string with {number}, such as \"sofia/gateway/carrier/{number}\"",
        ));
    }
    let document = match line.document.as_deref().unwrap_or("http") {
        "http" => DocumentDelivery::Http,
        "path" => DocumentDelivery::Path,
        other => {
            return Err(file.bad(
                &key("document"),
                &format!("{other:?}"),
                "expected \"http\" (from the file proxy) or \"path\" (FreeSWITCH shares the data dir)",
            ));
        }
    };
    let inbound_socket = match line.inbound_socket {
        None => None,
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            file.bad(
                &key("inbound_socket"),
                &format!("{text:?}"),
                "expected an address and port such as \"127.0.0.1:8084\"",
            )
        })?),
    };
    let timeout = line.originate_timeout_s.unwrap_or(60);
    if !(5..=600).contains(&timeout) {
        return Err(file.bad(
            &key("originate_timeout_s"),
            &timeout,
            "expected 5 to 600 seconds",
        ));
    }
    Ok(FreeSwitchConfig {
        dial_string,
        document,
        inbound_socket,
        spool_dir: line.spool_dir,
        originate_timeout: Duration::from_secs(timeout as u64),
        t38: line.t38.unwrap_or(true),
        t38_request: line.t38_request.unwrap_or(false),
        nodes: resolve_nodes(line.node.unwrap_or_default(), key, file)?,
    })
}

fn resolve_nodes(
    raw_nodes: Vec<RawNode>,
    key: &dyn Fn(&str) -> String,
    file: &ConfigFile,
) -> Result<Vec<FreeSwitchNode>, ConfigError> {
    if raw_nodes.is_empty() {
        return Err(file.bad(
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
            return Err(file.bad(
                &nkey("esl"),
                &format!("{esl:?}"),
                "expected the event socket's host and port, such as \"127.0.0.1:8021\"",
            ));
        }
        let channels = node.channels.unwrap_or(2);
        if !(1..=256).contains(&channels) {
            return Err(file.bad(&nkey("channels"), &channels, "expected 1 to 256"));
        }
        let password = node.password.unwrap_or_else(|| "ClueCon".into());
        if password.contains(['\n', '\r']) {
            return Err(file.bad(
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
    Ok(nodes)
}

fn resolve_far_end(raw: RawFarEnd, key: &str, file: &ConfigFile) -> Result<FarEnd, ConfigError> {
    const WORDS: &str = "expected \"fax\", \"busy\", \"no_answer\", \"not_a_fax\", \"rejects_ecm\", \
                         { drops_after_s = N } or { noise_db = N, loss_db = N }";
    match raw {
        RawFarEnd::Word(word) => match word.as_str() {
            "fax" => Ok(FarEnd::Fax),
            "busy" => Ok(FarEnd::Busy),
            "no_answer" => Ok(FarEnd::NoAnswer),
            "not_a_fax" => Ok(FarEnd::NotAFax),
            "rejects_ecm" => Ok(FarEnd::RejectsEcm),
            _ => Err(file.bad(key, &format!("{word:?}"), WORDS)),
        },
        RawFarEnd::Table(RawFarEndTable {
            drops_after_s: Some(s),
            noise_db: None,
            loss_db: None,
        }) => {
            if s.is_finite() && s > 0.0 && s < 86_400.0 {
                Ok(FarEnd::DropsAfter(Duration::from_secs_f64(s)))
            } else {
                Err(file.bad(key, &s, "drops_after_s must be a number of seconds above 0"))
            }
        }
        RawFarEnd::Table(RawFarEndTable {
            drops_after_s: None,
            noise_db: Some(db),
            loss_db,
        }) => {
            if !(db.is_finite() && (-90.0..=0.0).contains(&db)) {
                return Err(file.bad(key, &db, "noise_db must be between -90 and 0 (dBm0)"));
            }
            let loss = loss_db.unwrap_or(0.0);
            if !(loss.is_finite() && (0.0..=40.0).contains(&loss)) {
                return Err(file.bad(key, &loss, "loss_db must be between 0 and 40 (dB)"));
            }
            Ok(FarEnd::Noise {
                db: db as f32,
                loss_db: loss as f32,
            })
        }
        RawFarEnd::Table(_) => Err(file.bad(key, &"{...}", WORDS)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn refusal(text: &str) -> String {
        Config::parse(text, Path::new("test.toml"))
            .expect_err(text)
            .to_string()
    }

    /// Issue 24: a key of one line type on a line of another is refused,
    /// naming the line, the key, its value, whose key it is and what the
    /// line takes; `lock_dir` on a loopback line was dropped silently.
    #[test]
    fn a_key_of_another_line_type_is_refused_with_what_the_line_takes() {
        let loopback = "[[line]]\nname = \"lb\"\ntype = \"loopback\"\n";
        let cases: [(String, &[&str]); 5] = [
            (
                format!(
                    "{loopback}[[line]]\nname = \"fax1\"\ntype = \"modem\"\ndevice = \"/dev/x\"\n\
                     dial_string = \"sofia/gateway/x/{{number}}\"\n"
                ),
                &[
                    "`line[1].dial_string` = \"sofia/gateway/x/{number}\"",
                    "a setting of freeswitch lines, not of modem line \"fax1\"",
                    "a modem line takes: type, name, default_faxbox, device, speed, flow_control, \
                     lock_dir, init, dial_prefix, answer_after_rings, numbers, probe_every_s, \
                     time_scale",
                ],
            ),
            (
                format!("{loopback}lock_dir = \"/var/lock\"\n"),
                &[
                    "`line[0].lock_dir` = \"/var/lock\"",
                    "a setting of modem lines, not of loopback line \"lb\"",
                    "a loopback line takes: type, name, default_faxbox, channels, realtime, numbers",
                ],
            ),
            (
                "[[line]]\nname = \"pstn\"\ntype = \"freeswitch\"\ndevice = \"/dev/x\"\n".into(),
                &[
                    "`line[0].device`",
                    "modem lines, not of freeswitch line \"pstn\"",
                    "a freeswitch line takes: type, name, default_faxbox, dial_string, document, \
                     inbound_socket, spool_dir, originate_timeout_s, t38, t38_request, node",
                ],
            ),
            (
                format!("{loopback}numbrs = [\"1\"]\n"),
                &[
                    "`line[0].numbrs` = [\"1\"]",
                    "no line type has a setting numbrs",
                    "a loopback line takes:",
                ],
            ),
            (
                "[[line]]\nname = \"pstn\"\ntype = \"freeswitch\"\n[[line.node]]\n[line.numbers]\n\"1\" = \"busy\"\n"
                    .into(),
                &["`line[0].numbers` = {...}", "loopback and modem lines"],
            ),
        ];
        for (text, needles) in cases {
            let err = refusal(&text);
            for needle in needles {
                assert!(err.contains(needle), "{text}\n{err}\nlacks {needle:?}");
            }
        }
    }

    /// Every key a refusal says a line takes is one the line takes: a line
    /// with any one of them is never refused for having it.
    #[test]
    fn the_keys_a_refusal_lists_are_accepted() {
        for kind in LINE_TYPES {
            let keys = keys_of_type(kind);
            assert!(
                keys.contains(&"name") && keys.len() >= 4,
                "{kind}: {keys:?}"
            );
            for key in keys {
                let text = format!("[[line]]\nname = \"l\"\ntype = \"{kind}\"\n{key} = 1\n");
                let outcome = Config::parse(&text, Path::new("test.toml"));
                if let Err(e) = outcome {
                    let e = e.to_string();
                    assert!(!e.contains("line takes"), "{kind}.{key}: {e}");
                }
            }
        }
    }

    /// A value of the wrong type is named by its whole key, down to the
    /// node, once the line's `type` has picked its form.
    #[test]
    fn a_value_of_the_wrong_type_names_its_whole_key() {
        let cases: [(&str, &[&str]); 3] = [
            (
                "[[line]]\nname = \"lb\"\ntype = \"loopback\"\nchannels = \"four\"\n",
                &["`line[0].channels` = \"four\"", "invalid type: string"],
            ),
            (
                "[[line]]\nname = \"pstn\"\ntype = \"freeswitch\"\ndial_string = \"x/{number}\"\n\
                 [[line.node]]\n[[line.node]]\nchannels = \"two\"\n",
                &["`line[0].node[1].channels` = \"two\"", "invalid type"],
            ),
            (
                "[[line]]\nname = \"m\"\ntype = 4\n",
                &[
                    "`line[0].type` = 4",
                    "the line types are: loopback, freeswitch, modem",
                ],
            ),
        ];
        for (text, needles) in cases {
            let err = refusal(text);
            for needle in needles {
                assert!(err.contains(needle), "{text}\n{err}\nlacks {needle:?}");
            }
        }
    }
}
