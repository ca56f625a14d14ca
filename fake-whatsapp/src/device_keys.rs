//! The Signal keys a linked device publishes, as the server keeps them for the
//! senders that open sessions with it: its registration id, identity and signed
//! pre-key (first from its registration payload when it pairs, then from its
//! pre-key uploads and rotations) and its one-time pre-keys, each handed out once.

use std::collections::VecDeque;

use wacore_binary::Node;
use wacore_libsignal::protocol::{IdentityKey, PreKeyBundle, PreKeyId, PublicKey, SignedPreKeyId};
use waproto::whatsapp::client_payload::DevicePairingRegistrationData;

use crate::stanza::content_bytes;

/// A signed pre-key: its id, public key and the identity's signature over it.
#[derive(Debug, Clone)]
pub struct SignedKey {
    /// The id (3 bytes on the wire).
    pub id: u32,
    /// The public key.
    pub public: PublicKey,
    /// The identity key's XEdDSA signature over the serialized public key.
    pub signature: Vec<u8>,
}

/// What the server holds of one device's keys.
#[derive(Debug, Clone)]
pub struct DeviceKeys {
    /// The device's Signal registration id.
    registration_id: u32,
    /// Its identity key.
    identity: IdentityKey,
    /// Its current signed pre-key.
    signed: SignedKey,
    /// One-time pre-keys not handed out yet, oldest first.
    one_time: VecDeque<(u32, PublicKey)>,
}

impl DeviceKeys {
    /// The keys in a registration payload (`device_pairing_data`): no one-time
    /// pre-keys yet.
    pub fn from_registration(data: &DevicePairingRegistrationData) -> Result<Self, String> {
        let field = |name: &str, value: &Option<Vec<u8>>| -> Result<Vec<u8>, String> {
            value
                .clone()
                .ok_or_else(|| format!("the registration payload has no {name}"))
        };
        Ok(Self {
            registration_id: be_u32(&field("registration id", &data.e_regid)?)?,
            identity: identity(&field("identity", &data.e_ident)?)?,
            signed: SignedKey {
                id: be_u32(&field("signed pre-key id", &data.e_skey_id)?)?,
                public: public_key(&field("signed pre-key", &data.e_skey_val)?)?,
                signature: field("signed pre-key signature", &data.e_skey_sig)?,
            },
            one_time: VecDeque::new(),
        })
    }

    /// The keys in a pre-key upload (`<iq xmlns="encrypt" type="set">` with
    /// `<registration>`, `<identity>`, `<list><key>...` and `<skey>`).
    pub fn from_upload(iq: &Node) -> Result<Self, String> {
        let keys = iq
            .get_optional_child("list")
            .into_iter()
            .flat_map(|l| l.get_children_by_tag("key"));
        Self::parse(iq, iq, keys)
    }

    /// The keys a retry receipt carries for the sender (`<registration>` and
    /// `<keys>` with `<identity>`, one `<key>` and `<skey>`), if it has them.
    pub fn from_retry(receipt: &Node) -> Option<Result<Self, String>> {
        let keys = receipt.get_optional_child("keys")?;
        Some(Self::parse(receipt, keys, keys.get_children_by_tag("key")))
    }

    /// `<registration>` from `outer`; `<identity>` and `<skey>` from `inner`.
    fn parse<'a>(outer: &Node, inner: &Node, one_time: impl Iterator<Item = &'a Node>) -> Result<Self, String> {
        let skey = inner
            .get_optional_child("skey")
            .ok_or("published keys without <skey>")?;
        Ok(Self {
            registration_id: be_u32(child_bytes(outer, "registration")?)?,
            identity: identity(child_bytes(inner, "identity")?)?,
            signed: signed_key(skey)?,
            one_time: one_time.map(one_time_key).collect::<Result<_, _>>()?,
        })
    }

    /// Whether `iq` is a pre-key upload.
    pub fn is_upload(iq: &Node) -> bool {
        iq.get_optional_child("skey").is_some() && iq.get_optional_child("identity").is_some()
    }

    /// A newer upload: its identity, registration and signed pre-key replace
    /// these, its one-time pre-keys join the ones not handed out yet.
    pub fn absorb(&mut self, upload: DeviceKeys) {
        self.registration_id = upload.registration_id;
        self.identity = upload.identity;
        self.signed = upload.signed;
        self.one_time.extend(upload.one_time);
    }

    /// The signed pre-key of a rotation (`<iq xmlns="encrypt"><rotate><skey>`),
    /// if `iq` is one.
    pub fn rotation(iq: &Node) -> Option<Result<SignedKey, String>> {
        let skey = iq.get_optional_child("rotate")?.get_optional_child("skey")?;
        Some(signed_key(skey))
    }

    /// The device rotated its signed pre-key.
    pub fn rotate(&mut self, signed: SignedKey) {
        self.signed = signed;
    }

    /// A bundle for a sender opening a session with device `device`, with a
    /// one-time pre-key if any is left (it is never handed out again).
    pub fn take_bundle(&mut self, device: u16) -> Result<PreKeyBundle, String> {
        let one_time = self.one_time.pop_front().map(|(id, key)| (PreKeyId::from(id), key));
        PreKeyBundle::new(
            self.registration_id,
            u32::from(device).into(),
            one_time,
            SignedPreKeyId::from(self.signed.id),
            self.signed.public,
            self.signed.signature.clone(),
            self.identity,
        )
        .map_err(|e| format!("a bad pre-key bundle: {e}"))
    }

    /// One-time pre-keys not handed out yet.
    pub fn one_time_left(&self) -> usize {
        self.one_time.len()
    }
}

