//! The one error of the stores on disk: what SQLite or the file system refused,
//! a writer thread that is gone, a disk that is full. One floor below the stores
//! and their writer thread, which all speak it.

/// A failure of a database on the group-commit writer (the session list, the
/// event log, the emulator's queue).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The writer thread is gone (shutting down).
    #[error("the session list is closed")]
    Closed,
    /// The file system (or SQLite) has no room left.
    #[error("{0}")]
    Full(String),
}

impl DbError {
    /// Whether the write failed for want of space (SQLITE_FULL, ENOSPC, a quota).
    pub fn is_full(&self) -> bool {
        match self {
            DbError::Full(_) => true,
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            DbError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            DbError::Closed => false,
        }
    }
}

impl From<DbError> for std::io::Error {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}
