//! Auth tokens: an API key is exchanged once (`PUT /v2/api_auth`) for a
//! token that the client sends as `X-Auth-Token` (Kazoo) or
//! `Authorization: Bearer`.
//!
//! A token is signed, not remembered: its expiry and the hash of the API
//! key it came from, with an HMAC-SHA256 (RFC 2104) under a key kept in
//! the data dir (`token.key`). So a token lives its whole lifetime across
//! restarts and upgrades, as Kazoo's do (issue 19), and each request still
//! re-checks the API key, so revoking a key ends its tokens at once.

use std::path::Path;
use std::time::Duration;

use ring::hmac;
use tracing::warn;

use crate::config::DEFAULT_TOKEN_LIFETIME;

/// The signing key's file in the data dir, readable only by its owner.
pub const TOKEN_KEY_FILE: &str = "token.key";

/// Issues and checks tokens.
pub struct Sessions {
    key: hmac::Key,
    lifetime: Duration,
}

impl Default for Sessions {
    /// A key of this process only: its tokens end with it.
    fn default() -> Self {
        Sessions {
            key: hmac::Key::new(hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()),
            lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

impl Sessions {
    /// Tokens signed with the data dir's key (made on first use), valid for
    /// `lifetime`. Without a usable key file, tokens end with the process
    /// (logged).
    pub fn in_data_dir(data_dir: &Path, lifetime: Duration) -> Sessions {
        match signing_key(data_dir) {
            Ok(secret) => Sessions {
                key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
                lifetime,
            },
            Err(e) => {
                warn!(
                    error = %e,
                    "API tokens will not survive a restart: cannot keep {TOKEN_KEY_FILE} in {}",
                    data_dir.display()
                );
                Sessions {
                    lifetime,
                    ..Sessions::default()
                }
            }
        }
    }

    /// A new token for the API key whose hash is `key_hash`.
    pub fn issue(&self, key_hash: &str) -> String {
        let expires = crate::model::now() + self.lifetime.as_secs() as i64;
        let payload = format!("{expires}.{key_hash}");
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!("{payload}.{}", hex::encode(tag.as_ref()))
    }

    /// The hash of the API key a genuine, unexpired token came from.
    pub fn key_hash(&self, token: &str) -> Option<String> {
        let (payload, tag) = token.rsplit_once('.')?;
        let tag = hex::decode(tag).ok()?;
        hmac::verify(&self.key, payload.as_bytes(), &tag).ok()?;
        let (expires, key_hash) = payload.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        (expires > crate::model::now()).then(|| key_hash.to_owned())
    }
}

/// The data dir's signing key: read, or made (32 random bytes, mode 0600).
fn signing_key(data_dir: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(TOKEN_KEY_FILE);
    match std::fs::read(&path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is too short",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = rand::random::<[u8; 32]>();
    // A new file, written whole, then moved into place: two processes
    // starting at once agree on the one that landed.
    let partial = data_dir.join(format!("{TOKEN_KEY_FILE}.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(&secret)?;
    file.sync_all()?;
    std::fs::hard_link(&partial, &path).or_else(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Ok(()),
        _ => Err(e),
    })?;
    let _ = std::fs::remove_file(&partial);
    std::fs::read(&path)
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
    fn a_token_names_its_key_until_it_expires_and_forgeries_do_not() {
        let sessions = Sessions::default();
        let t = sessions.issue("abc");
        assert_eq!(sessions.key_hash(&t), Some("abc".into()));
        assert_eq!(sessions.key_hash("nope"), None);
        let forged = t.replacen("abc", "abd", 1);
        assert_eq!(sessions.key_hash(&forged), None);
        let expired = Sessions {
            lifetime: Duration::ZERO,
            ..Sessions::default()
        };
        assert_eq!(expired.key_hash(&expired.issue("abc")), None);
        // Another box's key does not accept it.
        assert_eq!(Sessions::default().key_hash(&t), None);
    }

    #[test]
    fn tokens_signed_in_a_data_dir_are_good_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = Sessions::in_data_dir(dir.path(), DEFAULT_TOKEN_LIFETIME).issue("abc");
        let again = Sessions::in_data_dir(dir.path(), DEFAULT_TOKEN_LIFETIME);
        assert_eq!(again.key_hash(&t), Some("abc".into()));
    }
}
