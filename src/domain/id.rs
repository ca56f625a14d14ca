//! The identifiers every layer shares: session ids, validated once before they
//! reach any actor or path, and phone numbers.

use std::fmt;

use crate::error::SessionError;

/// The longest id accepted, in bytes.
const MAX_LEN: usize = 64;

/// A session id that matches `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, so it is safe as a
/// file name and as a map key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Checks `raw` and wraps it; INVALID_ARGUMENT with the rule otherwise.
    pub fn parse(raw: &str) -> Result<Self, SessionError> {
        if is_valid(raw) {
            return Ok(Self(raw.to_owned()));
        }
        let shown: String = raw.chars().take(MAX_LEN + 8).collect();
        Err(SessionError::InvalidArgument(format!(
            "session id {shown:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as text, owned (no copy).
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Whether `raw` follows the id rule (also the rule of consumer names).
pub fn is_valid(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    let body_ok = bytes[1..]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    bytes.len() <= MAX_LEN && first.is_ascii_alphanumeric() && body_ok
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 7 to 15 digits, nothing else: a phone number with its country code.
pub fn is_phone_digits(s: &str) -> bool {
    (7..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_within_the_rule() {
        for ok in ["a", "alice", "Bob-2", "x.y_z-0", &"a".repeat(64)] {
            assert!(SessionId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_ids_that_could_escape_a_path_or_are_too_long() {
        for bad in ["", ".", "..", "../etc", "-a", "_a", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(
                matches!(SessionId::parse(bad), Err(SessionError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
