//! The words the fake server's files share, one floor below them all: a
//! connection's number, a device's address, a device's request for a pairing code,
//! what a login meets, and why a control request is refused. `world` keeps them;
//! `inbox`, `pair_code`, the connections and the control API read them from
//! here, not from `world`.

use wacore_binary::Node;

/// A connection's number: given out in accept order, never reused while the fake runs.
pub type ConnId = u64;

/// A device of an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceAddr {
    /// The account's phone number, digits.
    pub phone: String,
    /// The device number (1 and up; 0 is the phone).
    pub device: u16,
}

impl DeviceAddr {
    /// `PHONE:DEVICE@s.whatsapp.net`.
    pub fn jid(&self) -> String {
        format!("{}:{}@s.whatsapp.net", self.phone, self.device)
    }
}

/// A device's request for a pairing code (`companion_hello`), kept on its
/// connection until the phone types the code.
#[derive(Clone)]
pub struct CodeRequest {
    /// The phone number it wants to link to, digits.
    pub phone: String,
    /// The ref the server answered with.
    pub pairing_ref: Vec<u8>,
    /// Its ephemeral public key, wrapped with the code.
    pub wrapped_ephemeral: Vec<u8>,
    /// Its Noise static public key.
    pub noise_key: [u8; 32],
}

/// What a login with stored credentials meets.
#[derive(Debug)]
pub enum Login {
    /// `<success>`, with the device's LID.
    Accepted(String),
    /// The device is not linked with that key (`<failure reason="401">`).
    Unknown,
    /// The account is banned: this `<failure reason="402">`.
    Banned(Node),
}

/// Why a control request cannot be done (mapped to NOT_FOUND / INVALID_ARGUMENT
/// by the control API).
#[derive(Debug)]
pub enum Refusal {
    /// Nothing matches.
    NotFound(String),
    /// The request itself is wrong.
    Invalid(String),
}
