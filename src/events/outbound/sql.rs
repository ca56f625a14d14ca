//! The outbound log's table and queries. The writer's side runs inside the event
//! log's transactions, so a row's change and the event that reports it commit
//! together; the readers' side runs on the log's read-only connections.

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{advances, health_sql, Accept, Accepted, MessageStatus, OutboundUpdate, Row, Update};
use crate::{
    events::{campaign::items as campaign_items, Body, InboundMessage, NewEvent, ReceiptKind},
    store::{from_unix_ms, unix_ms, DbError},
};

/// The table, created with the log's own.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbound (
    n            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    client_id    TEXT,
    chat         TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       INTEGER NOT NULL,
    first_status INTEGER,
    error_code   INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    accepted_ms  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS outbound_by_id ON outbound (session_id, message_id);
CREATE UNIQUE INDEX IF NOT EXISTS outbound_by_client ON outbound (session_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbound_pending ON outbound (session_id, n) WHERE status IN (1, 2);
";

/// The columns naming the campaign item a message sends (`campaign` 0: none;
/// NULL in rows accepted before they existed, whose item is looked up), added by
/// [`open`] to the table as [`SCHEMA`] creates it (and as earlier versions did).
const LINK_COLUMNS: [&str; 4] = [
    "campaign INTEGER",
    "item_seq INTEGER",
    "campaign_id TEXT",
    "item_id TEXT",
];

/// Creates the table and adds the columns that name campaign items, unless they
/// are there already. Blocking.
pub fn open(conn: &Connection) -> Result<(), DbError> {
    conn.execute_batch(SCHEMA)?;
    let has_link: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('outbound') WHERE name = 'campaign')",
        [],
        |r| r.get(0),
    )?;
    if !has_link {
        // All four or none (a transaction rolls back on drop unless committed).
        let tx = conn.unchecked_transaction()?;
        for column in LINK_COLUMNS {
            tx.execute_batch(&format!("ALTER TABLE outbound ADD COLUMN {column}"))?;
        }
        tx.commit()?;
    }
    Ok(())
}

const COLUMNS: &str =
    "message_id, COALESCE(client_id, ''), chat, status, error_code, error, first_status, accepted_ms, updated_ms, payload";

/// Accepts a message: a new row (and its QUEUED event when queued), or the row the
/// caller's key already names.
pub fn accept(tx: &Transaction<'_>, accept: &Accept) -> Result<(Accepted, Vec<NewEvent>), DbError> {
    if let Some(client_id) = &accept.client_id {
        let known: Option<(String, Row)> = tx
            .prepare_cached(&format!(
                "SELECT fingerprint, {COLUMNS} FROM outbound WHERE session_id = ?1 AND client_id = ?2"
            ))?
            .query_row(params![accept.session_id, client_id], |row| {
                Ok((row.get(0)?, read_row(row, 1)?))
            })
            .optional()?;
        if let Some((fingerprint, row)) = known {
            return Ok(if fingerprint == accept.fingerprint {
                (Accepted::Existing(Box::new(row)), Vec::new())
            } else {
                (
                    Accepted::Conflict {
                        message_id: row.message_id,
                    },
                    Vec::new(),
                )
            });
        }
    }
    // A preset id (a campaign item's) the log has already: that message, never a
    // second send.
    if let Some(row) = find(tx, &accept.session_id, &accept.message_id, false)? {
        return Ok((Accepted::Existing(Box::new(row)), Vec::new()));
    }
    if let Some(link) = &accept.campaign {
        if !campaign_items::accepted(tx, &accept.session_id, &accept.message_id, link)? {
            return Ok((Accepted::Withdrawn, Vec::new()));
        }
    }
    let link = accept.campaign.as_ref();
    // To the millisecond, as stored: a retry's answer (read back) is identical.
    let now = at_ms(unix_ms(SystemTime::now()) as i64);
    let first = accept.queued.then_some(MessageStatus::Queued as i32);
    tx.prepare_cached(
        "INSERT INTO outbound (session_id, message_id, client_id, chat, fingerprint, payload, status, first_status, accepted_ms, updated_ms,
         campaign, item_seq, campaign_id, item_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        accept.session_id,
        accept.message_id,
        accept.client_id,
        accept.chat,
        accept.fingerprint,
        accept.payload,
        MessageStatus::Queued as i32,
        first,
        unix_ms(now) as i64,
        link.map_or(0, |l| l.campaign),
        link.map(|l| l.seq as i64),
        link.map(|l| &l.campaign_id),
        link.map(|l| &l.item_id),
    ])?;
    let link = link.map(|l| (l.campaign_id.clone(), l.item_id.clone()));
    let events = if accept.queued {
        let update = Update::to(&accept.session_id, &accept.message_id, MessageStatus::Queued);
        let mut queued = event(
            &update,
            accept.client_id.clone().unwrap_or_default(),
            accept.chat.clone(),
            now,
        );
        linked(&mut queued, link.as_ref());
        vec![queued]
    } else {
        Vec::new()
    };
    Ok((Accepted::New { accepted_at: now }, events))
}

