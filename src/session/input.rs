//! Checks of what callers send: recipients, texts and phone numbers. Each refusal is
//! INVALID_ARGUMENT with the rule spelled out.

use crate::error::SessionError;

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

/// 7 to 15 digits, nothing else: a phone number with its country code.
pub fn is_phone_digits(s: &str) -> bool {
    (7..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
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
}
