//! Auth tokens: an API key is exchanged once (`PUT /v2/api_auth`) for a
//! random token that the client sends as `X-Auth-Token` (Kazoo) or
//! `Authorization: Bearer`.
//!
//! Tokens live in memory with an expiry, not signed: there is no signing
//! key to keep or rotate, a restart ends every token, and each request
//! re-checks the key its token came from, so revoking a key ends its tokens
//! at once. A client that gets a 401 authenticates again, as Kazoo clients
//! already do when Kazoo's tokens expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Account, UserId};

/// What a token was issued for, re-checked on each request: an API key
/// (`api_auth`) or a user's login (`user_auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey(String),
    User(UserId),
}

/// Kazoo's default token lifetime (crossbar `auth_tokens` expiry).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

struct Session {
    account: Account,
    /// What the token was issued for, re-checked on each request.
    credential: Credential,
    expires: Instant,
}

/// The live tokens.
#[derive(Default)]
pub struct Sessions {
    tokens: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new token for `account`, valid for `TOKEN_LIFETIME`.
    pub fn issue(&self, account: Account, credential: Credential) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Forget expired tokens here, so the map never grows without bound.
        tokens.retain(|_, s| s.expires > now);
        tokens.insert(
            token.clone(),
            Session {
                account,
                credential,
                expires: now + TOKEN_LIFETIME,
            },
        );
        token
    }

    /// The account a live token belongs to, and what it was issued for.
    pub fn account(&self, token: &str) -> Option<(Account, Credential)> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(token)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.account.clone(), s.credential.clone()))
    }
}

/// The token a request carries: `X-Auth-Token`, else `Authorization: Bearer`.
pub fn token_of<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    if let Some(t) = header("x-auth-token") {
        return Some(t.trim());
    }
    let auth = header("authorization")?.trim();
    let (scheme, rest) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_either_header() {
        let h =
            |name: &'static str, value: &'static str| move |n: &str| (n == name).then_some(value);
        assert_eq!(token_of(h("x-auth-token", " abc ")), Some("abc"));
        assert_eq!(token_of(h("authorization", "Bearer abc")), Some("abc"));
        assert_eq!(token_of(h("authorization", "bearer  abc")), Some("abc"));
        assert_eq!(token_of(h("authorization", "Basic abc")), None);
        assert_eq!(token_of(h("other", "abc")), None);
    }

    #[test]
    fn an_issued_token_names_its_account_and_others_do_not() {
        let sessions = Sessions::default();
        let account = Account {
            id: "a".into(),
            name: "A".into(),
            realm: None,
            is_admin: false,
            created: 0,
        };
        let key = Credential::ApiKey("key".into());
        let t = sessions.issue(account.clone(), key.clone());
        assert_eq!(sessions.account(&t), Some((account, key)));
        assert_eq!(sessions.account("nope"), None);
    }
}
