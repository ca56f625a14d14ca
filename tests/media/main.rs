//! Media, one test body per behaviour (`bodies`), run on a backend's world: the
//! emulator (`emulator::NAME`); the real backend against the fake WhatsApp can run
//! the same bodies once the fake has its media CDN (a `real` module implementing
//! [`world::World`]).
//!
//! - a 20 MiB document streamed in 64 KiB chunks, uploaded once, sent to three
//!   chats with their captions, each received whole with its sha256;
//! - a voice note arrives as one (ptt) with its duration; other audio is refused;
//! - a phone's image downloads with its bytes, again after WhatsApp's copy expired
//!   (one re-upload request), and MEDIA_EXPIRED when the phone is offline;
//! - caps, size mismatch, early end, cancel and a session not connected: the right
//!   codes, and no temp file or handle left in the data dir;
//! - and, apart from any backend (`handles`): a handle outlives a restart, expires
//!   after its ttl, and goes with its session.

#[path = "../common/mod.rs"]
mod common;

mod bodies;
mod emulator;
mod handles;
mod world;
