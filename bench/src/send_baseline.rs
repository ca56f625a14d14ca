//! The `send` scenario's baseline: the rows the daemon writes for one text that is
//! accepted, SENT and SERVER_ACK, committed by a bare SQLite group-commit loop in
//! this process (no gRPC, no session, no emulated server). Per message: the
//! outbound row (same columns, indexes, payload and fingerprint sizes), its SENT
//! update, its SERVER_ACK update, and the two EVENT_KIND_OUTBOUND event rows (same
//! encoded body). One producer thread, one writer thread, batches of up to 1,024
//! writes, WAL with synchronous=FULL, as the daemon's event log commits.

use std::{path::Path, sync::mpsc, time::Instant};

use prost::Message as _;
use rusqlite::{params, Connection};
use wa_sessiond::{
    backend::{Content, Outbound},
    domain::{SendContent, SendInput},
    proto::{event::Body, Event, MessageStatus, OutboundUpdate},
};

/// Writes committed together at most (the daemon's event log: 1,024 jobs).
const MAX_BATCH: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE events (cursor INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL, kind INTEGER NOT NULL, dedupe TEXT, body BLOB NOT NULL);
CREATE UNIQUE INDEX events_dedupe ON events (session_id, dedupe) WHERE dedupe IS NOT NULL;
CREATE INDEX events_by_session ON events (session_id, cursor);
CREATE TABLE outbound (n INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, message_id TEXT NOT NULL,
    client_id TEXT, chat TEXT NOT NULL, fingerprint TEXT NOT NULL, payload TEXT NOT NULL, status INTEGER NOT NULL,
    first_status INTEGER, error_code INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',
    accepted_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX outbound_by_id ON outbound (session_id, message_id);
CREATE UNIQUE INDEX outbound_by_client ON outbound (session_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX outbound_pending ON outbound (session_id, n) WHERE status IN (1, 2);
";

/// One write of the loop.
enum Write {
    /// The accepted message's row.
    Insert {
        session: String,
        message_id: String,
        client_id: String,
        chat: String,
        fingerprint: String,
        payload: String,
    },
    /// A status change and the event reporting it.
    Status {
        session: String,
        message_id: String,
        status: i32,
        seq: i64,
        body: Vec<u8>,
    },
}

/// Commits the rows of `n` messages spread over `sessions` sessions; messages per
/// second (each with its 5 rows written).
pub fn messages_per_second(dir: &Path, n: usize, sessions: usize) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut conn = Connection::open(dir.join("baseline.db")).map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<Write>();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            for write in writes(i, sessions.max(1)) {
                if tx.send(write).is_err() {
                    return;
                }
            }
        }
    });
    let expected = n * 3;
    let mut written = 0;
    while written < expected {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        commit(&mut conn, &batch).map_err(|e| e.to_string())?;
        written += batch.len();
    }
    let _ = producer.join();
    Ok((written / 3) as f64 / start.elapsed().as_secs_f64())
}

/// Message `i`'s writes, as the daemon makes them for a text with a key.
fn writes(i: usize, sessions: usize) -> [Write; 3] {
    let session = format!("sd{:03}", i % sessions);
    let message_id = Outbound::new_id();
    let client_id = format!("b{i}");
    let chat = chat(i);
    let text = text(i);
    let input = SendInput {
        to: chat.clone(),
        client_id: Some(client_id.clone()),
        queue_if_offline: false,
        content: SendContent::Text {
            text: text.clone(),
            reply_to: None,
        },
    };
    let outbound = Outbound {
        id: message_id.clone(),
        to: chat.clone(),
        content: Content::Text { text, reply_to: None },
    };
    let payload = serde_json::to_string(&outbound).unwrap_or_default();
    let status = |status: MessageStatus, seq: i64| Write::Status {
        session: session.clone(),
        message_id: message_id.clone(),
        status: status as i32,
        seq,
        body: Event {
            body: Some(Body::Outbound(OutboundUpdate {
                message_id: message_id.clone(),
                client_message_id: client_id.clone(),
                chat: chat.clone(),
                status: status as i32,
                ..Default::default()
            })),
            ..Default::default()
        }
        .encode_to_vec(),
    };
    let seq = (i / sessions) as i64 * 2;
    [
        Write::Insert {
            session: session.clone(),
            message_id: message_id.clone(),
            client_id: client_id.clone(),
            chat: chat.clone(),
            fingerprint: input.fingerprint(),
            payload,
        },
        status(MessageStatus::Sent, seq + 1),
        status(MessageStatus::ServerAck, seq + 2),
    ]
}

/// One transaction: the batch's writes.
fn commit(conn: &mut Connection, batch: &[Write]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO outbound (session_id, message_id, client_id, chat, fingerprint, payload, status, first_status, accepted_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, NULL, ?7, ?7)",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE outbound SET status = ?3, first_status = COALESCE(first_status, ?3), updated_ms = ?4
             WHERE session_id = ?1 AND message_id = ?2",
        )?;
        let mut event = tx.prepare_cached(
            "INSERT INTO events (session_id, seq, time_ms, kind, dedupe, body) VALUES (?1, ?2, ?3, 4, NULL, ?4)",
        )?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for write in batch {
            match write {
                Write::Insert {
                    session,
                    message_id,
                    client_id,
                    chat,
                    fingerprint,
                    payload,
                } => {
                    insert.execute(params![session, message_id, client_id, chat, fingerprint, payload, now])?;
                }
                Write::Status {
                    session,
                    message_id,
                    status,
                    seq,
                    body,
                } => {
                    update.execute(params![session, message_id, status, now])?;
                    event.execute(params![session, seq, now, body])?;
                }
            }
        }
    }
    tx.commit()
}

/// The recipient of message `i` (one of 1,000 chats).
pub fn chat(i: usize) -> String {
    format!("1555002{:04}@s.whatsapp.net", i % 1000)
}

/// The text of message `i` (unique, 40 bytes).
pub fn text(i: usize) -> String {
    format!("send bench message number {i:013}")
}
