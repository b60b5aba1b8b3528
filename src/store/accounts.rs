//! Accounts, their users and their API keys.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{OptionalRow, Result, Store, StoreError};
use crate::model::{
    Account, AccountId, ApiKey, FieldError, User, UserId, is_domain, is_email, now,
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
    Ok(User {
        id: UserId(r.get(0)?),
        account_id: AccountId(r.get(1)?),
        email: r.get(2)?,
        name: r.get(3)?,
        created: r.get(4)?,
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
const USER_COLUMNS: &str = "id, account_id, email, name, created";

impl Store {
    pub fn create_account(&self, name: &str, realm: Option<&str>) -> Result<Account> {
        self.insert_account(name, realm, false)
    }

    /// The first account of a new box, which may manage the others.
    pub fn create_admin_account(&self, name: &str) -> Result<Account> {
        self.insert_account(name, None, true)
    }

    fn insert_account(&self, name: &str, realm: Option<&str>, is_admin: bool) -> Result<Account> {
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
            let mut stmt = conn.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY rowid"
            ))?;
            let rows = stmt.query_map([], account_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    /// faxes and their documents (a real delete, reference 13 item 19).
    pub fn delete_account(&self, id: &AccountId) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM settings WHERE scope = ?1", [id.as_str()])?;
            let n = tx.execute("DELETE FROM accounts WHERE id = ?1", [id.as_str()])?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "account",
                    id: id.to_string(),
                });
            }
            Ok(())
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
            let mut stmt = conn.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE account_id = ?1 ORDER BY email"
            ))?;
            let rows = stmt.query_map([account.as_str()], user_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Users of an account with this email (case-insensitive).
    pub fn users_by_email(&self, account: &AccountId, email: &str) -> Result<Vec<User>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE account_id = ?1 AND email = ?2"
            ))?;
            let rows = stmt.query_map(params![account.as_str(), email], user_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn delete_user(&self, id: &UserId) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM users WHERE id = ?1", [id.as_str()])?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "user",
                    id: id.to_string(),
                });
            }
            Ok(())
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
            let mut stmt = conn.prepare(
                "SELECT id, account_id, label, created, revoked FROM api_keys
                 WHERE account_id = ?1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([account.as_str()], key_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
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
            let n = tx.execute(
                "UPDATE api_keys SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    kind: "live API key",
                    id: id.to_owned(),
                });
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::StoreError;
    use crate::store::testing::temp_store;

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
