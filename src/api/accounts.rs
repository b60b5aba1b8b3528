//! The account itself, its users and its API keys, as Kazoo's
//! `accounts.md`, `users.md` and `api_authentication.md` have them (docs/kazoo.md 2.7):
//! `/v2/accounts/{A}` (and its `children`, `api_key`), `/users[/{id}]`,
//! `/api_keys[/{id}]`.
//!
//! Accounts and users keep every key a client stores on them (Monster UI's
//! `ui_metadata`, users.md's `vm_to_email_enabled`, ...), as Kazoo does. A
//! user's password is never shown: the store keeps only its hash and the
//! md5 login credential. An API key's secret is shown once, in the reply
//! that creates it; the store keeps only its hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, Paging, document, parse_data};
use crate::model::{Account, AccountId, ApiKey, FieldError, User, UserId, to_gregorian};
use crate::store::{UpdateMode, UserChanges};

/// Kazoo's user privilege levels (users.json `priv_level`, docs/kazoo.md 2.7).
const PRIV_LEVELS: [&str; 2] = ["admin", "user"];

/// A user as a client sends it; other keys are the client's own.
#[derive(Debug, Default, Deserialize)]
struct UserInput {
    email: Option<String>,
    /// Faxbox's display name; Kazoo's clients send first and last names.
    name: Option<String>,
    username: Option<String>,
    password: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    timezone: Option<String>,
    priv_level: Option<String>,
}

/// What `UserInput` models; `first_name`, `last_name`, `timezone` and
/// `priv_level` are checked and then kept with the client's own keys.
const USER_MODELLED: &[&str] = &["email", "name", "username", "password", "credentials"];

/// A user as the API shows it: the stored fields over the client's own.
fn user_shown(u: User) -> Value {
    let email = u.email_address().map(str::to_owned);
    let ours = json!({
        "id": u.id,
        "email": email,
        "username": u.username,
        "name": u.name,
        "created": to_gregorian(u.created),
    });
    let mut doc = document::overlay(&u.doc, ours);
    if let Value::Object(m) = &mut doc {
        m.retain(|_, v| !v.is_null());
    }
    doc
}

