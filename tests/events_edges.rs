//! EventService at its edges: it needs the bearer token like every other service (a
//! regression would expose every message body); a stream's session filter is
//! deduplicated and capped; a consumer whose position was trimmed away moves on when
//! it follows CURSOR_EXPIRED's advice (from_beginning) or is given a cursor
//! (after_cursor), and its next ack is where it resumes; named consumers are capped
//! (`--max-consumers`) and an operator can delete one; on the emulator, a message
//! the device cannot decrypt is logged as a placeholder, then once as recovered by
//! the phone, however often its id is delivered.

mod common;

use std::time::Duration;

use common::{paired, wait_for, Daemon};
use tonic::{metadata::MetadataValue, transport::Channel, Code, Request};
use tonic_types::StatusExt;
use wa_sessiond::{
    config::Secret,
    proto::{self, event_service_client::EventServiceClient, AckEventsRequest, StreamEventsRequest},
};

const TOKEN: &str = "the-event-log-token";

/// The named consumer "billing" from the beginning: its request, and the cursor of
/// the first event it reads (the stream is then closed, nothing acked).
async fn billing_first(client: &mut EventServiceClient<Channel>) -> (StreamEventsRequest, String) {
    let named = StreamEventsRequest {
        consumer: "billing".into(),
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client.stream_events(named.clone()).await.unwrap().into_inner();
    let first = common::next(&mut stream).await.unwrap().cursor;
    (named, first)
}

async fn events(daemon: &Daemon) -> EventServiceClient<Channel> {
    EventServiceClient::new(daemon.channel().await)
}

#[tokio::test]
async fn the_event_service_needs_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.edge.auth_token = Some(Secret::new(TOKEN))).await;
    let mut client = events(&daemon).await;

    let stream = client.stream_events(StreamEventsRequest::default()).await.unwrap_err();
    assert_eq!(stream.code(), Code::Unauthenticated, "{stream:?}");
    let ack = AckEventsRequest {
        consumer: "billing".into(),
        cursor: "0000000000000000".into(),
    };
    assert_eq!(
        client.ack_events(ack.clone()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut wrong = Request::new(StreamEventsRequest::default());
    let header: MetadataValue<_> = "Bearer not-the-token".parse().unwrap();
    wrong.metadata_mut().insert("authorization", header);
    assert_eq!(
        client.stream_events(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut right = Request::new(ack);
    let header: MetadataValue<_> = format!("Bearer {TOKEN}").parse().unwrap();
    right.metadata_mut().insert("authorization", header);
    client.ack_events(right).await.expect("the token opens the door");
    daemon.stop().await;
}

#[tokio::test]
async fn a_streams_session_filter_is_deduplicated_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "alice").await;
    let mut client = events(&daemon).await;

    let twice = StreamEventsRequest {
        session_ids: vec!["alice".into(); 5_000],
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client
        .stream_events(twice)
        .await
        .expect("one session named many times")
        .into_inner();
    let first = common::next(&mut stream).await.unwrap();
    assert_eq!(first.session_id, "alice");

    let too_many = StreamEventsRequest {
        session_ids: (0..1_001).map(|i| format!("s{i}")).collect(),
        ..Default::default()
    };
    let refused = client.stream_events(too_many).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("at most 1000"), "{}", refused.message());
    daemon.stop().await;
}

#[tokio::test]
async fn a_consumer_whose_position_expired_moves_on_with_from_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |config| {
        config.events.event_retention = Duration::from_secs(2);
        config.events.event_trim_interval = Duration::from_millis(100);
    })
    .await;
    paired(&daemon, "dave").await;
    let mut client = events(&daemon).await;
    let (named, first) = billing_first(&mut client).await;
    let ack = AckEventsRequest {
        consumer: "billing".into(),
        cursor: first.clone(),
    };
    client.ack_events(ack).await.unwrap();

    // Once its position is trimmed away, resuming without from_beginning is refused.
    let resume = StreamEventsRequest {
        consumer: "billing".into(),
        ..Default::default()
    };
    let expired = wait_for(Duration::from_secs(20), "the consumer's position to expire", || {
        let (mut client, resume) = (client.clone(), resume.clone());
        async move { client.stream_events(resume).await.err() }
    })
    .await;
    let info = expired.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "CURSOR_EXPIRED");

    // Following the advice (from_beginning) starts at the oldest event kept.
    let request = proto::DeliverMessageRequest {
        session_id: "dave".into(),
        from: "15550004444".into(),
        text: "after the trim".into(),
        ..Default::default()
    };
    daemon.phone().await.deliver_message(request).await.unwrap();
    let mut stream = client
        .stream_events(named)
        .await
        .expect("from_beginning moves it on")
        .into_inner();
    let oldest_kept = common::next(&mut stream).await.unwrap().cursor;
    assert!(oldest_kept > first, "{oldest_kept} after {first}");
    daemon.stop().await;
}

