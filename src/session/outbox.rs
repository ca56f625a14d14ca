//! The session's outbox: one worker task that runs the backend calls the actor
//! queued (sends, pairing-code requests), one at a time **in the order accepted**
//! (messages to one chat must leave in order), each answering its caller. The queue
//! is bounded: a full one is refused at once. The actor builds each call's future
//! (the backend's are `'static`) with its own bound, so the worker never touches
//! the session's state. Stopping the outbox (or dropping it) aborts the worker, and
//! every caller it still held, queued or in flight, is answered UNAVAILABLE.

use ractor::RpcReplyPort;
use tokio::{sync::mpsc, task::AbortHandle};

use crate::{backend::BoxFuture, domain::SessionId, error::SessionError};

/// Calls a session may have queued before it refuses more.
pub(crate) const QUEUE_DEPTH: usize = 256;

/// A backend call as the actor built it: bounded, mapped to the caller's answer.
pub(crate) type Work<T> = BoxFuture<'static, Result<T, SessionError>>;

/// What the worker runs: a job of any answer type.
trait Queued: Send {
    /// Runs the call and answers the caller (skipped if the caller went away).
    fn run(self: Box<Self>) -> BoxFuture<'static, ()>;
    /// Answers the caller with `error` without running the call.
    fn refuse(self: Box<Self>, error: SessionError);
}

/// One queued call and the caller it answers. Dropped unanswered (the worker was
/// aborted), it answers UNAVAILABLE: `unstarted` if the call never began, else
/// `stopped`.
pub(crate) struct Job<T: Send + 'static> {
    /// The call; taken when the worker starts it, so its absence means it began.
    work: Option<Work<T>>,
    /// The caller; taken when answered, so a drop afterwards says nothing.
    reply: Option<RpcReplyPort<Result<T, SessionError>>>,
    /// What the caller hears if the session stops mid-call: whether the call may
    /// already have reached WhatsApp is for the actor to say.
    stopped: String,
}

impl<T: Send + 'static> Job<T> {
    /// A call to run for `reply`; `stopped` is the caller's answer if the session
    /// stops while the call runs.
    pub fn new(work: Work<T>, reply: RpcReplyPort<Result<T, SessionError>>, stopped: String) -> Self {
        Self {
            work: Some(work),
            reply: Some(reply),
            stopped,
        }
    }

    fn answer(&mut self, result: Result<T, SessionError>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

impl<T: Send + 'static> Queued for Job<T> {
    fn run(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let caller_gone = self.reply.as_ref().is_none_or(|reply| reply.is_closed());
            let Some(work) = self.work.take().filter(|_| !caller_gone) else {
                // Nobody waits for it (the door gave up): never start it.
                self.reply = None;
                return;
            };
            let result = work.await;
            self.answer(result);
        })
    }

    fn refuse(mut self: Box<Self>, error: SessionError) {
        self.answer(Err(error));
    }
}

impl<T: Send + 'static> Drop for Job<T> {
    fn drop(&mut self) {
        let message = match self.work {
            Some(_) => "the session stopped before this call was made: nothing was sent; retry in a moment".into(),
            None => std::mem::take(&mut self.stopped),
        };
        self.answer(Err(SessionError::Unavailable(message)));
    }
}

