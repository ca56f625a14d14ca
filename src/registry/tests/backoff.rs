//! The reconnect backoff as a caller sees it, on the paused clock: each failed
//! attempt waits longer, and a connection that stays up for the stable period
//! (`stable_after`, 30 s here) starts the backoff over; one that drops sooner does not.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::{backend::Disconnect, domain::Status};

/// The longest any reconnect here may take to start (the cap is 60 s).
const PATIENCE: Duration = Duration::from_secs(70);

impl Daemon {
    /// Moves virtual time 10 ms at a time until connection `n` starts; returns how
    /// long that took.
    async fn wait_for_connection(&self, id: &SessionId, n: usize) -> Duration {
        let start = Instant::now();
        while self.backend.started() < n {
            assert!(start.elapsed() < PATIENCE, "connection {n} never started");
            tokio::time::advance(Duration::from_millis(10)).await;
            let _ = self.now(id).await;
        }
        start.elapsed()
    }

    /// Drops `line` (socket loss) and returns how long the session waited before its
    /// next connection (`n`) started.
    async fn drop_and_time(&self, line: &Line, n: usize) -> Duration {
        self.tell(
            line,
            BackendEvent::Disconnected(Disconnect::ConnectionLost("reset".into())),
        )
        .await;
        self.wait_for_connection(line.session(), n).await
    }

    /// Fails connection `n` before it connects and times the next one.
    async fn fail_and_time(&self, id: &SessionId, n: usize) -> Duration {
        let line = self.backend.connection(n).await;
        self.tell(&line, BackendEvent::ConnectFailed("refused".into())).await;
        self.wait_for_connection(id, n + 1).await
    }

    /// Brings connection `n` CONNECTED.
    async fn up(&self, id: &SessionId, n: usize) -> Line {
        let line = self.backend.connection(n).await;
        self.tell(
            &line,
            BackendEvent::Connected(crate::backend::scripted::identity("15551234567")),
        )
        .await;
        assert_eq!(self.now(id).await.unwrap().status, Status::Connected);
        line
    }
}

/// Drops a CONNECTED session and fails two reconnects: the waits grow (about 0.5,
/// 1 and 2 s, each within 80%..120%). Returns with connection 5 started.
async fn three_growing_waits(daemon: &Daemon, alice: &SessionId, online: &Line) -> [Duration; 3] {
    let first = daemon.drop_and_time(online, 3).await;
    let second = daemon.fail_and_time(alice, 3).await;
    let third = daemon.fail_and_time(alice, 4).await;
    let waits = [first, second, third];
    assert!(first <= Duration::from_millis(610), "{waits:?}");
    assert!(
        second >= Duration::from_millis(800) && third >= Duration::from_millis(1600),
        "{waits:?}"
    );
    waits
}

#[tokio::test(start_paused = true)]
async fn a_connection_up_for_the_stable_period_starts_the_backoff_over() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let online = daemon.connected(&alice).await;
    let waits = three_growing_waits(&daemon, &alice, &online).await;

    let again = daemon.up(&alice, 5).await;
    tokio::time::advance(daemon.ctx.timeouts.stable_after + Duration::from_millis(10)).await;
    let _ = daemon.now(&alice).await;
    let after_stable = daemon.drop_and_time(&again, 6).await;
    assert!(
        after_stable <= Duration::from_millis(610),
        "up for the stable period: the next wait is the first one again ({after_stable:?} after {waits:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_drops_before_the_stable_period_keeps_the_grown_backoff() {
    let daemon = Daemon::start().await;
    let alice = id("alice");
    let online = daemon.connected(&alice).await;
    let waits = three_growing_waits(&daemon, &alice, &online).await;

    let again = daemon.up(&alice, 5).await;
    tokio::time::advance(daemon.ctx.timeouts.stable_after / 2).await;
    let _ = daemon.now(&alice).await;
    let too_soon = daemon.drop_and_time(&again, 6).await;
    assert!(
        too_soon >= Duration::from_millis(3200),
        "dropped before the stable period: the backoff goes on growing ({too_soon:?} after {waits:?})"
    );
}
