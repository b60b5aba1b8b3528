//! Print to fax: an IPP FaxOut printer (PWG 5100.15) per faxbox, at
//! `ipp://HOST:PORT/ipp/faxout/<faxbox id>`, so that CUPS, macOS and
//! Windows print dialogs can fax without a driver — the successor of the
//! seed's Google Cloud Printer.
//!
//! A print job names its fax numbers in `destination-uris` (`tel:` URIs);
//! its document goes through the same intake as the API and email
//! (`intake::Intake::submit`), and it becomes one fax job per number
//! in the faxbox. The IPP job's state is read from those fax jobs, so it
//! follows the fax: pending, processing while on a line, completed, or
//! aborted with the reason.
//!
//! Owns: the listener (HTTP POST `application/ipp` on tiny_http worker
//! threads), access (allowed networks, optional HTTP Basic login with a
//! Faxbox user's email and an API key of their account, as SMTP AUTH), and
//! the DNS-SD announcement. Talks to: `intake` (the sender rule, and the one
//! path by which a print job becomes faxes), `store` (print jobs, faxes). No tiny_http
//! or `ipp` crate type leaves this module.

mod jobs;
mod mdns;
mod printer;
mod wire;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;

use ipp::model::{DelimiterTag, StatusCode};
use tracing::{debug, info, warn};

use crate::config::LAN;
use crate::documents::ConvertOptions;
use crate::http_pool::{BodyError, HttpPool};
use crate::intake::Intake;
use crate::model::{Faxbox, FaxboxId};
use crate::store::{Store, StoreError};

pub use mdns::{Announcer, PRINT_SUBTYPE, SERVICE_TYPE, all_faxboxes};
pub use printer::{printer_uuid, txt_record};
/// The IPP request parser, for the fuzz targets.
#[doc(hidden)]
pub use wire::decode as decode_request;

/// The path under which each faxbox's printer lives.
pub const PRINTER_PATH: &str = "/ipp/faxout/";

/// What the IPP listener needs from the rest of the appliance.
#[derive(Clone)]
pub struct IppCtx {
    pub store: Arc<Store>,
    /// Where print jobs become faxes (and are counted); its gate, closed
    /// when the box stops, refuses print jobs as
    /// server-error-not-accepting-jobs (RFC 8011 section 4.1.8.2).
    pub intake: Intake,
    pub options: IppOptions,
}

#[derive(Clone)]
pub struct IppOptions {
    /// Client networks that may print; others get HTTP 403.
    pub allow: Vec<ipnet::IpNet>,
    /// Jobs need an HTTP Basic login (a user's email, an API key of the
    /// user's account); printer attributes stay readable without.
    pub require_auth: bool,
    pub convert: ConvertOptions,
    /// Largest request (attributes and document) taken, in bytes.
    pub max_request: usize,
    /// Requests served at once (each on its own thread).
    pub workers: usize,
    /// How long a job made by Create-Job waits for its document
    /// (Send-Document) before it is aborted: the printer's
    /// `multiple-operation-time-out` (RFC 8011 5.4.31).
    pub document_timeout: std::time::Duration,
}

impl Default for IppOptions {
    fn default() -> Self {
        IppOptions {
            allow: LAN.iter().filter_map(|n| n.parse().ok()).collect(),
            require_auth: false,
            convert: ConvertOptions::default(),
            max_request: 64 * 1024 * 1024,
            workers: 16,
            document_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// The running listener.
pub struct IppServer {
    pool: HttpPool,
}

impl IppServer {
    /// Serves the FaxOut printers on an already bound listener.
    pub fn start(listener: TcpListener, ctx: IppCtx) -> std::io::Result<IppServer> {
        let workers = ctx.options.workers;
        let ctx = Arc::new(ctx);
        let pool = HttpPool::start(listener, "ipp", workers, move |request| {
            serve(&ctx, request)
        })?;
        info!(ipp = %pool.local_addr(), "the FaxOut printers are listening");
        Ok(IppServer { pool })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.pool.local_addr()
    }

    /// Stops taking print jobs: each worker finishes the request it serves.
    pub fn stop(mut self) {
        self.pool.stop();
    }
}

/// An HTTP answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn http(status: u16, message: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
            headers: Vec::new(),
        }
    }

