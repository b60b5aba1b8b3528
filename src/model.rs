//! The domain types every part shares: ids, accounts, faxboxes, fax jobs and
//! their attempts, with the validation rules that make a value legal.
//!
//! Nothing here touches SQL, HTTP or SpanDSP: the store persists these types,
//! the protocol edges convert to and from them. Field names follow Kazoo
//! (docs/kazoo.md 1) so that the API can speak Kazoo's JSON unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch; the store's clock.
pub type UnixTime = i64;

/// Kazoo timestamps are Gregorian seconds (docs/kazoo.md 1.1).
pub const GREGORIAN_UNIX_OFFSET: i64 = 62_167_219_200;

pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn to_gregorian(t: UnixTime) -> i64 {
    t + GREGORIAN_UNIX_OFFSET
}

/// A random id of 32 lowercase hex characters, Kazoo's `rand_hex(16)`.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new() -> Self {
                Self(new_id())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_type!(
    /// An account: one office, one tenant. Nothing crosses between accounts.
    AccountId
);
id_type!(
    /// A person in an account who may own faxboxes and send by email.
    UserId
);
id_type!(
    /// A faxbox: a virtual fax machine with its own address and numbers.
    FaxboxId
);
id_type!(
    /// A fax: an outbound job (outbox) or a received fax (inbox).
    FaxId
);
id_type!(
    /// A batch: the fax jobs made from one request to several numbers
    /// (issue 22), one document converted once.
    BatchId
);

/// An enum kept in the store and shown to people as one word per variant:
/// `as_str`, `FromStr`, `Display`, serde and the list of all variants, from
/// one table.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("{s:?} is not {}", $what))
            }
        }
    };
}

/// A validation problem with one field, phrased for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's path, dot-separated as Kazoo writes it
    /// (`notifications.inbound.email.send_to`).
    pub field: String,
    /// Kazoo's validation code (`required`, `unique`, `maxLength`, ...).
    pub code: &'static str,
    pub message: String,
    /// What the rule asked for (a bound, a type, a pattern), when it has
    /// one (boxed: most errors have none, and errors stay small).
    pub target: Option<Box<serde_json::Value>>,
    /// The value that broke the rule.
    pub value: Option<Box<serde_json::Value>>,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message: message.into(),
            target: None,
            value: None,
        }
    }

    /// The rule's target and the offending value, as Kazoo's schema errors
    /// carry them.
    pub fn with(
        mut self,
        target: Option<serde_json::Value>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.target = target.map(Box::new);
        self.value = Some(Box::new(value.into()));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    /// The mail domain whose `<number>@realm` addresses reach this account
    /// (docs/kazoo.md 6.3 step 2).
    pub realm: Option<String>,
    /// An admin account may manage other accounts.
    pub is_admin: bool,
    pub created: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    /// Where the user's faxes and receipts are mailed; a user made without
    /// one has a placeholder at `NO_EMAIL_DOMAIN` (`email_address` is
    /// `None`).
    pub email: String,
    pub name: String,
    pub created: UnixTime,
    /// The login name of Kazoo's `user_auth`, when the user has a login.
    #[serde(default)]
    pub username: Option<String>,
    /// Kazoo's other user fields (`first_name`, `last_name`, `timezone`,
    /// `priv_level`) and any key a client stored, as given.
    #[serde(default)]
    pub doc: serde_json::Map<String, serde_json::Value>,
}

/// The domain of the placeholder address of a user without an email: the
/// `.invalid` top-level domain (RFC 2606) never receives mail.
pub const NO_EMAIL_DOMAIN: &str = "no-email.invalid";

