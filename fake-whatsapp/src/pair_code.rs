//! Linking by phone number: a device's `companion_hello` (answered with a ref),
//! and the phone typing the 8-character code: it unwraps the device's ephemeral key
//! with the code, sends its own in a `primary_hello`, opens the key bundle of the
//! device's `companion_finish`, derives the ADV secret both sides now share, and
//! vouches for the device as after a QR scan.

use std::time::Duration;

use rand::RngExt as _;
use wacore::{crypto::hkdf_sha256_into, pair_code::PairCodeUtils};
use wacore_binary::{builder::NodeBuilder, Node};
use wacore_libsignal::{
    crypto::aes_256_gcm_decrypt,
    protocol::{KeyPair, PublicKey},
};

use crate::{
    pairing::ScannedCode,
    stanza::{self, attr, content_bytes},
    vocab::{CodeRequest, DeviceAddr, Refusal},
    world::World,
};

/// How long the phone waits for the device's `companion_finish`.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a `<link_code_companion_reg stage="companion_hello">` and gives it a ref.
pub fn companion_hello(reg: &Node) -> Result<CodeRequest, String> {
    let jid = attr(reg, "jid").ok_or("companion_hello without a jid")?;
    let phone: String = jid.split('@').next().unwrap_or_default().to_owned();
    let child = |tag: &str| reg.get_optional_child(tag).and_then(content_bytes);
    let wrapped = child("link_code_pairing_wrapped_companion_ephemeral_pub")
        .filter(|w| w.len() == 80)
        .ok_or("companion_hello without an 80-byte wrapped ephemeral key")?;
    let noise_key: [u8; 32] = child("companion_server_auth_key_pub")
        .and_then(|k| k.try_into().ok())
        .ok_or("companion_hello without a 32-byte noise key")?;
    let ref_bytes: [u8; 16] = rand::rng().random();
    let pairing_ref = format!("2@{}", hex::encode(ref_bytes));
    Ok(CodeRequest {
        phone,
        pairing_ref: pairing_ref.into_bytes(),
        wrapped_ephemeral: wrapped.to_vec(),
        noise_key,
    })
}

/// The answer to a `companion_hello`: the ref.
pub fn companion_hello_answer(id: &str, request: &CodeRequest) -> Node {
    let reg = NodeBuilder::new("link_code_companion_reg")
        .children([NodeBuilder::new("link_code_pairing_ref")
            .bytes(request.pairing_ref.clone())
            .build()])
        .build();
    stanza::iq_result(id, vec![reg])
}

/// The phone types `code`: tries the devices waiting for one, newest first, until
/// one completes the exchange. Its device to be.
pub async fn enter(world: &World, code: &str) -> Result<DeviceAddr, Refusal> {
    let code: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !PairCodeUtils::validate_code(&code) {
        return Err(Refusal::Invalid("a pairing code is 8 letters and digits".into()));
    }
    let waiting = world.code_requests().await;
    if waiting.is_empty() {
        return Err(Refusal::NotFound("no device is waiting for a pairing code".into()));
    }
    let mut last = String::new();
    for (conn, request) in waiting {
        match exchange(world, conn, &request, &code).await {
            Ok(scanned) => return world.pair_by_code(conn, &request.phone, scanned).await,
            Err(why) => last = why,
        }
    }
    Err(Refusal::NotFound(format!(
        "no waiting device accepted that code ({last})"
    )))
}

