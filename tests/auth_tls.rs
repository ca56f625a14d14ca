//! Authentication and TLS at the gRPC edge: a bearer token guards SessionService and
//! EmulatorService (health stays open), mutual TLS refuses a client without a
//! certificate, and a TLS handshake that never finishes is cut at its bound.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::{
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code, Request, Status,
};
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
use wa_sessiond::{
    config::Secret,
    proto::{emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient},
};

const TOKEN: &str = "s3cret-token-of-the-test";

type Authed = InterceptedService<Channel, Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>>;

/// A SessionService client that sends `authorization: <value>`.
fn with_authorization(channel: Channel, value: &'static str) -> SessionServiceClient<Authed> {
    let header: MetadataValue<_> = value.parse().unwrap();
    let add = move |mut request: Request<()>| {
        request.metadata_mut().insert("authorization", header.clone());
        Ok(request)
    };
    SessionServiceClient::with_interceptor(channel, Box::new(add) as Box<dyn FnMut(_) -> _ + Send>)
}

#[tokio::test]
async fn calls_need_the_bearer_token_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.edge.auth_token = Some(Secret::new(TOKEN))).await;
    let channel = daemon.channel().await;

    let missing = SessionServiceClient::new(channel.clone())
        .create_session(create("alice"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert!(
        missing.message().contains("authorization: Bearer"),
        "{}",
        missing.message()
    );
    let phone = EmulatorServiceClient::new(channel.clone())
        .list_sent_messages(wa_sessiond::proto::ListSentMessagesRequest::default())
        .await;
    assert_eq!(phone.unwrap_err().code(), Code::Unauthenticated);
    for wrong in [
        "Bearer not-the-token",
        "Basic s3cret-token-of-the-test",
        "s3cret-token-of-the-test",
    ] {
        let refused = with_authorization(channel.clone(), wrong)
            .create_session(create("alice"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{wrong}");
        assert!(!refused.message().contains(TOKEN), "the token is never echoed");
    }

    let mut authed = with_authorization(channel.clone(), "Bearer s3cret-token-of-the-test");
    let created = authed.create_session(create("alice")).await.unwrap().into_inner();
    assert_eq!(created.id, "alice");

    let health = HealthCheckRequest {
        service: "wasessiond.v1.SessionService".into(),
    };
    let serving = HealthClient::new(channel).check(health).await.unwrap().into_inner();
    assert_eq!(serving.status(), ServingStatus::Serving);
    let scrape = daemon.scrape().await;
    let refused = [("grpc_method", "CreateSession"), ("grpc_code", "Unauthenticated")];
    assert_eq!(scrape.value("grpc_server_handled_total", &refused), 4.0);
    daemon.stop().await;
}

/// A CA, and PEM certificate + key pairs it signed for the server and a client.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

/// Writes `pem` to `name` in `dir`: a path for the TLS settings.
fn pem_file(dir: &tempfile::TempDir, name: &str, pem: &str) -> Option<std::path::PathBuf> {
    let path = dir.path().join(name);
    std::fs::write(&path, pem).unwrap();
    Some(path)
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf("localhost"),
        client: leaf("client"),
    }
}

async fn tls_channel(
    addr: std::net::SocketAddr,
    pki: &Pki,
    with_cert: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if with_cert {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn mutual_tls_serves_a_client_with_a_certificate_and_refuses_one_without() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| pem_file(&files, name, pem);
    let daemon = Daemon::start(dir.path(), |c| {
        c.edge.tls_cert = write("server.pem", &pki.server.0);
        c.edge.tls_key = write("server.key", &pki.server.1);
        c.edge.tls_client_ca = write("ca.pem", &pki.ca);
    })
    .await;
    let channel = wait_for(std::time::Duration::from_secs(5), "the tls port", || async {
        tls_channel(daemon.addr, &pki, true).await.ok()
    })
    .await;
    let created = SessionServiceClient::new(channel.clone())
        .create_session(create("alice"))
        .await;
    assert_eq!(created.unwrap().into_inner().id, "alice");

    let refusal = match tls_channel(daemon.addr, &pki, false).await {
        Err(e) => format!("{e:?}"),
        Ok(anonymous) => {
            let answer = SessionServiceClient::new(anonymous).get_session(peek("alice")).await;
            format!("{:?}", answer.expect_err("a client without a certificate is refused"))
        }
    };
    assert!(refusal.contains("CertificateRequired"), "{refusal}");
    let plaintext = Channel::from_shared(format!("http://{}", daemon.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(plaintext) = plaintext {
        assert!(SessionServiceClient::new(plaintext)
            .get_session(peek("alice"))
            .await
            .is_err());
    }

    let still = SessionServiceClient::new(channel)
        .get_session(peek("alice"))
        .await
        .unwrap();
    assert_eq!(
        still.into_inner().id,
        "alice",
        "the daemon still serves certified clients"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_tls_handshake_is_cut_off_after_10s() {
    use tokio::io::AsyncReadExt;
    /// The bound the README promises.
    const HANDSHAKE_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| pem_file(&files, name, pem);
    let daemon = Daemon::start(dir.path(), |c| {
        c.edge.tls_cert = write("server.pem", &pki.server.0);
        c.edge.tls_key = write("server.key", &pki.server.1);
    })
    .await;
    // Connects and never sends a ClientHello.
    let mut silent = tokio::net::TcpStream::connect(daemon.addr).await.unwrap();
    let connected = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(HANDSHAKE_BOUND * 3, silent.read(&mut byte))
        .await
        .expect("the daemon closes a silent connection within the bound (and some slack)");
    let held = connected.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "closed without a byte: {read:?}");
    // Not refused at once: it was the handshake's bound that ran out.
    assert!(
        held >= HANDSHAKE_BOUND - std::time::Duration::from_millis(500),
        "cut after {held:?}"
    );
    let channel = wait_for(std::time::Duration::from_secs(5), "the tls port", || async {
        tls_channel(daemon.addr, &pki, false).await.ok()
    })
    .await;
    let created = SessionServiceClient::new(channel).create_session(create("after")).await;
    assert_eq!(created.unwrap().into_inner().id, "after", "other clients are served");
    daemon.stop().await;
}