/// A call without a caller (a resend after a reconnect): it runs in its turn, and
/// goes unrun if the session stops first (what it sends stays in the outbound log).
pub(crate) struct Background(pub BoxFuture<'static, ()>);

impl Queued for Background {
    fn run(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.0
    }

    fn refuse(self: Box<Self>, _error: SessionError) {}
}

/// The queue and its worker, owned by the session actor.
pub(crate) struct Outbox {
    /// The session, for the refusal message.
    session: SessionId,
    /// Where the actor queues calls; the worker holds the other end.
    queue: mpsc::Sender<Box<dyn Queued>>,
    /// The worker; aborting it drops (and so answers) every job it held.
    worker: AbortHandle,
}

impl Outbox {
    /// Starts the worker of `session`'s outbox.
    pub fn start(session: SessionId) -> Self {
        let (queue, mut jobs) = mpsc::channel::<Box<dyn Queued>>(QUEUE_DEPTH);
        let worker = tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                job.run().await;
            }
        })
        .abort_handle();
        Self { session, queue, worker }
    }

    /// Queues `job` behind the ones accepted before it; a full queue (or a stopped
    /// worker) answers its caller UNAVAILABLE at once.
    pub fn push<T: Send + 'static>(&self, job: Job<T>) {
        self.enqueue(Box::new(job));
    }

    /// Queues a call without a caller; false when the queue is full or stopped.
    pub fn push_background(&self, work: BoxFuture<'static, ()>) -> bool {
        self.queue.try_send(Box::new(Background(work))).is_ok()
    }

    fn enqueue(&self, job: Box<dyn Queued>) {
        let refused = match self.queue.try_send(job) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(job)) => (
                job,
                format!("too many sends queued for session {}: retry", self.session),
            ),
            Err(mpsc::error::TrySendError::Closed(job)) => {
                (job, format!("session {} is stopping: retry in a moment", self.session))
            }
        };
        let (job, message) = refused;
        job.refuse(SessionError::Unavailable(message));
    }

    /// Aborts the worker: every job it held answers its caller UNAVAILABLE.
    pub fn stop(&self) {
        self.worker.abort();
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::sync::{oneshot, Notify};

    use super::*;

    /// What a queued test call answers, as its caller receives it.
    type Answer = oneshot::Receiver<Result<u32, SessionError>>;

    /// The outbox of session `alice`, with a log of the calls it ran, in order.
    struct Fixture {
        outbox: Outbox,
        ran_tx: mpsc::UnboundedSender<u32>,
        ran: mpsc::UnboundedReceiver<u32>,
    }

    impl Fixture {
        fn new() -> Self {
            let (ran_tx, ran) = mpsc::unbounded_channel();
            let outbox = Outbox::start(SessionId::parse("alice").unwrap());
            Self { outbox, ran_tx, ran }
        }

        /// Queues a call answering `n` once `gate` opens (if any).
        fn queue(&self, n: u32, gate: Option<Arc<Notify>>) -> Answer {
            let (tx, rx) = ractor::concurrency::oneshot();
            let ran = self.ran_tx.clone();
            let work: Work<u32> = Box::pin(async move {
                if let Some(gate) = gate {
                    gate.notified().await;
                }
                let _ = ran.send(n);
                Ok(n)
            });
            self.outbox
                .push(Job::new(work, tx.into(), "session alice stopped: retry".into()));
            rx
        }

        /// The calls run so far, in order.
        fn ran(&mut self) -> Vec<u32> {
            std::iter::from_fn(|| self.ran.try_recv().ok()).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_queued_behind_a_slow_one_run_and_answer_in_the_order_accepted() {
        let mut f = Fixture::new();
        let slow = Arc::new(Notify::new());
        let first = f.queue(1, Some(slow.clone()));
        let rest: Vec<_> = (2..=20).map(|n| f.queue(n, None)).collect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(f.ran().is_empty(), "nothing overtakes the slow call");
        slow.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        for (n, answer) in (2..=20).zip(rest) {
            assert_eq!(answer.await.unwrap().unwrap(), n);
        }
        assert_eq!(f.ran(), (1..=20).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_at_once_saying_so() {
        let f = Fixture::new();
        let slow = Arc::new(Notify::new());
        let _running = f.queue(0, Some(slow.clone()));
        tokio::task::yield_now().await; // the worker takes the first one off the queue
        let _queued: Vec<_> = (1..=QUEUE_DEPTH as u32).map(|n| f.queue(n, None)).collect();
        let refused = f.queue(999, None).await.unwrap().unwrap_err();
        assert!(matches!(refused, SessionError::Unavailable(_)), "{refused:?}");
        assert!(
            refused
                .to_string()
                .contains("too many sends queued for session alice: retry"),
            "{refused}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_answers_the_call_in_flight_and_every_queued_caller() {
        let mut f = Fixture::new();
        let never = Arc::new(Notify::new());
        let answers: Vec<_> = (1..=5).map(|n| f.queue(n, Some(never.clone()))).collect();
        tokio::task::yield_now().await;
        f.outbox.stop();
        let mut heard = Vec::new();
        for answer in answers {
            let got = tokio::time::timeout(Duration::from_secs(1), answer).await;
            match got.expect("answered, never a hang").unwrap() {
                Err(SessionError::Unavailable(message)) => heard.push(message),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(heard[0], "session alice stopped: retry", "the call in flight");
        for queued in &heard[1..] {
            assert!(
                queued.contains("before this call was made: nothing was sent"),
                "{queued}"
            );
        }
        assert!(f.ran().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_caller_went_away_is_never_started() {
        let mut f = Fixture::new();
        let slow = Arc::new(Notify::new());
        let first = f.queue(1, Some(slow.clone()));
        drop(f.queue(2, None));
        let third = f.queue(3, None);
        slow.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(third.await.unwrap().unwrap(), 3);
        assert_eq!(f.ran(), [1, 3]);
    }
}