/// A text of about 300 bytes, numbered.
fn long_text(n: usize) -> String {
    format!("{n:03} {}", "x".repeat(300))
}

/// `from` sends `text` to `session` on the emulated phone.
async fn deliver(daemon: &Daemon, session: &str, text: &str) {
    let request = proto::DeliverMessageRequest {
        session_id: session.into(),
        from: "15550006666".into(),
        text: text.into(),
        ..Default::default()
    };
    daemon.phone().await.deliver_message(request).await.unwrap();
}

/// The cursors of the message events kept, oldest first, up to the one whose text is
/// `last`; None if the read expired.
async fn kept_cursors(mut client: EventServiceClient<Channel>, last: String) -> Option<Vec<String>> {
    let kept = StreamEventsRequest {
        from_beginning: true,
        kinds: vec![proto::EventKind::Message as i32],
        ..Default::default()
    };
    let mut stream = client.stream_events(kept).await.ok()?.into_inner();
    let mut cursors = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a stream message within 10s")
            .ok()??;
        cursors.push(event.cursor.clone());
        if message(event).2 == last {
            return Some(cursors);
        }
    }
}

#[tokio::test]
async fn a_consumer_whose_position_expired_moves_on_with_after_cursor_and_resumes_after_its_next_ack() {
    // A byte cap the flood below overflows: once the flood stops nothing more is
    // trimmed, so what is kept stays put while the test reads it.
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |config| {
        config.events.event_retention_bytes = 4096;
        config.events.event_trim_interval = Duration::from_millis(100);
    })
    .await;
    paired(&daemon, "fay").await;
    let mut client = events(&daemon).await;
    let (_, first) = billing_first(&mut client).await;
    let ack = |cursor: &str| AckEventsRequest {
        consumer: "billing".into(),
        cursor: cursor.into(),
    };
    client.ack_events(ack(&first)).await.unwrap();

    const FLOOD: usize = 30;
    for n in 0..FLOOD {
        deliver(&daemon, "fay", &long_text(n)).await;
    }
    let resume = StreamEventsRequest {
        consumer: "billing".into(),
        ..Default::default()
    };
    let expired = wait_for(Duration::from_secs(20), "the consumer's position to expire", || {
        let (mut client, resume) = (client.clone(), resume.clone());
        async move { client.stream_events(resume).await.err() }
    })
    .await;
    assert_eq!(
        expired.get_details_error_info().expect("ErrorInfo").reason,
        "CURSOR_EXPIRED"
    );

    // What is kept, read anonymously up to the flood's last message (again if a
    // trim still under way expires the reader).
    let cursors = wait_for(Duration::from_secs(20), "the flood's kept messages", || {
        kept_cursors(client.clone(), long_text(FLOOD - 1))
    })
    .await;
    assert!(cursors.len() >= 2 && cursors.len() < FLOOD, "{} kept", cursors.len());

    // Given a cursor, the expired consumer starts right after it.
    let before_last = cursors[cursors.len() - 2].clone();
    let last = cursors[cursors.len() - 1].clone();
    let moved = StreamEventsRequest {
        consumer: "billing".into(),
        after_cursor: before_last,
        ..Default::default()
    };
    let mut stream = client
        .stream_events(moved)
        .await
        .expect("after_cursor moves it on")
        .into_inner();
    let next = common::next(&mut stream).await.unwrap();
    assert_eq!(next.cursor, last);
    assert_eq!(message(next).2, long_text(FLOOD - 1));
    drop(stream);

    // Its ack is stored, and a plain resume starts after it.
    let stored = client.ack_events(ack(&last)).await.unwrap().into_inner();
    assert_eq!(stored.cursor, last);
    deliver(&daemon, "fay", "after the ack").await;
    let mut stream = client
        .stream_events(resume)
        .await
        .expect("resumes at its acked position")
        .into_inner();
    let next = common::next(&mut stream).await.unwrap();
    assert!(next.cursor > last, "{} after {last}", next.cursor);
    assert_eq!(message(next).2, "after the ack");
    daemon.stop().await;
}

