//! What devices send, on the world's side: the messages the server took (for
//! `ListReceivedMessages`), the refusals the control API ordered, and the acks
//! it holds and later releases to each device's open connection, or to its next
//! one.

use wacore_binary::Node;

use super::{require_phone, Order, World};
use crate::{
    outbox::OwedAck,
    proto::ReceivedMessage,
    stanza,
    vocab::{DeviceAddr, Refusal},
};

impl World {
    /// Lists a message a device sent, unless its id was listed for its chat
    /// before; whether it is new.
    pub async fn record(&self, message: ReceivedMessage) -> bool {
        self.inner.lock().await.outbox.record(message)
    }

    /// Lists a chat state or a read receipt a device sent.
    pub async fn note(&self, signal: ReceivedMessage) {
        self.inner.lock().await.outbox.note(signal);
    }

    /// The messages devices sent, oldest first, each once.
    pub async fn received(&self) -> Vec<ReceivedMessage> {
        self.inner.lock().await.outbox.received().to_vec()
    }

    /// The next `count` messages `phone`'s devices send are nacked with `code`
    /// (0 ends the refusals).
    pub async fn reject_sends(&self, phone: &str, code: u32, count: u32) -> Result<(), Refusal> {
        require_phone(phone)?;
        if code == 0 && count > 0 {
            return Err(Refusal::Invalid("a refusal needs an error code (e.g. 463)".into()));
        }
        self.inner.lock().await.outbox.reject(phone, code, count);
        Ok(())
    }

    /// Holds (`hold`) or releases the acks of `phone`'s devices. A release sends
    /// every held ack to the open connection of the device it is owed to; a device
    /// without one gets them at its next connection. How many were released.
    pub async fn hold_acks(&self, phone: &str, hold: bool) -> Result<u32, Refusal> {
        require_phone(phone)?;
        let mut inner = self.inner.lock().await;
        if hold {
            inner.outbox.hold(phone);
            return Ok(0);
        }
        let released = inner.outbox.release(phone);
        let super::Inner { conns, outbox, .. } = &mut *inner;
        for conn in conns.values() {
            let Some(device) = conn.device.as_ref().filter(|d| d.phone == phone) else {
                continue;
            };
            if conn.orders.is_closed() {
                continue; // closing: its device takes them at its next connection
            }
            for ack in outbox.take_owed(device) {
                let _ = conn.orders.send(Order::Send(owed_ack(&ack)));
            }
        }
        Ok(u32::try_from(released).unwrap_or(u32::MAX))
    }

    /// The ack for message `id` of `chat` that `device` sent: `None` when the
    /// server holds it, else the ack to send now.
    pub async fn ack_or_hold(&self, device: &DeviceAddr, id: &str, chat: &str) -> Option<Node> {
        let ack = OwedAck {
            id: id.to_owned(),
            chat: chat.to_owned(),
        };
        let held = self.inner.lock().await.outbox.hold_ack(device, ack);
        (!held).then(|| stanza::ack("message", id, chat))
    }

    /// The acks released for `device` while it had no connection, now due.
    pub async fn take_owed_acks(&self, device: &DeviceAddr) -> Vec<Node> {
        let owed = self.inner.lock().await.outbox.take_owed(device);
        owed.iter().map(owed_ack).collect()
    }
}

fn owed_ack(ack: &OwedAck) -> Node {
    stanza::ack("message", &ack.id, &ack.chat)
}
