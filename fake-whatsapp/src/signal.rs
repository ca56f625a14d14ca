//! The Signal side of a fake phone (its device 0): an identity (the account key
//! that also signs ADV identities), a registration id and a signed pre-key, the
//! pre-key bundle devices fetch to open a session with it, and the in-memory stores
//! that decrypt what they send (`pkmsg`, then `msg`) and encrypt what the phone
//! sends them (a session opened from the device's bundle: `pkmsg` until the device
//! acked one, then `msg`).

use std::collections::HashMap;

use wacore_libsignal::protocol::{
    message_decrypt_prekey, message_decrypt_signal, message_encrypt, process_prekey_bundle, CiphertextMessage,
    Direction, GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair,
    PreKeyBundle, PreKeyId, PreKeyRecord, PreKeySignalMessage, PreKeyStore, ProtocolAddress, SessionRecord,
    SessionStore, SignalMessage, SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp,
    UsePQRatchet,
};

type SignalResult<T> = Result<T, SignalProtocolError>;

/// The id of every fake phone's signed pre-key.
const SIGNED_PRE_KEY_ID: u32 = 1;

/// One phone's keys and sessions.
pub struct PhoneSignal {
    /// Identity, registration id and the identities of devices seen.
    identities: Identities,
    /// The signed pre-key.
    signed: SignedPreKeys,
    /// Sessions with devices, by their address.
    sessions: Sessions,
}

impl PhoneSignal {
    /// A phone whose identity is `identity`.
    pub fn new(identity: &KeyPair) -> Result<Self, String> {
        let mut rng = rand::rng();
        let signed_key = KeyPair::generate(&mut rng);
        let signature = identity
            .private_key
            .calculate_signature(&signed_key.public_key.serialize(), &mut rng)
            .map_err(|e| format!("could not sign the pre-key: {e}"))?;
        let record = SignedPreKeyRecord::new(
            SignedPreKeyId::from(SIGNED_PRE_KEY_ID),
            Timestamp::from_epoch_millis(0),
            &signed_key,
            &signature,
        );
        let pair = IdentityKeyPair::new(IdentityKey::new(identity.public_key), identity.private_key.clone());
        let registration_id = rand::random::<u32>() & 0x3fff;
        Ok(Self {
            identities: Identities {
                pair,
                registration_id: registration_id.max(1),
                known: HashMap::new(),
            },
            signed: SignedPreKeys(record),
            sessions: Sessions::default(),
        })
    }

    /// The bundle a device fetches (no one-time pre-key).
    pub fn bundle(&self) -> Result<PreKeyBundle, String> {
        let record = &self.signed.0;
        let bundle = PreKeyBundle::new(
            self.identities.registration_id,
            0.into(),
            None,
            SignedPreKeyId::from(SIGNED_PRE_KEY_ID),
            record.public_key().map_err(|e| e.to_string())?,
            record.signature().map_err(|e| e.to_string())?,
            *self.identities.pair.identity_key(),
        );
        bundle.map_err(|e| e.to_string())
    }

    /// Decrypts an `<enc type=KIND>` body from `sender` (`pkmsg` opens the session).
    pub async fn decrypt(&mut self, sender: &ProtocolAddress, kind: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        // An owned generator: the thread's own cannot be held across an await.
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let decrypted = match kind {
            "pkmsg" => {
                let message = PreKeySignalMessage::try_from(body).map_err(|e| e.to_string())?;
                message_decrypt_prekey(
                    &message,
                    sender,
                    &mut self.sessions,
                    &mut self.identities,
                    &mut NoPreKeys,
                    &self.signed,
                    &mut rng,
                    UsePQRatchet::No,
                )
                .await
            }
            "msg" => {
                let message = SignalMessage::try_from(body).map_err(|e| e.to_string())?;
                message_decrypt_signal(&message, sender, &mut self.sessions, &mut self.identities, &mut rng).await
            }
            other => return Err(format!("cannot decrypt an enc of type {other:?}")),
        };
        decrypted.map(|result| result.plaintext).map_err(|e| e.to_string())
    }

    /// Encrypts `plaintext` for `device`, first opening a session from the bundle
    /// `bundle` gives if there is none: the `<enc type>` (`pkmsg` or `msg`) and
    /// the body.
    pub async fn encrypt(
        &mut self,
        device: &ProtocolAddress,
        bundle: impl FnOnce() -> Result<PreKeyBundle, String>,
        plaintext: &[u8],
    ) -> Result<(&'static str, Vec<u8>), String> {
        if !self.sessions.0.contains_key(device) {
            self.open_session(device, &bundle()?).await?;
        }
        let message = message_encrypt(plaintext, device, &mut self.sessions, &mut self.identities)
            .await
            .map_err(|e| format!("could not encrypt for {device}: {e}"))?;
        let kind = match &message {
            CiphertextMessage::PreKeySignalMessage(_) => "pkmsg",
            CiphertextMessage::SignalMessage(_) => "msg",
            _ => return Err("a 1:1 session produced neither pkmsg nor msg".into()),
        };
        Ok((kind, message.serialize().to_vec()))
    }

