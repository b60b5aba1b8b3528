//! Runtime fax settings: `/v2/system_configs/fax` for the box (admin only)
//! and `/v2/accounts/{A}/configs/fax` for one account, Kazoo's key names
//! (docs/kazoo.md 11.1). A read shows effective values; a write of `null`
//! removes a value so the next level applies again.

use serde_json::{Map, Value};

use super::Ctx;
use super::reply::{Answer, ApiError};
use crate::model::{AccountId, FieldError};
use crate::store::{SETTINGS, SettingScope, find_setting};

/// Effective values of the settings that apply at this level.
pub fn read(ctx: &Ctx, account: Option<&AccountId>) -> Result<Answer, ApiError> {
    let mut data = Map::new();
    for s in SETTINGS
        .iter()
        .filter(|s| account.is_none() || s.scope == SettingScope::Account)
    {
        data.insert(s.key.to_owned(), ctx.store.setting(account, s.key)?.value);
    }
    Ok((&Value::Object(data)).into())
}

/// Sets (or with `null` unsets) the given keys; every key is checked before
/// any is written, so a bad one changes nothing.
pub fn write(ctx: &Ctx, account: Option<&AccountId>, body: &[u8]) -> Result<Answer, ApiError> {
    let changes: Map<String, Value> = super::parse_data(body, "fax settings")?;
    let mut errors: Vec<FieldError> = Vec::new();
    for (key, value) in &changes {
        match find_setting(key) {
            Err(e) => errors.push(e),
            Ok(s) if account.is_some() && s.scope == SettingScope::System => {
                errors.push(FieldError::new(
                    key,
                    "scope",
                    format!("{key} applies to the whole box and cannot be set per account"),
                ))
            }
            Ok(_) if value.is_null() => {}
            Ok(s) => {
                if let Err(e) = s.check(value) {
                    errors.push(e);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    for (key, value) in changes {
        if value.is_null() {
            ctx.store.unset_setting(account, &key)?;
        } else {
            ctx.store.set_setting(account, &key, value)?;
        }
    }
    // The scheduler reads limits such as max_outbound when it looks for work.
    (ctx.wake)();
    read(ctx, account)
}
