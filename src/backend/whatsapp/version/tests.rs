use std::sync::atomic::{AtomicU32, Ordering};

use whatsapp_rust::{
    anyhow,
    http::{HttpRequest, HttpResponse},
};

use super::*;

/// An sw.js server in memory: answers `revision` (or a status), counts requests,
/// and takes `delay` to answer.
struct SwJs {
    revision: AtomicU32,
    status: u16,
    requests: AtomicU32,
    delay: Duration,
}

#[whatsapp_rust::async_trait]
impl HttpClient for SwJs {
    async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let revision = self.revision.load(Ordering::SeqCst);
        let body = format!(r#"self.__swData=JSON.parse("{{\"SiteData\":{{\"client_revision\":{revision}}}}}");"#);
        Ok(HttpResponse {
            status_code: self.status,
            body: body.into_bytes(),
        })
    }
}

fn sw_js(revision: u32, status: u16) -> Arc<SwJs> {
    Arc::new(SwJs {
        revision: AtomicU32::new(revision),
        status,
        requests: AtomicU32::new(0),
        delay: Duration::from_millis(100),
    })
}

/// Versions resolved from `http` into `dir`, without the periodic task.
fn resolving(dir: &std::path::Path, http: Arc<SwJs>, metrics: Arc<Metrics>) -> WaVersions {
    let resolver = Resolver {
        url: VersionUrl::parse("http://127.0.0.1:9/sw.js").unwrap(),
        dir: dir.to_owned(),
        http,
        last_outdated: Mutex::new(None),
    };
    WaVersions::with(starting_version(stored::read(dir)), Some(resolver), metrics)
}

fn stored_at(version: (u32, u32, u32)) -> Stored {
    Stored {
        version,
        resolved_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        source: "https://web.whatsapp.com/sw.js".into(),
    }
}

#[test]
fn the_start_uses_the_stored_version_or_the_builtin_one_whichever_is_newer() {
    let newer = (2, 3000, DEFAULT_WA_VERSION.2 + 1);
    let start = starting_version(Some(stored_at(newer)));
    assert_eq!((start.version, start.source), (newer, Source::Stored));
    assert!(start.resolved_at.is_some());
    let older = starting_version(Some(stored_at((2, 3000, 1))));
    assert_eq!((older.version, older.source), (DEFAULT_WA_VERSION, Source::Builtin));
    let none = starting_version(None);
    assert_eq!(
        (none.version, none.source, none.resolved_at),
        (DEFAULT_WA_VERSION, Source::Builtin, None)
    );
}

#[tokio::test]
async fn a_corrupt_stored_file_starts_on_the_builtin_version() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(stored::FILE_NAME), "{garbage").unwrap();
    let versions = resolving(tmp.path(), sw_js(5, 200), Arc::default());
    assert_eq!(versions.current().source, Source::Builtin);
}

#[tokio::test]
async fn a_resolution_is_used_exported_and_stored_for_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let wanted = (2, 3000, DEFAULT_WA_VERSION.2 + 7);
    let versions = resolving(tmp.path(), sw_js(wanted.2, 200), metrics.clone());
    versions.resolve().await;
    assert_eq!(
        (versions.current().version, versions.current().source),
        (wanted, Source::Resolved)
    );
    let text = metrics.encode();
    let info = format!(
        "wa_sessiond_whatsapp_version_info{{version=\"{}\",source=\"resolved\"}} 1",
        dotted(wanted)
    );
    assert!(text.contains(&info), "{text}");
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix("wa_sessiond_whatsapp_version_age_seconds "))
        .and_then(|v| v.parse::<i64>().ok());
    assert!(age.is_some_and(|age| (0..5).contains(&age)), "{text}");
    let next_start = resolving(tmp.path(), sw_js(1, 500), Arc::default());
    assert_eq!(
        (next_start.current().version, next_start.current().source),
        (wanted, Source::Stored)
    );
}

#[tokio::test]
async fn a_failed_resolution_keeps_the_version_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    for broken in [sw_js(9, 503), sw_js(0, 200)] {
        let versions = resolving(tmp.path(), broken, Arc::default());
        versions.resolve().await;
        assert_eq!(versions.current().source, Source::Builtin);
        assert!(!tmp.path().join(stored::FILE_NAME).exists());
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_405s_share_one_fetch_and_the_next_waits_a_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let http = sw_js(DEFAULT_WA_VERSION.2 + 1, 200);
    let versions = resolving(tmp.path(), http.clone(), Arc::default());
    let all = (0..8).map(|_| versions.after_outdated());
    futures_join_all(all).await;
    assert_eq!(http.requests.load(Ordering::SeqCst), 1);
    assert_eq!(versions.current().source, Source::Resolved);
    tokio::time::advance(OUTDATED_REFETCH_GAP - Duration::from_secs(1)).await;
    versions.after_outdated().await;
    assert_eq!(http.requests.load(Ordering::SeqCst), 1, "within the minute: no fetch");
    tokio::time::advance(Duration::from_secs(2)).await;
    versions.after_outdated().await;
    assert_eq!(http.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_pinned_version_never_fetches() {
    let metrics = Arc::new(Metrics::default());
    let versions = WaVersions::pinned((2, 3000, 5), metrics.clone());
    versions.after_outdated().await;
    assert!(versions.is_pinned());
    let text = metrics.encode();
    assert!(
        text.contains("wa_sessiond_whatsapp_version_info{version=\"2.3000.5\",source=\"pinned\"} 1"),
        "{text}"
    );
    assert!(text.contains("wa_sessiond_whatsapp_version_age_seconds -1"), "{text}");
}

/// Runs every future to its end, concurrently, on this task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(all: impl Iterator<Item = F>) {
    whatsapp_rust::futures::future::join_all(all).await;
}
