//! `GET /v2/status`: what the box is doing now, for operators and for the
//! dashboard (`faxbox tui`), which renders from this document alone.
//!
//! Shape (times in Gregorian seconds like the rest of the API; `generated`
//! is the snapshot's own time, so a client can show "in 3 min" without a
//! clock of its own):
//!
//! ```text
//! { generated, day_start,
//!   lines: [{ name, capacity, state: up|paused|down, reason?,
//!             channels: [{ channel, state, text, ...call fields }] }],
//!   accounts: [{ account_id, account_name, pending, active,
//!                waiting_retry: [{ fax_id, to_number, attempts, retries,
//!                                  next_attempt, last_cause }],
//!                waiting_retry_total, completed_today, failed_today,
//!                pages_sent_today, received_today, pages_received_today,
//!                api_accepted }],
//!   totals: { the same counts over the accounts shown },
//!   intake?: { since, api, smtp }  (admin only: faxes accepted today by
//!                                    each door),
//!   recent: [{ fax_id, account_id, folder, status, number, pages,
//!              attempts, retries, document, last_result, created,
//!              modified }]          (the latest faxes in and out, newest first),
//!   api?: { since, requests }   (admin only) }
//! ```
//!
//! A channel's `state` is one of `idle`, `ringing`, `dialling`, `training`,
//! `sending`, `receiving`, `paused`, `down`, or `busy` (a call of another account,
//! shown to an account token without its details). The admin account sees
//! every account; any other account sees its own queue and calls.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::Ctx;
use super::reply::{Answer, ApiError};
use crate::model::{Account, AttemptStage, Reception, UnixTime, now, to_gregorian};
use crate::store::CallSnapshot;

/// The start of the box's local day, for the "today" counts.
fn local_day_start() -> UnixTime {
    let today = chrono::Local::now().date_naive();
    today
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
        .map_or_else(|| now() - now().rem_euclid(86_400), |t| t.timestamp())
}

/// Which door a fax came in by, for the intake counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    Api,
    Smtp,
    /// The IPP FaxOut printers.
    Ipp,
}

