//! Faxboxes: their Kazoo fields, generated and custom mail domains, and the
//! inbound numbers that ring them.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{ChangedRow, OptionalRow, Result, Store, StoreError, json_column, select_all, to_json};
use crate::model::{
    AccountId, CoverPage, DEFAULT_CALLER_NAME, DEFAULT_FAXBOX_RETRIES, FaxId, Faxbox, FaxboxFields,
    FaxboxId, FaxboxNotifications, FieldError, UserId, digits_of, now,
};

/// The faxbox fields kept as one JSON column: nothing queries them by value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FaxboxDoc {
    caller_id: Option<String>,
    caller_name: String,
    fax_header: String,
    fax_identity: Option<String>,
    fax_timezone: Option<String>,
    retries: u8,
    smtp_permission_list: Vec<String>,
    notifications: FaxboxNotifications,
    fax_option: Option<bool>,
    flags: Vec<String>,
    log_errors: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sending_windows: Vec<String>,
    #[serde(default)]
    cover_page: CoverPage,
    /// The client's own fields (`Faxbox::extra`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// Whether an update replaces the whole faxbox (HTTP POST: fields not given
/// take their defaults) or merges into it (PATCH, CLI `update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    Replace,
    Merge,
}

const FAXBOX_COLUMNS: &str = "id, account_id, name, owner_id, smtp_email_address, \
     custom_smtp_email_address, doc, created, modified";

fn faxbox_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Faxbox> {
    let doc: FaxboxDoc = json_column(r, 6)?;
    Ok(Faxbox {
        id: FaxboxId(r.get(0)?),
        account_id: AccountId(r.get(1)?),
        name: r.get(2)?,
        owner_id: r.get::<_, Option<String>>(3)?.map(UserId),
        smtp_email_address: r.get(4)?,
        custom_smtp_email_address: r.get(5)?,
        caller_id: doc.caller_id,
        caller_name: doc.caller_name,
        fax_header: doc.fax_header,
        fax_identity: doc.fax_identity,
        fax_timezone: doc.fax_timezone,
        retries: doc.retries,
        smtp_permission_list: doc.smtp_permission_list,
        notifications: doc.notifications,
        fax_option: doc.fax_option,
        flags: doc.flags,
        log_errors: doc.log_errors,
        numbers: Vec::new(),
        sending_windows: doc.sending_windows,
        cover_page: doc.cover_page,
        created: r.get(7)?,
        modified: r.get(8)?,
        extra: doc.extra,
    })
}

/// Applies client fields over a base faxbox.
fn apply(base: &mut Faxbox, f: FaxboxFields) {
    let FaxboxFields {
        name,
        caller_id,
        caller_name,
        fax_header,
        fax_identity,
        fax_timezone,
        retries,
        owner_id,
        custom_smtp_email_address,
        smtp_permission_list,
        notifications,
        fax_option,
        flags,
        log_errors,
        numbers,
        sending_windows,
        cover_page,
        attempts: _,
        extra,
    } = f;
    if let Some(v) = name {
        base.name = v.trim().to_owned();
    }
    if caller_id.is_some() {
        base.caller_id = caller_id;
    }
    if let Some(v) = caller_name {
        base.caller_name = v;
    }
    if let Some(v) = fax_header {
        base.fax_header = v;
    }
    if fax_identity.is_some() {
        base.fax_identity = fax_identity;
    }
    if fax_timezone.is_some() {
        base.fax_timezone = fax_timezone;
    }
    if let Some(v) = retries {
        base.retries = v as u8;
    }
    if owner_id.is_some() {
        base.owner_id = owner_id;
    }
    if let Some(v) = custom_smtp_email_address {
        base.custom_smtp_email_address = Some(v.to_ascii_lowercase());
    }
    if let Some(v) = smtp_permission_list {
        base.smtp_permission_list = v.into_iter().map(|p| p.to_lowercase()).collect();
    }
    if let Some(v) = notifications {
        base.notifications = v;
    }
    if fax_option.is_some() {
        base.fax_option = fax_option;
    }
    if let Some(v) = flags {
        base.flags = v;
    }
    if log_errors.is_some() {
        base.log_errors = log_errors;
    }
    if let Some(v) = numbers {
        base.numbers = v.iter().map(|n| digits_of(n)).collect();
        base.numbers.sort();
        base.numbers.dedup();
    }
    if let Some(v) = sending_windows {
        base.sending_windows = v.iter().map(|w| w.trim().to_owned()).collect();
    }
    if let Some(v) = cover_page {
        base.cover_page = v;
    }
    if let Some(v) = extra {
        base.extra = v;
    }
}