impl User {
    /// The user's real email address, if it has one.
    pub fn email_address(&self) -> Option<&str> {
        (!self.email.ends_with(&format!("@{NO_EMAIL_DOMAIN}"))).then_some(self.email.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub account_id: AccountId,
    pub label: String,
    pub created: UnixTime,
    pub revoked: Option<UnixTime>,
}

/// Email recipients of one kind of notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTargets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub send_to: Vec<String>,
}

/// A faxbox's cover page (issue 22): whether its faxes get one unless a
/// fax says otherwise, and its own template (`documents::cover` says the
/// form; `None`, the built-in one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverPage {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl CoverPage {
    fn is_default(&self) -> bool {
        *self == CoverPage::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaxboxNotifications {
    #[serde(default)]
    pub inbound: EmailTargets,
    #[serde(default)]
    pub outbound: EmailTargets,
}

/// Kazoo's faxbox (docs/kazoo.md 1.2), with the inbound numbers that ring it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faxbox {
    pub id: FaxboxId,
    pub account_id: AccountId,
    pub name: String,
    pub caller_id: Option<String>,
    pub caller_name: String,
    pub fax_header: String,
    pub fax_identity: Option<String>,
    pub fax_timezone: Option<String>,
    /// Total attempts a job from this faxbox gets (docs/kazoo.md 5.1).
    pub retries: u8,
    pub owner_id: Option<UserId>,
    /// Generated `<8 hex>.<default_smtp_domain>`, read-only.
    pub smtp_email_address: String,
    pub custom_smtp_email_address: Option<String>,
    pub smtp_permission_list: Vec<String>,
    pub notifications: FaxboxNotifications,
    /// T.38 preference for inbound calls (`media.fax_option`).
    pub fax_option: Option<bool>,
    pub flags: Vec<String>,
    pub log_errors: Option<bool>,
    /// The called numbers (DIDs) that ring this faxbox, unique on the box.
    pub numbers: Vec<String>,
    /// When its faxes may ring out (`sending_window`); empty: any time.
    #[serde(default)]
    pub sending_windows: Vec<String>,
    /// Its cover page (issue 22).
    #[serde(default, skip_serializing_if = "CoverPage::is_default")]
    pub cover_page: CoverPage,
    pub created: UnixTime,
    pub modified: UnixTime,
    /// Every other field a client stored on the faxbox (Monster UI's
    /// `ui_metadata`, the `sms` and `callback` notification settings...),
    /// kept and returned as given, as Kazoo keeps any key of a document.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Kazoo's defaults for a new faxbox's identity, re-branded.
pub const DEFAULT_CALLER_NAME: &str = "Faxbox";
/// Kazoo's code uses 3 attempts when a faxbox sets none (docs/kazoo.md 1.2).
pub const DEFAULT_FAXBOX_RETRIES: u8 = 3;

/// Fields of a faxbox as a client gives them: `None` means "not given".
/// Used for create (missing fields take defaults) and for update/patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaxboxFields {
    pub name: Option<String>,
    pub caller_id: Option<String>,
    pub caller_name: Option<String>,
    pub fax_header: Option<String>,
    pub fax_identity: Option<String>,
    pub fax_timezone: Option<String>,
    pub retries: Option<i64>,
    pub owner_id: Option<UserId>,
    pub custom_smtp_email_address: Option<String>,
    pub smtp_permission_list: Option<Vec<String>>,
    pub notifications: Option<FaxboxNotifications>,
    pub fax_option: Option<bool>,
    pub flags: Option<Vec<String>>,
    pub log_errors: Option<bool>,
    pub numbers: Option<Vec<String>>,
    /// When its faxes may ring out, e.g. `["mon-fri 08:00-18:00"]`
    /// (`sending_window`); an empty list lifts the limit.
    pub sending_windows: Option<Vec<String>>,
    /// Its cover page: on by default for its faxes or not, and its template.
    pub cover_page: Option<CoverPage>,
    /// In Kazoo's schema (0 to 4) but meaningless on a faxbox; checked only.
    pub attempts: Option<i64>,
    /// The client's own fields, kept and returned as given (`None`: keep).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl FaxboxFields {
    /// Checks what can be checked without the store (uniqueness needs it);
    /// the first problem (see `problems` for all of them).
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        match self.problems(creating).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every rule of Kazoo's `faxbox.json` the fields break, each with its
    /// path, rule name, target and value, so one reply can name them all.
    pub fn problems(&self, creating: bool) -> Vec<FieldError> {
        let mut problems = Vec::new();
        match &self.name {
            None if creating => {
                problems.push(FieldError::new("name", "required", "a faxbox needs a name"));
            }
            Some(n) if n.trim().is_empty() => problems.push(
                FieldError::new("name", "minLength", "a faxbox's name must not be empty")
                    .with(Some(1.into()), n.as_str()),
            ),
            Some(n) if n.chars().count() > 128 => problems.push(
                FieldError::new(
                    "name",
                    "maxLength",
                    "a faxbox's name must not be more than 128 characters",
                )
                .with(Some(128.into()), n.as_str()),
            ),
            _ => {}
        }
        for (key, value) in [("retries", self.retries), ("attempts", self.attempts)] {
            let Some(r) = value else { continue };
            let message =
                |bound: &str| format!("{key} is a number of attempts from 0 to 4; {r} is {bound}");
            if r < 0 {
                problems.push(
                    FieldError::new(key, "minimum", message("below 0")).with(Some(0.into()), r),
                );
            } else if r > 4 {
                problems.push(
                    FieldError::new(key, "maximum", message("above 4")).with(Some(4.into()), r),
                );
            }
        }
        if let Some(domain) = &self.custom_smtp_email_address
            && !is_domain(domain)
        {
            problems.push(
                FieldError::new(
                    "custom_smtp_email_address",
                    "format",
                    format!("{domain:?} is not a mail domain such as fax.example.com"),
                )
                .with(None, domain.as_str()),
            );
        }
        if let Some(tz) = &self.fax_timezone
            && let Err(e) = crate::timezone::check(tz)
        {
            problems.push(FieldError::new("fax_timezone", "format", e).with(None, tz.as_str()));
        }
        for pattern in self.smtp_permission_list.iter().flatten() {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.push(
                    FieldError::new(
                        "smtp_permission_list",
                        "format",
                        format!("{pattern:?} is not a valid pattern: {e}"),
                    )
                    .with(None, pattern.as_str()),
                );
            }
        }
        // The caller ID goes into every call this faxbox places.
        if let Some(caller_id) = self.caller_id.as_deref().filter(|c| !c.is_empty())
            && let Err(e) = check_fax_number("caller_id", caller_id, ServiceNumbers::Refused)
        {
            problems.push(
                FieldError::new(
                    "caller_id",
                    "format",
                    format!("the caller ID must be a phone number ({})", e.message),
                )
                .with(None, caller_id),
            );
        }
        for number in self.numbers.iter().flatten() {
            if digits_of(number).is_empty() {
                problems.push(
                    FieldError::new(
                        "numbers",
                        "format",
                        format!("{number:?} is not a phone number"),
                    )
                    .with(None, number.as_str()),
                );
            }
        }
        if let Some(template) = self.cover_page.as_ref().and_then(|c| c.template.as_deref())
            && let Err(e) = crate::documents::cover::check_template(template)
        {
            problems.push(FieldError::new("cover_page.template", "format", e).with(
                None,
                template.chars().take(200).collect::<String>().as_str(),
            ));
        }
        for window in self.sending_windows.iter().flatten() {
            if let Err(e) = window.parse::<crate::sending_window::SendingWindow>() {
                problems.push(
                    FieldError::new("sending_windows", "format", e).with(None, window.as_str()),
                );
            }
        }
        if let Some(n) = &self.notifications {
            for (direction, targets) in [("inbound", &n.inbound), ("outbound", &n.outbound)] {
                for email in targets.send_to.iter().filter(|e| !is_email(e)) {
                    problems.push(
                        FieldError::new(
                            &format!("notifications.{direction}.email.send_to"),
                            "format",
                            format!("{email:?} is not an email address"),
                        )
                        .with(Some("email".into()), email.as_str()),
                    );
                }
            }
        }
        problems
    }
}

