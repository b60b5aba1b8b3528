//! A client of the box's HTTP API (`api`), for `faxbox send`, the dashboard
//! and the tests: authenticate with an API key, upload a fax as
//! `multipart/mixed`, follow its status, read `/v2/status` as the status
//! contract's type. It is not part of the server, so it lives beside `api`
//! rather than in it.
//!
//! Errors are turned back into the sentences the server wrote for people
//! (`error_text`), never into a dump of the JSON envelope.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A reply as received: status, headers (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Plain HTTP over ureq: any status is a response, not an error.
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Http::with_timeout(Duration::from_secs(300))
    }

    /// A client whose every request ends within `timeout`: the dashboard
    /// must never wait long on a box that is going away (issue 19).
    pub fn with_timeout(timeout: Duration) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Http { agent }
    }

    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let sent = match body {
            Some(body) => self
                .agent
                .run(builder.body(body).map_err(|e| e.to_string())?),
            None => self.agent.run(builder.body(()).map_err(|e| e.to_string())?),
        };
        let mut response = sent.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

/// The sentences of a Kazoo error envelope: its message, then each
/// per-field message or the `data.message`.
pub fn error_text(response: &RawResponse) -> String {
    let body = response.json();
    let data = &body["data"];
    // The words for a person; `message` is Kazoo's error atom
    // (`invalid_credentials`) or "validation error".
    if let Some(m) = data["message"].as_str() {
        return m.to_owned();
    }
    let mut text = body["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP status {}", response.status));
    if let Some(fields) = data.as_object() {
        for (field, codes) in fields {
            for entry in codes.as_object().into_iter().flat_map(|c| c.values()) {
                if let Some(m) = entry["message"].as_str() {
                    text.push_str(&format!("\n  {field}: {m}"));
                }
            }
        }
    }
    text
}

/// A file to fax: its name, media type and bytes.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Document {
    /// Reads a file; its media type comes from the extension (the server
    /// also looks at the bytes).
    pub fn read(path: &std::path::Path) -> anyhow::Result<Document> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let content_type = match ext.as_str() {
            "pdf" => "application/pdf",
            "tif" | "tiff" => "image/tiff",
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "txt" => "text/plain",
            "pwg" => "image/pwg-raster",
            "urf" => "image/urf",
            _ => "application/octet-stream",
        };
        Ok(Document {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "document".into()),
            content_type: content_type.into(),
            bytes,
        })
    }
}

/// A `multipart/mixed` body: the `{"data": ...}` part, then the documents
/// in order. Returns the Content-Type (with its boundary) and the body.
pub fn multipart_body(data: &Value, documents: &[Document]) -> (String, Vec<u8>) {
    let boundary = format!("faxbox-{}", crate::model::new_id());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(json!({ "data": data }).to_string().as_bytes());
    for doc in documents {
        // Quotes and line breaks cannot be in a quoted header parameter.
        let name: String = doc
            .name
            .chars()
            .map(|c| if c == '"' || c.is_control() { '_' } else { c })
            .collect();
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n",
                doc.content_type
            )
            .as_bytes(),
        );
        body.extend_from_slice(&doc.bytes);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/mixed; boundary={boundary}"), body)
}

/// An authenticated client of one account.
pub struct Session {
    http: Http,
    base: String,
    token: String,
    pub account_id: String,
}

impl Session {
    /// `PUT /v2/api_auth` with the key; `base` is like `http://127.0.0.1:8000`.
    pub fn login(base: &str, api_key: &str) -> anyhow::Result<Session> {
        Session::login_with(Http::new(), base, api_key)
    }

