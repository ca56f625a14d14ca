//! A real daemon on 127.0.0.1:0 with an emulator the test can steer, and bounded
//! waits on conditions.
#![allow(dead_code)]

// The fake WhatsApp server needs a build with the certificate check off.
#[cfg(feature = "fake-whatsapp")]
pub mod fake;
pub mod process;

// The shared waits and requests, used as `common::wait_for` and so on.
mod calls;
pub use calls::*;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::Instant,
};
use tonic::transport::Channel;
use wa_sessiond::{
    app,
    backend::emulator::Emulator,
    config::{BackendKind, Config, VersionUrl, WhatsappUrl},
    domain::SessionId,
    proto::{
        emulator_service_client::EmulatorServiceClient, session_service_client::SessionServiceClient, Session,
        SessionStatus,
    },
};

/// Short WhatsApp timings for tests.
pub const FIRST_TTL: Duration = Duration::from_millis(1500);
pub const NEXT_TTL: Duration = Duration::from_millis(500);
pub const QR_COUNT: u32 = 3;
pub const STEP: Duration = Duration::from_millis(60);
/// How long a rate limit (stream error 429) pauses campaigns in tests
/// (`--rate-limit-pause`; 60 s by default).
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(3);

/// A running daemon.
pub struct Daemon {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    pub metrics: Arc<wa_sessiond::metrics::Metrics>,
    pub readiness: Arc<wa_sessiond::readiness::Readiness>,
    /// The admin port (`/livez`, `/readyz`, `/metrics`).
    pub admin_addr: SocketAddr,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), app::StartError>>>,
    /// The registry actor once it runs.
    pub registry: Arc<std::sync::OnceLock<ractor::ActorCell>>,
}

/// A `ws://` URL on a loopback port nothing listens on: where the real backend
/// dials unless a test points it at a fake server. Tests never touch the network.
pub fn closed_local_url() -> WhatsappUrl {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    WhatsappUrl::parse(&format!("ws://127.0.0.1:{port}/ws/chat")).unwrap()
}

/// An sw.js URL on a loopback port nothing listens on: where the real backend
/// resolves the WhatsApp Web version unless a test points it at a fake server.
pub fn closed_local_sw_js() -> VersionUrl {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    VersionUrl::parse(&format!("http://127.0.0.1:{port}/sw.js")).unwrap()
}

/// The test config: short TTLs, in `data_dir`, the real backend (when chosen)
/// dialing a closed local port.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::defaults();
    config.data_dir = data_dir.to_path_buf();
    config.backend = BackendKind::Emulator;
    config.whatsapp_url = closed_local_url();
    config.wa_version_url = closed_local_sw_js();
    config.emulator_first_qr_ttl = FIRST_TTL;
    config.emulator_next_qr_ttl = NEXT_TTL;
    config.emulator_qr_count = QR_COUNT;
    config.emulator_qr_delay = STEP;
    config.qr_timeout = Duration::from_secs(5);
    config.refresh_timeout = Duration::from_secs(5);
    config.reconnect_max_delay = Duration::from_secs(2);
    config.rate_limit_pause = RATE_LIMIT_PAUSE;
    config.shutdown_grace = Duration::from_secs(5);
    config
}

impl Daemon {
    /// Starts a daemon with the test config, changed by `tweak`, and waits until it
    /// is ready (sessions restored, health SERVING).
    pub async fn start(data_dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let daemon = Self::spawn(data_dir, tweak).await;
        daemon.wait_ready().await;
        daemon
    }

    /// The overall health status ("" service): 1 SERVING, 2 NOT_SERVING.
    pub async fn health(&self) -> i32 {
        overall_health(self.channel().await).await
    }

    /// Waits (bounded) until the daemon is ready (sessions restored; what /readyz
    /// and the health service report), over any transport.
    pub async fn wait_ready(&self) {
        wait_for(Duration::from_secs(20), "the daemon to be ready", || async {
            self.readiness.is_ready().then_some(())
        })
        .await;
    }

    /// Starts a daemon without waiting for it to be ready.
    pub async fn spawn(data_dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_wired(data_dir, tweak, app::Wiring::default()).await
    }

    /// Starts a daemon on `wiring` and waits until it is ready.
    pub async fn start_wired(data_dir: &std::path::Path, tweak: impl FnOnce(&mut Config), wiring: app::Wiring) -> Self {
        let daemon = Self::spawn_wired(data_dir, tweak, wiring).await;
        daemon.wait_ready().await;
        daemon
    }

