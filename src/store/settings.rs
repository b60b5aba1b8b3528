//! Runtime settings: Kazoo's `system_config.fax` keys that Faxbox uses, with
//! Kazoo's names and defaults (docs/kazoo.md 11.1), stored in SQLite so they
//! change while the box runs. A value set for an account wins over the
//! system value, which wins over the built-in default.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{Result, Store};
use crate::model::{AccountId, FieldError, now};

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    Bool,
    Integer {
        min: i64,
        max: i64,
    },
    Text,
    /// A non-empty text, or `null` for none (a password only some accounts have).
    OptionalText,
    /// A mail domain such as `fax.example.com`.
    Domain,
    /// Image dimensions in pixels: `WIDTHxHEIGHT`, or one number for both.
    Size,
    /// A JSON list or object (content-type lists, reschedule rules).
    Json,
}

/// Where a setting may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingScope {
    /// Only for the whole box.
    System,
    /// For the box, and overridden per account.
    Account,
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    /// The built-in default, as JSON text.
    pub default: &'static str,
    pub kind: SettingKind,
    pub scope: SettingScope,
    pub about: &'static str,
}

impl Setting {
    pub fn default_value(&self) -> Value {
        serde_json::from_str(self.default).expect("built-in defaults are JSON")
    }

    /// Checks a value against the setting's kind.
    pub fn check(&self, value: &Value) -> Result<(), FieldError> {
        let fits = match self.kind {
            SettingKind::Bool => value.is_boolean(),
            SettingKind::Integer { min, max } => {
                value.as_i64().is_some_and(|n| (min..=max).contains(&n))
            }
            SettingKind::Text => value.as_str().is_some_and(|s| !s.is_empty()),
            SettingKind::OptionalText => {
                value.is_null() || value.as_str().is_some_and(|s| !s.is_empty())
            }
            SettingKind::Domain => value.as_str().is_some_and(crate::model::is_domain),
            SettingKind::Size => value.as_str().is_some_and(|s| {
                let s = s.to_ascii_lowercase();
                let number = |n: &str| {
                    !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit())
                };
                match s.split_once('x') {
                    Some((w, h)) => number(w) && number(h),
                    None => number(&s),
                }
            }),
            SettingKind::Json => value.is_array() || value.is_object(),
        };
        if fits {
            Ok(())
        } else {
            let expected = match self.kind {
                SettingKind::Bool => "true or false".to_owned(),
                SettingKind::Integer { min, max } => format!("a whole number from {min} to {max}"),
                SettingKind::Text => "a non-empty text".to_owned(),
                SettingKind::OptionalText => "a non-empty text, or null for none".to_owned(),
                SettingKind::Domain => "a mail domain such as \"fax.example.com\"".to_owned(),
                SettingKind::Size => {
                    "a size in pixels such as \"700x10\" (width x height)".to_owned()
                }
                SettingKind::Json => "a JSON list or object".to_owned(),
            };
            Err(FieldError::new(
                self.key,
                "type",
                format!("{value} is not valid for {}; expected {expected}", self.key),
            ))
        }
    }

    /// Reads a command-line word: JSON when it parses as JSON, else text.
    pub fn parse_word(&self, word: &str) -> Value {
        match (self.kind, serde_json::from_str::<Value>(word)) {
            (SettingKind::Text | SettingKind::Domain | SettingKind::Size, Ok(Value::String(s))) => {
                Value::String(s)
            }
            (SettingKind::Text | SettingKind::Domain | SettingKind::Size, _) => {
                Value::String(word.to_owned())
            }
            (SettingKind::OptionalText, Ok(v @ (Value::Null | Value::String(_)))) => v,
            (SettingKind::OptionalText, _) => Value::String(word.to_owned()),
            (_, Ok(v)) => v,
            (_, Err(_)) => Value::String(word.to_owned()),
        }
    }
}

macro_rules! setting {
    ($key:literal, $default:literal, $kind:expr, $scope:ident, $about:literal) => {
        Setting {
            key: $key,
            default: $default,
            kind: $kind,
            scope: SettingScope::$scope,
            about: $about,
        }
    };
}

const fn int(min: i64, max: i64) -> SettingKind {
    SettingKind::Integer { min, max }
}

