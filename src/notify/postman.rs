//! The postman: a thread that delivers the store's mail queue to the
//! smarthost. SMTP is blocking I/O, so it runs on its own named thread
//! (docs/style.md, principle 8), wakes when mail is queued, and otherwise sleeps
//! until the next retry falls due.

use std::sync::Arc;
use std::time::Duration;

use lettre::Transport;
use lettre::address::Envelope;
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use tracing::{debug, info, warn};

use crate::config::{Smarthost, SmarthostServer, TlsMode};
use crate::doorbell::{BellThread, Doorbell};
use crate::model::now;
use crate::store::{Store, StoreError};
use crate::streak::FailureStreak;

/// The longest the postman sleeps without being woken.
const IDLE_WAIT: Duration = Duration::from_secs(60);

/// How long a mail waits after a failed delivery: `first`, doubling with
/// each failure, never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 30 s doubling to an hour: a smarthost restart costs half a minute, a
    /// day-long outage about 24 tries per mail.
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failed delivery (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        crate::streak::doubling(self.first, self.max, failures)
    }
}

/// Handle on the delivery thread.
pub struct Postman {
    thread: BellThread,
}

impl Postman {
    pub fn start(
        store: Arc<Store>,
        smarthost: Smarthost,
        backoff: Backoff,
    ) -> std::io::Result<Postman> {
        let thread = BellThread::start("postman", move |bell| {
            deliver_until_stopped(&store, &smarthost, backoff, bell)
        })?;
        Ok(Postman { thread })
    }

    /// Mail was queued: deliver it now rather than at the next timeout.
    pub fn wake(&self) {
        self.thread.wake();
    }

    /// A handle that rings [`wake`](Self::wake) without keeping the
    /// postman: its owner still decides when it stops.
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        self.thread.waker()
    }

    /// Finishes the message in hand and stops; queued mail stays queued.
    pub fn stop(self) {
        drop(self.thread);
    }
}

fn deliver_until_stopped(store: &Store, smarthost: &Smarthost, backoff: Backoff, bell: &Doorbell) {
    let transport = smarthost
        .server
        .as_ref()
        .map(|server| transport_for(server, &smarthost.hello_name));
    let mut warned = false;
    let mut trouble = FailureStreak::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut relay = FailureStreak::new(Duration::from_secs(1), Duration::from_secs(300));
    let mut unrecorded = Vec::new();
    loop {
        match &transport {
            Some(Ok(transport)) => {
                let round = Round {
                    store,
                    transport,
                    from: &smarthost.from,
                    backoff,
                    bell,
                };
                match round.deliver_due(&mut unrecorded, &mut relay) {
                    Ok(()) => {
                        if let Some(n) = trouble.succeeded() {
                            info!(failures = n, "the mail queue can record its work again");
                        }
                    }
                    Err(e) => {
                        // The store cannot write (a full disk): nothing is
                        // sent until it can, and the log gets a line a
                        // minute, not one per try.
                        let verdict = trouble.failed();
                        if let Some(n) = verdict.log {
                            warn!(
                                failures = n,
                                retry_in_s = verdict.wait.as_secs(),
                                "mail sending is paused: the mail queue cannot record it: {e}"
                            );
                        }
                        if !sleep_through(bell, verdict.wait) {
                            return;
                        }
                        continue;
                    }
                }
            }
            Some(Err(e)) if !warned => {
                warn!("outgoing mail waits in the queue: the smarthost setting is unusable: {e}");
                warned = true;
            }
            None if !warned && store.unsent_mail_count().unwrap_or(0) > 0 => {
                warn!("outgoing mail waits in the queue: no [smarthost] host is configured");
                warned = true;
            }
            _ => {}
        }
        let wait = match store.next_mail_due() {
            Ok(Some(due)) if transport.as_ref().is_some_and(|t| t.is_ok()) => {
                Duration::from_secs((due - now()).clamp(0, IDLE_WAIT.as_secs() as i64) as u64)
            }
            _ => IDLE_WAIT,
        };
        if !bell.wait(wait) {
            return;
        }
    }
}

/// Sleeps `wait` whatever rings the bell meanwhile (new mail changes
/// nothing while the store cannot write); false once stopped.
fn sleep_through(bell: &Doorbell, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        if !bell.wait(left) {
            return false;
        }
    }
}

/// One pass over the due mail.
struct Round<'a> {
    store: &'a Store,
    transport: &'a SmtpTransport,
    from: &'a str,
    backoff: Backoff,
    bell: &'a Doorbell,
}

impl Round<'_> {
    /// Sends what is due. Fails, having sent nothing more, when the store
    /// cannot record a sending; `unrecorded` keeps the mails delivered whose
    /// delivery is not recorded yet, which are recorded before anything
    /// else is sent, and never sent again meanwhile.
    fn deliver_due(
        &self,
        unrecorded: &mut Vec<i64>,
        relay: &mut FailureStreak,
    ) -> Result<(), StoreError> {
        while let Some(&id) = unrecorded.first() {
            self.store.mail_sent(id)?;
            unrecorded.remove(0);
        }
        let store = self.store;
        let due = store.due_mail(now(), 50)?;
        for (id, reason) in &due.unopenable {
            warn!(mail = id, "a queued mail is set aside: {reason}");
        }
        for mail in due.mails {
            if self.bell.stopping() {
                return Ok(());
            }
            let wait = self.backoff.delay(mail.attempts + 1).as_secs().max(1) as i64;
            store.mail_sending(mail.id, wait)?;
            let result = envelope(self.from, &mail.recipients).and_then(|env| {
                self.transport
                    .send_raw(&env, &mail.message)
                    .map_err(|e| e.to_string())
            });
            match result {
                Ok(_) => {
                    info!(mail = mail.id, to = ?mail.recipients, "mail delivered to the smarthost");
                    if let Some(n) = relay.succeeded() {
                        info!(failures = n, "the smarthost takes mail again");
                    }
                    if let Err(e) = store.mail_sent(mail.id) {
                        unrecorded.push(mail.id);
                        return Err(e);
                    }
                }
                Err(e) => {
                    if let Some(n) = relay.failed().log {
                        warn!(
                            mail = mail.id,
                            failures = n,
                            attempts = mail.attempts + 1,
                            "mail not delivered, will retry: {e}"
                        );
                    }
                    store.mail_failed(mail.id, &e, wait)?;
                }
            }
        }
        Ok(())
    }
}

fn envelope(from: &str, to: &[String]) -> Result<Envelope, String> {
    let parse = |a: &str| {
        a.parse::<lettre::Address>()
            .map_err(|e| format!("{a}: {e}"))
    };
    let to = to.iter().map(|a| parse(a)).collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(parse(from)?), to).map_err(|e| e.to_string())
}

fn transport_for(server: &SmarthostServer, hello_name: &str) -> Result<SmtpTransport, String> {
    let builder = match server.tls {
        TlsMode::None => SmtpTransport::builder_dangerous(&server.host),
        TlsMode::StartTls => {
            SmtpTransport::starttls_relay(&server.host).map_err(|e| e.to_string())?
        }
        TlsMode::Tls => SmtpTransport::relay(&server.host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder
        .port(server.port)
        .hello_name(ClientId::Domain(hello_name.to_owned()))
        .timeout(Some(Duration::from_secs(30)));
    if !server.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            server.username.clone(),
            server.password.clone(),
        ));
    }
    debug!(host = %server.host, port = server.port, "smarthost transport ready");
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }
}
