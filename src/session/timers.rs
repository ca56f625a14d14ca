//! Every timer a session has, in one place: the QR expiry, the first-code deadline,
//! the reconnect backoff, stable-after (the backoff reset) and the callers' wait
//! deadlines. Arming a timer aborts the one it replaces; `abort_all` (also run on
//! drop) stops them all, so no timer outlives the incarnation that armed it. A timer
//! fires by posting its message to the session's mailbox; the message names what it
//! was armed for (a connection, a code), and the actor ignores one that is stale.

use std::{sync::Arc, time::Duration};

use tokio::{task::AbortHandle, time::Instant};

use super::{messages::SessionMsg, state::ConnId};

/// How a fired timer reaches the session: in the actor, a cast to its own mailbox.
pub(crate) type Post = Arc<dyn Fn(SessionMsg) + Send + Sync>;

/// The session's timers, one slot each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The shown QR code's end of life (`SessionMsg::QrExpired`).
    QrExpiry,
    /// A new pairing connection's deadline for its first code (`SessionMsg::FirstQrDue`).
    FirstQr,
    /// The end of a reconnect backoff (`SessionMsg::Reconnect`).
    Reconnect,
    /// When a connection has stayed up long enough to reset the backoff
    /// (`SessionMsg::Stable`).
    Stable,
    /// The earliest deadline among the callers waiting for a code (`SessionMsg::WaitersDue`).
    Waiters,
}

/// Every slot, for `abort_all`.
const ALL: [Timer; 5] = [
    Timer::QrExpiry,
    Timer::FirstQr,
    Timer::Reconnect,
    Timer::Stable,
    Timer::Waiters,
];

/// One armed timer: the task sleeping until `at`, then posting its message.
struct Armed {
    /// Aborting it before `at` means the message is never posted.
    task: AbortHandle,
    /// When it fires; re-arming for the same instant keeps it.
    at: Instant,
}

/// The timers of one session incarnation.
pub(crate) struct Timers {
    /// Where fired timers' messages go.
    post: Post,
    /// Indexed by `Timer as usize`; `None` when not armed.
    slots: [Option<Armed>; ALL.len()],
}

impl Timers {
    /// No timer armed yet; each posts to `post` when it fires.
    pub fn new(post: Post) -> Self {
        Self {
            post,
            slots: Default::default(),
        }
    }

    /// Code `index` of `generation` expires in `ttl`.
    pub fn qr_expiry(&mut self, ttl: Duration, generation: u64, index: u32) {
        self.arm(Timer::QrExpiry, Instant::now() + ttl, move || SessionMsg::QrExpired {
            generation,
            index,
        });
    }

    /// Connection `conn` must show its first code within `timeout`.
    pub fn first_qr(&mut self, timeout: Duration, conn: ConnId) {
        self.arm(Timer::FirstQr, Instant::now() + timeout, move || {
            SessionMsg::FirstQrDue(conn)
        });
    }

    /// Reconnect after `delay`.
    pub fn reconnect(&mut self, delay: Duration) {
        self.arm(Timer::Reconnect, Instant::now() + delay, || SessionMsg::Reconnect);
    }

    /// Connection `conn` counts as stable (the backoff starts over) after `after`.
    pub fn stable(&mut self, after: Duration, conn: ConnId) {
        self.arm(Timer::Stable, Instant::now() + after, move || SessionMsg::Stable(conn));
    }

    /// The waiters' timer fires at `next` (the earliest waiter's deadline), or is
    /// disarmed when nobody waits. Kept as it is when already armed for `next`.
    pub fn waiters(&mut self, next: Option<Instant>) {
        match next {
            Some(at) if self.armed_at(Timer::Waiters) == Some(at) => {}
            Some(at) => self.arm(Timer::Waiters, at, || SessionMsg::WaitersDue),
            None => self.disarm(Timer::Waiters),
        }
    }

    /// Stops `timer` if armed (a no-op for one that already fired).
    pub fn disarm(&mut self, timer: Timer) {
        if let Some(armed) = self.slots[timer as usize].take() {
            armed.task.abort();
        }
    }

    /// Stops every timer: the session stops, is deleted, or its incarnation ends.
    pub fn abort_all(&mut self) {
        for timer in ALL {
            self.disarm(timer);
        }
    }

