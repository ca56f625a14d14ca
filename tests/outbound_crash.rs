//! Nothing accepted is lost, nothing is sent twice, across kill -9 (the real
//! binary, emulated WhatsApp): the server holds its acks while 200 messages are
//! accepted over three runs, each ended by kill -9; after the restarts each
//! accepted message is at the server exactly once, under its id, and reaches
//! SERVER_ACK once the server acks again. Retried keys answer their first answer.

mod common;

use std::{collections::HashSet, time::Duration};

use common::{process::Process, status, wait_for, wait_session};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    send_message_request::Content, session_service_client::SessionServiceClient, GetMessageStatusRequest,
    HoldServerAcksRequest, ListSentMessagesRequest, MessageStatus, SendMessageRequest, SessionStatus,
};

const RUNS: usize = 3;
const MESSAGES: usize = 200;

fn message(n: usize) -> SendMessageRequest {
    SendMessageRequest {
        session_id: "alice".into(),
        to: format!("+1555000{:04}", n % 7),
        client_message_id: format!("m{n}"),
        content: Some(Content::Text(format!("message {n}"))),
        ..Default::default()
    }
}

async fn connected(process: &Process) -> SessionServiceClient<Channel> {
    let mut client = process.sessions().await;
    wait_session(&mut client, "alice", "alice CONNECTED", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_accepted_while_acks_are_held_survive_three_kill_9s_and_reach_the_server_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Process::start(dir.path(), &[]).await;
    daemon.link("alice").await;
    let hold = |hold| HoldServerAcksRequest {
        session_id: "alice".into(),
        hold,
    };
    daemon.phone().await.hold_server_acks(hold(true)).await.unwrap();

    let mut accepted: Vec<(usize, String)> = Vec::new();
    for run in 0..RUNS {
        let client = connected(&daemon).await;
        let range = (run * MESSAGES / RUNS)..((run + 1) * MESSAGES / RUNS);
        // Four callers at once, each its own share of the run.
        let callers: Vec<_> = (0..4)
            .map(|caller| {
                let mut client = client.clone();
                let mine: Vec<usize> = range.clone().filter(|n| n % 4 == caller).collect();
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    for n in mine {
                        let answer = client.send_message(message(n)).await.expect("accepted").into_inner();
                        assert_eq!(answer.status, MessageStatus::Sent as i32);
                        answers.push((n, answer.message_id));
                    }
                    answers
                })
            })
            .collect();
        for caller in callers {
            accepted.extend(caller.await.unwrap());
        }
        daemon.kill9();
        daemon = Process::start(dir.path(), &[]).await;
    }
    assert_eq!(accepted.len(), MESSAGES);
    let mut client = connected(&daemon).await;

    // A retried key, after all this, answers its first answer and sends nothing.
    let (n, first_id) = accepted[17].clone();
    let retried = client.send_message(message(n)).await.unwrap().into_inner();
    assert_eq!(retried.message_id, first_id);

    daemon.phone().await.hold_server_acks(hold(false)).await.unwrap();
    let ids: Vec<String> = accepted.iter().map(|(_, id)| id.clone()).collect();
    wait_for(Duration::from_secs(60), "every accepted message SERVER_ACK", || {
        let client = client.clone();
        let ids = ids.clone();
        async move {
            for id in ids {
                let request = GetMessageStatusRequest {
                    session_id: "alice".into(),
                    message_id: id,
                    ..Default::default()
                };
                let info = client.clone().get_message_status(request).await.ok()?.into_inner();
                if info.status != MessageStatus::ServerAck as i32 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;

    let request = ListSentMessagesRequest {
        session_id: "alice".into(),
    };
    let at_server = daemon
        .phone()
        .await
        .list_sent_messages(request)
        .await
        .unwrap()
        .into_inner()
        .messages;
    let unique: HashSet<&str> = at_server.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(unique.len(), at_server.len(), "each id once at the server");
    assert_eq!(
        unique,
        ids.iter().map(String::as_str).collect::<HashSet<_>>(),
        "exactly the accepted ones"
    );
    for (n, id) in &accepted {
        let m = at_server.iter().find(|m| &m.message_id == id).unwrap();
        assert_eq!(m.text, format!("message {n}"), "under its own id");
    }
}
