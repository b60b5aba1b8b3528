//! Which faxbox an email address reaches and whether the sender may use it:
//! Kazoo's lookup order on RCPT (docs/kazoo.md 6.3), the destination number
//! (6.4) and the sender rules (6.5), with two of its quirks fixed: senders
//! compare case-insensitively, and a permission pattern must match the
//! whole address (Kazoo's unanchored match let `example.com` admit
//! `bob@notexample.com.evil`, docs/kazoo.md 13 item 5).

use regex::RegexBuilder;

use crate::model::{Faxbox, ServiceNumbers, check_fax_number, digits_of, is_email};
use crate::store::{Store, StoreError};

/// A recipient that resolved to a faxbox and a number to dial.
#[derive(Debug, Clone)]
pub struct Target {
    pub faxbox: Faxbox,
    pub owner_email: Option<String>,
    /// The recipient address as given (lower-cased).
    pub address: String,
    /// The local part as written (`+1 (555) 123-4567`).
    pub original_number: String,
    /// The E.164 number the fax goes to.
    pub number: String,
}

/// Why a recipient is refused; each maps to Kazoo's reply.
#[derive(Debug)]
pub enum Refusal {
    /// `554 Not Found`: no faxbox for the address, or no valid number.
    NotFound {
        reason: String,
        /// The faxbox, when the domain found one (for the log).
        faxbox: Option<Box<Faxbox>>,
    },
    /// `554 not allowed`: the sender may not use this faxbox.
    NotAllowed { reason: String, faxbox: Box<Faxbox> },
    /// The store failed: `451`, the sender's server tries again later.
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

fn not_found(reason: String) -> Refusal {
    Refusal::NotFound {
        reason,
        faxbox: None,
    }
}

/// Resolves `recipient` for mail from `sender` (both lower-cased).
pub fn resolve(store: &Store, sender: &str, recipient: &str) -> Result<Target, Refusal> {
    let Some((local, domain)) = recipient.rsplit_once('@') else {
        return Err(not_found(format!("invalid address {recipient}")));
    };
    let (faxbox, owner_email) = find_faxbox(store, sender, domain)?;
    let service = if store.setting_bool(Some(&faxbox.account_id), "allow_service_numbers")? {
        ServiceNumbers::Allowed
    } else {
        ServiceNumbers::Refused
    };
    let number = match number_of(local, service) {
        Ok(n) => n,
        Err(reason) => {
            return Err(Refusal::NotFound {
                reason,
                faxbox: Some(Box::new(faxbox)),
            });
        }
    };
    authorize(store, sender, &faxbox, owner_email.as_deref())?;
    Ok(Target {
        faxbox,
        owner_email,
        address: recipient.to_owned(),
        original_number: local.to_owned(),
        number,
    })
}

/// Reference 6.4: the digits of the local part, normalized to E.164.
fn number_of(local: &str, service: ServiceNumbers) -> Result<String, String> {
    let digits = digits_of(local);
    if digits.is_empty() {
        return Err(format!("fax number {local} is empty"));
    }
    check_fax_number("to_number", &digits, service).map_err(|e| e.message)
}

/// Reference 6.3: the faxbox by its address, else the account by realm and
/// then the sender's own faxbox or the account's permission lists.
fn find_faxbox(
    store: &Store,
    sender: &str,
    domain: &str,
) -> Result<(Faxbox, Option<String>), Refusal> {
    if let Some(faxbox) = store.faxbox_by_domain(domain)? {
        let owner_email = owner_email(store, &faxbox)?;
        return Ok((faxbox, owner_email));
    }
    let Some(account) = store.account_by_realm(domain)? else {
        return Err(not_found(format!(
            "no faxbox has the address {domain} and no account has it as realm"
        )));
    };
    let mut notes = Vec::new();
    let faxboxes = store.faxboxes(&account.id)?;
    match store.users_by_email(&account.id, sender)?.as_slice() {
        [user] => {
            let own: Vec<&Faxbox> = faxboxes
                .iter()
                .filter(|f| f.owner_id.as_ref() == Some(&user.id))
                .collect();
            match own.as_slice() {
                [one] => return Ok(((*one).clone(), Some(user.email.to_lowercase()))),
                [] => notes.push(format!("user {sender} owns no faxbox")),
                _ => notes.push(format!("user {sender} owns several faxboxes")),
            }
        }
        [] => notes.push(format!("{sender} is not a user of account {}", account.id)),
        _ => notes.push(format!(
            "several users of account {} are {sender}",
            account.id
        )),
    }
    let mut any_rules = false;
    for faxbox in &faxboxes {
        for entry in &faxbox.smtp_permission_list {
            any_rules |= !entry.trim().is_empty();
            if permits(entry, sender) {
                let owner = owner_email(store, faxbox)?;
                return Ok((faxbox.clone(), owner));
            }
        }
    }
    notes.push(if any_rules {
        format!("no matching rules in account {} for {sender}", account.id)
    } else {
        format!("no faxboxes for account {}", account.id)
    });
    Err(not_found(notes.join("; ")))
}

fn owner_email(store: &Store, faxbox: &Faxbox) -> Result<Option<String>, StoreError> {
    match &faxbox.owner_id {
        Some(id) => match store.user(id) {
            Ok(u) => Ok(Some(u.email.to_lowercase())),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

/// The faxbox's sender rules for someone who is not mailing (the IPP
/// printers apply them to a logged-in user as email does): the owner's
/// email when `sender` may use it, else the reason why not.
pub fn check_sender(
    store: &Store,
    sender: &str,
    faxbox: &Faxbox,
) -> Result<Result<Option<String>, String>, StoreError> {
    let owner = owner_email(store, faxbox)?;
    match authorize(store, sender, faxbox, owner.as_deref()) {
        Ok(()) => Ok(Ok(owner)),
        Err(Refusal::Store(e)) => Err(e),
        Err(Refusal::NotAllowed { reason, .. } | Refusal::NotFound { reason, .. }) => {
            Ok(Err(reason))
        }
    }
}

/// Reference 6.5, plus the rule that every user of the faxbox's
/// account may use it.
fn authorize(
    store: &Store,
    sender: &str,
    faxbox: &Faxbox,
    owner_email: Option<&str>,
) -> Result<(), Refusal> {
    let rules: Vec<&String> = faxbox
        .smtp_permission_list
        .iter()
        .filter(|e| !e.trim().is_empty())
        .collect();
    let refuse = |reason: String| Refusal::NotAllowed {
        reason,
        faxbox: Box::new(faxbox.clone()),
    };
    if owner_email.is_some_and(|o| o.eq_ignore_ascii_case(sender))
        || rules.iter().any(|e| permits(e, sender))
        || !store.users_by_email(&faxbox.account_id, sender)?.is_empty()
    {
        return Ok(());
    }
    if rules.is_empty() && owner_email.is_none() {
        if store.setting_bool(Some(&faxbox.account_id), "allow_all_addresses_when_empty")? {
            return Ok(());
        }
        return Err(refuse(
            "faxbox permissions is empty and policy doesn't allow it".into(),
        ));
    }
    let who = if sender.is_empty() {
        "the null sender <>".to_owned()
    } else {
        format!("address {sender}")
    };
    Err(refuse(format!(
        "{who} is not allowed on faxbox {}",
        faxbox.id
    )))
}

/// One `smtp_permission_list` entry against a sender: an exact address,
/// `@domain` for everyone at that domain, or a regular expression that
/// must match the whole address. Case never matters.
pub fn permits(entry: &str, sender: &str) -> bool {
    let entry = entry.trim();
    if entry.is_empty() {
        return false;
    }
    if entry.eq_ignore_ascii_case(sender) {
        return true;
    }
    if let Some(domain) = entry.strip_prefix('@') {
        return sender
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain));
    }
    // A plain address is only ever an exact address: its dots are not
    // "any character".
    if is_email(entry) {
        return false;
    }
    RegexBuilder::new(&format!("^(?:{entry})$"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .is_ok_and(|re| re.is_match(sender))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_entries_match_whole_addresses_in_any_case() {
        let cases: &[(&str, &str, bool)] = &[
            ("bob@acme.example", "bob@acme.example", true),
            ("Bob@Acme.Example", "bob@acme.example", true),
            ("bob@acme.example", "bobXacme.example", false),
            ("bob@acme.example", "alice@acme.example", false),
            ("@acme.example", "alice@acme.example", true),
            ("@ACME.example", "alice@acme.example", true),
            ("@acme.example", "alice@sub.acme.example", false),
            ("@acme.example", "alice@notacme.example", false),
            (".*@acme\\.example", "carol@acme.example", true),
            (".*@acme\\.example", "carol@acme.example.evil", false),
            // Kazoo's substring match would admit this one.
            ("example.com", "bob@notexample.com.evil", false),
            (".*@(acme|widgets)\\.example", "dan@widgets.example", true),
            ("", "bob@acme.example", false),
            ("(", "(", true),
            ("[", "x@acme.example", false),
        ];
        for (entry, sender, want) in cases {
            assert_eq!(permits(entry, sender), *want, "{entry:?} vs {sender:?}");
        }
    }

    #[test]
    fn numbers_keep_digits_and_become_e164() {
        let refused = ServiceNumbers::Refused;
        assert_eq!(
            number_of("+1 (555) 123-4567", refused).unwrap(),
            "+15551234567"
        );
        assert_eq!(number_of("15551234567", refused).unwrap(), "+15551234567");
        assert_eq!(
            number_of("bob", refused).unwrap_err(),
            "fax number bob is empty"
        );
        assert!(
            number_of("12", refused)
                .unwrap_err()
                .contains("invalid fax number: 12: a fax number has 3 to 20 digits")
        );
        assert!(
            number_of("911", refused)
                .unwrap_err()
                .contains("allow_service_numbers")
        );
        assert_eq!(number_of("911", ServiceNumbers::Allowed).unwrap(), "911");
    }
}
