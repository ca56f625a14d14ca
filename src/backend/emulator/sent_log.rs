//! What the emulated server received from each account's device, in its own file
//! (the queue's, `emulated-whatsapp.db`): every message once per WhatsApp id,
//! however many times the device sent it, whether the server acked it, and whether
//! the account's acks are held (`EmulatorService.HoldServerAcks`). Being on disk,
//! it survives a daemon restart and a kill -9, as WhatsApp's servers would.

use std::time::SystemTime;

use prost::Message as _;
use rusqlite::{params, OptionalExtension, Transaction};

use crate::{
    backend::{ChatState, Content, Outbound},
    proto::{self, EmulatedKind},
    store::{from_unix_ms, unix_ms, DbError},
};

/// The tables, created with the queue's own.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sent (
    n              INTEGER PRIMARY KEY AUTOINCREMENT,
    account        TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    kind           INTEGER NOT NULL,
    text           TEXT NOT NULL,
    quoted_id      TEXT NOT NULL,
    target_id      TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    state          INTEGER NOT NULL DEFAULT 0,
    acked          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, message_id)
);
CREATE TABLE IF NOT EXISTS sent_media (
    account    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (account, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ack_holds (
    account TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;
";

/// A message the emulated server took, as a recipient's phone would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedMessage {
    /// The chat it went to.
    pub to: String,
    /// A text's or an edit's text, a reaction's emoji ("" otherwise).
    pub text: String,
    /// WhatsApp's id (the daemon's choice).
    pub message_id: String,
    /// Text, reaction, edit or revoke.
    pub kind: EmulatedKind,
    /// The message a reply quotes ("" otherwise).
    pub quoted_id: String,
    /// What a reaction, an edit or a revoke points at ("" otherwise).
    pub target_id: String,
    /// When the server first took it.
    pub received_at: SystemTime,
    /// A chat state's state (UNSPECIFIED otherwise).
    pub state: proto::ChatState,
    /// A media message's file, as the server read it from its CDN.
    pub media: Option<proto::EmulatedMedia>,
}

impl EmulatedMessage {
    /// The message as the server decodes what the device sent.
    pub fn of(message: &Outbound) -> Self {
        let (kind, text, quoted_id, target_id) = match &message.content {
            Content::Text { text, reply_to } => (
                EmulatedKind::Text,
                text.clone(),
                reply_to.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                String::new(),
            ),
            Content::Reaction { target, emoji } => {
                (EmulatedKind::Reaction, emoji.clone(), String::new(), target.id.clone())
            }
            Content::Edit { target, text } => (EmulatedKind::Edit, text.clone(), String::new(), target.id.clone()),
            Content::Revoke { target } => (EmulatedKind::Revoke, String::new(), String::new(), target.id.clone()),
            Content::ChatState { .. } => (EmulatedKind::ChatState, String::new(), String::new(), String::new()),
            Content::Read { ids, .. } => (EmulatedKind::Read, String::new(), String::new(), ids.join(",")),
            Content::Media { media, reply_to } => (
                EmulatedKind::Media,
                media.caption.clone(),
                reply_to.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                String::new(),
            ),
        };
        let media = match &message.content {
            Content::Media { media, .. } => Some(proto::EmulatedMedia {
                kind: media.blob.kind.wire() as i32,
                mime: media.blob.mime.clone(),
                size: media.blob.size,
                sha256: media.blob.sha256.clone(),
                caption: media.caption.clone(),
                file_name: media.file_name.clone(),
                voice_note: media.voice_note,
                duration_seconds: media.duration_seconds,
            }),
            _ => None,
        };
        let state = match &message.content {
            Content::ChatState {
                state: ChatState::Composing,
            } => proto::ChatState::Composing,
            Content::ChatState {
                state: ChatState::Recording,
            } => proto::ChatState::Recording,
            Content::ChatState {
                state: ChatState::Paused,
            } => proto::ChatState::Paused,
            _ => proto::ChatState::Unspecified,
        };
        Self {
            to: message.to.clone(),
            text,
            message_id: message.id.clone(),
            kind,
            quoted_id,
            target_id,
            received_at: SystemTime::now(),
            state,
            media,
        }
    }
}

/// What the server did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Taken and acked.
    Acked,
    /// Taken; its ack is held.
    Held,
    /// Refused: new chats are barred and the account never messaged this chat.
    NewChatBarred,
}

/// Takes a message from `account`'s device (once per id); with `new_chats_barred`,
/// refuses it when the account never messaged its chat before.
pub fn record(
    tx: &Transaction<'_>,
    account: &str,
    message: &EmulatedMessage,
    new_chats_barred: bool,
) -> Result<Taken, DbError> {
    if new_chats_barred {
        let known: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM sent WHERE account = ?1 AND recipient = ?2")?
            .query_row(params![account, message.to], |row| row.get(0))?;
        if known == 0 {
            return Ok(Taken::NewChatBarred);
        }
    }
    tx.prepare_cached(
        "INSERT OR IGNORE INTO sent (account, message_id, recipient, kind, text, quoted_id, target_id, received_at_ms, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        account,
        message.message_id,
        message.to,
        message.kind as i32,
        message.text,
        message.quoted_id,
        message.target_id,
        unix_ms(message.received_at) as i64,
        message.state as i32,
    ])?;
    if let Some(media) = &message.media {
        tx.prepare_cached("INSERT OR IGNORE INTO sent_media (account, message_id, body) VALUES (?1, ?2, ?3)")?
            .execute(params![account, message.message_id, media.encode_to_vec()])?;
    }
    if is_held(tx, account)? {
        return Ok(Taken::Held);
    }
    mark_acked(tx, account, &message.message_id)?;
    Ok(Taken::Acked)
}