/// One primary_hello / companion_finish exchange with connection `conn`: what
/// the phone then knows of the device, as if it had scanned its QR code.
async fn exchange(world: &World, conn: u64, request: &CodeRequest, code: &str) -> Result<ScannedCode, String> {
    let phone_identity = world.phone_identity(&request.phone).await;
    let (wrapped, code_owned) = (request.wrapped_ephemeral.clone(), code.to_owned());
    // Two PBKDF2 runs of 131,072 rounds: off the async threads.
    let (ephemeral, companion_ephemeral, wrapped_primary) = tokio::task::spawn_blocking(move || {
        let companion = PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped, &code_owned);
        let ephemeral = KeyPair::generate(&mut rand::rng());
        let public: [u8; 32] = ephemeral.public_key.public_key_bytes().try_into().expect("32 bytes");
        let wrapped_primary = PairCodeUtils::encrypt_ephemeral_pub(&public, &code_owned);
        companion.map(|companion| (ephemeral, companion, wrapped_primary))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let hello = primary_hello(request, &wrapped_primary, phone_identity.public_key.public_key_bytes());
    let finished = world
        .send_primary_hello(conn, hello)
        .await
        .ok_or("the device's connection closed")?;
    let finish = tokio::time::timeout(FINISH_TIMEOUT, finished)
        .await
        .map_err(|_| format!("no companion_finish within {FINISH_TIMEOUT:?}"))?
        .map_err(|_| "the device's connection closed".to_owned())?;
    let (identity_key, adv_secret) = open_bundle(&ephemeral, &companion_ephemeral, &phone_identity, &finish)?;
    Ok(ScannedCode {
        pairing_ref: String::from_utf8_lossy(&request.pairing_ref).into_owned(),
        noise_key: request.noise_key,
        identity_key,
        adv_secret,
    })
}

/// `<notification type="link_code_companion_reg"><link_code_companion_reg stage="primary_hello">`.
fn primary_hello(request: &CodeRequest, wrapped_primary: &[u8; 80], identity: &[u8]) -> Node {
    let reg = NodeBuilder::new("link_code_companion_reg")
        .attr("stage", "primary_hello")
        .children([
            NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                .bytes(wrapped_primary.to_vec())
                .build(),
            NodeBuilder::new("primary_identity_pub")
                .bytes(identity.to_vec())
                .build(),
            NodeBuilder::new("link_code_pairing_ref")
                .bytes(request.pairing_ref.clone())
                .build(),
        ])
        .build();
    NodeBuilder::new("notification")
        .attr("type", "link_code_companion_reg")
        .attr("from", stanza::SERVER)
        .attr("id", stanza::next_id())
        .attr("t", stanza::now().to_string())
        .children([reg])
        .build()
}

/// Opens the key bundle of a `companion_finish` (`salt32 ‖ iv12 ‖ AES-GCM`): the
/// device's identity key and the ADV secret derived from both key agreements.
fn open_bundle(
    ephemeral: &KeyPair,
    companion_ephemeral: &[u8; 32],
    phone_identity: &KeyPair,
    finish: &Node,
) -> Result<([u8; 32], [u8; 32]), String> {
    let reg = finish
        .get_optional_child("link_code_companion_reg")
        .ok_or("companion_finish without its registration")?;
    let wrapped = reg
        .get_optional_child("link_code_pairing_wrapped_key_bundle")
        .and_then(content_bytes)
        .filter(|w| w.len() > 44)
        .ok_or("companion_finish without a key bundle")?;
    let identity: [u8; 32] = reg
        .get_optional_child("companion_identity_public")
        .and_then(content_bytes)
        .and_then(|k| k.try_into().ok())
        .ok_or("companion_finish without a 32-byte identity key")?;
    let key = |bytes: &[u8]| PublicKey::from_djb_public_key_bytes(bytes).map_err(|e| e.to_string());
    let ephemeral_shared = ephemeral
        .private_key
        .calculate_agreement(&key(companion_ephemeral)?)
        .map_err(|e| e.to_string())?;
    let (salt, rest) = wrapped.split_at(32);
    let (iv, sealed) = rest.split_at(12);
    let mut bundle_key = [0u8; 32];
    hkdf_sha256_into(
        &ephemeral_shared,
        Some(salt),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut bundle_key,
    )
    .map_err(|e| e.to_string())?;
    let iv: [u8; 12] = iv.try_into().map_err(|_| "bad iv")?;
    let mut bundle = Vec::new();
    aes_256_gcm_decrypt(&bundle_key, &iv, b"", sealed, &mut bundle)
        .map_err(|_| "the key bundle does not open: a wrong code".to_owned())?;
    if bundle.len() != 96 || bundle[..32] != identity {
        return Err("the key bundle does not name the device's identity key".into());
    }
    let identity_shared = phone_identity
        .private_key
        .calculate_agreement(&key(&identity)?)
        .map_err(|e| e.to_string())?;
    let secret_material = [&ephemeral_shared[..], &identity_shared[..], &bundle[64..]].concat();
    let mut adv_secret = [0u8; 32];
    hkdf_sha256_into(&secret_material, None, b"adv_secret", &mut adv_secret).map_err(|e| e.to_string())?;
    Ok((identity, adv_secret))
}
