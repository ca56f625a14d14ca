//! The bounds a client cannot push the daemon past: the session limit, the request
//! size, the calls in flight, and the refusal to serve a non-loopback address without
//! authentication.

mod common;

use std::{collections::HashMap, time::Duration};

use common::*;
use tokio::time::Instant;
use tonic::Code;
use wa_sessiond::proto::{CreateSessionRequest, DeleteSessionRequest, ListSessionsRequest, WatchSessionsRequest};

#[tokio::test]
async fn creating_past_max_sessions_is_resource_exhausted_and_the_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.edge.max_sessions = 2).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("alice")).await.unwrap();
    client.create_session(create("bob")).await.unwrap();

    let refused = client.create_session(create("carol")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("limit of 2 sessions"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("--max-sessions"), "{}", refused.message());
    assert_eq!(
        client.get_session(peek("carol")).await.unwrap_err().code(),
        Code::NotFound
    );

    let again = client.create_session(create("alice")).await.unwrap().into_inner();
    assert_eq!(again.id, "alice", "an existing session is returned as it is");
    assert_eq!(client.get_session(peek("bob")).await.unwrap().into_inner().id, "bob");

    let delete = DeleteSessionRequest {
        session_id: "alice".into(),
    };
    client.delete_session(delete).await.unwrap();
    client.create_session(create("carol")).await.unwrap();
    daemon.stop().await;
}

