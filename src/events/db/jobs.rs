//! The writer thread's jobs and their answers: the words the log's handle
//! ([`crate::events::EventLog`]) and its writer ([`super::Writer`]) share.

use crate::events::{campaign, outbound, Appended, NewEvent};

/// A job of the writer thread.
#[derive(Debug)]
pub enum Op {
    /// Append in order.
    Append(Vec<NewEvent>),
    /// A consumer's position.
    Ack {
        /// Its name.
        consumer: String,
        /// Its newest processed event.
        cursor: u64,
        /// The most consumers kept (0: no bound): a new one beyond it is refused.
        max: usize,
    },
    /// Forget a consumer.
    DeleteConsumer(String),
    /// Append the session's last event and mark its earlier ones for removal (they
    /// are hidden from readers at once, and removed by [`Op::Remove`] chunks).
    DeleteSession(Box<NewEvent>),
    /// Remove one chunk of deleted sessions' events.
    Remove {
        /// At most this many per job.
        chunk: usize,
    },
    /// Accept a message into the outbound log.
    Accept(Box<outbound::Accept>),
    /// A message was handed to the connection.
    Sent {
        /// Whose.
        session_id: String,
        /// WhatsApp's id.
        message_id: String,
    },
    /// A message was not sent and nobody heard of it: forget it.
    Forget {
        /// Whose.
        session_id: String,
        /// WhatsApp's id.
        message_id: String,
    },
    /// A message's status changed (the server's ack, an expiry).
    Update(outbound::Update),
    /// WhatsApp said something about the account's health.
    Health {
        /// Whose account.
        session_id: String,
        /// What it said.
        signal: outbound::HealthSignal,
    },
    /// A campaign's change (create, add, pause, ...).
    Campaign(Box<campaign::sql::Job>),
    /// Remove one chunk of the oldest events that are too old or too many.
    Trim {
        /// Events logged before this go.
        before_ms: i64,
        /// While more bytes than this are kept (0: no bound), the oldest go.
        max_bytes: u64,
        /// At most this many per job.
        chunk: usize,
    },
}

/// A job's answer.
#[derive(Debug)]
pub enum Out {
    /// What an append did.
    Appended(Appended),
    /// A consumer's stored position (None: a new consumer beyond the bound).
    Position(Option<u64>),
    /// Whether the consumer existed.
    Deleted(bool),
    /// Events trimmed.
    Trimmed(usize),
    /// Events of deleted sessions removed.
    Removed(usize),
    /// What accepting a message did.
    Accepted(outbound::Accepted),
    /// What a campaign job did.
    Campaign(campaign::sql::Done),
    /// Done.
    Done,
}
