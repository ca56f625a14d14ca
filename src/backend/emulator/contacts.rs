//! Which numbers the emulated WhatsApp has (`EmulatorService.SetRegistered`):
//! every number is on WhatsApp unless marked otherwise, for every account (as
//! registration is global); a contact check (failed on order, `fail_next_checks`) (one usync query) answers from this
//! and is counted, so tests can prove a client's batching and caching.

use std::collections::{HashMap, HashSet};

use super::Emulator;
use crate::backend::BackendError;

/// The numbers marked not on WhatsApp, and the checks answered.
#[derive(Default)]
pub(super) struct Registrations {
    /// Digits of the numbers not on WhatsApp.
    unregistered: HashSet<String>,
    /// Contact checks still to fail.
    fail_next: u32,
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

    /// One contact check of user chats (`digits@s.whatsapp.net`): whether each is
    /// on WhatsApp, or a failure ordered. Counted when answered.
    pub(super) fn check_registered(&self, chats: Vec<String>) -> Result<HashMap<String, bool>, BackendError> {
        let mut registrations = self.inner.registrations.lock();
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
