//! Which numbers the emulated WhatsApp has (`EmulatorService.SetRegistered`):
//! every number is on WhatsApp unless marked otherwise, for every account (as
//! registration is global); a contact check (one usync query; failed on order,
//! `fail_next_checks`, or refused for its rate, `rate_limit_next_checks`, which
//! the account's health shows as WhatsApp's 429 does) answers from this and is
//! counted, so tests can prove a client's batching and caching.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, SystemTime},
};

use super::Emulator;
use crate::{
    backend::BackendError,
    events::{outbound::HealthSignal, Inbox},
};

/// The numbers marked not on WhatsApp, and the checks answered.
#[derive(Default)]
pub(super) struct Registrations {
    /// Digits of the numbers not on WhatsApp.
    unregistered: HashSet<String>,
    /// Contact checks still to fail.
    fail_next: u32,
    /// Contact checks still to refuse for their rate, and the backoff they name
    /// (None: none, the rate-limit pause applies).
    rate_limited: (u32, Option<Duration>),
    /// Contact checks answered.
    queries: u64,
    /// Numbers asked about in them.
    numbers: u64,
}

impl Emulator {
    /// Marks `numbers` (digits) on WhatsApp or not, and fails the next
    /// `fail_next` checks (0: as before); answers the contact checks and the
    /// numbers asked about so far.
    pub fn set_registered(&self, numbers: &[String], registered: bool, fail_next: u32) -> (u64, u64) {
        let mut registrations = self.inner.registrations.lock();
        if fail_next > 0 {
            registrations.fail_next = fail_next;
        }
        for number in numbers {
            if registered {
                registrations.unregistered.remove(number);
            } else {
                registrations.unregistered.insert(number.clone());
            }
        }
        (registrations.queries, registrations.numbers)
    }

    /// Refuses the next `count` contact checks for their rate (429), naming
    /// `backoff` (None: none named).
    pub fn rate_limit_checks(&self, count: u32, backoff: Option<Duration>) {
        self.inner.registrations.lock().rate_limited = (count, backoff);
    }

    /// One contact check of user chats (`digits@s.whatsapp.net`): whether each is
    /// on WhatsApp, or a failure ordered. Counted when answered. A refusal for its
    /// rate is told to `inbox` as the account rate-limited until the backoff ends
    /// (the rate-limit pause when none is named), as the real backend does.
    pub(super) fn check_registered(
        &self,
        chats: Vec<String>,
        inbox: &Inbox,
    ) -> Result<HashMap<String, bool>, BackendError> {
        let mut registrations = self.inner.registrations.lock();
        if registrations.rate_limited.0 > 0 {
            registrations.rate_limited.0 -= 1;
            let backoff = registrations.rate_limited.1;
            let until = SystemTime::now() + backoff.unwrap_or(self.config().rate_limit_pause);
            inbox.health(HealthSignal::RateLimited { until });
            return Err(BackendError::Unreachable(
                "whatsapp refused the contact query for its rate (429, emulated)".into(),
            ));
        }
        if registrations.fail_next > 0 {
            registrations.fail_next -= 1;
            return Err(BackendError::Unreachable(
                "whatsapp failed the contact query (500, emulated)".into(),
            ));
        }
        registrations.queries += 1;
        registrations.numbers += chats.len() as u64;
        Ok(chats
            .into_iter()
            .map(|chat| {
                let digits = chat.split('@').next().unwrap_or_default();
                let on = !registrations.unregistered.contains(digits);
                (chat, on)
            })
            .collect())
    }
}
