//! What an emulated device shows and the phone types: QR payloads, pairing codes,
//! phone numbers and JIDs, random like WhatsApp's.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rand::{Rng, RngCore};

use crate::{backend::Identity, error::SessionError};

/// The alphabet of WhatsApp's pairing codes (no 0, O, I, U).
const PAIRING_ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/// The keys a device shows in its codes (random per connection).
pub struct DeviceKeys {
    noise: String,
    identity: String,
    adv_secret: String,
}

impl DeviceKeys {
    /// Fresh random keys.
    pub fn random() -> Self {
        Self {
            noise: random_b64(32),
            identity: random_b64(32),
            adv_secret: random_b64(32),
        }
    }

    /// `ref,noise,identity,adv,client type`, with a fresh ref.
    pub fn qr_code(&self) -> String {
        let reference = format!("2@{}", random_b64(48));
        format!("{reference},{},{},{},1", self.noise, self.identity, self.adv_secret)
    }
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// An 8-character pairing code (no dash).
pub fn pairing_code() -> String {
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| PAIRING_ALPHABET[rng.gen_range(0..PAIRING_ALPHABET.len())] as char)
        .collect()
}

/// A typed pairing code as stored: dash and spaces removed, upper case.
pub fn normalize_pairing_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Checks a phone number (digits only, 7 to 15 of them) or makes one up.
pub fn phone_or_generated(phone: &str) -> Result<String, SessionError> {
    if phone.is_empty() {
        let subscriber: u32 = rand::thread_rng().gen_range(0..10_000_000);
        return Ok(format!("1555{subscriber:07}"));
    }
    if crate::domain::id::is_phone_digits(phone) {
        return Ok(phone.to_owned());
    }
    Err(SessionError::InvalidArgument(format!(
        "phone number {phone:?} is invalid: use 7 to 15 digits with the country code, no + or spaces"
    )))
}

/// The identity a phone links as: a device JID under its number.
pub fn identity_for(phone_number: String) -> Identity {
    let device: u32 = rand::thread_rng().gen_range(2..60);
    Identity {
        jid: format!("{phone_number}:{device}@s.whatsapp.net"),
        push_name: format!("Emulated {}", &phone_number[phone_number.len() - 4..]),
        phone_number,
        connected_at: None,
    }
}

/// A message id shaped like WhatsApp's (`3EB0` and 16 hex digits).
pub fn message_id() -> String {
    format!("3EB0{:016X}", rand::thread_rng().gen::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_codes_are_eight_unambiguous_characters() {
        let code = pairing_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| PAIRING_ALPHABET.contains(&b)));
        assert_eq!(normalize_pairing_code("abcd-efgh"), "ABCDEFGH");
    }
}
