//! Wires the daemon together and runs it until `shutdown` resolves. `run` is the one
//! seam (`main` and the tests call only it) and reads top to bottom: the admin port,
//! the data dir and the backend, the link page, the gRPC server ([`grpc`], answering
//! NOT_SERVING), the stores and the registry ([`stores`]), serve, drain.
//!
//! Every long-lived task is watched the same way ([`watch`]): the admin port, the
//! link page, the gRPC server, the registry, retention, and the writer threads of
//! the session list and the event log. If one ends while the daemon is not shutting
//! down, `/livez` answers 503 naming it and `run` returns the reason (the process
//! exits non-zero and Kubernetes restarts it). A shutdown ending them is no death.

mod grpc;
mod stores;
mod watch;

use std::{future::Future, sync::Arc};

use ractor::ActorCell;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use self::{
    grpc::{server_failure, Front, Serving, GRPC_SERVER},
    stores::{Core, REGISTRY},
    watch::{listener_failed, Ended, Watched},
};
use crate::{
    admin::Admin,
    backend::{
        emulator::{Emulator, EmulatorConfig},
        paced::{Paced, Widths},
        whatsapp::{WaVersions, WhatsappBackend},
        Backend,
    },
    campaign::Campaigns,
    config::{BackendKind, Config},
    grpc::{campaign_service::CampaignSlot, event_service::LogSlot},
    link::LinkService,
    metrics::Metrics,
    readiness::Readiness,
    registry::Sessions,
    store::{DataDir, PageQuota},
};

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be used.
    #[error("data dir {path} is not usable: {source}")]
    DataDir {
        /// The data dir as configured (`--data-dir`).
        path: String,
        /// What the file system said (permissions, a full disk, not a folder).
        source: std::io::Error,
    },
    /// The registry did not start.
    #[error("the session registry did not start: {0}")]
    Registry(String),
    /// The session list could not be read.
    #[error("the session list {path} cannot be read ({cause}): restore it from a backup, or move it aside to start with no sessions")]
    SessionList {
        /// The database file, so the operator knows which one to fix.
        path: String,
        /// What SQLite said.
        cause: String,
    },
    /// The event log could not be opened.
    #[error("the event log {path} cannot be opened ({cause}): fix its permissions or free space; moving it aside starts an empty log and loses every consumer's position")]
    EventLog {
        /// The database file, so the operator knows which one to fix.
        path: String,
        /// What SQLite said.
        cause: String,
    },
    /// Server setup failed.
    #[error("grpc server failed: {0}")]
    Server(String),
    /// A watched long-lived task ended while the daemon was not shutting down.
    #[error("{0}: exiting so that it is restarted")]
    CoreEnded(String),
}

/// Where the daemon listens, each bound by the caller (`main` from the flags, a
/// test on `127.0.0.1:0`).
pub struct Listeners {
    /// gRPC (`--listen`): every service, health and reflection.
    pub grpc: TcpListener,
    /// The admin port (`--admin-listen`): `/livez`, `/readyz`, `/metrics`.
    pub admin: TcpListener,
    /// The link page (`--link-listen`); None switches it off (CreateLinkUrl then
    /// says how to switch it on).
    pub link: Option<TcpListener>,
}

/// The emulator for a config (the one `run` builds when given none).
pub fn emulator_for(config: &Config, data: DataDir) -> Emulator {
    let timings = EmulatorConfig {
        first_ttl: config.emulator_first_qr_ttl,
        next_ttl: config.emulator_next_qr_ttl,
        qr_count: config.emulator_qr_count,
        step_delay: config.emulator_qr_delay,
        rate_limit_pause: config.rate_limit_pause,
    };
    Emulator::new(timings, data)
}

/// Opens the data dir named in `config`.
pub fn open_data_dir(config: &Config) -> Result<DataDir, StartError> {
    DataDir::open(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })
}

