//! Receipts across kill -9 (the real binary, emulated WhatsApp): phones send a burst
//! of delivered and read receipts for the messages a session sent while the daemon
//! is killed at random moments; afterwards each (message id, kind, from) is in the
//! log exactly once: none lost (the server forgets a receipt only once it is
//! committed) and none twice (the one the server delivers again after the crash is
//! recognized).

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{
    process::{answer_lost, channel_to, Process},
    status, wait_for, wait_session,
};
use rand::Rng;
use tokio::sync::watch;
use wa_sessiond::proto::{
    emulator_service_client::EmulatorServiceClient, event::Body, event_service_client::EventServiceClient,
    send_message_request::Content, EventKind, ReceiptKind, SendMessageRequest, SendReceiptRequest, SessionStatus,
    StreamEventsRequest,
};

const MESSAGES: usize = 60;
const PHONES: usize = 4;
const KILLS: usize = 3;
const KINDS: [ReceiptKind; 2] = [ReceiptKind::Delivered, ReceiptKind::Read];

/// One phone's share of the receipts, each sent until the server takes it, through
/// restarts. Returns how many calls lost their answer (sent again: the server may
/// hold those twice).
async fn phone(message_ids: Vec<String>, mut addr: watch::Receiver<SocketAddr>, answered: Arc<AtomicUsize>) -> usize {
    let mut in_doubt = 0;
    for message_id in message_ids {
        for kind in KINDS {
            loop {
                let current = *addr.borrow_and_update();
                let Some(channel) = channel_to(current).await else {
                    let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
                    continue;
                };
                let request = SendReceiptRequest {
                    session_id: "alice".into(),
                    message_id: message_id.clone(),
                    kind: kind as i32,
                };
                match EmulatorServiceClient::new(channel).send_receipt(request).await {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(status) if answer_lost(&status) => {
                        in_doubt += 1;
                        let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
                    }
                    Err(status) => panic!("{message_id}: {:?} {status}", status.code()),
                }
            }
        }
    }
    in_doubt
}

/// The receipts in the log (each id of each receipt event), waiting up to `quiet`
/// for the next one; stops at `enough`.
async fn logged_receipts(addr: SocketAddr, quiet: Duration, enough: usize) -> Option<Vec<(String, i32, String)>> {
    let mut client = EventServiceClient::new(channel_to(addr).await?);
    let request = StreamEventsRequest {
        kinds: vec![EventKind::Receipt as i32],
        from_beginning: true,
        ..Default::default()
    };
    let mut stream = client.stream_events(request).await.ok()?.into_inner();
    let mut receipts = Vec::new();
    while receipts.len() < enough {
        let Ok(Ok(Some(event))) = tokio::time::timeout(quiet, stream.message()).await else {
            break;
        };
        if let Some(Body::Receipt(receipt)) = event.body {
            for id in receipt.message_ids {
                receipts.push((id, receipt.kind, receipt.from.clone()));
            }
        }
    }
    Some(receipts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_survive_kill_9_exactly_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(dir.path(), &[]).await;
    daemon.link("alice").await;
    let mut sessions = daemon.sessions().await;
    let mut sent: HashMap<String, String> = HashMap::new();
    for n in 0..MESSAGES {
        let request = SendMessageRequest {
            session_id: "alice".into(),
            to: format!("+1555000{:04}", n % 7),
            content: Some(Content::Text(format!("message {n}"))),
            ..Default::default()
        };
        let answer = sessions.send_message(request).await.unwrap().into_inner();
        sent.insert(answer.message_id, format!("1555000{:04}", n % 7));
    }

    let (addr_tx, addr) = watch::channel(daemon.addr);
    let answered = Arc::new(AtomicUsize::new(0));
    let ids: Vec<String> = sent.keys().cloned().collect();
    let phones: Vec<_> = (0..PHONES)
        .map(|p| {
            let mine = ids.iter().skip(p).step_by(PHONES).cloned().collect();
            tokio::spawn(phone(mine, addr.clone(), answered.clone()))
        })
        .collect();
    let total = MESSAGES * KINDS.len();
    for kill in 0..KILLS {
        // Kill at a random point of the burst.
        let at = rand::thread_rng().gen_range(5..total / (KILLS + 1)) * (kill + 1);
        let probe = daemon.addr;
        wait_for(
            Duration::from_secs(120),
            "receipts logged before the kill",
            || async move {
                let seen = logged_receipts(probe, Duration::from_millis(300), at).await?;
                (seen.len() >= at).then_some(())
            },
        )
        .await;
        let done = answered.load(Ordering::Relaxed);
        eprintln!("kill {kill}: after {at} receipts logged, {done} of {total} sent");
        daemon.kill9();
        daemon = Process::start(dir.path(), &[]).await;
        addr_tx.send_replace(daemon.addr);
    }
    let mut in_doubt = 0;
    for phone in phones {
        in_doubt += phone.await.unwrap();
    }

    // Once connected with nothing held at the server, nothing more is coming.
    let mut sessions = daemon.sessions().await;
    wait_session(&mut sessions, "alice", "alice CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    daemon.wait_nothing_pending("alice").await;
    let receipts = logged_receipts(daemon.addr, Duration::from_secs(3), usize::MAX)
        .await
        .expect("the log can be read");

    let mut seen = HashSet::new();
    for (id, kind, from) in &receipts {
        assert!(
            seen.insert((id, kind, from)),
            "{id} {kind} from {from} twice in the log"
        );
        let to = sent
            .get(id)
            .unwrap_or_else(|| panic!("a receipt for {id}, which was not sent"));
        assert!(
            from.contains(to.as_str()),
            "{id}'s receipt is from {from}, its chat {to}"
        );
    }
    for id in sent.keys() {
        for kind in KINDS {
            assert!(
                receipts.iter().any(|(i, k, _)| i == id && *k == kind as i32),
                "{id}'s {kind:?} receipt is missing from the log (calls in doubt: {in_doubt})"
            );
        }
    }
    assert_eq!(receipts.len(), total, "each receipt once");
}
