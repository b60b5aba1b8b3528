//! The status contract: what `GET /v2/status` and `GET /v2/events` carry,
//! as serde types. The API writes them (`api::status`, `api::events`); the
//! dashboard (`tui`) reads the same types, so the two cannot drift apart.
//! `tests/fixtures/status/*.shape` hold the wire shape of both, checked
//! against a real box (`tests/it/shapes.rs`).
//!
//! Times are Gregorian seconds like the rest of the API. `generated` is
//! the snapshot's own time, so a client can show "in 3 min" without a
//! clock of its own. A reader ignores fields it does not know, so a newer
//! box still draws on an older dashboard.
//!
//! Owns no behaviour beyond the shape: who sees what is decided by the
//! API, what lines do by the scheduler's line board.

use serde::{Deserialize, Serialize};

use crate::model::{AccountId, AttemptStage, FaxId, FaxboxId, JobStatus};

/// `GET /v2/status`: what the box is doing now. The admin account sees
/// every account, and the box-wide `intake` and `api` counts; any other
/// account sees its own queue and calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub generated: i64,
    /// The start of the box's local day, from which "today" counts.
    #[serde(default)]
    pub day_start: i64,
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// The same counts as `accounts`, over the accounts shown.
    #[serde(default)]
    pub totals: Totals,
    /// Admin only: faxes accepted today by each door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake: Option<IntakeToday>,
    /// The latest faxes in and out, newest first.
    #[serde(default)]
    pub recent: Vec<Recent>,
    /// Admin only: the requests the API served since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Requests>,
}

/// A line and its channels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub name: String,
    /// Channels it has when all of it is up; one for a line that is down.
    pub capacity: u32,
    /// `up`, `paused` or `down`.
    pub state: String,
    /// Why it is paused or down.
    pub reason: Option<String>,
    #[serde(default)]
    pub channels: Vec<Channel>,
}

/// One channel of a line, in the words of a fax machine's display.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// Counted from 1.
    pub channel: u32,
    /// `idle`, `ringing`, `dialling`, `training`, `sending`, `receiving`,
    /// `paused`, `down`, or `busy` (a call of another account, shown to an
    /// account token without its details).
    pub state: String,
    /// The state in words, e.g. `sending page 2 of 5 at 14400 bps, ECM,
    /// to +1 555 0100`.
    pub text: String,
    /// The call on it, when the caller may see it (its fields sit beside
    /// `state` on the wire, `direction` telling which kind it is).
    #[serde(flatten, default)]
    pub call: Option<Call>,
}

impl Channel {
    /// A channel with no call to show.
    pub fn free(state: &str, text: &str) -> Channel {
        Channel {
            channel: 0,
            state: state.to_owned(),
            text: text.to_owned(),
            call: None,
        }
    }

    /// The fax being sent on it: (account, fax).
    pub fn outbound_fax(&self) -> Option<(&AccountId, &FaxId)> {
        match &self.call {
            Some(Call::Outbound(c)) => Some((&c.account_id, &c.fax_id)),
            _ => None,
        }
    }
}

/// A call on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "direction", rename_all = "lowercase")]
pub enum Call {
    Outbound(Outbound),
    Inbound(Inbound),
}

/// A fax being sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub fax_id: FaxId,
    pub account_id: AccountId,
    pub to_number: String,
    pub attempt: u32,
    /// When the attempt started.
    pub since: i64,
    /// The page on the line while sending (the one after the last
    /// confirmed).
    pub page: Option<u32>,
    pub pages_sent: u32,
    pub pages: u32,
    pub bit_rate: Option<u32>,
    pub ecm: Option<bool>,
    /// The far end's ident (CSI), as it sent it.
    pub remote_station_id: Option<String>,
}

/// A fax being received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub call_id: String,
    pub account_id: AccountId,
    pub faxbox_id: FaxboxId,
    /// Empty when the caller's number is unknown.
    pub from_number: String,
    pub to_number: String,
    pub since: i64,
}

/// One account's queue and today's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: AccountId,
    pub account_name: String,
    /// Waiting for a line, those waiting to retry included.
    pub pending: u64,
    /// On a line now.
    pub active: u64,
    /// Waiting for their next attempt, soonest first (the list may be cut).
    #[serde(default)]
    pub waiting_retry: Vec<Retry>,
    /// How many wait to retry in all.
    pub waiting_retry_total: u64,
    pub completed_today: u64,
    pub failed_today: u64,
    #[serde(default)]
    pub pages_sent_today: u64,
    #[serde(default)]
    pub received_today: u64,
    #[serde(default)]
    pub pages_received_today: u64,
    /// Faxes the API accepted for it since the API started.
    #[serde(default)]
    pub api_accepted: u64,
}

/// A fax waiting for its next attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub fax_id: FaxId,
    pub to_number: String,
    pub attempts: u32,
    pub retries: u32,
    pub next_attempt: i64,
    /// What ended the last attempt, in words.
    pub last_cause: Option<String>,
}