fn blank_faxbox(account: &AccountId) -> Faxbox {
    let t = now();
    Faxbox {
        id: FaxboxId::new(),
        account_id: account.clone(),
        name: String::new(),
        caller_id: None,
        caller_name: DEFAULT_CALLER_NAME.into(),
        fax_header: DEFAULT_CALLER_NAME.into(),
        fax_identity: None,
        fax_timezone: None,
        retries: DEFAULT_FAXBOX_RETRIES,
        owner_id: None,
        smtp_email_address: String::new(),
        custom_smtp_email_address: None,
        smtp_permission_list: Vec::new(),
        notifications: FaxboxNotifications::default(),
        fax_option: None,
        flags: Vec::new(),
        log_errors: None,
        numbers: Vec::new(),
        sending_windows: Vec::new(),
        cover_page: CoverPage::default(),
        created: t,
        modified: t,
        extra: serde_json::Map::new(),
    }
}

impl Store {
    /// Creates a faxbox; its mail address is generated from the account's
    /// `default_smtp_domain` (account -> system -> default).
    pub fn create_faxbox(&self, account: &AccountId, fields: FaxboxFields) -> Result<Faxbox> {
        fields.validate(true)?;
        let domain = self.setting_text(Some(account), "default_smtp_domain")?;
        let mut faxbox = blank_faxbox(account);
        faxbox.smtp_email_address = format!(
            "{}.{}",
            hex::encode(rand::random::<[u8; 4]>()),
            domain.to_ascii_lowercase()
        );
        apply(&mut faxbox, fields);
        self.write(|tx| {
            super::ensure_account(tx, account)?;
            check_unique(tx, &faxbox)?;
            tx.execute(
                &format!("INSERT INTO faxboxes ({FAXBOX_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    faxbox.id.as_str(),
                    account.as_str(),
                    faxbox.name,
                    faxbox.owner_id.as_ref().map(UserId::as_str),
                    faxbox.smtp_email_address,
                    faxbox.custom_smtp_email_address,
                    to_json(&doc_of(&faxbox)),
                    faxbox.created,
                    faxbox.modified
                ],
            )?;
            write_numbers(tx, &faxbox)?;
            Ok(())
        })?;
        Ok(faxbox)
    }