/// A bare mail domain: labels of letters, digits and hyphens.
pub fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !local.contains(char::is_whitespace) && is_domain(domain)
        }
        None => false,
    }
}

/// The digits of a dialled number, as Kazoo's email path keeps them
/// (docs/kazoo.md 6.4): `+1 (555) 123-4567` -> `15551234567`.
pub fn digits_of(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Whether emergency and service numbers may be dialled (the fax setting
/// `allow_service_numbers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceNumbers {
    Refused,
    Allowed,
}

/// Emergency numbers of the numbering plans a fax box meets (ITU-T E.161.1
/// recommends 112 and 911; 999 and 000 are the UK's and Australia's, 110 and
/// 119 Japan's and China's), also behind an outside-line prefix 9 or 0.
const EMERGENCY_NUMBERS: [&str; 6] = ["911", "112", "999", "000", "110", "119"];

/// Whether a dialled number (digits, no `+`) reaches an emergency or
/// service number rather than a subscriber: an emergency number, a NANP
/// N11 code (211 to 911: information, repair, relay) or a three-digit
/// short code starting with 1 (Europe's 1xx services), alone or after an
/// outside-line prefix.
fn is_service_number(digits: &str) -> bool {
    let short = |d: &str| {
        let b = d.as_bytes();
        d.len() == 3 && (EMERGENCY_NUMBERS.contains(&d) || b[0] == b'1' || &d[1..] == "11")
    };
    short(digits)
        || (digits.len() == 4
            && (digits.starts_with('9') || digits.starts_with('0'))
            && EMERGENCY_NUMBERS.contains(&&digits[1..]))
}

/// The one check of a fax number, for every way a fax comes in (API,
/// email, IPP, the CLI through the API) and for the caller IDs of
/// faxboxes (issue 18 item 8): `field` names it in the error. Returns the
/// number as the scheduler dials and serializes it; nothing else reaches
/// a line, whose dial strings take it as it is (issue 25).
///
/// Kazoo's default E.164 converters (docs/kazoo.md 11.3): a NANP number of 10
/// digits starting 2-9 (or 11 with the leading 1) becomes `+1...` (Kazoo
/// also wants the exchange to start 2-9, else it reads the number as
/// international; test numbers like 555-1234 are common, so Faxbox does
/// not); `011...` and `00...` become `+...`; a `+` number of 8 or more
/// digits starting 2-9 stays international. Kazoo refuses everything else;
/// an office fax box also dials local numbers and extensions, so any other
/// 3 to 20 digits are kept as dialled (Faxbox's choice). Spaces, dashes,
/// dots and brackets are ignored; letters, control characters, a `+`
/// anywhere but first, a country code starting 0 (E.164 has none), an
/// all-zero number and (unless `service` allows them) emergency and
/// service numbers are errors.
pub fn check_fax_number(
    field: &str,
    raw: &str,
    service: ServiceNumbers,
) -> Result<String, FieldError> {
    let trimmed = raw.trim_matches(' ');
    let invalid = |why: &str| {
        FieldError::new(
            field,
            "format",
            format!(
                "invalid fax number: {}: {why}",
                if trimmed.is_empty() {
                    "(empty)".to_owned()
                } else {
                    trimmed.escape_debug().to_string()
                }
            ),
        )
    };
    if trimmed
        .chars()
        .any(|c| !(c.is_ascii_digit() || " -.()+".contains(c)))
        || trimmed.rfind('+').is_some_and(|i| i > 0)
    {
        return Err(invalid(
            "a fax number has only digits, spaces, dashes and a leading +",
        ));
    }
    let plus = trimmed.starts_with('+');
    let digits = digits_of(trimmed);
    if digits.len() < 3 || digits.len() > 20 {
        return Err(invalid("a fax number has 3 to 20 digits"));
    }
    if digits.bytes().all(|b| b == b'0') && digits != "000" {
        return Err(invalid("a fax number cannot be all zeros"));
    }
    if plus && digits.starts_with('0') {
        return Err(invalid(
            "after the + comes the country code, which starts with 1 to 9",
        ));
    }
    if !plus && is_service_number(&digits) {
        return match service {
            ServiceNumbers::Refused => Err(invalid(
                "emergency and service numbers (such as 911, 112, 999 and other short codes) are not faxed; an administrator can allow them with the fax setting allow_service_numbers",
            )),
            // Dialled as they are: `000` is no international prefix.
            ServiceNumbers::Allowed => Ok(digits),
        };
    }
    let nanp = |d: &str| {
        let b = d.as_bytes();
        d.len() == 10 && (b'2'..=b'9').contains(&b[0])
    };
    Ok(if plus {
        format!("+{digits}")
    } else if nanp(&digits) {
        format!("+1{digits}")
    } else if digits.len() == 11 && digits.starts_with('1') && nanp(&digits[1..]) {
        format!("+{digits}")
    } else if let Some(rest) = digits
        .strip_prefix("011")
        .or_else(|| digits.strip_prefix("00"))
    {
        if rest.is_empty() {
            return Err(invalid("an international prefix needs a number after it"));
        }
        if rest.starts_with('0') {
            return Err(invalid(
                "after the international prefix comes the country code, which starts with 1 to 9",
            ));
        }
        format!("+{rest}")
    } else {
        digits
    })
}

word_enum! {
    /// Kazoo's job states (docs/kazoo.md 3.1), one word each; `cancelled` is ours.
    pub enum JobStatus ("a job status") {
        /// Accepted; the documents are still being converted.
        AttachingFiles => "attaching_files",
        /// Waiting for its due time and a free line.
        Pending => "pending",
        /// On a line now.
        Processing => "processing",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The job state machine's edges (docs/kazoo.md 3.2, without Kazoo's
    /// `locked`: a claim moves `pending` straight to `processing` in one
    /// transaction, so there is no state to leak).
    pub fn may_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (AttachingFiles, Pending)
                | (AttachingFiles, Failed)
                | (AttachingFiles, Cancelled)
                | (Pending, Processing)
                | (Pending, Cancelled)
                | (Processing, Pending)
                | (Processing, Completed)
                | (Processing, Failed)
                | (Processing, Cancelled)
        )
    }
}

