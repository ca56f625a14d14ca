//! The daemon's real backend (the unmodified whatsapp-rust client) against the
//! protocol-level fake WhatsApp server, over real gRPC and offline; and, where the
//! emulator and the real backend should behave alike, the same test bodies run
//! against both (`alike`). Here: the fake and the waits the modules share.
//!
//! - `alike`: pairing through the 515 restart and a daemon restart, what the phone
//!   and the server can do to a linked device (log it out, replace its stream,
//!   drop its socket), and a QR batch that runs out; each body run twice.
//! - `real`: what only the real backend shows (sends decrypted by the fake, the
//!   device removed at WhatsApp, pairing codes, refused connects).
//! - `crash`: the binary killed with -9 between the scan and CONNECTED.
//! - `orphan`: a session actor that crashes closes its connection with it.
//! - `deleted`: a DeleteSession racing deliveries leaves nothing after its `deleted` event.
//! - `durable`: nothing delivered is lost: a refused commit retried on the same
//!   connection, a logout of a session not connected that logs WhatsApp's queue
//!   first, and a refused unlink reported.
//! - `files`: under a low open-files limit, creates are refused before sessions stall.
//! - `outbound`: `SendMessage` on both backends: every kind of message at the
//!   server under the daemon's id, server acks, nacks, held acks and receipts;
//!   the account's health (new chats barred with the timelock, a temporary ban);
//!   the binary killed with -9 while acks are held.
//! - `recovered`: a message the device cannot decrypt is logged as a placeholder
//!   before it is acked, then once as the phone sent it again.
//! - `version`: the WhatsApp Web version resolved from the fake's sw.js, a 405
//!   after the fake retires it survived without a new QR, a pinned one stopped.
//! - `media`: the media bodies of `tests/media` on the real backend against the
//!   fake's CDN (upload once, send many, voice notes, download and re-upload, refusals).
//! - `phone` and `received`: the two worlds as the shared bodies see them.

#[path = "../common/mod.rs"]
mod common;

mod alike;
mod crash;
mod deleted;
mod durable;
mod files;
mod media;
mod orphan;
mod outbound;
mod phone;
mod real;
mod received;
mod recovered;
mod version;

use wa_sessiond::proto::Session;

pub use common::fake::{pair, wait_until, Fake, PUSH_NAME, STEP_BOUND};

/// The next change of a watch stream, within `STEP_BOUND`.
async fn next_change(stream: &mut tonic::Streaming<Session>) -> Session {
    tokio::time::timeout(STEP_BOUND, stream.message())
        .await
        .expect("a change within the bound")
        .unwrap()
        .expect("the stream goes on")
}
