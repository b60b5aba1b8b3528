//! Fetching a fax's document by URL (Kazoo's `document.url`, docs/kazoo.md 2.3).
//!
//! A URL from a client makes the box itself open a connection, so only
//! `http(s)` is fetched, under a size and time limit and a few redirects,
//! and addresses on the box's own machine or network (loopback, private
//! ranges, link-local, unspecified, multicast) are refused by default
//! (the fax setting `allow_private_document_urls`, which the API copies
//! into `FetchPolicy::allow_private` for each request, opens the private
//! ones for intranet document servers). The check runs on every hop of a redirect and again
//! in the resolver that ureq connects with, so a name that resolves to a
//! public address for the check and to a private one for the connection
//! (DNS rebinding) is still refused.

use std::io::Read;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::documents::Input;
use crate::model::FieldError;

/// Kazoo's `document` object: where the document is and how to ask for it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    pub url: Option<String>,
    /// `get` (default) or `post`.
    pub method: Option<String>,
    /// The body of a POST (at most 256 characters, as Kazoo's schema).
    pub content: Option<String>,
    pub content_type: Option<String>,
    pub host: Option<String>,
    pub referer: Option<String>,
}

/// The limits of a fetch.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Allow loopback and private (RFC 1918, RFC 4193) addresses. The API
    /// sets it from the account's `allow_private_document_urls` setting.
    pub allow_private: bool,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub max_redirects: u32,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private: false,
            max_bytes: 32 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

/// Whether the box may connect to `ip` to fetch a document.
pub fn address_allowed(ip: IpAddr, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            // Never: nobody's document server, or cloud metadata (169.254/16).
            if v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
            {
                return false;
            }
            let private = v4.is_loopback()
                || v4.is_private()
                // Carrier-grade NAT, RFC 6598.
                || (o[0] == 100 && (64..128).contains(&o[1]));
            !private || allow_private
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_unspecified() || v6.is_multicast() || (first & 0xffc0) == 0xfe80 {
                return false;
            }
            // An IPv4 address inside an IPv6 one reaches that IPv4 host
            // (issue 18: `[::127.0.0.1]` passed as a public address).
            let embedded = embedded_ipv4(v6);
            if !embedded.is_empty() {
                return embedded
                    .into_iter()
                    .all(|v4| address_allowed(IpAddr::V4(v4), allow_private));
            }
            // Unique local fc00::/7, and the old site-local fec0::/10.
            let private =
                v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfec0;
            !private || allow_private
        }
    }
}

/// The IPv4 addresses an IPv6 address carries, in every form a connection
/// to it may end at that IPv4 host: IPv4-mapped `::ffff:a.b.c.d` and
/// IPv4-compatible `::a.b.c.d` (RFC 4291 2.5.5), IPv4-translated
/// `::ffff:0:a.b.c.d` (RFC 2765), NAT64 `64:ff9b::/96` (RFC 6052) and
/// `64:ff9b:1::/48` (RFC 8215), 6to4 `2002::/16` (RFC 3056), and Teredo's
/// server and client `2001::/32` (RFC 4380). `::1` is not one: it is the
/// IPv6 loopback.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let s = v6.segments();
    let o = v6.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if v6.is_loopback() {
        return Vec::new();
    }
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => {
            vec![last]
        }
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => vec![last],
        // RFC 8215's local-use prefix, in the /96 layout NAT64 gateways use.
        [0x64, 0xff9b, 1, ..] => vec![last],
        [0x2002, ..] => vec![Ipv4Addr::new(o[2], o[3], o[4], o[5])],
        [0x2001, 0, ..] => vec![
            Ipv4Addr::new(o[4], o[5], o[6], o[7]),
            Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]),
        ],
        _ => Vec::new(),
    }
}

/// ureq's resolver with the address check: what is connected to is what
/// was checked.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        if addrs
            .iter()
            .any(|a| !address_allowed(a.ip(), self.allow_private))
        {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the address is not allowed",
            )));
        }
        Ok(addrs)
    }
}

fn refused(message: String) -> FieldError {
    FieldError::new("document.url", "fetch", message)
}

/// Checks a URL before connecting: scheme, and every address its host
/// resolves to.
fn check(url: &url::Url, policy: &FetchPolicy) -> Result<(), FieldError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new(
            "document.url",
            "format",
            format!("{url} is not an http:// or https:// address"),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| FieldError::new("document.url", "format", format!("{url} has no host")))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let host_only = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = (host_only, port)
        .to_socket_addrs()
        .map_err(|_| refused(format!("cannot find the host {host} of the document URL")))?
        .map(|a| a.ip())
        .collect();
    if let Some(bad) = addrs
        .iter()
        .find(|ip| !address_allowed(**ip, policy.allow_private))
    {
        return Err(refused(format!(
            "{url} points to {bad}, an address of this fax box or its own network; it fetches documents only from public addresses (an administrator can allow private ones with the fax setting allow_private_document_urls)"
        )));
    }
    Ok(())
}

/// Checks a faxbox's callback URL before it is saved or called: the same
/// rule as a document URL (public addresses, private ones only with the
/// account's `allow_private_document_urls`), `field` naming the setting.
/// A host that does not resolve now passes: the box's DNS may be down
/// while a faxbox is saved, and each call checks again.
pub fn check_callback_url(raw: &str, allow_private: bool, field: &str) -> Result<(), FieldError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| FieldError::new(field, "format", format!("{raw:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return Ok(());
    };
    for addr in addrs {
        if !address_allowed(addr.ip(), allow_private) {
            return Err(FieldError::new(
                field,
                "fetch",
                format!(
                    "{url} points to {}, an address of this fax box or its own network; it calls callbacks only at public addresses (an administrator can allow private ones with the fax setting allow_private_document_urls)",
                    addr.ip()
                ),
            ));
        }
    }
    Ok(())
}

