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
