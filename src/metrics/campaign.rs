//! The campaigns' metrics: campaigns by state and pause reason and items by status
//! (gauges, refreshed from the tables by the campaign sweep), items handed to the
//! sessions, and the pace: one histogram of the gaps between a session's sends
//! (all sessions together: one series each, however many sessions) and one of the
//! gap's error (actual minus planned); and the numbers checked with WhatsApp
//! before sending (`skip_unregistered`): lookups (one usync query each), failed
//! lookups, and the numbers by verdict. `/metrics` shows them under
//! `wa_sessiond_campaign*`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// A campaign's state and pause reason (`none` unless PAUSED).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `RUNNING`, `PAUSED`, `DONE`, `CANCELLED`.
    pub state: String,
    /// `OPERATOR`, `SESSION_NOT_CONNECTED`, ... or `none`.
    pub reason: String,
}

/// An item status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabel {
    /// `PENDING`, `SENT`, `SERVER_ACK`, ...
    pub status: &'static str,
}

/// A number's verdict from a lookup.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabel {
    /// `registered`, `unregistered` or `unknown` (WhatsApp did not answer about it).
    pub result: &'static str,
}

/// Gap buckets, in seconds: interval 0 up to minutes.
const GAP_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 300.0,
];

/// Gap error buckets, in seconds (the error is never negative: a send never goes
/// before its planned time).
const ERROR_BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The campaigns' metrics.
#[derive(Debug)]
pub struct CampaignMetrics {
    campaigns: Family<StateLabels, Gauge>,
    items: Family<ItemLabel, Gauge>,
    sends: Counter,
    gaps: Histogram,
    gap_errors: Histogram,
    lookups: Counter,
    lookup_failures: Counter,
    checks: Family<CheckLabel, Counter>,
}

impl Default for CampaignMetrics {
    fn default() -> Self {
        Self {
            campaigns: Family::default(),
            items: Family::default(),
            sends: Counter::default(),
            gaps: Histogram::new(GAP_BUCKETS),
            gap_errors: Histogram::new(ERROR_BUCKETS),
            lookups: Counter::default(),
            lookup_failures: Counter::default(),
            checks: Family::default(),
        }
    }
}

impl CampaignMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "campaigns",
            "Campaigns by state and pause reason",
            self.campaigns.clone(),
        );
        registry.register("campaign_items", "Campaign items by status", self.items.clone());
        registry.register(
            "campaign_sends",
            "Campaign items the pacers handed to their sessions",
            self.sends.clone(),
        );
        registry.register_with_unit(
            "campaign_gap",
            "Gaps between a session's consecutive campaign sends (all sessions)",
            Unit::Seconds,
            self.gaps.clone(),
        );
        registry.register_with_unit(
            "campaign_gap_error",
            "How much later than planned a campaign send went",
            Unit::Seconds,
            self.gap_errors.clone(),
        );
        registry.register(
            "campaign_number_lookups",
            "usync contact queries WhatsApp answered the pacers (skip_unregistered), up to 50 numbers each",
            self.lookups.clone(),
        );
        registry.register(
            "campaign_number_lookup_failures",
            "usync contact queries that failed (the items wait and are checked again)",
            self.lookup_failures.clone(),
        );
        registry.register(
            "campaign_number_checks",
            "Numbers asked of WhatsApp by the pacers, by result",
            self.checks.clone(),
        );
    }

    /// A lookup answered: how many numbers were registered, unregistered and not
    /// answered about.
    pub fn checked(&self, registered: u64, unregistered: u64, unknown: u64) {
        self.lookups.inc();
        for (result, count) in [
            ("registered", registered),
            ("unregistered", unregistered),
            ("unknown", unknown),
        ] {
            self.checks.get_or_create(&CheckLabel { result }).inc_by(count);
        }
    }

    /// A lookup failed (not counted among the lookups answered).
    pub fn lookup_failed(&self) {
        self.lookup_failures.inc();
    }

    /// Replaces the campaign and item gauges with these counts.
    pub fn set_counts(&self, campaigns: &[(StateLabels, i64)], items: &[(&'static str, i64)]) {
        self.campaigns.clear();
        for (labels, count) in campaigns {
            self.campaigns.get_or_create(labels).set(*count);
        }
        for (status, count) in items {
            self.items.get_or_create(&ItemLabel { status }).set(*count);
        }
    }

    /// A pacer handed an item to its session; `gap` since the session's previous
    /// send, `late` after its planned time.
    pub fn sent(&self, gap: Option<std::time::Duration>, late: std::time::Duration) {
        self.sends.inc();
        if let Some(gap) = gap {
            self.gaps.observe(gap.as_secs_f64());
        }
        self.gap_errors.observe(late.as_secs_f64());
    }
}
