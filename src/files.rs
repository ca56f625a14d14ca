//! Open files: the process's limit (its soft limit raised to the hard one at
//! start, so a default of 1,024 does not stall a few hundred sessions), how many
//! are open now, and whether there is room for one more session's. Each connected
//! session of the real backend holds two (its socket, and its SQLite store's
//! database; see `backend::whatsapp::store`); running out makes
//! sessions retry forever with "Too many open files", so a create that would not fit
//! is refused instead.

use std::fmt;

/// Files kept free for everything else (gRPC and admin connections, the event
/// log's readers, the link page's feeds, logs).
pub const RESERVE: u64 = 128;

/// The open-files limit, before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (what counts).
    pub soft: u64,
    /// The hard limit (the most the soft one can be raised to without privileges).
    pub hard: u64,
}

/// Raises the soft limit to the hard one; the limits after (or why it could not).
pub fn raise() -> std::io::Result<Limit> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(Limit { before, soft, hard })
}

/// The soft limit now.
pub fn limit() -> Option<u64> {
    rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
}

/// Files open now (the entries of `/proc/self/fd`; None where there is none).
pub fn open_now() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64)
}

/// Why there is no room for another session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom {
    /// Files open now.
    pub open: u64,
    /// The soft limit.
    pub limit: u64,
    /// What one session needs.
    pub per_session: u64,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no room for another session's open files: {} of the limit of {} are in use or promised (each session needs about {}, {} are kept free): raise the open-files limit (ulimit -n, systemd LimitNOFILE, the container's nofile) or delete unused sessions",
            self.open, self.limit, self.per_session, RESERVE
        )
    }
}

/// Whether one more session fits beside `sessions` others, each needing
/// `per_session` files: the files open now, or what the sessions will hold once
/// all are connected, whichever is more, plus the reserve.
pub fn room_for_one(sessions: u64, per_session: u64, open: u64, limit: u64) -> Result<(), NoRoom> {
    let promised = open.max(sessions * per_session);
    if promised + per_session + RESERVE <= limit {
        return Ok(());
    }
    Err(NoRoom {
        open: promised,
        limit,
        per_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_fits_while_the_open_or_promised_files_leave_room_for_it_and_the_reserve() {
        assert!(room_for_one(10, 4, 100, 1024).is_ok());
        // 224 sessions promise 896 files: 896 + 4 + 128 > 1024.
        let full = room_for_one(224, 4, 300, 1024).unwrap_err();
        assert_eq!(full.open, 896);
        // What is open counts when it is more than the sessions promise.
        assert!(room_for_one(1, 4, 1000, 1024).is_err());
        let said = full.to_string();
        assert!(said.contains("limit of 1024") && said.contains("ulimit -n"), "{said}");
    }

    #[test]
    fn the_process_can_read_its_limit_and_its_open_files() {
        let limit = limit().expect("a limit");
        let open = open_now().expect("/proc/self/fd");
        assert!(open > 0 && open < limit, "{open} of {limit}");
    }
}
