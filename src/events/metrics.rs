//! The event log's metrics: events appended by kind, bytes kept, the oldest event's
//! age, each consumer's lag (events between its acked position and the head), and
//! the messages sessions sent, by status reached and by WhatsApp's nack code.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::EventKind;

/// A `kind` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    /// `message`, `receipt` or `status`.
    kind: &'static str,
}

/// A `consumer` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabel {
    /// The consumer's name.
    consumer: String,
}

/// A `status` label (`sent`, `server_ack`, `failed`...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// A `code` label: WhatsApp's nack code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// The event log's metrics (registered into the daemon's registry).
#[derive(Debug, Default)]
pub struct EventMetrics {
    appended: Family<KindLabel, Counter>,
    bytes: Gauge,
    oldest_age_seconds: Gauge,
    consumer_lag: Family<ConsumerLabel, Gauge>,
    outbound: Family<StatusLabel, Counter>,
    nacks: Family<CodeLabel, Counter>,
    /// Campaign items, by each status their messages reached.
    campaign_items: Family<StatusLabel, Counter>,
    /// Commits of inbound messages (the real backend's durability hook) that failed
    /// or timed out; each is retried.
    inbound_commit_failures: Counter,
}

fn status_label(status: i32) -> StatusLabel {
    use crate::proto::MessageStatus as S;
    let status = match S::try_from(status).unwrap_or(S::Unspecified) {
        S::Queued => "queued",
        S::Sent => "sent",
        S::ServerAck => "server_ack",
        S::Delivered => "delivered",
        S::Read => "read",
        S::Played => "played",
        S::Failed => "failed",
        S::Unspecified => "unspecified",
    };
    StatusLabel { status }
}

fn label(kind: EventKind) -> KindLabel {
    let kind = match kind {
        EventKind::Message => "message",
        EventKind::Receipt => "receipt",
        EventKind::Status => "status",
        EventKind::Outbound => "outbound",
        EventKind::Health => "health",
        EventKind::Unspecified => "unspecified",
    };
    KindLabel { kind }
}

impl EventMetrics {
    /// Registers them under `wa_sessiond_events_*`.
    pub fn register(&self, ours: &mut Registry) {
        for kind in [
            EventKind::Message,
            EventKind::Receipt,
            EventKind::Status,
            EventKind::Outbound,
            EventKind::Health,
        ] {
            drop(self.appended.get_or_create(&label(kind)));
        }
        ours.register(
            "events_appended",
            "Events written to the event log, by kind (redeliveries already in it not counted)",
            self.appended.clone(),
        );
        ours.register(
            "events_log_bytes",
            "Bytes the event log keeps (bodies and rows, estimated)",
            self.bytes.clone(),
        );
        ours.register(
            "events_oldest_age_seconds",
            "Age of the oldest event kept (0: none)",
            self.oldest_age_seconds.clone(),
        );
        ours.register(
            "outbound_messages",
            "Messages sessions sent, by each status they reached (queued, sent, server_ack, delivered, read, played, failed)",
            self.outbound.clone(),
        );
        ours.register(
            "campaign_item_statuses",
            "Campaign items, by each status their messages reached (sent, server_ack, delivered, read, played, failed)",
            self.campaign_items.clone(),
        );
        ours.register(
            "outbound_nacks",
            "Sends WhatsApp refused, by its code (e.g. 463: new chats barred)",
            self.nacks.clone(),
        );
        ours.register(
            "events_inbound_commit_failures",
            "Commits of inbound messages that failed or timed out (each retried; see the README)",
            self.inbound_commit_failures.clone(),
        );
        ours.register(
            "events_consumer_lag",
            "Events between a consumer's acked position and the newest event",
            self.consumer_lag.clone(),
        );
    }

    /// `n` events of `kind` were committed.
    pub fn appended(&self, kind: EventKind, n: u64) {
        if n > 0 {
            self.appended.get_or_create(&label(kind)).inc_by(n);
        }
    }

    /// A message reached `status` (a `MessageStatus`); `code` is WhatsApp's nack
    /// code for a refusal (0: none).
    pub fn outbound(&self, status: i32, code: u32) {
        self.outbound.get_or_create(&status_label(status)).inc();
        if code != 0 {
            self.nacks.get_or_create(&CodeLabel { code: code.to_string() }).inc();
        }
    }

    /// A campaign item's message reached `status` (a `MessageStatus`).
    pub fn campaign_item(&self, status: i32) {
        self.campaign_items.get_or_create(&status_label(status)).inc();
    }

    /// A commit of inbound messages failed (it is retried).
    pub fn inbound_commit_failed(&self) {
        self.inbound_commit_failures.inc();
    }

    /// The log keeps `bytes`.
    pub fn set_bytes(&self, bytes: u64) {
        self.bytes.set(bytes as i64);
    }

    /// The oldest event kept is `seconds` old.
    pub fn set_oldest_age(&self, seconds: u64) {
        self.oldest_age_seconds.set(seconds as i64);
    }

    /// `consumer` was deleted: its series goes.
    pub fn consumer_deleted(&self, consumer: &str) {
        self.consumer_lag.remove(&ConsumerLabel {
            consumer: consumer.to_owned(),
        });
    }

    /// `consumer` acked `position` with the head at `head`.
    pub fn consumer_acked(&self, consumer: &str, head: u64, position: u64) {
        let lag = head.saturating_sub(position) as i64;
        self.consumer_lag
            .get_or_create(&ConsumerLabel {
                consumer: consumer.to_owned(),
            })
            .set(lag);
    }
}