word_enum! {
    /// Where a fax lives: sent and to-send faxes in the outbox, received ones
    /// in the inbox (Kazoo's `folder`).
    pub enum Folder ("a folder (inbox or outbox)") {
        Inbox => "inbox",
        Outbox => "outbox",
    }
}

word_enum! {
    /// Which due faxes go first (issue 22): a high fax overtakes normal and
    /// low ones waiting for a line; the account's `max_outbound` and the
    /// one call per number still hold.
    pub enum Priority ("a priority: low, normal or high") {
        Low => "low",
        Normal => "normal",
        High => "high",
    }
}

// `word_enum!` derives one list for every enum; most have no default.
#[allow(clippy::derivable_impls)]
impl Default for Priority {
    fn default() -> Self {
        Priority::Normal
    }
}

impl Priority {
    /// The store's number for it: higher goes first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    pub fn from_rank(rank: i64) -> Priority {
        match rank {
            i64::MIN..=0 => Priority::Low,
            1 => Priority::Normal,
            _ => Priority::High,
        }
    }
}

/// An outbound job or a received fax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fax {
    pub id: FaxId,
    pub account_id: AccountId,
    pub faxbox_id: Option<FaxboxId>,
    pub folder: Folder,
    /// `None` for received faxes (Kazoo writes no status on inbox docs).
    pub status: Option<JobStatus>,
    pub to_number: String,
    /// The number the scheduler serializes on (E.164 when it normalizes).
    pub to_number_normalized: String,
    pub to_name: Option<String>,
    pub from_number: Option<String>,
    pub from_name: Option<String>,
    pub fax_identity_number: Option<String>,
    pub fax_identity_name: Option<String>,
    pub fax_timezone: Option<String>,
    /// Total attempts allowed (docs/kazoo.md 5.1; 0 behaves like 1).
    pub retries: u8,
    /// Attempts made that count against `retries`.
    pub attempts: u8,
    /// Seconds to wait before the next attempt, as last decided.
    pub retry_after: i64,
    /// When the job may next be put on a line.
    pub due_at: UnixTime,
    /// The time its sender asked it to go no earlier than (issue 22).
    pub send_at: Option<UnixTime>,
    pub priority: Priority,
    pub notify_email: Vec<String>,
    pub subject: Option<String>,
    /// A cover page before the document (issue 22): `None` does as the
    /// faxbox says when the fax is sent.
    #[serde(default)]
    pub cover_page: Option<bool>,
    /// The note on the cover page.
    #[serde(default)]
    pub cover_note: Option<String>,
    /// Why the job failed or was cancelled, when it did.
    pub error: Option<String>,
    /// How the receive went, for received faxes (Kazoo's `rx_result`).
    pub rx_result: Option<RxResult>,
    /// The batch this job belongs to, when its request named several numbers.
    #[serde(default)]
    pub batch_id: Option<BatchId>,
    pub created: UnixTime,
    pub modified: UnixTime,
}