/// Holds (or releases) `account`'s acks; a release answers the ids it acks now.
pub fn hold(tx: &Transaction<'_>, account: &str, hold: bool) -> Result<Vec<String>, DbError> {
    if hold {
        tx.prepare_cached("INSERT OR IGNORE INTO ack_holds (account) VALUES (?1)")?
            .execute([account])?;
        return Ok(Vec::new());
    }
    tx.prepare_cached("DELETE FROM ack_holds WHERE account = ?1")?
        .execute([account])?;
    let ids: Vec<String> = tx
        .prepare_cached("SELECT message_id FROM sent WHERE account = ?1 AND acked = 0 ORDER BY n")?
        .query_map([account], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    tx.prepare_cached("UPDATE sent SET acked = 1 WHERE account = ?1 AND acked = 0")?
        .execute([account])?;
    Ok(ids)
}

/// Everything `account`'s device sent, in the order the server first took it.
pub fn list(tx: &Transaction<'_>, account: &str) -> Result<Vec<EmulatedMessage>, DbError> {
    let mut statement = tx.prepare_cached(
        "SELECT recipient, text, message_id, kind, quoted_id, target_id, received_at_ms, state FROM sent WHERE account = ?1 ORDER BY n",
    )?;
    let rows = statement.query_map([account], |row| {
        Ok(EmulatedMessage {
            to: row.get(0)?,
            text: row.get(1)?,
            message_id: row.get(2)?,
            kind: EmulatedKind::try_from(row.get::<_, i32>(3)?).unwrap_or(EmulatedKind::Unspecified),
            quoted_id: row.get(4)?,
            target_id: row.get(5)?,
            received_at: from_unix_ms(row.get::<_, i64>(6)?.max(0) as u64),
            state: proto::ChatState::try_from(row.get::<_, i32>(7)?).unwrap_or(proto::ChatState::Unspecified),
            media: None,
        })
    })?;
    let mut messages: Vec<EmulatedMessage> = rows.collect::<Result<_, _>>()?;
    let mut media = tx.prepare_cached("SELECT body FROM sent_media WHERE account = ?1 AND message_id = ?2")?;
    for message in messages.iter_mut().filter(|m| m.kind == EmulatedKind::Media) {
        let body: Option<Vec<u8>> = media
            .query_row(params![account, message.message_id], |row| row.get(0))
            .optional()?;
        message.media = body.and_then(|b| proto::EmulatedMedia::decode(b.as_slice()).ok());
    }
    Ok(messages)
}

/// Releases `account`'s held acks without acking (its device was removed). What
/// it sent stays, as on the recipients' phones.
pub fn forget_holds(tx: &Transaction<'_>, account: &str) -> Result<(), DbError> {
    tx.execute("DELETE FROM ack_holds WHERE account = ?1", [account])?;
    Ok(())
}

fn is_held(tx: &Transaction<'_>, account: &str) -> Result<bool, DbError> {
    let held: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM ack_holds WHERE account = ?1")?
        .query_row([account], |row| row.get(0))?;
    Ok(held > 0)
}

fn mark_acked(tx: &Transaction<'_>, account: &str, message_id: &str) -> Result<(), DbError> {
    tx.prepare_cached("UPDATE sent SET acked = 1 WHERE account = ?1 AND message_id = ?2")?
        .execute(params![account, message_id])?;
    Ok(())
}