    /// Starts a daemon with the test config changed by `tweak`, on `wiring` (its
    /// emulator is made here unless the wiring brings one, e.g. to outlive a
    /// restart as WhatsApp does), and its admin port on 127.0.0.1:0.
    pub async fn spawn_wired(data_dir: &std::path::Path, tweak: impl FnOnce(&mut Config), wiring: app::Wiring) -> Self {
        Self::spawn_on(local_listeners().await, data_dir, tweak, wiring).await
    }

    /// Starts a daemon on `listeners` and waits until it is ready.
    pub async fn start_on(
        listeners: app::Listeners,
        data_dir: &std::path::Path,
        tweak: impl FnOnce(&mut Config),
        wiring: app::Wiring,
    ) -> Self {
        let daemon = Self::spawn_on(listeners, data_dir, tweak, wiring).await;
        daemon.wait_ready().await;
        daemon
    }

    /// `spawn_wired` on listeners of the test's own (e.g. with the link page's).
    pub async fn spawn_on(
        listeners: app::Listeners,
        data_dir: &std::path::Path,
        tweak: impl FnOnce(&mut Config),
        wiring: app::Wiring,
    ) -> Self {
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let addr = listeners.grpc.local_addr().unwrap();
        let admin_addr = listeners.admin.local_addr().unwrap();
        let emulator = wiring
            .emulator
            .clone()
            .unwrap_or_else(|| app::emulator_for(&config, app::open_data_dir(&config).unwrap()));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let wiring = app::Wiring {
            emulator: Some(emulator.clone()),
            ..wiring
        };
        let (metrics, readiness, registry) = (
            wiring.metrics.clone(),
            wiring.readiness.clone(),
            wiring.registry.clone(),
        );
        let task = tokio::spawn(app::run(listeners, config.clone(), wiring, shutdown));
        Self {
            addr,
            emulator,
            metrics,
            readiness,
            admin_addr,
            config,
            stop: Some(stop),
            task: Some(task),
            registry,
        }
    }

    pub async fn channel(&self) -> Channel {
        let endpoint = format!("http://{}", self.addr);
        let start = Instant::now();
        loop {
            match Channel::from_shared(endpoint.clone()).unwrap().connect().await {
                Ok(channel) => return channel,
                Err(e) if start.elapsed() < Duration::from_secs(5) => {
                    let _ = e;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("daemon not reachable: {e}"),
            }
        }
    }

    pub async fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel().await)
    }

    pub async fn phone(&self) -> EmulatorServiceClient<Channel> {
        EmulatorServiceClient::new(self.channel().await)
    }

    pub async fn connections(&self, id: &str) -> u64 {
        self.emulator.connections_started(&SessionId::parse(id).unwrap()).await
    }

    /// Sends the shutdown signal and waits for a clean exit.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("the daemon shuts down within its grace period");
        result.unwrap().unwrap();
    }

    /// Sends the shutdown signal without waiting (the admin port keeps serving).
    pub fn begin_stop(&mut self) {
        let _ = self.stop.take().expect("not stopping yet").send(());
    }

    /// Waits for the daemon started by `begin_stop` to exit cleanly.
    pub async fn stopped(mut self) {
        let result = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("the daemon shuts down within its grace period");
        result.unwrap().unwrap();
    }

    /// Waits (bounded) for the daemon to exit by itself, and returns how it ended.
    pub async fn exited(mut self) -> Result<(), app::StartError> {
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("the daemon exits within 10s")
            .expect("the daemon's task does not panic")
    }

    /// GETs `path` on the admin port: the status code and the body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr, path).await
    }

    /// Scrapes `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        let (code, body) = self.admin_get("/metrics").await;
        assert_eq!(code, 200, "{body}");
        Scrape::parse(&body)
    }
}

/// gRPC and admin listeners on 127.0.0.1:0, and no link page.
pub async fn local_listeners() -> app::Listeners {
    app::Listeners {
        grpc: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        link: None,
    }
}

/// The overall health status ("" service) over `channel`: 1 SERVING, 2 NOT_SERVING,
/// 0 no answer.
pub async fn overall_health(channel: Channel) -> i32 {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let request = HealthCheckRequest { service: String::new() };
    let answer = HealthClient::new(channel).check(request).await;
    answer.map_or(0, |r| r.into_inner().status)
}
