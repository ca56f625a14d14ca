//! The in-process emulator as a `Phone`: steered through the daemon's
//! `EmulatorService`, its data dir kept across daemon restarts.

use std::{path::PathBuf, time::Duration};

use tempfile::TempDir;
use wa_sessiond::{
    app,
    backend::emulator::Emulator,
    proto::{self as api},
};

use super::{
    super::{common::*, received::Received},
    proto_duration, Linked, Phone,
};

/// The emulator's timings in the shared bodies (WhatsApp's, shortened).
const EMULATOR_FIRST_TTL: Duration = Duration::from_secs(3);

/// The in-process emulator, kept across daemon restarts.
pub struct EmulatorPhone {
    /// The data dir.
    dir: TempDir,
    /// The emulated WhatsApp.
    emulator: Emulator,
    /// Codes per batch.
    refs: u32,
}

impl EmulatorPhone {
    /// An emulator offering `refs` codes per batch (`None`: the tests' usual).
    pub async fn start(refs: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        let refs = refs.unwrap_or(QR_COUNT);
        (config.emulator_first_qr_ttl, config.emulator_qr_count) = (EMULATOR_FIRST_TTL, refs);
        let emulator = app::emulator_for(&config, app::open_data_dir(&config).unwrap());
        Self { dir, emulator, refs }
    }

    fn tweak(&self) -> impl FnOnce(&mut wa_sessiond::config::Config) {
        let refs = self.refs;
        move |config| (config.emulator_first_qr_ttl, config.emulator_qr_count) = (EMULATOR_FIRST_TTL, refs)
    }
}

impl Phone for EmulatorPhone {
    async fn daemon(&self) -> Daemon {
        let wiring = app::Wiring {
            emulator: Some(self.emulator.clone()),
            ..Default::default()
        };
        Daemon::start_wired(self.dir.path(), self.tweak(), wiring).await
    }

    async fn scan(&self, daemon: &Daemon, id: &str, code: &str, phone: &str) -> Linked {
        let scan = api::ScanQrRequest {
            session_id: id.into(),
            code: code.into(),
            phone_number: phone.into(),
        };
        let linked = daemon.phone().await.scan_qr(scan).await.unwrap().into_inner();
        Linked {
            phone_number: linked.phone_number,
            jid: linked.jid,
        }
    }

    async fn log_out(&self, daemon: &Daemon, id: &str, _phone: &str) -> u32 {
        let request = api::LogoutFromPhoneRequest { session_id: id.into() };
        daemon.phone().await.logout_from_phone(request).await.unwrap();
        1
    }

    async fn replace(&self, daemon: &Daemon, id: &str, _phone: &str) -> u32 {
        let request = api::ReplaceStreamRequest { session_id: id.into() };
        daemon.phone().await.replace_stream(request).await.unwrap();
        1
    }

    async fn drop_socket(&self, daemon: &Daemon, id: &str, _phone: &str) -> u32 {
        let request = api::DropConnectionRequest { session_id: id.into() };
        daemon.phone().await.drop_connection(request).await.unwrap();
        1
    }

    async fn reject_sends(&self, daemon: &Daemon, id: &str, _phone: &str, code: u32, count: u32) {
        let request = api::RejectSendsRequest {
            session_id: id.into(),
            code,
            count,
        };
        daemon.phone().await.reject_sends(request).await.unwrap();
    }

    async fn hold_acks(&self, daemon: &Daemon, id: &str, _phone: &str, hold: bool) {
        let request = api::HoldServerAcksRequest {
            session_id: id.into(),
            hold,
        };
        daemon.phone().await.hold_server_acks(request).await.unwrap();
    }

    async fn set_account_health(
        &self,
        daemon: &Daemon,
        id: &str,
        _phone: &str,
        restricted_for: Duration,
        ban_reason: u32,
        ban_for: Duration,
    ) {
        let request = api::SetAccountHealthRequest {
            session_id: id.into(),
            reachout_restricted_for: Some(proto_duration(restricted_for)),
            temp_ban_reason: ban_reason,
            temp_ban_for: Some(proto_duration(ban_for)),
        };
        daemon.phone().await.set_account_health(request).await.unwrap();
    }

    async fn set_registered(&self, daemon: &Daemon, numbers: &[String], registered: bool) -> (u64, u64) {
        let request = api::SetRegisteredRequest {
            phone_numbers: numbers.to_vec(),
            registered,
            ..Default::default()
        };
        let answer = daemon.phone().await.set_registered(request).await.unwrap().into_inner();
        (answer.contact_queries, answer.numbers_checked)
    }

    async fn rate_limit_checks(&self, daemon: &Daemon, count: u32, backoff: Duration) {
        let request = api::SetRegisteredRequest {
            rate_limit_next_checks: count,
            rate_limit_backoff: Some(proto_duration(backoff)),
            ..Default::default()
        };
        daemon.phone().await.set_registered(request).await.unwrap();
    }

    async fn rate_limit(&self, daemon: &Daemon, id: &str, _phone: &str) {
        let request = api::RateLimitRequest { session_id: id.into() };
        daemon.phone().await.rate_limit(request).await.unwrap();
    }

    async fn received(&self, daemon: &Daemon, id: &str, _phone: &str) -> Vec<Received> {
        let request = api::ListSentMessagesRequest { session_id: id.into() };
        let listed = daemon.phone().await.list_sent_messages(request).await.unwrap();
        listed
            .into_inner()
            .messages
            .into_iter()
            .map(Received::emulated)
            .collect()
    }

    async fn receipt(
        &self,
        daemon: &Daemon,
        id: &str,
        _phone: &str,
        _from: &str,
        message_id: &str,
        kind: api::ReceiptKind,
    ) {
        let request = api::SendReceiptRequest {
            session_id: id.into(),
            message_id: message_id.into(),
            kind: kind as i32,
        };
        daemon.phone().await.send_receipt(request).await.unwrap();
    }

    async fn connections(&self) -> (u64, u64) {
        let counted = self.emulator.count_connections(None).await;
        (counted.started, counted.open)
    }

    fn push_name(&self, phone: &str) -> String {
        format!("Emulated {}", &phone[phone.len() - 4..])
    }

    fn first_ttl(&self) -> Duration {
        EMULATOR_FIRST_TTL
    }

    fn refs(&self) -> u32 {
        self.refs
    }

    fn batch_life(&self) -> Duration {
        EMULATOR_FIRST_TTL + NEXT_TTL * self.refs.saturating_sub(1)
    }

    fn credentials(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("sessions/{id}/emulator-device.json"))
    }
}
