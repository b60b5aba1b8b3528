//! One intake path for every edge: a fax request from the HTTP API, an
//! email or a print job comes in, committed faxes (one, or a batch of one
//! per number, issue 22) or a typed refusal go out. Each edge parses its
//! protocol, checks what only it can check (a JSON field, an SMTP path, an
//! IPP attribute), calls [`Intake::submit`] and maps the answer to its own
//! reply (the API's `reply::error_reply`, SMTP's `deliver`, IPP's
//! `operate`: docs/style.md, principle 5).
//!
//! Owns what every edge used to do on its own: the faxbox's defaults for the
//! fields a request leaves out (docs/kazoo.md 2.3 step 1 and 6.6), the sender
//! rule (docs/kazoo.md 6.5), the one notification-list rule, preparing the
//! documents once for all numbers, the commit (docs/architecture.md,
//! invariant 1: nothing is acknowledged before it), waking the scheduler, and
//! counting the faxes each door took (the dashboard's intake counts).
//! Talks to: `store`, `documents`. No protocol type reaches it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use regex::RegexBuilder;

use crate::documents::{self, ConvertOptions, DocumentError, Input};
use crate::gate::IntakeGate;
use crate::model::{
    AccountId, Fax, Faxbox, JobStatus, NewDocument, NewFax, Priority, UnixTime, is_email, now,
};
use crate::store::{PrintCover, Store, StoreError};

/// Which door a fax came in by, for the intake counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Api,
    Smtp,
    /// The IPP FaxOut printers.
    Ipp,
}

/// Who asks for a fax: what the sender rule and the notification list read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An API key (or a token made from one) of this account.
    Account(AccountId),
    /// A person by address, lower-cased: an email's sender (empty for the
    /// null reverse-path `<>`), or a printer user logged in with HTTP Basic.
    Address(String),
    /// A printer client without a login, admitted by the printer's allowed
    /// networks.
    Anonymous,
}

/// The fields of a fax a request may give; what it leaves out comes from
/// the faxbox (docs/kazoo.md 2.3 step 1, 6.6).
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub from_number: Option<String>,
    pub from_name: Option<String>,
    pub fax_identity_number: Option<String>,
    pub fax_identity_name: Option<String>,
    pub fax_timezone: Option<String>,
    pub retries: Option<u8>,
    /// The request's own notification list (the API's
    /// `notifications.email.send_to`); `None`: the one rule,
    /// [`notify_list`].
    pub notify: Option<Vec<String>>,
    pub subject: Option<String>,
    pub send_at: Option<UnixTime>,
    pub priority: Priority,
    pub cover_page: Option<bool>,
    pub cover_note: Option<String>,
}

/// One number a request faxes to, through a faxbox of an account (an email
/// may reach several faxboxes, one per recipient address).
#[derive(Debug, Clone)]
pub struct Recipient {
    pub account: AccountId,
    /// `None` only for an API fax sent without a faxbox.
    pub faxbox: Option<Faxbox>,
    /// The number as the request wrote it.
    pub number: String,
    /// The number dialled (E.164 or a checked local form).
    pub normalized: String,
    pub to_name: Option<String>,
    pub given: Given,
}

/// Where the faxes are committed.
#[derive(Debug, Clone)]
pub enum Commit {
    /// As new jobs, in one transaction with their documents.
    Jobs,
    /// As the faxes of a print job made by Create-Job (Send-Document).
    PrintJob(i64),
    /// As the faxes of a print job made now (Print-Job); the print job is
    /// recorded only once the document is known to be faxable.
    NewPrintJob {
        name: String,
        user: String,
        cover: Option<PrintCover>,
    },
}

/// A fax request from some edge.
pub struct Request<'a> {
    pub door: Door,
    pub sender: Sender,
    /// Several: one batch sharing one fax image (issue 22).
    pub recipients: Vec<Recipient>,
    pub documents: Vec<Input>,
    /// Opens encrypted PDFs; never stored.
    pub password: Option<String>,
    pub convert: &'a ConvertOptions,
    pub commit: Commit,
}

/// What a request became.
#[derive(Debug)]
pub struct Committed {
    pub faxes: Vec<Fax>,
    /// The print job, for `Commit::PrintJob` and `Commit::NewPrintJob`.
    pub print_job: Option<i64>,
}

