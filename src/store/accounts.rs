//! Accounts, their users and their API keys.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{ChangedRow, OptionalRow, Result, Store, StoreError, select_all, to_json};
use crate::model::{
    Account, AccountId, ApiKey, FieldError, NO_EMAIL_DOMAIN, User, UserId, is_domain, is_email, now,
};

/// An API key as handed to its owner once; only its hash is kept.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: AccountId(r.get(0)?),
        name: r.get(1)?,
        realm: r.get(2)?,
        is_admin: r.get(3)?,
        created: r.get(4)?,
    })
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let doc: String = r.get(6)?;
    Ok(User {
        id: UserId(r.get(0)?),
        account_id: AccountId(r.get(1)?),
        email: r.get(2)?,
        name: r.get(3)?,
        created: r.get(4)?,
        username: r.get(5)?,
        doc: serde_json::from_str(&doc).unwrap_or_default(),
    })
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        account_id: AccountId(r.get(1)?),
        label: r.get(2)?,
        created: r.get(3)?,
        revoked: r.get(4)?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, name, realm, is_admin, created";
const USER_COLUMNS: &str = "id, account_id, email, name, created, username, doc";

impl Store {
    pub fn create_account(&self, name: &str, realm: Option<&str>) -> Result<Account> {
        self.insert_account(name, realm, false)
    }

    /// The first account of a new box, which may manage the others.
    pub fn create_admin_account(&self, name: &str) -> Result<Account> {
        self.insert_account(name, None, true)
    }

