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

    /// One contact query about `numbers` (digits): which of them are on WhatsApp,
    /// in order. Counted.
    pub async fn registered_among(&self, numbers: &[String]) -> Vec<bool> {
        let mut inner = self.inner.lock().await;
        let contacts = &mut inner.contacts;
        contacts.queries += 1;
        contacts.numbers += numbers.len() as u64;
        numbers.iter().map(|n| !contacts.unregistered.contains(n)).collect()
    }
}
