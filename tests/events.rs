//! EventService over gRPC with the emulated WhatsApp: a phone's message, a receipt
//! for a sent message and status changes arrive in the stream; a consumer resumes
//! right after its ack; an expired position says CURSOR_EXPIRED with the oldest
//! cursor; a deleted session leaves only its final event; bad input is refused.
//! (Stalled streams and memory: `events_memory.rs`.)

mod common;

use std::time::Duration;

use common::{paired, wait_for, Daemon};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;
use wa_sessiond::proto::{
    self, event::Body, event_service_client::EventServiceClient, EventKind, ReceiptKind, SessionStatus,
    StreamEventsRequest,
};

async fn events(daemon: &Daemon) -> EventServiceClient<Channel> {
    EventServiceClient::new(daemon.channel().await)
}

fn from_beginning() -> StreamEventsRequest {
    StreamEventsRequest {
        from_beginning: true,
        ..Default::default()
    }
}

/// Reads events until `pick` returns Some (within 10 s).
async fn until<T>(stream: &mut tonic::Streaming<proto::Event>, mut pick: impl FnMut(&proto::Event) -> Option<T>) -> T {
    loop {
        let event = common::next(stream).await.expect("the stream goes on");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

async fn deliver(daemon: &Daemon, session: &str, from: &str, text: &str) -> String {
    let request = proto::DeliverMessageRequest {
        session_id: session.into(),
        from: from.into(),
        text: text.into(),
        ..Default::default()
    };
    daemon
        .phone()
        .await
        .deliver_message(request)
        .await
        .unwrap()
        .into_inner()
        .message_id
}

fn message(event: &proto::Event) -> Option<&proto::InboundMessage> {
    match &event.body {
        Some(Body::Message(m)) => Some(m),
        _ => None,
    }
}

#[tokio::test]
async fn a_phones_message_a_receipt_and_status_changes_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "alice").await;
    let mut stream = events(&daemon)
        .await
        .stream_events(from_beginning())
        .await
        .unwrap()
        .into_inner();

    // The way to CONNECTED is in the log, in order, with no QR code anywhere.
    let mut statuses = Vec::new();
    let connected = until(&mut stream, |e| match &e.body {
        Some(Body::Status(s)) => {
            statuses.push((e.seq, s.status));
            (s.status == SessionStatus::Connected as i32).then_some(e.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(connected.session_id, "alice");
    assert!(
        statuses.iter().any(|(_, s)| *s == SessionStatus::QrWaiting as i32),
        "{statuses:?}"
    );
    assert!(
        statuses.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "seq has no gaps: {statuses:?}"
    );

    let id = deliver(&daemon, "alice", "15550001111", "hello from a phone").await;
    let got = until(&mut stream, |e| message(e).cloned().map(|m| (e.clone(), m))).await;
    let (event, inbound) = got;
    assert_eq!(inbound.id, id);
    assert_eq!(inbound.text, "hello from a phone");
    assert_eq!(inbound.sender, "15550001111@s.whatsapp.net");
    assert_eq!(inbound.chat, "15550001111@s.whatsapp.net");
    assert!(!inbound.offline, "it came while the session was online");
    assert_eq!(event.seq, connected.seq + 1);
    assert!(event.cursor > connected.cursor);

    let mut sessions = daemon.sessions().await;
    let sent = sessions
        .send_text_message(proto::SendTextMessageRequest {
            session_id: "alice".into(),
            to: "15550001111".into(),
            text: "hi back".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let receipt = proto::SendReceiptRequest {
        session_id: "alice".into(),
        message_id: sent.message_id.clone(),
        kind: ReceiptKind::Read as i32,
    };
    daemon.phone().await.send_receipt(receipt).await.unwrap();
    let receipt = until(&mut stream, |e| match &e.body {
        Some(Body::Receipt(r)) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(receipt.message_ids, [sent.message_id]);
    assert_eq!(receipt.kind, ReceiptKind::Read as i32);
    assert_eq!(receipt.from, "15550001111@s.whatsapp.net");
    let pending = daemon
        .phone()
        .await
        .count_pending(proto::CountPendingRequest {
            session_id: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pending;
    assert_eq!(pending, 0, "the server forgot what the daemon acked");

    // The log's metrics say the same.
    let ack = proto::AckEventsRequest {
        consumer: "ops".into(),
        cursor: event.cursor.clone(),
    };
    events(&daemon).await.ack_events(ack).await.unwrap();
    let scrape = daemon.scrape().await;
    assert_eq!(
        scrape.value("wa_sessiond_events_appended_total", &[("kind", "message")]),
        1.0
    );
    assert!(scrape.value("wa_sessiond_events_appended_total", &[("kind", "status")]) >= 3.0);
    assert!(scrape.value("wa_sessiond_events_log_bytes", &[]) > 0.0);
    assert!(
        scrape.value("wa_sessiond_events_consumer_lag", &[("consumer", "ops")]) >= 1.0,
        "the receipt came after its position"
    );
}

#[tokio::test]
async fn messages_sent_while_away_come_on_reconnect_marked_offline() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "bob").await;
    let mut sessions = daemon.sessions().await;
    let stop = proto::DisconnectSessionRequest {
        session_id: "bob".into(),
    };
    sessions.disconnect_session(stop).await.unwrap();
    let first = deliver(&daemon, "bob", "15550002222", "one").await;
    let second = deliver(&daemon, "bob", "15550002222", "two").await;
    let pending = proto::CountPendingRequest {
        session_id: "bob".into(),
    };
    assert_eq!(
        daemon
            .phone()
            .await
            .count_pending(pending.clone())
            .await
            .unwrap()
            .into_inner()
            .pending,
        2
    );
    let request = StreamEventsRequest {
        kinds: vec![EventKind::Message as i32],
        ..from_beginning()
    };
    let mut stream = events(&daemon).await.stream_events(request).await.unwrap().into_inner();
    let resume = proto::ConnectSessionRequest {
        session_id: "bob".into(),
        ..Default::default()
    };
    sessions.connect_session(resume).await.unwrap();
    let a = until(&mut stream, |e| message(e).cloned()).await;
    let b = until(&mut stream, |e| message(e).cloned()).await;
    assert_eq!((a.id, a.text.as_str(), a.offline), (first, "one", true));
    assert_eq!((b.id, b.text.as_str(), b.offline), (second, "two", true));
    wait_for(Duration::from_secs(10), "nothing pending at the server", || {
        let (daemon, pending) = (&daemon, pending.clone());
        async move {
            (daemon
                .phone()
                .await
                .count_pending(pending)
                .await
                .unwrap()
                .into_inner()
                .pending
                == 0)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_consumer_resumes_right_after_its_last_ack() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "carol").await;
    for i in 0..6 {
        deliver(&daemon, "carol", "15550003333", &format!("m{i}")).await;
    }
    let mut client = events(&daemon).await;
    let request = StreamEventsRequest {
        consumer: "billing".into(),
        kinds: vec![EventKind::Message as i32],
        ..from_beginning()
    };
    let mut stream = client.stream_events(request.clone()).await.unwrap().into_inner();
    let mut acked = String::new();
    for i in 0..3 {
        let event = common::next(&mut stream).await.unwrap();
        assert_eq!(message(&event).unwrap().text, format!("m{i}"));
        let ack = proto::AckEventsRequest {
            consumer: "billing".into(),
            cursor: event.cursor.clone(),
        };
        acked = client.ack_events(ack).await.unwrap().into_inner().cursor;
        assert_eq!(acked, event.cursor);
    }
    // It read one more without acking it, then went away.
    common::next(&mut stream).await.unwrap();
    drop(stream);
    // An older ack changes nothing.
    let stale = proto::AckEventsRequest {
        consumer: "billing".into(),
        cursor: "0000000000000001".into(),
    };
    assert_eq!(client.ack_events(stale).await.unwrap().into_inner().cursor, acked);

    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    let mut resumed = Vec::new();
    for _ in 0..3 {
        resumed.push(message(&common::next(&mut stream).await.unwrap()).unwrap().text.clone());
    }
    assert_eq!(
        resumed,
        ["m3", "m4", "m5"],
        "right after the last ack, nothing skipped or repeated"
    );
}

#[tokio::test]
async fn a_position_older_than_the_log_is_cursor_expired_with_the_oldest_cursor() {
    // A size bound trims the oldest events once the log outgrows it, then the log
    // holds still (an age bound would go on trimming as the clock runs), so the
    // oldest cursor kept is compared exactly, whatever the machine's load.
    const KEPT_BYTES: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |config| {
        config.events.event_retention_bytes = KEPT_BYTES;
        config.events.event_trim_interval = Duration::from_millis(100);
    })
    .await;
    paired(&daemon, "dave").await;
    let mut client = events(&daemon).await;
    let mut stream = client.stream_events(from_beginning()).await.unwrap().into_inner();
    let first = common::next(&mut stream).await.unwrap().cursor;
    // Texts that outgrow the bound a few times over; the last one is in the log.
    let texts: Vec<String> = (0..12).map(|n| format!("{n:02} {}", "x".repeat(1000))).collect();
    for text in &texts {
        deliver(&daemon, "dave", "15550004444", text).await;
    }
    let last_text = texts.last().unwrap().clone();
    until(&mut stream, |e| message(e).filter(|m| m.text == last_text).map(|_| ())).await;
    drop(stream);
    // Trimmed to the bound: nothing is appended or trimmed from here on.
    wait_for(Duration::from_secs(20), "the log trimmed to its bound", || async {
        let bytes = daemon.scrape().await.value("wa_sessiond_events_log_bytes", &[]);
        (bytes <= KEPT_BYTES as f64).then_some(())
    })
    .await;
    let request = StreamEventsRequest {
        after_cursor: first.clone(),
        ..Default::default()
    };
    let status = client.stream_events(request).await.expect_err("CURSOR_EXPIRED");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CURSOR_EXPIRED");
    let oldest = info.metadata.get("oldest_cursor").cloned().unwrap_or_default();
    assert!(status.message().contains("from_beginning"), "{}", status.message());
    // The oldest cursor named is where a from_beginning stream starts now.
    let mut stream = client.stream_events(from_beginning()).await.unwrap().into_inner();
    let oldest_now = common::next(&mut stream).await.unwrap().cursor;
    assert!(oldest.is_empty() || oldest <= oldest_now, "{oldest} vs {oldest_now}");
    assert_eq!(
        oldest, oldest_now,
        "oldest_cursor is the first event a from_beginning stream gets"
    );
    assert!(oldest_now > first);
}

#[tokio::test]
async fn a_deleted_session_leaves_only_its_final_event() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "erin").await;
    paired(&daemon, "frank").await;
    deliver(&daemon, "erin", "15550005555", "soon gone").await;
    deliver(&daemon, "frank", "15550006666", "stays").await;
    let mut sessions = daemon.sessions().await;
    let delete = proto::DeleteSessionRequest {
        session_id: "erin".into(),
    };
    sessions.delete_session(delete).await.unwrap();
    let client = events(&daemon).await;
    let last = wait_for(Duration::from_secs(10), "erin's final event", || {
        let mut client = client.clone();
        async move {
            let mut stream = client.stream_events(from_beginning()).await.unwrap().into_inner();
            let mut erin = Vec::new();
            let mut frank_messages = 0;
            while let Ok(Some(Some(event))) = tokio::time::timeout(Duration::from_millis(300), stream.message())
                .await
                .map(Result::ok)
            {
                match (event.session_id.as_str(), &event.body) {
                    ("erin", body) => erin.push(body.clone()),
                    ("frank", Some(Body::Message(_))) => frank_messages += 1,
                    _ => {}
                }
            }
            assert_eq!(frank_messages, 1, "other sessions keep their events");
            (erin.len() == 1).then(|| erin.remove(0))
        }
    })
    .await;
    match last {
        Some(Body::Status(status)) => assert!(status.deleted),
        other => panic!("expected the final status, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = events(&daemon).await;
    let unknown = StreamEventsRequest {
        session_ids: vec!["nobody".into()],
        ..Default::default()
    };
    assert_eq!(client.stream_events(unknown).await.unwrap_err().code(), Code::NotFound);
    let cases = [
        ("not-a-cursor", "", "cursor"),
        ("ffffffffffffffff", "", "ahead of the newest event"),
        ("", "bad name!", "consumer name"),
    ];
    for (cursor, consumer, says) in cases {
        let request = StreamEventsRequest {
            after_cursor: cursor.into(),
            consumer: consumer.into(),
            ..Default::default()
        };
        let status = client.stream_events(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{cursor:?} {consumer:?}");
        assert!(status.message().contains(says), "{}", status.message());
    }
    let ack = proto::AckEventsRequest {
        consumer: "".into(),
        cursor: "0000000000000000".into(),
    };
    assert_eq!(client.ack_events(ack).await.unwrap_err().code(), Code::InvalidArgument);
    let kinds = StreamEventsRequest {
        kinds: vec![99],
        ..Default::default()
    };
    assert_eq!(
        client.stream_events(kinds).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}
