//! Checks of what callers send: recipients, texts, phone numbers, labels and list
//! pages. Each refusal is INVALID_ARGUMENT with the rule spelled out.

use std::collections::{BTreeMap, HashMap};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as TOKEN, Engine};

use super::id::{is_phone_digits, SessionId};
use crate::error::SessionError;

/// The default and the largest page of ListSessions.
pub const DEFAULT_PAGE: usize = 100;
/// The largest page of ListSessions.
pub const MAX_PAGE: usize = 1000;
/// Labels per session.
pub const MAX_LABELS: usize = 64;
/// The longest label key or value, in bytes.
pub const MAX_LABEL_LEN: usize = 256;

/// The longest text accepted, in bytes (WhatsApp's limit is about 65k characters).
pub const MAX_TEXT_BYTES: usize = 65_536;

/// The user-JID server suffix.
const USER_SERVER: &str = "@s.whatsapp.net";

/// `+15551234567`, `15551234567` or `15551234567@s.whatsapp.net` → the user JID.
pub fn recipient(to: &str) -> Result<String, SessionError> {
    let number = to
        .strip_suffix(USER_SERVER)
        .or_else(|| to.strip_prefix('+'))
        .unwrap_or(to);
    if is_phone_digits(number) {
        return Ok(format!("{number}{USER_SERVER}"));
    }
    Err(SessionError::InvalidArgument(format!(
        "recipient {to:?} is invalid: use +15551234567, 15551234567 or 15551234567@s.whatsapp.net"
    )))
}

/// The group-JID server suffix.
const GROUP_SERVER: &str = "@g.us";

/// A chat to send to: the forms of [`recipient`], or a group JID
/// (`120363012345678901@g.us`, or the older `15551234567-1600000000@g.us`).
pub fn chat(to: &str) -> Result<String, SessionError> {
    if let Some(group) = to.strip_suffix(GROUP_SERVER) {
        let mut parts = group.splitn(2, '-');
        let well_formed =
            parts.all(|part| !part.is_empty() && part.len() <= 32 && part.bytes().all(|b| b.is_ascii_digit()));
        if well_formed {
            return Ok(to.to_owned());
        }
        return Err(SessionError::InvalidArgument(format!(
            "group {to:?} is invalid: a group JID is digits (or digits-digits) followed by @g.us"
        )));
    }
    recipient(to).map_err(|_| {
        SessionError::InvalidArgument(format!(
            "recipient {to:?} is invalid: use +15551234567, 15551234567, 15551234567@s.whatsapp.net or a group's ...@g.us"
        ))
    })
}

/// WhatsApp's id of a message a call points at (`what` names the field).
pub fn message_id(raw: &str, what: &str) -> Result<String, SessionError> {
    let well_formed = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic());
    if well_formed {
        return Ok(raw.to_owned());
    }
    Err(SessionError::InvalidArgument(format!(
        "{what} {raw:?} is invalid: a WhatsApp message id is 1 to 128 visible ASCII characters"
    )))
}

/// A reaction: one emoji (one grapheme), or empty to remove the reaction.
pub fn emoji(raw: &str) -> Result<(), SessionError> {
    use unicode_segmentation::UnicodeSegmentation;
    if raw.is_empty() || (raw.graphemes(true).count() == 1 && raw.len() <= 64 && !raw.is_ascii()) {
        return Ok(());
    }
    Err(SessionError::InvalidArgument(format!(
        "reaction.emoji must be one emoji (one grapheme), or empty to remove the reaction; got {} characters",
        raw.chars().count()
    )))
}

/// A message text: not empty, at most `MAX_TEXT_BYTES`.
pub fn text(text: &str) -> Result<(), SessionError> {
    if text.is_empty() || text.len() > MAX_TEXT_BYTES {
        return Err(SessionError::InvalidArgument(format!(
            "text must be 1 to {MAX_TEXT_BYTES} bytes, got {}",
            text.len()
        )));
    }
    Ok(())
}

/// A phone number to link: `+15551234567` or digits → digits.
pub fn phone_number(raw: &str) -> Result<String, SessionError> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if is_phone_digits(digits) {
        return Ok(digits.to_owned());
    }
    Err(SessionError::InvalidArgument(format!(
        "phone number {raw:?} is invalid: use the country code and number, e.g. +15551234567"
    )))
}

/// A session's labels: at most `MAX_LABELS`, keys non-empty, keys and values at
/// most `MAX_LABEL_LEN` bytes.
pub fn labels(raw: HashMap<String, String>) -> Result<BTreeMap<String, String>, SessionError> {
    let too_long = raw
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > MAX_LABEL_LEN || v.len() > MAX_LABEL_LEN);
    if raw.len() > MAX_LABELS || too_long {
        return Err(SessionError::InvalidArgument(format!(
            "labels are invalid: at most {MAX_LABELS}, keys non-empty, keys and values at most {MAX_LABEL_LEN} bytes"
        )));
    }
    Ok(raw.into_iter().collect())
}

/// An event consumer's name: the session id rule.
pub fn consumer(raw: &str) -> Result<String, SessionError> {
    if super::id::is_valid(raw) {
        return Ok(raw.to_owned());
    }
    let shown: String = raw.chars().take(72).collect();
    Err(SessionError::InvalidArgument(format!(
        "consumer name {shown:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
    )))
}

/// A page size: 0 means the default, larger than the largest is capped.
pub fn page_size(raw: i32) -> Result<usize, SessionError> {
    match raw {
        0 => Ok(DEFAULT_PAGE),
        n if n < 0 => Err(SessionError::InvalidArgument("page_size must not be negative".into())),
        n => Ok((n as usize).min(MAX_PAGE)),
    }
}

/// Decodes a page token (the last id of the previous page).
pub fn page_token(token: &str) -> Result<Option<SessionId>, SessionError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid =
        || SessionError::InvalidArgument("page_token is invalid: pass the next_page_token of the previous page".into());
    let bytes = TOKEN.decode(token).map_err(|_| invalid())?;
    let id = String::from_utf8(bytes).map_err(|_| invalid())?;
    SessionId::parse(&id).map(Some).map_err(|_| invalid())
}

/// The token of the page after the one that ended with `last`.
pub fn next_page_token(last: &SessionId) -> String {
    TOKEN.encode(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_in_the_three_accepted_forms_become_one_jid() {
        for to in ["+15551234567", "15551234567", "15551234567@s.whatsapp.net"] {
            assert_eq!(recipient(to).unwrap(), "15551234567@s.whatsapp.net", "{to}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for to in [
            "",
            "+",
            "alice",
            "1555",
            "+1 555 123 4567",
            "123@g.us",
            "+15551234567@s.whatsapp.net",
            "1234567890123456",
        ] {
            assert!(matches!(recipient(to), Err(SessionError::InvalidArgument(_))), "{to}");
        }
        assert!(text("").is_err());
        assert!(text(&"x".repeat(MAX_TEXT_BYTES + 1)).is_err());
        assert!(text("hi").is_ok());
        assert_eq!(phone_number("+4915112345678").unwrap(), "4915112345678");
        assert!(phone_number("12-34").is_err());
    }

    #[test]
    fn a_page_token_round_trips_and_garbage_is_refused() {
        let id = SessionId::parse("alice").unwrap();
        assert_eq!(page_token(&next_page_token(&id)).unwrap(), Some(id));
        assert_eq!(page_token("").unwrap(), None);
        assert!(page_token("%%%").is_err());
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE);
        assert!(page_size(-1).is_err());
        assert!(labels(HashMap::from([(String::new(), "v".into())])).is_err());
    }
}
