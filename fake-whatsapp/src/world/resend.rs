//! Messages a device cannot decrypt, and the account's phone sending them again.
//! A phone's undecryptable message (`SendUndecryptableMessage`) reaches the
//! devices as a Signal message of a session they do not have, and its sender
//! does not answer their retry receipts; the recipient's phone keeps what was
//! sent, as a phone has every message of its account. A device that cannot
//! decrypt a message asks its own phone for it (a `PeerDataOperationRequest`
//! of type `PLACEHOLDER_MESSAGE_RESEND`, sent to the phone, `category="peer"`);
//! unless told not to (`AnswerResendRequests`), the phone answers that device as
//! WhatsApp's phone app does: a `PeerDataOperationRequestResponseMessage` (its
//! `stanza_id` the request's id) with one result per message it has, each the
//! message's `WebMessageInfo` (key, message, timestamp, push name) encoded in
//! `web_message_info_bytes`.

use std::collections::HashMap;

use buffa::{Message as _, MessageField};
use tracing::{debug, info};
use waproto::whatsapp as wa;

use super::{World, PUSH_NAME};
use crate::{
    inbox::{Class, Item, Payload},
    stanza,
    vocab::{DeviceAddr, Refusal},
};

/// What a phone holds of the undecryptable messages sent to its account.
#[derive(Debug, Default)]
pub struct Resends {
    /// Phones leave resend requests unanswered (`AnswerResendRequests` false).
    ignoring: bool,
    /// By (account, message id): the sender (digits), the text, when it was sent.
    copies: HashMap<(String, String), (String, String, u64)>,
}

impl World {
    /// `from`'s phone sends `text` to `to`'s linked devices as a message they
    /// cannot decrypt (held like any message); `to`'s phone keeps it. Returns the
    /// message id.
    pub async fn send_undecryptable(&self, to: &str, from: &str, text: &str) -> Result<String, Refusal> {
        let id = self.queue_message(to, from, text, "", Payload::Undecryptable).await?;
        let copy = (from.to_owned(), text.to_owned(), stanza::now());
        let mut inner = self.inner.lock().await;
        inner.resends.copies.insert((to.to_owned(), id.clone()), copy);
        Ok(id)
    }

    /// Whether phones answer their devices' resend requests (they do unless told).
    pub async fn answer_resend_requests(&self, answer: bool) {
        self.inner.lock().await.resends.ignoring = !answer;
    }

    /// `device` sent its own phone (addressed as `phone_jid`) `message` (a peer
    /// message, stanza `request_id`): a resend request is answered to that device,
    /// from `phone_jid`, with the messages the phone has; anything else is left
    /// alone.
    pub async fn peer_message(&self, device: &DeviceAddr, request_id: &str, phone_jid: &str, message: &wa::Message) {
        use wa::message::PeerDataOperationRequestType as Type;
        let Some(request) = message
            .protocol_message
            .as_option()
            .and_then(|protocol| protocol.peer_data_operation_request_message.as_option())
            .filter(|request| request.peer_data_operation_request_type == Some(Type::PLACEHOLDER_MESSAGE_RESEND))
        else {
            return;
        };
        let mut inner = self.inner.lock().await;
        if inner.resends.ignoring {
            info!(device = %device.jid(), %request_id, "a resend request left unanswered, as ordered");
            return;
        }
        let results: Vec<_> = request
            .placeholder_message_resend_request
            .iter()
            .filter_map(|asked| asked.message_key.as_option()?.id.clone())
            .filter_map(|id| {
                let copy = inner.resends.copies.get(&(device.phone.clone(), id.clone()));
                copy.map(|(from, text, t)| resent(&id, from, text, *t))
            })
            .collect();
        if results.is_empty() {
            debug!(device = %device.jid(), %request_id, "a resend request for messages the phone does not have");
            return;
        }
        let answer = answer(request_id, results);
        let item = Item {
            seq: 0,
            class: Class::Message,
            id: super::mail::message_id(),
            from: device.phone.clone(),
            text: String::new(),
            t: stanza::now(),
            stanza: None,
            payload: Payload::Peer {
                message: answer.encode_to_vec(),
                from: phone_jid.to_owned(),
            },
        };
        info!(device = %device.jid(), %request_id, "the phone answers a resend request");
        inner.inbox.push(device, item);
        inner.wake(std::slice::from_ref(device));
    }
}

type Resent = wa::message::peer_data_operation_request_response_message::PeerDataOperationResult;

/// One message the phone sends again: its `WebMessageInfo`, encoded.
fn resent(id: &str, from: &str, text: &str, t: u64) -> Resent {
    use wa::message::peer_data_operation_request_response_message::peer_data_operation_result::PlaceholderMessageResendResponse;
    let web = wa::WebMessageInfo {
        key: MessageField::some(wa::MessageKey {
            remote_jid: Some(format!("{from}@s.whatsapp.net")),
            from_me: Some(false),
            id: Some(id.to_owned()),
            participant: None,
        }),
        message: MessageField::some(wa::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        }),
        message_timestamp: Some(t),
        push_name: Some(PUSH_NAME.to_owned()),
        ..Default::default()
    };
    Resent {
        placeholder_message_resend_response: MessageField::some(PlaceholderMessageResendResponse {
            web_message_info_bytes: Some(web.encode_to_vec()),
        }),
        ..Default::default()
    }
}

/// The phone's answer to resend request `request_id`.
fn answer(request_id: &str, results: Vec<Resent>) -> wa::Message {
    use wa::message::{protocol_message::Type, PeerDataOperationRequestResponseMessage, PeerDataOperationRequestType};
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(Type::PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE),
            peer_data_operation_request_response_message: MessageField::some(PeerDataOperationRequestResponseMessage {
                peer_data_operation_request_type: Some(PeerDataOperationRequestType::PLACEHOLDER_MESSAGE_RESEND),
                stanza_id: Some(request_id.to_owned()),
                peer_data_operation_result: results,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
