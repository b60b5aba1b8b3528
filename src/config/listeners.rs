//! The listener sections: `[http]`, `[smtp]`, `[file_proxy]` and `[ipp]`,
//! each resolved by its own function, and the defaults their owners share
//! (the API token lifetime, the LAN the printers serve).
//!
//! Kazoo's ports are the defaults: crossbar 8000, fax_smtp 19025,
//! fax_file_proxy 30950; the printers take IPP's own 631.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, ConfigFile};
use crate::model::is_domain;

/// Kazoo's default token lifetime (crossbar `auth_tokens` expiry); the
/// default of `http.token_lifetime_s`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The LAN: loopback, the private IPv4 ranges, link-local and IPv6
/// unique-local addresses. The default of `ipp.allow`.
pub const LAN: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

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

// ---------------------------------------------------------------------------
// Phase one: the sections as written.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: Option<String>,
    cors_origins: Option<Vec<String>>,
    token_lifetime_s: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    listen: Option<String>,
    hostname: Option<String>,
    tls_certificate: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_relays: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIpp {
    enabled: Option<bool>,
    listen: Option<String>,
    allow: Option<Vec<String>>,
    require_auth: Option<bool>,
    mdns: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileProxy {
    listen: Option<String>,
    allow: Option<Vec<String>>,
    url: Option<String>,
}

// ---------------------------------------------------------------------------
// Phase two: one function per section.

/// `[http]`, and the token lifetime it sets.
pub(super) fn resolve_http(
    raw: RawHttp,
    file: &ConfigFile,
) -> Result<(HttpConfig, Duration), ConfigError> {
    let token_lifetime = match raw.token_lifetime_s {
        None => DEFAULT_TOKEN_LIFETIME,
        Some(s @ 60..=31_536_000) => Duration::from_secs(s as u64),
        Some(other) => {
            return Err(file.bad(
                "http.token_lifetime_s",
                &other,
                "expected seconds from 60 to 31536000 that an API token stays good",
            ));
        }
    };
    let listen = file.listen("http", raw.listen, "127.0.0.1:8000")?;
    let cors_origins = raw.cors_origins.unwrap_or_else(|| vec!["*".into()]);
    for origin in &cors_origins {
        let is_origin = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path() == "/"
                && !origin.ends_with('/')
        });
        if origin != "*" && !is_origin {
            return Err(file.bad(
                "http.cors_origins",
                &format!("{origin:?}"),
                "expected \"*\" or a web origin such as \"https://pbx.example.com\" (scheme, host and port; no path)",
            ));
        }
    }
    let http = HttpConfig {
        listen,
        cors_origins,
    };
    Ok((http, token_lifetime))
}

/// `[smtp]`.
pub(super) fn resolve_smtp(raw: RawSmtp, file: &ConfigFile) -> Result<SmtpConfig, ConfigError> {
    let listen = file.listen("smtp", raw.listen, "127.0.0.1:19025")?;
    let hostname = match raw.hostname {
        Some(h) if !is_domain(&h) => {
            return Err(file.bad(
                "smtp.hostname",
                &format!("{h:?}"),
                "expected the box's fully qualified mail name such as \"fax.example.com\" \
                 (smarthosts refuse a bare host name in EHLO)",
            ));
        }
        Some(h) => h,
        None => system_hostname(),
    };
    let tls = match (raw.tls_certificate, raw.tls_key) {
        (Some(certificate), Some(key)) => Some(TlsFiles { certificate, key }),
        (None, None) => None,
        (Some(c), None) => {
            return Err(file.bad(
                "smtp.tls_key",
                &"(missing)",
                &format!(
                    "tls_certificate = {:?} needs the key file beside it",
                    c.display()
                ),
            ));
        }
        (None, Some(k)) => {
            return Err(file.bad(
                "smtp.tls_certificate",
                &"(missing)",
                &format!(
                    "tls_key = {:?} needs the certificate file beside it",
                    k.display()
                ),
            ));
        }
    };
    let trusted_relays = file.networks(
        "smtp.trusted_relays",
        raw.trusted_relays.unwrap_or_default(),
        "\"127.0.0.1\" or \"10.0.0.0/24\"",
    )?;
    Ok(SmtpConfig {
        listen,
        hostname,
        tls,
        trusted_relays,
    })
}

/// `[file_proxy]`.
pub(super) fn resolve_file_proxy(
    raw: RawFileProxy,
    file: &ConfigFile,
) -> Result<FileProxyConfig, ConfigError> {
    let listen = file.listen("file_proxy", raw.listen, "127.0.0.1:30950")?;
    // Loopback only unless told: the proxy serves people's faxes.
    let allow_words = raw
        .allow
        .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1/128".into()]);
    let allow = file.networks(
        "file_proxy.allow",
        allow_words,
        "\"127.0.0.1\" or \"10.0.0.0/8\"",
    )?;
    let url = match raw.url {
        None => None,
        Some(u) if u.starts_with("http://") && u.len() > "http://".len() => Some(u),
        Some(u) => {
            return Err(file.bad(
                "file_proxy.url",
                &format!("{u:?}"),
                "expected an http:// address such as \"http://10.0.0.5:30950\"",
            ));
        }
    };
    Ok(FileProxyConfig { listen, allow, url })
}

/// `[ipp]`: off, on every interface (printers are found on the LAN), for
/// the LAN only, announced.
pub(super) fn resolve_ipp(raw: RawIpp, file: &ConfigFile) -> Result<IppConfig, ConfigError> {
    let listen = file.listen("ipp", raw.listen, "0.0.0.0:631")?;
    let words = raw
        .allow
        .unwrap_or_else(|| LAN.iter().map(|s| s.to_string()).collect());
    let allow = file.networks("ipp.allow", words, "\"192.168.1.0/24\"")?;
    Ok(IppConfig {
        enabled: raw.enabled.unwrap_or(false),
        listen,
        allow,
        require_auth: raw.require_auth.unwrap_or(false),
        mdns: raw.mdns.unwrap_or(true),
    })
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
