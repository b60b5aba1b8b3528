//! Following the box's event stream (`GET /v2/events`) for the dashboard:
//! each event tells the loop to read the snapshot again, and is written
//! to the log pane in words. The stream is read on a thread of its own; a
//! dropped stream (the box restarting) is opened again with a new login.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::bail;

use super::log::LogBuffer;
use crate::client::Session;
use crate::status::Event;

/// How long to wait before opening a dropped stream again.
const REOPEN: Duration = Duration::from_secs(1);

/// Starts following the stream of the box at `url`; ends when `changed`
/// has no receiver any more.
pub fn follow(url: String, key: String, changed: Sender<()>, log: LogBuffer) {
    let started = std::thread::Builder::new()
        .name("tui-events".into())
        .spawn(move || {
            let mut said = None;
            loop {
                let why = match stream(&url, &key, &changed, &log) {
                    Ok(true) => return,
                    Ok(false) => "the event stream ended".to_owned(),
                    Err(e) => format!("no event stream: {e}"),
                };
                // Once per outage, not once a second.
                if said.as_ref() != Some(&why) {
                    log.push(format!("{} {why}", now()));
                    said = Some(why);
                }
                if changed.send(()).is_err() {
                    return;
                }
                std::thread::sleep(REOPEN);
            }
        });
    if let Err(e) = started {
        // The slow poll still keeps the screen current.
        tracing::warn!(error = %e, "cannot follow the event stream");
    }
}

/// Reads one stream to its end; `Ok(true)` when the dashboard is gone.
fn stream(url: &str, key: &str, changed: &Sender<()>, log: &LogBuffer) -> anyhow::Result<bool> {
    let session = Session::login(url, key)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(format!("{}/v2/events", session.base()))
        .header("X-Auth-Token", session.token())
        .call()?;
    if response.status() != 200 {
        bail!("the box answered {}", response.status());
    }
    log.push(format!("{} following the box's events", now()));
    // A connection that is back: what changed meanwhile is in the snapshot.
    if changed.send(()).is_err() {
        return Ok(true);
    }
    let reader = BufReader::new(response.into_body().into_reader());
    let (mut event, mut data) = (String::new(), String::new());
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            if !event.is_empty() {
                // An event this dashboard does not know is news all the same.
                if let Ok(event) = serde_json::from_str::<Event>(&data) {
                    log.push(format!("{} {}", now(), describe(&event)));
                }
                if changed.send(()).is_err() {
                    return Ok(true);
                }
            }
            event.clear();
            data.clear();
        } else if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_owned();
        } else if let Some(more) = line.strip_prefix("data:") {
            data.push_str(more.trim_start());
        }
    }
    Ok(false)
}

fn now() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// An event in words for the log pane.
pub fn describe(event: &Event) -> String {
    let short = |fax: &crate::model::FaxId| fax.as_str().chars().take(8).collect::<String>();
    match event {
        Event::JobStatus {
            fax_id,
            status,
            attempts,
            retry_in_s,
            error,
            ..
        } => {
            let status = status.map_or("?", |s| s.as_str());
            let mut text = format!("fax {} {status}", short(fax_id));
            if *attempts > 0 {
                text.push_str(&format!(" after attempt {attempts}"));
            }
            if let Some(e) = error {
                text.push_str(&format!(": {e}"));
            }
            if let Some(s) = retry_in_s {
                text.push_str(&format!(" (retry in {s}s)"));
            }
            text
        }
        Event::Call {
            fax_id,
            line,
            status,
            ..
        } => format!("fax {} on {line}: {status}", short(fax_id)),
        Event::Shutdown { .. } => "the fax box is stopping".to_owned(),
        Event::Missed { .. } => "some events were missed; the screen was read again".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as the wire carries them, read into the status contract.
    fn read(wire: serde_json::Value) -> Event {
        serde_json::from_value(wire).unwrap()
    }

    #[test]
    fn events_read_as_sentences() {
        let status = read(
            serde_json::json!({"event": "job_status", "fax_id": "0badc0de0badc0de",
            "account_id": "a1", "status": "pending", "attempts": 1, "retry_in_s": 30,
            "error": "the number was busy"}),
        );
        assert_eq!(
            describe(&status),
            "fax 0badc0de pending after attempt 1: the number was busy (retry in 30s)"
        );
        let call = read(
            serde_json::json!({"event": "call", "fax_id": "feedfacefeedface",
            "account_id": "a1", "line": "loopback", "attempt": 1, "stage": "send",
            "status": "Sent Page 1 of 2"}),
        );
        assert_eq!(
            describe(&call),
            "fax feedface on loopback: Sent Page 1 of 2"
        );
        let bye = read(serde_json::json!({"event": "shutdown", "message": "Faxbox is stopping"}));
        assert_eq!(describe(&bye), "the fax box is stopping");
        assert!(
            serde_json::from_value::<Event>(serde_json::json!({"event": "something_new"})).is_err()
        );
    }
}
