//! One reader following the log: it reads pages from disk after its position and,
//! once caught up, waits for the head to move. Replay and live are the same loop, so
//! there is no seam to lose or repeat an event at. Its memory is one page plus what
//! its output channel holds, however far behind it is.

use tokio::sync::{mpsc, watch};

use super::{parse_cursor, EventLog, Filter};
use crate::{proto::Event, store::DbError};

/// Events read per page.
const PAGE: usize = 256;

/// Why a reader stopped before its receiver went away.
#[derive(Debug)]
pub enum FollowEnd {
    /// Its position was trimmed away: the oldest event kept is `oldest` (None: the
    /// log is empty), the newest is `head`.
    Expired {
        /// The oldest cursor kept.
        oldest: Option<u64>,
        /// The newest cursor.
        head: u64,
    },
    /// The log could not be read.
    Failed(DbError),
}

/// Whether a reader at `after` (it has seen everything up to it) of `filter`
/// missed trimmed events: the oldest cursor kept, when it did.
pub async fn expired(log: &EventLog, after: u64, filter: &Filter) -> Result<Option<FollowEnd>, DbError> {
    let marks = log.readers.session_marks(after, filter.sessions.clone()).await?;
    expired_past(log, after, log.trimmed_through(), &marks, &filter.accepted).await
}

/// Whether a reader at `after` missed events: the log trimmed through
/// `trimmed_through`, or a session past `after` (`marks`) further than the reader
/// accepted.
fn missed(after: u64, trimmed_through: u64, marks: &[(String, u64)], accepted: &[(String, u64)]) -> bool {
    let beyond_accepted = |(session, through): &(String, u64)| {
        *through > after && !accepted.iter().any(|(known, mark)| known == session && mark >= through)
    };
    after < trimmed_through || marks.iter().any(beyond_accepted)
}

async fn expired_past(
    log: &EventLog,
    after: u64,
    trimmed_through: u64,
    marks: &[(String, u64)],
    accepted: &[(String, u64)],
) -> Result<Option<FollowEnd>, DbError> {
    if !missed(after, trimmed_through, marks, accepted) {
        return Ok(None);
    }
    let oldest = log.oldest().await?.map(|(cursor, _)| cursor);
    Ok(Some(FollowEnd::Expired {
        oldest,
        head: log.head(),
    }))
}

/// Sends every event after `after` that passes `filter` to `out`, in order, then
/// follows the log, until `out` is dropped, the log fails or `stopping` turns true
/// (the daemon shuts down: the stream ends, the client resumes from its cursor) or
/// its sender is dropped.
pub async fn follow(
    log: EventLog,
    mut after: u64,
    filter: Filter,
    out: mpsc::Sender<Result<Event, FollowEnd>>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut head = log.watch_head();
    loop {
        if *stopping.borrow() {
            return;
        }
        let seen_head = *head.borrow_and_update();
        if after >= seen_head {
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = out.closed() => return,
                // Its sender gone means its daemon is gone too.
                stop = stopping.changed() => if stop.is_err() { return },
            }
            continue;
        }
        let page = match log.readers.page_and_mark(after, filter.clone(), PAGE).await {
            Ok(page) => page,
            Err(error) => {
                let _ = out.send(Err(FollowEnd::Failed(error))).await;
                return;
            }
        };
        // Events after `after` were trimmed while this reader lagged: say so. The
        // page's own snapshot knows of a trim it lacks events to, even before the
        // writer publishes that trim's mark.
        let trimmed_through = page.trimmed_through.max(log.trimmed_through());
        match expired_past(&log, after, trimmed_through, &page.session_marks, &filter.accepted).await {
            Ok(None) => {}
            Ok(Some(end)) => {
                let _ = out.send(Err(end)).await;
                return;
            }
            Err(error) => {
                let _ = out.send(Err(FollowEnd::Failed(error))).await;
                return;
            }
        }
        let full = page.events.len() == PAGE;
        for event in page.events {
            after = parse_cursor(&event.cursor).unwrap_or(after);
            tokio::select! {
                sent = out.send(Ok(event)) => if sent.is_err() { return },
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
        if !full {
            // The page held every matching event committed up to `seen_head`.
            after = after.max(seen_head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::missed;

    fn marks(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(s, m)| ((*s).to_owned(), *m)).collect()
    }

    #[test]
    fn a_reader_misses_what_was_trimmed_past_it_unless_it_accepted_that_gap() {
        assert!(missed(3, 5, &[], &[]), "the log's own mark");
        assert!(!missed(5, 5, &[], &[]));
        assert!(missed(5, 0, &marks(&[("a", 9)]), &[]), "a session trimmed past it");
        assert!(
            !missed(5, 0, &marks(&[("a", 9)]), &marks(&[("a", 9)])),
            "a gap it accepted"
        );
        assert!(
            missed(5, 0, &marks(&[("a", 12)]), &marks(&[("a", 9)])),
            "trimmed further since"
        );
        assert!(
            missed(5, 0, &marks(&[("b", 7)]), &marks(&[("a", 9)])),
            "another session"
        );
        assert!(!missed(9, 0, &marks(&[("a", 9)]), &[]), "it read past the mark");
    }
}