/// The result of receiving a fax (docs/kazoo.md 1.5 `rx_result`, one shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RxResult {
    pub success: bool,
    /// The call ended before the sender finished: these are the pages
    /// that arrived.
    pub partial: bool,
    pub pages: u32,
    pub bit_rate: u32,
    pub ecm: bool,
    pub remote_station_id: String,
    /// T.30 completion code (FreeSWITCH `fax_result_code`).
    pub result_code: i64,
    pub result_text: String,
    pub duration_s: f64,
    pub caller_number: String,
    pub line: String,
}

/// A fax a line received, to be put in a faxbox's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReceivedFax {
    /// Chosen before the fax is stored, so that the mail announcing it,
    /// composed first and queued in the same transaction, names it.
    pub id: FaxId,
    pub account_id: AccountId,
    pub faxbox_id: FaxboxId,
    pub from_number: String,
    pub from_name: Option<String>,
    pub to_number: String,
    pub rx_result: RxResult,
}

/// A call being received: recorded before the line answers, so that pages
/// that arrived before a crash are delivered after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reception {
    pub call_id: String,
    pub line: String,
    pub account_id: AccountId,
    pub faxbox_id: FaxboxId,
    pub from_number: String,
    pub to_number: String,
    pub tiff: std::path::PathBuf,
    pub started: UnixTime,
}

