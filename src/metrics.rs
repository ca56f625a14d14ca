//! The daemon's metrics, in Prometheus form (prometheus-client): sessions by status,
//! QR codes, pairings, restarts, reconnects, logouts, session crashes, watchers, the pacing gates
//! (`gates`), the link page (`link`) and gRPC calls by method and code. Each event is one method here, called from one
//! place; `/metrics` on the admin port serves `encode`.

mod campaign;
mod files;
mod gates;
mod grpc;
mod link;
mod version;

use std::sync::Arc;

use prometheus_client::{
    encoding::{text, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

pub use self::{
    campaign::{CampaignMetrics, StateLabels},
    files::FileGauges,
    gates::GateGauges,
    grpc::MethodMeter,
    link::{FeedOpen, LinkMetrics},
    version::VersionGauges,
};
use crate::domain::status::{DisconnectReason, Status, ALL_STATUSES as STATUSES};
use crate::events::metrics::EventMetrics;

/// Latency buckets of gRPC calls, in seconds: from a cache hit to a QR wait.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0,
];

/// A `status` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    /// The API's status name without its prefix, e.g. `QR_WAITING`.
    status: &'static str,
}

/// A `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    /// The API's disconnect reason without its prefix, e.g. `CONNECTION_LOST`.
    reason: &'static str,
}

/// Who logged a session out.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Logout {
    /// `phone` (unlinked on the phone, 401) or `request` (LogoutSession).
    pub origin: &'static str,
}

impl Logout {
    /// Unlinked on the phone (401).
    pub const PHONE: Logout = Logout { origin: "phone" };
    /// LogoutSession.
    pub const REQUEST: Logout = Logout { origin: "request" };
}

/// The labels of a gRPC method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    /// `wasessiond.v1.SessionService`, or `unknown`.
    grpc_service: String,
    /// `CreateSession`, or `unknown`.
    grpc_method: String,
}

/// The labels of a finished gRPC call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// `wasessiond.v1.SessionService`, or `unknown`.
    grpc_service: String,
    /// `CreateSession`, or `unknown`.
    grpc_method: String,
    /// `OK`, `NotFound`, ... (as grpc-go names them).
    grpc_code: &'static str,
}

/// A histogram family's constructor.
type NewHistogram = fn() -> Histogram;

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Where every metric is registered, for encoding.
    registry: Registry,
    /// Watch streams attached right now.
    watchers: Gauge,
    /// Sessions by status.
    sessions: Family<StatusLabel, Gauge>,
    /// QR codes received from WhatsApp.
    qr_issued: Counter,
    /// Pairing connections after the first of a session's run.
    qr_regenerations: Counter,
    /// Phones that scanned a code (pair-success).
    pairings: Counter,
    /// 515 "restart required" reconnects.
    restart_required: Counter,
    /// Reconnects with backoff, by why the connection ended.
    reconnects: Family<ReasonLabel, Counter>,
    /// Logouts by origin.
    logouts: Family<Logout, Counter>,
    /// Session actors that crashed.
    session_crashes: Counter,
    /// Session actors started again by the registry after a crash.
    session_restarts: Counter,
    /// Connection attempts of linked sessions (restores, reconnects, the 515
    /// restart) at the `--max-concurrent-connects` gate.
    pub connects: GateGauges,
    /// Pairing connections (sessions without stored credentials) at the
    /// `--max-concurrent-pairings` gate.
    pub pairing_connects: GateGauges,
    /// Finished gRPC calls.
    grpc_handled: Family<CallLabels, Counter>,
    /// gRPC call durations, to the end of the response.
    grpc_seconds: Family<MethodLabels, Histogram, NewHistogram>,
    /// The event log's.
    pub events: Arc<EventMetrics>,
    /// Open files and the limit.
    files: FileGauges,
    /// The link page's.
    pub link: LinkMetrics,
    /// The WhatsApp Web version in use (real backend).
    pub whatsapp_version: VersionGauges,
    /// The campaigns'.
    pub campaigns: CampaignMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            watchers: Gauge::default(),
            sessions: Family::default(),
            qr_issued: Counter::default(),
            qr_regenerations: Counter::default(),
            pairings: Counter::default(),
            restart_required: Counter::default(),
            reconnects: Family::default(),
            logouts: Family::default(),
            session_crashes: Counter::default(),
            session_restarts: Counter::default(),
            connects: GateGauges::default(),
            pairing_connects: GateGauges::default(),
            grpc_handled: Family::default(),
            grpc_seconds: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            events: Arc::default(),
            files: FileGauges::default(),
            link: LinkMetrics::default(),
            whatsapp_version: VersionGauges::default(),
            campaigns: CampaignMetrics::default(),
        };
        metrics.registered()
    }
}

