//! The WhatsApp Web version every client announces, shared by all sessions: pinned
//! by `--wa-version`, or resolved from WhatsApp Web's sw.js in the background (at
//! start, every `--wa-version-refresh`, and after a 405 "client outdated", at most
//! once a minute with concurrent 405s sharing one fetch). A connection never waits
//! for a resolution: until one succeeds it uses the stored one or the built-in
//! default, whichever is newer. The version in use is exported as metrics.

mod fetch;
pub mod stored;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{watch, Mutex},
    task::AbortHandle,
    time::Instant,
};
use tracing::{info, warn};
use whatsapp_rust::http::{HttpClient, UreqHttpClient};

use self::stored::{dotted, Stored};
use super::DEFAULT_WA_VERSION;
use crate::{config::VersionUrl, metrics::Metrics};

/// The least time between two fetches asked for by a 405.
pub const OUTDATED_REFETCH_GAP: Duration = Duration::from_secs(60);

/// Where the version in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--wa-version`.
    Pinned,
    /// Read from sw.js by this run.
    Resolved,
    /// The data dir's last resolution.
    Stored,
    /// The daemon's built-in default.
    Builtin,
}

impl Source {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pinned => "pinned",
            Source::Resolved => "resolved",
            Source::Stored => "stored",
            Source::Builtin => "builtin",
        }
    }
}

/// The version in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// What clients announce.
    pub version: (u32, u32, u32),
    /// Where it came from.
    pub source: Source,
    /// When it was read from sw.js (stored or resolved versions only).
    pub resolved_at: Option<SystemTime>,
}

/// How the version is resolved when it is not pinned.
struct Resolver {
    /// The sw.js URL.
    url: VersionUrl,
    /// The data dir, where the last resolution is kept.
    dir: PathBuf,
    /// whatsapp-rust's HTTP client (ureq), or a test's.
    http: Arc<dyn HttpClient>,
    /// When a 405 last asked for a fetch; held during that fetch so concurrent
    /// 405s wait for it instead of fetching again.
    last_outdated: Mutex<Option<Instant>>,
}

/// The shared state behind [`WaVersions`].
struct Inner {
    /// The version in use.
    current: watch::Sender<Current>,
    /// None when pinned.
    resolver: Option<Resolver>,
    /// Where the version in use is exported.
    metrics: Arc<Metrics>,
    /// The periodic refresh, stopped with the last handle.
    refresh: std::sync::OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.refresh.get() {
            task.abort();
        }
    }
}

/// The version clients announce; cheap to clone, shared by every session.
#[derive(Clone)]
pub struct WaVersions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WaVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WaVersions").field(&self.current()).finish()
    }
}

impl WaVersions {
    /// Always `version` (`--wa-version`).
    pub fn pinned(version: (u32, u32, u32), metrics: Arc<Metrics>) -> Self {
        let current = Current {
            version,
            source: Source::Pinned,
            resolved_at: None,
        };
        Self::with(current, None, metrics)
    }

    /// Starts on the version stored in `dir` or the built-in one, whichever is
    /// newer, and resolves it from `url` now and then every `refresh`, in the
    /// background. Needs a tokio runtime.
    pub fn resolving(dir: PathBuf, url: VersionUrl, refresh: Duration, metrics: Arc<Metrics>) -> Self {
        Self::resolving_with(dir, url, refresh, Arc::new(UreqHttpClient::new()), metrics)
    }

    fn resolving_with(
        dir: PathBuf,
        url: VersionUrl,
        refresh: Duration,
        http: Arc<dyn HttpClient>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let current = starting_version(stored::read(&dir));
        info!(version = %dotted(current.version), source = current.source.as_str(), url = %url, "whatsapp web version at start; resolving it in the background");
        let resolver = Resolver {
            url,
            dir,
            http,
            last_outdated: Mutex::new(None),
        };
        let versions = Self::with(current, Some(resolver), metrics);
        let weak = Arc::downgrade(&versions.inner);
        let task = tokio::spawn(async move {
            loop {
                match weak.upgrade() {
                    Some(inner) => WaVersions { inner }.resolve().await,
                    None => return,
                }
                tokio::time::sleep(refresh).await;
            }
        });
        let _ = versions.inner.refresh.set(task.abort_handle());
        versions
    }

    fn with(current: Current, resolver: Option<Resolver>, metrics: Arc<Metrics>) -> Self {
        let versions = Self {
            inner: Arc::new(Inner {
                current: watch::Sender::new(current),
                resolver,
                metrics,
                refresh: std::sync::OnceLock::new(),
            }),
        };
        versions.export(&current);
        versions
    }

    /// The version in use and where it came from.
    pub fn current(&self) -> Current {
        *self.inner.current.borrow()
    }

    /// Whether `--wa-version` pins it (a 405 then stops the session).
    pub fn is_pinned(&self) -> bool {
        self.inner.resolver.is_none()
    }

    /// WhatsApp refused the version in use (405): fetch the current one, unless
    /// pinned or a 405 already fetched within `OUTDATED_REFETCH_GAP`. Concurrent
    /// calls share one fetch.
    pub async fn after_outdated(&self) {
        let Some(resolver) = &self.inner.resolver else {
            return;
        };
        let mut last = resolver.last_outdated.lock().await;
        if last.is_some_and(|at| at.elapsed() < OUTDATED_REFETCH_GAP) {
            return;
        }
        *last = Some(Instant::now());
        self.resolve().await;
    }

    /// Fetches sw.js once; on success uses, exports and stores the version, on
    /// failure keeps the one in use and says why.
    async fn resolve(&self) {
        let Some(resolver) = &self.inner.resolver else {
            return;
        };
        let url = resolver.url.as_str();
        let version = match fetch::latest(&resolver.http, url).await {
            Ok(version) => version,
            Err(cause) => {
                let kept = self.current();
                warn!(%cause, version = %dotted(kept.version), source = kept.source.as_str(), "could not resolve the current whatsapp web version; keeping the one in use");
                return;
            }
        };
        let now = SystemTime::now();
        let previous = self.current().version;
        let current = Current {
            version,
            source: Source::Resolved,
            resolved_at: Some(now),
        };
        self.inner.current.send_replace(current);
        self.export(&current);
        if previous == version {
            info!(version = %dotted(version), "whatsapp web version resolved (unchanged)");
        } else {
            info!(version = %dotted(version), previous = %dotted(previous), "whatsapp web version resolved");
        }
        let record = Stored {
            version,
            resolved_at: now,
            source: url.to_owned(),
        };
        let dir = resolver.dir.clone();
        let written = tokio::task::spawn_blocking(move || stored::write(&dir, &record)).await;
        if !matches!(written, Ok(Ok(()))) {
            warn!(
                ?written,
                "could not keep the resolved whatsapp web version in the data dir"
            );
        }
    }

    fn export(&self, current: &Current) {
        let version = dotted(current.version);
        self.inner
            .metrics
            .whatsapp_version
            .set(version, current.source.as_str(), current.resolved_at);
    }
}

/// The version to start on: the stored resolution or the built-in default,
/// whichever is newer (the stored one when equal: it has a resolution time).
fn starting_version(stored: Option<Stored>) -> Current {
    match stored {
        Some(stored) if stored.version >= DEFAULT_WA_VERSION => Current {
            version: stored.version,
            source: Source::Stored,
            resolved_at: Some(stored.resolved_at),
        },
        _ => Current {
            version: DEFAULT_WA_VERSION,
            source: Source::Builtin,
            resolved_at: None,
        },
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
