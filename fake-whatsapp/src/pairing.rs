//! What a phone does when it scans a device's QR code: read the QR text, vouch for
//! the device with an ADV identity signed by the phone's own account key and
//! authenticated with the device's ADV secret, and check the device's
//! countersignature in its pair-device-sign answer.

use base64::{prelude::BASE64_STANDARD, Engine as _};
use buffa::Message as _;
use wacore_binary::{builder::NodeBuilder, Node};
use wacore_libsignal::{
    crypto::hmac_sha256,
    protocol::{KeyPair, PublicKey},
};
use waproto::whatsapp::{self as wa, ADVEncryptionType};

use crate::stanza::{self, content_bytes};

/// ADV signature prefixes (WhatsApp Web's, as whatsmeow names them).
const ACCOUNT_SIGNATURE_PREFIX: &[u8] = &[6, 0];
const DEVICE_SIGNATURE_PREFIX: &[u8] = &[6, 1];

/// The parts of a QR code's text the phone uses.
#[derive(Clone)]
pub struct ScannedCode {
    /// The ref the server issued.
    pub pairing_ref: String,
    /// The device's Noise static public key.
    pub noise_key: [u8; 32],
    /// The device's Signal identity public key.
    pub identity_key: [u8; 32],
    /// The secret the ADV identity is authenticated with.
    pub adv_secret: [u8; 32],
}

impl std::fmt::Debug for ScannedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScannedCode").finish_non_exhaustive()
    }
}

/// Reads `ref,noiseKey,identityKey,advSecret[,clientType]` (base64 keys).
pub fn parse_qr(code: &str) -> Result<ScannedCode, String> {
    let fields: Vec<&str> = code.trim().split(',').collect();
    let [pairing_ref, noise, identity, secret, ..] = fields[..] else {
        return Err(format!(
            "a qr code has at least 4 comma-separated fields, this one has {}",
            fields.len()
        ));
    };
    if pairing_ref.is_empty() {
        return Err("the qr code has no ref".into());
    }
    let key = |name: &str, b64: &str| -> Result<[u8; 32], String> {
        BASE64_STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| format!("the qr code's {name} is not 32 bytes of base64"))
    };
    Ok(ScannedCode {
        pairing_ref: pairing_ref.to_owned(),
        noise_key: key("noise key", noise)?,
        identity_key: key("identity key", identity)?,
        adv_secret: key("adv secret", secret)?,
    })
}

/// Who the device becomes.
pub struct Linked<'a> {
    /// The device JID (`15550001111:1@s.whatsapp.net`).
    pub jid: &'a str,
    /// Its LID (`100000000000001:1@lid`).
    pub lid: &'a str,
    /// The account's display name.
    pub push_name: &'a str,
    /// The device number, the ADV `raw_id`.
    pub device: u16,
}

/// The `<iq type="set" xmlns="md"><pair-success>` the server sends when `phone`
/// (the account's identity key pair) scanned `code`.
pub fn pair_success(id: &str, phone: &KeyPair, code: &ScannedCode, linked: &Linked<'_>) -> Result<Node, String> {
    let identity = signed_identity(phone, code, linked.device)?;
    let success = NodeBuilder::new("pair-success")
        .children([
            NodeBuilder::new("device-identity")
                .attr("key-index", linked.device.to_string())
                .bytes(identity)
                .build(),
            NodeBuilder::new("device")
                .attr("jid", linked.jid.to_owned())
                .attr("lid", linked.lid.to_owned())
                .build(),
            NodeBuilder::new("biz")
                .attr("name", linked.push_name.to_owned())
                .build(),
            NodeBuilder::new("platform").attr("name", "android").build(),
        ])
        .build();
    Ok(stanza::server_iq(id, "set", "md", vec![success]))
}

