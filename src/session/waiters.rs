//! Callers waiting on a session for a QR code (or for it to settle), each with its own
//! deadline. The session's one waiters' timer (in `Timers`) follows the earliest.

use ractor::RpcReplyPort;
use tokio::time::Instant;

use crate::{
    domain::{QrRequest, SessionView},
    error::SessionError,
};

/// Where a waiting caller gets its answer.
pub type Reply = RpcReplyPort<Result<SessionView, SessionError>>;

/// One waiting caller.
pub struct Waiter {
    /// What it wants of the QR; re-checked each time the state settles.
    pub request: QrRequest,
    /// Answered once, when satisfied or due; a closed one is dropped unanswered.
    pub reply: Reply,
    /// When it hears DEADLINE_EXCEEDED: the server's bound, or a little before the
    /// caller's own deadline when that comes first.
    pub deadline: Instant,
    /// Whether `deadline` is the caller's own (not the server's bound): the message
    /// then says the session keeps pairing.
    pub callers_deadline: bool,
}

/// The waiting callers of one session.
#[derive(Default)]
pub struct Waiters {
    /// In arrival order until one is taken out.
    list: Vec<Waiter>,
}

impl Waiters {
    /// Adds a waiter.
    pub fn push(&mut self, waiter: Waiter) {
        self.list.push(waiter);
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The earliest deadline of any waiter: when the waiters' timer fires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list.iter().map(|w| w.deadline).min()
    }

    /// Removes the waiters whose deadline is `now` or earlier, in arrival order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Waiter> {
        let (due, kept) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.list = kept;
        due
    }

    /// Removes every waiter.
    pub fn drain(&mut self) -> Vec<Waiter> {
        std::mem::take(&mut self.list)
    }

    /// Answers every waiter for which `answer` says so; keeps the rest. Callers that
    /// went away are dropped.
    pub fn answer_where(&mut self, mut answer: impl FnMut(&QrRequest) -> Option<Result<SessionView, SessionError>>) {
        let mut kept = Vec::with_capacity(self.list.len());
        for waiter in self.list.drain(..) {
            if waiter.reply.is_closed() {
                continue;
            }
            match answer(&waiter.request) {
                Some(result) => waiter.finish(result),
                None => kept.push(waiter),
            }
        }
        self.list = kept;
    }

    /// Whether any waiter wants something `wants` says yes to.
    pub fn any(&self, mut wants: impl FnMut(&QrRequest) -> bool) -> bool {
        self.list.iter().any(|w| !w.reply.is_closed() && wants(&w.request))
    }
}

impl Waiter {
    /// Sends the answer.
    pub fn finish(self, result: Result<SessionView, SessionError>) {
        let _ = self.reply.send(result);
    }
}
