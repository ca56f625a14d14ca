//! The one way the daemon watches its long-lived tasks (the admin port, the link
//! page, the gRPC server, the registry, retention, the writer threads of the session
//! list and the event log): each runs as a named task in one set, and the first one
//! to end (return, fail or panic) is reported with its name and how. While the
//! daemon runs, any end is a death (`run` ends the process with it); while it
//! drains, the parts being drained are awaited here and the rest are aborted when
//! the set is dropped.

use std::{collections::HashMap, future::Future};

use tokio::task::{Id, JoinSet};

/// The long-lived tasks of one run of the daemon; dropping it aborts those left.
#[derive(Default)]
pub struct Watched {
    /// Each task, ending with Ok when it returned by itself, or with why it failed.
    tasks: JoinSet<Result<(), String>>,
    /// Which task is which: the name the log line, `/livez` and the exit reason use.
    names: HashMap<Id, &'static str>,
}

/// A watched task that ended.
#[derive(Debug)]
pub struct Ended {
    /// Which one (`the admin port`), as `/livez` names it.
    pub what: &'static str,
    /// How: Ok when it returned by itself, otherwise why (a panic included).
    pub outcome: Result<(), String>,
}

impl Ended {
    /// How it ended, in words.
    pub fn how(&self) -> String {
        match &self.outcome {
            Ok(()) => "it returned".to_owned(),
            Err(why) => why.clone(),
        }
    }
}

impl Watched {
    /// Runs `task` as the watched part `what`.
    pub fn spawn<F>(&mut self, what: &'static str, task: F)
    where
        F: Future<Output = Result<(), String>> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), what);
    }

    /// The next task to end; pending for ever while none is watched. Cancel-safe
    /// (a `select!` branch loses nothing).
    pub async fn first_ended(&mut self) -> Ended {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => (e.id(), Err(e.to_string())),
        };
        let what = self.names.remove(&id).unwrap_or("a watched task");
        Ended { what, outcome }
    }

    /// Waits until every part named in `parts` has ended (a drain), and returns how
    /// each did; the others keep running.
    pub async fn until_ended(&mut self, parts: &[&'static str]) -> Vec<Ended> {
        let mut ended = Vec::new();
        while self.names.values().any(|what| parts.contains(what)) {
            let next = self.first_ended().await;
            if parts.contains(&next.what) {
                ended.push(next);
            }
        }
        ended
    }

    /// Waits until `part` has ended, and returns how it did, with how any of `also`
    /// that ended meanwhile did.
    pub async fn until_part_ended(&mut self, part: &'static str, also: &[&'static str]) -> Vec<Ended> {
        let mut ended = Vec::new();
        while self.names.values().any(|what| *what == part) {
            let next = self.first_ended().await;
            if next.what == part || also.contains(&next.what) {
                ended.push(next);
            }
        }
        ended
    }
}

/// A task that serves a listener until dropped: its return is the listener's failure.
pub async fn listener_failed(serve: impl Future<Output = std::io::Error>) -> Result<(), String> {
    Err(format!("its listener failed: {}", serve.await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_task_to_end_is_named_with_how_it_ended() {
        let mut watched = Watched::default();
        watched.spawn("the quiet one", std::future::pending());
        watched.spawn("the broken one", async { panic!("boom") });
        let ended = watched.first_ended().await;
        assert_eq!(ended.what, "the broken one");
        assert!(
            ended.how().contains("panicked with message \"boom\""),
            "{}",
            ended.how()
        );

        watched.spawn("the returning one", async { Ok(()) });
        let ended = watched.first_ended().await;
        assert_eq!((ended.what, ended.how().as_str()), ("the returning one", "it returned"));
    }

    #[tokio::test]
    async fn a_drain_waits_for_the_named_parts_only() {
        let mut watched = Watched::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        watched.spawn("the server", async {
            let _ = stopped.await;
            Err("closed".to_owned())
        });
        watched.spawn("the admin port", std::future::pending());
        let draining = tokio::spawn(async move {
            let ended = watched.until_ended(&["the server"]).await;
            (ended, watched)
        });
        stop.send(()).unwrap();
        let (ended, watched) = tokio::time::timeout(std::time::Duration::from_secs(10), draining)
            .await
            .expect("the drain ends once the server has")
            .unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].what, ended[0].how().as_str()), ("the server", "closed"));
        assert_eq!(watched.names.values().collect::<Vec<_>>(), vec![&"the admin port"]);
    }
}
