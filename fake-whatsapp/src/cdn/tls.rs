//! The CDN's TLS identity: a test CA and a leaf certificate for `127.0.0.1`,
//! `::1` and `localhost` (100-year validity), generated once with openssl and
//! committed as PEM next to this file. Only `fake-whatsapp` builds trust the CA;
//! the leaf's key is a test key and protects nothing.

use std::sync::Arc;

use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    },
    TlsAcceptor,
};

/// The CA that signs the CDN's certificate (PEM): what a client of the fake trusts.
pub const CA_PEM: &str = include_str!("ca.pem");

/// The CDN's certificate, signed by [`CA_PEM`].
const LEAF_PEM: &str = include_str!("leaf.pem");

/// The leaf's private key (PKCS#8, P-256).
const LEAF_KEY_PEM: &str = include_str!("leaf.key");

/// A TLS acceptor serving the leaf and its CA as the chain.
pub fn acceptor() -> Result<TlsAcceptor, String> {
    let chain = [LEAF_PEM, CA_PEM]
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the cdn's certificate does not parse: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY_PEM.as_bytes())
        .map_err(|e| format!("the cdn's key does not parse: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no tls versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the cdn's certificate and key do not match: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