/// `ADVSignedDeviceIdentityHMAC{ADVSignedDeviceIdentity{ADVDeviceIdentity}}`, signed
/// by the account key over the device's identity key and authenticated with its
/// ADV secret.
fn signed_identity(phone: &KeyPair, code: &ScannedCode, device: u16) -> Result<Vec<u8>, String> {
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(u32::from(device)),
        timestamp: Some(stanza::now()),
        key_index: Some(u32::from(device)),
        account_type: Some(ADVEncryptionType::E2EE),
        device_type: Some(ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let message = [ACCOUNT_SIGNATURE_PREFIX, &details, &code.identity_key].concat();
    let signature = phone
        .private_key
        .calculate_signature(&message, &mut rand::rng())
        .map_err(|e| format!("could not sign the device identity: {e}"))?;
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(phone.public_key.public_key_bytes().to_vec()),
        account_signature: Some(signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let hmac = hmac_sha256(&code.adv_secret, &signed).to_vec();
    Ok(wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac),
        account_type: Some(ADVEncryptionType::E2EE),
    }
    .encode_to_vec())
}

/// Whether the device's pair-device-sign answer (`answer`, the iq) carries an
/// identity countersigned by the device's identity key over the account key.
pub fn countersigned(answer: &Node, code: &ScannedCode) -> Result<(), String> {
    let bytes = answer
        .get_optional_child_by_tag(&["pair-device-sign", "device-identity"])
        .and_then(content_bytes)
        .ok_or("the answer has no pair-device-sign device-identity")?;
    let signed =
        wa::ADVSignedDeviceIdentity::decode_from_slice(bytes).map_err(|e| format!("not a signed identity: {e}"))?;
    let (Some(details), Some(account_key), Some(signature)) =
        (signed.details, signed.account_signature_key, signed.device_signature)
    else {
        return Err("the signed identity lacks its details, account key or device signature".into());
    };
    let message = [DEVICE_SIGNATURE_PREFIX, &details, &code.identity_key, &account_key].concat();
    let device_key = PublicKey::from_djb_public_key_bytes(&code.identity_key).map_err(|e| e.to_string())?;
    if device_key.verify_signature(&message, &signature) {
        Ok(())
    } else {
        Err("the device signature does not verify".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qr(identity: &KeyPair, secret: [u8; 32]) -> String {
        let b64 = |bytes: &[u8]| BASE64_STANDARD.encode(bytes);
        let noise = KeyPair::generate(&mut rand::rng());
        format!(
            "REF1,{},{},{},1",
            b64(noise.public_key.public_key_bytes()),
            b64(identity.public_key.public_key_bytes()),
            b64(&secret)
        )
    }

    #[test]
    fn a_qr_code_needs_four_fields_of_32_byte_keys() {
        let identity = KeyPair::generate(&mut rand::rng());
        let parsed = parse_qr(&qr(&identity, [7; 32])).unwrap();
        assert_eq!(parsed.pairing_ref, "REF1");
        assert_eq!(parsed.adv_secret, [7; 32]);
        assert!(parse_qr("REF1,AAAA,BBBB").is_err());
        assert!(parse_qr("REF1,AAAA,BBBB,CCCC").is_err());
        assert!(format!("{parsed:?}").find("REF1").is_none(), "debug hides the code");
    }

    /// The client library's own check (wacore's `do_pair_crypto`) accepts what the
    /// phone builds, and the phone accepts the device's countersignature.
    #[test]
    fn the_device_accepts_the_phones_identity_and_the_phone_its_countersignature() {
        use wacore::pair::{DeviceState, PairUtils};
        let device = DeviceState {
            identity_key: KeyPair::generate(&mut rand::rng()),
            noise_key: KeyPair::generate(&mut rand::rng()),
            adv_secret_key: [9; 32],
        };
        let code = parse_qr(&qr(&device.identity_key, device.adv_secret_key)).unwrap();
        let phone = KeyPair::generate(&mut rand::rng());
        let identity = signed_identity(&phone, &code, 3).unwrap();
        let (countersigned_identity, key_index) = PairUtils::do_pair_crypto(&device, &identity).unwrap();
        assert_eq!(key_index, 3);
        let answer = PairUtils::build_pair_success_response("id", countersigned_identity, key_index);
        countersigned(&answer, &code).unwrap();

        let wrong_secret = ScannedCode {
            adv_secret: [1; 32],
            ..code
        };
        let forged = signed_identity(&phone, &wrong_secret, 3).unwrap();
        assert!(PairUtils::do_pair_crypto(&device, &forged).is_err());
    }
}