/// Every runtime setting Faxbox knows, in key order.
pub static SETTINGS: &[Setting] = &[
    setting!(
        "allow_all_addresses_when_empty",
        "false",
        SettingKind::Bool,
        Account,
        "email to fax: a faxbox with no permission list and no owner accepts any sender"
    ),
    setting!(
        "allow_private_document_urls",
        "false",
        SettingKind::Bool,
        Account,
        "document URLs may point to loopback and private (intranet) addresses"
    ),
    setting!(
        "allow_service_numbers",
        "false",
        SettingKind::Bool,
        Account,
        "faxes may be sent to emergency and service numbers (911, 112, 999, short codes)"
    ),
    setting!(
        "allowed_content_types",
        r#"["application/pdf","image/tiff",{"prefix":"image"},{"prefix":"application/vnd.openxmlformats-officedocument."},{"prefix":"application/vnd.oasis.opendocument."},"application/msword","application/vnd.ms-excel","application/vnd.ms-powerpoint"]"#,
        SettingKind::Json,
        Account,
        "email to fax: attachment types accepted"
    ),
    setting!(
        "default_compare_field",
        "\"result_cause\"",
        SettingKind::Text,
        System,
        "reschedule rules: the attempt result field compared by default"
    ),
    setting!(
        "default_retry_count",
        "3",
        int(1, 4),
        Account,
        "reschedule rules: attempts a rule allows by default"
    ),
    setting!(
        "default_retry_period",
        "300",
        int(0, 86_400),
        Account,
        "seconds to wait before retrying a failed attempt"
    ),
    setting!(
        "default_smtp_domain",
        "\"fax.localdomain\"",
        SettingKind::Domain,
        Account,
        "the mail domain of new faxboxes' generated addresses (<8 hex>.<domain>); default fax.<smtp.hostname>"
    ),
    setting!(
        "denied_content_types",
        "[]",
        SettingKind::Json,
        Account,
        "email to fax: attachment types refused (Kazoo denied image/*; Faxbox accepts images)"
    ),
    setting!(
        "document_retention_days",
        "0",
        int(0, 36_500),
        Account,
        "days a finished or received fax keeps its documents (and the mails that carried them); 0 keeps them for ever"
    ),
    setting!(
        "email_body_as_cover_note",
        "true",
        SettingKind::Bool,
        Account,
        "email to fax: the email's text is the note on the cover page (when the faxbox puts one first and email_body_as_page is off)"
    ),
    setting!(
        "email_body_as_page",
        "false",
        SettingKind::Bool,
        Account,
        "email to fax: the email's text becomes the first page, before the attachments"
    ),
    setting!(
        "email_pdf_password",
        "null",
        SettingKind::OptionalText,
        Account,
        "email to fax: the password that opens encrypted PDF attachments (a sender who always encrypts, such as a bank or a lab)"
    ),
    setting!(
        "email_subject_as_header",
        "false",
        SettingKind::Bool,
        Account,
        "email to fax: the email's subject becomes the header line printed on each page"
    ),
    setting!(
        "endpoint_timeout",
        "40",
        int(5, 600),
        Account,
        "seconds a call may ring before it counts as not answered"
    ),
    setting!(
        "filter_error_codes",
        r#"["0","49"]"#,
        SettingKind::Json,
        Account,
        "T.30 codes of failed receives that send no error mail (Kazoo's teletype filter)"
    ),
    setting!(
        "image_min_size",
        "\"700x10\"",
        SettingKind::Size,
        Account,
        "email to fax: images smaller than WxH are taken as signature logos and skipped"
    ),
    setting!(
        "log_faxbox_errors",
        "true",
        SettingKind::Bool,
        Account,
        "keep a log entry for every refused email"
    ),
    setting!(
        "max_outbound",
        "10",
        int(1, 1000),
        Account,
        "faxes an account may have on the lines at once"
    ),
    setting!(
        "max_recipients_per_fax",
        "100",
        int(1, 1000),
        Account,
        "fax numbers one request may name (API to_numbers, RCPT TO of one email, destination-uris of one print job)"
    ),
    setting!(
        "negotiate_timeout_s",
        "180",
        int(10, 3600),
        System,
        "seconds from answer until the fax machines agree (Faxbox; Kazoo used 2 minutes)"
    ),
    setting!(
        "originate_timeout_s",
        "180",
        int(10, 3600),
        System,
        "seconds from dialling until the far end answers (Faxbox; Kazoo used 2 minutes)"
    ),
    setting!(
        "page_timeout_s",
        "720",
        int(30, 7200),
        System,
        "seconds allowed between pages (Faxbox; Kazoo used 5 minutes)"
    ),
    setting!(
        "record_retention_days",
        "0",
        int(0, 36_500),
        Account,
        "days a finished or received fax's record (and its attempts) is kept; 0 keeps it for ever"
    ),
    setting!(
        "report_smtp_errors",
        "true",
        SettingKind::Bool,
        Account,
        "email the sender when an email could not become a fax"
    ),
    setting!(
        "reschedule",
        "{}",
        SettingKind::Json,
        Account,
        "named retry rules matched against each attempt's result (Kazoo's format)"
    ),
    setting!(
        "serialize_outbound_numbers",
        "true",
        SettingKind::Bool,
        System,
        "never two calls at once to the same number"
    ),
    setting!(
        "smtp_idle_timeout_s",
        "180",
        int(1, 3600),
        System,
        "email to fax: seconds an SMTP client may take to send one command or line before it is disconnected"
    ),
    setting!(
        "smtp_max_msg_size",
        "10485670",
        int(1024, 1_073_741_824),
        System,
        "largest email accepted, in bytes"
    ),
    setting!(
        "smtp_require_auth",
        "false",
        SettingKind::Bool,
        System,
        "email to fax: only senders logged in with SMTP AUTH may send"
    ),
    setting!(
        "smtp_sessions",
        "50",
        int(1, 10_000),
        System,
        "simultaneous SMTP sessions"
    ),
    setting!(
        "smtp_sessions_per_client",
        "10",
        int(1, 10_000),
        System,
        "simultaneous SMTP sessions from one client address (trusted relays are not limited)"
    ),
    setting!(
        "store_fax_pdf",
        "true",
        SettingKind::Bool,
        Account,
        "keep a PDF of each fax instead of making it on demand"
    ),
    setting!(
        "store_fax_tiff",
        "true",
        SettingKind::Bool,
        Account,
        "keep the fax image made at intake instead of converting at each attempt"
    ),
    setting!(
        "store_url_document",
        "true",
        SettingKind::Bool,
        Account,
        "fetch documents given by URL once, at intake, and keep them"
    ),
];

