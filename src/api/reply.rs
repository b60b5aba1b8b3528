//! Replies: Kazoo's success envelope and its error shape, and the one
//! function that maps every error of the API to an HTTP reply (docs/style.md,
//! principle 5).

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::documents::DocumentError;
use crate::model::FieldError;
use crate::store::StoreError;

/// A reply before it meets the connection.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Raw bytes (an attachment download).
    pub fn bytes(content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: content_type.to_owned(),
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: String) -> Reply {
        self.headers.push((name.to_owned(), value));
        self
    }
}

/// A successful answer's data, wrapped in the envelope by `envelope`.
#[derive(Debug)]
pub struct Success {
    pub status: u16,
    pub data: Value,
    /// Envelope fields beside `data` (a listing's `next_start_key`, ...).
    pub extra: Map<String, Value>,
}

impl Success {
    pub fn ok<T: Serialize>(data: &T) -> Success {
        Success {
            status: 200,
            data: serde_json::to_value(data).expect("API views serialize"),
            extra: Map::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Success {
        self.status = status;
        self
    }
}

/// What an API call answers: data in Kazoo's envelope, or raw bytes.
#[derive(Debug)]
pub enum Answer {
    Json(Success),
    Raw(Reply),
}

impl<T: Serialize> From<&T> for Answer {
    fn from(data: &T) -> Answer {
        Answer::Json(Success::ok(data))
    }
}

/// Every way an API call fails, each mapped to one status and message in
/// `error_reply`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "no valid auth token: authenticate with PUT /v2/api_auth and send the token as X-Auth-Token"
    )]
    Unauthorized,
    #[error("the username, password or account is not right")]
    BadCredentials,
    #[error(
        "there is no such API key on this fax box; an administrator makes one with `faxbox apikey create`"
    )]
    UnknownApiKey,
    #[error("only the box's admin account may do this")]
    Forbidden,
    #[error("{message}")]
    NotFound { message: String, cause: String },
    #[error("there is no such endpoint")]
    NoRoute,
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
    #[error("validation error")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// 408: the body came too slowly, or the box was too busy with other
    /// uploads to take it in time.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    UnsupportedType(String),
    #[error("{0}")]
    Conflict(String),
    /// The box cannot take this now (it is stopping, or its store cannot
    /// write): the client tries again later.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn field(field: &str, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError::new(field, code, message)])
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError::Invalid(vec![e])
    }
}

