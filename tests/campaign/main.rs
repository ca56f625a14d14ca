//! Campaigns on the emulator, one file per behaviour:
//! - `pace`: three sessions each run a campaign in parallel, every gap between a
//!   session's sends inside [min - 20 ms, max + 100 ms] at the server, a direct
//!   SendMessage answered without waiting for a gap; typing shows before each item;
//! - `pauses`: a lost connection pauses and resumes by itself while an operator's
//!   pause stays; 463 and new chats barred hold new contacts only; a temp ban pauses
//!   until it ends;
//! - `input`: idempotent create and add, and each bad input's code and position;
//! - `limits`: the daily cap, per session across its campaigns, until its oldest
//!   send leaves the window;
//! - `crash`: three kill -9s mid-campaign, every item at the server exactly once;
//! - `unregistered`: `skip_unregistered`'s lookups of 50, a failed lookup holding
//!   the items, no gap and no cap for a skipped item, the verdicts across a kill -9,
//!   and no lookup for an existing chat;
//! - `watch`: WatchCampaign coalesced to 250 ms until DONE, the pace metrics, and
//!   campaigns deleted with their session.

#[path = "../common/mod.rs"]
mod common;

mod crash;
mod input;
mod limits;
mod pace;
mod pauses;
mod unregistered;
mod watch;
mod world;