/// Why a request did not become faxes. Nothing was stored.
#[derive(Debug)]
pub enum Refusal {
    /// The sender may not use the faxbox (docs/kazoo.md 6.5); the reason
    /// names both.
    NotAllowed(String),
    /// A document cannot be faxed (docs/architecture.md, invariant 4).
    Document(DocumentError),
    /// The store failed, or refused (`StoreError::Conflict`: a print job
    /// cancelled meanwhile).
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// The intake every edge shares: the store, the scheduler's doorbell, the
/// counts and the gate.
#[derive(Clone)]
pub struct Intake {
    store: Arc<Store>,
    wake: Arc<dyn Fn() + Send + Sync>,
    counts: Arc<IntakeCounts>,
    gate: IntakeGate,
}

impl Intake {
    /// `wake` tells the scheduler a job is ready (`Scheduler::waker`).
    pub fn new(store: Arc<Store>, wake: Arc<dyn Fn() + Send + Sync>) -> Intake {
        Intake {
            store,
            wake,
            counts: Default::default(),
            gate: Default::default(),
        }
    }

    /// Shares the intake counts with the other doors (and `/v2/status`).
    pub fn with_counts(mut self, counts: Arc<IntakeCounts>) -> Intake {
        self.counts = counts;
        self
    }

    /// Shares the appliance's gate (closed when it stops).
    pub fn with_gate(mut self, gate: IntakeGate) -> Intake {
        self.gate = gate;
        self
    }

    pub fn counts(&self) -> &Arc<IntakeCounts> {
        &self.counts
    }

    /// Whether the box is stopping. Each edge asks at its own moment (the
    /// API and the printers before they read a request; SMTP finishes a
    /// message already in DATA and answers its next command 421), so
    /// `submit` does not ask.
    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    /// Tells the scheduler something changed (a job queued, cancelled or
    /// due now).
    pub fn wake(&self) {
        (self.wake)();
    }

    /// The one intake path: the sender rule for each faxbox, the faxbox's
    /// defaults and the notification list for each fax, the documents
    /// prepared once (drawn now when several numbers share them), then one
    /// commit, the scheduler woken and the faxes counted.
    pub fn submit(&self, request: Request<'_>) -> Result<Committed, Refusal> {
        let mut owners: BTreeMap<String, Option<String>> = BTreeMap::new();
        for faxbox in request.recipients.iter().filter_map(|r| r.faxbox.as_ref()) {
            if !owners.contains_key(faxbox.id.as_str()) {
                let owner = check_sender(&self.store, &request.sender, faxbox)?;
                owners.insert(faxbox.id.to_string(), owner);
            }
        }
        let inputs = documents::with_password(request.documents, request.password.as_deref());
        let stored = prepare(inputs, request.recipients.len(), request.convert)?;
        let mut jobs = Vec::with_capacity(request.recipients.len());
        for recipient in request.recipients {
            let owner = recipient
                .faxbox
                .as_ref()
                .and_then(|f| owners.get(f.id.as_str()).cloned().flatten());
            jobs.push(self.fill(recipient, &request.sender, owner.as_deref())?);
        }
        let (faxes, print_job) = self.commit(request.commit, jobs, stored)?;
        self.wake();
        if let Some(first) = faxes.first() {
            self.counts
                .count_for(request.door, &first.account_id, faxes.len() as u64);
        }
        Ok(Committed { faxes, print_job })
    }

    /// A fax as the request gives it, with the faxbox's values where it
    /// gives none.
    fn fill(
        &self,
        recipient: Recipient,
        sender: &Sender,
        owner: Option<&str>,
    ) -> Result<NewFax, StoreError> {
        let Recipient {
            account,
            faxbox,
            number,
            normalized,
            to_name,
            given,
        } = recipient;
        let f = faxbox.as_ref();
        let retries = match (given.retries, f) {
            (Some(r), _) => r,
            (None, Some(f)) => f.retries,
            // Without a faxbox, the account's default_retry_count (issue 21).
            (None, None) => default_retries(&self.store, &account)?,
        };
        Ok(NewFax {
            faxbox_id: f.map(|f| f.id.clone()),
            to_number: number,
            to_number_normalized: normalized,
            to_name,
            from_number: given
                .from_number
                .or_else(|| f.and_then(|f| f.caller_id.clone())),
            from_name: given.from_name.or_else(|| f.map(|f| f.caller_name.clone())),
            fax_identity_number: given
                .fax_identity_number
                .or_else(|| f.and_then(|f| f.fax_identity.clone())),
            fax_identity_name: given
                .fax_identity_name
                .or_else(|| f.map(|f| f.fax_header.clone())),
            fax_timezone: given
                .fax_timezone
                .or_else(|| f.and_then(|f| f.fax_timezone.clone())),
            retries,
            notify_email: notify_list(
                given.notify,
                sender,
                owner,
                f.map_or(&[], |f| &f.notifications.outbound.send_to),
            ),
            subject: given.subject,
            send_at: given.send_at,
            priority: given.priority,
            cover_page: given.cover_page,
            cover_note: given.cover_note,
            account_id: account,
        })
    }

