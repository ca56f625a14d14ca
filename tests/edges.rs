//! The daemon's edges: bounded waits, bad input, images, health, reflection, listing.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use tokio::time::Instant;
use tonic::Code;
use wa_sessiond::proto::{DisconnectReason, ListSessionsRequest, QrImage, RefreshQrRequest, SessionStatus};

/// An hour: a QR that never comes.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_qr_that_never_comes_fails_near_the_bound_and_a_refresh_works_after() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.qr_timeout = Duration::from_millis(800)).await;
    let mut client = daemon.sessions().await;
    daemon.emulator.set_config(|c| c.step_delay = NEVER);

    let start = Instant::now();
    let error = client.create_session(create("slow")).await.unwrap_err();
    let took = start.elapsed();

    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(error.message().contains("no qr code"), "{}", error.message());
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    let failed = client.get_session(peek("slow")).await.unwrap().into_inner();
    assert_eq!(status(&failed), SessionStatus::Failed);
    assert_eq!(failed.disconnect_reason, DisconnectReason::QrTimeout as i32);
    assert!(!failed.last_error.is_empty());

    daemon.emulator.set_config(|c| c.step_delay = STEP);
    let refresh = RefreshQrRequest {
        session_id: "slow".into(),
        ..Default::default()
    };
    let retried = client.refresh_qr(refresh).await.unwrap().into_inner();
    assert_eq!(status(&retried), SessionStatus::QrWaiting);
    assert!(retried.qr.is_some());
    daemon.stop().await;
}

#[tokio::test]
async fn a_caller_deadline_shorter_than_the_qr_timeout_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.qr_timeout = Duration::from_secs(20)).await;
    let mut client = daemon.sessions().await;
    daemon.emulator.set_config(|c| c.step_delay = NEVER);

    let mut request = tonic::Request::new(create("hasty"));
    request.set_timeout(Duration::from_millis(500));
    let start = Instant::now();
    let error = client.create_session(request).await.unwrap_err();

    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    let still = client.get_session(peek("hasty")).await.unwrap().into_inner();
    assert_eq!(
        status(&still),
        SessionStatus::Connecting,
        "the session keeps pairing for others"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn bad_ids_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    for bad in ["", "../etc", "a b", "-x", &"x".repeat(65)] {
        assert_eq!(
            client.create_session(create(bad)).await.unwrap_err().code(),
            Code::InvalidArgument,
            "{bad}"
        );
        assert_eq!(
            client.get_session(get(bad)).await.unwrap_err().code(),
            Code::InvalidArgument,
            "{bad}"
        );
    }
    assert_eq!(
        client.get_session(get("ghost")).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!dir.path().join("etc").exists());
    daemon.stop().await;
}

#[tokio::test]
async fn the_png_image_decodes_back_to_the_code_and_other_images_render() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let mut request = create("pic");
    request.qr_image = QrImage::PngDataUrl as i32;
    let session = client.create_session(request).await.unwrap().into_inner();
    let qr = session.qr.unwrap();

    let b64 = qr.image.strip_prefix("data:image/png;base64,").expect("a png data url");
    let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let picture = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(picture);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, decoded) = grids[0].decode().unwrap();
    assert_eq!(decoded, qr.code);

    for (kind, marker) in [(QrImage::Svg, "<svg"), (QrImage::Terminal, "█")] {
        let mut request = get("pic");
        request.qr_image = kind as i32;
        let image = client
            .get_session(request)
            .await
            .unwrap()
            .into_inner()
            .qr
            .unwrap()
            .image;
        assert!(image.contains(marker), "{kind:?}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut health = HealthClient::new(daemon.channel().await);
    for service in ["", "wasessiond.v1.SessionService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let answer = health.check(request).await.unwrap().into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let channel = daemon.channel().await;

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "wasessiond.v1.SessionService",
        "wasessiond.v1.EmulatorService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.message().await.unwrap().is_some());
    daemon.stop().await;
}

#[tokio::test]
async fn list_pages_in_a_stable_order_and_filters_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    for id in ["s3", "s1", "s5", "s2", "s4"] {
        client.create_session(create(id)).await.unwrap();
    }
    daemon.emulator.set_config(|c| c.step_delay = NEVER);
    let mut hasty = tonic::Request::new(create("s0"));
    hasty.set_timeout(Duration::from_millis(200));
    let _ = client.create_session(hasty).await;

    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let request = ListSessionsRequest {
            page_size: 2,
            page_token: token.clone(),
            status: 0,
        };
        let page = client.list_sessions(request).await.unwrap().into_inner();
        assert!(page.sessions.len() <= 2);
        ids.extend(page.sessions.into_iter().map(|s| s.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(ids, ["s0", "s1", "s2", "s3", "s4", "s5"]);

    let connecting = ListSessionsRequest {
        status: SessionStatus::Connecting as i32,
        ..Default::default()
    };
    let page = client.list_sessions(connecting).await.unwrap().into_inner();
    assert_eq!(page.sessions.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s0"]);
    let bad = ListSessionsRequest {
        page_token: "!!".into(),
        ..Default::default()
    };
    assert_eq!(
        client.list_sessions(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_calls_on_one_connection_all_succeed() {
    // Thousands of calls opened at once on one HTTP/2 connection: the server bounds
    // the streams so the client queues, instead of h2 cutting the connection off.
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(tmp.path(), |_| {}).await;
    let client = daemon.sessions().await;
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..10000 {
        let mut client = client.clone();
        calls.spawn(async move { client.get_session(peek(&format!("nobody-{n}"))).await.map(drop) });
    }
    let mut failures = Vec::new();
    while let Some(call) = calls.join_next().await {
        match call.unwrap() {
            Err(e) if e.code() != Code::NotFound => failures.push(format!("{:?}: {}", e.code(), e.message())),
            _ => {}
        }
    }
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}
