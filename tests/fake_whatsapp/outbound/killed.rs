//! The daemon binary on the real backend, killed with -9 while the fake holds
//! its acks: every accepted message is at the server once, under the id the
//! daemon answered (what the restarts resend carries the same ids), and is acked
//! once released.

use fake_whatsapp::proto::{HoldServerAcksRequest, ListReceivedMessagesRequest, ReceivedMessage, ScanQrRequest};

use super::*;
use crate::{common::process::Process, Fake};

/// Messages accepted before each kill.
const PER_ROUND: usize = 20;

/// Kills.
const ROUNDS: usize = 3;

async fn connected(daemon: &Process) {
    let mut sessions = daemon.sessions().await;
    let is_connected = |s: &wa_sessiond::proto::Session| status(s) == SessionStatus::Connected;
    wait_session(&mut sessions, "vic", "vic CONNECTED", is_connected).await;
}

async fn hold(fake: &Fake, hold: bool) {
    let request = HoldServerAcksRequest {
        phone_number: OWNER.into(),
        hold,
    };
    fake.control.clone().hold_server_acks(request).await.unwrap();
}

async fn received(fake: &Fake) -> Vec<ReceivedMessage> {
    let listed = fake
        .control
        .clone()
        .list_received_messages(ListReceivedMessagesRequest {})
        .await;
    listed.unwrap().into_inner().messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_accepted_before_each_of_three_kills_are_at_the_server_once_under_their_ids_and_acked() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.running.url();
    hold(&fake, true).await;
    let mut accepted = Vec::new();
    for round in 0..ROUNDS {
        let daemon = Process::start_real(dir.path(), &url, &[]).await;
        let mut sessions = daemon.sessions().await;
        if round == 0 {
            let created = sessions.create_session(create("vic")).await.unwrap();
            let code = created.into_inner().qr.expect("a first qr code").code;
            let scan = ScanQrRequest {
                code,
                phone_number: OWNER.into(),
            };
            fake.control.clone().scan_qr(scan).await.unwrap();
        }
        connected(&daemon).await;
        for n in 0..PER_ROUND {
            let request = SendMessageRequest {
                session_id: "vic".into(),
                to: FRIEND.into(),
                content: Some(text(&format!("round {round} message {n}"))),
                ..Default::default()
            };
            let sent = sessions.send_message(request).await.unwrap().into_inner();
            accepted.push((sent.message_id, format!("round {round} message {n}")));
        }
        // At once: some of the round's messages may not have left yet.
        daemon.kill9();
    }

    let daemon = Process::start_real(dir.path(), &url, &[]).await;
    connected(&daemon).await;
    let every = wait_for(STEP_BOUND, "every accepted message at the server", || async {
        let received = received(&fake).await;
        let all = accepted.iter().all(|(id, _)| received.iter().any(|m| m.id == *id));
        all.then_some(received)
    })
    .await;
    for (id, body) in &accepted {
        let copies: Vec<_> = every.iter().filter(|m| m.id == *id).collect();
        assert_eq!(copies.len(), 1, "{id} once at the server");
        assert_eq!(copies[0].text, *body, "{id} under its own id");
    }
    assert_eq!(every.len(), accepted.len(), "nothing else at the server");

    hold(&fake, false).await;
    let sessions = daemon.sessions().await;
    for (id, _) in &accepted {
        wait_for(STEP_BOUND, &format!("{id} SERVER_ACK"), || {
            let mut sessions = sessions.clone();
            async move {
                let request = GetMessageStatusRequest {
                    session_id: "vic".into(),
                    message_id: id.clone(),
                    ..Default::default()
                };
                let info = sessions.get_message_status(request).await.ok()?.into_inner();
                (info.status() == MessageStatus::ServerAck).then_some(())
            }
        })
        .await;
    }
    let after = received(&fake).await;
    assert_eq!(after.len(), accepted.len(), "the resends added nothing: {after:?}");
}