    fn insert_account(&self, name: &str, realm: Option<&str>, is_admin: bool) -> Result<Account> {
        let (name, realm) = account_name_and_realm(name, realm)?;
        let account = Account {
            id: AccountId::new(),
            name: name.to_owned(),
            realm,
            is_admin,
            created: now(),
        };
        self.write(|tx| {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE realm = ?1)",
                [&account.realm],
                |r| r.get(0),
            )?;
            if taken {
                return Err(FieldError::new(
                    "realm",
                    "unique",
                    format!(
                        "another account already uses the realm {}",
                        account.realm.as_deref().unwrap_or_default()
                    ),
                )
                .into());
            }
            tx.execute(
                "INSERT INTO accounts (id, name, realm, is_admin, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![account.id.as_str(), account.name, account.realm, account.is_admin, account.created],
            )?;
            Ok(())
        })?;
        Ok(account)
    }

    pub fn account(&self, id: &AccountId) -> Result<Account> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
                [id.as_str()],
                account_from_row,
            )
            .found("account", id.as_str())
        })
    }

    pub fn accounts(&self) -> Result<Vec<Account>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY rowid"),
                [],
                account_from_row,
            )
        })
    }

    pub fn account_by_realm(&self, realm: &str) -> Result<Option<Account>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE realm = ?1"),
                    [realm],
                    account_from_row,
                )
                .optional()?)
        })
    }

    /// Deletes an account and everything in it: users, keys, faxboxes,
    /// faxes and their documents (a real delete, docs/kazoo.md 13 item 19).
    pub fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM settings WHERE scope = ?1", [id.as_str()])?;
            tx.execute("DELETE FROM accounts WHERE id = ?1", [id.as_str()])
                .changed("account", id)
        })
    }

    pub fn create_user(&self, account: &AccountId, email: &str, name: &str) -> Result<User> {
        let email = email.trim().to_ascii_lowercase();
        if !is_email(&email) {
            return Err(FieldError::new(
                "email",
                "format",
                format!("{email:?} is not an email address"),
            )
            .into());
        }
        let user = User {
            id: UserId::new(),
            account_id: account.clone(),
            email,
            name: name.trim().to_owned(),
            created: now(),
            username: None,
            doc: Default::default(),
        };
        self.write(|tx| {
            super::ensure_account(tx, account)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE account_id = ?1 AND email = ?2)",
                params![account.as_str(), user.email],
                |r| r.get(0),
            )?;
            if taken {
                return Err(FieldError::new(
                    "email",
                    "unique",
                    format!("{} is already a user of this account", user.email),
                )
                .into());
            }
            tx.execute(
                "INSERT INTO users (id, account_id, email, name, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user.id.as_str(), account.as_str(), user.email, user.name, user.created],
            )?;
            Ok(())
        })?;
        Ok(user)
    }

    pub fn user(&self, id: &UserId) -> Result<User> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id.as_str()],
                user_from_row,
            )
            .found("user", id.as_str())
        })
    }

    pub fn users(&self, account: &AccountId) -> Result<Vec<User>> {
        self.account(account)?;
        self.read(|conn| {
            select_all(
                conn,
                &format!("SELECT {USER_COLUMNS} FROM users WHERE account_id = ?1 ORDER BY email"),
                [account.as_str()],
                user_from_row,
            )
        })
    }

    /// Users of an account with this email (case-insensitive).
    pub fn users_by_email(&self, account: &AccountId, email: &str) -> Result<Vec<User>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!("SELECT {USER_COLUMNS} FROM users WHERE account_id = ?1 AND email = ?2"),
                params![account.as_str(), email],
                user_from_row,
            )
        })
    }

    pub fn delete_user(&self, id: &UserId) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM users WHERE id = ?1", [id.as_str()])
                .changed("user", id)
        })
    }

    /// Makes a new API key; returns its record and the key itself, which is
    /// shown once and never stored.
    pub fn create_api_key(&self, account: &AccountId, label: &str) -> Result<(ApiKey, String)> {
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let key = ApiKey {
            id: crate::model::new_id(),
            account_id: account.clone(),
            label: label.trim().to_owned(),
            created: now(),
            revoked: None,
        };
        self.write(|tx| {
            super::ensure_account(tx, account)?;
            tx.execute(
                "INSERT INTO api_keys (id, account_id, key_hash, label, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.id, account.as_str(), hash_api_key(&secret), key.label, key.created],
            )?;
            Ok(())
        })?;
        Ok((key, secret))
    }

    pub fn api_keys(&self, account: &AccountId) -> Result<Vec<ApiKey>> {
        self.account(account)?;
        self.read(|conn| {
            select_all(
                conn,
                "SELECT id, account_id, label, created, revoked FROM api_keys
                 WHERE account_id = ?1 ORDER BY rowid",
                [account.as_str()],
                key_from_row,
            )
        })
    }

    /// The account a live (not revoked) key belongs to.
    pub fn account_for_api_key(&self, secret: &str) -> Result<Option<Account>> {
        self.account_for_api_key_hash(&hash_api_key(secret))
    }

    /// [`account_for_api_key`](Self::account_for_api_key) by the key's
    /// hash, which is what an API token carries.
    pub fn account_for_api_key_hash(&self, key_hash: &str) -> Result<Option<Account>> {
        self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT a.id, a.name, a.realm, a.is_admin, a.created
                     FROM api_keys k JOIN accounts a ON a.id = k.account_id
                     WHERE k.key_hash = ?1 AND k.revoked IS NULL",
                    [key_hash],
                    account_from_row,
                )
                .optional()?)
        })
    }

    /// A login for email (SMTP AUTH) and printing (IPP Basic auth): a
    /// user's email address and an API key of the user's account, since
    /// users have no passwords of their own. The account and the user's
    /// address (lowercase) when both match.
    pub fn login(&self, email: &str, api_key: &str) -> Result<Option<(Account, String)>> {
        let Some(account) = self.account_for_api_key(api_key.trim())? else {
            return Ok(None);
        };
        let email = email.trim().to_lowercase();
        let user = self
            .users_by_email(&account.id, &email)?
            .first()
            .map(|u| u.email.to_lowercase());
        Ok(user.map(|user| (account, user)))
    }

    pub fn revoke_api_key(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE api_keys SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, now()],
            )
            .changed("live API key", id)
        })
    }
}

/// What a client gives a user (`PUT`/`POST .../users`).
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// Where faxes and receipts are mailed; a user may have none (Kazoo
    /// makes a user of a first and a last name alone, docs/kazoo.md 2.7).
    pub email: Option<String>,
    pub name: String,
    /// The login name for `PUT /v2/user_auth`, unique in the account.
    pub username: Option<String>,
    /// A new password (`None` keeps the one set). Kept only as an Argon2
    /// hash, and as the md5 of "username:password" that Kazoo's login
    /// sends.
    pub password: Option<String>,
    /// Kazoo's other user fields (`first_name`, `last_name`, `timezone`,
    /// `priv_level`) and the client's own, as given.
    pub doc: serde_json::Map<String, serde_json::Value>,
}

