//! State on disk: one folder per session under `<data-dir>/sessions/`, holding its
//! record (`session.json`) and the backend's credential store. Writes are atomic
//! (temp file, fsync, rename, fsync of the folder), so a kill -9 at any moment leaves
//! either the old record or the new one.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::session::SessionId;

/// The record file's name inside a session folder.
const RECORD_FILE: &str = "session.json";

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
    /// `<data-dir>/sessions`.
    sessions: PathBuf,
}

impl DataDir {
    /// Uses (and creates, owner-only) `<root>/sessions`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        let sessions = root.join("sessions");
        create_private_dir(&sessions)?;
        Ok(Self { sessions })
    }

    /// The folder of one session (not created).
    pub fn session_dir(&self, id: &SessionId) -> PathBuf {
        self.sessions.join(id.as_str())
    }

    /// Writes a record atomically.
    pub async fn save(&self, record: SessionRecord) -> std::io::Result<()> {
        let dir = self.sessions.join(&record.id);
        tokio::task::spawn_blocking(move || {
            create_private_dir(&dir)?;
            let bytes = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
            write_atomic(&dir, RECORD_FILE, &bytes)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Reads one session's record; None when it has none (or it is unreadable).
    pub async fn load(&self, id: &SessionId) -> std::io::Result<Option<SessionRecord>> {
        let path = self.session_dir(id).join(RECORD_FILE);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
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

    /// Reads every record; folders whose record is missing or unreadable are skipped
    /// with a warning (a crash between mkdir and the first write leaves such a folder).
    pub async fn load_all(&self) -> std::io::Result<Vec<SessionRecord>> {
        let root = self.sessions.clone();
        tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            for entry in std::fs::read_dir(&root)? {
                let path = entry?.path().join(RECORD_FILE);
                match std::fs::read(&path).map(|b| serde_json::from_slice::<SessionRecord>(&b)) {
                    Ok(Ok(record)) if SessionId::parse(&record.id).is_ok() => records.push(record),
                    Ok(Ok(_)) | Ok(Err(_)) => {
                        tracing::warn!(path = %path.display(), "skipping an unreadable session record")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            records.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(records)
        })
        .await
        .map_err(std::io::Error::other)?
    }
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

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
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
    async fn records_survive_a_reopen_and_remove_wipes_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let record = SessionRecord {
            id: "alice".into(),
            jid: "1@s.whatsapp.net".into(),
            ..Default::default()
        };
        data.save(record.clone()).await.unwrap();
        std::fs::create_dir_all(tmp.path().join("sessions/half-made")).unwrap();
        let reopened = DataDir::open(tmp.path()).unwrap();
        assert_eq!(reopened.load_all().await.unwrap(), vec![record]);
        let id = SessionId::parse("alice").unwrap();
        reopened.remove(&id).await.unwrap();
        assert!(!reopened.session_dir(&id).exists());
        assert!(reopened.load_all().await.unwrap().is_empty());
    }
}
