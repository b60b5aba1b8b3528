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

use serde_json::{Value, json};

use super::Ctx;
use super::reply::{Answer, ApiError};
use crate::model::{Account, AccountId, AttemptStage, Reception, UnixTime, now, to_gregorian};
use crate::scheduler::LineNow;
use crate::status::{self, Call, Channel};
use crate::store::{BoxSnapshot, CallSnapshot, QueueSnapshot};
use crate::timezone::local_day_start;

pub fn status(ctx: &Ctx, caller: &Account) -> Result<Answer, ApiError> {
    let only = (!caller.is_admin).then_some(&caller.id);
    let day_start = local_day_start();
    let snap = ctx.store.snapshot(None, day_start)?;
    let lines = ctx
        .lines
        .now()
        .into_iter()
        .map(|line| line_status(line, &snap, only))
        .collect();
    let accepted = ctx.accepted_by_account();
    let mut queues: Vec<_> = snap
        .queues
        .iter()
        .filter(|(id, _)| only.is_none_or(|a| a == *id))
        .collect();
    queues.sort_by(|a, b| (&a.1.account_name, a.0).cmp(&(&b.1.account_name, b.0)));
    let accounts: Vec<status::Account> = queues
        .into_iter()
        .map(|(id, q)| account(id, q, accepted.get(id).copied().unwrap_or(0)))
        .collect();
    let mut totals = status::Totals::default();
    for a in &accounts {
        totals.add(a);
    }
    let recent = snap
        .recent
        .iter()
        .filter(|f| only.is_none_or(|a| *a == f.account_id))
        .map(|f| status::Recent {
            fax_id: f.fax_id.clone(),
            account_id: f.account_id.clone(),
            folder: f.folder.clone(),
            status: f.status.clone().unwrap_or_else(|| "received".into()),
            number: f.number.clone(),
            pages: f.pages,
            attempts: f.attempts.into(),
            retries: f.retries.into(),
            document: f.document.clone(),
            last_result: f.last_result.clone(),
            created: to_gregorian(f.created),
            modified: to_gregorian(f.modified),
        })
        .collect();
    let admin_only = |counts| caller.is_admin.then_some(counts);
    let intake = ctx.intake.counts().on(day_start);
    let data = status::Status {
        generated: to_gregorian(now()),
        day_start: to_gregorian(day_start),
        lines,
        accounts,
        totals,
        intake: admin_only(status::IntakeToday {
            since: to_gregorian(intake.since),
            api: intake.api,
            smtp: intake.smtp,
            ipp: intake.ipp,
        }),
        recent,
        api: caller.is_admin.then(|| status::Requests {
            since: to_gregorian(ctx.started),
            requests: ctx.requests_served(),
        }),
    };
    Ok((&json!(data)).into())
}

/// A line and its channels: the calls on it (those of other accounts shown
/// `busy` to an account token), then its free channels.
fn line_status(line: LineNow, snap: &BoxSnapshot, only: Option<&AccountId>) -> status::Line {
    let name = line.name.as_str();
    let (state, reason) = match (line.fault, snap.paused.get(name)) {
        (Some(why), _) => ("down", Some(why)),
        (None, Some(why)) => ("paused", Some(why.clone())),
        (None, None) => ("up", None),
    };
    // What the line's device says it does when no call is recorded on it
    // yet (a modem's phone ringing, a call being answered).
    let mut activity = line.activity;
    let mut calls: Vec<(UnixTime, Channel)> = snap
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
    let mut channels: Vec<Channel> = calls.into_iter().map(|(_, c)| c).collect();
    if !channels.is_empty() {
        activity = None;
    }
    // Every channel the line has, those of a part that is down (one of
    // several FreeSWITCH nodes) shown down (issue 25 item 6). A line that
    // is down has no channels to count (a modem that does not answer,
    // FreeSWITCH unreachable): show one, down.
    let capacity = if state == "down" {
        line.capacity.max(1)
    } else {
        line.capacity
    };
    while channels.len() < capacity as usize {
        if channels.len() >= line.usable as usize && state != "down" {
            channels.push(Channel::free("down", "down"));
            continue;
        }
        match activity.take() {
            Some((doing, text)) if state == "up" => channels.push(Channel::free(&doing, &text)),
            _ => channels.push(Channel::free(state_of_free(state), state_of_free(state))),
        }
    }
    for (i, c) in channels.iter_mut().enumerate() {
        c.channel = i as u32 + 1;
    }
    status::Line {
        name: line.name,
        capacity,
        state: state.to_owned(),
        reason,
        channels,
    }
}

