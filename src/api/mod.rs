//! The HTTP API: Kazoo's crossbar paths, envelope and field names under
//! `/v2` (docs/kazoo.md 2), on tiny_http worker threads.
//!
//! Owns the protocol edge only: parse a request, authenticate it, validate
//! its body, make one call into the store (and `documents` for uploads),
//! and map the outcome to a reply in one function (`reply::error_reply`).
//! It never writes SQL, and no tiny_http type leaves this module.
//!
//! The listener is bound by the caller and handed in, so tests start the
//! API on `127.0.0.1:0`; `Api::stop` lets each worker finish the request
//! it is serving, then closes the listener.

mod accounts;
mod audit;
pub mod auth;
mod batches;
mod document;
mod events;
mod faxboxes;
mod faxes;
pub mod fetch;
mod listing;
mod live;
pub mod multipart;
mod reply;
mod settings;
mod smtplog;
mod status;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tracing::debug;

pub use batches::summary as batch_summary;
pub use live::LiveStatus;
pub use reply::ApiError;

use crate::documents::ConvertOptions;
use crate::http_pool::HttpPool;
use crate::intake::{Intake, IntakeCounts};
use crate::model::{Account, AccountId, Folder, UnixTime};
use crate::scheduler::LineBoard;
use crate::store::{Store, UpdateMode};
use faxes::Listing;
use listing::Paging;
use reply::{Answer, Reply, Success};

/// The OpenAPI 3 document of every route (`GET /v2/openapi`); a test
/// checks it against the router.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Limits and tuning of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Requests served at once; each may convert a document, so this also
    /// bounds the CPU uploads can take.
    pub workers: usize,
    /// The largest request body accepted (an upload with its documents).
    pub max_body: usize,
    /// How uploads are converted (with the time budget per document).
    pub convert: ConvertOptions,
    /// How documents given by URL are fetched.
    pub fetch: fetch::FetchPolicy,
    /// How long an event stream stays silent before a keep-alive comment.
    pub keep_alive: Duration,
    /// How long a token from `PUT /v2/api_auth` is good for, restarts
    /// included (`http.token_lifetime_s`).
    pub token_lifetime: Duration,
    /// The web origins whose pages may call the API (CORS, `http.
    /// cors_origins`); `*`, Kazoo's answer, lets any page.
    pub cors_origins: Vec<String>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        let convert = ConvertOptions {
            time_budget: Duration::from_secs(60),
            ..ConvertOptions::default()
        };
        ApiOptions {
            workers: 128,
            max_body: 32 * 1024 * 1024,
            convert,
            fetch: fetch::FetchPolicy::default(),
            keep_alive: Duration::from_secs(15),
            token_lifetime: crate::config::DEFAULT_TOKEN_LIFETIME,
            cors_origins: vec!["*".into()],
        }
    }
}

/// What the request handlers share.
pub struct Ctx {
    pub store: Arc<Store>,
    /// Tells the scheduler a job was queued (`Scheduler::wake`).
    pub wake: Arc<dyn Fn() + Send + Sync>,
    pub live: LiveStatus,
    pub options: ApiOptions,
    sessions: auth::Sessions,
    /// Replies sent, by HTTP status, for `/metrics`.
    replies: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    /// What the scheduler's lines are doing, for `/v2/status`.
    lines: LineBoard,
    /// When this API started (its requests are counted since).
    started: UnixTime,
    /// New faxes go through it (its gate closed when the box stops: new
    /// faxes are refused with 503); it counts them, shared with the other
    /// doors.
    intake: Intake,
    streams: events::Streams,
}

impl Ctx {
    pub fn new(
        store: Arc<Store>,
        wake: Arc<dyn Fn() + Send + Sync>,
        live: LiveStatus,
        options: ApiOptions,
    ) -> Ctx {
        // The signing key lives beside the database, in the data dir.
        let sessions = auth::Sessions::in_data_dir(
            store.path().parent().unwrap_or(std::path::Path::new(".")),
            options.token_lifetime,
        );
        Ctx {
            intake: Intake::new(store.clone(), wake.clone()),
            store,
            wake,
            live,
            options,
            sessions,
            replies: Default::default(),
            lines: LineBoard::default(),
            started: crate::model::now(),
            streams: Default::default(),
        }
    }

    /// Shares the intake counts with the other doors (email, printers).
    pub fn with_intake(mut self, counts: Arc<IntakeCounts>) -> Ctx {
        self.intake = self.intake.with_counts(counts);
        self
    }