/// The accounts' counts added up (`waiting_retry` is the total here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub pending: u64,
    pub active: u64,
    pub waiting_retry: u64,
    pub completed_today: u64,
    pub failed_today: u64,
    pub pages_sent_today: u64,
    pub received_today: u64,
    pub pages_received_today: u64,
    pub api_accepted: u64,
}

impl Totals {
    /// Adds the counts of `account`.
    pub fn add(&mut self, account: &Account) {
        self.pending += account.pending;
        self.active += account.active;
        self.waiting_retry += account.waiting_retry_total;
        self.completed_today += account.completed_today;
        self.failed_today += account.failed_today;
        self.pages_sent_today += account.pages_sent_today;
        self.received_today += account.received_today;
        self.pages_received_today += account.pages_received_today;
        self.api_accepted += account.api_accepted;
    }
}

/// Faxes accepted today by each door. Counted in memory: a restart counts
/// again from zero, and `since` says from when (midnight, or the start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeToday {
    pub since: i64,
    pub api: u64,
    pub smtp: u64,
    /// Print jobs' faxes (the IPP FaxOut printers).
    pub ipp: u64,
}

/// The API's requests served since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub since: i64,
    pub requests: u64,
}

/// A fax in the job list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    pub fax_id: FaxId,
    pub account_id: AccountId,
    /// `outbox` (sent or to send) or `inbox` (received).
    pub folder: String,
    /// The job's status, or `received`.
    pub status: String,
    /// The far end: the number dialled or the caller.
    pub number: String,
    pub pages: Option<u32>,
    pub attempts: u32,
    pub retries: u32,
    /// The first document's file name, as submitted.
    pub document: Option<String>,
    /// How the last attempt (or the reception) ended, in words.
    pub last_result: Option<String>,
    pub created: i64,
    pub modified: i64,
}

/// One message of `GET /v2/events`: its SSE `event:` name is the `event`
/// field of its JSON `data:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A job changed state.
    JobStatus {
        fax_id: FaxId,
        account_id: AccountId,
        status: Option<JobStatus>,
        attempts: u8,
        /// When a retry is planned: the delay the retry policy chose, in
        /// seconds (before any test time scaling).
        retry_in_s: Option<i64>,
        error: Option<String>,
    },
    /// A call made progress.
    Call {
        fax_id: FaxId,
        account_id: AccountId,
        line: String,
        attempt: u32,
        stage: AttemptStage,
        /// In words, Kazoo style: `Fax negotiated at 14400`, `Sent Page 2 of 5`.
        status: String,
    },
    /// The box is stopping; the stream ends after this.
    Shutdown { message: String },
    /// The listener fell behind and events were dropped: read the status
    /// again.
    Missed { message: String },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::JobStatus { .. } => "job_status",
            Event::Call { .. } => "call",
            Event::Shutdown { .. } => "shutdown",
            Event::Missed { .. } => "missed",
        }
    }

    /// The account the event concerns; `None` for one that concerns every
    /// listener.
    pub fn account(&self) -> Option<&AccountId> {
        match self {
            Event::JobStatus { account_id, .. } | Event::Call { account_id, .. } => {
                Some(account_id)
            }
            Event::Shutdown { .. } | Event::Missed { .. } => None,
        }
    }

    pub fn shutdown() -> Event {
        Event::Shutdown {
            message: "Faxbox is stopping".into(),
        }
    }

    pub fn missed() -> Event {
        Event::Missed {
            message: "some events were missed; read /v2/status again".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_free_channel_has_no_call_fields_and_reads_back() {
        let mut c = Channel::free("idle", "idle");
        c.channel = 1;
        let wire = serde_json::to_value(&c).unwrap();
        assert_eq!(wire, json!({"channel": 1, "state": "idle", "text": "idle"}));
        assert_eq!(serde_json::from_value::<Channel>(wire).unwrap(), c);
    }

    #[test]
    fn a_call_sits_beside_the_channel_state_and_reads_back() {
        let c = Channel {
            channel: 2,
            state: "receiving".into(),
            text: "receiving from 5550199".into(),
            call: Some(Call::Inbound(Inbound {
                call_id: "c1".into(),
                account_id: AccountId("a1".into()),
                faxbox_id: FaxboxId("b1".into()),
                from_number: "5550199".into(),
                to_number: "5550100".into(),
                since: 63_000_000_000,
            })),
        };
        let wire = serde_json::to_value(&c).unwrap();
        assert_eq!(wire["direction"], "inbound");
        assert_eq!(wire["faxbox_id"], "b1");
        assert_eq!(serde_json::from_value::<Channel>(wire).unwrap(), c);
    }

    #[test]
    fn events_are_tagged_with_their_name() {
        for event in [Event::shutdown(), Event::missed()] {
            let wire = serde_json::to_value(&event).unwrap();
            assert_eq!(wire["event"], event.name());
            assert_eq!(serde_json::from_value::<Event>(wire).unwrap(), event);
        }
        assert_eq!(
            serde_json::to_value(Event::shutdown()).unwrap(),
            json!({"event": "shutdown", "message": "Faxbox is stopping"})
        );
    }
}