fn account(id: &AccountId, q: &QueueSnapshot, api_accepted: u64) -> status::Account {
    status::Account {
        account_id: id.clone(),
        account_name: q.account_name.clone(),
        pending: q.pending,
        active: q.active,
        waiting_retry: q
            .waiting_retry
            .iter()
            .map(|r| status::Retry {
                fax_id: r.fax_id.clone(),
                to_number: r.to_number.clone(),
                attempts: r.attempts.into(),
                retries: r.retries.into(),
                next_attempt: to_gregorian(r.next_attempt),
                last_cause: r.last_cause.clone(),
            })
            .collect(),
        waiting_retry_total: q.waiting_retry_total,
        completed_today: q.completed_today,
        failed_today: q.failed_today,
        pages_sent_today: q.pages_sent_today,
        received_today: q.received_today,
        pages_received_today: q.pages_received_today,
        api_accepted,
    }
}

fn state_of_free(line_state: &str) -> &'static str {
    match line_state {
        "down" => "down",
        "paused" => "paused",
        _ => "idle",
    }
}

fn busy() -> Channel {
    Channel::free("busy", "in use")
}

/// A fax being sent, in the words of a fax machine's display.
fn sending(c: &CallSnapshot) -> Channel {
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
    Channel {
        channel: 0,
        state: state.to_owned(),
        text,
        call: Some(Call::Outbound(status::Outbound {
            fax_id: c.fax_id.clone(),
            account_id: c.account_id.clone(),
            to_number: c.to_number.clone(),
            attempt: c.attempt,
            since: to_gregorian(c.started),
            page,
            pages_sent: c.pages_sent,
            pages: c.pages_total,
            bit_rate: c.bit_rate,
            ecm: c.ecm,
            remote_station_id: c.remote_station_id.clone(),
        })),
    }
}

fn receiving(r: &Reception) -> Channel {
    let from = if r.from_number.is_empty() {
        "an unknown number"
    } else {
        &r.from_number
    };
    Channel {
        channel: 0,
        state: "receiving".into(),
        text: format!("receiving from {from}"),
        call: Some(Call::Inbound(status::Inbound {
            call_id: r.call_id.clone(),
            account_id: r.account_id.clone(),
            faxbox_id: r.faxbox_id.clone(),
            from_number: r.from_number.clone(),
            to_number: r.to_number.clone(),
            since: to_gregorian(r.started),
        })),
    }
}

/// `PUT /v2/lines/{name}` `{"action":"pause","data":{"reason":"..."}}` or
/// `{"action":"resume"}` (admin): a paused line takes no new calls; calls
/// on it finish. Answers the line as `/v2/status` shows it.
pub fn line_action(ctx: &Ctx, name: &str, body: &[u8]) -> Result<Answer, ApiError> {
    let known = ctx.lines.names();
    if !known.contains(&name) {
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
    use crate::model::{FaxId, FaxboxId};

    /// A channel as the wire carries it, but for its number (given by
    /// `line_status`).
    fn wire(channel: Channel) -> Value {
        let mut v = json!(channel);
        v.as_object_mut().map(|o| o.remove("channel"));
        v
    }

    fn sending(c: &CallSnapshot) -> Value {
        wire(super::sending(c))
    }

    fn receiving(r: &Reception) -> Value {
        wire(super::receiving(r))
    }

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

    /// Every field of a call on a channel, as the wire carries it.
    #[test]
    fn a_channel_carries_every_field_of_its_call() {
        assert_eq!(
            json!(sending(&call(AttemptStage::Send))),
            json!({"state": "sending", "text": "sending page 2 of 3 at 14400 bps, ECM, to +1 555 0100",
                   "direction": "outbound", "fax_id": "f1", "account_id": "a1",
                   "to_number": "5550100", "attempt": 2, "since": to_gregorian(100), "page": 2,
                   "pages_sent": 1, "pages": 3, "bit_rate": 14400, "ecm": true,
                   "remote_station_id": " +1 555 0100 "})
        );
        let mut dialling = call(AttemptStage::Originate);
        (dialling.bit_rate, dialling.ecm, dialling.remote_station_id) = (None, None, None);
        assert_eq!(
            json!(sending(&dialling)),
            json!({"state": "dialling", "text": "dialling 5550100",
                   "direction": "outbound", "fax_id": "f1", "account_id": "a1",
                   "to_number": "5550100", "attempt": 2, "since": to_gregorian(100), "page": null,
                   "pages_sent": 1, "pages": 3, "bit_rate": null, "ecm": null,
                   "remote_station_id": null})
        );
        let r = Reception {
            call_id: "c1".into(),
            line: "loopback".into(),
            account_id: AccountId("a1".into()),
            faxbox_id: FaxboxId("b1".into()),
            from_number: String::new(),
            to_number: "5550100".into(),
            tiff: "/tmp/x.tif".into(),
            started: 5,
        };
        assert_eq!(
            json!(receiving(&r)),
            json!({"state": "receiving", "text": "receiving from an unknown number",
                   "direction": "inbound", "call_id": "c1", "account_id": "a1",
                   "faxbox_id": "b1", "from_number": "", "to_number": "5550100",
                   "since": to_gregorian(5)})
        );
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
