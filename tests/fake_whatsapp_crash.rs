//! Nothing lost, nothing twice, across kill -9 of the real binary on the real
//! backend: phones write to a linked account while the daemon is killed as the
//! messages come in (some committed and acked, some decrypted but not yet
//! committed, some not yet taken); after each restart WhatsApp (the fake) delivers
//! again what was not acked, and in the end the log holds each message exactly once
//! (after its UNDECRYPTABLE placeholder, when a redelivery could not be decrypted)
//! and the fake holds nothing.

mod common;

use std::{collections::HashMap, path::Path};

use common::{create, fake::*, process::Process, status, wait_for};
use fake_whatsapp::proto::ScanQrRequest;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, EventKind, GetSessionRequest, MessageKind, SessionStatus,
    StreamEventsRequest,
};

/// The linked account's phone.
const OWNER: &str = "15550001111";

/// The phones that write to it.
const PHONES: [&str; 2] = ["15550002222", "15550003333"];

/// Kills of the daemon.
const KILLS: usize = 3;

/// Messages each phone sends per round.
const PER_ROUND: usize = 10;

/// The binary on the real backend, dialing `fake`.
async fn start(dir: &Path, fake: &Fake) -> Process {
    Process::start_real(dir, &fake.running.url(), &["--qr-timeout", "30s"]).await
}

/// Waits (bounded) until `id` is CONNECTED.
async fn connected(daemon: &Process, id: &str) {
    let sessions = daemon.sessions().await;
    wait_for(STEP_BOUND, "CONNECTED", || {
        let mut sessions = sessions.clone();
        async move {
            let request = GetSessionRequest {
                session_id: id.into(),
                no_refresh: true,
                ..Default::default()
            };
            let session = sessions.get_session(request).await.ok()?.into_inner();
            (status(&session) == SessionStatus::Connected).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn messages_arriving_around_kill_9s_of_the_daemon_are_logged_once_each_and_all_acked() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path(), &fake).await;
    let created = daemon.sessions().await.create_session(create("alice")).await.unwrap();
    let scan = ScanQrRequest {
        code: created.into_inner().qr.expect("a first qr code").code,
        phone_number: OWNER.into(),
    };
    fake.control.clone().scan_qr(scan).await.unwrap();
    connected(&daemon, "alice").await;

    let mut sent = Vec::new();
    for round in 0..KILLS {
        let before = fake.pending(OWNER).await;
        for n in 0..PER_ROUND {
            for phone in PHONES {
                sent.push(fake.send(OWNER, phone, &format!("{phone} {round}-{n}")).await);
            }
        }
        let held = before + (PER_ROUND * PHONES.len()) as u64;
        // Killed once the daemon has begun to take them: mid-stream.
        wait_for(STEP_BOUND, "the daemon to ack some", || async {
            (fake.pending(OWNER).await < held).then_some(())
        })
        .await;
        daemon.kill9();
        daemon = start(dir.path(), &fake).await;
        connected(&daemon, "alice").await;
    }
    fake.wait_pending(OWNER, 0).await;
    // A last live message marks the end: everything logged comes before it.
    let marker = fake.send(OWNER, PHONES[0], "the end").await;

    let request = StreamEventsRequest {
        from_beginning: true,
        kinds: vec![EventKind::Message as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    let mut stream = events.stream_events(request).await.unwrap().into_inner();
    let mut logged: HashMap<String, usize> = HashMap::new();
    // A message whose decryption state the library saved before the kill, but
    // which the log had not yet committed, cannot be decrypted when delivered
    // again: the log keeps an UNDECRYPTABLE placeholder, and the message itself
    // once the phone sends it again (events.proto). Placeholders are not messages.
    let mut placeholders = Vec::new();
    loop {
        let event = tokio::time::timeout(STEP_BOUND, stream.message())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} messages logged", logged.len(), sent.len()))
            .expect("a healthy stream")
            .expect("the stream goes on");
        let Some(Body::Message(message)) = event.body else {
            panic!("not a message: {event:?}");
        };
        if message.id == marker {
            break;
        }
        if message.kind == MessageKind::Undecryptable as i32 {
            assert!(
                !logged.contains_key(&message.id),
                "a placeholder after its message: {}",
                message.id
            );
            placeholders.push(message.id);
            continue;
        }
        *logged.entry(message.id).or_default() += 1;
    }
    let unrecovered: Vec<_> = placeholders.iter().filter(|id| !logged.contains_key(*id)).collect();
    assert!(
        unrecovered.is_empty(),
        "placeholders never followed by their message: {unrecovered:?}"
    );
    let twice: Vec<_> = logged.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    let mut sent_ids = sent.clone();
    sent_ids.sort();
    let mut logged_ids: Vec<_> = logged.into_keys().collect();
    logged_ids.sort();
    assert_eq!(logged_ids, sent_ids, "every message sent, once");
    drop(stream);
    daemon.sigterm();
    let (exit, _) = daemon.wait_exit(STEP_BOUND).await;
    assert!(exit.success(), "{exit:?}");
    fake.running.stop().await;
}
