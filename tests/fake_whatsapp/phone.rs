//! `Phone`: a WhatsApp with a phone on the other side, as the shared test bodies
//! see it, whichever backend the daemon runs. Two of them, each in a file of its own: the in-process emulator
//! (steered through the daemon's `EmulatorService`) and the protocol-level fake
//! (steered through its own control API), each with a data dir of its own that
//! outlives daemon restarts, as the real WhatsApp outlives the daemon. What the
//! server took from a device reads the same from both (`received`); what WhatsApp
//! holds against an account (a timelock, a ban, a rate limit) is set the same on
//! both.

use std::{path::PathBuf, time::Duration};

use wa_sessiond::proto::{self as api};

use super::{common::*, received::Received};

mod emulator;
mod fake;

pub use emulator::EmulatorPhone;
pub use fake::FakePhone;

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
    /// WhatsApp refuses the next `count` usync contact queries for their rate
    /// (429 on the contact protocol), naming `backoff`.
    async fn rate_limit_checks(&self, daemon: &Daemon, count: u32, backoff: Duration);
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

/// A duration as the control APIs take it.
fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(duration).expect("a duration that fits")
}