    fn ipp(response: &wire::Response) -> Reply {
        Reply {
            status: 200,
            content_type: "application/ipp",
            body: response.encode(),
            headers: Vec::new(),
        }
    }

    fn login() -> Reply {
        let mut r = Reply::http(
            401,
            "log in with your Faxbox email address and an API key of your account",
        );
        r.headers
            .push(("WWW-Authenticate", "Basic realm=\"Faxbox\"".into()));
        r
    }
}

/// Who is printing.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Logged in: the user's email (lower case).
    User(String),
    /// From an allowed network without a login.
    Anonymous,
}

/// One HTTP request, read at the edge.
pub(crate) struct Http {
    pub host: String,
    pub caller: Caller,
    pub faxbox: Faxbox,
}

fn serve(ctx: &IppCtx, mut raw: tiny_http::Request) {
    // A bug must not take a worker thread down with it: the client gets a
    // 500 and the printer keeps serving.
    let reply =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(ctx, &mut raw))) {
            Ok(reply) => reply,
            Err(_) => {
                warn!("an IPP request failed inside Faxbox; answered 500");
                Reply::http(500, "internal error")
            }
        };
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let mut headers = reply.headers;
    headers.push(("Content-Type", reply.content_type.to_owned()));
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = raw.respond(response) {
        debug!("cannot send an IPP reply: {e}");
    }
}

fn header<'a>(raw: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    raw.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn handle(ctx: &IppCtx, raw: &mut tiny_http::Request) -> Reply {
    let peer = raw.remote_addr().map(|a| a.ip());
    if !peer.is_some_and(|ip| allowed(&ctx.options.allow, ip)) {
        info!(peer = ?peer, "IPP request from outside the allowed networks refused");
        return Reply::http(
            403,
            "this printer takes jobs only from the networks in ipp.allow",
        );
    }
    let url = raw.url().to_owned();
    let path = url.split('?').next().unwrap_or("");
    let Some(id) = path
        .strip_prefix(PRINTER_PATH)
        .map(|s| s.trim_end_matches('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
    else {
        return Reply::http(
            404,
            "no printer here: the fax printers are at /ipp/faxout/<faxbox id>",
        );
    };
    let faxbox = match ctx.store.faxbox(&FaxboxId(id.to_owned())) {
        Ok(f) => f,
        Err(StoreError::NotFound { .. }) => {
            return Reply::http(404, &format!("there is no faxbox {id}"));
        }
        Err(e) => {
            warn!(error = %e, "cannot look up a faxbox for IPP");
            return Reply::http(500, "the faxbox could not be read; try again");
        }
    };
    if raw.method() == &tiny_http::Method::Get {
        // printer-more-info points here: a line for a person with a browser.
        return Reply::http(
            200,
            &format!(
                "Faxbox: the fax printer of the faxbox \"{}\". Add it as an IPP printer \
                 (ipp://<this address>{PRINTER_PATH}{}) and give the fax number when printing.",
                faxbox.name, faxbox.id
            ),
        );
    }
    if raw.method() != &tiny_http::Method::Post {
        return Reply::http(
            405,
            &format!(
                "the fax printer of {} takes IPP requests (HTTP POST application/ipp)",
                faxbox.name
            ),
        );
    }
    let content_type = header(raw, "Content-Type").unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ipp"))
    {
        return Reply::http(400, "an IPP request has Content-Type application/ipp");
    }
    let caller = match header(raw, "Authorization") {
        Some(value) => match login(ctx, &faxbox, value) {
            Ok(Some(email)) => Caller::User(email),
            Ok(None) => return Reply::login(),
            Err(e) => {
                warn!(error = %e, "cannot check an IPP login");
                return Reply::http(500, "the login could not be checked; try again");
            }
        },
        None => Caller::Anonymous,
    };
    let host = header(raw, "Host")
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
        .map(str::to_owned)
        .unwrap_or_else(|| "localhost".to_owned());
    let limit = ctx.options.max_request;
    let too_large = || {
        // The request-id is not known: nothing of the body was kept.
        let response = wire::Response::new(0x0101, StatusCode::ClientErrorRequestEntityTooLong, 0)
            .with_message(format!("this printer takes documents up to {limit} bytes"));
        Reply::ipp(&response)
    };
    let declared = raw.body_length();
    let body = match crate::http_pool::read_body(raw.as_reader(), declared, limit) {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => return too_large(),
        Err(BodyError::TooSlow) => {
            return Reply::http(408, "the request came too slowly; send it again");
        }
        Err(BodyError::Busy) => {
            return Reply::http(
                503,
                "the printer is taking in other large jobs; try again in a minute",
            );
        }
        Err(BodyError::Io(e)) => {
            debug!("an IPP request body could not be read: {e}");
            return Reply::http(400, "the request body could not be read");
        }
    };
    let request = match wire::decode(&body) {
        Ok(r) => r,
        Err(refused) => {
            info!(error = %refused.message, "IPP request refused");
            return Reply::ipp(&wire::Response::refused(&refused));
        }
    };
    let needs_login = ctx.options.require_auth && request.operation != 0x000B;
    if needs_login && matches!(caller, Caller::Anonymous) {
        return Reply::login();
    }
    let http = Http {
        host,
        caller,
        faxbox,
    };
    let response = jobs::operate(ctx, &http, &request);
    Reply::ipp(&response)
}

fn allowed(allow: &[ipnet::IpNet], ip: IpAddr) -> bool {
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allow.iter().any(|net| net.contains(&ip))
}

/// HTTP Basic: a user of the faxbox's account by email, with an API key
/// of that account as the password (as SMTP AUTH). `None`: wrong login.
fn login(ctx: &IppCtx, faxbox: &Faxbox, value: &str) -> Result<Option<String>, StoreError> {
    use base64::Engine;
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Ok(None);
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return Ok(None);
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Ok(None);
    };
    let Some((user, key)) = text.split_once(':') else {
        return Ok(None);
    };
    // Only a user of the faxbox's own account prints to it.
    Ok(ctx
        .store
        .login(user, key)?
        .filter(|(account, _)| account.id == faxbox.account_id)
        .map(|(_, email)| email))
}

