//! `/v2/accounts/{A}/faxboxes`: Kazoo's faxbox JSON (reference 1.2, 2.1)
//! converted to and from the domain's `FaxboxFields` and `Faxbox`.
//!
//! Kazoo nests what the domain keeps flat (`notifications.inbound.email.
//! send_to`, `media.fax_option`); the nesting lives only here.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, parse_data};
use crate::model::{
    AccountId, EmailTargets, Faxbox, FaxboxFields, FaxboxId, FaxboxNotifications, UserId,
    to_gregorian,
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

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KazooEmail {
    send_to: Option<OneOrMany>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KazooTarget {
    #[serde(default)]
    email: KazooEmail,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KazooNotifications {
    #[serde(default)]
    inbound: KazooTarget,
    #[serde(default)]
    outbound: KazooTarget,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KazooMedia {
    fax_option: Option<bool>,
}

/// A faxbox as a client sends it. Read-only fields that a client sends back
/// after a GET (`id`, `smtp_email_address`, `created`, ...) are accepted
/// and ignored, as Kazoo discards `smtp_email_address`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaxboxInput {
    name: Option<String>,
    caller_id: Option<String>,
    caller_name: Option<String>,
    fax_header: Option<String>,
    fax_identity: Option<String>,
    fax_timezone: Option<String>,
    retries: Option<i64>,
    /// In Kazoo's schema but meaningless on a faxbox (reference 1.2).
    #[allow(dead_code)]
    attempts: Option<i64>,
    owner_id: Option<String>,
    custom_smtp_email_address: Option<String>,
    smtp_permission_list: Option<Vec<String>>,
    notifications: Option<KazooNotifications>,
    media: Option<KazooMedia>,
    flags: Option<Vec<String>>,
    log_errors: Option<bool>,
    numbers: Option<Vec<String>>,
    #[allow(dead_code)]
    id: Option<Value>,
    #[allow(dead_code)]
    smtp_email_address: Option<Value>,
    #[allow(dead_code)]
    created: Option<Value>,
    #[allow(dead_code)]
    modified: Option<Value>,
}

impl FaxboxInput {
    fn into_fields(self) -> FaxboxFields {
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
            created: to_gregorian(f.created),
            modified: to_gregorian(f.modified),
        }
    }
}

/// The owner must be a user of the same account (invariant 5).
fn check_owner(ctx: &Ctx, account: &AccountId, fields: &FaxboxFields) -> Result<(), ApiError> {
    if let Some(owner) = &fields.owner_id {
        match ctx.store.user(owner) {
            Ok(u) if &u.account_id == account => {}
            _ => {
                return Err(ApiError::field(
                    "owner_id",
                    "not_found",
                    format!("there is no user {owner} in this account"),
                ));
            }
        }
    }
    Ok(())
}

pub fn list(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let list: Vec<FaxboxView> = ctx
        .store
        .faxboxes(account)?
        .into_iter()
        .map(FaxboxView::from)
        .collect();
    Ok((&list).into())
}

pub fn create(ctx: &Ctx, account: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let fields = parse_data::<FaxboxInput>(body, "faxbox")?.into_fields();
    fields.validate(true)?;
    check_owner(ctx, account, &fields)?;
    let faxbox = ctx.store.create_faxbox(account, fields)?;
    Ok(Answer::Json(
        Success::ok(&FaxboxView::from(faxbox)).with_status(201),
    ))
}

pub fn get(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    Ok((&FaxboxView::from(faxbox)).into())
}

pub fn update(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &[u8],
    mode: UpdateMode,
) -> Result<Answer, ApiError> {
    let id = FaxboxId(id.to_owned());
    ctx.store.faxbox_in(account, &id)?;
    let fields = parse_data::<FaxboxInput>(body, "faxbox")?.into_fields();
    fields.validate(mode == UpdateMode::Replace)?;
    check_owner(ctx, account, &fields)?;
    let faxbox = ctx.store.update_faxbox(&id, fields, mode)?;
    Ok((&FaxboxView::from(faxbox)).into())
}

pub fn delete(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let faxbox = ctx.store.faxbox_in(account, &FaxboxId(id.to_owned()))?;
    ctx.store.delete_faxbox(&faxbox.id)?;
    Ok((&FaxboxView::from(faxbox)).into())
}
