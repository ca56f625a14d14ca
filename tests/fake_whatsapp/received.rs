//! What the server took from a linked device, read the same from both worlds:
//! the emulator's `ListSentMessages` and the fake's `ListReceivedMessages` become
//! `Received`, so the shared bodies compare one shape.

use fake_whatsapp::proto::{MessageKind, ReceivedMessage};
use wa_sessiond::proto::{ChatState, EmulatedKind, EmulatedMessage};

/// What a message a device sent is, as the server decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Reaction,
    Edit,
    Revoke,
    /// "typing...": `state` says which.
    ChatState,
    /// Read marks: `target_id` lists the ids, comma-separated.
    Read,
    /// A file (`text` is its caption; the file itself is compared by tests/media).
    Media,
}

/// A message the server took from a device: each WhatsApp id once, however many
/// times the device sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// WhatsApp's id (the daemon's choice).
    pub id: String,
    /// The chat's JID (`15559990000@s.whatsapp.net`).
    pub to: String,
    /// A text's or an edit's text, a reaction's emoji; empty for a revoke.
    pub text: String,
    pub kind: Kind,
    /// The message a reply quotes; empty otherwise.
    pub quoted_id: String,
    /// What a reaction, an edit or a revoke points at; empty for a text.
    pub target_id: String,
    /// A chat state's: `composing`, `recording` or `paused`; empty otherwise.
    pub state: String,
}

impl Received {
    /// A message the emulated server lists.
    pub fn emulated(m: EmulatedMessage) -> Self {
        let kind = match m.kind() {
            EmulatedKind::Text => Kind::Text,
            EmulatedKind::Reaction => Kind::Reaction,
            EmulatedKind::Edit => Kind::Edit,
            EmulatedKind::Revoke => Kind::Revoke,
            EmulatedKind::ChatState => Kind::ChatState,
            EmulatedKind::Read => Kind::Read,
            EmulatedKind::Media => Kind::Media,
            EmulatedKind::Unspecified => panic!("the emulator listed a message without a kind: {m:?}"),
        };
        let state = match m.state() {
            ChatState::Composing => "composing",
            ChatState::Recording => "recording",
            ChatState::Paused => "paused",
            ChatState::Unspecified => "",
        };
        Self {
            kind,
            state: state.into(),
            id: m.message_id,
            to: m.to,
            text: m.text,
            quoted_id: m.quoted_id,
            target_id: m.target_id,
        }
    }

    /// A message the fake lists, if a device of `phone`'s account sent it.
    pub fn at_fake(m: ReceivedMessage, phone: &str) -> Option<Self> {
        if m.from_jid.split([':', '@']).next() != Some(phone) {
            return None;
        }
        let kind = match m.kind() {
            MessageKind::Text => Kind::Text,
            MessageKind::Reaction => Kind::Reaction,
            MessageKind::Edit => Kind::Edit,
            MessageKind::Revoke => Kind::Revoke,
            MessageKind::ChatState => Kind::ChatState,
            MessageKind::Read => Kind::Read,
            // Media (with its file as the fake opened it) is not one of these kinds yet.
            MessageKind::Media => return None,
            MessageKind::Unspecified => panic!("the fake listed a message without a kind: {m:?}"),
        };
        Some(Self {
            kind,
            state: m.state,
            id: m.id,
            to: m.to,
            text: m.text,
            quoted_id: m.quoted_id,
            target_id: m.target_id,
        })
    }
}
