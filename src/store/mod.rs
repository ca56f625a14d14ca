//! State on disk. The data dir (0700, [`data_dir`]) holds the session list
//! (`sessions.db`, see [`db`]), a lock file that keeps a second daemon off it, and one
//! folder per session under `sessions/` for the backend's credential store. File
//! writes are atomic ([`fs`]). Each concern has its file; this one only declares
//! them and re-exports what the rest of the daemon uses.

pub mod checkpointer;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod fs;
pub mod group_commit;
pub mod record;
pub mod time;

pub use data_dir::{finish_wipe, write_failed, DataDir, DirLock};
pub use db::{PageQuota, Restored, SessionDb, Skipped};
pub use error::DbError;
pub use fs::{create_private_dir, open_private_file, remove_if_present, write_atomic};
pub use record::SessionRecord;
pub use time::{from_unix_ms, unix_ms};
