//! `GET /v2/status` as the dashboard reads it (the shape is documented in
//! `api::status` and `docs/openapi.json`). Fields the dashboard does not
//! show are ignored, so a newer box still draws.

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Snapshot {
    /// When the box took it (Gregorian seconds): countdowns are relative
    /// to this, not to the clock of the terminal.
    pub generated: i64,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub totals: Totals,
    #[serde(default)]
    pub intake: Intake,
    /// The latest faxes in and out, newest first.
    #[serde(default)]
    pub recent: Vec<Recent>,
}

/// Faxes accepted today by each intake.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Intake {
    /// Counted from (Gregorian seconds): midnight, or the box's start.
    pub since: i64,
    pub api: u64,
    pub smtp: u64,
    /// Print jobs' faxes (IPP FaxOut printers).
    pub ipp: u64,
}

/// A row of the job list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Recent {
    pub fax_id: String,
    pub account_id: String,
    /// `outbox` (sent or to send) or `inbox` (received).
    pub folder: String,
    /// The job's status, or `received`.
    pub status: String,
    /// The far end: the number dialled or the caller.
    pub number: String,
    pub pages: Option<u32>,
    pub attempts: u32,
    pub retries: u32,
    pub document: Option<String>,
    pub last_result: Option<String>,
    /// Gregorian seconds.
    pub created: i64,
    pub modified: i64,
}

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
        self.fax_id.to_lowercase().contains(&text)
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

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Line {
    pub name: String,
    pub capacity: u32,
    /// `up`, `paused` or `down`.
    pub state: String,
    pub reason: Option<String>,
    #[serde(default)]
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Channel {
    pub channel: u32,
    /// `idle`, `dialling`, `training`, `sending`, `receiving`, `paused`,
    /// `down` or `busy`.
    pub state: String,
    /// The state in words, e.g. `sending page 2 of 5 at 14400 bps, ECM,
    /// to +1 555 0100`.
    pub text: String,
    pub fax_id: Option<String>,
    pub account_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub account_name: String,
    pub pending: u64,
    pub active: u64,
    #[serde(default)]
    pub waiting_retry: Vec<Retry>,
    pub waiting_retry_total: u64,
    pub completed_today: u64,
    pub failed_today: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Retry {
    pub fax_id: String,
    pub to_number: String,
    pub attempts: u32,
    pub retries: u32,
    /// Gregorian seconds.
    pub next_attempt: i64,
    pub last_cause: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Totals {
    #[serde(default)]
    pub completed_today: u64,
    #[serde(default)]
    pub failed_today: u64,
    #[serde(default)]
    pub pages_sent_today: u64,
    #[serde(default)]
    pub received_today: u64,
    #[serde(default)]
    pub pages_received_today: u64,
    #[serde(default)]
    pub api_accepted: u64,
}
