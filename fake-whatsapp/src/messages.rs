//! Messages devices send: every copy addressed to a fake phone (`<participants><to
//! jid><enc>`) is decrypted with that phone's Signal session, the recipient's text
//! is recorded for `ListReceivedMessages`, and the message is acknowledged as the
//! server does (`<ack class="message">`).

use buffa::Message as _;
use tracing::{info, warn};
use wacore::messages::MessageUtils;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::ProtocolAddress;
use waproto::whatsapp as wa;

use crate::{
    proto::ReceivedMessage,
    stanza::{self, attr, content_bytes},
    vocab::DeviceAddr,
    world::World,
};

/// Takes a `<message>` from `from` (the logged-in device): the acks to send back.
pub async fn receive(world: &World, from: Option<&DeviceAddr>, message: &Node) -> Vec<Node> {
    let id = attr(message, "id").unwrap_or_default();
    let to = attr(message, "to").unwrap_or_default();
    let ack = stanza::ack("message", &id, &to);
    let Some(from) = from else {
        warn!(%id, "a message from a connection without a logged-in device; not decrypted");
        return vec![ack];
    };
    let chat_user = to.parse::<Jid>().map(|jid| jid.user.to_string()).unwrap_or_default();
    let sender = ProtocolAddress::new(&from.phone, u32::from(from.device).into());
    for (recipient, enc) in copies(message) {
        let kind = attr(enc, "type").unwrap_or_default();
        let version = attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2);
        let Some(body) = content_bytes(enc) else { continue };
        let text = match world.decrypt(&recipient, &sender, &kind, body).await {
            Ok(padded) => text_of(&padded, version),
            Err(why) => Err(why),
        };
        match text {
            Ok(Some(text)) if recipient.user == chat_user => {
                info!(from = %from.jid(), %to, %id, "message received and decrypted");
                world
                    .record(ReceivedMessage {
                        from_jid: from.jid(),
                        to: to.clone(),
                        text,
                        id: id.clone(),
                    })
                    .await;
            }
            Ok(_) => {}
            Err(why) => warn!(%id, to = %recipient, %why, "could not decrypt a message copy"),
        }
    }
    vec![ack]
}

/// Each encrypted copy and the device it is for: `<participants><to jid><enc>`, or
/// a bare `<enc>` for the chat's own device.
fn copies(message: &Node) -> Vec<(Jid, &Node)> {
    let addressed = message
        .get_optional_child("participants")
        .map(|participants| participants.get_children_by_tag("to"))
        .into_iter()
        .flatten()
        .filter_map(|to| {
            let jid = attr(to, "jid")?.parse::<Jid>().ok()?;
            Some((jid, to.get_optional_child("enc")?))
        });
    let bare = attr(message, "to")
        .and_then(|to| to.parse::<Jid>().ok())
        .and_then(|jid| Some((jid, message.get_optional_child("enc")?)));
    addressed.chain(bare).filter(|(jid, _)| jid.device == 0).collect()
}

/// The text of a padded `Message` plaintext (`conversation` or an extended text).
fn text_of(padded: &[u8], version: u8) -> Result<Option<String>, String> {
    let plain = MessageUtils::unpad_message_ref(padded, version).map_err(|e| e.to_string())?;
    let message = wa::Message::decode_from_slice(plain).map_err(|e| format!("not a message: {e}"))?;
    let extended = message.extended_text_message.as_option().and_then(|m| m.text.clone());
    Ok(message.conversation.clone().or(extended))
}
