//! The protocol-level fake WhatsApp as a `Phone`: steered through its own control
//! API, in this process, its data dir kept across daemon restarts.

use std::{path::PathBuf, time::Duration};

use fake_whatsapp::proto::{
    self as fake, DropConnectionsRequest, HoldServerAcksRequest, ListReceivedMessagesRequest, LogoutDeviceRequest,
    RejectSendsRequest, ReplaceStreamRequest, ScanQrRequest, SetAccountHealthRequest, SetRegisteredRequest,
};
use tempfile::TempDir;
use wa_sessiond::proto::{self as api};

use super::{
    super::{common::*, received::Received, Fake, PUSH_NAME},
    proto_duration, Linked, Phone,
};

/// The protocol-level fake WhatsApp server, in this process.
pub struct FakePhone {
    /// The data dir.
    dir: TempDir,
    /// The server and its controls.
    pub fake: Fake,
    /// Refs per pairing connection.
    refs: u32,
}

/// The first code's and each later code's validity: whatsapp-rust's own timers
/// (`pair.rs`), which the server cannot change.
const CLIENT_FIRST_TTL: Duration = Duration::from_secs(60);
const CLIENT_NEXT_TTL: Duration = Duration::from_secs(20);

impl FakePhone {
    /// A fake offering `refs` refs per pairing connection (`None`: WhatsApp's 6).
    pub async fn start(refs: Option<u32>) -> Self {
        let refs = refs.unwrap_or(fake_whatsapp::DEFAULT_REFS);
        let fake = Fake::start_with(fake_whatsapp::Options {
            refs,
            ..Default::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        Self { dir, fake, refs }
    }
}

impl Phone for FakePhone {
    async fn daemon(&self) -> Daemon {
        Daemon::start(self.dir.path(), self.fake.wire()).await
    }

    async fn scan(&self, _daemon: &Daemon, _id: &str, code: &str, phone: &str) -> Linked {
        let scan = ScanQrRequest {
            code: code.into(),
            phone_number: phone.into(),
        };
        let linked = self.fake.control.clone().scan_qr(scan).await.unwrap().into_inner();
        Linked {
            phone_number: linked.phone_number,
            jid: linked.jid,
        }
    }

    async fn log_out(&self, _daemon: &Daemon, _id: &str, phone: &str) -> u32 {
        let request = LogoutDeviceRequest {
            phone_number: phone.into(),
        };
        let removed = self.fake.control.clone().logout_device(request).await.unwrap();
        removed.into_inner().removed
    }

    async fn replace(&self, _daemon: &Daemon, _id: &str, phone: &str) -> u32 {
        let request = ReplaceStreamRequest {
            phone_number: phone.into(),
        };
        let replaced = self.fake.control.clone().replace_stream(request).await.unwrap();
        replaced.into_inner().replaced
    }

    async fn drop_socket(&self, _daemon: &Daemon, _id: &str, phone: &str) -> u32 {
        let request = DropConnectionsRequest {
            phone_number: phone.into(),
        };
        let dropped = self.fake.control.clone().drop_connections(request).await.unwrap();
        dropped.into_inner().dropped
    }

    async fn reject_sends(&self, _daemon: &Daemon, _id: &str, phone: &str, code: u32, count: u32) {
        let request = RejectSendsRequest {
            phone_number: phone.into(),
            code,
            count,
        };
        self.fake.control.clone().reject_sends(request).await.unwrap();
    }

    async fn hold_acks(&self, _daemon: &Daemon, _id: &str, phone: &str, hold: bool) {
        let request = HoldServerAcksRequest {
            phone_number: phone.into(),
            hold,
        };
        self.fake.control.clone().hold_server_acks(request).await.unwrap();
    }

    async fn set_account_health(
        &self,
        _daemon: &Daemon,
        _id: &str,
        phone: &str,
        restricted_for: Duration,
        ban_reason: u32,
        ban_for: Duration,
    ) {
        let request = SetAccountHealthRequest {
            phone_number: phone.into(),
            reachout_restricted_for: Some(proto_duration(restricted_for)),
            temp_ban_reason: ban_reason,
            temp_ban_for: Some(proto_duration(ban_for)),
        };
        self.fake.control.clone().set_account_health(request).await.unwrap();
    }

    async fn set_registered(&self, _daemon: &Daemon, numbers: &[String], registered: bool) -> (u64, u64) {
        let request = SetRegisteredRequest {
            phone_numbers: numbers.to_vec(),
            registered,
            ..Default::default()
        };
        let answer = self
            .fake
            .control
            .clone()
            .set_registered(request)
            .await
            .unwrap()
            .into_inner();
        (answer.contact_queries, answer.numbers_checked)
    }

    async fn rate_limit_checks(&self, _daemon: &Daemon, count: u32, backoff: Duration) {
        let request = SetRegisteredRequest {
            rate_limit_next_checks: count,
            rate_limit_backoff_seconds: backoff.as_secs() as u32,
            ..Default::default()
        };
        self.fake.control.clone().set_registered(request).await.unwrap();
    }

    async fn rate_limit(&self, _daemon: &Daemon, _id: &str, phone: &str) {
        let request = fake::RateLimitRequest {
            phone_number: phone.into(),
        };
        let limited = self.fake.control.clone().rate_limit(request).await.unwrap();
        assert_eq!(limited.into_inner().devices, 1, "the device's one open stream");
    }

    async fn received(&self, _daemon: &Daemon, _id: &str, phone: &str) -> Vec<Received> {
        let mut control = self.fake.control.clone();
        let listed = control.list_received_messages(ListReceivedMessagesRequest {}).await;
        let messages = listed.unwrap().into_inner().messages.into_iter();
        messages.filter_map(|m| Received::at_fake(m, phone)).collect()
    }

    async fn receipt(
        &self,
        _daemon: &Daemon,
        _id: &str,
        phone: &str,
        from: &str,
        message_id: &str,
        kind: api::ReceiptKind,
    ) {
        let kind = match kind {
            api::ReceiptKind::Delivered => fake::ReceiptKind::Delivered,
            api::ReceiptKind::Read => fake::ReceiptKind::Read,
            api::ReceiptKind::Played => fake::ReceiptKind::Played,
            api::ReceiptKind::Unspecified => fake::ReceiptKind::Unspecified,
        };
        let request = fake::SendReceiptRequest {
            to_phone_number: phone.into(),
            from_phone_number: from.into(),
            message_ids: vec![message_id.into()],
            kind: kind as i32,
        };
        self.fake.control.clone().send_receipt(request).await.unwrap();
    }

    async fn connections(&self) -> (u64, u64) {
        self.fake.connections().await
    }

    fn push_name(&self, _phone: &str) -> String {
        PUSH_NAME.into()
    }

    fn first_ttl(&self) -> Duration {
        CLIENT_FIRST_TTL
    }

    fn refs(&self) -> u32 {
        self.refs
    }

    fn batch_life(&self) -> Duration {
        CLIENT_FIRST_TTL + CLIENT_NEXT_TTL * self.refs.saturating_sub(1)
    }

    fn credentials(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("sessions/{id}/whatsapp.db"))
    }
}
