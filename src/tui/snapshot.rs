//! What the dashboard reads from the box. The status is the server's own
//! type (`crate::status::Status`, from `GET /v2/status`), so the two
//! cannot disagree; here are what the dashboard adds to it (the job-list
//! filter) and the fax detail it reads from the fax's own route. Fields
//! the dashboard does not show are ignored, so a newer box still draws.

use serde::Deserialize;

use crate::status::Recent;

// Methods of the status contract's job-list row that only the dashboard
// uses, kept beside the dashboard.
impl Recent {
    /// Whether the job-list filter `text` picks this fax: a piece of its
    /// id, its status, or its number (digits alone match however the
    /// number is written).
    pub fn matches(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        if text.is_empty() {
            return true;
        }
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        self.fax_id.as_str().to_lowercase().contains(&text)
            || self.status.to_lowercase().contains(&text)
            || self.number.to_lowercase().contains(&text)
            || (text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
                && !digits(&text).is_empty()
                && digits(&self.number).contains(&digits(&text)))
    }

    /// The API folder that holds it now (`outgoing` until it ends).
    pub fn api_folder(&self) -> &'static str {
        match (self.folder.as_str(), self.status.as_str()) {
            ("inbox", _) => "inbox",
            (_, "completed" | "failed" | "cancelled") => "outbox",
            _ => "outgoing",
        }
    }
}

/// One fax as `GET /v2/accounts/{account}/faxes/{folder}/{id}` shows it,
/// for the detail view.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FaxDetail {
    pub id: String,
    pub folder: String,
    pub status: Option<String>,
    pub to_number: String,
    pub from_number: Option<String>,
    pub pages: Option<u32>,
    pub attempts: u32,
    pub retries: u32,
    pub error: Option<String>,
    pub created: i64,
    pub modified: i64,
    pub history: Vec<AttemptDetail>,
    pub rx_result: Option<RxDetail>,
    /// The batch of a fax sent to several numbers at once (issue 22).
    pub batch_id: Option<String>,
}

/// One attempt of a sent fax.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AttemptDetail {
    pub attempt: u32,
    pub line: String,
    pub started: i64,
    pub ended: Option<i64>,
    pub success: bool,
    pub result_code: Option<i64>,
    pub result_text: Option<String>,
    pub hangup_cause: Option<String>,
    pub pages_sent: u32,
    pub fax_speed: Option<u32>,
    pub fax_error_correction: Option<bool>,
    pub fax_receiver_id: Option<String>,
}

/// How a reception went.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RxDetail {
    pub success: bool,
    pub pages: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    pub remote_station_id: String,
    pub result_code: i64,
    pub result_text: String,
    pub duration_s: f64,
}