/// The operation group must open with the charset and the language (RFC
/// 8011 4.1.4) and name the printer or job.
fn check_operation_group(request: &wire::Request) -> Result<(), wire::Response> {
    let bad = |message: &str| {
        wire::Response::new(
            request.version,
            StatusCode::ClientErrorBadRequest,
            request.request_id,
        )
        .with_message(message)
    };
    let first = request.attributes.groups().first();
    let Some(group) = first.filter(|g| g.tag() == DelimiterTag::OperationAttributes) else {
        return Err(bad("the request has no operation attributes"));
    };
    let names: Vec<&str> = group
        .attributes()
        .iter()
        .map(|a| a.name().as_str())
        .collect();
    if names.first() != Some(&"attributes-charset")
        || names.get(1) != Some(&"attributes-natural-language")
    {
        return Err(bad(
            "the operation attributes must start with attributes-charset and attributes-natural-language",
        ));
    }
    let charset = group
        .get("attributes-charset")
        .and_then(|a| wire::string_of(a.value()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    if charset != "utf-8" && charset != "us-ascii" {
        let mut r = wire::Response::new(
            request.version,
            StatusCode::ClientErrorCharsetNotSupported,
            request.request_id,
        )
        .with_message(format!("charset {charset} is not supported; use utf-8"));
        r.push_group(
            DelimiterTag::UnsupportedAttributes,
            vec![wire::attr("attributes-charset", wire::charset(&charset))],
        );
        return Err(r);
    }
    if group.get("printer-uri").is_none() && group.get("job-uri").is_none() {
        return Err(bad("the request names no printer-uri"));
    }
    Ok(())
}