/// Parts a caller (a test, an embedding) may supply and keep a handle on.
#[derive(Clone, Default)]
pub struct Wiring {
    /// With the emulator backend: the emulator to use (built from the config if
    /// None), so a test can steer it.
    pub emulator: Option<Emulator>,
    /// The daemon's metrics (a test scrapes them without the admin port).
    pub metrics: Arc<Metrics>,
    /// Whether the daemon should get traffic (`/readyz`) and is alive (`/livez`).
    pub readiness: Arc<Readiness>,
    /// The registry actor once it runs (a test may stop it to see the process go).
    pub registry: Arc<std::sync::OnceLock<ActorCell>>,
    /// The session list's page quota (none by default; a test fills the "disk" with it).
    pub db_quota: PageQuota,
}

/// Runs the daemon on `listeners` until `shutdown` resolves, then drains within the
/// grace period. The gRPC server and admin port answer at once, but report
/// NOT_SERVING / 503 (and refuse session calls as UNAVAILABLE) until every session is
/// restored.
pub async fn run(
    listeners: Listeners,
    config: Config,
    wiring: Wiring,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let mut watched = Watched::default();
    let admin = Admin {
        metrics: wiring.metrics.clone(),
        readiness: wiring.readiness.clone(),
    };
    watched.spawn("the admin port", listener_failed(admin.serve(listeners.admin)));
    let data = open_data_dir(&config)?;
    let emulator = emulator_of(&config, &wiring, &data);
    let backend = backend_for(&config, emulator.clone(), &data, &wiring.metrics);
    let door = Sessions::new(config.qr_timeout.max(config.refresh_timeout));
    let link = match listeners.link {
        Some(listener) => Some(link_page(&config, listener, &data, &door, &wiring.metrics)?),
        None => None,
    };
    let log_slot = LogSlot::default();
    let campaign_slot = CampaignSlot::default();
    let front = Front {
        door: door.clone(),
        // The wiring's emulator is served with the real backend too (tests drive
        // CrashSession through it); production wires none.
        emulator: emulator.or_else(|| wiring.emulator.clone()),
        links: link.as_ref().map(LinkService::issuer),
        log_slot: log_slot.clone(),
        campaign_slot: campaign_slot.clone(),
    };
    let server = grpc::start(listeners.grpc, &config, wiring.metrics.clone(), front, &mut watched).await?;
    if let Some(page) = link {
        watched.spawn("the link page", listener_failed(page.serve()));
    }
    info!(addr = %server.addr, backend = ?config.backend, data_dir = %config.data_dir.display(), "wa-sessiond listening; restoring sessions");

    let mut shutdown = std::pin::pin!(shutdown);
    let started = tokio::select! {
        opened = stores::start(&config, data, backend, &wiring, door.table()) => Some(opened?),
        () = &mut shutdown => None,
        ended = watched.first_ended() => return Err(core_ended(&wiring, &ended)),
    };
    let running = match started {
        Some((core, registry_task)) => {
            core.watch(registry_task, &config, &mut watched);
            let _ = log_slot.set(core.log.clone());
            let _ = wiring.registry.set(core.registry.get_cell());
            door.open(core.registry.clone());
            let runner = Campaigns::new(core.log.clone(), door.clone(), wiring.metrics.clone());
            // Pacers for every session with a campaign to run (after a restart too).
            drop(runner.start());
            let _ = campaign_slot.set(runner);
            server.set_serving(true).await;
            wiring.readiness.mark_restored();
            info!(addr = %server.addr, "wa-sessiond ready");
            tokio::select! {
                () = &mut shutdown => {}
                ended = watched.first_ended() => return Err(core_ended(&wiring, &ended)),
            }
            Some(core)
        }
        None => None,
    };
    drain(&config, &wiring, &server, running, watched).await
}