    /// Shares the appliance's intake gate (closed when it stops).
    pub fn with_gate(mut self, gate: crate::gate::IntakeGate) -> Ctx {
        self.intake = self.intake.with_gate(gate);
        self
    }

    fn intake_closed(&self) -> bool {
        self.intake.is_closed()
    }

    /// The lines `/v2/status` reports on (`Scheduler::board`).
    pub fn with_lines(mut self, lines: LineBoard) -> Ctx {
        self.lines = lines;
        self
    }

    fn accepted_by_account(&self) -> std::collections::BTreeMap<AccountId, u64> {
        self.intake.counts().api_by_account().1
    }

    fn requests_served(&self) -> u64 {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

/// The running API server.
pub struct Api {
    pool: HttpPool,
    ctx: Arc<Ctx>,
}

impl Api {
    /// Serves the API on `listener` from `ctx.options.workers` threads.
    pub fn start(listener: TcpListener, ctx: Ctx) -> std::io::Result<Api> {
        let ctx = Arc::new(ctx);
        let served = ctx.clone();
        let pool = HttpPool::start(listener, "api", ctx.options.workers, move |request| {
            serve(&served, request)
        })?;
        Ok(Api { pool, ctx })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.pool.local_addr()
    }

    /// Stops taking requests: each worker finishes the one it serves, then
    /// the listener is closed.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.pool.stop();
        // No worker is left to start a stream: end the running ones.
        self.ctx.streams.stop();
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shut();
    }
}

/// A request, converted from tiny_http at the edge.
struct Request {
    method: String,
    path: Vec<String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    /// The client's address, for the audit trail.
    peer: Option<std::net::IpAddr>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn serve(ctx: &Arc<Ctx>, mut raw: tiny_http::Request) {
    let request_id = crate::model::new_id();
    let url = raw.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let request = Request {
        method: raw.method().as_str().to_ascii_uppercase(),
        path: path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(&s.replace('+', "%2B")))
            .collect(),
        query: query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect(),
        headers: raw
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect(),
        peer: raw.remote_addr().map(|a| a.ip().to_canonical()),
    };
    let cors = cors_headers(&ctx.options.cors_origins, &request);
    if request.method == "OPTIONS" {
        // A browser's preflight (Fetch standard, CORS protocol): answered
        // without a token, as Kazoo's crossbar does, for any path.
        count_reply(ctx, 200);
        respond(
            raw,
            Reply::bytes("text/plain", Vec::new()),
            &request_id,
            &cors,
        );
        return;
    }
    if request.method == "GET" && request.path == ["v2", "events"] {
        match authenticate(ctx, &request) {
            Ok((caller, _)) => {
                count_reply(ctx, 200);
                events::start(ctx, raw, caller, &request_id);
            }
            Err(e) => {
                let reply = reply::error_reply(&e, &request_id, None);
                count_reply(ctx, reply.status);
                respond(raw, reply, &request_id, &cors);
            }
        }
        return;
    }
    let mut request = request;
    let declared = raw.body_length();
    // Kazoo's verb tunnelling (basics, "Tunneling the HTTP Verb"): a POST
    // carries the real verb as `?verb=` or as the envelope's `verb`.
    let mut early: Option<Result<Vec<u8>, ApiError>> = None;
    if request.method == "POST" {
        if let Some(verb) = request.query("verb") {
            request.method = verb.to_ascii_uppercase();
        } else if request
            .header("content-type")
            .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
        {
            let body = read_body(raw.as_reader(), declared, ctx.options.max_body);
            if let Ok(bytes) = &body
                && let Some(verb) = envelope_verb(bytes)
            {
                request.method = verb.to_ascii_uppercase();
            }
            early = Some(body);
        }
    }
    let mut body = |limit: usize| match early.take() {
        Some(Ok(bytes)) if bytes.len() > limit => Err(ApiError::TooLarge { limit }),
        Some(read) => read,
        None => read_body(raw.as_reader(), declared, limit),
    };
    let (outcome, token) = route(ctx, &request, &mut body);
    let reply = match outcome {
        Ok(Answer::Json(success)) => reply::envelope(&success, &request_id, token.as_deref()),
        Ok(Answer::Raw(reply)) => reply,
        Err(e) => reply::error_reply(&e, &request_id, token.as_deref()),
    };
    debug!(method = %request.method, path, status = reply.status, request_id, "api request");
    count_reply(ctx, reply.status);
    respond(raw, reply, &request_id, &cors);
}

/// The verb a JSON envelope tunnels (`{"data": ..., "verb": "PUT"}`).
fn envelope_verb(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        verb: Option<String>,
    }
    serde_json::from_slice::<Envelope>(body).ok()?.verb
}

