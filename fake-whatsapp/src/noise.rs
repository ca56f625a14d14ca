//! The server side of WhatsApp's Noise transport: the XX handshake with the
//! `WA\x06\x03` prologue and a certificate chain of the fake's own (unsigned: the
//! clients it serves are built without the chain check), then the AES-GCM channel
//! that seals and opens binary nodes with a counter nonce per direction.

use buffa::Message as _;
use bytes::BytesMut;
use wacore_binary::{marshal::marshal, Node};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{framing::encode_frame, NoiseCipher, NoiseHandshake};
use waproto::whatsapp::{self as wa, cert_chain::noise_certificate};

/// The XX pattern name (32 bytes: used as the initial hash directly).
const NOISE_PATTERN_XX: &str = "Noise_XX_25519_AESGCM_SHA256\0\0\0\0";

/// WhatsApp's connection header and Noise prologue: "WA", version 6, dictionary 3.
pub const WA_CONN_HEADER: [u8; 4] = [b'W', b'A', 6, 3];

/// Something in the handshake or a frame was not what WhatsApp would send.
#[derive(Debug)]
pub struct NoiseFailure(pub String);

impl std::fmt::Display for NoiseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn failure(what: &str) -> impl Fn(String) -> NoiseFailure + '_ {
    move |e| NoiseFailure(format!("{what}: {e}"))
}

/// The server's long-lived Noise identity and the certificate chain naming it.
pub struct ServerIdentity {
    /// The static key pair.
    static_key: KeyPair,
    /// The encoded `CertChain`: an intermediate (issuer 0) and a leaf for the static key.
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    /// A fresh identity. The certificates carry no validity window, so a client
    /// never caches them for an IK handshake: every connection speaks XX.
    pub fn generate() -> Self {
        let static_key = KeyPair::generate(&mut rand::rng());
        let intermediate_key = KeyPair::generate(&mut rand::rng());
        let certificate = |details: noise_certificate::Details| wa::cert_chain::NoiseCertificate {
            details: Some(details.encode_to_vec()),
            signature: Some(vec![0; 64]),
        };
        let intermediate = certificate(noise_certificate::Details {
            serial: Some(1),
            issuer_serial: Some(0),
            key: Some(intermediate_key.public_key.public_key_bytes().to_vec()),
            ..Default::default()
        });
        let leaf = certificate(noise_certificate::Details {
            serial: Some(2),
            issuer_serial: Some(1),
            key: Some(static_key.public_key.public_key_bytes().to_vec()),
            ..Default::default()
        });
        let chain = wa::CertChain {
            leaf: buffa::MessageField::some(leaf),
            intermediate: buffa::MessageField::some(intermediate),
        };
        Self {
            static_key,
            cert_chain: chain.encode_to_vec(),
        }
    }
}

/// A handshake half-way: the ServerHello is out, the ClientFinish is awaited.
pub struct Responder {
    /// The symmetric state.
    noise: NoiseHandshake,
    /// This connection's ephemeral key.
    ephemeral: KeyPair,
}

/// What a finished handshake yields.
pub struct Handshaken {
    /// The client's Noise static public key.
    pub client_static: [u8; 32],
    /// Who the client says it is (registration or login).
    pub payload: wa::ClientPayload,
    /// The transport from here on.
    pub channel: Channel,
}

