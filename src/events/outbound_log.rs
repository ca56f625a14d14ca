//! The event log's outbound side, as the session and the door use it: accept a
//! message (answered once on disk), mark it sent or forget it, apply the server's
//! ack, and read where a message stands, what is still to send, and the messages a
//! reply or a reaction may point at.

use super::{
    db,
    outbound::{health_sql, sql, Accept, Accepted, AccountHealth, HealthSignal, Row, Update},
    EventLog, InboundMessage,
};
use crate::store::DbError;

impl EventLog {
    /// Accepts `message` into the outbound log; answers once it is on disk.
    pub async fn accept(&self, message: Accept) -> Result<Accepted, DbError> {
        match self.run(db::Op::Accept(Box::new(message))).await? {
            db::Out::Accepted(accepted) => Ok(accepted),
            _ => unreachable!("accept answers Accepted"),
        }
    }

    /// The message was handed to the connection: SENT; answers once on disk.
    pub async fn mark_sent(&self, session_id: &str, message_id: &str) -> Result<(), DbError> {
        let op = db::Op::Sent {
            session_id: session_id.to_owned(),
            message_id: message_id.to_owned(),
        };
        self.run(op).await.map(drop)
    }

    /// The message was never handed over and nobody was answered: it goes.
    pub async fn forget(&self, session_id: &str, message_id: &str) -> Result<(), DbError> {
        let op = db::Op::Forget {
            session_id: session_id.to_owned(),
            message_id: message_id.to_owned(),
        };
        self.run(op).await.map(drop)
    }

    /// A status change, queued (not awaited): applied if it moves the message forward.
    pub fn update_detached(&self, change: Update) {
        self.queue.detach(db::Op::Update(change));
    }

    /// WhatsApp's ack of a message the session sent: SERVER_ACK, or FAILED with its
    /// code.
    pub fn server_acked(&self, session_id: &str, message_id: String, error: Option<u32>) {
        let change = match error {
            None => Update::to(session_id, &message_id, super::outbound::MessageStatus::ServerAck),
            Some(code) => Update::failed(
                session_id,
                &message_id,
                code,
                format!("whatsapp refused the message ({code})"),
            ),
        };
        self.update_detached(change);
    }

    /// WhatsApp said something about `session_id`'s account (queued, not awaited).
    pub fn health_detached(&self, session_id: &str, signal: HealthSignal) {
        let session_id = session_id.to_owned();
        self.queue.detach(db::Op::Health { session_id, signal });
    }

    /// WhatsApp said something about `session_id`'s account; answers once it is on
    /// disk (so a reader who sees what followed sees this too).
    pub async fn health_signal(&self, session_id: &str, signal: HealthSignal) -> Result<(), DbError> {
        let session_id = session_id.to_owned();
        self.run(db::Op::Health { session_id, signal }).await.map(drop)
    }

    /// The account's health now.
    pub async fn account_health(&self, session_id: &str) -> Result<AccountHealth, DbError> {
        let session_id = session_id.to_owned();
        self.readers.with(move |conn| health_sql::read(conn, &session_id)).await
    }

    /// The restrictions on the account now (no refused-send counts: cheap).
    pub async fn account_restrictions(&self, session_id: &str) -> Result<AccountHealth, DbError> {
        let session_id = session_id.to_owned();
        self.readers
            .with(move |conn| health_sql::restrictions(conn, &session_id))
            .await
    }

    /// A message the session sent, by WhatsApp's id or (`by_client`) the caller's key.
    pub async fn outbound(&self, session_id: &str, key: &str, by_client: bool) -> Result<Option<Row>, DbError> {
        let (session_id, key) = (session_id.to_owned(), key.to_owned());
        self.readers
            .with(move |conn| sql::find(conn, &session_id, &key, by_client))
            .await
    }

    /// The session's messages still to send (QUEUED, or SENT without the server's
    /// ack), in the order accepted.
    pub async fn pending_outbound(&self, session_id: &str) -> Result<Vec<Row>, DbError> {
        let session_id = session_id.to_owned();
        self.readers.with(move |conn| sql::pending(conn, &session_id)).await
    }

    /// A message of `chat` the account received (or sent from another device).
    pub async fn received(&self, session_id: &str, chat: &str, id: &str) -> Result<Option<InboundMessage>, DbError> {
        let (session_id, chat, id) = (session_id.to_owned(), chat.to_owned(), id.to_owned());
        self.readers
            .with(move |conn| sql::received(conn, &session_id, &chat, &id))
            .await
    }
}
