//! Which faxbox an email address reaches and whether the sender may use it:
//! Kazoo's lookup order on RCPT (docs/kazoo.md 6.3) and the destination
//! number (6.4). The sender rule (6.5) is the intake's, the same for every
//! door (`intake::check_sender`), asked here so that a sender who may not
//! use the faxbox is refused at RCPT.

use crate::intake::{self, Sender, permits};
use crate::model::{Faxbox, ServiceNumbers, check_fax_number, digits_of};
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
    let faxbox = find_faxbox(store, sender, domain)?;
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
    // The same rule the API and the printers apply (docs/kazoo.md 6.5).
    let owner_email =
        match intake::check_sender(store, &Sender::Address(sender.to_owned()), &faxbox) {
            Ok(owner) => owner,
            Err(intake::Refusal::NotAllowed(reason)) => {
                return Err(Refusal::NotAllowed {
                    reason,
                    faxbox: Box::new(faxbox),
                });
            }
            Err(intake::Refusal::Store(e)) => return Err(Refusal::Store(e)),
            // The sender rule reads no document.
            Err(intake::Refusal::Document(e)) => {
                return Err(Refusal::NotFound {
                    reason: e.to_string(),
                    faxbox: Some(Box::new(faxbox)),
                });
            }
        };
    Ok(Target {
        faxbox,
        owner_email,
        address: recipient.to_owned(),
        original_number: local.to_owned(),
        number,
    })
}

/// The digits of the local part, normalized to E.164 (docs/kazoo.md 6.4).
fn number_of(local: &str, service: ServiceNumbers) -> Result<String, String> {
    let digits = digits_of(local);
    if digits.is_empty() {
        return Err(format!("fax number {local} is empty"));
    }
    check_fax_number("to_number", &digits, service).map_err(|e| e.message)
}

/// The faxbox by its address, else the account by realm and
/// then the sender's own faxbox or the account's permission lists
/// (docs/kazoo.md 6.3).
fn find_faxbox(store: &Store, sender: &str, domain: &str) -> Result<Faxbox, Refusal> {
    if let Some(faxbox) = store.faxbox_by_domain(domain)? {
        return Ok(faxbox);
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
                [one] => return Ok((*one).clone()),
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
                return Ok(faxbox.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

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
