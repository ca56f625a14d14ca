//! Which of a session's links still work: each session has a link generation, kept
//! durably beside the session list (`<data-dir>/links/<session-id>`, written
//! atomically), and a link works only while it carries the current one.
//! `RevokeLinks`, `DisconnectSession` and `LogoutSession` move a session to the
//! next generation, so every link issued before stops working, across restarts.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use parking_lot::Mutex;

use crate::{
    domain::SessionId,
    store::{create_private_dir, write_atomic},
};

/// The folder under the data dir.
pub const LINKS_DIR: &str = "links";

/// Every session's link generation (0 for a session never revoked).
#[derive(Debug)]
pub struct LinkGenerations {
    /// `<data-dir>/links`.
    dir: PathBuf,
    /// Generations read or written so far.
    known: Mutex<HashMap<SessionId, u64>>,
    /// Serializes revocations, so two at once both count and none is lost.
    writing: tokio::sync::Mutex<()>,
}

impl LinkGenerations {
    /// The generations kept under `data_dir` (its folder is made on the first revocation).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(LINKS_DIR),
            known: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// `id`'s current generation (a file that cannot be read counts as the highest,
    /// so no link of it works until a revocation rewrites it).
    pub fn current(&self, id: &SessionId) -> u64 {
        if let Some(generation) = self.known.lock().get(id) {
            return *generation;
        }
        let generation = match std::fs::read_to_string(self.dir.join(id.as_str())) {
            Ok(text) => text.trim().parse().unwrap_or(u64::MAX),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(_) => return u64::MAX,
        };
        self.known.lock().insert(id.clone(), generation);
        generation
    }

    /// Moves `id` to its next generation, on disk before it returns: every link
    /// issued so far stops working. Returns the new generation.
    pub async fn revoke(&self, id: &SessionId) -> std::io::Result<u64> {
        let _one_at_a_time = self.writing.lock().await;
        let next = match self.current(id) {
            u64::MAX => 1,
            generation => generation + 1,
        };
        let dir = self.dir.clone();
        let name = id.as_str().to_owned();
        tokio::task::spawn_blocking(move || {
            create_private_dir(&dir)?;
            write_atomic(&dir, &name, next.to_string().as_bytes())
        })
        .await
        .map_err(std::io::Error::other)??;
        self.known.lock().insert(id.clone(), next);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_revocation_moves_the_generation_on_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let alice = SessionId::parse("alice").unwrap();
        let bob = SessionId::parse("bob").unwrap();
        let generations = LinkGenerations::new(dir.path());
        assert_eq!(generations.current(&alice), 0);
        assert_eq!(generations.revoke(&alice).await.unwrap(), 1);
        assert_eq!(generations.revoke(&alice).await.unwrap(), 2);
        assert_eq!(generations.current(&bob), 0);

        let restarted = LinkGenerations::new(dir.path());
        assert_eq!(restarted.current(&alice), 2);
        assert_eq!(restarted.current(&bob), 0);
    }
}
