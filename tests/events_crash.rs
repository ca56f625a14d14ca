//! Nothing lost, nothing twice, across kill -9 (the real binary, emulated
//! WhatsApp): a burst of 5,000 inbound messages over 20 sessions while the daemon is
//! killed at random moments, and a consumer that acks as it goes, itself killed and
//! reopened at random moments.

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use common::{
    process::{answer_lost, channel_to, Process},
    status, wait_for,
};
use rand::Rng;
use tokio::sync::watch;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, AckEventsRequest, DeliverMessageRequest, Event, EventKind,
    SessionStatus, StreamEventsRequest,
};

const SESSIONS: usize = 20;
const PER_SESSION: usize = 250;
const KILLS: usize = 3;

/// One phone writing to one session: every text until the server accepts it,
/// through restarts. Returns the ids accepted, in order, and the calls whose answer
/// was lost (the server may or may not hold those).
async fn phone(session: String, mut addr: watch::Receiver<SocketAddr>) -> (Vec<String>, usize) {
    let (mut accepted, mut in_doubt) = (Vec::new(), 0);
    for n in 0..PER_SESSION {
        loop {
            let current = *addr.borrow_and_update();
            let Some(channel) = channel_to(current).await else {
                let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
                continue;
            };
            let mut emulator = wa_sessiond::proto::emulator_service_client::EmulatorServiceClient::new(channel);
            let request = DeliverMessageRequest {
                session_id: session.clone(),
                from: "15550001000".into(),
                text: format!("{session}-{n}"),
                ..Default::default()
            };
            match emulator.deliver_message(request).await {
                Ok(answer) => {
                    accepted.push(answer.into_inner().message_id);
                    break;
                }
                // The daemon died under the call (the answer is lost) or is not up yet.
                Err(status) if answer_lost(&status) => {
                    in_doubt += 1;
                    let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
                }
                Err(status) => panic!("{session}: {:?} {status}", status.code()),
            }
        }
    }
    (accepted, in_doubt)
}

/// A consumer that acks every event it processed and now and then dies (drops its
/// stream) at a random point: before or after an ack. An event counts as processed
/// once its ack is known to have landed. Runs until `done` and it has caught up with
/// `final_head`.
async fn consumer(mut addr: watch::Receiver<SocketAddr>, final_head: watch::Receiver<Option<String>>) -> Vec<Event> {
    let mut processed: Vec<Event> = Vec::new();
    // Received and acked, but the answer was lost: whether it landed shows on reopen.
    let mut unsure: Option<Event> = None;
    loop {
        if let (Some(last), Some(head)) = (processed.last(), final_head.borrow().clone()) {
            if last.cursor >= head {
                return processed;
            }
        }
        let current = *addr.borrow_and_update();
        let Some(channel) = channel_to(current).await else {
            let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
            continue;
        };
        let mut client = EventServiceClient::new(channel);
        let request = StreamEventsRequest {
            consumer: "auditor".into(),
            from_beginning: true,
            ..Default::default()
        };
        let Ok(stream) = client.stream_events(request).await else {
            continue;
        };
        let mut stream = stream.into_inner();
        let lifetime = rand::thread_rng().gen_range(20..400);
        for _ in 0..lifetime {
            let event = match tokio::time::timeout(Duration::from_millis(500), stream.message()).await {
                Ok(Ok(Some(event))) => event,
                _ => break,
            };
            if let Some(pending) = unsure.take() {
                // The stream starts right after the stored position.
                if pending.cursor < event.cursor && processed.last().is_none_or(|p| p.cursor < pending.cursor) {
                    processed.push(pending);
                }
            }
            if rand::thread_rng().gen_ratio(1, 50) {
                break; // dies before acking: the event must come again
            }
            let ack = AckEventsRequest {
                consumer: "auditor".into(),
                cursor: event.cursor.clone(),
            };
            match client.ack_events(ack).await {
                Ok(_) => processed.push(event),
                Err(_) => {
                    unsure = Some(event);
                    break;
                }
            }
        }
    }
}