/// The message was handed to the connection: SENT (unless an ack overtook it), and
/// SENT is its first answer if it had none.
pub fn sent(tx: &Transaction<'_>, session_id: &str, message_id: &str) -> Result<Vec<NewEvent>, DbError> {
    tx.prepare_cached(
        "UPDATE outbound SET first_status = COALESCE(first_status, ?3) WHERE session_id = ?1 AND message_id = ?2",
    )?
    .execute(params![session_id, message_id, MessageStatus::Sent as i32])?;
    update(tx, &Update::to(session_id, message_id, MessageStatus::Sent))
}

/// Nothing was sent and nobody was answered: the row goes, so a retry starts anew.
pub fn forget(tx: &Transaction<'_>, session_id: &str, message_id: &str) -> Result<(), DbError> {
    // The status is written into the statement (a bound one would have SQLite
    // prepare it again each time, for the partial index on unsent messages).
    let sql = format!(
        "DELETE FROM outbound WHERE session_id = ?1 AND message_id = ?2 AND status = {} AND first_status IS NULL",
        MessageStatus::Queued as i32
    );
    tx.prepare_cached(&sql)?.execute(params![session_id, message_id])?;
    if tx.changes() > 0 {
        campaign_items::forgotten(tx, session_id, message_id)?;
    }
    Ok(())
}

/// Applies a change if it moves the message forward: the events it logs (a
/// server's word about a message still QUEUED here logs its SENT first).
pub fn update(tx: &Transaction<'_>, change: &Update) -> Result<Vec<NewEvent>, DbError> {
    let current: Option<(i32, String, String, Named)> = tx
        .prepare_cached(
            "SELECT status, COALESCE(client_id, ''), chat, campaign, item_seq, campaign_id, item_id FROM outbound WHERE session_id = ?1 AND message_id = ?2",
        )?
        .query_row(params![change.session_id, change.message_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, named(row, 3)?))
        })
        .optional()?;
    let Some((status, client_id, chat, named)) = current else {
        return Ok(Vec::new());
    };
    let status = MessageStatus::try_from(status).unwrap_or(MessageStatus::Unspecified);
    if !advances(status, change.status) {
        return Ok(Vec::new());
    }
    let now = SystemTime::now();
    tx.prepare_cached(
        "UPDATE outbound SET status = ?3, error_code = ?4, error = ?5, updated_ms = ?6 WHERE session_id = ?1 AND message_id = ?2",
    )?
    .execute(params![
        change.session_id,
        change.message_id,
        change.status as i32,
        change.error_code,
        change.error,
        unix_ms(now) as i64,
    ])?;
    let item = match named {
        Named::Nothing => None,
        Named::Item(item) => Some(item),
        // A row accepted before rows named their items.
        Named::Unknown => campaign_items::item_of(tx, &change.session_id, &change.message_id)?,
    };
    let link = match item {
        Some(item) => Some(campaign_items::follow(
            tx,
            item,
            (status, change.status),
            change.error_code,
            &change.error,
        )?),
        None => None,
    };
    let mut events = Vec::new();
    // The server's word (an ack, a receipt, a nack with its code) about a message
    // still QUEUED here proves it was sent: SENT goes first. An expiry does not.
    let servers_word = change.status != MessageStatus::Failed || change.error_code != 0;
    if status == MessageStatus::Queued && change.status != MessageStatus::Sent && servers_word {
        let sent = Update::to(&change.session_id, &change.message_id, MessageStatus::Sent);
        events.push(event(&sent, client_id.clone(), chat.clone(), now));
    }
    events.push(event(change, client_id, chat, now));
    for logged in &mut events {
        linked(logged, link.as_ref());
    }
    if change.status == MessageStatus::Failed && change.error_code != 0 {
        // WhatsApp refused it: the account's nack counts changed.
        events.push(health_sql::event(tx, &change.session_id)?);
    }
    Ok(events)
}

/// What the receipts among `events` mean for the messages they name.
pub fn receipts(tx: &Transaction<'_>, events: &[NewEvent]) -> Result<Vec<NewEvent>, DbError> {
    let mut logged = Vec::new();
    for event in events {
        let Body::Receipt(receipt) = &event.body else { continue };
        let status = match ReceiptKind::try_from(receipt.kind) {
            Ok(ReceiptKind::Delivered) => MessageStatus::Delivered,
            Ok(ReceiptKind::Read) => MessageStatus::Read,
            Ok(ReceiptKind::Played) => MessageStatus::Played,
            _ => continue,
        };
        for id in &receipt.message_ids {
            logged.extend(update(tx, &Update::to(&event.session_id, id, status))?);
        }
    }
    Ok(logged)
}

