//! Link tokens: what a link grants (one session, until a time, with where to go
//! once linked), signed with HMAC-SHA256 under a key kept owner-only in the data
//! dir. A token is `<payload>.<tag>`, both base64url; the tag is checked in
//! constant time before the payload is read.

use std::{
    io::{ErrorKind, Read, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{open_private_file, unix_ms};

/// The key file's name in the data dir.
pub const KEY_FILE: &str = "link.key";
/// The key's length in bytes.
const KEY_LEN: usize = 32;
/// The tag's length in bytes (SHA-256).
const TAG_LEN: usize = 32;
/// The longest token accepted, so a huge path is refused before any work.
const MAX_TOKEN_LEN: usize = 4096;

/// What a link grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The session the link opens, as signed (parsed again when the link is used).
    #[serde(rename = "s")]
    pub session_id: String,
    /// The session's creation time (unix ms): a session deleted and created again
    /// under the same id is another session, and the link does not reach it.
    #[serde(rename = "c")]
    pub created_ms: u64,
    /// When the link stops working (unix ms).
    #[serde(rename = "e")]
    pub expires_ms: u64,
    /// Where the page goes once linked; empty for nowhere.
    #[serde(rename = "r", default, skip_serializing_if = "String::is_empty")]
    pub redirect_url: String,
    /// When the link was issued (unix ms): a session that connected since refuses it.
    #[serde(rename = "i", default)]
    pub issued_ms: u64,
    /// The session's link generation when it was issued: RevokeLinks (and an
    /// operator's stop or logout) moves the session to the next one.
    #[serde(rename = "g", default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a token this daemon signed (malformed, or altered): HTTP 403.
    Forged,
    /// Signed here, but past its expiry: HTTP 410.
    Expired,
}

/// The signing key.
#[derive(Clone)]
pub struct LinkKey([u8; KEY_LEN]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(<redacted>)")
    }
}

impl LinkKey {
    /// Reads `<dir>/link.key`, creating it (32 random bytes, mode 0600) when absent.
    /// Two daemons racing on one data dir end up with the same key.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join(KEY_FILE);
        match read_key(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            read => return read,
        }
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        // Written whole under a temporary name, then linked into place: a reader never
        // sees half a key, and an existing key is never replaced.
        let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
        let mut file = open_private_file(&tmp, true)?;
        file.write_all(&key)?;
        file.sync_all()?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Self(key)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key(&path),
            Err(e) => Err(e),
        }
    }

    /// A key from bytes (tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Signs `claims` into a token.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize");
        let tag = self.tag(&payload);
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    /// The claims of `token` if this key signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::Forged);
        }
        let (payload, tag) = token.split_once('.').ok_or(Refusal::Forged)?;
        let payload = B64.decode(payload).map_err(|_| Refusal::Forged)?;
        let tag = B64.decode(tag).map_err(|_| Refusal::Forged)?;
        if tag.len() != TAG_LEN || !bool::from(self.tag(&payload).ct_eq(&tag[..])) {
            return Err(Refusal::Forged);
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Refusal::Forged)?;
        if unix_ms(now) >= claims.expires_ms {
            return Err(Refusal::Expired);
        }
        Ok(claims)
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("hmac takes any key length");
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

fn read_key(path: &PathBuf) -> std::io::Result<LinkKey> {
    let mut bytes = Vec::with_capacity(KEY_LEN);
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    let key: [u8; KEY_LEN] = bytes.try_into().map_err(|bytes: Vec<u8>| {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "the link key {} holds {} bytes instead of {KEY_LEN}: delete it to make a new one (links issued so far stop working)",
                path.display(),
                bytes.len()
            ),
        )
    })?;
    Ok(LinkKey(key))
}

/// `now` plus `ttl` in unix ms.
pub fn expiry_ms(now: SystemTime, ttl: Duration) -> u64 {
    unix_ms(now).saturating_add(ttl.as_millis().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires_ms: u64) -> Claims {
        Claims {
            session_id: "alice".into(),
            created_ms: 1_700_000_000_123,
            expires_ms,
            redirect_url: "https://app.example.com/done".into(),
            issued_ms: 1_000,
            generation: 2,
        }
    }

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = LinkKey::from_bytes([7; 32]);
        let token = key.sign(&claims(2_000));
        assert_eq!(key.verify(&token, at(1_999)), Ok(claims(2_000)));
        assert_eq!(key.verify(&token, at(2_000)), Err(Refusal::Expired));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    }

    #[test]
    fn any_altered_byte_or_another_key_is_refused_as_forged() {
        let key = LinkKey::from_bytes([7; 32]);
        let token = key.sign(&claims(2_000));
        for at_byte in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[at_byte] = if altered[at_byte] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            if altered != token {
                assert_eq!(key.verify(&altered, at(0)), Err(Refusal::Forged), "byte {at_byte}");
            }
        }
        assert_eq!(LinkKey::from_bytes([8; 32]).verify(&token, at(0)), Err(Refusal::Forged));
        for junk in ["", ".", "abc", "a.b", &"x".repeat(5000)] {
            assert_eq!(key.verify(junk, at(0)), Err(Refusal::Forged), "{junk:.20}");
        }
    }

    #[test]
    fn the_key_is_created_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = LinkKey::load_or_create(dir.path()).unwrap();
        let again = LinkKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.0, again.0);
        assert_ne!(first.0, [0; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert_eq!(format!("{first:?}"), "LinkKey(<redacted>)");
    }

    #[test]
    fn a_damaged_key_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let error = LinkKey::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("holds 5 bytes") && error.contains("delete it"),
            "{error}"
        );
    }
}
