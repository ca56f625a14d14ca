//! Callers waiting on a session for a QR code (or for it to settle), each with its own
//! bound.

use ractor::RpcReplyPort;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::{
    domain::{QrRequest, SessionView},
    error::SessionError,
};

/// Where a waiting caller gets its answer.
pub type Reply = RpcReplyPort<Result<SessionView, SessionError>>;

/// One waiting caller.
pub struct Waiter {
    /// Its number, for its timer.
    pub id: u64,
    /// What it asked.
    pub request: QrRequest,
    /// Where its answer goes.
    pub reply: Reply,
    /// When it gives up.
    pub deadline: Instant,
    /// Whether `deadline` is the caller's own (not the server's bound).
    pub callers_deadline: bool,
    /// Fires at `deadline`.
    pub timer: AbortHandle,
}

/// The waiting callers of one session.
#[derive(Default)]
pub struct Waiters {
    list: Vec<Waiter>,
    next_id: u64,
}

impl Waiters {
    /// The id the next waiter gets.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

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

    /// Removes one waiter (its timer fired).
    pub fn take(&mut self, id: u64) -> Option<Waiter> {
        let at = self.list.iter().position(|w| w.id == id)?;
        Some(self.list.swap_remove(at))
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
                waiter.timer.abort();
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
    /// Sends the answer and stops the timer.
    pub fn finish(self, result: Result<SessionView, SessionError>) {
        self.timer.abort();
        let _ = self.reply.send(result);
    }
}
