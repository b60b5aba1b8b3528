//! The file proxy (Kazoo's `fax_file_proxy`, docs/kazoo.md 6.3): the HTTP server
//! a FreeSWITCH fetches the fax it must send from, because `txfax` takes a
//! local path only and mod_http_cache turns a URL into one.
//!
//! It owns the listener (bound by the caller and handed in) and the table of
//! published faxes. A call publishes its prepared TIFF for as long as the
//! call runs ([`FileProxy::publish`] returns a [`Publication`]; dropping it
//! withdraws the file), under an unguessable per-attempt token. Requests
//! are answered from that table only: no part of a request path ever reaches
//! the filesystem, so anything but a live token is a 404. Clients outside
//! the allowed networks get a 403 before the path is even looked at.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use rand::RngCore;
use tracing::{debug, warn};

use crate::http_pool::HttpPool;

/// Requests served at once. FreeSWITCH fetches each fax once per attempt
/// (mod_http_cache keeps it), so this carries many channels.
const WORKERS: usize = 16;

/// The published faxes by token.
type Table = Arc<Mutex<HashMap<String, PathBuf>>>;

/// The running file proxy.
pub struct FileProxy {
    pool: HttpPool,
    table: Table,
    base_url: String,
}

/// One fax served while the call that published it runs; dropping it makes
/// its URL answer 404.
#[derive(Debug)]
pub struct Publication {
    token: String,
    url: String,
    table: Table,
}

impl Publication {
    /// Where FreeSWITCH fetches the fax (`http://HOST:PORT/fax/TOKEN.tiff`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.remove(&self.token);
        }
    }
}

impl FileProxy {
    /// Serves published faxes on `listener` to clients in `allow`.
    /// `base_url` is how FreeSWITCH reaches this listener (`http://host:port`);
    /// `None` uses the listener's own address.
    pub fn start(
        listener: TcpListener,
        allow: Vec<IpNet>,
        base_url: Option<String>,
    ) -> std::io::Result<FileProxy> {
        let addr = listener.local_addr()?;
        let base_url = base_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{}", advertised(addr)));
        let table: Table = Arc::default();
        let served = table.clone();
        let pool = HttpPool::start(listener, "file-proxy", WORKERS, move |request| {
            serve(&served, &allow, request)
        })?;
        Ok(FileProxy {
            pool,
            table,
            base_url,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.pool.local_addr()
    }

    /// Serves `tiff` at a new unguessable URL until the returned
    /// publication is dropped.
    pub fn publish(&self, tiff: PathBuf) -> Publication {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        if let Ok(mut table) = self.table.lock() {
            table.insert(token.clone(), tiff);
        }
        Publication {
            url: format!("{}/fax/{token}.tiff", self.base_url),
            token,
            table: self.table.clone(),
        }
    }

    /// Faxes published now.
    pub fn published(&self) -> usize {
        self.table.lock().map(|t| t.len()).unwrap_or(0)
    }

    /// Stops serving: each worker finishes its request, then the listener
    /// is closed.
    pub fn stop(mut self) {
        self.pool.stop();
    }
}

/// The address to put in URLs: a wildcard listener is reached on loopback.
fn advertised(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = match addr.ip() {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// Whether a client may fetch faxes at all.
fn allowed(allow: &[IpNet], client: Option<&SocketAddr>) -> bool {
    let Some(client) = client else {
        return false;
    };
    // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
    let ip = client.ip().to_canonical();
    allow.iter().any(|net| net.contains(&ip))
}

/// The token in `/fax/<token>.tiff`, when the path has exactly that shape.
fn token_of(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let token = path.strip_prefix("/fax/")?.strip_suffix(".tiff")?;
    let well_formed = token.len() == 32
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    well_formed.then_some(token)
}

fn serve(table: &Table, allow: &[IpNet], request: tiny_http::Request) {
    let client = request.remote_addr().copied();
    let status = |code: u16, text: &str| {
        tiny_http::Response::from_string(format!("{text}\n"))
            .with_status_code(code)
            .with_header(plain_text())
    };
    let reply = if !allowed(allow, client.as_ref()) {
        warn!(client = ?client, url = request.url(), "file proxy: refused a client outside file_proxy.allow");
        Err(status(403, "this address may not fetch faxes"))
    } else if !matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    ) {
        Err(status(405, "only GET and HEAD").with_header(
            tiny_http::Header::from_bytes("Allow", "GET, HEAD").expect("a valid header"),
        ))
    } else {
        let path = token_of(request.url()).and_then(|token| table.lock().ok()?.get(token).cloned());
        match path.map(|p| (std::fs::read(&p), p)) {
            Some((Ok(bytes), _)) => Ok(bytes),
            Some((Err(e), p)) => {
                warn!(file = %p.display(), "file proxy: cannot read a published fax: {e}");
                Err(status(404, "no such fax"))
            }
            None => Err(status(404, "no such fax")),
        }
    };
    debug!(client = ?client, url = request.url(), ok = reply.is_ok(), "file proxy request");
    // tiny_http sends no body for HEAD but keeps the Content-Length.
    let sent = match reply {
        Ok(bytes) => request.respond(tiny_http::Response::from_data(bytes).with_header(
            tiny_http::Header::from_bytes("Content-Type", "image/tiff").expect("a valid header"),
        )),
        Err(response) => request.respond(response),
    };
    if let Err(e) = sent {
        debug!("file proxy: the client went away: {e}");
    }
}

fn plain_text() -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", "text/plain; charset=utf-8")
        .expect("a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_url_shape_names_a_token() {
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(token_of(&format!("/fax/{t}.tiff")), Some(t));
        assert_eq!(token_of(&format!("/fax/{t}.tiff?x=1")), Some(t));
        for bad in [
            "/fax/../etc/passwd",
            "/fax/%2e%2e/secret.tiff",
            "/fax/0123456789ABCDEF0123456789ABCDEF.tiff",
            "/fax/0123.tiff",
            "/fax//0123456789abcdef0123456789abcdef.tiff",
            "/0123456789abcdef0123456789abcdef.tiff",
            "/fax/0123456789abcdef0123456789abcdef.tif",
        ] {
            assert_eq!(token_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn allow_list_matches_networks_and_mapped_addresses() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert!(allowed(&allow, at("127.0.0.1:5000").as_ref()));
        assert!(allowed(&allow, at("[::ffff:127.0.0.2]:5000").as_ref()));
        assert!(allowed(&allow, at("[::1]:5000").as_ref()));
        assert!(!allowed(&allow, at("10.0.0.1:5000").as_ref()));
        assert!(!allowed(&allow, None));
    }
}