/// Removes a deleted session's rows (and its health).
pub fn delete_session(tx: &Transaction<'_>, session_id: &str) -> Result<(), DbError> {
    tx.prepare_cached("DELETE FROM outbound WHERE session_id = ?1")?
        .execute([session_id])?;
    health_sql::delete_session(tx, session_id)
}

/// A message by WhatsApp's id (`by_client` false) or by the caller's key.
pub fn find(conn: &Connection, session_id: &str, key: &str, by_client: bool) -> Result<Option<Row>, DbError> {
    let column = if by_client { "client_id" } else { "message_id" };
    let sql = format!("SELECT {COLUMNS} FROM outbound WHERE session_id = ?1 AND {column} = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![session_id, key], |row| read_row(row, 0))
        .optional()?)
}

/// The session's messages still to send, in the order accepted.
pub fn pending(conn: &Connection, session_id: &str) -> Result<Vec<Row>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM outbound WHERE session_id = ?1 AND status IN (1, 2) ORDER BY n");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([session_id], |row| read_row(row, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A message the account received (or sent from another device) in `chat`, as the
/// log keeps it.
pub fn received(conn: &Connection, session_id: &str, chat: &str, id: &str) -> Result<Option<InboundMessage>, DbError> {
    use prost::Message as _;
    // The dedupe key is `chat \x1f sender \x1f id`: the chat's range, then the id.
    let (from, to) = (format!("{chat}\u{1f}"), format!("{chat}\u{20}"));
    // A deleted session's past (still being removed) is not there to point at.
    let mut statement = conn.prepare_cached(&format!(
        "SELECT body FROM events WHERE session_id = ?1 AND dedupe >= ?2 AND dedupe < ?3 AND substr(dedupe, -length(?4) - 1) = char(31) || ?4 AND {}",
        crate::events::read::NOT_DELETED
    ))?;
    let mut rows = statement.query(params![session_id, from, to, id])?;
    while let Some(row) = rows.next()? {
        let body: Vec<u8> = row.get(0)?;
        let event = crate::events::Event::decode(body.as_slice())
            .map_err(|e| DbError::Io(std::io::Error::other(format!("event body: {e}"))))?;
        if let Some(Body::Message(message)) = event.body {
            if message.id == id {
                return Ok(Some(message));
            }
        }
    }
    Ok(None)
}

fn read_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Row> {
    let status = |value: i32| MessageStatus::try_from(value).unwrap_or(MessageStatus::Unspecified);
    Ok(Row {
        message_id: row.get(at)?,
        client_id: row.get(at + 1)?,
        chat: row.get(at + 2)?,
        status: status(row.get(at + 3)?),
        error_code: row.get(at + 4)?,
        error: row.get(at + 5)?,
        first_status: row.get::<_, Option<i32>>(at + 6)?.map(status),
        accepted_at: at_ms(row.get(at + 7)?),
        updated_at: at_ms(row.get(at + 8)?),
        payload: row.get(at + 9)?,
    })
}

fn at_ms(ms: i64) -> SystemTime {
    from_unix_ms(ms.max(0) as u64)
}

/// What an outbound row says of the campaign item its message sends.
enum Named {
    /// None: a direct send.
    Nothing,
    /// This one.
    Item(campaign_items::Item),
    /// The row was accepted before rows named their items: look it up.
    Unknown,
}

/// The row's campaign, item position, campaign id and item id, from column `at`.
fn named(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Named> {
    let campaign: Option<i64> = row.get(at)?;
    let seq: Option<i64> = row.get(at + 1)?;
    let ids: (Option<String>, Option<String>) = (row.get(at + 2)?, row.get(at + 3)?);
    Ok(match (campaign, seq, ids) {
        (Some(0), ..) => Named::Nothing,
        (Some(n), Some(seq), (Some(campaign_id), Some(item_id))) => {
            Named::Item(campaign_items::Item::under_way(n, seq, campaign_id, item_id))
        }
        _ => Named::Unknown,
    })
}

/// Names the campaign item an outbound event is about.
fn linked(event: &mut NewEvent, link: Option<&(String, String)>) {
    if let (Body::Outbound(update), Some((campaign_id, item_id))) = (&mut event.body, link) {
        update.campaign_id = campaign_id.clone();
        update.item_id = item_id.clone();
    }
}

fn event(change: &Update, client_id: String, chat: String, time: SystemTime) -> NewEvent {
    NewEvent {
        session_id: change.session_id.clone(),
        time,
        body: Body::Outbound(OutboundUpdate {
            message_id: change.message_id.clone(),
            client_message_id: client_id,
            chat,
            status: change.status as i32,
            error_code: change.error_code,
            error: change.error.clone(),
            // A campaign's items fill these in (`linked`).
            ..OutboundUpdate::default()
        }),
    }
}