    /// Gives faxboxes whose generated address is not under the account's
    /// `default_smtp_domain` an address under it, keeping the 8 hex digits
    /// (`1a2b3c4d.fax.old.example` -> `1a2b3c4d.fax.new.example`): after
    /// the mail domain changes, existing faxboxes follow. `account`: only
    /// that account's. Returns (faxbox, old address, new address) for each
    /// faxbox changed; custom addresses are left alone.
    pub fn readdress_faxboxes(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(FaxboxId, String, String)>> {
        let all: Vec<(FaxboxId, AccountId, String)> = self.read(|conn| {
            select_all(
                conn,
                "SELECT id, account_id, smtp_email_address FROM faxboxes
                 WHERE ?1 IS NULL OR account_id = ?1 ORDER BY rowid",
                [account.map(AccountId::as_str)],
                |r| Ok((FaxboxId(r.get(0)?), AccountId(r.get(1)?), r.get(2)?)),
            )
        })?;
        let mut changes = Vec::new();
        for (id, account, old) in all {
            let domain = self
                .setting_text(Some(&account), "default_smtp_domain")?
                .to_ascii_lowercase();
            let hex8 = old.split('.').next().unwrap_or_default().to_owned();
            let new = format!("{hex8}.{domain}");
            if new != old {
                changes.push((id, old, new));
            }
        }
        self.write(|tx| {
            for (id, _, new) in &changes {
                tx.execute(
                    "UPDATE faxboxes SET smtp_email_address = ?2, modified = ?3 WHERE id = ?1",
                    params![id.as_str(), new, now()],
                )?;
            }
            Ok(())
        })?;
        Ok(changes)
    }

    /// A faxbox by id, wherever it lives (admin and inbound routing).
    pub fn faxbox(&self, id: &FaxboxId) -> Result<Faxbox> {
        self.read(|conn| {
            let mut faxbox = conn
                .query_row(
                    &format!("SELECT {FAXBOX_COLUMNS} FROM faxboxes WHERE id = ?1"),
                    [id.as_str()],
                    faxbox_from_row,
                )
                .found("faxbox", id.as_str())?;
            faxbox.numbers = numbers_of(conn, &faxbox.id)?;
            Ok(faxbox)
        })
    }

    /// A faxbox of one account: another account's faxbox is "not found"
    /// (docs/architecture.md, invariant 5).
    pub fn faxbox_in(&self, account: &AccountId, id: &FaxboxId) -> Result<Faxbox> {
        match self.faxbox(id) {
            Ok(f) if &f.account_id == account => Ok(f),
            Ok(_) => Err(StoreError::NotFound {
                kind: "faxbox",
                id: id.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    pub fn faxboxes(&self, account: &AccountId) -> Result<Vec<Faxbox>> {
        self.account(account)?;
        self.read(|conn| {
            let mut list = select_all::<Vec<_>, _>(
                conn,
                &format!(
                    "SELECT {FAXBOX_COLUMNS} FROM faxboxes WHERE account_id = ?1 ORDER BY rowid"
                ),
                [account.as_str()],
                faxbox_from_row,
            )?;
            for f in &mut list {
                f.numbers = numbers_of(conn, &f.id)?;
            }
            Ok(list)
        })
    }

    /// The faxbox whose generated or custom mail domain is `domain`
    /// (docs/kazoo.md 6.3 step 1; case-insensitive).
    pub fn faxbox_by_domain(&self, domain: &str) -> Result<Option<Faxbox>> {
        let id: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id FROM faxboxes WHERE smtp_email_address = ?1
                     OR custom_smtp_email_address = ?1",
                    [domain],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        id.map(|id| self.faxbox(&FaxboxId(id))).transpose()
    }

    /// The faxbox an inbound call to `number` rings, by its digits.
    pub fn faxbox_by_number(&self, number: &str) -> Result<Option<Faxbox>> {
        let id: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT faxbox_id FROM faxbox_numbers WHERE number = ?1",
                    [digits_of(number)],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        id.map(|id| self.faxbox(&FaxboxId(id))).transpose()
    }

    pub fn update_faxbox(
        &self,
        id: &FaxboxId,
        fields: FaxboxFields,
        mode: UpdateMode,
    ) -> Result<Faxbox> {
        fields.validate(mode == UpdateMode::Replace)?;
        let current = self.faxbox(id)?;
        let mut faxbox = match mode {
            UpdateMode::Merge => current.clone(),
            UpdateMode::Replace => {
                // Keep what a client can never set: identity, generated
                // address, creation time.
                let mut fresh = blank_faxbox(&current.account_id);
                fresh.id = current.id.clone();
                fresh.smtp_email_address = current.smtp_email_address.clone();
                fresh.created = current.created;
                fresh
            }
        };
        apply(&mut faxbox, fields);
        faxbox.modified = now();
        self.write(|tx| {
            check_unique(tx, &faxbox)?;
            tx.execute(
                "UPDATE faxboxes SET name = ?2, owner_id = ?3, custom_smtp_email_address = ?4,
                     doc = ?5, modified = ?6 WHERE id = ?1",
                params![
                    faxbox.id.as_str(),
                    faxbox.name,
                    faxbox.owner_id.as_ref().map(UserId::as_str),
                    faxbox.custom_smtp_email_address,
                    to_json(&doc_of(&faxbox)),
                    faxbox.modified
                ],
            )?;
            write_numbers(tx, &faxbox)?;
            // Faxes held for the old windows are looked at again now.
            if faxbox.sending_windows != current.sending_windows {
                super::jobs::release_window_holds(tx, &faxbox.id)?;
            }
            Ok(())
        })?;
        Ok(faxbox)
    }

    /// Deletes a faxbox for real; its faxes stay in the account without it.
    pub fn delete_faxbox(&self, id: &FaxboxId) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM faxboxes WHERE id = ?1", [id.as_str()])
                .changed("faxbox", id)
        })
    }

    /// Whether a fax belongs to a faxbox (used by listings under a faxbox).
    pub fn fax_in_faxbox(&self, fax: &FaxId, faxbox: &FaxboxId) -> Result<bool> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM faxes WHERE id = ?1 AND faxbox_id = ?2)",
                params![fax.as_str(), faxbox.as_str()],
                |r| r.get(0),
            )?)
        })
    }
}

