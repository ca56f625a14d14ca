//! Media state the daemon keeps on disk (`<data-dir>/media.db`, group commit):
//! upload handles (what UploadMedia answered and what WhatsApp's CDN holds for it:
//! the upload descriptor, never the file) until they expire, and the download
//! descriptors of media messages the sessions received (the media key included,
//! which is why they stay here and never go into events). Both go with their
//! session, and inbound ones follow the event log's retention: by age (`sweep`),
//! and, for messages its byte cap trimmed, once the log no longer has their
//! message (`oldest_inbound`, `forget_inbound`).

use std::{path::Path, time::SystemTime};

use rusqlite::{params, OptionalExtension, Transaction};

use crate::store::{from_unix_ms, group_commit, unix_ms, DbError};

/// The store's file under the data dir.
pub const MEDIA_FILE: &str = "media.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS media_handles (
    media_id   TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    mime       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    blob       TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS media_handles_session ON media_handles (session_id);
CREATE TABLE IF NOT EXISTS media_inbound (
    session_id  TEXT NOT NULL,
    chat        TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    blob        TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, chat, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS media_inbound_age ON media_inbound (session_id, received_ms);
";

/// A received media message a download descriptor is kept for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundKey {
    /// Whose it is.
    pub session_id: String,
    /// Its chat.
    pub chat: String,
    /// WhatsApp's id of it.
    pub message_id: String,
}

/// An uploaded file a session may send until `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct Handle {
    /// The handle's id (`m` and 24 hex digits).
    pub media_id: String,
    /// The session that uploaded it (only it may send it).
    pub session_id: String,
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: String,
    /// The file's mime.
    pub mime: String,
    /// The file's length.
    pub size: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
    /// Its name, for documents.
    pub file_name: String,
    /// The backend's upload descriptor (JSON; holds the media key).
    pub blob: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}

/// Names the handle, never its descriptor.
impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Handle {{ media_id: {:?}, session_id: {:?}, kind: {}, size: {} }}",
            self.media_id, self.session_id, self.kind, self.size
        )
    }
}

impl Handle {
    /// A new handle id.
    pub fn new_id() -> String {
        format!("m{}", hex::encode(rand::random::<[u8; 12]>()))
    }
}

enum Op {
    PutHandle(Box<Handle>),
    Handle(String),
    PutInbound {
        session_id: String,
        chat: String,
        message_id: String,
        blob: String,
    },
    Inbound {
        session_id: String,
        chat: String,
        message_id: String,
    },
    DeleteSession(String),
    Oldest {
        before_ms: i64,
        per_session: usize,
    },
    Forget(Vec<InboundKey>),
    Sweep {
        now_ms: i64,
        inbound_before_ms: i64,
    },
}

enum Out {
    Done,
    Handle(Option<Box<Handle>>),
    Blob(Option<String>),
    Swept(usize),
    Keys(Vec<InboundKey>),
}

struct Writer;

impl group_commit::Apply for Writer {
    type Op = Op;
    type Out = Out;

    fn apply(&mut self, tx: &Transaction<'_>, op: &Op) -> Result<Out, DbError> {
        match op {
            Op::PutHandle(h) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO media_handles (media_id, session_id, kind, mime, size, sha256, file_name, blob, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    h.media_id,
                    h.session_id,
                    h.kind,
                    h.mime,
                    h.size as i64,
                    h.sha256,
                    h.file_name,
                    h.blob,
                    unix_ms(h.expires_at) as i64
                ])?;
                Ok(Out::Done)
            }
            Op::Handle(id) => {
                let handle = tx
                    .prepare_cached(
                        "SELECT media_id, session_id, kind, mime, size, sha256, file_name, blob, expires_ms FROM media_handles WHERE media_id = ?1",
                    )?
                    .query_row([id], |row| {
                        Ok(Box::new(Handle {
                            media_id: row.get(0)?,
                            session_id: row.get(1)?,
                            kind: row.get(2)?,
                            mime: row.get(3)?,
                            size: row.get::<_, i64>(4)? as u64,
                            sha256: row.get(5)?,
                            file_name: row.get(6)?,
                            blob: row.get(7)?,
                            expires_at: from_unix_ms(row.get::<_, i64>(8)? as u64),
                        }))
                    })
                    .optional()?;
                Ok(Out::Handle(handle))
            }
            Op::PutInbound {
                session_id,
                chat,
                message_id,
                blob,
            } => {
                let now = unix_ms(SystemTime::now()) as i64;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO media_inbound (session_id, chat, message_id, blob, received_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![session_id, chat, message_id, blob, now])?;
                Ok(Out::Done)
            }
            Op::Inbound {
                session_id,
                chat,
                message_id,
            } => {
                let blob = tx
                    .prepare_cached(
                        "SELECT blob FROM media_inbound WHERE session_id = ?1 AND chat = ?2 AND message_id = ?3",
                    )?
                    .query_row(params![session_id, chat, message_id], |row| row.get(0))
                    .optional()?;
                Ok(Out::Blob(blob))
            }
            Op::DeleteSession(session_id) => {
                tx.prepare_cached("DELETE FROM media_handles WHERE session_id = ?1")?
                    .execute([session_id])?;
                tx.prepare_cached("DELETE FROM media_inbound WHERE session_id = ?1")?
                    .execute([session_id])?;
                Ok(Out::Done)
            }
            Op::Oldest { before_ms, per_session } => {
                let keys = tx
                    .prepare_cached(
                        "SELECT session_id, chat, message_id FROM (
                           SELECT session_id, chat, message_id,
                             ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY received_ms, chat, message_id) AS n
                           FROM media_inbound WHERE received_ms < ?1)
                         WHERE n <= ?2 ORDER BY session_id, n",
                    )?
                    .query_map(params![before_ms, *per_session as i64], |row| {
                        Ok(InboundKey {
                            session_id: row.get(0)?,
                            chat: row.get(1)?,
                            message_id: row.get(2)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Out::Keys(keys))
            }
            Op::Forget(keys) => {
                let mut forget = tx.prepare_cached(
                    "DELETE FROM media_inbound WHERE session_id = ?1 AND chat = ?2 AND message_id = ?3",
                )?;
                let mut gone = 0;
                for key in keys {
                    gone += forget.execute(params![key.session_id, key.chat, key.message_id])?;
                }
                Ok(Out::Swept(gone))
            }
            Op::Sweep {
                now_ms,
                inbound_before_ms,
            } => {
                let handles = tx
                    .prepare_cached("DELETE FROM media_handles WHERE expires_ms <= ?1")?
                    .execute([now_ms])?;
                let inbound = tx
                    .prepare_cached("DELETE FROM media_inbound WHERE received_ms < ?1")?
                    .execute([inbound_before_ms])?;
                Ok(Out::Swept(handles + inbound))
            }
        }
    }
}

