//! The `[smarthost]` section: the mail server that carries the box's
//! outgoing email (receipts, error reports, received faxes).

use serde::Deserialize;

use super::{ConfigError, ConfigFile};

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmarthost {
    host: Option<String>,
    port: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<String>,
    from: Option<String>,
}

/// `[smarthost]`; `hello_name` is the box's own mail name (`smtp.hostname`).
pub(super) fn resolve_smarthost(
    raw: RawSmarthost,
    hello_name: &str,
    file: &ConfigFile,
) -> Result<Smarthost, ConfigError> {
    let tls = match raw.tls.as_deref().unwrap_or("starttls") {
        "none" => TlsMode::None,
        "starttls" => TlsMode::StartTls,
        "tls" => TlsMode::Tls,
        other => {
            return Err(file.bad(
                "smarthost.tls",
                &format!("{other:?}"),
                "expected \"none\", \"starttls\" or \"tls\"",
            ));
        }
    };
    // Submission with STARTTLS (RFC 6409), or implicit TLS (RFC 8314).
    let default_port = match tls {
        TlsMode::Tls => 465,
        _ => 587,
    };
    let port = raw.port.unwrap_or(default_port);
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| file.bad("smarthost.port", &port, "expected 1 to 65535"))?;
    let server = raw.host.map(|host| SmarthostServer {
        host,
        port,
        username: raw.username.unwrap_or_default(),
        password: raw.password.unwrap_or_default(),
        tls,
    });
    let from = raw.from.unwrap_or_else(|| "faxbox@localhost".into());
    if !from.contains('@') {
        return Err(file.bad(
            "smarthost.from",
            &format!("{from:?}"),
            "expected an email address",
        ));
    }
    Ok(Smarthost {
        server,
        from,
        hello_name: hello_name.to_owned(),
    })
}
