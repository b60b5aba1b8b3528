//! `/v2/accounts/{A}/faxboxes`: Kazoo's faxbox JSON (docs/kazoo.md 1.2, 2.1)
//! converted to and from the domain's `FaxboxFields` and `Faxbox`.
//!
//! Kazoo nests what the domain keeps flat (`notifications.inbound.email.
//! send_to`, `media.fax_option`); the nesting lives only here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, Paging, document};
use crate::model::{
    AccountId, CoverPage, EmailTargets, Faxbox, FaxboxFields, FaxboxId, FaxboxNotifications,
    FieldError, UserId, to_gregorian,
};
use crate::store::UpdateMode;

/// `string` or `[string]`, as Kazoo's `send_to` accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `send_to` of a notification channel (`email`, `sms`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KazooChannel {
    send_to: Option<OneOrMany>,
}

/// Where a faxbox's results are posted (`faxbox.json`); stored and shown
/// now, and checked as the schema says.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KazooCallback {
    url: Option<String>,
    method: Option<String>,
    #[serde(rename = "type")]
    content: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KazooTarget {
    #[serde(default)]
    email: KazooChannel,
    /// Parsed so that its type is checked; SMS is not sent, the setting
    /// is kept as given.
    #[serde(default)]
    #[allow(dead_code)]
    sms: KazooChannel,
    callback: Option<KazooCallback>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KazooNotifications {
    #[serde(default)]
    inbound: KazooTarget,
    #[serde(default)]
    outbound: KazooTarget,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct KazooMedia {
    fax_option: Option<bool>,
}

/// A faxbox as a client sends it. Keys not named here are the client's
/// own and kept as given (`document::extra_keys`); read-only keys a client
/// sends back after a GET (`id`, `smtp_email_address`, `created`, ...) are
/// ignored, as Kazoo discards `smtp_email_address`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FaxboxInput {
    name: Option<String>,
    caller_id: Option<String>,
    caller_name: Option<String>,
    fax_header: Option<String>,
    fax_identity: Option<String>,
    fax_timezone: Option<String>,
    retries: Option<i64>,
    attempts: Option<i64>,
    owner_id: Option<String>,
    custom_smtp_email_address: Option<String>,
    smtp_permission_list: Option<Vec<String>>,
    notifications: Option<KazooNotifications>,
    media: Option<KazooMedia>,
    flags: Option<Vec<String>>,
    log_errors: Option<bool>,
    numbers: Option<Vec<String>>,
    /// Faxbox's own (issue 22): when its faxes may ring out.
    sending_windows: Option<OneOrMany>,
    /// Faxbox's own (issue 22): its faxes' cover page.
    cover_page: Option<CoverPageInput>,
}

/// `cover_page`: `enabled` (its faxes get one unless they say otherwise)
/// and `template` (a template of one's own; empty or left out: the
/// built-in one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverPageInput {
    enabled: Option<bool>,
    template: Option<String>,
}

/// The keys `FaxboxInput` models at the top level; `notifications`,
/// `media` and an `owner_id` that names no user are also kept as given, so
/// that their other keys (`sms`, `callback`, ...) survive.
const MODELLED: &[&str] = &[
    "name",
    "caller_id",
    "caller_name",
    "fax_header",
    "fax_identity",
    "fax_timezone",
    "retries",
    "attempts",
    "custom_smtp_email_address",
    "smtp_permission_list",
    "flags",
    "log_errors",
    "numbers",
    "sending_windows",
    "cover_page",
    "smtp_email_address",
    "callback_key",
];

