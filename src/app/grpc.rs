//! The daemon's gRPC front, started before the sessions are restored: SessionService,
//! EventService, CampaignService, EmulatorService (with the emulator backend), health and reflection
//! on the transport `grpc::server` builds. It answers NOT_SERVING until `run` says
//! the sessions are restored, and stops taking calls when the drain begins.

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::watch};
use tonic::transport::server::TcpIncoming;
use tonic_health::{server::HealthReporter, ServingStatus};

use super::{
    watch::{Ended, Watched},
    StartError,
};
use crate::{
    backend::emulator::Emulator,
    config::Config,
    grpc::{
        auth::BearerAuth,
        campaign_service::{CampaignApi, CampaignSlot},
        emulator_service::EmulatorApi,
        event_service::{EventApi, LogSlot},
        server,
        session_service::SessionApi,
    },
    link::LinkIssuer,
    metrics::Metrics,
    proto::{
        campaign_service_server::CampaignServiceServer, emulator_service_server::EmulatorServiceServer,
        event_service_server::EventServiceServer, session_service_server::SessionServiceServer,
    },
    registry::Sessions,
    transfer::MediaSettings,
};

/// The gRPC server, as the watch list and `/livez` name it.
pub const GRPC_SERVER: &str = "the grpc server";

/// What the services are built on.
pub struct Front {
    /// The door every session call goes through (refusing as UNAVAILABLE until the
    /// registry runs and `run` opens it).
    pub door: Sessions,
    /// With the emulator backend: the emulator EmulatorService steers.
    pub emulator: Option<Emulator>,
    /// Makes CreateLinkUrl's links; None when the link page is switched off.
    pub links: Option<LinkIssuer>,
    /// Where EventService finds the event log once it is open.
    pub log_slot: LogSlot,
    /// Where CampaignService finds the campaign runner once it runs.
    pub campaign_slot: CampaignSlot,
}

/// The running server's controls.
pub struct Serving {
    /// Sets what `grpc.health.v1` answers, overall and for SessionService.
    health: HealthReporter,
    /// True from the drain on: the server stops taking calls and event streams end
    /// (their clients resume from their cursors).
    stopping: watch::Sender<bool>,
    /// Where it listens (for the log lines).
    pub addr: SocketAddr,
}

impl Serving {
    /// Tells health checkers whether to send calls here.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status("", status).await;
        self.health
            .set_service_status(
                <SessionServiceServer<SessionApi> as tonic::server::NamedService>::NAME,
                status,
            )
            .await;
    }

    /// No new calls; the ones in flight are answered, then the server task ends.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// The error the gRPC server ended with, among the parts a drain saw end.
pub fn server_failure(ended: &[Ended]) -> Option<String> {
    ended
        .iter()
        .filter(|part| part.what == GRPC_SERVER)
        .find_map(|part| part.outcome.clone().err())
}

/// Builds the services and starts serving `listener` as a watched task (NOT_SERVING).
pub async fn start(
    listener: TcpListener,
    config: &Config,
    metrics: Arc<Metrics>,
    front: Front,
    watched: &mut Watched,
) -> Result<Serving, StartError> {
    let addr = listener.local_addr().map_err(|e| StartError::Server(e.to_string()))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let (stopping, stopping_rx) = watch::channel(false);
    let serving = Serving { health, stopping, addr };
    serving.set_serving(false).await;
    let reflection_v1 = server::reflection(|builder| builder.build_v1()).map_err(StartError::Server)?;
    let reflection_v1alpha = server::reflection(|builder| builder.build_v1alpha()).map_err(StartError::Server)?;
    let auth = BearerAuth::new(config.edge.auth_token.as_ref());
    let max_request = config.edge.max_request_bytes as usize;
    let media = MediaSettings {
        caps: config.media.media_max_bytes.clone(),
        handle_ttl: config.media.media_handle_ttl,
        reupload_timeout: config.media.media_reupload_timeout,
        root: config.data_dir.clone(),
    };
    let sessions = SessionApi::new(front.door.clone(), front.log_slot.clone(), media).with_links(front.links);
    let sessions = SessionServiceServer::new(sessions);
    let events = EventServiceServer::new(EventApi::new(front.log_slot, front.door.clone(), stopping_rx.clone()));
    let campaigns = CampaignServiceServer::new(CampaignApi::new(front.campaign_slot));
    let emulator = front.emulator.map(|emulator| {
        let service = EmulatorServiceServer::new(EmulatorApi::new(emulator, front.door));
        auth.wrap(service.max_decoding_message_size(max_request))
    });
    let mut stopped = stopping_rx;
    let server = server::builder(&config.edge, metrics)
        .map_err(StartError::Server)?
        .add_service(health_service.max_decoding_message_size(max_request))
        .add_service(reflection_v1.max_decoding_message_size(max_request))
        .add_service(reflection_v1alpha.max_decoding_message_size(max_request))
        .add_service(auth.wrap(sessions.max_decoding_message_size(max_request)))
        .add_service(auth.wrap(events.max_decoding_message_size(max_request)))
        .add_service(auth.wrap(campaigns.max_decoding_message_size(max_request)))
        .add_optional_service(emulator)
        // Small responses go out at once (Nagle would hold them for a delayed ACK, ~40 ms).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
        });
    watched.spawn(GRPC_SERVER, async move { server.await.map_err(|e| e.to_string()) });
    Ok(serving)
}
