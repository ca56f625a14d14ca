//! Outbound messages a service can trust, on the emulator (the same bodies run on
//! the real backend in `fake_whatsapp`): each status once in the event stream and
//! in GetMessageStatus, WhatsApp's nack as FAILED with its code, one message per
//! idempotency key across concurrent calls and restarts, queued messages leaving in
//! order, and replies, reactions, edits and revokes pointing at their targets.
//!
//! - `statuses`: SENT, SERVER_ACK, DELIVERED, READ; nacks; expiry.
//! - `keys`: idempotency.
//! - `kinds`: replies, reactions, edits, revokes, and what is refused.
//! - `offline`: `queue_if_offline`.

#[path = "../common/mod.rs"]
mod common;

mod keys;
mod kinds;
mod offline;
mod statuses;

use std::time::Duration;

use common::*;
use tonic::transport::Channel;
use wa_sessiond::proto::{
    event::Body, event_service_client::EventServiceClient, send_message_request::Content,
    session_service_client::SessionServiceClient, EmulatedMessage, Event, EventKind, GetMessageStatusRequest,
    ListSentMessagesRequest, MessageStatus, MessageStatusInfo, OutboundUpdate, SendMessageRequest, SendMessageResponse,
    StreamEventsRequest,
};

/// A text to `to` from session `id`, with the caller's `key` ("" for none).
fn text(id: &str, to: &str, key: &str, text: &str) -> SendMessageRequest {
    SendMessageRequest {
        session_id: id.into(),
        to: to.into(),
        client_message_id: key.into(),
        content: Some(Content::Text(text.into())),
        ..Default::default()
    }
}

/// Sends and expects an answer.
async fn send(client: &mut SessionServiceClient<Channel>, request: SendMessageRequest) -> SendMessageResponse {
    client.send_message(request).await.expect("sent").into_inner()
}

/// Where the session's message stands, by WhatsApp's id.
async fn status_of(client: &mut SessionServiceClient<Channel>, id: &str, message_id: &str) -> MessageStatusInfo {
    let request = GetMessageStatusRequest {
        session_id: id.into(),
        message_id: message_id.into(),
        ..Default::default()
    };
    client.get_message_status(request).await.expect("a status").into_inner()
}

/// Waits (bounded) until the message reaches `wanted`.
async fn wait_status(daemon: &Daemon, id: &str, message_id: &str, wanted: MessageStatus) -> MessageStatusInfo {
    let client = daemon.sessions().await;
    wait_for(Duration::from_secs(10), &format!("{message_id} {wanted:?}"), || {
        let mut client = client.clone();
        async move {
            let info = status_of(&mut client, id, message_id).await;
            (info.status == wanted as i32).then_some(info)
        }
    })
    .await
}

/// What the emulated server received from session `id`, once per id.
async fn at_server(daemon: &Daemon, id: &str) -> Vec<EmulatedMessage> {
    let request = ListSentMessagesRequest { session_id: id.into() };
    daemon
        .phone()
        .await
        .list_sent_messages(request)
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// The session's outbound events from the start of the log.
async fn outbound_stream(daemon: &Daemon, id: &str) -> tonic::Streaming<Event> {
    let request = StreamEventsRequest {
        session_ids: vec![id.into()],
        from_beginning: true,
        kinds: vec![EventKind::Outbound as i32],
        ..Default::default()
    };
    let mut events = EventServiceClient::new(daemon.channel().await);
    events.stream_events(request).await.unwrap().into_inner()
}

/// The next outbound update of a stream (within 10 s).
async fn next_update(stream: &mut tonic::Streaming<Event>) -> OutboundUpdate {
    match next(stream).await.expect("the stream goes on").body {
        Some(Body::Outbound(update)) => update,
        other => panic!("expected an outbound update, got {other:?}"),
    }
}

/// The status of an update, as the enum.
fn status_is(update: &OutboundUpdate) -> MessageStatus {
    MessageStatus::try_from(update.status).unwrap()
}