    /// [`login`](Self::login) with a client of one's own (a short timeout).
    pub fn login_with(http: Http, base: &str, api_key: &str) -> anyhow::Result<Session> {
        let base = base
            .trim_end_matches('/')
            .trim_end_matches("/v2")
            .to_owned();
        let body = json!({ "data": { "api_key": api_key } }).to_string();
        let r = http
            .request(
                "PUT",
                &format!("{base}/v2/api_auth"),
                &[("Content-Type", "application/json")],
                Some(body.into_bytes()),
            )
            .map_err(|e| anyhow::anyhow!("cannot reach the fax box API at {base}: {e}"))?;
        if r.status != 201 && r.status != 200 {
            bail!("the fax box refused the API key: {}", error_text(&r));
        }
        let reply = r.json();
        let (Some(token), Some(account)) = (
            reply["auth_token"].as_str(),
            reply["data"]["account_id"].as_str(),
        ) else {
            bail!("{base} did not answer like a fax box API");
        };
        Ok(Session {
            http,
            token: token.to_owned(),
            account_id: account.to_owned(),
            base,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<RawResponse> {
        let url = format!("{}/v2/accounts/{}{path}", self.base, self.account_id);
        let mut headers = vec![("X-Auth-Token", self.token.as_str())];
        let body = body.map(|(content_type, bytes)| {
            headers.push(("Content-Type", content_type));
            bytes
        });
        self.http
            .request(method, &url, &headers, body)
            .map_err(|e| anyhow::anyhow!("cannot reach the fax box API: {e}"))
    }

    /// Queues a fax; returns the job as the server shows it.
    pub fn send(&self, data: &Value, documents: &[Document]) -> anyhow::Result<Value> {
        let (content_type, body) = multipart_body(data, documents);
        let r = self.call("PUT", "/faxes/outgoing", Some((&content_type, body)))?;
        if !matches!(r.status, 201 | 202) {
            bail!("the fax was not accepted: {}", error_text(&r));
        }
        Ok(r.json()["data"].take())
    }

    /// `GET /v2/status`: the box's lines, queues and counts now.
    pub fn status(&self) -> anyhow::Result<crate::status::Status> {
        let url = format!("{}/v2/status", self.base);
        let r = self
            .http
            .request("GET", &url, &[("X-Auth-Token", self.token.as_str())], None)
            .map_err(|e| anyhow::anyhow!("cannot reach the fax box API: {e}"))?;
        if r.status != 200 {
            bail!("cannot read the status: {}", error_text(&r));
        }
        serde_json::from_value(r.json()["data"].take())
            .context("the fax box sent a status this program cannot read")
    }

    /// The API's base URL, like `http://127.0.0.1:8000`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session's auth token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `GET` of a path under the API's root (`/v2/...`); the reply's
    /// `data`, or the server's words for the error.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .request("GET", &url, &[("X-Auth-Token", self.token.as_str())], None)
            .map_err(|e| anyhow::anyhow!("cannot reach the fax box API: {e}"))?;
        if r.status != 200 {
            bail!("{}", error_text(&r));
        }
        Ok(r.json()["data"].take())
    }

    /// `PUT` of a JSON body to a path under the API's root (`/v2/...`);
    /// the reply's `data`, or the server's words for the error.
    pub fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .request(
                "PUT",
                &url,
                &[
                    ("X-Auth-Token", self.token.as_str()),
                    ("Content-Type", "application/json"),
                ],
                Some(body.to_string().into_bytes()),
            )
            .map_err(|e| anyhow::anyhow!("cannot reach the fax box API: {e}"))?;
        if !(200..300).contains(&r.status) {
            bail!("{}", error_text(&r));
        }
        Ok(r.json()["data"].take())
    }

    /// The job `id` now.
    pub fn outgoing(&self, id: &str) -> anyhow::Result<Value> {
        let r = self.call("GET", &format!("/faxes/outgoing/{id}"), None)?;
        if r.status != 200 {
            bail!("cannot read fax {id}: {}", error_text(&r));
        }
        Ok(r.json()["data"].take())
    }
}

/// Follows a job until it ends, calling `progress` with a line each time its
/// state changes; returns the final job.
pub fn follow(
    session: &Session,
    id: &str,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Value> {
    let mut last = String::new();
    loop {
        let job = session.outgoing(id)?;
        let status = job["status"].as_str().unwrap_or("unknown").to_owned();
        let line = format!(
            "{status} (attempt {} of {})",
            job["attempts"],
            job["retries"].as_u64().unwrap_or(1).max(1)
        );
        if line != last {
            progress(&line);
            last = line;
        }
        if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
            return Ok(job);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
