//! `Phone`: a WhatsApp with a phone on the other side, as the shared test bodies
//! see it, whichever backend the daemon runs. Two of them: the in-process emulator
//! (steered through the daemon's `EmulatorService`) and the protocol-level fake
//! (steered through its own control API), each with a data dir of its own that
//! outlives daemon restarts, as the real WhatsApp outlives the daemon. What the
//! server took from a device reads the same from both (`received`); what WhatsApp
//! holds against an account (a timelock, a ban, a rate limit) is set the same on
//! both.

use std::{path::PathBuf, time::Duration};

use fake_whatsapp::proto::{
    self as fake, DropConnectionsRequest, HoldServerAcksRequest, ListReceivedMessagesRequest, LogoutDeviceRequest,
    RejectSendsRequest, ReplaceStreamRequest, ScanQrRequest, SetAccountHealthRequest, SetRegisteredRequest,
};
use tempfile::TempDir;
use wa_sessiond::{
    app,
    backend::emulator::Emulator,
    proto::{self as api},
};

use super::{common::*, received::Received, Fake, PUSH_NAME};

/// The device a phone linked: its phone number and JID.
pub struct Linked {
    /// Digits.
    pub phone_number: String,
    /// `PHONE:DEVICE@s.whatsapp.net`.
    pub jid: String,
}

/// A WhatsApp the daemon talks to, and the phone that links devices to it.
pub trait Phone {
    /// Starts a daemon on this phone's data dir, talking to this WhatsApp.
    async fn daemon(&self) -> Daemon;
    /// The phone numbered `phone` scans `code`, shown by session `id`.
    async fn scan(&self, daemon: &Daemon, id: &str, code: &str, phone: &str) -> Linked;
    /// The phone unlinks session `id`'s device: how many devices it unlinked.
    async fn log_out(&self, daemon: &Daemon, id: &str, phone: &str) -> u32;
    /// Another client takes over the device's stream: how many were replaced.
    async fn replace(&self, daemon: &Daemon, id: &str, phone: &str) -> u32;
    /// The device's socket is lost: how many were dropped.
    async fn drop_socket(&self, daemon: &Daemon, id: &str, phone: &str) -> u32;
    /// The server nacks the next `count` messages session `id`'s device (account
    /// `phone`) sends with `code` (e.g. 463), and keeps none of them.
    async fn reject_sends(&self, daemon: &Daemon, id: &str, phone: &str, code: u32, count: u32);
    /// The server takes the device's messages but holds their acks (`hold`), or
    /// acks every held one (`!hold`) now or when the device next connects.
    async fn hold_acks(&self, daemon: &Daemon, id: &str, phone: &str, hold: bool);
    /// What WhatsApp holds against session `id`'s account (`phone`) from now:
    /// new chats barred for `restricted_for`, banned with `ban_reason` for
    /// `ban_for` (zero lifts either), the online device told at once.
    async fn set_account_health(
        &self,
        daemon: &Daemon,
        id: &str,
        phone: &str,
        restricted_for: Duration,
        ban_reason: u32,
        ban_for: Duration,
    );
    /// Marks `numbers` (digits) on WhatsApp or not (every number is, unless
    /// marked); answers the usync contact queries the server answered so far and
    /// the numbers asked about in them (an empty list only reads them).
    async fn set_registered(&self, daemon: &Daemon, numbers: &[String], registered: bool) -> (u64, u64);
    /// WhatsApp rate-limits session `id`'s device (account `phone`): its stream
    /// ends with a 429 and it reconnects as usual.
    async fn rate_limit(&self, daemon: &Daemon, id: &str, phone: &str);
    /// What the server took from session `id`'s device (account `phone`), oldest
    /// first.
    async fn received(&self, daemon: &Daemon, id: &str, phone: &str) -> Vec<Received>;
    /// The phone `from` (digits), the chat message `message_id` went to, sends
    /// its receipt of `kind` to session `id`'s device (account `phone`).
    async fn receipt(
        &self,
        daemon: &Daemon,
        id: &str,
        phone: &str,
        from: &str,
        message_id: &str,
        kind: api::ReceiptKind,
    );
    /// Connections WhatsApp saw, over all sessions and daemons: started ever,
    /// open now.
    async fn connections(&self) -> (u64, u64);
    /// The name the account of `phone` shows once linked.
    fn push_name(&self, phone: &str) -> String;
    /// How long the first code of a batch is valid.
    fn first_ttl(&self) -> Duration;
    /// Codes per batch (one per ref).
    fn refs(&self) -> u32;
    /// How long a whole batch lasts, first code to exhaustion.
    fn batch_life(&self) -> Duration;
    /// The file holding session `id`'s credentials.
    fn credentials(&self, id: &str) -> PathBuf;
}

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
            fail_next_checks: 0,
        };
        let answer = daemon.phone().await.set_registered(request).await.unwrap().into_inner();
        (answer.contact_queries, answer.numbers_checked)
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

/// A duration as the control APIs take it.
fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).expect("a duration that fits")
}