/// Faxes accepted today by each intake, counted as they are accepted.
/// Kept in memory (the store does not say which door a fax came in by): a
/// restart counts again from zero, and `since` says from when.
#[derive(Debug)]
pub struct IntakeCounts(Mutex<IntakeDay>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IntakeDay {
    day_start: UnixTime,
    since: UnixTime,
    api: u64,
    smtp: u64,
    ipp: u64,
}

impl Default for IntakeCounts {
    fn default() -> Self {
        IntakeCounts(Mutex::new(IntakeDay {
            day_start: local_day_start(),
            since: now(),
            api: 0,
            smtp: 0,
            ipp: 0,
        }))
    }
}

impl IntakeCounts {
    /// Counts `faxes` accepted by `intake`.
    pub fn count(&self, intake: Intake, faxes: u64) {
        let mut day = self.on(local_day_start());
        match intake {
            Intake::Api => day.api += faxes,
            Intake::Smtp => day.smtp += faxes,
            Intake::Ipp => day.ipp += faxes,
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = day;
    }

    /// Today's faxes accepted by (the API, email, the printers).
    pub fn today(&self) -> (u64, u64, u64) {
        let day = self.on(local_day_start());
        (day.api, day.smtp, day.ipp)
    }

    /// The counts of the day starting at `day_start` (zero once the day
    /// has changed).
    fn on(&self, day_start: UnixTime) -> IntakeDay {
        let mut day = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if day.day_start != day_start {
            *day = IntakeDay {
                day_start,
                since: day_start,
                api: 0,
                smtp: 0,
                ipp: 0,
            };
        }
        *day
    }
}

pub fn status(ctx: &Ctx, caller: &Account) -> Result<Answer, ApiError> {
    let only = (!caller.is_admin).then_some(&caller.id);
    let day_start = local_day_start();
    let snap = ctx.store.snapshot(None, day_start)?;

    let mut lines = Vec::new();
    for line in &ctx.lines {
        let name = line.name();
        let fault = line.fault();
        let paused = snap.paused.get(name);
        let (state, reason) = match (&fault, paused) {
            (Some(why), _) => ("down", Some(why.clone())),
            (None, Some(why)) => ("paused", Some(why.clone())),
            (None, None) => ("up", None),
        };
        // What the line's device says it does when no call is recorded on
        // it yet (a modem's phone ringing, a call being answered).
        let mut activity = line.activity();
        let mut channels: Vec<Value> = Vec::new();
        let mut calls: Vec<(UnixTime, Value)> = snap
            .calls
            .iter()
            .filter(|c| c.line == name)
            .map(|c| {
                let shown = only.is_none_or(|a| *a == c.account_id);
                (c.started, if shown { sending(c) } else { busy() })
            })
            .chain(snap.receptions.iter().filter(|r| r.line == name).map(|r| {
                let shown = only.is_none_or(|a| *a == r.account_id);
                (r.started, if shown { receiving(r) } else { busy() })
            }))
            .collect();
        calls.sort_by_key(|(started, _)| *started);
        channels.extend(calls.into_iter().map(|(_, v)| v));
        // Every channel the line has, those of a part that is down (one of
        // several FreeSWITCH nodes) shown down (issue 25 item 6).
        let capacity = line.configured_channels() as usize;
        let usable = line.channels() as usize;
        if !channels.is_empty() {
            activity = None;
        }
        // A line that is down has no channels to count (a modem that does
        // not answer, FreeSWITCH unreachable): show one, down.
        let capacity = if state == "down" {
            capacity.max(1)
        } else {
            capacity
        };
        while channels.len() < capacity {
            if channels.len() >= usable && state != "down" {
                channels.push(json!({ "state": "down", "text": "down" }));
                continue;
            }
            match activity.take() {
                Some(a) if state == "up" => {
                    channels.push(json!({ "state": a.state, "text": a.text }))
                }
                _ => channels
                    .push(json!({ "state": state_of_free(state), "text": state_of_free(state) })),
            }
        }
        for (i, c) in channels.iter_mut().enumerate() {
            c["channel"] = json!(i + 1);
        }
        lines.push(json!({
            "name": name,
            "capacity": capacity,
            "state": state,
            "reason": reason,
            "channels": channels,
        }));
    }

    let accepted = ctx.accepted_by_account();
    let mut accounts: Vec<Value> = Vec::new();
    let mut totals = json!({
        "pending": 0, "active": 0, "waiting_retry": 0, "completed_today": 0,
        "failed_today": 0, "pages_sent_today": 0, "received_today": 0,
        "pages_received_today": 0, "api_accepted": 0,
    });
    let mut add = |key: &str, n: u64| {
        totals[key] = json!(totals[key].as_u64().unwrap_or(0) + n);
    };
    let mut queues: Vec<_> = snap
        .queues
        .iter()
        .filter(|(id, _)| only.is_none_or(|a| a == *id))
        .collect();
    queues.sort_by(|a, b| (&a.1.account_name, a.0).cmp(&(&b.1.account_name, b.0)));
    for (id, q) in queues {
        let api_accepted = accepted.get(id).copied().unwrap_or(0);
        add("pending", q.pending);
        add("active", q.active);
        add("waiting_retry", q.waiting_retry_total);
        add("completed_today", q.completed_today);
        add("failed_today", q.failed_today);
        add("pages_sent_today", q.pages_sent_today);
        add("received_today", q.received_today);
        add("pages_received_today", q.pages_received_today);
        add("api_accepted", api_accepted);
        accounts.push(json!({
            "account_id": id,
            "account_name": q.account_name,
            "pending": q.pending,
            "active": q.active,
            "waiting_retry": q.waiting_retry.iter().map(|r| json!({
                "fax_id": r.fax_id,
                "to_number": r.to_number,
                "attempts": r.attempts,
                "retries": r.retries,
                "next_attempt": to_gregorian(r.next_attempt),
                "last_cause": r.last_cause,
            })).collect::<Vec<_>>(),
            "waiting_retry_total": q.waiting_retry_total,
            "completed_today": q.completed_today,
            "failed_today": q.failed_today,
            "pages_sent_today": q.pages_sent_today,
            "received_today": q.received_today,
            "pages_received_today": q.pages_received_today,
            "api_accepted": api_accepted,
        }));
    }
    let intake = ctx.intake.on(day_start);
    let recent: Vec<Value> = snap
        .recent
        .iter()
        .filter(|f| only.is_none_or(|a| *a == f.account_id))
        .map(|f| {
            json!({
                "fax_id": f.fax_id,
                "account_id": f.account_id,
                "folder": f.folder,
                "status": f.status.as_deref().unwrap_or("received"),
                "number": f.number,
                "pages": f.pages,
                "attempts": f.attempts,
                "retries": f.retries,
                "document": f.document,
                "last_result": f.last_result,
                "created": to_gregorian(f.created),
                "modified": to_gregorian(f.modified),
            })
        })
        .collect();
    let mut data = json!({
        "generated": to_gregorian(now()),
        "day_start": to_gregorian(day_start),
        "lines": lines,
        "accounts": accounts,
        "totals": totals,
        "recent": recent,
    });
    if caller.is_admin {
        data["intake"] = json!({
            "since": to_gregorian(intake.since),
            "api": intake.api,
            "smtp": intake.smtp,
            "ipp": intake.ipp,
        });
        data["api"] = json!({
            "since": to_gregorian(ctx.started),
            "requests": ctx.requests_served(),
        });
    }
    Ok((&data).into())
}

fn state_of_free(line_state: &str) -> &'static str {
    match line_state {
        "down" => "down",
        "paused" => "paused",
        _ => "idle",
    }
}

fn busy() -> Value {
    json!({ "state": "busy", "text": "in use" })
}

/// A fax being sent, in the words of a fax machine's display.
fn sending(c: &CallSnapshot) -> Value {
    let (state, text) = match c.stage {
        AttemptStage::Prepare | AttemptStage::Originate => {
            ("dialling", format!("dialling {}", c.to_number))
        }
        AttemptStage::Negotiate => ("training", format!("training with {}", c.to_number)),
        AttemptStage::Send | AttemptStage::End => {
            // The page on the line is the one after the last confirmed.
            let page = (c.pages_sent + 1).min(c.pages_total.max(1));
            let mut text = format!("sending page {page} of {}", c.pages_total);
            if let Some(rate) = c.bit_rate {
                text.push_str(&format!(" at {rate} bps"));
            }
            if c.ecm == Some(true) {
                text.push_str(", ECM");
            }
            match c.remote_station_id.as_deref().map(str::trim) {
                Some(csi) if !csi.is_empty() => text.push_str(&format!(", to {csi}")),
                _ => text.push_str(&format!(", to {}", c.to_number)),
            }
            ("sending", text)
        }
    };
    let page = (state == "sending").then(|| (c.pages_sent + 1).min(c.pages_total.max(1)));
    json!({
        "state": state,
        "text": text,
        "direction": "outbound",
        "fax_id": c.fax_id,
        "account_id": c.account_id,
        "to_number": c.to_number,
        "attempt": c.attempt,
        "since": to_gregorian(c.started),
        "page": page,
        "pages_sent": c.pages_sent,
        "pages": c.pages_total,
        "bit_rate": c.bit_rate,
        "ecm": c.ecm,
        "remote_station_id": c.remote_station_id,
    })
}

fn receiving(r: &Reception) -> Value {
    json!({
        "state": "receiving",
        "text": format!("receiving from {}", if r.from_number.is_empty() { "an unknown number" } else { &r.from_number }),
        "direction": "inbound",
        "call_id": r.call_id,
        "account_id": r.account_id,
        "faxbox_id": r.faxbox_id,
        "from_number": r.from_number,
        "to_number": r.to_number,
        "since": to_gregorian(r.started),
    })
}

/// `PUT /v2/lines/{name}` `{"action":"pause","data":{"reason":"..."}}` or
/// `{"action":"resume"}` (admin): a paused line takes no new calls; calls
/// on it finish. Answers the line as `/v2/status` shows it.
pub fn line_action(ctx: &Ctx, name: &str, body: &[u8]) -> Result<Answer, ApiError> {
    if !ctx.lines.iter().any(|l| l.name() == name) {
        let known: Vec<&str> = ctx.lines.iter().map(|l| l.name()).collect();
        return Err(ApiError::NotFound {
            message: format!(
                "there is no line {name} (the lines are: {})",
                known.join(", ")
            ),
            cause: name.to_owned(),
        });
    }
    let top: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let reason = match top.pointer("/data/reason") {
        None | Some(Value::Null) => "paused by the operator".to_owned(),
        Some(Value::String(r)) if !r.trim().is_empty() => r.trim().to_owned(),
        Some(_) => {
            return Err(ApiError::field(
                "reason",
                "type",
                "reason must be a text saying why the line is paused",
            ));
        }
    };
    match top.get("action").and_then(Value::as_str) {
        Some("pause") => ctx.store.set_line_paused(name, true, &reason)?,
        Some("resume") => {
            ctx.store.set_line_paused(name, false, "")?;
            // Jobs may be waiting for this line.
            (ctx.wake)();
        }
        Some(other) => {
            return Err(ApiError::field(
                "action",
                "enum",
                format!("invalid action {other:?}; a line takes pause or resume"),
            ));
        }
        None => return Err(ApiError::field("action", "required", "action required")),
    }
    let paused = ctx.store.paused_lines()?.contains(name);
    Ok((&json!({ "name": name, "state": if paused { "paused" } else { "up" } })).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, FaxId, FaxboxId};

    fn call(stage: AttemptStage) -> CallSnapshot {
        CallSnapshot {
            fax_id: FaxId("f1".into()),
            account_id: AccountId("a1".into()),
            to_number: "5550100".into(),
            line: "loopback".into(),
            attempt: 2,
            started: 100,
            stage,
            pages_sent: 1,
            pages_total: 3,
            bit_rate: Some(14_400),
            ecm: Some(true),
            remote_station_id: Some(" +1 555 0100 ".into()),
        }
    }

    #[test]
    fn a_call_reads_like_a_fax_machines_display() {
        let dialling = sending(&call(AttemptStage::Originate));
        assert_eq!(dialling["state"], "dialling");
        assert_eq!(dialling["text"], "dialling 5550100");
        assert_eq!(dialling["page"], Value::Null);
        let training = sending(&call(AttemptStage::Negotiate));
        assert_eq!(training["state"], "training");
        let page = sending(&call(AttemptStage::Send));
        assert_eq!(page["state"], "sending");
        assert_eq!(
            page["text"],
            "sending page 2 of 3 at 14400 bps, ECM, to +1 555 0100"
        );
        assert_eq!(
            (page["page"].as_u64(), page["pages"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(page["attempt"], 2);
        assert_eq!(page["since"], to_gregorian(100));
        // Without ECM or an ident from the far end: the number dialled.
        let mut plain = call(AttemptStage::Send);
        plain.ecm = Some(false);
        plain.remote_station_id = None;
        plain.pages_sent = 3;
        assert_eq!(
            sending(&plain)["text"],
            "sending page 3 of 3 at 14400 bps, to 5550100"
        );
    }

    #[test]
    fn intake_counts_start_again_each_day() {
        let counts = IntakeCounts::default();
        counts.count(Intake::Api, 2);
        counts.count(Intake::Smtp, 3);
        counts.count(Intake::Ipp, 4);
        let today = local_day_start();
        let day = counts.on(today);
        assert_eq!((day.api, day.smtp, day.ipp), (2, 3, 4));
        assert!(day.since <= now());
        let tomorrow = counts.on(today + 86_400);
        assert_eq!((tomorrow.api, tomorrow.smtp, tomorrow.ipp), (0, 0, 0));
        assert_eq!(tomorrow.since, today + 86_400, "counted from midnight");
    }

    #[test]
    fn a_reception_names_the_caller() {
        let r = Reception {
            call_id: "c1".into(),
            line: "loopback".into(),
            account_id: AccountId("a1".into()),
            faxbox_id: FaxboxId("b1".into()),
            from_number: "5550199".into(),
            to_number: "5550100".into(),
            tiff: "/tmp/x.tif".into(),
            started: 5,
        };
        let v = receiving(&r);
        assert_eq!(v["state"], "receiving");
        assert_eq!(v["text"], "receiving from 5550199");
        assert_eq!(v["faxbox_id"], "b1");
    }
}