fn doc_of(f: &Faxbox) -> FaxboxDoc {
    FaxboxDoc {
        caller_id: f.caller_id.clone(),
        caller_name: f.caller_name.clone(),
        fax_header: f.fax_header.clone(),
        fax_identity: f.fax_identity.clone(),
        fax_timezone: f.fax_timezone.clone(),
        retries: f.retries,
        smtp_permission_list: f.smtp_permission_list.clone(),
        notifications: f.notifications.clone(),
        fax_option: f.fax_option,
        flags: f.flags.clone(),
        log_errors: f.log_errors,
        sending_windows: f.sending_windows.clone(),
        cover_page: f.cover_page.clone(),
        extra: f.extra.clone(),
    }
}

fn numbers_of(conn: &rusqlite::Connection, id: &FaxboxId) -> Result<Vec<String>> {
    select_all(
        conn,
        "SELECT number FROM faxbox_numbers WHERE faxbox_id = ?1 ORDER BY number",
        [id.as_str()],
        |r| r.get(0),
    )
}

/// The uniqueness rules that need the whole box: a custom mail domain is
/// nobody else's address (Kazoo: "email address must be unique"), an
/// inbound number rings one faxbox, and the owner is a user of the account.
///
/// Mail domains are owned once (issue 18): a custom address may not be, or
/// lie under, another account's realm or another account's faxbox address;
/// mail lookup tries faxbox addresses first, so such an address would take
/// that account's mail. Errors never name what belongs to another account.
fn check_unique(tx: &Transaction<'_>, f: &Faxbox) -> Result<()> {
    if let Some(custom) = &f.custom_smtp_email_address {
        let refuse = |what: &str| -> Result<()> {
            Err(FieldError::new(
                "custom_smtp_email_address",
                "unique",
                format!(
                    "email address must be unique: {custom} {what}; choose a domain of your own \
                     office, such as fax.<your domain>"
                ),
            )
            .into())
        };
        // `a` equals `b` or lies under it (`x.b`).
        let at_or_under = "(?2 = {col} OR substr(?2, -length({col}) - 1) = '.' || {col})";
        let same_account: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM faxboxes WHERE id != ?1 AND account_id = ?3
               AND (custom_smtp_email_address = ?2 OR smtp_email_address = ?2))",
            params![f.id.as_str(), custom, f.account_id.as_str()],
            |r| r.get(0),
        )?;
        if same_account {
            return refuse("belongs to another faxbox of this account");
        }
        let other_faxbox: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM faxboxes WHERE id != ?1 AND account_id != ?3
                   AND ({} OR {}))",
                at_or_under.replace("{col}", "smtp_email_address"),
                at_or_under.replace("{col}", "custom_smtp_email_address"),
            ),
            params![f.id.as_str(), custom, f.account_id.as_str()],
            |r| r.get(0),
        )?;
        let other_realm: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM accounts WHERE id != ?3 AND realm IS NOT NULL
                   AND realm != '' AND {})",
                at_or_under.replace("{col}", "realm"),
            ),
            params![f.id.as_str(), custom, f.account_id.as_str()],
            |r| r.get(0),
        )?;
        if other_faxbox || other_realm {
            return refuse("is the mail domain of another account, or lies under it");
        }
    }
    for number in &f.numbers {
        let other: Option<String> = tx
            .query_row(
                "SELECT faxbox_id FROM faxbox_numbers WHERE number = ?1 AND faxbox_id != ?2",
                params![number, f.id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = other {
            let ours: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM faxboxes WHERE id = ?1 AND account_id = ?2)",
                params![other, f.account_id.as_str()],
                |r| r.get(0),
            )?;
            let whose = if ours {
                format!("faxbox {other}")
            } else {
                "a faxbox of another account".to_owned()
            };
            return Err(FieldError::new(
                "numbers",
                "unique",
                format!("the number {number} already rings {whose}"),
            )
            .into());
        }
    }
    if let Some(owner) = &f.owner_id {
        let ok: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND account_id = ?2)",
            params![owner.as_str(), f.account_id.as_str()],
            |r| r.get(0),
        )?;
        if !ok {
            return Err(FieldError::new(
                "owner_id",
                "not_found",
                format!("{owner} is not a user of this account"),
            )
            .into());
        }
    }
    Ok(())
}