#[tokio::test]
async fn consumers_are_capped_and_a_deleted_one_frees_its_place_and_its_metric() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |c| c.events.max_consumers = 2).await;
    let mut client = events(&daemon).await;
    let ack = |consumer: &str| AckEventsRequest {
        consumer: consumer.into(),
        cursor: "0000000000000000".into(),
    };
    client.ack_events(ack("billing")).await.unwrap();
    client.ack_events(ack("crm")).await.unwrap();
    let third = client.ack_events(ack("audit")).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(
        third.message().contains("at most 2 consumers") && third.message().contains("DeleteConsumer"),
        "{}",
        third.message()
    );
    client
        .ack_events(ack("billing"))
        .await
        .expect("a known consumer still acks");

    let delete = |consumer: &str| proto::DeleteConsumerRequest {
        consumer: consumer.into(),
    };
    client.delete_consumer(delete("crm")).await.unwrap();
    let (_, metrics) = daemon.admin_get("/metrics").await;
    assert!(
        metrics.contains("consumer=\"billing\""),
        "a live consumer has its series"
    );
    assert!(
        !metrics.contains("consumer=\"crm\""),
        "the deleted consumer's series is gone"
    );
    client.ack_events(ack("audit")).await.expect("its place is free");
    let again = client.delete_consumer(delete("crm")).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    assert!(again.message().contains("crm"), "{}", again.message());
    daemon.stop().await;
}

/// The message events of `stream` as (id, kind, text, recovered).
fn message(event: proto::Event) -> (String, i32, String, bool) {
    match event.body {
        Some(proto::event::Body::Message(m)) => (m.id, m.kind, m.text, m.recovered),
        other => panic!("not a message: {other:?}"),
    }
}

#[tokio::test]
async fn an_undecryptable_message_is_logged_as_a_placeholder_then_once_when_the_phone_recovers_it() {
    use proto::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    paired(&daemon, "uma").await;
    let mut phone = daemon.phone().await;
    let request = StreamEventsRequest {
        from_beginning: true,
        session_ids: vec!["uma".into()],
        kinds: vec![proto::EventKind::Message as i32],
        ..Default::default()
    };
    let mut stream = events(&daemon).await.stream_events(request).await.unwrap().into_inner();

    let undecryptable = proto::DeliverUndecryptableMessageRequest {
        session_id: "uma".into(),
        from: "15550005555".into(),
        text: "sent while the keys were out of step".into(),
    };
    let id = phone
        .deliver_undecryptable_message(undecryptable)
        .await
        .unwrap()
        .into_inner()
        .message_id;
    let placeholder = message(common::next(&mut stream).await.unwrap());
    assert_eq!(
        placeholder,
        (id.clone(), MessageKind::Undecryptable as i32, String::new(), false)
    );

    let recover = proto::RecoverMessageRequest {
        session_id: "uma".into(),
        message_id: id.clone(),
    };
    phone.recover_message(recover.clone()).await.unwrap();
    let text = "sent while the keys were out of step".to_owned();
    let recovered = message(common::next(&mut stream).await.unwrap());
    assert_eq!(recovered, (id.clone(), MessageKind::Text as i32, text.clone(), true));

    // The same id delivered normally later is the same message: not logged again.
    for (text, message_id) in [(text.as_str(), id.as_str()), ("after it", "")] {
        let request = proto::DeliverMessageRequest {
            session_id: "uma".into(),
            from: "15550005555".into(),
            text: text.into(),
            message_id: message_id.into(),
        };
        phone.deliver_message(request).await.unwrap();
    }
    let next = message(common::next(&mut stream).await.unwrap());
    assert_eq!((next.2.as_str(), next.3), ("after it", false), "no duplicate before it");

    let again = phone.recover_message(recover).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound, "recovered once");
    daemon.stop().await;
}