impl FaxboxInput {
    /// The schema's rules on what Faxbox stores but does not model:
    /// `sms.send_to` and `callback` (faxbox.json).
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        let Some(n) = &self.notifications else {
            return problems;
        };
        for (direction, target) in [("inbound", &n.inbound), ("outbound", &n.outbound)] {
            let Some(callback) = &target.callback else {
                continue;
            };
            let path = |key: &str| format!("notifications.{direction}.callback.{key}");
            if let Some(url) = &callback.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problems.push(
                    FieldError::new(
                        &path("url"),
                        "pattern",
                        format!(
                            "the callback URL must start with http:// or https://, not {url:?}"
                        ),
                    )
                    .with(Some("^https?://".into()), url.as_str()),
                );
            }
            let choices: [(&str, &Option<String>, &[&str]); 2] = [
                ("method", &callback.method, &["post", "put"]),
                ("type", &callback.content, &["json", "www-url-form-encoded"]),
            ];
            for (key, value, allowed) in choices {
                if let Some(v) = value
                    && !allowed.contains(&v.as_str())
                {
                    problems.push(
                        FieldError::new(
                            &path(key),
                            "enum",
                            format!(
                                "the callback {key} is one of {}, not {v:?}",
                                allowed.join(", ")
                            ),
                        )
                        .with(Some(json!(allowed)), v.as_str()),
                    );
                }
            }
        }
        problems
    }

    fn into_fields(self, extra: Map<String, Value>) -> FaxboxFields {
        let notifications = self.notifications.map(|n| FaxboxNotifications {
            inbound: EmailTargets {
                send_to: n
                    .inbound
                    .email
                    .send_to
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
            },
            outbound: EmailTargets {
                send_to: n
                    .outbound
                    .email
                    .send_to
                    .map(OneOrMany::into_vec)
                    .unwrap_or_default(),
            },
        });
        FaxboxFields {
            name: self.name,
            caller_id: self.caller_id,
            caller_name: self.caller_name,
            fax_header: self.fax_header,
            fax_identity: self.fax_identity,
            fax_timezone: self.fax_timezone,
            retries: self.retries,
            owner_id: self.owner_id.map(UserId),
            custom_smtp_email_address: self.custom_smtp_email_address,
            smtp_permission_list: self.smtp_permission_list,
            notifications,
            fax_option: self.media.and_then(|m| m.fax_option),
            flags: self.flags,
            log_errors: self.log_errors,
            numbers: self.numbers,
            sending_windows: self.sending_windows.map(OneOrMany::into_vec),
            cover_page: self.cover_page.map(|c| CoverPage {
                enabled: c.enabled.unwrap_or(false),
                template: c.template.filter(|t| !t.trim().is_empty()),
            }),
            attempts: self.attempts,
            extra: Some(extra),
        }
    }
}

/// A faxbox as the API shows it: Kazoo's names and nesting, `id` and the
/// read-only `smtp_email_address`, Gregorian timestamps.
#[derive(Debug, Serialize)]
pub struct FaxboxView {
    id: FaxboxId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id: Option<String>,
    caller_name: String,
    fax_header: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fax_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fax_timezone: Option<String>,
    retries: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<UserId>,
    smtp_email_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_smtp_email_address: Option<String>,
    smtp_permission_list: Vec<String>,
    notifications: Value,
    media: Value,
    flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_errors: Option<bool>,
    numbers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sending_windows: Vec<String>,
    cover_page: CoverPage,
    created: i64,
    modified: i64,
}

impl From<Faxbox> for FaxboxView {
    fn from(f: Faxbox) -> FaxboxView {
        FaxboxView {
            id: f.id,
            name: f.name,
            caller_id: f.caller_id,
            caller_name: f.caller_name,
            fax_header: f.fax_header,
            fax_identity: f.fax_identity,
            fax_timezone: f.fax_timezone,
            retries: f.retries,
            owner_id: f.owner_id,
            smtp_email_address: f.smtp_email_address,
            custom_smtp_email_address: f.custom_smtp_email_address,
            smtp_permission_list: f.smtp_permission_list,
            notifications: json!({
                "inbound": { "email": { "send_to": f.notifications.inbound.send_to } },
                "outbound": { "email": { "send_to": f.notifications.outbound.send_to } },
            }),
            media: match f.fax_option {
                Some(o) => json!({ "fax_option": o }),
                None => json!({}),
            },
            flags: f.flags,
            log_errors: f.log_errors,
            numbers: f.numbers,
            sending_windows: f.sending_windows,
            cover_page: f.cover_page,
            created: to_gregorian(f.created),
            modified: to_gregorian(f.modified),
        }
    }
}

/// The faxbox as the API shows it: the client's own keys with Faxbox's
/// fields over them.
fn shown(f: Faxbox) -> Value {
    let extra = f.extra.clone();
    let ours = serde_json::to_value(FaxboxView::from(f)).unwrap_or(Value::Null);
    document::overlay(&extra, ours)
}