    fn commit(
        &self,
        commit: Commit,
        jobs: Vec<NewFax>,
        stored: Vec<NewDocument>,
    ) -> Result<(Vec<Fax>, Option<i64>), StoreError> {
        let store = &self.store;
        Ok(match commit {
            Commit::Jobs => (store.create_jobs(jobs, stored, JobStatus::Pending)?, None),
            Commit::PrintJob(id) => (store.print_job_faxes(id, jobs, stored)?, Some(id)),
            Commit::NewPrintJob { name, user, cover } => {
                let faxbox = jobs
                    .first()
                    .and_then(|j| j.faxbox_id.clone())
                    .ok_or_else(|| StoreError::Conflict("a print job needs a faxbox".into()))?;
                let numbers: Vec<String> = jobs
                    .iter()
                    .map(|j| j.to_number_normalized.clone())
                    .collect();
                let job =
                    store.create_print_job(&faxbox, &name, &user, &numbers, cover.as_ref())?;
                (store.print_job_faxes(job.id, jobs, stored)?, Some(job.id))
            }
        })
    }
}

/// The documents, checked before anything is stored (docs/architecture.md,
/// invariant 4). Several numbers share one fax image, drawn once now
/// (issue 22); one number's PDF is drawn when it is sent.
fn prepare(
    inputs: Vec<Input>,
    numbers: usize,
    convert: &ConvertOptions,
) -> Result<Vec<NewDocument>, Refusal> {
    match numbers {
        1 => documents::prepare_for_intake(inputs, convert),
        _ => documents::prepare_for_batch(inputs, convert),
    }
    .map_err(Refusal::Document)
}

/// The attempts a fax without a faxbox or its own `retries` gets: the
/// account's `default_retry_count`, 1 to 4.
pub fn default_retries(store: &Store, account: &AccountId) -> Result<u8, StoreError> {
    let value = store.setting(Some(account), "default_retry_count")?.value;
    Ok(value.as_u64().map_or(1, |n| n.clamp(1, 4) as u8))
}

/// The one notification-list rule for a new fax, whatever its door: the
/// request's own list when it gives one (the API's
/// `notifications.email.send_to`, docs/kazoo.md 10.2: the fax's own list
/// comes first); otherwise Kazoo's email-to-fax list (docs/kazoo.md 6.6),
/// the sorted unique union of whoever asked (an email's sender, a printer's
/// logged-in user; an API key names nobody), the faxbox owner's email and
/// the faxbox's outbound list. Addresses that are not email addresses (the
/// null sender) are left out.
pub fn notify_list(
    given: Option<Vec<String>>,
    sender: &Sender,
    owner: Option<&str>,
    outbound: &[String],
) -> Vec<String> {
    if let Some(list) = given {
        return list;
    }
    let asker = match sender {
        Sender::Address(a) => Some(a.as_str()),
        Sender::Account(_) | Sender::Anonymous => None,
    };
    let mut list: Vec<String> = asker
        .into_iter()
        .chain(owner)
        .chain(outbound.iter().map(String::as_str))
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| is_email(a))
        .collect();
    list.sort();
    list.dedup();
    list
}

