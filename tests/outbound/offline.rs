//! `queue_if_offline`: accepted while away, sent in order once connected, expired
//! after `--outbound-ttl`.

use std::time::SystemTime;

use tonic_types::StatusExt;
use wa_sessiond::proto::{ConnectSessionRequest, DisconnectSessionRequest, SessionStatus};

use super::*;

fn queued(id: &str, key: &str, body: &str) -> SendMessageRequest {
    SendMessageRequest {
        queue_if_offline: true,
        ..text(id, "+15550001111", key, body)
    }
}

async fn disconnect(client: &mut SessionServiceClient<Channel>, id: &str) {
    let request = DisconnectSessionRequest { session_id: id.into() };
    client.disconnect_session(request).await.unwrap();
}

async fn connect(client: &mut SessionServiceClient<Channel>, id: &str) {
    let request = ConnectSessionRequest {
        session_id: id.into(),
        ..Default::default()
    };
    client.connect_session(request).await.unwrap();
}

#[tokio::test]
async fn twenty_messages_queued_while_disconnected_leave_in_order_on_connect() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    disconnect(&mut client, "alice").await;

    let refused = client
        .send_message(text("alice", "+15550001111", "", "now"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let info = refused.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.reason, "SESSION_NOT_CONNECTED");
    assert_eq!(
        info.metadata.get("status").map(String::as_str),
        Some("SESSION_STATUS_DISCONNECTED")
    );

    let mut ids = Vec::new();
    for n in 0..20 {
        let answer = send(&mut client, queued("alice", &format!("q{n}"), &format!("queued {n}"))).await;
        assert_eq!(answer.status, MessageStatus::Queued as i32);
        ids.push(answer.message_id);
    }
    assert!(
        at_server(&daemon, "alice").await.is_empty(),
        "nothing leaves while disconnected"
    );
    assert_eq!(
        status_of(&mut client, "alice", &ids[0]).await.status,
        MessageStatus::Queued as i32
    );

    connect(&mut client, "alice").await;
    for id in &ids {
        wait_status(&daemon, "alice", id, MessageStatus::ServerAck).await;
    }
    let at: Vec<_> = at_server(&daemon, "alice")
        .await
        .into_iter()
        .map(|m| (m.message_id, m.text))
        .collect();
    let wanted: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| (id.clone(), format!("queued {n}")))
        .collect();
    assert_eq!(at, wanted, "in the order accepted, each once");
    // A retry of a queued key answers its first answer: QUEUED, the same id.
    let again = send(&mut client, queued("alice", "q3", "queued 3")).await;
    assert_eq!(
        (again.message_id.as_str(), again.status),
        (ids[3].as_str(), MessageStatus::Queued as i32)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_queued_message_older_than_the_outbound_ttl_fails_as_expired_and_never_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_millis(300);
    let daemon = Daemon::start(dir.path(), |c| c.events.outbound_ttl = ttl).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    wait_session(&mut client, "alice", "CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    disconnect(&mut client, "alice").await;
    let stale = send(&mut client, queued("alice", "", "too late")).await;
    let accepted = SystemTime::try_from(stale.accepted_at.unwrap()).unwrap();
    wait_for(Duration::from_secs(5), "the ttl to pass", || async {
        (SystemTime::now() > accepted + ttl).then_some(())
    })
    .await;

    connect(&mut client, "alice").await;
    let failed = wait_status(&daemon, "alice", &stale.message_id, MessageStatus::Failed).await;
    assert_eq!((failed.error.as_str(), failed.error_code), ("EXPIRED", 0));
    assert!(
        at_server(&daemon, "alice").await.is_empty(),
        "an expired message never leaves"
    );
    daemon.stop().await;
}
