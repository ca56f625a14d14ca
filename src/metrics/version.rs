//! The WhatsApp Web version the real backend announces: which one and where it
//! came from (`whatsapp_version_info`), and how old its resolution is
//! (`whatsapp_version_age_seconds`, read at each scrape).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

/// The labels of the version in use.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    /// `2.3000.1042742319`.
    version: String,
    /// `pinned`, `resolved`, `stored` or `builtin`.
    source: &'static str,
}

/// The version in use and the age of its resolution.
#[derive(Debug, Default)]
pub struct VersionGauges {
    /// 1 for the version in use, labelled with it and its source; nothing else.
    info: Family<VersionLabels, Gauge>,
    /// Seconds since the version in use was resolved from sw.js; -1 when it never
    /// was (pinned, built in).
    age: Gauge,
    /// When it was resolved, in Unix seconds (0: never).
    resolved_at: AtomicU64,
}

impl VersionGauges {
    /// Registers `whatsapp_version_info` and `whatsapp_version_age_seconds`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "whatsapp_version_info",
            "The WhatsApp Web version the real backend announces (1), by where it came from: pinned (--wa-version), resolved (sw.js, this run), stored (the data dir's last resolution) or builtin",
            self.info.clone(),
        );
        registry.register(
            "whatsapp_version_age_seconds",
            "Seconds since the version in use was resolved from WhatsApp Web's sw.js (-1: never, pinned or built in)",
            self.age.clone(),
        );
        self.age.set(-1);
    }

    /// The version in use is now `version`, from `source`, resolved at
    /// `resolved_at` (none for pinned and built-in versions).
    pub fn set(&self, version: String, source: &'static str, resolved_at: Option<SystemTime>) {
        self.info.clear();
        self.info.get_or_create(&VersionLabels { version, source }).set(1);
        let secs = resolved_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        self.resolved_at.store(secs, Ordering::Relaxed);
        self.refresh();
    }

    /// Reads the age now.
    pub(super) fn refresh(&self) {
        let resolved_at = self.resolved_at.load(Ordering::Relaxed);
        if resolved_at == 0 {
            self.age.set(-1);
            return;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.age
            .set(i64::try_from(now.saturating_sub(resolved_at)).unwrap_or(i64::MAX));
    }
}