/// Kazoo's login credential: the md5 of "username:password" in lowercase
/// hex (docs/kazoo.md 2.7 item 2), the username lowercased as Monster UI
/// sends it.
pub fn login_credentials(username: &str, password: &str) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(format!(
        "{}:{password}",
        username.to_lowercase()
    )))
}

/// A slow, salted hash of a password (Argon2id, PHC string format).
fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| StoreError::Conflict(format!("cannot make a password salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            FieldError::new(
                "password",
                "format",
                format!("this password cannot be used ({e}); choose another"),
            )
            .into()
        })
}

/// The stored address of a user without one: the `.invalid` top-level
/// domain (RFC 2606) never receives mail, and each user's is unique.
fn no_email(id: &UserId) -> String {
    format!("{id}@{NO_EMAIL_DOMAIN}")
}

/// A user's stored address: the one given, trimmed and lowercased, or a
/// unique address that receives no mail when none is given.
fn user_email(given: Option<&str>, id: &UserId) -> Result<String> {
    match given.map(|e| e.trim().to_ascii_lowercase()) {
        Some(e) if !e.is_empty() => {
            if !is_email(&e) {
                return Err(FieldError::new(
                    "email",
                    "format",
                    format!("{e:?} is not an email address"),
                )
                .with(Some("email".into()), e.as_str())
                .into());
            }
            Ok(e)
        }
        _ => Ok(no_email(id)),
    }
}

/// A new password's hash and Kazoo login credential; a password needs a
/// username to log in with, and may not be empty.
fn user_secret(password: Option<&str>, username: Option<&str>) -> Result<Option<(String, String)>> {
    match (password, username) {
        (Some(""), _) => {
            Err(
                FieldError::new("password", "minLength", "a password must not be empty")
                    .with(Some(1.into()), "")
                    .into(),
            )
        }
        (Some(_), None) => Err(FieldError::new(
            "username",
            "required",
            "a user with a password needs a username to log in with",
        )
        .into()),
        (Some(p), Some(u)) => Ok(Some((hash_password(p)?, login_credentials(u, p)))),
        (None, _) => Ok(None),
    }
}

/// Refuses an address or a username another user of the account has.
fn unique_login(
    tx: &rusqlite::Transaction<'_>,
    account: &AccountId,
    user: &UserId,
    email: &str,
    username: Option<&str>,
) -> Result<()> {
    // Whether another user of the account has `value` in `column`.
    let taken = |column: &str, value: Option<&str>| -> Result<bool> {
        Ok(tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM users
                 WHERE account_id = ?1 AND {column} = ?2 AND id != ?3)"
            ),
            params![account.as_str(), value, user.as_str()],
            |r| r.get(0),
        )?)
    };
    if taken("email", Some(email))? {
        return Err(FieldError::new(
            "email",
            "unique",
            format!("{email} is already a user of this account"),
        )
        .with(None, email)
        .into());
    }
    if taken("username", username)? {
        return Err(FieldError::new(
            "username",
            "unique",
            format!(
                "another user of this account logs in as {}",
                username.unwrap_or_default()
            ),
        )
        .into());
    }
    Ok(())
}