/// An HTTP agent that connects only where `address_allowed` lets it (on
/// every resolution, so a rebinding name is refused), answers any status
/// as a response, follows no redirect and gives up after `timeout`.
pub fn guarded_agent(allow_private: bool, timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(timeout))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::default(),
        GuardedResolver { allow_private },
    )
}

/// Whether the document is fetched with a POST (else a GET), once its
/// method and the body to post are checked.
fn posts(doc: &DocumentRef) -> Result<bool, FieldError> {
    let post = match doc
        .method
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("get") => false,
        Some("post") => true,
        Some(other) => {
            return Err(FieldError::new(
                "document.method",
                "enum",
                format!("{other:?} is not a method; use get or post"),
            ));
        }
    };
    if doc
        .content
        .as_ref()
        .is_some_and(|c| c.chars().count() > 256)
    {
        return Err(FieldError::new(
            "document.content",
            "maxLength",
            "document.content may have at most 256 characters",
        ));
    }
    Ok(post)
}

/// Fetches the document; errors are for the person who sent the URL.
pub fn fetch(doc: &DocumentRef, policy: &FetchPolicy) -> Result<Input, FieldError> {
    let raw = doc.url.as_deref().unwrap_or_default().trim();
    let mut url = url::Url::parse(raw).map_err(|e| {
        FieldError::new(
            "document.url",
            "format",
            format!("{raw:?} is not a URL: {e}"),
        )
    })?;
    let post = posts(doc)?;
    let agent = guarded_agent(policy.allow_private, policy.timeout);
    let mut hops = 0;
    loop {
        check(&url, policy)?;
        let mut request = ureq::http::Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(url.as_str());
        for (name, value) in [("Host", &doc.host), ("Referer", &doc.referer)] {
            if let Some(v) = value {
                request = request.header(name, v.as_str());
            }
        }
        let sent = if post {
            request = request.header(
                "Content-Type",
                doc.content_type.as_deref().unwrap_or("text/plain"),
            );
            let body = doc.content.clone().unwrap_or_default().into_bytes();
            agent.run(request.body(body).map_err(|e| refused(e.to_string()))?)
        } else {
            agent.run(request.body(()).map_err(|e| refused(e.to_string()))?)
        };
        let mut response = sent.map_err(|e| match e {
            ureq::Error::Timeout(_) => refused(format!(
                "the document server at {url} did not answer within {} s",
                policy.timeout.as_secs()
            )),
            other => refused(format!("cannot fetch {url}: {other}")),
        })?;
        let status = response.status();
        if status.is_redirection() {
            hops += 1;
            if hops > policy.max_redirects {
                return Err(refused(format!(
                    "{raw} redirects more than {} times",
                    policy.max_redirects
                )));
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| refused(format!("{url} redirects without a Location")))?;
            url = url
                .join(location)
                .map_err(|e| refused(format!("{url} redirects to a bad address: {e}")))?;
            continue;
        }
        // Kazoo: success only on 200 (docs/kazoo.md 2.3).
        if status.as_u16() != 200 {
            return Err(refused(format!(
                "the document server answered {status} for {url}"
            )));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .map(super::multipart::media_type)
            .filter(|c| c != "application/octet-stream");
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(policy.max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refused(format!("cannot read the document from {url}: {e}")))?;
        if bytes.len() as u64 > policy.max_bytes {
            return Err(refused(format!(
                "the document at {url} is larger than {} bytes",
                policy.max_bytes
            )));
        }
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("document")
            .to_owned();
        return Ok(Input {
            bytes,
            name,
            content_type,
            password: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_and_its_network_are_refused_unless_allowed() {
        let cases = [
            ("127.0.0.1", false, true),
            ("10.1.2.3", false, true),
            ("192.168.1.10", false, true),
            ("172.16.0.1", false, true),
            ("100.64.0.1", false, true),
            ("::1", false, true),
            ("fd00::1", false, true),
            ("::ffff:127.0.0.1", false, true),
            // Every other IPv6 form of a local IPv4 address (issue 18).
            ("::127.0.0.1", false, true),
            ("::ffff:0:127.0.0.1", false, true),
            ("::ffff:10.0.0.1", false, true),
            ("64:ff9b::127.0.0.1", false, true),
            ("64:ff9b::10.0.0.1", false, true),
            ("64:ff9b::169.254.169.254", false, false),
            ("2002:7f00:1::", false, true),
            ("2002:a9fe:a9fe::", false, false),
            ("2001:0:7f00:1::a247:25dd", false, true),
            ("2001:0:5db8:1::80ff:fffe", false, true),
            ("fec0::1", false, true),
            // ...and of public ones are public.
            ("64:ff9b::93.184.216.34", true, true),
            ("2002:5db8:d822::", true, true),
            ("169.254.169.254", false, false),
            ("0.0.0.0", false, false),
            ("::", false, false),
            ("fe80::1", false, false),
            ("224.0.0.1", false, false),
            ("93.184.216.34", true, true),
            ("2606:2800:220:1::", true, true),
        ];
        for (ip, by_default, when_allowed) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_allowed(ip, false), by_default, "{ip}");
            assert_eq!(address_allowed(ip, true), when_allowed, "{ip} allowed");
        }
    }

    #[test]
    fn only_http_urls_are_fetched() {
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/a.pdf",
            "gopher://x",
        ] {
            let doc = DocumentRef {
                url: Some(url.into()),
                ..Default::default()
            };
            let err = fetch(&doc, &FetchPolicy::default()).unwrap_err();
            assert_eq!(err.code, "format", "{url}: {err}");
        }
    }
}