/// The whole log, oldest first (read once nothing more is coming).
async fn whole_log(addr: SocketAddr) -> Vec<Event> {
    let mut client = EventServiceClient::new(channel_to(addr).await.unwrap());
    let request = StreamEventsRequest {
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    // Every session is CONNECTED with nothing pending: nothing more is coming, and 5 s
    // of silence is the end.
    while let Ok(Ok(Some(event))) = tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_kill_9_exactly_once_and_a_crashing_consumer_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(dir.path(), &[]).await;
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("s{i:02}")).collect();
    for id in &ids {
        daemon.link(id).await;
    }
    let (addr_tx, addr) = watch::channel(daemon.addr);
    let (head_tx, final_head) = watch::channel(None);
    let auditor = tokio::spawn(consumer(addr.clone(), final_head));
    let phones: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(phone(id.clone(), addr.clone())))
        .collect();

    for kill in 0..KILLS {
        // Kill at a random point of the burst.
        let at = rand::thread_rng().gen_range(200..1_500) * (kill + 1);
        let probe = daemon.addr;
        wait_for(
            Duration::from_secs(120),
            "messages logged before the kill",
            || async move {
                let mut client = EventServiceClient::new(channel_to(probe).await?);
                let request = StreamEventsRequest {
                    kinds: vec![EventKind::Message as i32],
                    from_beginning: true,
                    ..Default::default()
                };
                let mut stream = client.stream_events(request).await.ok()?.into_inner();
                let mut n = 0;
                while n < at {
                    match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
                        Ok(Ok(Some(_))) => n += 1,
                        _ => break,
                    }
                }
                (n >= at).then_some(())
            },
        )
        .await;
        daemon.kill9();
        daemon = Process::start(dir.path(), &[]).await;
        addr_tx.send_replace(daemon.addr);
    }

    let mut accepted: HashMap<String, Vec<String>> = HashMap::new();
    let mut in_doubt = 0;
    for (id, phone) in ids.iter().zip(phones) {
        let (ids_accepted, doubtful) = phone.await.unwrap();
        assert_eq!(ids_accepted.len(), PER_SESSION);
        accepted.insert(id.clone(), ids_accepted);
        in_doubt += doubtful;
    }
    // Once connected, the server holds nothing more.
    let mut sessions = daemon.sessions().await;
    for id in &ids {
        common::wait_session(&mut sessions, id, "CONNECTED", |s| {
            status(s) == SessionStatus::Connected
        })
        .await;
        daemon.wait_nothing_pending(id).await;
    }

    let log = whole_log(daemon.addr).await;
    let mut by_session: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut unique = HashSet::new();
    for event in &log {
        if let Some(Body::Message(m)) = &event.body {
            assert!(
                unique.insert((event.session_id.clone(), m.id.clone())),
                "{} twice in the log",
                m.id
            );
            by_session.entry(&event.session_id).or_default().push(&m.id);
        }
    }
    let mut extra = 0;
    for (id, ids_accepted) in &accepted {
        let logged = by_session.get(id.as_str()).cloned().unwrap_or_default();
        let wanted: HashSet<&str> = ids_accepted.iter().map(String::as_str).collect();
        let in_order: Vec<&str> = logged.iter().copied().filter(|m| wanted.contains(m)).collect();
        assert_eq!(
            in_order,
            ids_accepted.iter().map(String::as_str).collect::<Vec<_>>(),
            "{id}: every accepted message once, in the server's order"
        );
        extra += logged.len() - in_order.len();
    }
    assert!(
        extra <= in_doubt,
        "only calls whose answer was lost may add messages: {extra} > {in_doubt}"
    );

    // The consumer, across all its lifetimes, processed the whole log once, in order.
    head_tx.send_replace(log.last().map(|e| e.cursor.clone()));
    let processed = tokio::time::timeout(Duration::from_secs(120), auditor)
        .await
        .expect("the consumer catches up")
        .unwrap();
    let cursors = |events: &[Event]| events.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
    assert_eq!(
        cursors(&processed),
        cursors(&log),
        "no gap and no repeat across the consumer's lifetimes"
    );
}

#[tokio::test]
async fn an_open_event_stream_ends_at_sigterm_and_does_not_hold_the_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(dir.path(), &[]).await;
    let mut client = EventServiceClient::new(daemon.channel().await);
    let request = StreamEventsRequest {
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client.stream_events(request).await.unwrap().into_inner();
    daemon.sigterm();
    // The stream ends (cleanly or with an error), it does not hang.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended at shutdown");
    let (status, _) = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let log = daemon.log().await;
    assert!(
        log.iter().any(|l| l.contains("shut down cleanly")),
        "drained, not cut off at the grace period"
    );
    assert!(!log.iter().any(|l| l.contains("grace period passed")));
}