impl Store {
    /// Creates a user (`id` `None`) or replaces one of `account`'s.
    pub fn put_user(
        &self,
        account: &AccountId,
        id: Option<&UserId>,
        changes: UserChanges,
    ) -> Result<User> {
        let user_id = id.cloned().unwrap_or_else(UserId::new);
        let email = user_email(changes.email.as_deref(), &user_id)?;
        let username = changes
            .username
            .map(|u| u.trim().to_lowercase())
            .filter(|u| !u.is_empty());
        let secret = user_secret(changes.password.as_deref(), username.as_deref())?;
        let doc = to_json(&changes.doc);
        let name = changes.name.trim().to_owned();
        self.write(|tx| {
            super::ensure_account(tx, account)?;
            unique_login(tx, account, &user_id, &email, username.as_deref())?;
            match id {
                None => {
                    tx.execute(
                        "INSERT INTO users (id, account_id, email, name, created, username, doc)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            user_id.as_str(),
                            account.as_str(),
                            email,
                            name,
                            now(),
                            username,
                            doc
                        ],
                    )?;
                }
                Some(id) => {
                    // A new username without a new password: the old md5
                    // credential named the old username, so it goes.
                    tx.execute(
                        "UPDATE users SET email = ?3, name = ?4, doc = ?6,
                             credentials = CASE WHEN username IS ?5 THEN credentials END,
                             username = ?5
                         WHERE id = ?1 AND account_id = ?2",
                        params![id.as_str(), account.as_str(), email, name, username, doc],
                    )
                    .changed("user", id)?;
                }
            }
            if let Some((hash, credentials)) = &secret {
                tx.execute(
                    "UPDATE users SET password_hash = ?2, credentials = ?3 WHERE id = ?1",
                    params![user_id.as_str(), hash, credentials],
                )?;
            }
            Ok(())
        })?;
        self.user(&user_id)
    }

    /// The users whose Kazoo login credential is `credentials`, in
    /// `account` or anywhere on the box.
    pub fn users_by_credentials(
        &self,
        account: Option<&AccountId>,
        credentials: &str,
    ) -> Result<Vec<User>> {
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE credentials = ?1
                 AND (?2 IS NULL OR account_id = ?2) ORDER BY rowid"
                ),
                params![credentials.to_lowercase(), account.map(AccountId::as_str)],
                user_from_row,
            )
        })
    }

    /// Whether `password` is the user's (checked against its Argon2 hash).
    pub fn check_password(&self, id: &UserId, password: &str) -> Result<bool> {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let hash: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT password_hash FROM users WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })?;
        Ok(hash.is_some_and(|h| {
            PasswordHash::new(&h).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        }))
    }

    /// A child account of `parent` (Kazoo's `PUT /v2/accounts/{parent}`),
    /// with Kazoo's other account fields as given.
    pub fn create_child_account(
        &self,
        parent: &AccountId,
        name: &str,
        realm: Option<&str>,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Account> {
        let account = self.insert_account(name, realm, false)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE accounts SET parent_id = ?2, doc = ?3 WHERE id = ?1",
                params![account.id.as_str(), parent.as_str(), to_json(doc)],
            )?;
            Ok(())
        })?;
        Ok(account)
    }

    /// Changes an account's name, realm and other fields.
    pub fn update_account(
        &self,
        id: &AccountId,
        name: &str,
        realm: Option<&str>,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Account> {
        let (name, realm) = account_name_and_realm(name, realm)?;
        self.write(|tx| {
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE realm = ?1 AND id != ?2)",
                params![realm, id.as_str()],
                |r| r.get(0),
            )?;
            if taken {
                return Err(FieldError::new(
                    "realm",
                    "unique",
                    format!(
                        "another account already uses the realm {}",
                        realm.as_deref().unwrap_or_default()
                    ),
                )
                .into());
            }
            tx.execute(
                "UPDATE accounts SET name = ?2, realm = ?3, doc = ?4 WHERE id = ?1",
                params![id.as_str(), name, realm, to_json(doc)],
            )
            .changed("account", id)
        })?;
        self.account(id)
    }

    /// An account's Kazoo fields beyond name and realm (`timezone`,
    /// `language`, the client's own), and its parent.
    pub fn account_doc(
        &self,
        id: &AccountId,
    ) -> Result<(
        Option<AccountId>,
        serde_json::Map<String, serde_json::Value>,
    )> {
        self.read(|conn| {
            conn.query_row(
                "SELECT parent_id, doc FROM accounts WHERE id = ?1",
                [id.as_str()],
                |r| {
                    let parent: Option<String> = r.get(0)?;
                    let doc: String = r.get(1)?;
                    Ok((
                        parent.map(AccountId),
                        serde_json::from_str(&doc).unwrap_or_default(),
                    ))
                },
            )
            .found("account", id.as_str())
        })
    }

    /// The accounts made under `parent`; the admin account's children also
    /// take in the accounts made without a parent (before accounts had one,
    /// or by `faxbox account create`).
    pub fn child_accounts(&self, parent: &AccountId) -> Result<Vec<Account>> {
        let is_admin = self.account(parent)?.is_admin;
        self.read(|conn| {
            select_all(
                conn,
                &format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts
                 WHERE parent_id = ?1 OR (?2 AND parent_id IS NULL AND NOT is_admin)
                 ORDER BY rowid"
                ),
                params![parent.as_str(), is_admin],
                account_from_row,
            )
        })
    }
}

