//! State on disk. The data dir (0700) holds the session list (`sessions.db`, see
//! [`db`]), a lock file that keeps a second daemon off it, and one folder per session
//! under `sessions/` for the backend's credential store. File writes are atomic (temp
//! file, fsync, rename, fsync of the folder).

pub mod db;
pub mod group_commit;

pub use db::{DbError, PageQuota, Restored, SessionDb, Skipped};

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::domain::SessionId;

/// The lock file that keeps two daemons off one data dir.
const LOCK_FILE: &str = "wa-sessiond.lock";

/// What survives a restart of the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id.
    pub id: String,
    /// The caller's labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Digits only, once linked.
    pub phone_number: String,
    /// The device JID, once linked.
    pub jid: String,
    /// The account's display name.
    pub push_name: String,
    /// When it last connected, ms since the epoch.
    pub connected_at_ms: Option<u64>,
    /// Stopped on request (DisconnectSession): do not connect at startup.
    pub stopped: bool,
    /// Logged out: pair again on request.
    pub logged_out: bool,
}

impl SessionRecord {
    /// A new session's record.
    pub fn new(id: &SessionId, labels: BTreeMap<String, String>, created_at: SystemTime) -> Self {
        Self {
            id: id.to_string(),
            labels,
            created_at_ms: unix_ms(created_at),
            ..Default::default()
        }
    }

    /// When the session was created.
    pub fn created_at(&self) -> SystemTime {
        from_unix_ms(self.created_at_ms)
    }

    /// When it last connected.
    pub fn connected_at(&self) -> Option<SystemTime> {
        self.connected_at_ms.map(from_unix_ms)
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The data dir itself.
    root: PathBuf,
    /// `<data-dir>/sessions`.
    sessions: PathBuf,
}

/// The data dir's lock, held for as long as this lives (the OS drops it with the
/// process, kill -9 included).
#[derive(Debug)]
pub struct DirLock {
    /// The locked file.
    _file: std::fs::File,
}

/// How often a daemon waiting for the data dir's lock tries again, and says so.
const LOCK_RETRY: Duration = Duration::from_millis(200);
const LOCK_NAG: Duration = Duration::from_secs(10);

impl DataDir {
    /// Uses (and creates, owner-only) `<root>` and `<root>/sessions`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        create_private_dir(root)?;
        let sessions = root.join("sessions");
        create_private_dir(&sessions)?;
        Ok(Self {
            root: root.to_owned(),
            sessions,
        })
    }

    /// The data dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the data dir's lock, waiting while another wa-sessiond holds it (a pod
    /// being replaced), with a line every 10 s. A session is never run by two
    /// daemons at once.
    pub async fn lock(&self) -> std::io::Result<DirLock> {
        let path = self.root.join(LOCK_FILE);
        let file = open_private_file(&path, false)?;
        let mut nagged: Option<tokio::time::Instant> = None;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if nagged.is_none_or(|at| at.elapsed() >= LOCK_NAG) {
                tracing::warn!(lock = %path.display(), "another wa-sessiond is using this data dir: waiting for it to stop");
                nagged = Some(tokio::time::Instant::now());
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    /// The folder of one session (not created).
    pub fn session_dir(&self, id: &SessionId) -> PathBuf {
        self.sessions.join(id.as_str())
    }

    /// Removes a session's folder and everything in it.
    pub async fn remove(&self, id: &SessionId) -> std::io::Result<()> {
        let dir = self.session_dir(id);
        let parent = self.sessions.clone();
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            sync_dir(&parent)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Removes a deleted session's folder (its credentials with it) and notes in the
/// session list that the wipe is done. A failure is logged and left to the next
/// start, which finishes every wipe a tombstone still marks as pending. Returns
/// whether it finished.
pub async fn finish_wipe(data: &DataDir, db: &SessionDb, id: &SessionId) -> bool {
    let result = match data.remove(id).await {
        Ok(()) => db.wiped(id.as_str()).await.map_err(std::io::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::warn!(session_id = %id, error = %e, "a deleted session's files could not be removed; the next start retries");
    }
    result.is_ok()
}

/// What a caller hears when a session's record could not be written: a full disk
/// is RESOURCE_EXHAUSTED naming the data dir (retrying cannot help until there is
/// room), anything else UNAVAILABLE.
pub fn write_failed(data: &DataDir, id: &SessionId, error: &DbError) -> crate::error::SessionError {
    use crate::error::SessionError;
    let dir = data.root().display();
    if error.is_full() {
        return SessionError::ResourceExhausted(format!(
            "the data dir {dir} is full ({error}): session {id} was not stored; free space there, then retry"
        ));
    }
    SessionError::Unavailable(format!(
        "session {id} could not be stored in the data dir {dir} ({error}): check it, then retry"
    ))
}

/// Removes a file; one that is already gone is fine.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Creates a folder readable by its owner only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens `path` for writing, creating it readable by its owner only (an existing
/// file keeps its mode); `truncate` empties it. SQLite's journals copy a database
/// file's mode, so creating the file this way first keeps them private too.
pub fn open_private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = open_private_file(&tmp, true)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_of_the_data_dir_waits_for_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let first = data.lock().await.unwrap();
        let second = tokio::spawn({
            let data = data.clone();
            async move { data.lock().await.map(drop) }
        });
        tokio::time::sleep(LOCK_RETRY * 3).await;
        assert!(
            !second.is_finished(),
            "the second lock must wait while the first is held"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the second lock is taken once the first is released")
            .unwrap()
            .unwrap();
    }
}