/// How long calls are still answered UNAVAILABLE on open connections once the
/// sessions are closed, before the gRPC server sends GOAWAY.
const DRAIN_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Stops taking calls, closes the sessions without logging out and waits for the
/// registry and the gRPC server to end, within the grace period; the other watched
/// tasks (the admin port answering 503 on /readyz meanwhile) end with it.
async fn drain(
    config: &Config,
    wiring: &Wiring,
    server: &Serving,
    core: Option<Core>,
    mut watched: Watched,
) -> Result<(), StartError> {
    info!(grace = ?config.shutdown_grace, "shutting down: closing sessions without logging out");
    server.set_serving(false).await;
    wiring.readiness.mark_draining();
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        // The sessions close first: meanwhile a new call on an open connection is
        // answered UNAVAILABLE by the registry, and the calls in flight are answered.
        // Then, for DRAIN_LINGER, calls are still answered UNAVAILABLE before the
        // server stops and sends GOAWAY: a call a client sends right after the
        // SIGTERM gets a retryable UNAVAILABLE, not a transport error (tonic reports
        // a stream refused by GOAWAY as INTERNAL or CANCELLED).
        let mut ended = Vec::new();
        if let Some(running) = &core {
            running.registry.stop(Some("shutdown".into()));
            ended = watched.until_part_ended(REGISTRY, &[GRPC_SERVER]).await;
            tokio::time::sleep(DRAIN_LINGER).await;
        }
        server.stop();
        ended.extend(watched.until_ended(&[GRPC_SERVER]).await);
        ended
    })
    .await;
    drop(watched);
    drop(core);
    match drained.as_deref().map(server_failure) {
        Ok(None) => info!("shut down cleanly"),
        Ok(Some(failure)) => return Err(StartError::Server(failure)),
        Err(_) => warn!("shutdown grace period passed; exiting anyway"),
    }
    Ok(())
}

/// With the emulator backend: the wiring's emulator, or one built from the config.
fn emulator_of(config: &Config, wiring: &Wiring, data: &DataDir) -> Option<Emulator> {
    match config.backend {
        BackendKind::Emulator => Some(
            wiring
                .emulator
                .clone()
                .unwrap_or_else(|| emulator_for(config, data.clone())),
        ),
        BackendKind::Whatsapp => None,
    }
}

/// The backend sessions connect through (the emulator, or WhatsApp), its connects
/// paced to `--max-concurrent-connects` and its pairings to
/// `--max-concurrent-pairings`.
fn backend_for(
    config: &Config,
    emulator: Option<Emulator>,
    data: &DataDir,
    metrics: &Arc<Metrics>,
) -> Arc<dyn Backend> {
    let direct: Arc<dyn Backend> = match emulator {
        Some(emulator) => Arc::new(emulator),
        None => {
            let versions = match config.wa_version {
                Some(pinned) => WaVersions::pinned(pinned, metrics.clone()),
                None => WaVersions::resolving(
                    data.root().to_owned(),
                    config.wa_version_url.clone(),
                    config.wa_version_refresh,
                    metrics.clone(),
                ),
            };
            Arc::new(WhatsappBackend::new(
                data.clone(),
                versions,
                config.whatsapp_url.clone(),
                config.rate_limit_pause,
            ))
        }
    };
    let widths = Widths {
        connects: config.max_concurrent_connects as usize,
        pairings: config.max_concurrent_pairings as usize,
    };
    Arc::new(Paced::new(direct, widths, metrics.clone()))
}

/// The link page on `listener`, its signing key read (or made) in the data dir.
fn link_page(
    config: &Config,
    listener: TcpListener,
    data: &DataDir,
    door: &Sessions,
    metrics: &Arc<Metrics>,
) -> Result<LinkService, StartError> {
    LinkService::prepare(&config.link, listener, data.root(), door.clone(), metrics.clone()).map_err(|source| {
        StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        }
    })
}

/// Notes that a watched task ended by itself: not live, not ready, and the reason
/// `run` returns.
fn core_ended(wiring: &Wiring, ended: &Ended) -> StartError {
    let how = ended.how();
    wiring.readiness.mark_dead(ended.what);
    error!(
        part = ended.what,
        how, "a long-lived part of the daemon ended while it was running"
    );
    StartError::CoreEnded(format!("{} ended unexpectedly ({how})", ended.what))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = term => info!("SIGTERM received"),
    }
}
