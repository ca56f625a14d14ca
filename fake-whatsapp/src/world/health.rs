//! What WhatsApp holds against an account, on the world's side: the control
//! API's orders (the timelock pushed to the account's open connections, a ban
//! failing them, a rate limit ending their streams with a 429), the verdict on
//! each message a device sends (a refusal the control API ordered, or 463 for a
//! new chat under the timelock), the timelock's state for the device's own
//! query, and the ban a login meets.

use std::time::{Duration, SystemTime};

use wacore_binary::Node;

use super::{require_phone, Order, World};
use crate::{
    health, stanza,
    vocab::{DeviceAddr, Refusal},
};

/// The stream error code WhatsApp rate-limits a connection with.
const RATE_LIMITED: u16 = 429;

impl World {
    /// Bars `phone`'s new chats for `reachout_for` and bans it for `ban_for`
    /// (zero lifts either). Its open connections are pushed the timelock when it
    /// is set or lifted, and fail with the ban; how many were told.
    pub async fn set_health(
        &self,
        phone: &str,
        reachout_for: Duration,
        ban_reason: u32,
        ban_for: Duration,
    ) -> Result<u32, Refusal> {
        require_phone(phone)?;
        let now = SystemTime::now();
        let mut inner = self.inner.lock().await;
        let was_restricted = inner.health.reachout_until(phone, now).is_some();
        inner.health.set(phone, reachout_for, ban_reason, ban_for, now);
        let until = inner.health.reachout_until(phone, now);
        let ban = inner.health.ban(phone, now);
        let mut told = 0;
        for conn in inner.conns.values() {
            if conn.device.as_ref().is_none_or(|d| d.phone != phone) {
                continue;
            }
            let mut orders = Vec::new();
            if until.is_some() || was_restricted {
                orders.push(Order::Send(health::timelock_notification(until)));
            }
            if let Some(ban) = ban {
                orders.push(Order::End(health::ban_failure(ban, now)));
            }
            let given = orders.into_iter().all(|order| conn.orders.send(order).is_ok());
            told += u32::from(given && (until.is_some() || was_restricted || ban.is_some()));
        }
        Ok(told)
    }

    /// WhatsApp rate-limits `phone`'s devices: their open streams end with
    /// `<stream:error code="429"/>` and the socket closes; how many.
    pub async fn rate_limit(&self, phone: &str) -> Result<u32, Refusal> {
        require_phone(phone)?;
        Ok(self
            .order_each(phone, || Order::End(stanza::stream_error(RATE_LIMITED)))
            .await)
    }

    /// A message `device` sent to `chat`: the code to nack it with, if it is
    /// refused (an ordered refusal first, then 463 for a new chat under the
    /// timelock). A message the server takes makes its chat one the account
    /// messaged.
    pub async fn admit(&self, device: &DeviceAddr, chat: &str) -> Option<u32> {
        let mut inner = self.inner.lock().await;
        if let Some(code) = inner.outbox.take_refusal(&device.phone) {
            return Some(code);
        }
        inner.health.admit(&device.phone, chat, SystemTime::now()).err()
    }

    /// The answer to `device`'s timelock query `id`.
    pub async fn timelock_answer(&self, device: Option<&DeviceAddr>, id: &str) -> Node {
        let inner = self.inner.lock().await;
        let until = device.and_then(|d| inner.health.reachout_until(&d.phone, SystemTime::now()));
        health::timelock_answer(id, until)
    }
}
