//! How a session follows its backend connection and its timers: QR codes and their
//! expiry, pairing, connecting, and carrying out what the reconnect policy decides
//! when a connection ends.

use std::time::{Duration, SystemTime};

use ractor::ActorProcessingErr;
use tracing::{info, warn};

use super::SessionRun;
use crate::{
    backend::{BackendEvent, Disconnect},
    domain::{DisconnectReason, Status},
    error::SessionError,
    events::outbound::HealthSignal,
    metrics::Logout,
    session::{
        policy::{backoff_delay, Recovery},
        state::{ConnId, Purpose},
        timers::Timer,
    },
    store::unix_ms,
};

impl SessionRun {
    /// Something happened on connection `conn` (ignored by the state when stale).
    pub(super) async fn on_backend(&mut self, conn: ConnId, event: BackendEvent) -> Result<(), ActorProcessingErr> {
        let (now, sys) = Self::now();
        match event {
            BackendEvent::Qr(code) => {
                let ttl = code.ttl;
                if self.state.on_qr(conn, code, now, sys) {
                    // The first code came: its deadline no longer matters.
                    self.timers.disarm(Timer::FirstQr);
                    self.arm_qr_expiry(ttl);
                }
            }
            BackendEvent::QrExhausted => {
                if self.state.on_qr_exhausted(conn, now, sys) {
                    self.close_conn().await;
                }
            }
            BackendEvent::PairSuccess { phone_number, jid } => {
                if self.state.on_pair_success(conn, phone_number, jid, sys) {
                    self.ctx.metrics.pairing_completed();
                }
            }
            BackendEvent::Connected(identity) => {
                if self.state.on_connected(conn, identity, sys) {
                    self.after_connected(conn).await?;
                }
            }
            BackendEvent::Disconnected(why) => {
                let recovery = self.state.on_disconnected(conn, &why, sys);
                if let (
                    Some(_),
                    Disconnect::TemporaryBan {
                        ends_at: Some(until),
                        code,
                    },
                ) = (recovery, &why)
                {
                    let ban = HealthSignal::TempBan {
                        code: *code,
                        until: *until,
                    };
                    // On disk before anyone sees the session banned: GetAccountHealth
                    // shows the ban as soon as the status says TEMPORARY_BAN.
                    if let Err(error) = self.ctx.log.health_signal(self.state.view().id.as_str(), ban).await {
                        warn!(session_id = %self.state.view().id, %error, "the ban could not be logged");
                    }
                }
                self.recover(recovery).await?;
            }
            BackendEvent::ConnectFailed(cause) => {
                let pairing = self
                    .state
                    .conn()
                    .is_some_and(|c| c.id == conn && c.purpose == Purpose::Pair);
                let recovery = self.state.on_connect_failed(conn, &cause, sys);
                if pairing && recovery.is_some() {
                    let message = format!(
                        "could not reach whatsapp for session {}: {cause}; retry with RefreshQr",
                        self.state.view().id
                    );
                    self.fail_waiters(SessionError::Unavailable(message));
                }
                self.recover(recovery).await?;
            }
        }
        Ok(())
    }

    async fn after_connected(&mut self, conn: ConnId) -> Result<(), ActorProcessingErr> {
        let view = self.state.view();
        self.record.phone_number = view.phone_number.clone();
        self.record.jid = view.jid.clone();
        self.record.push_name = view.push_name.clone();
        self.record.connected_at_ms = view.connected_at.map(unix_ms);
        self.record.logged_out = false;
        self.record.stopped = false;
        self.save_or_note().await;
        // Online again: whatever ban there was is over.
        self.ctx
            .log
            .health_detached(self.state.view().id.as_str(), HealthSignal::BanLifted);
        self.timers.stable(self.ctx.timeouts.stable_after, conn);
        Ok(())
    }

