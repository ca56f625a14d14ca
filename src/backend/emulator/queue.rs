//! The emulated server's offline queue: what WhatsApp holds for each account
//! (messages from phones, receipts for what it sent) until the device acks it, and
//! beside it what the account's device sent (`sent_log`). It is
//! the server's own file (`<data-dir>/emulated-whatsapp.db`), apart from anything the
//! daemon keeps: accepted means on disk, and an item goes only once the daemon acked
//! it, so a crash of the daemon at any moment makes the server deliver it again.

use std::path::Path;

use super::sent_log::{self, EmulatedMessage, Taken};
use crate::{
    events::Body,
    proto::Event,
    store::{group_commit, DbError},
};
use prost::Message as _;
use rusqlite::{params, Transaction};

/// The queue's file under the data dir.
pub const QUEUE_FILE: &str = "emulated-whatsapp.db";

/// Items handed to the daemon per delivery at most.
pub const DELIVERY_BATCH: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inbound (
    n            INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT NOT NULL,
    queued_at_ms INTEGER NOT NULL,
    body         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_by_account ON inbound (account, n);
";

/// One held item.
#[derive(Debug, Clone)]
pub struct Held {
    /// Its place in the queue.
    pub n: u64,
    /// When the server accepted it.
    pub queued_at_ms: u64,
    /// The message or receipt.
    pub body: Body,
}

enum Op {
    Push {
        account: String,
        body: Box<Body>,
    },
    Take {
        account: String,
        limit: usize,
    },
    Ack {
        account: String,
        through: u64,
    },
    Count(String),
    Clear(String),
    Record {
        account: String,
        message: Box<EmulatedMessage>,
        barred: bool,
    },
    Hold {
        account: String,
        hold: bool,
    },
    Sent(String),
}

enum Out {
    Pushed,
    Held(Vec<Held>),
    Count(u64),
    Recorded(Taken),
    Released(Vec<String>),
    Sent(Vec<EmulatedMessage>),
}

struct Writer;

impl group_commit::Apply for Writer {
    type Op = Op;
    type Out = Out;

    fn apply(&mut self, tx: &Transaction<'_>, op: &Op) -> Result<Out, DbError> {
        match op {
            Op::Push { account, body } => {
                let bytes = Event {
                    body: Some((**body).clone()),
                    ..Default::default()
                }
                .encode_to_vec();
                let now = crate::store::unix_ms(std::time::SystemTime::now()) as i64;
                tx.prepare_cached("INSERT INTO inbound (account, queued_at_ms, body) VALUES (?1, ?2, ?3)")?
                    .execute(params![account, now, bytes])?;
                Ok(Out::Pushed)
            }
            Op::Take { account, limit } => {
                let mut statement = tx.prepare_cached(
                    "SELECT n, queued_at_ms, body FROM inbound WHERE account = ?1 ORDER BY n LIMIT ?2",
                )?;
                let mut rows = statement.query(params![account, *limit as i64])?;
                let mut held = Vec::new();
                while let Some(row) = rows.next()? {
                    let bytes: Vec<u8> = row.get(2)?;
                    let event = Event::decode(bytes.as_slice())
                        .map_err(|e| DbError::Io(std::io::Error::other(format!("queued item: {e}"))))?;
                    if let Some(body) = event.body {
                        held.push(Held {
                            n: row.get::<_, i64>(0)? as u64,
                            queued_at_ms: row.get::<_, i64>(1)? as u64,
                            body,
                        });
                    }
                }
                Ok(Out::Held(held))
            }
            Op::Ack { account, through } => {
                tx.prepare_cached("DELETE FROM inbound WHERE account = ?1 AND n <= ?2")?
                    .execute(params![account, *through as i64])?;
                Ok(Out::Pushed)
            }
            Op::Count(account) => {
                let count: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM inbound WHERE account = ?1")?
                    .query_row([account], |row| row.get(0))?;
                Ok(Out::Count(count as u64))
            }
            Op::Clear(account) => {
                tx.execute("DELETE FROM inbound WHERE account = ?1", [account])?;
                sent_log::forget_holds(tx, account)?;
                Ok(Out::Pushed)
            }
            Op::Record {
                account,
                message,
                barred,
            } => sent_log::record(tx, account, message, *barred).map(Out::Recorded),
            Op::Hold { account, hold } => sent_log::hold(tx, account, *hold).map(Out::Released),
            Op::Sent(account) => sent_log::list(tx, account).map(Out::Sent),
        }
    }
}

/// The queue (cheap to clone).
#[derive(Clone)]
pub struct ServerQueue {
    jobs: group_commit::Queue<Writer>,
}

impl ServerQueue {
    /// Opens (or creates) the queue under `root`. Blocking.
    pub fn open(root: &Path) -> Result<Self, DbError> {
        let conn = group_commit::open(&root.join(QUEUE_FILE))?;
        // WhatsApp's servers outlive the daemon; this stand-in lives in its process.
        // In WAL mode `synchronous=NORMAL` keeps every commit across a process kill
        // (the kill -9 tests), losing only to a power cut: what a stand-in needs,
        // without an fsync per message in the daemon's measured paths.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(sent_log::SCHEMA)?;
        Ok(Self {
            jobs: group_commit::spawn("emulated-whatsapp", conn, Writer, 1024)?,
        })
    }

    async fn run(&self, op: Op) -> Result<Out, DbError> {
        self.jobs.call(op).await
    }

    /// Holds `body` for `account`; answers once it is on disk.
    pub async fn push(&self, account: &str, body: Body) -> Result<(), DbError> {
        let account = account.to_owned();
        let body = Box::new(body);
        self.run(Op::Push { account, body }).await.map(drop)
    }

    /// The oldest items held for `account`, in order.
    pub async fn take(&self, account: &str, limit: usize) -> Result<Vec<Held>, DbError> {
        let account = account.to_owned();
        match self.run(Op::Take { account, limit }).await? {
            Out::Held(held) => Ok(held),
            _ => unreachable!("take answers Held"),
        }
    }

    /// The device acked every item of `account` up to `through`: they go.
    pub async fn ack(&self, account: &str, through: u64) -> Result<(), DbError> {
        let account = account.to_owned();
        self.run(Op::Ack { account, through }).await.map(drop)
    }

    /// Items still held for `account`.
    pub async fn count(&self, account: &str) -> Result<u64, DbError> {
        match self.run(Op::Count(account.to_owned())).await? {
            Out::Count(n) => Ok(n),
            _ => unreachable!("count answers Count"),
        }
    }

    /// The server takes a message from `account`'s device (once per id), or
    /// refuses it (`barred`: new chats are barred).
    pub async fn record(&self, account: &str, message: EmulatedMessage, barred: bool) -> Result<Taken, DbError> {
        let (account, message) = (account.to_owned(), Box::new(message));
        match self
            .run(Op::Record {
                account,
                message,
                barred,
            })
            .await?
        {
            Out::Recorded(taken) => Ok(taken),
            _ => unreachable!("record answers Recorded"),
        }
    }

    /// Holds or releases `account`'s acks: the ids a release acks now.
    pub async fn hold_acks(&self, account: &str, hold: bool) -> Result<Vec<String>, DbError> {
        match self
            .run(Op::Hold {
                account: account.to_owned(),
                hold,
            })
            .await?
        {
            Out::Released(ids) => Ok(ids),
            _ => unreachable!("hold answers Released"),
        }
    }

    /// What `account`'s device sent, once per id, in order.
    pub async fn sent(&self, account: &str) -> Result<Vec<EmulatedMessage>, DbError> {
        match self.run(Op::Sent(account.to_owned())).await? {
            Out::Sent(sent) => Ok(sent),
            _ => unreachable!("sent answers Sent"),
        }
    }

    /// Forgets everything held for `account` (its device was removed).
    pub async fn clear(&self, account: &str) -> Result<(), DbError> {
        self.run(Op::Clear(account.to_owned())).await.map(drop)
    }
}