/// The intake's refusals, as the API answers them.
impl From<crate::intake::Refusal> for ApiError {
    fn from(r: crate::intake::Refusal) -> ApiError {
        match r {
            // An API key uses only its own account's faxboxes, which the
            // path already looked up in the account: not reached today.
            crate::intake::Refusal::NotAllowed(_) => ApiError::Forbidden,
            crate::intake::Refusal::Document(e) => ApiError::Document(e),
            crate::intake::Refusal::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { kind, id } => ApiError::NotFound {
                message: format!("there is no {kind} {id} in this account"),
                cause: id,
            },
            StoreError::Invalid(f) => ApiError::Invalid(vec![f]),
            StoreError::IllegalTransition { .. } | StoreError::Conflict(_) => {
                ApiError::Conflict(e.to_string())
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the store cannot write; answering 503");
                ApiError::Unavailable(
                    "the fax box cannot store anything right now (its disk is full or failing); \
                     nothing was changed: try again in a minute, and tell its administrator if \
                     this persists"
                        .into(),
                )
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Kazoo's per-field validation shape: `{path: {rule: {message, target,
/// value}}}`, every error of the request (crossbar's `validation_errors`).
fn field_entries(errors: &[FieldError]) -> Value {
    let mut data = Map::new();
    for e in errors {
        let entry = data
            .entry(e.field.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(codes) = entry {
            let mut detail = Map::new();
            detail.insert("message".into(), Value::String(e.message.clone()));
            if let Some(target) = &e.target {
                detail.insert("target".into(), (**target).clone());
            }
            if let Some(value) = &e.value {
                detail.insert("value".into(), (**value).clone());
            }
            codes.insert(e.code.to_owned(), Value::Object(detail));
        }
    }
    Value::Object(data)
}

/// The envelope keys Kazoo puts on every reply beside `data`: which node
/// answered, its version, and when (ISO 8601, UTC).
fn stamp(body: &mut Value) {
    body["node"] = json!(NODE);
    body["version"] = json!(env!("CARGO_PKG_VERSION"));
    body["timestamp"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
}

/// The one node of a Faxbox "cluster".
const NODE: &str = "faxbox";

/// The one place an API error becomes an HTTP reply: Kazoo's error
/// envelope, with the error's atom in `message` (`invalid_credentials`,
/// `bad_identifier`, ...; "validation error" for field errors, as crossbar
/// writes them) and the words for a person in `data.message`.
pub fn error_reply(error: &ApiError, request_id: &str, auth_token: Option<&str>) -> Reply {
    let text = || json!({ "message": error.to_string() });
    let (status, message, data) = match error {
        ApiError::Unauthorized | ApiError::BadCredentials => (401, "invalid_credentials", text()),
        ApiError::UnknownApiKey => (404, "bad_identifier", text()),
        ApiError::NotFound { message, cause } => (
            404,
            "bad_identifier",
            json!({ "message": message, "cause": cause }),
        ),
        ApiError::NoRoute => (404, "not_found", text()),
        ApiError::Forbidden => (403, "forbidden", text()),
        ApiError::MethodNotAllowed { .. } => (405, "invalid_method", text()),
        ApiError::Invalid(errors) => (400, "validation error", field_entries(errors)),
        ApiError::BadRequest(text) => (400, "invalid_request", json!({ "message": text })),
        ApiError::Document(e) => (
            400,
            "validation error",
            json!({ "document": { "convert": { "message": e.to_string() } } }),
        ),
        ApiError::TooLarge { .. } => (413, "request_entity_too_large", text()),
        ApiError::Timeout(text) => (408, "request_timeout", json!({ "message": text })),
        ApiError::UnsupportedType(text) => {
            (415, "unsupported_media_type", json!({ "message": text }))
        }
        ApiError::Conflict(text) => (409, "datastore_conflict", json!({ "message": text })),
        ApiError::Unavailable(text) => (503, "datastore_fault", json!({ "message": text })),
        ApiError::Internal(detail) => {
            tracing::error!(request_id, "API request failed: {detail}");
            (
                500,
                "unspecified_fault",
                json!({
                    "message": format!(
                        "something went wrong on the fax box; its log has the details (request {request_id})"
                    )
                }),
            )
        }
    };
    let mut body = json!({
        "data": data,
        "error": status.to_string(),
        "message": message,
        "status": "error",
        "request_id": request_id,
        "auth_token": auth_token.unwrap_or_default(),
    });
    stamp(&mut body);
    let mut reply = json_reply(status, &body);
    if status == 401 {
        reply = reply.with_header("WWW-Authenticate", "X-Auth-Token".into());
    }
    if status == 503 {
        reply = reply.with_header("Retry-After", crate::gate::RETRY_AFTER_S.to_string());
    }
    reply
}

/// Kazoo's success envelope. `revision` is a digest of the data, so that a
/// client can tell whether anything changed (Kazoo uses the document
/// revision, or a digest for listings).
pub fn envelope(success: &Success, request_id: &str, auth_token: Option<&str>) -> Reply {
    let data_text = serde_json::to_vec(&success.data).expect("JSON values serialize");
    let revision = hex::encode(&Sha256::digest(&data_text)[..16]);
    let mut body = json!({
        "data": success.data,
        "status": "success",
        "request_id": request_id,
        "revision": revision,
    });
    if let Some(token) = auth_token {
        body["auth_token"] = Value::String(token.to_owned());
    }
    stamp(&mut body);
    for (k, v) in &success.extra {
        body[k] = v.clone();
    }
    json_reply(success.status, &body)
}

fn json_reply(status: u16, body: &Value) -> Reply {
    Reply {
        status,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: serde_json::to_vec(body).expect("JSON values serialize"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_use_kazoos_per_field_shape() {
        let reply = error_reply(
            &ApiError::Invalid(vec![
                FieldError::new("name", "required", "a faxbox needs a name"),
                FieldError::new("retries", "maximum", "too many"),
            ]),
            "r1",
            None,
        );
        assert_eq!(reply.status, 400);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["error"], "400");
        assert_eq!(body["message"], "validation error");
        assert_eq!(body["auth_token"], "");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            body["data"]["name"]["required"]["message"],
            "a faxbox needs a name"
        );
        assert_eq!(body["data"]["retries"]["maximum"]["message"], "too many");
        assert_eq!(body["request_id"], "r1");
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let cases: [(StoreError, u16); 3] = [
            (
                StoreError::NotFound {
                    kind: "faxbox",
                    id: "ab".into(),
                },
                404,
            ),
            (StoreError::Conflict("busy".into()), 409),
            (
                StoreError::Invalid(FieldError::new("to_number", "format", "bad")),
                400,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(error_reply(&e.into(), "r", None).status, status);
        }
    }

    #[test]
    fn revision_follows_the_data() {
        let a = envelope(&Success::ok(&json!({"x": 1})), "r", Some("t"));
        let b = envelope(&Success::ok(&json!({"x": 2})), "r", Some("t"));
        let (a, b): (Value, Value) = (
            serde_json::from_slice(&a.body).unwrap(),
            serde_json::from_slice(&b.body).unwrap(),
        );
        assert_ne!(a["revision"], b["revision"]);
        assert_eq!(a["auth_token"], "t");
        assert_eq!(a["status"], "success");
    }
}
