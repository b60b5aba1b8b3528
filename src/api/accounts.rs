//! The account itself, its users and its API keys:
//! `GET /v2/accounts/{A}`, `/users[/{id}]`, `/api_keys[/{id}]`.
//!
//! An API key's secret is shown once, in the reply that creates it; the
//! store keeps only its hash. Deleting a key revokes it.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::reply::{Answer, ApiError, Success};
use super::{Ctx, parse_data};
use crate::model::{AccountId, ApiKey, User, UserId, to_gregorian};

pub fn account(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    Ok((&account_view(&ctx.store.account(account)?)).into())
}

#[derive(Debug, Serialize)]
struct UserView {
    id: UserId,
    email: String,
    name: String,
    created: i64,
}

impl From<User> for UserView {
    fn from(u: User) -> UserView {
        UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            created: to_gregorian(u.created),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserInput {
    email: Option<String>,
    #[serde(default)]
    name: String,
}

pub fn users(ctx: &Ctx, account: &AccountId) -> Result<Answer, ApiError> {
    let list: Vec<UserView> = ctx
        .store
        .users(account)?
        .into_iter()
        .map(UserView::from)
        .collect();
    Ok((&list).into())
}

pub fn create_user(ctx: &Ctx, account: &AccountId, body: &[u8]) -> Result<Answer, ApiError> {
    let input: UserInput = parse_data(body, "user")?;
    let email = input
        .email
        .ok_or_else(|| ApiError::field("email", "required", "a user needs an email address"))?;
    let user = ctx.store.create_user(account, &email, &input.name)?;
    Ok(Answer::Json(
        Success::ok(&UserView::from(user)).with_status(201),
    ))
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
    Ok((&UserView::from(user_in(ctx, account, id)?)).into())
}

pub fn delete_user(ctx: &Ctx, account: &AccountId, id: &str) -> Result<Answer, ApiError> {
    let user = user_in(ctx, account, id)?;
    ctx.store.delete_user(&user.id)?;
    Ok((&UserView::from(user)).into())
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

/// An account as the API shows it (Kazoo's account document, the fields
/// Faxbox has).
fn account_view(a: &crate::model::Account) -> serde_json::Value {
    json!({
        "id": a.id,
        "name": a.name,
        "realm": a.realm,
        "is_admin": a.is_admin,
        "created": to_gregorian(a.created),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountInput {
    name: Option<String>,
    realm: Option<String>,
}

/// `GET /v2/accounts` (admin): every account of the box.
pub fn list_accounts(ctx: &Ctx) -> Result<Answer, ApiError> {
    let list: Vec<_> = ctx.store.accounts()?.iter().map(account_view).collect();
    Ok((&list).into())
}

/// `PUT /v2/accounts` (admin): a new account, `{"data":{"name":...,
/// "realm":...}}`; the realm is the mail domain its faxboxes answer to.
pub fn create_account(ctx: &Ctx, body: &[u8]) -> Result<Answer, ApiError> {
    let input: AccountInput = parse_data(body, "account")?;
    let name = input.name.unwrap_or_default();
    let account = ctx.store.create_account(&name, input.realm.as_deref())?;
    Ok(Answer::Json(
        Success::ok(&account_view(&account)).with_status(201),
    ))
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
    ctx.store.delete_account(account)?;
    Ok((&account_view(&a)).into())
}
