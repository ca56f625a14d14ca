//! The data dir (0700): its `sessions/` folder with one folder per session for the
//! backend's credential store, the lock file that keeps a second daemon off it, and
//! the data dir's side of a delete (wiping a session's folder) and of a failed write
//! (what the caller hears).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    db::SessionDb,
    error::DbError,
    fs::{create_private_dir, open_private_file, sync_dir},
};
use crate::{domain::SessionId, error::SessionError};

/// The lock file that keeps two daemons off one data dir.
const LOCK_FILE: &str = "wa-sessiond.lock";

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// The data dir itself.
    root: PathBuf,
    /// `<data-dir>/sessions`: one folder per session, named by its id.
    sessions: PathBuf,
}

/// The data dir's lock, held for as long as this lives (the OS drops it with the
/// process, kill -9 included).
#[derive(Debug)]
pub struct DirLock {
    /// The open lock file: the OS lock lasts as long as this handle.
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
        Ok(()) => db.wiped(id).await.map_err(std::io::Error::from),
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
pub fn write_failed(data: &DataDir, id: &SessionId, error: &DbError) -> SessionError {
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