/// A user from a request's `data`, checked as users.json says (every
/// problem at once).
fn user_changes(mut data: Map<String, Value>) -> Result<UserChanges, ApiError> {
    let (input, mut problems): (UserInput, _) = document::typed_leniently(&mut data, "user")?;
    for (key, value) in [
        ("first_name", &input.first_name),
        ("last_name", &input.last_name),
    ] {
        if let Some(v) = value
            && (v.trim().is_empty() || v.chars().count() > 128)
        {
            problems.push(
                FieldError::new(
                    key,
                    "maxLength",
                    format!("{key} must be 1 to 128 characters"),
                )
                .with(Some(128.into()), v.as_str()),
            );
        }
    }
    if let Some(level) = &input.priv_level
        && !PRIV_LEVELS.contains(&level.as_str())
    {
        problems.push(
            FieldError::new(
                "priv_level",
                "enum",
                format!("priv_level is admin or user, not {level:?}"),
            )
            .with(Some(json!(PRIV_LEVELS)), level.as_str()),
        );
    }
    if let Some(tz) = &input.timezone
        && let Err(message) = crate::timezone::check(tz)
    {
        problems.push(FieldError::new("timezone", "format", message).with(None, tz.as_str()));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    // Kazoo's usernames are often the address: mail goes there when no
    // email is given.
    let email = input.email.clone().or_else(|| {
        input
            .username
            .clone()
            .filter(|u| crate::model::is_email(u.trim()))
    });
    let name = input.name.clone().unwrap_or_else(|| {
        [&input.first_name, &input.last_name]
            .iter()
            .filter_map(|n| n.as_deref())
            .collect::<Vec<_>>()
            .join(" ")
    });
    Ok(UserChanges {
        email,
        name,
        username: input.username,
        password: input.password,
        doc: document::extra_keys(&data, USER_MODELLED),
    })
}

pub fn users(ctx: &Ctx, account: &AccountId, paging: &Paging) -> Result<Answer, ApiError> {
    let list: Vec<Value> = ctx
        .store
        .users(account)?
        .into_iter()
        .map(user_shown)
        .collect();
    paging.answer(list)
}

pub fn create_user(ctx: &Ctx, account: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let (data, _) = document::envelope(body, "user")?;
    let user = ctx.store.put_user(account, None, user_changes(data)?)?;
    Ok(Answer::Json(
        Success::ok(&user_shown(user)).with_status(201),
    ))
}

/// POST replaces the user; PATCH is a merge patch over it (`null` removes).
/// A password not given stays as it was.
pub fn update_user(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &[u8],
    mode: UpdateMode,
) -> Result<Answer, ApiError> {
    let current = user_in(ctx, account, id)?;
    let (changes, _) = document::envelope(body, "user")?;
    let data = document::updated(mode, changes, || Ok(user_shown(current.clone())))?;
    let user = ctx
        .store
        .put_user(account, Some(&current.id), user_changes(data)?)?;
    Ok((&user_shown(user)).into())
}

/// A user of this account; another account's user is not found.
fn user_in(ctx: &Ctx, account: &AccountId, id: &str) -> Result<User, ApiError> {
    match ctx.store.user(&UserId(id.to_owned())) {
        Ok(u) if &u.account_id == account => Ok(u),
        Ok(_) => Err(ApiError::NotFound {
            message: format!("there is no user {id} in this account"),
            cause: id.to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

pub fn user(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    Ok((&user_shown(user_in(ctx, account, id)?)).into())
}

pub fn delete_user(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let user = user_in(ctx, account, id)?;
    ctx.store.delete_user(&user.id)?;
    let mut doc = user_shown(user);
    doc["_read_only"] = json!({ "deleted": true });
    Ok((&doc).into())
}

#[derive(Debug, Serialize)]
struct KeyView {
    id: String,
    label: String,
    created: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> KeyView {
        KeyView {
            id: k.id,
            label: k.label,
            created: to_gregorian(k.created),
            revoked: k.revoked.map(to_gregorian),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    #[serde(default)]
    label: String,
}

pub fn api_keys(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let list: Vec<KeyView> = ctx
        .store
        .api_keys(account)?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok((&list).into())
}

pub fn create_api_key(ctx: &Ctx, account: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let input: KeyInput = if body.iter().all(u8::is_ascii_whitespace) {
        KeyInput::default()
    } else {
        parse_data(body, "API key")?
    };
    let (key, secret) = ctx.store.create_api_key(account, &input.label)?;
    let mut view = serde_json::to_value(KeyView::from(key)).expect("views serialize");
    // Shown this once: only its hash is kept.
    view["api_key"] = json!(secret);
    Ok(Answer::Json(Success::ok(&view).with_status(201)))
}

/// `GET /v2/accounts/{A}/api_key` (docs/kazoo.md 2.7 item 3). Kazoo shows the account's
/// one key; Faxbox keeps keys only hashed, so it cannot show one again: the
/// reply names the account's live keys, and `PUT .../api_key` makes a new
/// one and shows it once.
pub fn api_key(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let live: Vec<KeyView> = ctx
        .store
        .api_keys(account)?
        .into_iter()
        .filter(|k| k.revoked.is_none())
        .map(KeyView::from)
        .collect();
    Ok((&json!({
        "api_key": null,
        "api_keys": live,
        "message": "API keys are kept hashed and shown only when made: PUT this path for a new one",
    }))
        .into())
}

/// `PUT /v2/accounts/{A}/api_key`: a new key for the account, shown once.
pub fn new_api_key(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let (key, secret) = ctx.store.create_api_key(account, "api_key")?;
    let mut view = serde_json::to_value(KeyView::from(key)).expect("views serialize");
    view["api_key"] = json!(secret);
    Ok(Answer::Json(Success::ok(&view).with_status(201)))
}

pub fn revoke_api_key(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let key = ctx
        .store
        .api_keys(account)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::NotFound {
            message: format!("there is no API key {id} in this account"),
            cause: id.to_owned(),
        })?;
    ctx.store.revoke_api_key(&key.id)?;
    Ok((&KeyView::from(key)).into())
}

/// An account as the API shows it: Kazoo's account document (its other
/// fields and the client's own keys as given) with Faxbox's fields over it.
fn account_shown(ctx: &Ctx, a: &Account) -> Result<Value, ApiError> {
    let (parent, doc) = ctx.store.account_doc(&a.id)?;
    let mut ours = json!({
        "id": a.id,
        "name": a.name,
        "realm": a.realm,
        "is_admin": a.is_admin,
        "superduper_admin": a.is_admin,
        "is_reseller": a.is_admin,
        "created": to_gregorian(a.created),
    });
    if let Some(p) = parent {
        ours["parent_id"] = json!(p);
    }
    let mut shown = document::overlay(&doc, ours);
    if let Value::Object(m) = &mut shown {
        m.entry("timezone").or_insert_with(|| json!("UTC"));
        m.entry("language").or_insert_with(|| json!("en-us"));
    }
    Ok(shown)
}

/// An account as a client sends it; other keys are the client's own.
#[derive(Debug, Default, Deserialize)]
struct AccountInput {
    name: Option<String>,
    realm: Option<String>,
    timezone: Option<String>,
    language: Option<String>,
}

/// What the account table keeps, or Faxbox decides (the rest is kept as
/// given).
const ACCOUNT_MODELLED: &[&str] = &[
    "name",
    "realm",
    "is_admin",
    "superduper_admin",
    "is_reseller",
    "parent_id",
];

/// An account as checked: what the account table keeps, and the rest.
struct AccountFields {
    name: String,
    realm: Option<String>,
    doc: Map<String, Value>,
}

/// An account from a request's `data`: its name, realm and other keys.
fn account_input(mut data: Map<String, Value>) -> Result<AccountFields, ApiError> {
    let (input, mut problems): (AccountInput, _) = document::typed_leniently(&mut data, "account")?;
    if let Some(tz) = &input.timezone
        && let Err(message) = crate::timezone::check(tz)
    {
        problems.push(FieldError::new("timezone", "format", message).with(None, tz.as_str()));
    }
    if let Some(lang) = &input.language
        && (lang.is_empty() || lang.len() > 16)
    {
        problems.push(
            FieldError::new(
                "language",
                "format",
                format!("{lang:?} is not a language such as en-us"),
            )
            .with(None, lang.as_str()),
        );
    }
    if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        problems.push(FieldError::new(
            "name",
            "required",
            "an account needs a name (1 to 128 characters)",
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    Ok(AccountFields {
        name: input.name.unwrap_or_default(),
        realm: input.realm.filter(|r| !r.trim().is_empty()),
        doc: document::extra_keys(&data, ACCOUNT_MODELLED),
    })
}

pub fn account(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    Ok((&account_shown(ctx, &ctx.store.account(account)?)?).into())
}

/// `GET /v2/accounts` (admin): every account of the box.
pub fn list_accounts(ctx: &Ctx, paging: &Paging) -> Result<Answer, ApiError> {
    let list = ctx
        .store
        .accounts()?
        .iter()
        .map(|a| account_shown(ctx, a))
        .collect::<Result<Vec<_>, _>>()?;
    paging.answer(list)
}

/// `GET /v2/accounts/{A}/children` (docs/kazoo.md 2.7 item 3).
pub fn children(ctx: &Ctx, account: &AccountId, paging: &Paging) -> Result<Answer, ApiError> {
    let list = ctx
        .store
        .child_accounts(account)?
        .iter()
        .map(|a| account_shown(ctx, a))
        .collect::<Result<Vec<_>, _>>()?;
    paging.answer(list)
}

/// `PUT /v2/accounts` (admin) and `PUT /v2/accounts/{parent}`
/// (docs/kazoo.md 2.7 item 3, a child account): a new account under
/// `parent`; its realm is the mail domain its faxboxes answer to.
pub fn create_account(ctx: &Ctx, parent: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let (data, _) = document::envelope(body, "account")?;
    let AccountFields { name, realm, doc } = account_input(data)?;
    let account = ctx
        .store
        .create_child_account(parent, &name, realm.as_deref(), &doc)?;
    Ok(Answer::Json(
        Success::ok(&account_shown(ctx, &account)?).with_status(201),
    ))
}

/// `POST` (replace) and `PATCH` (merge patch) of `/v2/accounts/{A}`.
pub fn update_account(
    ctx: &Ctx,
    account: &AccountId,
    body: &[u8],
    mode: UpdateMode,
) -> Result<Answer, ApiError> {
    let current = ctx.store.account(account)?;
    let (changes, _) = document::envelope(body, "account")?;
    let data = document::updated(mode, changes, || account_shown(ctx, &current))?;
    let AccountFields { name, realm, doc } = account_input(data)?;
    let updated = ctx
        .store
        .update_account(account, &name, realm.as_deref(), &doc)?;
    Ok((&account_shown(ctx, &updated)?).into())
}

/// `DELETE /v2/accounts/{id}` (admin): the account and everything in it.
/// The box's admin account stays: without it nobody could manage the box.
pub fn delete_account(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let a = ctx.store.account(account)?;
    if a.is_admin {
        return Err(ApiError::Conflict(
            "the box's admin account cannot be deleted".into(),
        ));
    }
    let mut shown = account_shown(ctx, &a)?;
    ctx.store.delete_account(account)?;
    shown["_read_only"] = json!({ "deleted": true });
    Ok((&shown).into())
}
