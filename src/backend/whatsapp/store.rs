//! A session's WhatsApp credential files: the library's SQLite store
//! (`whatsapp.db`, with its transient `-journal`) and the `whatsapp.linked` marker
//! that says the store holds a paired device, all in the session's 0700 folder; and
//! how the store is opened: every commit on disk before it returns
//! (`synchronous=FULL`, like the event log), so a power loss cannot roll the Signal
//! state back behind the marker or an event already logged; and in a rollback
//! journal instead of the library's WAL, so a connected session keeps one file of
//! its store open instead of three (the `-wal` and `-shm` stay open as long as the
//! store does; a rollback journal exists only while a write commits).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

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
        let mut wait = OPEN_RETRY_FIRST;
        let store = loop {
            match SqliteStore::with_config(&db_path.to_string_lossy(), store_config()).await {
                Ok(store) => break store,
                // The library asks for WAL as it opens, which needs the file to itself:
                // the session's previous client may still be closing on it.
                Err(error) if wait <= OPEN_RETRY_LAST => {
                    tracing::debug!(store = %db_path.display(), %error, ?wait, "the credential store did not open; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    return Err(format!(
                        "could not open the credential store {}: {e}",
                        db_path.display()
                    ))
                }
            }
        };
        leave_wal(&store, &db_path).await;
        Ok(store)
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

/// The store's connection settings: the library's (one connection) with
/// `synchronous=FULL`; [`leave_wal`] then drops its WAL. Not
/// `locking_mode=EXCLUSIVE`, which would drop the `-shm` too:
/// a client can outlive its connection (the library's pairing-code flow keeps it a
/// minute after the code is typed), and the session's next client would then wait
/// on the lock instead of connecting.
fn store_config() -> SqliteStoreConfig {
    SqliteStoreConfig {
        synchronous: Synchronous::Full,
        ..SqliteStoreConfig::default()
    }
}

/// The journal mode SQLite reports after a change.
#[derive(diesel::QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// The first and the last wait before opening the store again (doubling: about
/// 6 s in all), while another client of the session still holds the file.
const OPEN_RETRY_FIRST: Duration = Duration::from_millis(50);
const OPEN_RETRY_LAST: Duration = Duration::from_millis(3200);

/// How long a store that could not leave WAL when opened keeps trying (the library
/// keeps a pairing client about a minute after the code is typed), and how often.
const LEAVE_WAL_FOR: Duration = Duration::from_secs(120);
const LEAVE_WAL_EVERY: Duration = Duration::from_secs(2);

/// Switches the store from the library's WAL to a rollback journal (`DELETE`),
/// which closes the `-wal` and `-shm` files: the store then holds only its
/// database open. SQLite leaves WAL only for its sole connection: while another
/// client still has the file open (the previous client of the session, finishing),
/// the open does not wait; the switch is retried in the background every
/// [`LEAVE_WAL_EVERY`] for [`LEAVE_WAL_FOR`], after which the store stays in WAL
/// until it is opened again. Either way every commit is durable.
async fn leave_wal(store: &SqliteStore, db_path: &Path) {
    if switch_to_rollback(store).await.is_ok() {
        return;
    }
    let (store, db_path) = (store.clone(), db_path.to_owned());
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + LEAVE_WAL_FOR;
        let mut why = String::new();
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(LEAVE_WAL_EVERY).await;
            match switch_to_rollback(&store).await {
                Ok(()) => return,
                Err(error) => why = error,
            }
        }
        tracing::debug!(store = %db_path.display(), %why, "the credential store stays in WAL until it is opened again");
    });
}

/// One attempt at leaving WAL, without waiting on another connection's lock.
async fn switch_to_rollback(store: &SqliteStore) -> Result<(), String> {
    use diesel::{connection::SimpleConnection, RunQueryDsl};
    use whatsapp_rust::store::error::StoreError;

    let busy_ms = store_config().busy_timeout.as_millis();
    let mode = store
        .shared()
        .run(move |conn| {
            let database = |e| StoreError::Database(Box::new(e));
            conn.batch_execute("PRAGMA busy_timeout = 0;").map_err(database)?;
            let mode = diesel::sql_query("PRAGMA journal_mode = DELETE;").get_result::<JournalMode>(conn);
            conn.batch_execute(&format!("PRAGMA busy_timeout = {busy_ms};"))
                .map_err(database)?;
            Ok(mode.map(|m| m.journal_mode).unwrap_or_else(|e| e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())?;
    if mode.eq_ignore_ascii_case("delete") {
        Ok(())
    } else {
        Err(format!("journal mode {mode} (another connection has the file open)"))
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
    async fn the_store_commits_durably_in_a_rollback_journal_and_holds_only_its_database() {
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
        assert_eq!(settings.journal_mode, "delete", "{settings:?}");
        assert_eq!(settings.synchronous, 2, "synchronous=FULL: {settings:?}");
        assert!(!tmp_sibling(&files, "-wal").exists());
        assert!(!tmp_sibling(&files, "-shm").exists());

        drop(store);
        let other = rusqlite::Connection::open(files.db_path()).unwrap();
        let mode: String = other.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
        assert_eq!(mode, "delete", "kept in the file");
    }

    #[tokio::test]
    async fn a_store_another_connection_holds_open_opens_at_once_and_leaves_wal_once_it_is_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let data = DataDir::open(tmp.path()).unwrap();
        let files = CredentialFiles::new(&data, &SessionId::parse("alice").unwrap());
        drop(files.open().await.unwrap());
        // The previous client of the session, still finishing, in WAL (as the
        // library opens it).
        let lingering = rusqlite::Connection::open(files.db_path()).unwrap();
        let _: String = lingering
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .unwrap();
        lingering
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .unwrap();
        let store = tokio::time::timeout(Duration::from_secs(10), files.open())
            .await
            .expect("opened without waiting out the busy timeout (30 s)")
            .unwrap();
        assert_eq!(
            journal_mode(&store).await,
            "wal",
            "not switched under another connection"
        );
        assert!(tmp_sibling(&files, "-shm").exists());

        drop(lingering);
        let bound = tokio::time::Instant::now() + LEAVE_WAL_EVERY * 5;
        while journal_mode(&store).await != "delete" {
            assert!(tokio::time::Instant::now() < bound, "left WAL once alone");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!tmp_sibling(&files, "-shm").exists());
    }

    async fn journal_mode(store: &SqliteStore) -> String {
        store
            .shared()
            .run(|conn| {
                diesel::sql_query("SELECT (SELECT * FROM pragma_journal_mode) AS journal_mode, 2 AS synchronous")
                    .get_result::<Settings>(conn)
                    .map_err(|e| StoreError::Database(Box::new(e)))
            })
            .await
            .unwrap()
            .journal_mode
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
