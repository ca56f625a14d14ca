//! The build users run: the default release binary (`cargo build --release --bin
//! wa-sessiond`, WhatsApp's server certificate check on), smoke-tested as a process.
//! It serves health and reflection and answers a CreateSession on the emulator with a
//! QR code; and pointed at the fake WhatsApp (this test build's `fake-whatsapp`
//! binary, whose certificate chain is its own), it refuses the fake: the session
//! never shows a QR code, while this test build (check off) pairs against the same
//! fake. `scripts/test` builds the binary and names it in `WA_SESSIOND_RELEASE_BIN`.

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{create, process::Process, status};
use fake_whatsapp::proto::{fake_whatsapp_client::FakeWhatsappClient, CountConnectionsRequest};
use tonic::{transport::Channel, Code};
use wa_sessiond::{
    config::UNVERIFIED_WARNING,
    proto::{Session, SessionStatus},
};

/// The variable that names the release binary.
const RELEASE_BIN: &str = "WA_SESSIOND_RELEASE_BIN";

/// How long a session on the real backend may take to give up on the fake.
const REFUSED_BOUND: Duration = Duration::from_secs(30);

/// The release binary, or None (said on the terminal) when it is not named; with
/// `CI=true` a missing binary fails instead.
fn release_binary() -> Option<PathBuf> {
    let Some(path) = std::env::var_os(RELEASE_BIN) else {
        let line = format!(
            "release_smoke: SKIPPED: {RELEASE_BIN} is not set; `scripts/test` builds the default release binary and sets it"
        );
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{line} (CI requires this test)"
        );
        // Straight to the terminal: libtest would swallow a print of a passing test.
        let _ = writeln!(std::io::stderr(), "{line}");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{RELEASE_BIN}={} is not a file", path.display());
    Some(path)
}

/// A port free at the time of asking, on loopback.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The fake WhatsApp binary as a child process, killed on drop.
struct FakeProcess {
    child: Child,
    /// Its websocket, as the daemon dials it.
    url: String,
    /// Its control API.
    control: SocketAddr,
}

impl FakeProcess {
    /// Starts `fake-whatsapp` on two free loopback ports; returns once it serves.
    fn start() -> Self {
        let (listen, control) = (free_port(), free_port());
        let control: SocketAddr = ([127, 0, 0, 1], control).into();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-whatsapp"))
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--control", &control.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the fake-whatsapp binary starts");
        let stderr = child.stderr.take().unwrap();
        let (serving_tx, serving) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("fake whatsapp serving") {
                    let _ = serving_tx.send(());
                }
            }
        });
        serving
            .recv_timeout(Duration::from_secs(30))
            .expect("the fake says it serves within 30s");
        Self {
            child,
            url: format!("ws://127.0.0.1:{listen}/ws/chat"),
            control,
        }
    }

    /// Connections the fake accepted so far.
    async fn connections_started(&self) -> u64 {
        let mut control = FakeWhatsappClient::connect(format!("http://{}", self.control))
            .await
            .expect("the fake's control api answers");
        let counted = control.count_connections(CountConnectionsRequest {}).await.unwrap();
        counted.into_inner().started
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts the process is a build with the certificate check on.
async fn assert_verifies(daemon: &Process) {
    let log = daemon.log().await;
    assert!(
        !log.iter().any(|line| line.contains(UNVERIFIED_WARNING)),
        "the release build must verify WhatsApp's certificate chain: {log:#?}"
    );
}

/// The services reflection lists.
async fn reflected_services(channel: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse, ServerReflectionRequest,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut client = ServerReflectionClient::new(channel);
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("not a service list: {other:?}"),
    }
}

/// SIGTERM, then a clean exit within the grace period.
async fn stop(mut daemon: Process) {
    daemon.sigterm();
    let (exit, _) = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_build_serves_health_reflection_and_a_qr_code_on_the_emulator() {
    let Some(release) = release_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::spawn_exe(&release, dir.path(), &common::process::EMULATOR, &[]).await;
    daemon.wait_ready().await;
    assert_verifies(&daemon).await;
    assert_eq!(daemon.health().await, 1, "SERVING");

    let services = reflected_services(daemon.channel().await).await;
    for wanted in ["wasessiond.v1.SessionService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == wanted), "{wanted} in {services:?}");
    }

    let created = daemon.sessions().await.create_session(create("smoke")).await;
    let created = created.expect("CreateSession answers").into_inner();
    assert_eq!(status(&created), SessionStatus::QrWaiting);
    let qr = created.qr.expect("the first QR code is in the answer");
    assert!(!qr.code.is_empty());
    stop(daemon).await;
}

/// Creates `id` on `daemon`: its answer (the status on error).
async fn create_on(daemon: &Process, id: &str) -> Result<Session, tonic::Status> {
    let answer = tokio::time::timeout(REFUSED_BOUND, daemon.sessions().await.create_session(create(id))).await;
    answer
        .expect("CreateSession answers within the bound")
        .map(|s| s.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_build_refuses_the_fake_whatsapps_certificate_chain() {
    let Some(release) = release_binary() else { return };
    let fake = FakeProcess::start();
    let sw_js = common::process::sw_js_of(&fake.url);
    let real = [
        "--backend",
        "whatsapp",
        "--whatsapp-url",
        &fake.url,
        "--wa-version-url",
        &sw_js,
        "--qr-timeout",
        "20s",
    ];
    let dir = tempfile::tempdir().unwrap();
    let daemon = Process::spawn_exe(&release, dir.path(), &real, &[]).await;
    daemon.wait_ready().await;
    assert_verifies(&daemon).await;

    // What the user sees: no QR code, an error naming the handshake, the session
    // FAILED with the cause.
    let refused = create_on(&daemon, "checked").await;
    let error = match refused {
        Ok(session) => panic!("the release build accepted the fake's certificate chain: {session:?}"),
        Err(error) => error,
    };
    assert!(
        matches!(error.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{error:?}"
    );
    assert!(fake.connections_started().await >= 1, "the daemon did reach the fake");
    let mut sessions = daemon.sessions().await;
    let failed = common::wait_session(&mut sessions, "checked", "the cause in last_error", |s| {
        !s.last_error.is_empty()
    })
    .await;
    assert_eq!(status(&failed), SessionStatus::Failed, "{failed:?}");
    assert!(failed.qr.is_none(), "never a QR code from an unverified server");
    let _ = writeln!(
        std::io::stderr(),
        "release_smoke: the release build against the fake: {:?} {:?}; last_error {:?}",
        error.code(),
        error.message(),
        failed.last_error
    );
    stop(daemon).await;

    // The same fake pairs with this test build, whose check is off: the refusal
    // above is the certificate check, not a broken fake.
    let dir = tempfile::tempdir().unwrap();
    let unchecked = Process::spawn_exe(Path::new(env!("CARGO_BIN_EXE_wa-sessiond")), dir.path(), &real, &[]).await;
    unchecked.wait_ready().await;
    let created = create_on(&unchecked, "unchecked")
        .await
        .expect("a QR code from the fake");
    assert!(created.qr.is_some_and(|qr| !qr.code.is_empty()));
    stop(unchecked).await;
}