    /// Carries out the reconnect policy's decision.
    async fn recover(&mut self, recovery: Option<Recovery>) -> Result<(), ActorProcessingErr> {
        let Some(recovery) = recovery else {
            return Ok(());
        };
        self.close_conn().await;
        // The connection ended before it counted as stable.
        self.timers.disarm(Timer::Stable);
        match recovery {
            Recovery::RestartNow => {
                self.ctx.metrics.restart_required();
                self.open_resume(Status::Restarting);
            }
            Recovery::Backoff => {
                self.ctx
                    .metrics
                    .reconnect_scheduled(self.state.view().disconnect_reason);
                let attempt = self.state.reconnect_attempt().saturating_sub(1);
                let delay = backoff_delay(attempt, self.ctx.timeouts.reconnect_max, rand::random());
                info!(session_id = %self.state.view().id, attempt, delay_ms = delay.as_millis() as u64, "reconnect scheduled");
                self.timers.reconnect(delay);
            }
            Recovery::StopAndWipe => {
                self.ctx.metrics.logged_out(Logout::PHONE);
                self.ctx.backend.wipe(&self.state.view().id).await?;
                self.record.logged_out = true;
                self.record.jid.clear();
                self.save_or_note().await;
            }
            Recovery::Stop | Recovery::AfterBan(None) => {}
            Recovery::AfterBan(Some(ends_at)) => {
                let delay = ends_at.duration_since(SystemTime::now()).unwrap_or_default();
                info!(session_id = %self.state.view().id, delay_ms = delay.as_millis() as u64, "temporarily banned: reconnecting once the ban ends");
                self.timers.reconnect(delay);
            }
        }
        Ok(())
    }

    /// The backoff passed: reconnect, unless something else moved the session on.
    pub(super) fn reconnect(&mut self) {
        self.timers.disarm(Timer::Reconnect);
        let view = self.state.view();
        let ban_over = view.status == Status::Disconnected && view.disconnect_reason == DisconnectReason::TemporaryBan;
        if (view.status != Status::Reconnecting && !ban_over) || self.state.conn().is_some() {
            return;
        }
        self.state.count_reconnect();
        self.open_resume(Status::Reconnecting);
    }

    /// Connection `conn` stayed up long enough: the backoff starts over.
    pub(super) fn stable(&mut self, conn: ConnId) {
        let still_up = self.state.conn().is_some_and(|c| c.id == conn) && self.state.view().status == Status::Connected;
        if still_up {
            self.state.reset_backoff();
            // Still up, so the slot holds the timer that fired: let its task go.
            self.timers.disarm(Timer::Stable);
        }
    }

    /// Connection `conn`'s first code is due: without one, it is closed and the
    /// session FAILED (QR_TIMEOUT); its waiters hear why.
    pub(super) async fn first_qr_due(&mut self, conn: ConnId) {
        self.timers.disarm(Timer::FirstQr);
        let Some(closed) = self.state.on_first_qr_timeout(conn, SystemTime::now()) else {
            return;
        };
        debug_assert_eq!(closed, conn);
        warn!(session_id = %self.state.view().id, conn, "no qr code in time; connection closed");
        if let Some(handle) = self.conn.take() {
            handle.close().await;
        }
        let message = format!(
            "no qr code came for session {} in time: the connection was closed and the session is FAILED; call RefreshQr to try again",
            self.state.view().id
        );
        self.fail_waiters(SessionError::DeadlineExceeded(message));
    }

    /// Code `index` of `generation` expired: the batch's last one ends its
    /// connection (lazy regeneration); a stale expiry changes nothing.
    pub(super) async fn qr_expired(&mut self, generation: u64, index: u32) {
        let (now, sys) = Self::now();
        let current = self
            .state
            .view()
            .qr
            .as_ref()
            .is_some_and(|qr| qr.generation == generation && qr.index == index);
        if current {
            // The timer in the slot is the one that fired: let its task go.
            self.timers.disarm(Timer::QrExpiry);
        }
        if self.state.on_last_qr_expired(generation, index, now, sys).is_some() {
            if let Some(handle) = self.conn.take() {
                handle.close().await;
            }
        }
    }

    fn arm_qr_expiry(&mut self, ttl: Duration) {
        let Some(qr) = self.state.view().qr.as_ref() else {
            return;
        };
        let (generation, index) = (qr.generation, qr.index);
        self.timers.qr_expiry(ttl, generation, index);
        self.ctx.metrics.qr_issued();
        info!(session_id = %self.state.view().id, generation, index, ttl_ms = ttl.as_millis() as u64, "qr issued");
    }
}