/// The bytes of `node`'s child `name`.
fn child_bytes<'n>(node: &'n Node, name: &str) -> Result<&'n [u8], String> {
    node.get_optional_child(name)
        .and_then(content_bytes)
        .ok_or_else(|| format!("published keys without <{name}>"))
}

/// `<key><id>3 bytes</id><value>32 bytes</value></key>`.
fn one_time_key(key: &Node) -> Result<(u32, PublicKey), String> {
    Ok((
        be_u32(child_bytes(key, "id")?)?,
        public_key(child_bytes(key, "value")?)?,
    ))
}

/// `<skey><id/><value/><signature/></skey>`.
fn signed_key(skey: &Node) -> Result<SignedKey, String> {
    Ok(SignedKey {
        id: be_u32(child_bytes(skey, "id")?)?,
        public: public_key(child_bytes(skey, "value")?)?,
        signature: child_bytes(skey, "signature")?.to_vec(),
    })
}

/// A big-endian number of up to 4 bytes (ids travel as 3, registration ids as 4).
fn be_u32(bytes: &[u8]) -> Result<u32, String> {
    if bytes.is_empty() || bytes.len() > 4 {
        return Err(format!("a number of {} bytes", bytes.len()));
    }
    Ok(bytes.iter().fold(0, |n, b| (n << 8) | u32::from(*b)))
}

/// A 32-byte Curve25519 public key.
fn public_key(bytes: &[u8]) -> Result<PublicKey, String> {
    PublicKey::from_djb_public_key_bytes(bytes).map_err(|e| format!("a bad public key: {e}"))
}

fn identity(bytes: &[u8]) -> Result<IdentityKey, String> {
    public_key(bytes).map(IdentityKey::new)
}

#[cfg(test)]
mod tests {
    use wacore_binary::builder::NodeBuilder;
    use wacore_libsignal::protocol::KeyPair;

    use super::*;

    fn leaf(tag: &'static str, bytes: &[u8]) -> Node {
        NodeBuilder::new(tag).bytes(bytes.to_vec()).build()
    }

    fn upload(one_time_ids: &[u32]) -> Node {
        let mut rng = rand::rng();
        let (identity, signed) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let signature = identity
            .private_key
            .calculate_signature(&signed.public_key.serialize(), &mut rng)
            .unwrap();
        let keys = one_time_ids.iter().map(|id| {
            let key = KeyPair::generate(&mut rand::rng());
            NodeBuilder::new("key")
                .children([
                    leaf("id", &id.to_be_bytes()[1..]),
                    leaf("value", key.public_key.public_key_bytes()),
                ])
                .build()
        });
        NodeBuilder::new("iq")
            .children([
                leaf("registration", &4242u32.to_be_bytes()),
                leaf("type", &[5]),
                leaf("identity", identity.public_key.public_key_bytes()),
                NodeBuilder::new("list").children(keys).build(),
                NodeBuilder::new("skey")
                    .children([
                        leaf("id", &[0, 0, 1]),
                        leaf("value", signed.public_key.public_key_bytes()),
                        leaf("signature", &signature),
                    ])
                    .build(),
            ])
            .build()
    }

    #[test]
    fn an_upload_hands_out_each_one_time_key_once_then_the_signed_key_alone() {
        let iq = upload(&[7, 8]);
        assert!(DeviceKeys::is_upload(&iq));
        let mut keys = DeviceKeys::from_upload(&iq).unwrap();
        let first = keys.take_bundle(1).unwrap();
        let second = keys.take_bundle(1).unwrap();
        let third = keys.take_bundle(1).unwrap();
        assert_eq!(first.pre_key_id().unwrap(), Some(PreKeyId::from(7)));
        assert_eq!(second.pre_key_id().unwrap(), Some(PreKeyId::from(8)));
        assert_eq!(third.pre_key_id().unwrap(), None);
        assert_eq!(first.registration_id().unwrap(), 4242);
        assert_eq!(u32::from(first.signed_pre_key_id().unwrap()), 1);
    }

    #[test]
    fn a_later_upload_adds_its_one_time_keys_to_those_left() {
        let mut keys = DeviceKeys::from_upload(&upload(&[1])).unwrap();
        keys.absorb(DeviceKeys::from_upload(&upload(&[2, 3])).unwrap());
        assert_eq!(keys.one_time_left(), 3);
    }
}
