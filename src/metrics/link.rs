//! The link page's metrics: pages viewed, feeds open, new codes and pairing codes
//! given, and requests refused, by why (`reason`). The page counts; `/metrics`
//! shows them under `wa_sessiond_link_*`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Why the link page refused a request.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    /// `forged`, `expired`, `deleted`, `revoked`, `unavailable`, `rate_limited`,
    /// `client_connections`, `link_feeds`, `cross_site`, `slow_body`, `body_too_large`.
    pub reason: &'static str,
}

/// Every reason a refusal is counted under (each series shown from the start).
pub const REFUSAL_REASONS: [&str; 11] = [
    "forged",
    "expired",
    "deleted",
    "revoked",
    "unavailable",
    "rate_limited",
    "client_connections",
    "link_feeds",
    "cross_site",
    "slow_body",
    "body_too_large",
];

/// The link page's counters and its one gauge.
#[derive(Debug, Default)]
pub struct LinkMetrics {
    /// Pages served to a link that works.
    page_views: Counter,
    /// Live feeds whose response is still open.
    feeds_open: Gauge,
    /// New codes given (`POST …/refresh` answered 200).
    refreshes: Counter,
    /// Pairing codes given.
    pairing_codes: Counter,
    /// Requests refused, by reason.
    refusals: Family<Refusal, Counter>,
}

impl LinkMetrics {
    /// Registers `link_page_views`, `link_feeds_open`, `link_refreshes`,
    /// `link_pairing_codes` and `link_refusals{reason}`.
    pub(super) fn register(&self, registry: &mut Registry) {
        for reason in REFUSAL_REASONS {
            drop(self.refusals.get_or_create(&Refusal { reason }));
        }
        registry.register(
            "link_page_views",
            "Link pages served to a working link",
            self.page_views.clone(),
        );
        registry.register(
            "link_feeds_open",
            "Link page live feeds open now",
            self.feeds_open.clone(),
        );
        registry.register(
            "link_refreshes",
            "New codes given to link pages",
            self.refreshes.clone(),
        );
        registry.register(
            "link_pairing_codes",
            "Pairing codes given to link pages",
            self.pairing_codes.clone(),
        );
        registry.register(
            "link_refusals",
            "Link page requests refused, by reason",
            self.refusals.clone(),
        );
    }

    /// A page was served.
    pub fn page_viewed(&self) {
        self.page_views.inc();
    }

    /// A feed opened; it counts until the guard is dropped.
    pub fn feed_opened(&self) -> FeedOpen {
        self.feeds_open.inc();
        FeedOpen(self.feeds_open.clone())
    }

    /// Feeds open now.
    pub fn feeds_open(&self) -> i64 {
        self.feeds_open.get()
    }

    /// A new code was given.
    pub fn refreshed(&self) {
        self.refreshes.inc();
    }

    /// A pairing code was given.
    pub fn pairing_code_given(&self) {
        self.pairing_codes.inc();
    }

    /// A request was refused for `reason` (one of [`REFUSAL_REASONS`]).
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&Refusal { reason }).inc();
    }
}

/// One open feed in `link_feeds_open`, until dropped.
#[derive(Debug)]
pub struct FeedOpen(Gauge);

impl Drop for FeedOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}