fn write_numbers(tx: &Transaction<'_>, f: &Faxbox) -> Result<()> {
    tx.execute(
        "DELETE FROM faxbox_numbers WHERE faxbox_id = ?1",
        [f.id.as_str()],
    )?;
    for number in &f.numbers {
        tx.execute(
            "INSERT INTO faxbox_numbers (number, faxbox_id) VALUES (?1, ?2)",
            params![number, f.id.as_str()],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::temp_store;
    use serde_json::json;

    fn named(name: &str) -> FaxboxFields {
        FaxboxFields {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    #[test]
    fn generated_address_follows_default_smtp_domain() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let f = store.create_faxbox(&a, named("one")).unwrap();
        let (hex8, domain) = f.smtp_email_address.split_once('.').unwrap();
        assert_eq!(hex8.len(), 8);
        assert_eq!(domain, "fax.localdomain");
        store
            .set_setting(None, "default_smtp_domain", json!("fax.box.example"))
            .unwrap();
        let f = store.create_faxbox(&a, named("two")).unwrap();
        assert!(f.smtp_email_address.ends_with(".fax.box.example"));
        store
            .set_setting(Some(&a), "default_smtp_domain", json!("acme.example"))
            .unwrap();
        let f = store.create_faxbox(&a, named("three")).unwrap();
        assert!(f.smtp_email_address.ends_with(".acme.example"));
        assert_eq!(f.retries, 3);
        assert_eq!(
            store
                .faxbox_by_domain(&f.smtp_email_address.to_uppercase())
                .unwrap()
                .unwrap()
                .id,
            f.id
        );
    }

    #[test]
    fn uniqueness_and_ownership_rules_change_nothing_when_broken() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let b = store.create_account("Other", None).unwrap().id;
        let stranger = store.create_user(&b, "x@b.example", "X").unwrap();
        let mut fields = named("one");
        fields.custom_smtp_email_address = Some("Fax.Acme.example".into());
        fields.numbers = Some(vec!["+1 (555) 000-1111".into()]);
        let one = store.create_faxbox(&a, fields).unwrap();
        assert_eq!(one.numbers, vec!["15550001111"]);
        assert_eq!(
            one.custom_smtp_email_address.as_deref(),
            Some("fax.acme.example")
        );

        let mut dup = named("two");
        dup.custom_smtp_email_address = Some("fax.acme.EXAMPLE".into());
        let err = store.create_faxbox(&b, dup).unwrap_err().to_string();
        assert!(err.contains("must be unique"), "{err}");
        let mut dup = named("two");
        dup.numbers = Some(vec!["15550001111".into()]);
        assert!(
            store
                .create_faxbox(&b, dup)
                .unwrap_err()
                .to_string()
                .contains("already rings")
        );
        let mut foreign = named("two");
        foreign.owner_id = Some(stranger.id.clone());
        assert!(store.create_faxbox(&a, foreign).is_err());
        assert!(
            store
                .create_faxbox(&AccountId::from("nope"), named("x"))
                .is_err()
        );
        assert_eq!(store.faxboxes(&a).unwrap().len(), 1);
        assert_eq!(store.faxboxes(&b).unwrap().len(), 0);
        assert_eq!(
            store
                .faxbox_by_number("1-555-000-1111")
                .unwrap()
                .unwrap()
                .id,
            one.id
        );
        // Another account cannot see it.
        assert!(matches!(
            store.faxbox_in(&b, &one.id),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn merge_keeps_and_replace_resets() {
        let (_dir, store) = temp_store();
        let a = store.create_account("Acme", None).unwrap().id;
        let mut fields = named("one");
        fields.caller_id = Some("15551230000".into());
        let f = store.create_faxbox(&a, fields).unwrap();
        let merged = store
            .update_faxbox(
                &f.id,
                FaxboxFields {
                    retries: Some(2),
                    ..Default::default()
                },
                UpdateMode::Merge,
            )
            .unwrap();
        assert_eq!(
            (merged.retries, merged.caller_id.as_deref()),
            (2, Some("15551230000"))
        );
        let replaced = store
            .update_faxbox(&f.id, named("renamed"), UpdateMode::Replace)
            .unwrap();
        assert_eq!(replaced.caller_id, None);
        assert_eq!(replaced.smtp_email_address, f.smtp_email_address);
        assert!(
            store
                .update_faxbox(&f.id, FaxboxFields::default(), UpdateMode::Replace)
                .is_err()
        );
        assert_eq!(store.faxbox(&f.id).unwrap().name, "renamed");
    }
}