impl Metrics {
    fn registered(mut self) -> Self {
        for status in STATUSES {
            drop(self.sessions.get_or_create(&status_label(status)));
        }
        for origin in [Logout::PHONE, Logout::REQUEST] {
            drop(self.logouts.get_or_create(&origin));
        }
        let ours = self.registry.sub_registry_with_prefix("wa_sessiond");
        self.events.register(ours);
        self.files.register(ours);
        self.link.register(ours);
        self.whatsapp_version.register(ours);
        self.campaigns.register(ours);
        ours.register("sessions", "Sessions by status", self.sessions.clone());
        ours.register("watchers", "Watch streams attached", self.watchers.clone());
        ours.register(
            "qr_codes_issued",
            "QR codes received from WhatsApp",
            self.qr_issued.clone(),
        );
        ours.register(
            "qr_regenerations",
            "Pairing connections started for fresh QR codes after a session's first (lazy regeneration, RefreshQr, watchers keeping the QR fresh)",
            self.qr_regenerations.clone(),
        );
        ours.register(
            "pairings_completed",
            "Phones that linked a session (pair-success)",
            self.pairings.clone(),
        );
        ours.register(
            "restart_required",
            "Reconnects for WhatsApp's 515 restart required after pairing",
            self.restart_required.clone(),
        );
        ours.register(
            "reconnects",
            "Reconnects with backoff, by why the connection ended",
            self.reconnects.clone(),
        );
        ours.register("logouts", "Logouts, by origin", self.logouts.clone());
        ours.register(
            "session_crashes",
            "Session actors that crashed",
            self.session_crashes.clone(),
        );
        ours.register(
            "session_restarts",
            "Session actors restarted by the registry after a crash",
            self.session_restarts.clone(),
        );
        let linked = "Connection attempts of linked sessions (restores, reconnects)";
        self.connects
            .register(ours, "connects", linked, "max-concurrent-connects");
        let pairing = "Pairing connections (sessions without stored credentials)";
        self.pairing_connects
            .register(ours, "pairing_connects", pairing, "max-concurrent-pairings");
        self.registry.register(
            "grpc_server_handled",
            "gRPC calls finished, by method and code",
            self.grpc_handled.clone(),
        );
        self.registry.register_with_unit(
            "grpc_server_handling",
            "gRPC call duration to the end of the response (for streams, their lifetime)",
            Unit::Seconds,
            self.grpc_seconds.clone(),
        );
        self
    }

    /// The text exposition (OpenMetrics) of every metric.
    pub fn encode(&self) -> String {
        self.files.refresh();
        self.whatsapp_version.refresh();
        let mut out = String::new();
        text::encode(&mut out, &self.registry).expect("writing to a string cannot fail");
        out
    }

    /// The most connection attempts of linked sessions that were in flight at once.
    pub fn connects_in_flight_peak(&self) -> i64 {
        self.connects.in_flight_peak()
    }

    /// Watch streams attached right now.
    pub fn watchers(&self) -> i64 {
        self.watchers.get()
    }

    pub(crate) fn watcher_attached(&self) {
        self.watchers.inc();
    }

    pub(crate) fn watcher_released(&self) {
        self.watchers.dec();
    }

    /// Sessions with `status` right now.
    pub fn sessions(&self, status: Status) -> i64 {
        self.sessions.get_or_create(&status_label(status)).get()
    }