/// The sender rule (docs/kazoo.md 6.5), the same at every door: an API key
/// may use its own account's faxboxes (docs/architecture.md, invariant 5); a
/// person by address may when they own the faxbox, match one of its
/// `smtp_permission_list` entries, or are a user of its account; a printer
/// client without a login was admitted by the printer's networks. Returns
/// the faxbox owner's email (lower-cased) for the notification list.
pub fn check_sender(
    store: &Store,
    sender: &Sender,
    faxbox: &Faxbox,
) -> Result<Option<String>, Refusal> {
    let owner = owner_email(store, faxbox)?;
    match sender {
        Sender::Account(account) if *account != faxbox.account_id => Err(Refusal::NotAllowed(
            format!("faxbox {} is not a faxbox of this account", faxbox.id),
        )),
        Sender::Account(_) | Sender::Anonymous => Ok(owner),
        Sender::Address(address) => {
            may_use(store, address, faxbox, owner.as_deref())?;
            Ok(owner)
        }
    }
}

/// The faxbox owner's email, lower-cased; `None` without an owner (or one
/// deleted since).
pub fn owner_email(store: &Store, faxbox: &Faxbox) -> Result<Option<String>, StoreError> {
    match &faxbox.owner_id {
        Some(id) => match store.user(id) {
            Ok(u) => Ok(Some(u.email.to_lowercase())),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

/// docs/kazoo.md 6.5 for an address, plus Faxbox's rule that every user of
/// the faxbox's account may use it.
fn may_use(
    store: &Store,
    sender: &str,
    faxbox: &Faxbox,
    owner_email: Option<&str>,
) -> Result<(), Refusal> {
    let rules: Vec<&String> = faxbox
        .smtp_permission_list
        .iter()
        .filter(|e| !e.trim().is_empty())
        .collect();
    if owner_email.is_some_and(|o| o.eq_ignore_ascii_case(sender))
        || rules.iter().any(|e| permits(e, sender))
        || !store.users_by_email(&faxbox.account_id, sender)?.is_empty()
    {
        return Ok(());
    }
    if rules.is_empty() && owner_email.is_none() {
        if store.setting_bool(Some(&faxbox.account_id), "allow_all_addresses_when_empty")? {
            return Ok(());
        }
        return Err(Refusal::NotAllowed(
            "faxbox permissions is empty and policy doesn't allow it".into(),
        ));
    }
    let who = if sender.is_empty() {
        "the null sender <>".to_owned()
    } else {
        format!("address {sender}")
    };
    Err(Refusal::NotAllowed(format!(
        "{who} is not allowed on faxbox {}",
        faxbox.id
    )))
}

/// One `smtp_permission_list` entry against a sender: an exact address,
/// `@domain` for everyone at that domain, or a regular expression that
/// must match the whole address (Kazoo's unanchored match let `example.com`
/// admit `bob@notexample.com.evil`, docs/kazoo.md 13 item 5). Case never
/// matters.
pub fn permits(entry: &str, sender: &str) -> bool {
    let entry = entry.trim();
    if entry.is_empty() {
        return false;
    }
    if entry.eq_ignore_ascii_case(sender) {
        return true;
    }
    if let Some(domain) = entry.strip_prefix('@') {
        return sender
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain));
    }
    // A plain address is only ever an exact address: its dots are not
    // "any character".
    if is_email(entry) {
        return false;
    }
    RegexBuilder::new(&format!("^(?:{entry})$"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .is_ok_and(|re| re.is_match(sender))
}

/// Faxes accepted today by each door, counted as they are accepted, and
/// by the API for each account since it started. Kept in memory (the store
/// does not say which door a fax came in by): a restart counts again from
/// zero, and `since` says from when.
#[derive(Debug)]
pub struct IntakeCounts {
    day: Mutex<IntakeDay>,
    started: UnixTime,
    api_by_account: Mutex<BTreeMap<AccountId, u64>>,
}

/// One day's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeDay {
    pub day_start: UnixTime,
    /// Counted since (midnight, or the start of this process).
    pub since: UnixTime,
    pub api: u64,
    pub smtp: u64,
    pub ipp: u64,
}

impl Default for IntakeCounts {
    fn default() -> Self {
        IntakeCounts {
            day: Mutex::new(IntakeDay {
                day_start: crate::timezone::local_day_start(),
                since: now(),
                api: 0,
                smtp: 0,
                ipp: 0,
            }),
            started: now(),
            api_by_account: Default::default(),
        }
    }
}

impl IntakeCounts {
    /// Counts `faxes` accepted by `door`.
    pub fn count(&self, door: Door, faxes: u64) {
        let mut day = self.on(crate::timezone::local_day_start());
        match door {
            Door::Api => day.api += faxes,
            Door::Smtp => day.smtp += faxes,
            Door::Ipp => day.ipp += faxes,
        }
        *self.day.lock().unwrap_or_else(|e| e.into_inner()) = day;
    }

    /// Counts `faxes` of `account` accepted by `door` (`/v2/status` shows
    /// each account what the API took for it).
    fn count_for(&self, door: Door, account: &AccountId, faxes: u64) {
        self.count(door, faxes);
        if door == Door::Api {
            *self
                .api_by_account
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(account.clone())
                .or_default() += faxes;
        }
    }

    /// Today's faxes accepted by (the API, email, the printers).
    pub fn today(&self) -> (u64, u64, u64) {
        let day = self.on(crate::timezone::local_day_start());
        (day.api, day.smtp, day.ipp)
    }

    /// When the API's per-account counts started, and the counts.
    pub fn api_by_account(&self) -> (UnixTime, BTreeMap<AccountId, u64>) {
        let counts = self
            .api_by_account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (self.started, counts)
    }

    /// The counts of the day starting at `day_start` (zero once the day
    /// has changed).
    pub fn on(&self, day_start: UnixTime) -> IntakeDay {
        let mut day = self.day.lock().unwrap_or_else(|e| e.into_inner());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_entries_match_whole_addresses_in_any_case() {
        let cases: &[(&str, &str, bool)] = &[
            ("bob@acme.example", "bob@acme.example", true),
            ("Bob@Acme.Example", "bob@acme.example", true),
            ("bob@acme.example", "bobXacme.example", false),
            ("bob@acme.example", "alice@acme.example", false),
            ("@acme.example", "alice@acme.example", true),
            ("@ACME.example", "alice@acme.example", true),
            ("@acme.example", "alice@sub.acme.example", false),
            ("@acme.example", "alice@notacme.example", false),
            (".*@acme\\.example", "carol@acme.example", true),
            (".*@acme\\.example", "carol@acme.example.evil", false),
            // Kazoo's substring match would admit this one.
            ("example.com", "bob@notexample.com.evil", false),
            (".*@(acme|widgets)\\.example", "dan@widgets.example", true),
            ("", "bob@acme.example", false),
            ("(", "(", true),
            ("[", "x@acme.example", false),
        ];
        for (entry, sender, want) in cases {
            assert_eq!(permits(entry, sender), *want, "{entry:?} vs {sender:?}");
        }
    }

    #[test]
    fn the_notify_list_is_the_requests_own_or_the_askers_the_owners_and_the_faxboxs() {
        let outbound = ["Desk@Acme.example".to_owned(), "bad".to_owned()];
        let bob = Sender::Address("bob@acme.example".into());
        let owner = Some("owner@acme.example");
        // An email or a logged-in printer user: all three, sorted, once each.
        assert_eq!(
            notify_list(None, &bob, owner, &outbound),
            [
                "bob@acme.example",
                "desk@acme.example",
                "owner@acme.example"
            ]
        );
        // An API key names nobody; the null sender is no address.
        let key = Sender::Account(AccountId("a".into()));
        for sender in [&key, &Sender::Anonymous, &Sender::Address(String::new())] {
            assert_eq!(
                notify_list(None, sender, owner, &outbound),
                ["desk@acme.example", "owner@acme.example"]
            );
        }
        // The request's own list wins, as given.
        assert_eq!(
            notify_list(Some(vec!["x@y.example".into()]), &bob, owner, &outbound),
            ["x@y.example"]
        );
        assert!(notify_list(None, &key, None, &[]).is_empty());
    }

    #[test]
    fn intake_counts_start_again_each_day() {
        let counts = IntakeCounts::default();
        let account = AccountId("a".into());
        counts.count_for(Door::Api, &account, 2);
        counts.count_for(Door::Smtp, &account, 3);
        counts.count(Door::Ipp, 4);
        let today = crate::timezone::local_day_start();
        let day = counts.on(today);
        assert_eq!((day.api, day.smtp, day.ipp), (2, 3, 4));
        assert!(day.since <= now());
        let tomorrow = counts.on(today + 86_400);
        assert_eq!((tomorrow.api, tomorrow.smtp, tomorrow.ipp), (0, 0, 0));
        assert_eq!(tomorrow.since, today + 86_400, "counted from midnight");
        // Only the API counts by account.
        assert_eq!(counts.api_by_account().1[&account], 2);
    }
}