/// What a client submits to create an outbound job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewFax {
    pub account_id: AccountId,
    pub faxbox_id: Option<FaxboxId>,
    pub to_number: String,
    pub to_number_normalized: String,
    pub to_name: Option<String>,
    pub from_number: Option<String>,
    pub from_name: Option<String>,
    pub fax_identity_number: Option<String>,
    pub fax_identity_name: Option<String>,
    pub fax_timezone: Option<String>,
    pub retries: u8,
    pub notify_email: Vec<String>,
    pub subject: Option<String>,
    /// Not before this time; `None` or a time past means now.
    pub send_at: Option<UnixTime>,
    pub priority: Priority,
    /// A cover page before the document: `None` does as the faxbox says.
    pub cover_page: Option<bool>,
    pub cover_note: Option<String>,
}

word_enum! {
    /// Which form of a fax's document a stored blob is (docs/kazoo.md 1.4).
    pub enum DocumentKind ("a document kind") {
        /// As submitted (`original_file.<ext>`); a job may have several, in order.
        Original => "original",
        /// The fax-ready TIFF (`fax_file.tiff`).
        FaxTiff => "fax_tiff",
        /// A PDF rendering (`pdf_file.pdf`).
        Pdf => "pdf",
        /// What a line received (`received_file_<id>.tiff`).
        ReceivedTiff => "received_tiff",
    }
}

