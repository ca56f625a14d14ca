//! A session's WhatsApp credential files: the library's SQLite store
//! (`whatsapp.db`, with its `-wal` and `-shm`) and the `whatsapp.linked` marker that
//! says the store holds a paired device, all in the session's 0700 folder; and how
//! the store is opened: every commit on disk before it returns (`synchronous=FULL`,
//! like the event log), so a power loss cannot roll the Signal state back behind the
//! marker or an event already logged.

use std::path::{Path, PathBuf};

use whatsapp_rust::store::{SqliteStore, SqliteStoreConfig, Synchronous};

use crate::{
    domain::SessionId,
    store::{create_private_dir, open_private_file, remove_if_present, write_atomic, DataDir},
};

/// The SQLite store's file name.
const DB_FILE: &str = "whatsapp.db";

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The marker's file name: written once the store holds a paired device, so
/// `has_credentials` is one `stat` instead of a database read.
const LINKED_FILE: &str = "whatsapp.linked";

/// The files of one session's credential store.
#[derive(Debug, Clone)]
pub struct CredentialFiles {
    /// The session's folder.
    dir: PathBuf,
}

impl CredentialFiles {
    /// The files of `session` under `data`.
    pub fn new(data: &DataDir, session: &SessionId) -> Self {
        Self {
            dir: data.session_dir(session),
        }
    }

    /// The SQLite database path.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// Whether a paired device is stored (the marker exists).
    pub fn is_linked(&self) -> bool {
        self.dir.join(LINKED_FILE).exists()
    }

    /// Creates the folder (0700) and an empty database file (0600) if missing, so
    /// SQLite (and its -wal/-shm, which copy the database's mode) never makes a
    /// world-readable file. Blocking: call from `spawn_blocking`.
    fn prepare(&self) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        open_private_file(&self.db_path(), false)?;
        restrict(&self.db_path())
    }

    /// Prepares the files and opens the store on them (see the module's doc for
    /// its settings). Errors are causes in words.
    pub async fn open(&self) -> Result<SqliteStore, String> {
        let prepared = self.clone();
        tokio::task::spawn_blocking(move || prepared.prepare())
            .await
            .map_err(|e| format!("could not prepare the credential store: {e}"))?
            .map_err(|e| format!("could not prepare the credential store: {e}"))?;
        let db_path = self.db_path();
        SqliteStore::with_config(&db_path.to_string_lossy(), store_config())
            .await
            .map_err(|e| format!("could not open the credential store {}: {e}", db_path.display()))
    }

    /// Records that the store holds the paired device `jid`. Blocking.
    pub fn mark_linked(&self, jid: &str) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        write_atomic(&self.dir, LINKED_FILE, jid.as_bytes())
    }

    /// At restore: a linked store whose database is missing or not SQLite cannot
    /// resume, and an unlinked one is the leftover of a pairing that never finished;
    /// both are wiped so pairing starts clean. Returns why, when a linked store was
    /// lost. Blocking.
    pub fn repair(&self) -> Option<String> {
        let db = std::fs::File::open(self.db_path()).and_then(|mut file| {
            let mut header = [0u8; 16];
            std::io::Read::read(&mut file, &mut header).map(|n| (n, header))
        });
        let usable = match &db {
            // SQLite writes its header on the first transaction: an empty file is new.
            Ok((0, _)) => true,
            Ok((n, header)) => *n == 16 && header == SQLITE_HEADER,
            Err(_) => false,
        };
        let linked = self.is_linked();
        let why = match (linked, usable, db.is_ok()) {
            (true, true, _) => return None,
            (false, _, false) => return None,
            (true, false, _) => {
                Some("the credential store was unreadable and has been wiped: pair the session again".to_owned())
            }
            (false, _, true) => None,
        };
        match self.wipe() {
            Ok(()) => why,
            Err(e) => Some(format!("the credential store is unusable and could not be wiped ({e})")),
        }
    }

    /// Deletes the marker first (so a crash half-way reads as "not linked"), then
    /// the database and its journals. Missing files are fine. Blocking.
    pub fn wipe(&self) -> std::io::Result<()> {
        let names = [
            LINKED_FILE.to_owned(),
            DB_FILE.to_owned(),
            format!("{DB_FILE}-wal"),
            format!("{DB_FILE}-shm"),
            format!("{DB_FILE}-journal"),
        ];
        for name in names {
            remove_if_present(&self.dir.join(name))?;
        }
        Ok(())
    }
}