/// The media store (cheap to clone).
#[derive(Clone)]
pub struct MediaStore {
    jobs: group_commit::Queue<Writer>,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaStore")
    }
}

impl MediaStore {
    /// Opens (or creates) `<root>/media.db`, and empties the upload temp folder (what
    /// a crash left). Blocking.
    pub fn open(root: &Path) -> Result<Self, DbError> {
        super::staging::reset(root)?;
        let conn = group_commit::open(&root.join(MEDIA_FILE))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            jobs: group_commit::spawn("media-store", conn, Writer, 256)?,
        })
    }

    /// Keeps an upload handle; answers once it is on disk.
    pub async fn put_handle(&self, handle: Handle) -> Result<(), DbError> {
        self.jobs.call(Op::PutHandle(Box::new(handle))).await.map(drop)
    }

    /// A handle by id, expired or not (the caller decides).
    pub async fn handle(&self, media_id: &str) -> Result<Option<Handle>, DbError> {
        match self.jobs.call(Op::Handle(media_id.to_owned())).await? {
            Out::Handle(handle) => Ok(handle.map(|h| *h)),
            _ => Ok(None),
        }
    }

    /// Keeps the download descriptor of a media message a session received.
    pub async fn put_inbound(
        &self,
        session_id: &str,
        chat: &str,
        message_id: &str,
        blob: String,
    ) -> Result<(), DbError> {
        let op = Op::PutInbound {
            session_id: session_id.to_owned(),
            chat: chat.to_owned(),
            message_id: message_id.to_owned(),
            blob,
        };
        self.jobs.call(op).await.map(drop)
    }

    /// The download descriptor of a received media message.
    pub async fn inbound(&self, session_id: &str, chat: &str, message_id: &str) -> Result<Option<String>, DbError> {
        let op = Op::Inbound {
            session_id: session_id.to_owned(),
            chat: chat.to_owned(),
            message_id: message_id.to_owned(),
        };
        match self.jobs.call(op).await? {
            Out::Blob(blob) => Ok(blob),
            _ => Ok(None),
        }
    }

    /// Forgets everything of a deleted session (queued; not awaited).
    pub fn delete_session(&self, session_id: &str) {
        self.jobs.detach(Op::DeleteSession(session_id.to_owned()));
    }

    /// Up to `per_session` of each session's oldest download descriptors kept
    /// before `before`, oldest first, session by session.
    pub async fn oldest_inbound(&self, before: SystemTime, per_session: usize) -> Result<Vec<InboundKey>, DbError> {
        let op = Op::Oldest {
            before_ms: unix_ms(before) as i64,
            per_session,
        };
        match self.jobs.call(op).await? {
            Out::Keys(keys) => Ok(keys),
            _ => Ok(Vec::new()),
        }
    }

    /// Forgets the download descriptors of `keys`; answers how many went.
    pub async fn forget_inbound(&self, keys: Vec<InboundKey>) -> Result<usize, DbError> {
        if keys.is_empty() {
            return Ok(0);
        }
        match self.jobs.call(Op::Forget(keys)).await? {
            Out::Swept(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Forgets expired handles and descriptors of messages older than
    /// `inbound_before` (the event log's retention). Returns how many went.
    pub async fn sweep(&self, now: SystemTime, inbound_before: SystemTime) -> Result<usize, DbError> {
        let op = Op::Sweep {
            now_ms: unix_ms(now) as i64,
            inbound_before_ms: unix_ms(inbound_before) as i64,
        };
        match self.jobs.call(op).await? {
            Out::Swept(n) => Ok(n),
            _ => Ok(0),
        }
    }
}