/// A document to store with a fax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    pub kind: DocumentKind,
    pub content_type: String,
    pub filename: String,
    pub pages: Option<u32>,
    pub bytes: Vec<u8>,
}

/// A stored document's description (its bytes are read separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentInfo {
    pub id: String,
    pub fax_id: FaxId,
    pub kind: DocumentKind,
    pub seq: u32,
    pub content_type: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    pub pages: Option<u32>,
    pub created: UnixTime,
}

word_enum! {
    /// How far an attempt got before it ended: the stage names of Kazoo's
    /// worker (docs/kazoo.md 3.3).
    pub enum AttemptStage ("an attempt stage") {
        Prepare => "prepare",
        Originate => "originate",
        Negotiate => "negotiate",
        Send => "send",
        End => "end",
    }
}

word_enum! {
    /// How an attempt ended.
    pub enum AttemptOutcome ("an attempt outcome") {
        Success => "success",
        Failure => "failure",
        /// The process stopped during the call (crash, power loss, kill -9);
        /// recorded at the next start (docs/architecture.md, invariant 2).
        Interrupted => "interrupted",
        Cancelled => "cancelled",
    }
}

/// One try at sending a job: a row per attempt, never overwritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: i64,
    pub fax_id: FaxId,
    /// 1 for the first attempt of the job.
    pub number: u32,
    pub line: String,
    pub started: UnixTime,
    pub ended: Option<UnixTime>,
    pub stage: AttemptStage,
    pub outcome: Option<AttemptOutcome>,
    pub report: AttemptReport,
}

