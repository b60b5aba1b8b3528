//! The `[log]` section: how much the box logs, and in which form.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, ConfigFile};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

/// `[log]`.
pub(super) fn resolve_log(raw: RawLog, file: &ConfigFile) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(file.bad(
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
        return Err(file.bad(
            "log.level",
            &format!("{level:?}"),
            "expected one of trace, debug, info, warn, error, off, or per module such as \
             \"info,faxbox::smtp=debug\"",
        ));
    }
    Ok(LogConfig { level, format })
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