/// What Kazoo's crossbar lists in its CORS replies.
const CORS_METHODS: &str = "OPTIONS, GET, PUT, POST, PATCH, DELETE, HEAD";
const CORS_ALLOW_HEADERS: &str = "content-type, depth, user-agent, x-http-method-override, x-file-size, x-requested-with, if-modified-since, x-file-name, cache-control, x-auth-token, x-kazoo-cluster-id, if-match, authorization";
const CORS_EXPOSE_HEADERS: &str =
    "content-type, x-auth-token, x-request-id, x-kazoo-cluster-id, location, etag";

/// The CORS headers of every reply (Fetch standard, CORS protocol): with
/// `*` any page may call, else only the listed origins (the request's
/// `Origin` is echoed back, and caches told the answer varies by it).
fn cors_headers(origins: &[String], rq: &Request) -> Vec<(String, String)> {
    let allowed = if origins.iter().any(|o| o == "*") {
        "*".to_owned()
    } else {
        match rq.header("origin") {
            Some(origin) if origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) => {
                origin.to_owned()
            }
            _ => return Vec::new(),
        }
    };
    let mut headers = vec![
        ("Access-Control-Allow-Origin".to_owned(), allowed.clone()),
        (
            "Access-Control-Allow-Methods".to_owned(),
            CORS_METHODS.to_owned(),
        ),
        (
            "Access-Control-Allow-Headers".to_owned(),
            CORS_ALLOW_HEADERS.to_owned(),
        ),
        (
            "Access-Control-Expose-Headers".to_owned(),
            CORS_EXPOSE_HEADERS.to_owned(),
        ),
        ("Access-Control-Max-Age".to_owned(), "86400".to_owned()),
    ];
    if allowed != "*" {
        headers.push(("Vary".to_owned(), "Origin".to_owned()));
    }
    headers
}

fn count_reply(ctx: &Ctx, status: u16) {
    *ctx.replies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(status)
        .or_default() += 1;
}

fn respond(raw: tiny_http::Request, reply: Reply, request_id: &str, cors: &[(String, String)]) {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let mut headers = reply.headers;
    headers.extend(cors.iter().cloned());
    headers.push(("Content-Type".into(), reply.content_type));
    headers.push(("X-Request-ID".into(), request_id.to_owned()));
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = raw.respond(response) {
        // The client went away; nothing to tell it.
        debug!("cannot send an API reply: {e}");
    }
}