    /// A QR code arrived from WhatsApp.
    pub(crate) fn qr_issued(&self) {
        self.qr_issued.inc();
    }

    /// A pairing connection of `generation` started: past the first, a regeneration.
    pub(crate) fn pairing_connection_started(&self, generation: u64) {
        if generation > 1 {
            self.qr_regenerations.inc();
        }
    }

    /// A phone linked a session.
    pub(crate) fn pairing_completed(&self) {
        self.pairings.inc();
    }

    /// A 515 restart-required reconnect.
    pub(crate) fn restart_required(&self) {
        self.restart_required.inc();
    }

    /// A reconnect with backoff after a connection ended for `reason`.
    pub(crate) fn reconnect_scheduled(&self, reason: DisconnectReason) {
        let reason = reason.wire_name().trim_start_matches("DISCONNECT_REASON_");
        self.reconnects.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A session was logged out.
    pub(crate) fn logged_out(&self, origin: Logout) {
        self.logouts.get_or_create(&origin).inc();
    }

    /// A session actor crashed.
    pub(crate) fn session_crashed(&self) {
        self.session_crashes.inc();
    }

    /// The registry started a crashed session again.
    pub(crate) fn session_restarted(&self) {
        self.session_restarts.inc();
    }

    fn status_gauge(&self, status: Status) -> Gauge {
        self.sessions.get_or_create(&status_label(status)).clone()
    }
}

fn status_label(status: Status) -> StatusLabel {
    StatusLabel {
        status: status.wire_name().trim_start_matches("SESSION_STATUS_"),
    }
}

/// One session counted in `wa_sessiond_sessions{status}`: it moves with the
/// session's status and leaves the count when dropped (stopped, deleted, crashed).
/// A session waiting to restart after a crash is in no status until it is back.
#[derive(Debug)]
pub struct SessionCount {
    /// Where it is counted.
    metrics: Arc<Metrics>,
    /// The status it is counted under.
    status: Status,
}

impl SessionCount {
    /// Counts a session under `status`.
    pub fn new(metrics: Arc<Metrics>, status: Status) -> Self {
        metrics.status_gauge(status).inc();
        Self { metrics, status }
    }

    /// Moves the session to `status`.
    pub fn set(&mut self, status: Status) {
        if status == self.status {
            return;
        }
        self.metrics.status_gauge(self.status).dec();
        self.metrics.status_gauge(status).inc();
        self.status = status;
    }
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.metrics.status_gauge(self.status).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_session_moves_between_statuses_and_leaves_when_dropped() {
        let metrics = Arc::new(Metrics::default());
        let mut count = SessionCount::new(metrics.clone(), Status::Starting);
        count.set(Status::QrWaiting);
        count.set(Status::QrWaiting);
        assert_eq!(metrics.sessions(Status::Starting), 0);
        assert_eq!(metrics.sessions(Status::QrWaiting), 1);
        drop(count);
        assert_eq!(metrics.sessions(Status::QrWaiting), 0);
    }

    #[test]
    fn the_exposition_names_every_status_and_the_grpc_calls() {
        let metrics = Metrics::default();
        metrics.grpc_meter("wasessiond.v1.SessionService", "GetSession").record(
            tonic::Code::Ok,
            "OK",
            std::time::Duration::from_millis(3),
        );
        metrics.reconnect_scheduled(DisconnectReason::ConnectionLost);
        let text = metrics.encode();
        assert!(text.contains("wa_sessiond_sessions{status=\"QR_WAITING\"} 0"), "{text}");
        assert!(
            text.contains("wa_sessiond_reconnects_total{reason=\"CONNECTION_LOST\"} 1"),
            "{text}"
        );
        assert!(text.contains("wa_sessiond_logouts_total{origin=\"phone\"} 0"), "{text}");
        let handled = "grpc_server_handled_total{grpc_service=\"wasessiond.v1.SessionService\",grpc_method=\"GetSession\",grpc_code=\"OK\"} 1";
        assert!(text.contains(handled), "{text}");
        assert!(text.contains("grpc_server_handling_seconds_bucket{"), "{text}");
    }
}
