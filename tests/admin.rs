//! The admin port over real HTTP: liveness, readiness across start and drain, and
//! metrics that follow what sessions do.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tokio::net::TcpListener;
use wa_sessiond::{
    admin::Admin,
    app,
    proto::{DeleteSessionRequest, LogoutFromPhoneRequest, RefreshQrRequest, ScanQrRequest, SessionStatus},
};

const BOUND: Duration = Duration::from_secs(10);

/// Waits until a scrape satisfies `check`, returning it.
async fn scrape_until(daemon: &Daemon, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    wait_for(BOUND, what, || async {
        let scrape = daemon.scrape().await;
        check(&scrape).then_some(scrape)
    })
    .await
}

/// Waits until session `id` has `wanted` and the metrics count one session as `label`.
async fn counted_as(daemon: &Daemon, id: &str, wanted: SessionStatus, label: &str) -> Scrape {
    let mut client = daemon.sessions().await;
    wait_session(&mut client, id, label, |s| status(s) == wanted).await;
    scrape_until(daemon, label, |s| sessions(s, label) == 1.0).await
}

fn sessions(scrape: &Scrape, status: &str) -> f64 {
    scrape.value("wa_sessiond_sessions", &[("status", status)])
}

fn handled(scrape: &Scrape, method: &str, code: &str) -> f64 {
    scrape.value(
        "grpc_server_handled_total",
        &[("grpc_method", method), ("grpc_code", code)],
    )
}

#[tokio::test]
async fn metrics_follow_sessions_through_create_scan_refresh_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let before = daemon.scrape().await;
    assert_eq!(sessions(&before, "QR_WAITING"), 0.0);
    assert_eq!(before.value("wa_sessiond_qr_codes_issued_total", &[]), 0.0);

    client.create_session(create("alice")).await.unwrap();
    client.create_session(create("bob")).await.unwrap();
    let created = scrape_until(&daemon, "two sessions showing qr codes", |s| {
        sessions(s, "QR_WAITING") == 2.0
    })
    .await;
    assert!(created.value("wa_sessiond_qr_codes_issued_total", &[]) >= 2.0);
    assert_eq!(handled(&created, "CreateSession", "OK"), 2.0);
    let latency = [("grpc_method", "CreateSession")];
    assert_eq!(created.value("grpc_server_handling_seconds_count", &latency), 2.0);

    let scan = ScanQrRequest {
        session_id: "alice".into(),
        ..Default::default()
    };
    daemon.phone().await.scan_qr(scan).await.unwrap();
    let paired = counted_as(&daemon, "alice", SessionStatus::Connected, "CONNECTED").await;
    assert_eq!(sessions(&paired, "QR_WAITING"), 1.0);
    assert_eq!(paired.value("wa_sessiond_pairings_completed_total", &[]), 1.0);
    assert_eq!(paired.value("wa_sessiond_restart_required_total", &[]), 1.0);
    assert_eq!(handled(&paired, "ScanQr", "OK"), 1.0);

    let refresh = RefreshQrRequest {
        session_id: "bob".into(),
        ..Default::default()
    };
    client.refresh_qr(refresh).await.unwrap();
    let refreshed = daemon.scrape().await;
    assert_eq!(refreshed.value("wa_sessiond_qr_regenerations_total", &[]), 1.0);

    let unlink = LogoutFromPhoneRequest {
        session_id: "alice".into(),
    };
    daemon.phone().await.logout_from_phone(unlink).await.unwrap();
    let unlinked = counted_as(&daemon, "alice", SessionStatus::LoggedOut, "LOGGED_OUT").await;
    assert_eq!(unlinked.value("wa_sessiond_logouts_total", &[("origin", "phone")]), 1.0);
    assert_eq!(sessions(&unlinked, "CONNECTED"), 0.0);

    let missing = client.get_session(get("nobody")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    for id in ["alice", "bob"] {
        let delete = DeleteSessionRequest { session_id: id.into() };
        client.delete_session(delete).await.unwrap();
    }
    let deleted = scrape_until(&daemon, "no sessions counted", |s| {
        s.value("wa_sessiond_sessions", &[]) == 0.0
    })
    .await;
    assert_eq!(handled(&deleted, "GetSession", "NotFound"), 1.0);
    assert_eq!(handled(&deleted, "DeleteSession", "OK"), 2.0);
    daemon.stop().await;
}

#[tokio::test]
async fn readyz_is_503_until_serving_200_while_serving_and_503_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let wiring = app::Wiring::default();
    // The admin port comes up before the daemon restores anything.
    let early = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let early_addr = early.local_addr().unwrap();
    let admin = Admin {
        metrics: wiring.metrics.clone(),
        readiness: Arc::clone(&wiring.readiness),
    };
    let early_admin = tokio::spawn(admin.serve(early));
    let (code, body) = http_get(early_addr, "/readyz").await;
    assert_eq!(
        (code, body.as_str()),
        (503, "not ready: starting: sessions not restored yet\n")
    );
    assert_eq!(http_get(early_addr, "/livez").await.0, 200);

    let mut daemon = Daemon::start_wired(dir.path(), |_| {}, wiring).await;
    wait_for(BOUND, "ready", || async {
        (daemon.admin_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    daemon.sessions().await.create_session(create("alice")).await.unwrap();
    assert_eq!(http_get(early_addr, "/readyz").await.0, 200);
    assert_eq!(daemon.admin_get("/nope").await.0, 404);

    // The daemon's own admin port ends with it: ask the early one, which reads the
    // same readiness, so the answers while draining are seen whatever the timing.
    daemon.begin_stop();
    let (code, body) = wait_for(BOUND, "not ready once draining", || async {
        let answer = http_get(early_addr, "/readyz").await;
        (answer.0 == 503).then_some(answer)
    })
    .await;
    assert_eq!((code, body.as_str()), (503, "not ready: draining: shutting down\n"));
    assert_eq!(http_get(early_addr, "/livez").await.0, 200, "alive while draining");
    daemon.stopped().await;
    early_admin.abort();
}