#[tokio::test]
async fn past_max_inflight_calls_a_call_is_resource_exhausted_at_once_while_health_answers() {
    const HELD: [&str; 4] = ["s1", "s2", "s3", "s4"];
    let dir = tempfile::tempdir().unwrap();
    // The first QR code takes a minute: each CreateSession stays in flight until its
    // caller gives up.
    let daemon = Daemon::start(dir.path(), |c| {
        c.edge.max_inflight_calls = 4;
        c.emulator_qr_delay = Duration::from_secs(60);
        c.qr_timeout = Duration::from_secs(60);
    })
    .await;
    let mut client = daemon.sessions().await;
    // An open watch stream holds no place: four creates still fit beside it.
    let _watch = client.watch_sessions(WatchSessionsRequest {}).await.unwrap();
    let held: Vec<_> = HELD
        .iter()
        .map(|id| {
            let mut client = client.clone();
            tokio::spawn(async move { client.create_session(create(id)).await })
        })
        .collect();
    let all_in_flight = wait_for(Duration::from_secs(10), "the four creates to be in flight", || async {
        if held.iter().any(|call| call.is_finished()) {
            return Some(false);
        }
        let mut started = 0;
        for id in HELD {
            started += daemon.connections(id).await;
        }
        (started == 4).then_some(true)
    })
    .await;
    if !all_in_flight {
        let finished = held.into_iter().find(|call| call.is_finished()).unwrap();
        panic!("a create within the bound was answered: {:?}", finished.await.unwrap());
    }

    let asked = Instant::now();
    let refused = client.list_sessions(ListSessionsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(asked.elapsed() < Duration::from_secs(2), "refused at once, not queued");
    let message = refused.message();
    assert!(message.contains("limit of 4 calls at once"), "{message}");
    assert!(message.contains("--max-inflight-calls"), "{message}");
    assert_eq!(
        daemon.health().await,
        1,
        "health answers SERVING while the bound is full"
    );
    let scrape = daemon.scrape().await;
    let counted = [("grpc_method", "ListSessions"), ("grpc_code", "ResourceExhausted")];
    assert_eq!(scrape.value("grpc_server_handled_total", &counted), 1.0);

    // Callers that give up free their places.
    for call in &held {
        call.abort();
    }
    let listed = wait_for(Duration::from_secs(10), "a call to be served again", || {
        let mut client = client.clone();
        async move { client.list_sessions(ListSessionsRequest::default()).await.ok() }
    })
    .await;
    assert_eq!(listed.into_inner().sessions.len(), 4);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_without_the_daemon_holding_them() {
    const REQUESTS: usize = 48;
    const REQUEST_BYTES: usize = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    // The daemon in a process of its own: its memory is measured apart from the
    // test's (and from the other tests running beside it).
    let daemon = process::Process::start(dir.path(), &[]).await;
    let defaults = wa_sessiond::config::Config::defaults();
    assert_eq!(defaults.edge.max_request_bytes, 128 * 1024);
    let mut client = daemon.sessions().await;
    let oversized = || CreateSessionRequest {
        session_id: "alice".into(),
        labels: HashMap::from([("blob".to_owned(), "x".repeat(REQUEST_BYTES))]),
        ..Default::default()
    };
    // One first, so the allocator has settled before measuring.
    let first = client.create_session(oversized()).await.unwrap_err();
    assert!(
        matches!(first.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{first:?}"
    );
    let before = daemon.rss_kib();
    for _ in 0..REQUESTS {
        let refused = client.create_session(oversized()).await.unwrap_err();
        assert!(matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted));
    }
    let grown_mib = daemon.rss_kib().saturating_sub(before) / 1024;
    let sent_mib = (REQUESTS * REQUEST_BYTES) >> 20;
    assert!(
        grown_mib < 32,
        "resident memory grew {grown_mib} MiB after {sent_mib} MiB of refused requests"
    );

    let created = client.create_session(create("alice")).await.unwrap().into_inner();
    assert_eq!(created.id, "alice", "the daemon still serves requests within the limit");
}

#[test]
fn a_non_loopback_listen_without_a_token_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wa-sessiond"))
        .args([
            "--backend",
            "emulator",
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--link-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("WA_SESSIOND_AUTH_TOKEN")
        .env_remove("WA_SESSIOND_AUTH_TOKEN_FILE")
        .env_remove("WA_SESSIOND_ALLOW_INSECURE_NO_AUTH")
        .env_remove("WA_SESSIOND_TLS_CLIENT_CA")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is not loopback") && stderr.contains("--allow-insecure-no-auth"),
        "{stderr}"
    );
}

/// `n` labels with keys and values of `len` bytes each.
fn labels(n: usize, len: usize) -> HashMap<String, String> {
    (0..n).map(|i| (format!("{i:0>len$}"), "v".repeat(len))).collect()
}

#[tokio::test]
async fn labels_up_to_64_of_256_bytes_are_kept_and_past_either_limit_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    let with = |id: &str, labels: HashMap<String, String>| CreateSessionRequest {
        session_id: id.into(),
        labels,
        ..Default::default()
    };

    let most = labels(64, 256);
    let created = client
        .create_session(with("most", most.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.labels, most, "64 labels of 256 bytes are kept as given");

    let mut long_key = labels(1, 256);
    long_key.insert("k".repeat(257), "v".into());
    let mut long_value = labels(1, 256);
    long_value.insert("k".into(), "v".repeat(257));
    let empty_key = HashMap::from([(String::new(), "v".to_owned())]);
    for (what, labels) in [
        ("65 labels", labels(65, 8)),
        ("a 257-byte key", long_key),
        ("a 257-byte value", long_value),
        ("an empty key", empty_key),
    ] {
        let refused = client.create_session(with("too-much", labels)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{what}: {refused:?}");
        assert!(
            refused.message().contains("at most 64") && refused.message().contains("256 bytes"),
            "{what}: {}",
            refused.message()
        );
    }
    let missing = client.get_session(peek("too-much")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "nothing was created");
    daemon.stop().await;
}

#[tokio::test]
async fn a_request_past_max_request_bytes_is_out_of_range_and_one_within_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.edge.max_request_bytes = 8 * 1024).await;
    let mut client = daemon.sessions().await;
    // Labels within their own limits, so only the size of the whole message counts.
    let request = |labels: HashMap<String, String>| CreateSessionRequest {
        session_id: "sized".into(),
        labels,
        ..Default::default()
    };
    for (what, n) in [("just past the limit", 17), ("far past it", 64)] {
        let refused = client.create_session(request(labels(n, 256))).await.unwrap_err();
        assert_eq!(refused.code(), Code::OutOfRange, "{what}: {refused:?}");
    }
    let created = client
        .create_session(request(labels(14, 256)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.labels.len(), 14, "a request within the limit is served");
    daemon.stop().await;
}

#[tokio::test]
async fn the_admin_port_serves_64_connections_at_once_and_the_next_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    // 64 clients that connect and say nothing hold every place.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(tokio::net::TcpStream::connect(daemon.admin_addr).await.unwrap());
    }
    let addr = daemon.admin_addr;
    let next = tokio::spawn(async move { http_get(addr, "/livez").await });
    stays_false(
        Duration::from_millis(500),
        "the 65th connection is served while 64 are held",
        || async { next.is_finished() },
    )
    .await;
    // One place frees: the waiting request is served.
    drop(held.pop());
    let answered = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("served once a place is free")
        .unwrap();
    assert_eq!(answered.0, 200);
    drop(held);
    daemon.stop().await;
}