impl Responder {
    /// Reads the ClientHello (`frame` without its length) and returns the framed
    /// ServerHello to send.
    pub fn hello(server: &ServerIdentity, frame: &[u8]) -> Result<(Self, Vec<u8>), NoiseFailure> {
        let message =
            wa::HandshakeMessage::decode_from_slice(frame).map_err(|e| failure("client hello")(e.to_string()))?;
        let client_ephemeral: [u8; 32] = message
            .client_hello
            .into_option()
            .and_then(|hello| hello.ephemeral)
            .and_then(|key| key.try_into().ok())
            .ok_or_else(|| NoiseFailure("client hello without a 32-byte ephemeral key".into()))?;
        let mut noise =
            NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER).map_err(|e| failure("noise")(e.to_string()))?;
        noise.authenticate(&client_ephemeral);
        let ephemeral = KeyPair::generate(&mut rand::rng());
        noise.authenticate(ephemeral.public_key.public_key_bytes());
        let mix = failure("key agreement");
        noise
            .mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)
            .map_err(|e| mix(e.to_string()))?;
        let encrypted_static = noise
            .encrypt(server.static_key.public_key.public_key_bytes())
            .map_err(|e| mix(e.to_string()))?;
        noise
            .mix_shared_secret(server.static_key.private_key.serialize(), &client_ephemeral)
            .map_err(|e| mix(e.to_string()))?;
        let encrypted_chain = noise.encrypt(&server.cert_chain).map_err(|e| mix(e.to_string()))?;
        let hello = wa::HandshakeMessage {
            server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
                ephemeral: Some(ephemeral.public_key.public_key_bytes().to_vec()),
                r#static: Some(encrypted_static),
                payload: Some(encrypted_chain),
                ..Default::default()
            }),
            ..Default::default()
        };
        let framed = encode_frame(&hello.encode_to_vec(), None).map_err(|e| failure("server hello")(e.to_string()))?;
        Ok((Self { noise, ephemeral }, framed))
    }

    /// Reads the ClientFinish: the client's static key and its payload.
    pub fn finish(mut self, frame: &[u8]) -> Result<Handshaken, NoiseFailure> {
        let message =
            wa::HandshakeMessage::decode_from_slice(frame).map_err(|e| failure("client finish")(e.to_string()))?;
        let finish = message
            .client_finish
            .into_option()
            .ok_or_else(|| NoiseFailure("expected a client finish".into()))?;
        let (Some(encrypted_static), Some(encrypted_payload)) = (finish.r#static, finish.payload) else {
            return Err(NoiseFailure("client finish without its static key or payload".into()));
        };
        let open = failure("client finish");
        let client_static: [u8; 32] = self
            .noise
            .decrypt(&encrypted_static)
            .map_err(|e| open(e.to_string()))?
            .try_into()
            .map_err(|_| NoiseFailure("client static key is not 32 bytes".into()))?;
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)
            .map_err(|e| open(e.to_string()))?;
        let payload = self
            .noise
            .decrypt(&encrypted_payload)
            .map_err(|e| open(e.to_string()))?;
        let payload = wa::ClientPayload::decode_from_slice(&payload).map_err(|e| open(e.to_string()))?;
        // The split gives the client's (write, read) keys; the server reads with the
        // first and writes with the second.
        let (client_to_server, server_to_client) = self.noise.finish().map_err(|e| open(e.to_string()))?;
        Ok(Handshaken {
            client_static,
            payload,
            channel: Channel {
                read: client_to_server,
                write: server_to_client,
                read_counter: 0,
                write_counter: 0,
            },
        })
    }
}

/// The encrypted transport after the handshake.
pub struct Channel {
    /// Opens the client's frames.
    read: NoiseCipher,
    /// Seals the server's frames.
    write: NoiseCipher,
    /// The nonce of the next frame read.
    read_counter: u32,
    /// The nonce of the next frame written.
    write_counter: u32,
}

impl Channel {
    /// `node` marshalled (flag byte 0, uncompressed), sealed and framed.
    pub fn seal(&mut self, node: &Node) -> Result<Vec<u8>, NoiseFailure> {
        let plain = marshal(node).map_err(|e| failure("marshal")(e.to_string()))?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| failure("seal")(e.to_string()))?;
        self.write_counter += 1;
        encode_frame(&sealed, None).map_err(|e| failure("frame")(e.to_string()))
    }

    /// Opens one frame (without its length) into the node it carries.
    pub fn open(&mut self, mut frame: BytesMut) -> Result<Node, NoiseFailure> {
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)
            .map_err(|e| failure("open")(e.to_string()))?;
        self.read_counter += 1;
        let unpacked = wacore_binary::util::unpack(&frame).map_err(|e| failure("unpack")(e.to_string()))?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked).map_err(|e| failure("unmarshal")(e.to_string()))?;
        Ok(node.to_owned())
    }
}