/// Reads the body (`http_pool::read_body`: bounded in size and time).
fn read_body(
    reader: &mut dyn Read,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    use crate::http_pool::BodyError;
    crate::http_pool::read_body(reader, declared, limit).map_err(|e| match e {
        BodyError::TooLarge { limit } => ApiError::TooLarge { limit },
        BodyError::TooSlow => ApiError::Timeout(format!(
            "the request body came too slowly; send it at {} KB/s or faster",
            crate::http_pool::MIN_BODY_RATE / 1024
        )),
        BodyError::Busy => ApiError::Timeout(
            "the fax box is taking in other large uploads; send this one again in a minute".into(),
        ),
        BodyError::Io(e) => {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        }
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest JSON body read: a fax's or a user's fields are a few KB, and
/// a parsed JSON value takes many times its text in memory (documents come
/// as multipart parts, not inside JSON). Nesting is bounded by serde_json,
/// which refuses values nested more than 128 deep.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// A JSON body as a value, bounded by `MAX_JSON_BODY`.
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.len() > MAX_JSON_BODY {
        return Err(ApiError::BadRequest(format!(
            "the JSON body is {} bytes; the fields of a request fit in {MAX_JSON_BODY} (send documents as multipart parts)",
            body.len()
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// Reads `{"data": {...}}` into `T` (`document::typed`: lenient types,
/// one entry per bad field).
pub(crate) fn parse_data<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let (mut data, _) = document::envelope(body, what)?;
    document::typed(&mut data, what)
}

type Outcome = (Result<Answer, ApiError>, Option<String>);

/// The route table. Long on purpose: one arm per path and method, so the
/// API's map reads in one place beside docs/openapi.json (a test checks
/// the two agree).
fn route(
    ctx: &Ctx,
    rq: &Request,
    body: &mut dyn FnMut(usize) -> Result<Vec<u8>, ApiError>,
) -> Outcome {
    let path: Vec<&str> = rq.path.iter().map(String::as_str).collect();
    let method = rq.method.as_str();
    match path.as_slice() {
        ["healthz"] => (
            match method {
                "GET" | "HEAD" => Ok((&serde_json::json!({"healthy": true})).into()),
                _ => Err(not_allowed(method)),
            },
            None,
        ),
        ["metrics"] => (
            match method {
                "GET" => metrics(ctx),
                _ => Err(not_allowed(method)),
            },
            None,
        ),
        ["v2", "api_auth"] => match method {
            "PUT" | "POST" => match api_auth(ctx, body) {
                Ok((answer, token)) => (Ok(answer), Some(token)),
                Err(e) => (Err(e), None),
            },
            _ => (Err(not_allowed(method)), None),
        },
        ["v2", "user_auth"] => match method {
            "PUT" => match user_auth(ctx, body) {
                Ok((answer, token)) => (Ok(answer), Some(token)),
                Err(e) => (Err(e), None),
            },
            _ => (Err(not_allowed(method)), None),
        },
        ["v2", "openapi"] => (
            match method {
                "GET" => Ok(Answer::Raw(Reply::bytes(
                    "application/json",
                    OPENAPI.as_bytes().to_vec(),
                ))),
                _ => Err(not_allowed(method)),
            },
            None,
        ),
        ["v2", "status"] => match authenticate(ctx, rq) {
            Ok((caller, token)) => (
                match method {
                    "GET" => status::status(ctx, &caller),
                    _ => Err(not_allowed(method)),
                },
                Some(token),
            ),
            Err(e) => (Err(e), None),
        },
        ["v2", "events"] => (Err(not_allowed(method)), None),
        ["v2", "lines", name] => {
            let (caller, token) = match authenticate(ctx, rq) {
                Ok(c) => c,
                Err(e) => return (Err(e), None),
            };
            let outcome = match (method, caller.is_admin) {
                ("PUT", true) => body(64 * 1024).and_then(|b| status::line_action(ctx, name, &b)),
                ("PUT", false) => Err(ApiError::Forbidden),
                _ => Err(not_allowed(method)),
            };
            (outcome, Some(token))
        }
        ["v2", "system_configs", "fax"] => {
            let (caller, token) = match authenticate(ctx, rq) {
                Ok(c) => c,
                Err(e) => return (Err(e), None),
            };
            let token = Some(token);
            if !caller.is_admin {
                return (Err(ApiError::Forbidden), token);
            }
            let outcome = match method {
                "GET" => settings::read(ctx, None),
                "POST" | "PATCH" => body(64 * 1024).and_then(|b| settings::write(ctx, None, &b)),
                _ => Err(not_allowed(method)),
            };
            (outcome, token)
        }
        ["v2", "accounts"] => {
            // Managing accounts is the admin account's (Kazoo: a reseller's).
            let (caller, token) = match authenticate(ctx, rq) {
                Ok(c) => c,
                Err(e) => return (Err(e), None),
            };
            let outcome = match (method, caller.is_admin) {
                ("GET" | "PUT", false) => Err(ApiError::Forbidden),
                ("GET", true) => {
                    Paging::from_query(&rq.query).and_then(|p| accounts::list_accounts(ctx, &p))
                }
                ("PUT", true) => {
                    body(64 * 1024).and_then(|b| accounts::create_account(ctx, &caller.id, &b))
                }
                _ => Err(not_allowed(method)),
            };
            (outcome, Some(token))
        }
        ["v2", "accounts", account] if rq.method == "DELETE" => {
            let (caller, token) = match authenticate(ctx, rq) {
                Ok(c) => c,
                Err(e) => return (Err(e), None),
            };
            let outcome = if caller.is_admin {
                reach(ctx, &caller, account).and_then(|a| accounts::delete_account(ctx, &a))
            } else {
                Err(ApiError::Forbidden)
            };
            (outcome, Some(token))
        }
        ["v2", "accounts", account, rest @ ..] => {
            let (caller, token) = match authenticate(ctx, rq) {
                Ok(c) => c,
                Err(e) => return (Err(e), None),
            };
            let token = Some(token);
            match reach(ctx, &caller, account) {
                Ok(account) => {
                    let outcome = account_route(ctx, rq, &caller, &account, rest, body);
                    if let (Ok(answer), Some(token)) = (&outcome, &token) {
                        audit::record(ctx, rq, token, &account, rest, answer);
                    }
                    (outcome, token)
                }
                Err(e) => (Err(e), token),
            }
        }
        _ => (Err(ApiError::NoRoute), None),
    }
}

/// A token's subject for a user's login (`user_auth`); an API key's is the
/// key's hash (hex, so the two never meet).
const USER_SUBJECT: &str = "user-";

/// The caller's account and token: a live token whose key (or user) is
/// still valid.
fn authenticate(ctx: &Ctx, rq: &Request) -> Result<(Account, String), ApiError> {
    // Kazoo also takes the token from the query string: browsers'
    // EventSource cannot set headers.
    let token = auth::token_of(|n| rq.header(n))
        .or_else(|| rq.query("auth_token"))
        .ok_or(ApiError::Unauthorized)?;
    let subject = ctx.sessions.key_hash(token).ok_or(ApiError::Unauthorized)?;
    // A revoked key, a deleted user (or a deleted account) ends its tokens
    // at once.
    let account = match subject.strip_prefix(USER_SUBJECT) {
        Some(id) => match ctx.store.user(&crate::model::UserId(id.to_owned())) {
            Ok(u) => ctx.store.account(&u.account_id).ok(),
            Err(_) => None,
        },
        None => ctx.store.account_for_api_key_hash(&subject)?,
    };
    match account {
        Some(account) => Ok((account, token.to_owned())),
        None => Err(ApiError::Unauthorized),
    }
}

/// The account a path names, if the caller may reach it: its own, or any
/// account for the box's admin account. Another account is "not found"
/// (docs/architecture.md, invariant 5).
fn reach(ctx: &Ctx, caller: &Account, account: &str) -> Result<AccountId, ApiError> {
    let not_found = || ApiError::NotFound {
        message: format!("there is no account {account}"),
        cause: account.to_owned(),
    };
    if caller.id.as_str() == account {
        return Ok(caller.id.clone());
    }
    if caller.is_admin {
        return match ctx.store.account(&AccountId(account.to_owned())) {
            Ok(a) => Ok(a.id),
            Err(crate::store::StoreError::NotFound { .. }) => Err(not_found()),
            Err(e) => Err(e.into()),
        };
    }
    Err(not_found())
}

/// `GET /metrics` in Prometheus' text format: what the store holds and
/// the replies this API sent since it started.
fn metrics(ctx: &Ctx) -> Result<Answer, ApiError> {
    use std::fmt::Write;
    let tally = ctx.store.tally()?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# HELP faxbox_faxes Faxes in the store by folder and job status.\n# TYPE faxbox_faxes gauge"
    );
    for (folder, status, n) in &tally.faxes {
        let status = status.as_deref().unwrap_or("received");
        let _ = writeln!(
            text,
            "faxbox_faxes{{folder=\"{folder}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        text,
        "# HELP faxbox_attempts_total Attempts by outcome and result code.\n# TYPE faxbox_attempts_total counter"
    );
    for (outcome, code, n) in &tally.attempts {
        let outcome = outcome.as_deref().unwrap_or("in_progress");
        let code = code.map(|c| c.to_string()).unwrap_or_default();
        let _ = writeln!(
            text,
            "faxbox_attempts_total{{outcome=\"{outcome}\",result_code=\"{code}\"}} {n}"
        );
    }
    let _ = writeln!(
        text,
        "# HELP faxbox_pages_sent_total Pages sent by all attempts.\n# TYPE faxbox_pages_sent_total counter\nfaxbox_pages_sent_total {}",
        tally.pages_sent
    );
    let _ = writeln!(
        text,
        "# HELP faxbox_documents_converted_total Documents converted into fax images since start (a fax to several numbers counts once).\n# TYPE faxbox_documents_converted_total counter\nfaxbox_documents_converted_total {}",
        crate::documents::conversions()
    );
    let purged = ctx.store.purge_totals()?;
    let _ = writeln!(
        text,
        "# HELP faxbox_purged_total What the retention purge removed: faxes' documents, whole faxes, sent mails, audit entries.\n# TYPE faxbox_purged_total counter\n\
         faxbox_purged_total{{what=\"documents\"}} {}\nfaxbox_purged_total{{what=\"records\"}} {}\nfaxbox_purged_total{{what=\"mails\"}} {}\n\
         faxbox_purged_total{{what=\"audit_entries\"}} {}",
        purged.documents, purged.records, purged.mails, purged.audit_entries
    );
    let _ = writeln!(
        text,
        "# HELP faxbox_api_replies_total API replies since start, by HTTP status.\n# TYPE faxbox_api_replies_total counter"
    );
    for (status, n) in ctx.replies.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(text, "faxbox_api_replies_total{{code=\"{status}\"}} {n}");
    }
    Ok(Answer::Raw(Reply::bytes(
        "text/plain; version=0.0.4",
        text.into_bytes(),
    )))
}

fn not_allowed(method: &str) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_owned(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiAuth {
    api_key: String,
}

/// What a login answers about the account (docs/kazoo.md 2.7 items 1
/// and 2): Faxbox has no apps and no resellers but the
/// box's admin account.
fn login_data(
    ctx: &Ctx,
    account: &Account,
    owner: Option<&crate::model::UserId>,
) -> serde_json::Value {
    let reseller = ctx
        .store
        .accounts()
        .ok()
        .and_then(|all| all.into_iter().find(|a| a.is_admin))
        .map(|a| a.id);
    let language = ctx
        .store
        .account_doc(&account.id)
        .ok()
        .and_then(|(_, doc)| doc.get("language").cloned())
        .unwrap_or_else(|| serde_json::json!("en-us"));
    let mut data = serde_json::json!({
        "account_id": account.id,
        "account_name": account.name,
        "is_admin": account.is_admin,
        "is_reseller": account.is_admin,
        "reseller_id": reseller,
        "language": language,
        "apps": [],
    });
    if let Some(owner) = owner {
        data["owner_id"] = serde_json::json!(owner);
    }
    data
}

#[derive(serde::Deserialize)]
struct UserAuth {
    credentials: String,
    account_name: Option<String>,
    account_realm: Option<String>,
    phone_number: Option<String>,
    method: Option<String>,
}

/// `PUT /v2/user_auth` (docs/kazoo.md 2.7 item 2): a token for the user
/// whose md5("username:password") is `credentials`, in the account named
/// by `account_name`, `account_realm` or `phone_number` (a number of one
/// of its faxboxes), or anywhere on the box when none is given.
fn user_auth(
    ctx: &Ctx,
    body: &mut dyn FnMut(usize) -> Result<Vec<u8>, ApiError>,
) -> Result<(Answer, String), ApiError> {
    let body = body(64 * 1024)?;
    let input: UserAuth = parse_data(&body, "user_auth request")?;
    if let Some(method) = input.method.as_deref().filter(|m| *m != "md5") {
        return Err(crate::model::FieldError::new(
            "method",
            "enum",
            format!("the box checks md5 credentials; {method:?} is not supported"),
        )
        .with(Some(serde_json::json!(["md5"])), method)
        .into());
    }
    let accounts: Option<Vec<AccountId>> = if let Some(name) = &input.account_name {
        Some(
            ctx.store
                .accounts()?
                .into_iter()
                .filter(|a| a.name.eq_ignore_ascii_case(name.trim()))
                .map(|a| a.id)
                .collect(),
        )
    } else if let Some(realm) = &input.account_realm {
        Some(
            ctx.store
                .account_by_realm(&realm.trim().to_ascii_lowercase())?
                .map(|a| a.id)
                .into_iter()
                .collect(),
        )
    } else if let Some(number) = &input.phone_number {
        Some(
            ctx.store
                .faxbox_by_number(number)?
                .map(|f| f.account_id)
                .into_iter()
                .collect(),
        )
    } else {
        None
    };
    let credentials = input.credentials.trim();
    let mut users = match &accounts {
        Some(ids) => {
            let mut found = Vec::new();
            for id in ids {
                found.extend(ctx.store.users_by_credentials(Some(id), credentials)?);
            }
            found
        }
        None => ctx.store.users_by_credentials(None, credentials)?,
    };
    // Two users with the same login in different accounts: the client
    // must say which account.
    let user = match (users.pop(), users.is_empty()) {
        (Some(u), true) => u,
        _ => return Err(ApiError::BadCredentials),
    };
    let account = ctx.store.account(&user.account_id)?;
    let data = login_data(ctx, &account, Some(&user.id));
    let token = ctx.sessions.issue(&format!("{USER_SUBJECT}{}", user.id));
    Ok((Answer::Json(Success::ok(&data).with_status(201)), token))
}

fn api_auth(
    ctx: &Ctx,
    body: &mut dyn FnMut(usize) -> Result<Vec<u8>, ApiError>,
) -> Result<(Answer, String), ApiError> {
    let body = body(64 * 1024)?;
    let input: ApiAuth = parse_data(&body, "api_auth request")?;
    let key = input.api_key.trim();
    // An API key is 64 characters (api_auth.json, docs/kazoo.md 2.7 item 1).
    let length = key.chars().count();
    if length != 64 {
        let rule = if length < 64 {
            "minLength"
        } else {
            "maxLength"
        };
        return Err(crate::model::FieldError::new(
            "api_key",
            rule,
            format!("an API key has 64 characters; this one has {length}"),
        )
        .with(Some(64.into()), key)
        .into());
    }
    let account = ctx
        .store
        .account_for_api_key(key)?
        .ok_or(ApiError::UnknownApiKey)?;
    let data = login_data(ctx, &account, None);
    let token = ctx.sessions.issue(&crate::store::hash_api_key(key));
    Ok((Answer::Json(Success::ok(&data).with_status(201)), token))
}

fn account_route(
    ctx: &Ctx,
    rq: &Request,
    caller: &Account,
    account: &AccountId,
    rest: &[&str],
    body: &mut dyn FnMut(usize) -> Result<Vec<u8>, ApiError>,
) -> Result<Answer, ApiError> {
    let method = rq.method.as_str();
    let max = ctx.options.max_body;
    let paging = || Paging::from_query(&rq.query);
    match (method, rest) {
        ("GET", []) => accounts::account(ctx, account),
        // A child account (docs/kazoo.md 2.7 item 3); managing accounts is the admin
        // account's (Kazoo: a reseller's).
        ("PUT", []) if caller.is_admin => accounts::create_account(ctx, account, &body(64 * 1024)?),
        ("PUT", []) => Err(ApiError::Forbidden),
        ("POST", []) => {
            accounts::update_account(ctx, account, &body(64 * 1024)?, UpdateMode::Replace)
        }
        ("PATCH", []) => {
            accounts::update_account(ctx, account, &body(64 * 1024)?, UpdateMode::Merge)
        }
        ("GET", ["children"]) => accounts::children(ctx, account, &paging()?),
        ("GET", ["api_key"]) => accounts::api_key(ctx, account),
        ("PUT", ["api_key"]) => accounts::new_api_key(ctx, account),
        ("GET", ["users"]) => accounts::users(ctx, account, &paging()?),
        ("PUT", ["users"]) => accounts::create_user(ctx, account, &body(64 * 1024)?),
        ("GET", ["users", id]) => accounts::user(ctx, account, id),
        ("POST", ["users", id]) => {
            accounts::update_user(ctx, account, id, &body(64 * 1024)?, UpdateMode::Replace)
        }
        ("PATCH", ["users", id]) => {
            accounts::update_user(ctx, account, id, &body(64 * 1024)?, UpdateMode::Merge)
        }
        ("DELETE", ["users", id]) => accounts::delete_user(ctx, account, id),
        ("GET", ["api_keys"]) => accounts::api_keys(ctx, account),
        ("PUT", ["api_keys"]) => accounts::create_api_key(ctx, account, &body(64 * 1024)?),
        ("DELETE", ["api_keys", id]) => accounts::revoke_api_key(ctx, account, id),
        (_, [] | ["users" | "api_keys" | "children" | "api_key"] | ["users" | "api_keys", _]) => {
            Err(not_allowed(method))
        }
        ("GET", ["faxboxes"]) => faxboxes::list(ctx, account, &Paging::from_query(&rq.query)?),
        ("PUT", ["faxboxes"]) => faxboxes::create(ctx, account, &body(max)?),
        ("GET", ["faxboxes", id]) => faxboxes::get(ctx, account, id),
        ("POST", ["faxboxes", id]) => {
            faxboxes::update(ctx, account, id, &body(max)?, UpdateMode::Replace)
        }
        ("PATCH", ["faxboxes", id]) => {
            faxboxes::update(ctx, account, id, &body(max)?, UpdateMode::Merge)
        }
        ("DELETE", ["faxboxes", id]) => faxboxes::delete(ctx, account, id),
        ("GET", ["faxboxes", id, "callbacks"]) => faxboxes::callbacks(ctx, account, id),
        ("PUT", ["faxboxes", id, "callback_key"]) => {
            faxboxes::rotate_callback_key(ctx, account, id)
        }
        ("GET", ["audit"]) => audit::list(ctx, account, rq),
        (_, ["audit"]) => Err(not_allowed(method)),
        ("GET", ["configs", "fax"]) => settings::read(ctx, Some(account)),
        ("POST" | "PATCH", ["configs", "fax"]) => {
            settings::write(ctx, Some(account), &body(64 * 1024)?)
        }
        (_, ["configs", "fax"]) => Err(not_allowed(method)),
        (_, ["faxboxes", id, "faxes", tail @ ..]) => {
            // Kazoo's faxbox-scoped faxes (docs/kazoo.md 2): fields default
            // from the faxbox and listings show only its faxes.
            let faxbox = ctx
                .store
                .faxbox_in(account, &crate::model::FaxboxId((*id).to_owned()))?;
            let scope = faxes::Scope {
                account,
                faxbox: Some(faxbox),
            };
            fax_route(ctx, rq, &scope, tail, body)
        }
        (_, ["faxes", tail @ ..]) => {
            let scope = faxes::Scope {
                account,
                faxbox: None,
            };
            fax_route(ctx, rq, &scope, tail, body)
        }
        (_, ["faxboxes"] | ["faxboxes", _]) => Err(not_allowed(method)),
        _ => Err(ApiError::NoRoute),
    }
}

/// The fax endpoints below `/faxes` (docs/kazoo.md 2.2).
fn fax_route(
    ctx: &Ctx,
    rq: &Request,
    scope: &faxes::Scope<'_>,
    rest: &[&str],
    body: &mut dyn FnMut(usize) -> Result<Vec<u8>, ApiError>,
) -> Result<Answer, ApiError> {
    let method = rq.method.as_str();
    let max = ctx.options.max_body;
    let folder = |name: &str| match name {
        "outbox" | "outgoing" => Folder::Outbox,
        _ => Folder::Inbox,
    };
    let listing = |l: Listing| -> Result<Answer, ApiError> {
        let page = faxes::Page::from_query(|k| rq.query(k))?;
        faxes::list(ctx, scope, l, &page, &Paging::from_query(&rq.query)?)
    };
    match (method, rest) {
        ("PUT", [] | ["outgoing"]) => faxes::create(
            ctx,
            scope,
            rq.header("content-type"),
            &body(max)?,
            &rq.query,
        ),
        ("GET", ["smtplog"]) => smtplog::list(
            ctx,
            scope.account,
            scope.faxbox.as_ref().map(|f| &f.id),
            &Paging::from_query(&rq.query)?,
        ),
        ("GET", ["smtplog", id]) => smtplog::get(ctx, scope.account, id),
        ("GET", ["batches", id]) => batches::get(ctx, scope, id),
        (_, ["batches", _]) => Err(not_allowed(method)),
        (_, ["batches", ..]) => Err(ApiError::NoRoute),
        (_, ["smtplog", ..]) => Err(ApiError::NoRoute),
        ("GET", ["outgoing"]) => listing(Listing::Outgoing),
        ("GET", ["outbox"]) => listing(Listing::Outbox),
        ("GET", ["inbox"]) => listing(Listing::Inbox),
        ("GET", [f @ ("outgoing" | "outbox" | "inbox"), id]) => {
            faxes::get(ctx, scope, folder(f), id)
        }
        ("PUT", ["outgoing", id]) => faxes::control(ctx, scope, id, &body(64 * 1024)?),
        ("PUT", [f @ ("outbox" | "inbox"), id]) => {
            faxes::action(ctx, scope, folder(f), id, &body(64 * 1024)?)
        }
        ("DELETE", [f @ ("outgoing" | "outbox" | "inbox"), id]) => {
            faxes::delete(ctx, scope, folder(f), id)
        }
        ("DELETE", [f @ ("outbox" | "inbox"), id, "attachment"]) => {
            faxes::delete_attachment(ctx, scope, folder(f), id)
        }
        ("GET", [f @ ("outgoing" | "outbox" | "inbox"), id, "attachment"]) => faxes::attachment(
            ctx,
            scope,
            folder(f),
            id,
            rq.query("format"),
            rq.query("disposition"),
        ),
        (_, [] | ["outgoing" | "outbox" | "inbox"] | [_, _] | [_, _, "attachment"]) => {
            Err(not_allowed(method))
        }
        _ => Err(ApiError::NoRoute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_what_it_cannot_decode() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%2B1555"), "+1555");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: Option<String>,
        retries: Option<i64>,
    }

    #[test]
    fn every_bad_field_gets_its_own_entry() {
        let err = parse_data::<Sample>(
            br#"{"data":{"name":"ok","retries":"three","colour":"red"}}"#,
            "faxbox",
        )
        .unwrap_err();
        let ApiError::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        let mut fields: Vec<(&str, &str)> =
            errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        fields.sort();
        assert_eq!(
            fields,
            [("colour", "additionalProperties"), ("retries", "type")]
        );
        assert!(matches!(
            parse_data::<Sample>(b"{not json", "faxbox"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_data::<Sample>(br#"{"name":"x"}"#, "faxbox"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