    /// When `timer` fires, if it is armed.
    pub fn armed_at(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer as usize].as_ref().map(|armed| armed.at)
    }

    /// Arms `timer` to post `message()` at `at`, aborting the one it replaces.
    fn arm(&mut self, timer: Timer, at: Instant, message: impl FnOnce() -> SessionMsg + Send + 'static) {
        let post = self.post.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            post(message());
        })
        .abort_handle();
        if let Some(old) = self.slots[timer as usize].replace(Armed { task, at }) {
            old.task.abort();
        }
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        self.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// Timers posting into a channel the test reads, with the channel.
    fn timers() -> (Timers, mpsc::UnboundedReceiver<SessionMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let post: Post = Arc::new(move |msg| {
            let _ = tx.send(msg);
        });
        (Timers::new(post), rx)
    }

    /// Names what a fired message is, for assertions.
    fn name(msg: &SessionMsg) -> String {
        match msg {
            SessionMsg::QrExpired { generation, index } => format!("qr-expired {generation}/{index}"),
            SessionMsg::FirstQrDue(conn) => format!("first-qr-due {conn}"),
            SessionMsg::Reconnect => "reconnect".into(),
            SessionMsg::Stable(conn) => format!("stable {conn}"),
            SessionMsg::WaitersDue => "waiters-due".into(),
            _ => "other".into(),
        }
    }

    /// Moves virtual time by `by` and returns what fired meanwhile, in order.
    async fn fired_within(rx: &mut mpsc::UnboundedReceiver<SessionMsg>, by: Duration) -> Vec<String> {
        tokio::time::advance(by).await;
        // Let the woken timer tasks run and post.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let mut fired = Vec::new();
        while let Ok(msg) = rx.try_recv() {
            fired.push(name(&msg));
        }
        fired
    }

    /// Arms one of each timer, all due within 5 s.
    fn arm_each(timers: &mut Timers) {
        timers.qr_expiry(Duration::from_secs(1), 3, 2);
        timers.first_qr(Duration::from_secs(2), 7);
        timers.reconnect(Duration::from_secs(3));
        timers.stable(Duration::from_secs(4), 7);
        timers.waiters(Some(Instant::now() + Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn each_timer_posts_its_message_when_due_and_not_before() {
        let (mut timers, mut rx) = timers();
        arm_each(&mut timers);
        assert!(fired_within(&mut rx, Duration::from_millis(999)).await.is_empty());
        let fired = fired_within(&mut rx, Duration::from_secs(5)).await;
        assert_eq!(
            fired,
            [
                "qr-expired 3/2",
                "first-qr-due 7",
                "reconnect",
                "stable 7",
                "waiters-due"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abort_all_stops_every_armed_timer() {
        let (mut timers, mut rx) = timers();
        arm_each(&mut timers);
        timers.abort_all();
        assert!(ALL.iter().all(|t| timers.armed_at(*t).is_none()));
        assert_eq!(
            fired_within(&mut rx, Duration::from_secs(60)).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_timers_stops_them_as_an_incarnation_ends() {
        let (mut timers, mut rx) = timers();
        arm_each(&mut timers);
        drop(timers);
        assert_eq!(
            fired_within(&mut rx, Duration::from_secs(60)).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn re_arming_aborts_the_timer_it_replaces() {
        let (mut timers, mut rx) = timers();
        timers.qr_expiry(Duration::from_secs(1), 1, 1);
        timers.qr_expiry(Duration::from_secs(2), 1, 2);
        timers.reconnect(Duration::from_secs(1));
        timers.reconnect(Duration::from_secs(3));
        assert_eq!(
            fired_within(&mut rx, Duration::from_millis(1500)).await,
            Vec::<String>::new()
        );
        assert_eq!(
            fired_within(&mut rx, Duration::from_secs(2)).await,
            ["qr-expired 1/2", "reconnect"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn disarm_stops_one_timer_and_leaves_the_others() {
        let (mut timers, mut rx) = timers();
        arm_each(&mut timers);
        timers.disarm(Timer::Reconnect);
        timers.waiters(None);
        let fired = fired_within(&mut rx, Duration::from_secs(6)).await;
        assert_eq!(fired, ["qr-expired 3/2", "first-qr-due 7", "stable 7"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_waiters_timer_follows_the_earliest_deadline_and_keeps_one_already_set() {
        let (mut timers, mut rx) = timers();
        let start = Instant::now();
        timers.waiters(Some(start + Duration::from_secs(5)));
        timers.waiters(Some(start + Duration::from_secs(2)));
        assert_eq!(timers.armed_at(Timer::Waiters), Some(start + Duration::from_secs(2)));
        timers.waiters(Some(start + Duration::from_secs(2)));
        assert_eq!(fired_within(&mut rx, Duration::from_secs(2)).await, ["waiters-due"]);
        assert_eq!(
            fired_within(&mut rx, Duration::from_secs(10)).await,
            Vec::<String>::new()
        );
    }
}
