//! Which numbers are on WhatsApp, on the world's side: every number is, unless the
//! control API marked it otherwise (`SetRegistered`); and how many usync contact
//! queries the server answered, so tests can prove a client's batching and caching.

use std::collections::HashSet;

use super::{require_phone, World};
use crate::vocab::Refusal;

/// The numbers marked not on WhatsApp, and the contact queries answered.
#[derive(Default)]
pub(super) struct Contacts {
    /// Digits of the numbers that are not on WhatsApp.
    unregistered: HashSet<String>,
    /// usync contact queries answered.
    queries: u64,
    /// Numbers asked about in them.
    numbers: u64,
    /// The next this many queries are refused for their rate, naming this backoff
    /// (seconds; 0: none).
    rate_limited: (u32, u32),
}

impl World {
    /// Marks `numbers` (digits) on WhatsApp or not; answers the contact queries
    /// and the numbers asked about so far.
    pub async fn set_registered(&self, numbers: &[String], registered: bool) -> Result<(u64, u64), Refusal> {
        for number in numbers {
            require_phone(number)?;
        }
        let mut inner = self.inner.lock().await;
        let contacts = &mut inner.contacts;
        for number in numbers {
            if registered {
                contacts.unregistered.remove(number);
            } else {
                contacts.unregistered.insert(number.clone());
            }
        }
        Ok((contacts.queries, contacts.numbers))
    }

    /// Refuses the next `count` contact queries for their rate, naming `backoff`
    /// seconds (0: none).
    pub async fn rate_limit_checks(&self, count: u32, backoff: u32) {
        self.inner.lock().await.contacts.rate_limited = (count, backoff);
    }

    /// One contact query about `numbers` (digits): which of them are on WhatsApp,
    /// in order, or the backoff (seconds, 0: none) of a refusal for its rate.
    /// Counted either way.
    pub async fn registered_among(&self, numbers: &[String]) -> Result<Vec<bool>, u32> {
        let mut inner = self.inner.lock().await;
        let contacts = &mut inner.contacts;
        contacts.queries += 1;
        contacts.numbers += numbers.len() as u64;
        if contacts.rate_limited.0 > 0 {
            contacts.rate_limited.0 -= 1;
            return Err(contacts.rate_limited.1);
        }
        Ok(numbers.iter().map(|n| !contacts.unregistered.contains(n)).collect())
    }
}
