//! Slow consumers never hold the daemon's memory: fifty event streams that never
//! read, while 10,000 messages flow, grow the daemon's resident memory by a bounded
//! amount (measured on the daemon's own process), and still work afterwards.

mod common;

use std::time::Duration;

use tonic::transport::Channel;
use wa_sessiond::proto::{self, event::Body, event_service_client::EventServiceClient, EventKind, StreamEventsRequest};

fn from_beginning() -> StreamEventsRequest {
    StreamEventsRequest {
        from_beginning: true,
        ..Default::default()
    }
}

fn message(event: &proto::Event) -> Option<&proto::InboundMessage> {
    match &event.body {
        Some(Body::Message(m)) => Some(m),
        _ => None,
    }
}

/// Sends `n` messages to `session` through `phone` (64 calls in flight) and waits
/// until `reader` has seen them all.
async fn flow(
    phone: proto::emulator_service_client::EmulatorServiceClient<Channel>,
    session: &str,
    n: usize,
    reader: &mut tonic::Streaming<proto::Event>,
) {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..n {
        let (mut phone, permit) = (phone.clone(), gate.clone().acquire_owned().await.unwrap());
        let session = session.to_owned();
        sends.spawn(async move {
            let request = proto::DeliverMessageRequest {
                session_id: session,
                from: "15550007777".into(),
                text: format!("{i:05} {}", "x".repeat(100)),
                ..Default::default()
            };
            phone.deliver_message(request).await.unwrap();
            drop(permit);
        });
    }
    let mut seen = 0;
    while seen < n {
        let event = tokio::time::timeout(Duration::from_secs(60), reader.message())
            .await
            .expect("the reading stream keeps up")
            .unwrap()
            .unwrap();
        seen += usize::from(message(&event).is_some());
    }
    while sends.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_streams_that_never_read_hold_bounded_memory_while_events_flow() {
    const STALLED: usize = 50;
    const EVENTS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    // The daemon in a process of its own: its memory is measured apart from the
    // test's (and from the other tests running beside it).
    let daemon = common::process::Process::start(dir.path(), &[]).await;
    daemon.link("gina").await;
    let events = |channel| EventServiceClient::new(channel);
    // One reader that keeps up, on its own connection, to know when everything went
    // through.
    let only_messages = StreamEventsRequest {
        kinds: vec![EventKind::Message as i32],
        ..Default::default()
    };
    let mut reader = events(daemon.channel().await)
        .stream_events(only_messages)
        .await
        .unwrap()
        .into_inner();
    // The same flow once without stalled streams, so what the flow itself costs
    // (caches, the allocator's pools) is already counted.
    flow(daemon.phone().await, "gina", EVENTS, &mut reader).await;
    let before = daemon.rss_kib();
    // The stalled streams share a connection of their own (HTTP/2 flow control stalls
    // a whole connection whose window they fill, as it would any client's). Each has
    // the whole backlog to replay and reads none of it.
    let client = events(daemon.channel().await);
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(
            client
                .clone()
                .stream_events(from_beginning())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    flow(daemon.phone().await, "gina", EVENTS, &mut reader).await;
    let grown_mib = daemon.rss_kib().saturating_sub(before) / 1024;
    // Held in full, 20,000 events of 150 bytes in 50 streams would be over 140 MiB.
    assert!(
        grown_mib < 32,
        "resident memory grew {grown_mib} MiB with {STALLED} stalled streams"
    );
    // The stalled streams still work: one reads its backlog from disk.
    let first = common::next(&mut stalled[0]).await.unwrap();
    assert!(!first.cursor.is_empty());
    drop(stalled);
}