/// What the line reported about an attempt; filled as far as it got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// T.30 completion code (FreeSWITCH `fax_result_code`), or a SIP-style
    /// code for failures before T.30 started (docs/kazoo.md 3.4).
    pub result_code: Option<i64>,
    pub result_text: Option<String>,
    /// Telephony hangup cause, e.g. `USER_BUSY`, `NO_ANSWER`.
    pub hangup_cause: Option<String>,
    pub pages_sent: u32,
    pub pages_total: u32,
    pub bit_rate: Option<u32>,
    pub ecm: Option<bool>,
    pub remote_station_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_machine_edges_are_legal() {
        use JobStatus::*;
        let legal = [
            (AttachingFiles, Pending),
            (AttachingFiles, Failed),
            (AttachingFiles, Cancelled),
            (Pending, Processing),
            (Pending, Cancelled),
            (Processing, Pending),
            (Processing, Completed),
            (Processing, Failed),
            (Processing, Cancelled),
        ];
        for &from in JobStatus::ALL {
            for &to in JobStatus::ALL {
                assert_eq!(
                    from.may_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
            // A terminal state has no way out (docs/architecture.md, invariant 2).
            if from.is_terminal() {
                assert!(JobStatus::ALL.iter().all(|to| !from.may_become(*to)));
            }
        }
    }

    #[test]
    fn status_words_round_trip() {
        for &st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>().unwrap(), st);
        }
        assert!("locked".parse::<JobStatus>().is_err());
    }

    #[test]
    fn faxbox_fields_are_checked() {
        let ok = FaxboxFields {
            name: Some("Front desk".into()),
            ..Default::default()
        };
        assert!(ok.validate(true).is_ok());
        let cases = [
            (FaxboxFields::default(), "name"),
            (
                FaxboxFields {
                    name: Some("".into()),
                    ..Default::default()
                },
                "name",
            ),
            (
                FaxboxFields {
                    retries: Some(5),
                    ..ok.clone()
                },
                "retries",
            ),
            (
                FaxboxFields {
                    custom_smtp_email_address: Some("not a domain".into()),
                    ..ok.clone()
                },
                "custom_smtp_email_address",
            ),
            (
                FaxboxFields {
                    smtp_permission_list: Some(vec!["(unclosed".into()]),
                    ..ok.clone()
                },
                "smtp_permission_list",
            ),
            (
                FaxboxFields {
                    numbers: Some(vec!["reception".into()]),
                    ..ok.clone()
                },
                "numbers",
            ),
            (
                FaxboxFields {
                    caller_id: Some("5559001,api_on_answer=system touch /tmp/x".into()),
                    ..ok.clone()
                },
                "caller_id",
            ),
        ];
        for (fields, field) in cases {
            assert_eq!(fields.validate(true).unwrap_err().field, field);
        }
        // An update need not repeat the name.
        assert!(FaxboxFields::default().validate(false).is_ok());
    }

    fn number(raw: &str) -> Result<String, FieldError> {
        check_fax_number("to_number", raw, ServiceNumbers::Refused)
    }

    #[test]
    fn numbers_normalize_as_kazoo_and_keep_local_ones() {
        let cases = [
            ("5551234567", "+15551234567"),
            ("+1 (555) 123-4567", "+15551234567"),
            ("1-555-123-4567", "+15551234567"),
            ("011 44 20 7946 0958", "+442079460958"),
            ("0033 1 23 45 67 89", "+33123456789"),
            ("+44 20 7946 0958", "+442079460958"),
            ("5550001", "5550001"),
            ("204", "204"),
            (" 5550001 ", "5550001"),
        ];
        for (raw, want) in cases {
            assert_eq!(number(raw).unwrap(), want, "{raw}");
        }
        for bad in [
            "",
            "  ",
            "12",
            "fax me",
            "555-CALL-NOW",
            "00",
            "123456789012345678901",
            "5551234\n",
            "555\n1234",
            "555\r\n1234",
            "\t5551234",
            "555\u{0}1234",
            "555+1234",
            "++15551234",
            "+0000000",
            "0000000",
            "+0123456789",
            "00 0123456",
            "5559001,api_on_answer=system touch /tmp/x",
        ] {
            let err = number(bad).unwrap_err();
            assert!(
                err.message.starts_with("invalid fax number"),
                "{bad:?}: {err:?}"
            );
            assert!(!err.message.contains(['\n', '\r']), "{err:?}");
        }
    }

    #[test]
    fn emergency_and_service_numbers_need_the_setting() {
        for service in [
            "911", "112", "999", "000", "110", "119", "411", "211", "118", "100", "1-1-2", "9911",
            "9112", "0112", "9 999",
        ] {
            let err = number(service).unwrap_err();
            assert!(
                err.message.contains("allow_service_numbers"),
                "{service}: {err:?}"
            );
            assert!(
                check_fax_number("to_number", service, ServiceNumbers::Allowed).is_ok(),
                "{service}"
            );
        }
        // Extensions and subscriber numbers are not service numbers; nor is
        // India (+91) dialled with its +.
        for ordinary in ["204", "311 555 0100", "9115", "+911123456789", "5550911"] {
            assert!(number(ordinary).is_ok(), "{ordinary}");
        }
        let err = check_fax_number("caller_id", "91 1", ServiceNumbers::Refused).unwrap_err();
        assert_eq!(err.field, "caller_id");
    }

    #[test]
    fn gregorian_matches_kazoo_docs() {
        // 63626410973 = 2016-03-28T19:02:53Z (docs/kazoo.md 1.1).
        assert_eq!(to_gregorian(1_459_191_773), 63_626_410_973);
    }
}