/// An account's name and realm as given by whoever creates or changes
/// it, checked and tidied: the name trimmed, the realm a lower-case mail
/// domain.
fn account_name_and_realm<'a>(
    name: &'a str,
    realm: Option<&str>,
) -> Result<(&'a str, Option<String>)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(FieldError::new(
            "name",
            "required",
            "an account needs a name (1 to 128 characters)",
        )
        .into());
    }
    let realm = realm.map(|r| r.trim().to_ascii_lowercase());
    if let Some(r) = &realm
        && !is_domain(r)
    {
        return Err(FieldError::new(
            "realm",
            "format",
            format!("{r:?} is not a mail domain such as example.com"),
        )
        .into());
    }
    Ok((name, realm))
}

#[cfg(test)]
mod tests {
    use crate::store::StoreError;
    use crate::store::testing::temp_store;

    /// The field and code a refusal names.
    fn refused<T: std::fmt::Debug>(r: crate::store::Result<T>) -> (String, &'static str) {
        match r {
            Err(StoreError::Invalid(e)) => (e.field, e.code),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_users_address_is_cleaned_or_made_up_and_a_bad_one_is_named() {
        let id = crate::model::UserId("u1".into());
        assert_eq!(
            super::user_email(Some(" Bob@Example.COM "), &id).unwrap(),
            "bob@example.com"
        );
        for none in [None, Some(""), Some("  ")] {
            assert_eq!(
                super::user_email(none, &id).unwrap(),
                format!("u1@{}", super::NO_EMAIL_DOMAIN)
            );
        }
        assert_eq!(
            refused(super::user_email(Some("bob at example"), &id)),
            ("email".into(), "format")
        );
    }

    #[test]
    fn a_password_needs_a_username_and_some_characters() {
        assert_eq!(super::user_secret(None, Some("bob")).unwrap(), None);
        assert_eq!(
            refused(super::user_secret(Some(""), Some("bob"))),
            ("password".into(), "minLength")
        );
        assert_eq!(
            refused(super::user_secret(Some("secret"), None)),
            ("username".into(), "required")
        );
        let (hash, credentials) = super::user_secret(Some("secret"), Some("bob"))
            .unwrap()
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(credentials, super::login_credentials("bob", "secret"));
    }

    #[test]
    fn api_keys_authenticate_until_revoked() {
        let (_dir, store) = temp_store();
        let acct = store.create_account("Acme", None).unwrap();
        let (key, secret) = store.create_api_key(&acct.id, "ci").unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(
            store.account_for_api_key(&secret).unwrap().unwrap().id,
            acct.id
        );
        assert!(store.account_for_api_key("wrong").unwrap().is_none());
        store.revoke_api_key(&key.id).unwrap();
        assert!(store.account_for_api_key(&secret).unwrap().is_none());
        assert!(matches!(
            store.revoke_api_key(&key.id),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn users_are_unique_per_account_and_case_insensitive() {
        let (_dir, store) = temp_store();
        let acct = store.create_account("Acme", Some("acme.example")).unwrap();
        let u = store
            .create_user(&acct.id, "Bob@Example.com", "Bob")
            .unwrap();
        assert_eq!(u.email, "bob@example.com");
        assert!(
            store
                .create_user(&acct.id, "BOB@example.com", "Bob 2")
                .is_err()
        );
        assert_eq!(
            store
                .users_by_email(&acct.id, "BOB@EXAMPLE.COM")
                .unwrap()
                .len(),
            1
        );
        assert!(store.create_user(&acct.id, "not-an-email", "x").is_err());
        // The realm is unique across accounts.
        assert!(store.create_account("Copy", Some("ACME.example")).is_err());
        assert_eq!(
            store.account_by_realm("acme.example").unwrap().unwrap().id,
            acct.id
        );
    }
}
