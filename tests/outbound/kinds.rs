//! Replies, reactions, edits and revokes reach the server pointing at their
//! targets; what the log does not know, or the account may not do, is refused.

use wa_sessiond::proto::{DeliverMessageRequest, Edit, EmulatedKind, Reaction, Revoke};

use super::*;

fn with(id: &str, content: Content) -> SendMessageRequest {
    SendMessageRequest {
        session_id: id.into(),
        to: "+15550001111".into(),
        content: Some(content),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_reply_a_reaction_an_edit_and_a_revoke_reach_the_server_with_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let original = send(&mut client, text("alice", "+15550001111", "", "the original")).await;
    let from_phone = DeliverMessageRequest {
        session_id: "alice".into(),
        from: "15550001111".into(),
        text: "a question".into(),
        ..Default::default()
    };
    let received = daemon
        .phone()
        .await
        .deliver_message(from_phone)
        .await
        .unwrap()
        .into_inner()
        .message_id;
    wait_for(Duration::from_secs(10), "the phone's message in the log", || {
        let mut client = client.clone();
        let received = received.clone();
        async move {
            let reply = SendMessageRequest {
                reply_to_message_id: received,
                ..text("alice", "+15550001111", "reply-1", "an answer")
            };
            client.send_message(reply).await.ok()
        }
    })
    .await;

    let target = |id: &str| id.to_owned();
    let reaction = Content::Reaction(Reaction {
        message_id: received.clone(),
        emoji: "👍".into(),
    });
    send(&mut client, with("alice", reaction)).await;
    let edit = Content::Edit(Edit {
        message_id: original.message_id.clone(),
        text: "the original, fixed".into(),
    });
    send(&mut client, with("alice", edit)).await;
    let revoke = Content::Revoke(Revoke {
        message_id: original.message_id.clone(),
    });
    send(&mut client, with("alice", revoke)).await;

    let at: Vec<_> = at_server(&daemon, "alice")
        .await
        .into_iter()
        .map(|m| {
            (
                EmulatedKind::try_from(m.kind).unwrap(),
                m.text,
                m.quoted_id,
                m.target_id,
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            (EmulatedKind::Text, "the original".into(), String::new(), String::new()),
            (EmulatedKind::Text, "an answer".into(), target(&received), String::new()),
            (EmulatedKind::Reaction, "👍".into(), String::new(), target(&received)),
            (
                EmulatedKind::Edit,
                "the original, fixed".into(),
                String::new(),
                target(&original.message_id)
            ),
            (
                EmulatedKind::Revoke,
                String::new(),
                String::new(),
                target(&original.message_id)
            ),
        ]
    );

    // Only the account's own messages can be edited or deleted.
    let not_mine = Content::Edit(Edit {
        message_id: received.clone(),
        text: "no".into(),
    });
    let refused = client.send_message(with("alice", not_mine)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("not by this account"),
        "{}",
        refused.message()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn pointing_at_a_message_the_log_does_not_know_for_that_chat_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let mine = send(&mut client, text("alice", "+15550001111", "", "to one chat")).await;
    let unknown = SendMessageRequest {
        reply_to_message_id: "3EB0UNKNOWN".into(),
        ..text("alice", "+15550001111", "", "a reply")
    };
    let missing = client.send_message(unknown).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(missing.message().contains("3EB0UNKNOWN"), "{}", missing.message());
    // Known, but in another chat.
    let elsewhere = Content::Reaction(Reaction {
        message_id: mine.message_id,
        emoji: "🎉".into(),
    });
    let other_chat = SendMessageRequest {
        to: "+15559999999".into(),
        ..with("alice", elsewhere)
    };
    assert_eq!(
        client.send_message(other_chat).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    assert_eq!(at_server(&daemon, "alice").await.len(), 1, "nothing refused was sent");
    daemon.stop().await;
}

#[tokio::test]
async fn typing_and_read_marks_reach_the_server_and_need_a_connected_session() {
    use wa_sessiond::proto::{ChatState, DisconnectSessionRequest, MarkReadRequest, SendChatStateRequest};
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), |_| {}).await;
    let mut client = daemon.sessions().await;
    paired(&daemon, "alice").await;
    let typing = |state: ChatState| SendChatStateRequest {
        session_id: "alice".into(),
        to: "+15550001111".into(),
        state: state as i32,
    };
    client.send_chat_state(typing(ChatState::Composing)).await.unwrap();
    client.send_chat_state(typing(ChatState::Paused)).await.unwrap();
    let read = MarkReadRequest {
        session_id: "alice".into(),
        chat: "+15550001111".into(),
        message_ids: vec!["AAA1".into(), "AAA2".into()],
        ..Default::default()
    };
    client.mark_read(read.clone()).await.unwrap();

    let at: Vec<_> = at_server(&daemon, "alice")
        .await
        .into_iter()
        .map(|m| (EmulatedKind::try_from(m.kind).unwrap(), m.state, m.target_id))
        .collect();
    assert_eq!(
        at,
        [
            (EmulatedKind::ChatState, ChatState::Composing as i32, String::new()),
            (EmulatedKind::ChatState, ChatState::Paused as i32, String::new()),
            (EmulatedKind::Read, ChatState::Unspecified as i32, "AAA1,AAA2".into()),
        ]
    );
    let no_state = client
        .send_chat_state(typing(ChatState::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(no_state.code(), tonic::Code::InvalidArgument);
    let no_ids = MarkReadRequest {
        message_ids: vec![],
        ..read.clone()
    };
    assert_eq!(
        client.mark_read(no_ids).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    let away = DisconnectSessionRequest {
        session_id: "alice".into(),
    };
    client.disconnect_session(away).await.unwrap();
    let refused = client.send_chat_state(typing(ChatState::Composing)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        client.mark_read(read).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    daemon.stop().await;
}