    /// Opens a new session with `device` from its `bundle` (replacing any): what
    /// follows goes as `pkmsg` until the device acks one.
    pub async fn open_session(&mut self, device: &ProtocolAddress, bundle: &PreKeyBundle) -> Result<(), String> {
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let opened = process_prekey_bundle(
            device,
            &mut self.sessions,
            &mut self.identities,
            bundle,
            &mut rng,
            UsePQRatchet::No,
        )
        .await;
        opened
            .map(|_| ())
            .map_err(|e| format!("could not open a session with {device}: {e}"))
    }

    /// `device` acked a `pkmsg`: it holds the session, so what follows goes as `msg`.
    pub fn session_confirmed(&mut self, device: &ProtocolAddress) -> Result<(), String> {
        let Some(bytes) = self.sessions.0.get_mut(device) else {
            return Ok(());
        };
        let mut record = SessionRecord::deserialize(bytes).map_err(|e| e.to_string())?;
        if let Some(state) = record.session_state_mut() {
            state.clear_unacknowledged_pre_key_message();
        }
        *bytes = record.serialize().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The identity store.
struct Identities {
    /// The phone's identity.
    pair: IdentityKeyPair,
    /// Its registration id.
    registration_id: u32,
    /// Devices' identities, trusted on first use.
    known: HashMap<ProtocolAddress, IdentityKey>,
}

#[async_trait::async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.pair.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let previous = self.known.insert(address.clone(), *identity);
        Ok(IdentityChange::from_changed(previous.is_some_and(|p| p != *identity)))
    }

    async fn is_trusted_identity(&self, _: &ProtocolAddress, _: &IdentityKey, _: Direction) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.known.get(address).copied())
    }
}

/// The session store.
#[derive(Default)]
struct Sessions(HashMap<ProtocolAddress, Vec<u8>>);

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        self.0
            .get(address)
            .map(|bytes| SessionRecord::deserialize(bytes))
            .transpose()
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(address))
    }

    async fn store_session(&mut self, address: &ProtocolAddress, record: SessionRecord) -> SignalResult<()> {
        self.0.insert(address.clone(), record.serialize()?);
        Ok(())
    }
}

/// The one signed pre-key.
struct SignedPreKeys(SignedPreKeyRecord);

#[async_trait::async_trait]
impl SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        if u32::from(id) == SIGNED_PRE_KEY_ID {
            Ok(self.0.clone())
        } else {
            Err(SignalProtocolError::InvalidSignedPreKeyId)
        }
    }

    async fn save_signed_pre_key(&mut self, _: SignedPreKeyId, _: &SignedPreKeyRecord) -> SignalResult<()> {
        Ok(())
    }
}

/// No one-time pre-keys are handed out, so none is ever asked for.
struct NoPreKeys;

#[async_trait::async_trait]
impl PreKeyStore for NoPreKeys {
    async fn get_pre_key(&self, _: PreKeyId) -> SignalResult<PreKeyRecord> {
        Err(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(&mut self, _: PreKeyId, _: &PreKeyRecord) -> SignalResult<()> {
        Ok(())
    }

    async fn remove_pre_key(&mut self, _: PreKeyId) -> SignalResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneSignal {
        PhoneSignal::new(&KeyPair::generate(&mut rand::rng())).unwrap()
    }

    #[tokio::test]
    async fn messages_go_as_pkmsg_until_the_session_is_confirmed_then_as_msg_and_all_decrypt() {
        let (mut alice, mut bob) = (phone(), phone());
        let (to_bob, from_alice) = (
            ProtocolAddress::new("bob", 1.into()),
            ProtocolAddress::new("alice", 0.into()),
        );
        let bundle = bob.bundle().unwrap();

        let mut kinds = Vec::new();
        for (text, confirm_before) in [("one", false), ("two", false), ("three", true)] {
            if confirm_before {
                alice.session_confirmed(&to_bob).unwrap();
            }
            let (kind, body) = alice
                .encrypt(&to_bob, || Ok(bundle.clone()), text.as_bytes())
                .await
                .unwrap();
            let plain = bob.decrypt(&from_alice, kind, &body).await.unwrap();
            assert_eq!(plain, text.as_bytes());
            kinds.push(kind);
        }
        assert_eq!(kinds, ["pkmsg", "pkmsg", "msg"]);
    }
}