/// The store's connection settings: the library's (WAL, one connection) with
/// `synchronous=FULL`. Not `locking_mode=EXCLUSIVE`, which would drop the `-shm`:
/// a client can outlive its connection (the library's pairing-code flow keeps it a
/// minute after the code is typed), and the session's next client would then wait
/// on the lock instead of connecting.
fn store_config() -> SqliteStoreConfig {
    SqliteStoreConfig {
        synchronous: Synchronous::Full,
        ..SqliteStoreConfig::default()
    }
}

/// Makes `path` readable and writable by its owner only.
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::{
        sql_types::{Integer, Text},
        RunQueryDsl,
    };
    use whatsapp_rust::store::error::StoreError;

    use super::*;

    /// The settings in effect on a connection.
    #[derive(Debug, diesel::QueryableByName)]
    struct Settings {
        #[diesel(sql_type = Text)]
        journal_mode: String,
        /// 2 is FULL.
        #[diesel(sql_type = Integer)]
        synchronous: i32,
    }

    #[tokio::test]
    async fn the_store_commits_durably_in_wal() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let files = CredentialFiles::new(&data, &SessionId::parse("alice").unwrap());
        let store = files.open().await.unwrap();
        let settings = store
            .shared()
            .run(|conn| {
                diesel::sql_query(
                    "SELECT (SELECT * FROM pragma_journal_mode) AS journal_mode, \
                     (SELECT * FROM pragma_synchronous) AS synchronous",
                )
                .get_result::<Settings>(conn)
                .map_err(|e| StoreError::Database(Box::new(e)))
            })
            .await
            .unwrap();
        assert_eq!(settings.journal_mode, "wal", "{settings:?}");
        assert_eq!(settings.synchronous, 2, "synchronous=FULL: {settings:?}");
        assert!(tmp_sibling(&files, "-wal").exists());

        drop(store);
        let other = rusqlite::Connection::open(files.db_path()).unwrap();
        let mode: String = other.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal", "kept in the file");
    }

    /// `whatsapp.db` with `suffix`.
    fn tmp_sibling(files: &CredentialFiles, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}", files.db_path().display()))
    }

    #[test]
    fn the_store_is_private_linked_by_marker_and_wiped_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let files = CredentialFiles::new(&data, &SessionId::parse("alice").unwrap());
        files.prepare().unwrap();
        assert!(!files.is_linked());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(files.db_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        files.mark_linked("15551234567:3@s.whatsapp.net").unwrap();
        assert!(files.is_linked());
        std::fs::write(files.db_path().with_extension("db-wal"), b"x").unwrap();
        files.wipe().unwrap();
        assert!(!files.is_linked());
        assert!(!files.db_path().exists());
        assert!(!files.db_path().with_extension("db-wal").exists());
        files.wipe().unwrap();
    }

    #[test]
    fn repair_wipes_a_store_that_cannot_resume_and_keeps_a_good_one() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let files = CredentialFiles::new(&data, &SessionId::parse("alice").unwrap());
        assert_eq!(files.repair(), None, "nothing stored: nothing to do");
        files.prepare().unwrap();
        files.mark_linked("1@s.whatsapp.net").unwrap();
        assert_eq!(files.repair(), None, "an empty database is a new one");
        std::fs::write(files.db_path(), b"SQLite format 3\0 and pages").unwrap();
        assert_eq!(files.repair(), None);
        assert!(files.is_linked());

        std::fs::write(files.db_path(), b"garbage, not sqlite at all").unwrap();
        let why = files.repair().expect("a corrupt linked store is reported");
        assert!(why.contains("pair the session again"), "{why}");
        assert!(!files.is_linked() && !files.db_path().exists());

        files.prepare().unwrap();
        std::fs::write(files.db_path(), b"half a pairing").unwrap();
        assert_eq!(files.repair(), None, "an unlinked leftover is wiped quietly");
        assert!(!files.db_path().exists());
    }
}