pub fn find(key: &str) -> Result<&'static Setting, FieldError> {
    SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| {
        FieldError::new(
            key,
            "unknown",
            format!(
                "{key:?} is not a fax setting; the settings are: {}",
                SETTINGS
                    .iter()
                    .map(|s| s.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// A setting's effective value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingValue {
    pub key: &'static str,
    pub value: Value,
    /// `account`, `system` or `default`.
    pub source: &'static str,
}

const SYSTEM: &str = "system";

impl Store {
    /// The effective value of `key` for an account (or the box).
    pub fn setting(&self, account: Option<&AccountId>, key: &str) -> Result<SettingValue> {
        let setting = find(key)?;
        self.read(|conn| {
            let get = |scope: &str| -> Result<Option<Value>> {
                let text: Option<String> = conn
                    .query_row(
                        "SELECT value FROM settings WHERE scope = ?1 AND key = ?2",
                        params![scope, key],
                        |r| r.get(0),
                    )
                    .optional()?;
                // A value that no longer parses (hand-edited database) is
                // ignored rather than trusted: the next level decides.
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            };
            if let Some(account) = account.filter(|_| setting.scope == SettingScope::Account)
                && let Some(value) = get(account.as_str())?
            {
                return Ok(SettingValue {
                    key: setting.key,
                    value,
                    source: "account",
                });
            }
            if let Some(value) = get(SYSTEM)? {
                return Ok(SettingValue {
                    key: setting.key,
                    value,
                    source: "system",
                });
            }
            let value = match self.mail_domain.get() {
                // An appliance's faxboxes live under its own mail name, not
                // under a domain nobody in the office owns (issue 21).
                Some(domain) if setting.key == "default_smtp_domain" => {
                    Value::String(format!("fax.{domain}"))
                }
                _ => setting.default_value(),
            };
            Ok(SettingValue {
                key: setting.key,
                value,
                source: "default",
            })
        })
    }

    /// Gives the box's mail name (`smtp.hostname`): new faxboxes' addresses
    /// are `<8 hex>.fax.<name>` unless `default_smtp_domain` is set. The
    /// first call wins.
    pub fn set_mail_domain(&self, domain: &str) {
        let _ = self.mail_domain.set(domain.trim().to_ascii_lowercase());
    }

    /// Sets `key` for an account, or for the box when `account` is `None`.
    pub fn set_setting(&self, account: Option<&AccountId>, key: &str, value: Value) -> Result<()> {
        let setting = find(key)?;
        setting.check(&value)?;
        if account.is_some() && setting.scope == SettingScope::System {
            return Err(FieldError::new(
                key,
                "scope",
                format!("{key} applies to the whole box and cannot be set per account"),
            )
            .into());
        }
        self.write(|tx| {
            if let Some(account) = account {
                super::ensure_account(tx, account)?;
            }
            tx.execute(
                "INSERT INTO settings (scope, key, value, modified) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,
                     modified = excluded.modified",
                params![
                    account.map_or(SYSTEM, |a| a.as_str()),
                    key,
                    value.to_string(),
                    now()
                ],
            )?;
            Ok(())
        })
    }

    /// Removes a value so the next level (system, default) applies again.
    pub fn unset_setting(&self, account: Option<&AccountId>, key: &str) -> Result<()> {
        find(key)?;
        self.write(|tx| {
            tx.execute(
                "DELETE FROM settings WHERE scope = ?1 AND key = ?2",
                params![account.map_or(SYSTEM, |a| a.as_str()), key],
            )?;
            Ok(())
        })
    }

    pub fn setting_i64(&self, account: Option<&AccountId>, key: &str) -> Result<i64> {
        let v = self.setting(account, key)?;
        Ok(v.value.as_i64().unwrap_or_else(|| {
            find(key)
                .map(|s| s.default_value().as_i64().unwrap_or(0))
                .unwrap_or(0)
        }))
    }

    /// A box-wide limit (sessions, seconds), read at each use so that a
    /// change applies at once; at least 1. When the store cannot be read
    /// now it is the built-in default: a busy or failing disk must not
    /// stop mail intake or a call on its own.
    pub fn system_limit(&self, key: &str) -> u64 {
        let built_in = || find(key).map_or(1, |s| s.default_value().as_i64().unwrap_or(1));
        self.setting_i64(None, key)
            .unwrap_or_else(|_| built_in())
            .max(1) as u64
    }

    pub fn setting_bool(&self, account: Option<&AccountId>, key: &str) -> Result<bool> {
        Ok(self.setting(account, key)?.value.as_bool().unwrap_or(false))
    }

    pub fn setting_text(&self, account: Option<&AccountId>, key: &str) -> Result<String> {
        let v = self.setting(account, key)?;
        Ok(v.value.as_str().map(str::to_owned).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::store::testing::temp_store;
    use serde_json::json;

    #[test]
    fn every_default_fits_its_kind() {
        for s in SETTINGS {
            s.check(&s.default_value()).unwrap();
        }
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort();
        assert_eq!(keys, SETTINGS.iter().map(|s| s.key).collect::<Vec<_>>());
    }

    #[test]
    fn account_overrides_system_overrides_default() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let b = store.create_account("Other", None).unwrap().id;
        let get = |acct: &AccountId| store.setting(Some(acct), "max_outbound").unwrap();

        assert_eq!((get(&a).value, get(&a).source), (json!(10), "default"));
        store.set_setting(None, "max_outbound", json!(4)).unwrap();
        assert_eq!((get(&a).value, get(&a).source), (json!(4), "system"));
        store
            .set_setting(Some(&a), "max_outbound", json!(2))
            .unwrap();
        assert_eq!((get(&a).value, get(&a).source), (json!(2), "account"));
        // Another account still sees the system value.
        assert_eq!((get(&b).value, get(&b).source), (json!(4), "system"));
        store.unset_setting(Some(&a), "max_outbound").unwrap();
        assert_eq!(get(&a).value, json!(4));
        assert_eq!(store.setting_i64(Some(&a), "max_outbound").unwrap(), 4);
    }

    #[test]
    fn bad_settings_are_refused_and_change_nothing() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        assert!(matches!(
            store.set_setting(None, "max_outbund", json!(3)),
            Err(StoreError::Invalid(e)) if e.message.contains("not a fax setting")
        ));
        assert!(
            store
                .set_setting(None, "max_outbound", json!("ten"))
                .is_err()
        );
        assert!(store.set_setting(None, "max_outbound", json!(0)).is_err());
        assert!(store.set_setting(None, "store_fax_pdf", json!(1)).is_err());
        // Box-wide keys cannot be set per account.
        assert!(
            store
                .set_setting(Some(&a), "serialize_outbound_numbers", json!(false))
                .is_err()
        );
        // An unknown account is named.
        assert!(matches!(
            store.set_setting(Some(&AccountId::from("nope")), "max_outbound", json!(3)),
            Err(StoreError::NotFound {
                kind: "account",
                ..
            })
        ));
        assert_eq!(
            store.setting(Some(&a), "max_outbound").unwrap().source,
            "default"
        );
    }

    #[test]
    fn command_line_words_become_values() {
        let s = find("max_outbound").unwrap();
        assert_eq!(s.parse_word("7"), json!(7));
        let s = find("default_smtp_domain").unwrap();
        assert_eq!(s.parse_word("fax.example.com"), json!("fax.example.com"));
        assert_eq!(
            s.parse_word("\"fax.example.com\""),
            json!("fax.example.com")
        );
        let s = find("store_fax_pdf").unwrap();
        assert_eq!(s.parse_word("false"), json!(false));
    }
}
