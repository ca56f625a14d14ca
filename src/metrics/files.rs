//! The open-files gauges: files the process holds and its limit, read at each
//! scrape (so a leak or a creeping total shows before sessions stall).

use prometheus_client::{metrics::gauge::Gauge, registry::Registry};

/// Open files and the limit.
#[derive(Debug, Default)]
pub struct FileGauges {
    open: Gauge,
    limit: Gauge,
}

impl FileGauges {
    /// Registers `open_files` and `open_files_limit`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register("open_files", "Files the daemon holds open", self.open.clone());
        registry.register(
            "open_files_limit",
            "The daemon's open-files limit (soft, after raising it to the hard limit at start)",
            self.limit.clone(),
        );
    }

    /// Reads both now.
    pub(super) fn refresh(&self) {
        if let Some(open) = crate::files::open_now() {
            self.open.set(open as i64);
        }
        if let Some(limit) = crate::files::limit() {
            self.limit.set(limit.min(i64::MAX as u64) as i64);
        }
    }
}
