//! QR reads and the callers waiting for a code: answer now, wait (bounded by the
//! server's bound and the caller's deadline), or start one regeneration that every
//! waiting caller shares; and answer the waiters once the state settles or their
//! deadline passes.

use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::SessionRun;
use crate::{
    domain::QrRequest,
    error::SessionError,
    session::{
        state::QrNeed,
        waiters::{Reply, Waiter},
    },
};

/// Answers a little before the caller's deadline, so it gets our message rather than
/// its own timeout.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

impl SessionRun {
    /// Answers now, or registers a waiter for at most `bound` (starting a new
    /// generation if needed).
    pub(super) async fn get(&mut self, request: QrRequest, reply: Reply, bound: Duration) {
        let (now, _) = Self::now();
        match self.state.qr_need(now, request.min_validity, request.may_refresh) {
            QrNeed::Ready => {
                let view = self.state.view().clone();
                self.answer(reply, Ok(view));
            }
            QrNeed::Wait => self.wait(request, reply, bound),
            QrNeed::Regenerate => {
                self.open_pairing(self.ctx.timeouts.refresh).await;
                self.wait(request, reply, self.ctx.timeouts.refresh);
            }
            QrNeed::OutOfRange { longest } => {
                self.answer(reply, Err(out_of_range(request.min_validity, longest)));
            }
        }
    }

    /// RefreshQr: a new pairing connection now, answered with its first code.
    pub(super) async fn refresh(&mut self, request: QrRequest, reply: Reply) {
        if let Err(linked) = self.state.refuse_if_linked("a qr code") {
            self.answer(reply, Err(linked));
            return;
        }
        self.open_pairing(self.ctx.timeouts.qr).await;
        self.wait(request, reply, self.ctx.timeouts.qr);
    }

    /// Parks a caller until the state settles, bounded by `bound` and its deadline.
    pub(super) fn wait(&mut self, request: QrRequest, reply: Reply, bound: Duration) {
        let now = Instant::now();
        let server_deadline = now + bound;
        let callers = request.deadline.map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
        let (deadline, callers_deadline) = match callers {
            Some(d) if d < server_deadline => (d, true),
            _ => (server_deadline, false),
        };
        self.waiters.push(Waiter {
            request,
            reply,
            deadline,
            callers_deadline,
        });
        self.timers.waiters(self.waiters.next_deadline());
    }

    /// Answers the waiters the state now satisfies (after publishing it); starts one
    /// regeneration if some need it.
    pub(super) async fn settle(&mut self) {
        if self.state.watchers_need_fresh_qr(self.watchers.want_fresh_qr()) {
            info!(session_id = %self.state.view().id, "a watcher keeps the qr fresh: regenerating");
            self.open_pairing(self.ctx.timeouts.refresh).await;
        }
        if self.waiters.is_empty() {
            return;
        }
        let now = Instant::now();
        let state = &self.state;
        let regenerate = self
            .waiters
            .any(|r| state.qr_need(now, r.min_validity, r.may_refresh) == QrNeed::Regenerate);
        if regenerate {
            self.open_pairing(self.ctx.timeouts.refresh).await;
        }
        self.publish();
        let state = &self.state;
        self.waiters
            .answer_where(|r| match state.qr_need(now, r.min_validity, r.may_refresh) {
                QrNeed::Ready => Some(Ok(state.view().clone())),
                QrNeed::OutOfRange { longest } => Some(Err(out_of_range(r.min_validity, longest))),
                QrNeed::Wait | QrNeed::Regenerate => None,
            });
        self.timers.waiters(self.waiters.next_deadline());
    }

    /// The earliest waiter's deadline passed: a first code due by then fails its
    /// connection first, then every waiter past its deadline hears why.
    pub(super) async fn waiters_due(&mut self) {
        let now = Instant::now();
        let conn_due = self
            .state
            .conn()
            .and_then(|c| c.first_qr_deadline.map(|d| (c.id, d)))
            .filter(|(_, d)| *d <= now);
        if let Some((conn, _)) = conn_due {
            self.first_qr_due(conn).await;
        }
        let due = self.waiters.take_due(now);
        if !due.is_empty() {
            self.publish();
        }
        let session = &self.state.view().id;
        for waiter in due {
            let message = if waiter.callers_deadline {
                format!(
                    "the call's deadline passed before session {session} had a qr code; it keeps pairing: call GetSession again"
                )
            } else {
                format!("session {session} had no qr code in time: call GetSession or RefreshQr again")
            };
            waiter.finish(Err(SessionError::DeadlineExceeded(message)));
        }
        self.timers.waiters(self.waiters.next_deadline());
    }
}

/// OUT_OF_RANGE: no code lives `wanted`; the longest issued lives `longest`.
fn out_of_range(wanted: Duration, longest: Duration) -> SessionError {
    SessionError::OutOfRange(format!(
        "min_qr_validity {} is longer than any qr code lives: the longest whatsapp issues is valid {}; ask for at most that",
        humantime::format_duration(wanted),
        humantime::format_duration(longest)
    ))
}