/// A faxbox from a request's `data`: checked as `faxbox.json` says (every
/// problem at once), with the client's own keys kept. Kazoo does not check
/// `owner_id` (Monster UI's "main faxbox" names the account); Faxbox acts
/// on it only when it names a user of this account (docs/architecture.md, invariant 5), and
/// keeps any other value as given.
fn fields_of(
    ctx: &Ctx,
    account: &AccountId,
    mut data: Map<String, Value>,
    creating: bool,
) -> Result<FaxboxFields, ApiError> {
    let (input, mut problems): (FaxboxInput, _) = document::typed_leniently(&mut data, "faxbox")?;
    let mut extra = document::extra_keys(&data, MODELLED);
    problems.extend(input.problems());
    problems.extend(callback_addresses(ctx, account, &input));
    let mut fields = {
        let owner = input.owner_id.clone();
        let mut f = input.into_fields(Map::new());
        if let Some(owner) = owner {
            let is_user =
                matches!(ctx.store.user(&UserId(owner.clone())), Ok(u) if &u.account_id == account);
            if is_user {
                extra.remove("owner_id");
            } else {
                f.owner_id = None;
            }
        }
        f
    };
    problems.extend(fields.problems(creating));
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    fields.extra = Some(extra);
    Ok(fields)
}

/// The callback URLs point where the box may connect: the address rule of
/// document URLs (public, or private with `allow_private_document_urls`).
fn callback_addresses(ctx: &Ctx, account: &AccountId, input: &FaxboxInput) -> Vec<FieldError> {
    let Some(n) = &input.notifications else {
        return Vec::new();
    };
    let allow_private = ctx
        .store
        .setting_bool(Some(account), "allow_private_document_urls")
        .unwrap_or(false);
    [("inbound", &n.inbound), ("outbound", &n.outbound)]
        .into_iter()
        .filter_map(|(direction, target)| {
            let url = target.callback.as_ref()?.url.as_ref()?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return None;
            }
            let field = format!("notifications.{direction}.callback.url");
            super::fetch::check_callback_url(url, allow_private, &field).err()
        })
        .collect()
}

/// `GET .../faxboxes/{id}/callbacks`: the faxbox's callbacks, newest
/// first, with their attempts and the receiver's last answer.
pub fn callbacks(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    let list = ctx.store.faxbox_callbacks(&faxbox.id, 200)?;
    Ok((&json!(list)).into())
}

/// `PUT .../faxboxes/{id}/callback_key`: a new signing key, shown once.
pub fn rotate_callback_key(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    let key = ctx.store.rotate_callback_key(&faxbox.id)?;
    Ok((&json!({ "id": faxbox.id, "callback_key": key })).into())
}

pub fn list(ctx: &Ctx, account: &AccountId, page: &Paging) -> Result<Answer, ApiError> {
    let list: Vec<Value> = ctx
        .store
        .faxboxes(account)?
        .into_iter()
        .map(shown)
        .collect();
    page.answer(list)
}

pub fn create(ctx: &Ctx, account: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let (data, _) = document::envelope(body, "faxbox")?;
    let fields = fields_of(ctx, account, data, true)?;
    let faxbox = ctx.store.create_faxbox(account, fields)?;
    // The callback signing key is shown here and on rotation only.
    let key = ctx.store.callback_key(&faxbox.id)?;
    let mut doc = shown(faxbox);
    doc["callback_key"] = json!(key);
    Ok(Answer::Json(Success::ok(&doc).with_status(201)))
}

pub fn get(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    Ok((&shown(faxbox)).into())
}

/// POST replaces the faxbox; PATCH is a merge patch over what is stored
/// (`null` removes a key), then checked as a whole (Kazoo's basics).
pub fn update(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &[u8],
    mode: UpdateMode,
) -> Result<Answer, ApiError> {
    let id = FaxboxId(id.to_owned());
    let current = ctx.store.faxbox_in(account, &id)?;
    let (changes, _) = document::envelope(body, "faxbox")?;
    let data = document::updated(mode, changes, || Ok(shown(current)))?;
    let fields = fields_of(ctx, account, data, true)?;
    let faxbox = ctx.store.update_faxbox(&id, fields, UpdateMode::Replace)?;
    Ok((&shown(faxbox)).into())
}

pub fn delete(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    ctx.store.delete_faxbox(&faxbox.id)?;
    let mut doc = shown(faxbox);
    // Kazoo marks what a DELETE answers (crossbar's `_read_only.deleted`).
    doc["_read_only"] = json!({ "deleted": true });
    Ok((&doc).into())
}
