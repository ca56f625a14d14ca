//! What the server does with the messages linked devices send: each one it
//! took, listed once per id and chat however many times a device sent it (a
//! resend after a crash is one message, as the recipient's phone shows it), with
//! the chat states and read receipts they send, each as it came; the
//! refusals a test ordered per account (its next sends nacked with a code); and
//! the acks the server owes while it holds them, each to the device that sent
//! the message. Plain state without I/O: the world drives it.

use std::collections::{HashMap, HashSet};

use crate::{proto::ReceivedMessage, vocab::DeviceAddr};

/// An ack the server owes a device for a message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedAck {
    /// The message's id.
    pub id: String,
    /// Its chat: the ack's `from`.
    pub chat: String,
}

/// Refusals ordered for one account.
#[derive(Debug, Clone, Copy)]
struct Refusals {
    /// The nack's error code.
    code: u32,
    /// Sends still to refuse.
    left: u32,
}

/// The server's side of what devices sent.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Every message taken, in the order the server first took it.
    received: Vec<ReceivedMessage>,
    /// `(chat, id)` of each message in `received`.
    seen: HashSet<(String, String)>,
    /// Accounts (phone numbers) whose next sends are refused.
    refusals: HashMap<String, Refusals>,
    /// Accounts whose acks are held.
    holding: HashSet<String>,
    /// Acks owed per device, oldest first, each id once: held, or released while
    /// the device had no connection to take them.
    owed: HashMap<DeviceAddr, Vec<OwedAck>>,
}

impl Outbox {
    /// Lists `message` unless its id was taken for its chat before; whether it is
    /// new.
    pub fn record(&mut self, message: ReceivedMessage) -> bool {
        if !self.seen.insert((message.to.clone(), message.id.clone())) {
            return false;
        }
        self.received.push(message);
        true
    }

    /// Lists a chat state or a read receipt: no id, each one as it came.
    pub fn note(&mut self, signal: ReceivedMessage) {
        self.received.push(signal);
    }

    /// Every message taken, oldest first.
    pub fn received(&self) -> &[ReceivedMessage] {
        &self.received
    }

    /// The next `count` sends of `phone`'s devices are refused with `code`; a
    /// count of 0 ends the refusals.
    pub fn reject(&mut self, phone: &str, code: u32, count: u32) {
        if count == 0 {
            self.refusals.remove(phone);
        } else {
            self.refusals.insert(phone.to_owned(), Refusals { code, left: count });
        }
    }

    /// A send of `phone`'s device: the code to refuse it with, if one is ordered
    /// (counted off).
    pub fn take_refusal(&mut self, phone: &str) -> Option<u32> {
        let refusals = self.refusals.get_mut(phone)?;
        let code = refusals.code;
        refusals.left -= 1;
        if refusals.left == 0 {
            self.refusals.remove(phone);
        }
        Some(code)
    }

    /// Acks for `phone`'s devices are held from now on.
    pub fn hold(&mut self, phone: &str) {
        self.holding.insert(phone.to_owned());
    }

    /// Acks for `phone`'s devices are no longer held: how many are owed to its
    /// devices now (each goes out with `take_owed`).
    pub fn release(&mut self, phone: &str) -> usize {
        self.holding.remove(phone);
        self.owed
            .iter()
            .filter(|(device, _)| device.phone == phone)
            .map(|(_, acks)| acks.len())
            .sum()
    }

    /// The ack for a message `device` sent: `true` when the server holds it (it is
    /// owed from now on, once per id), `false` when it goes out now.
    pub fn hold_ack(&mut self, device: &DeviceAddr, ack: OwedAck) -> bool {
        if !self.holding.contains(&device.phone) {
            return false;
        }
        let owed = self.owed.entry(device.clone()).or_default();
        if !owed.iter().any(|held| held.id == ack.id) {
            owed.push(ack);
        }
        true
    }

    /// The acks owed to `device` that may go out now (none while its account's
    /// acks are held), forgotten here.
    pub fn take_owed(&mut self, device: &DeviceAddr) -> Vec<OwedAck> {
        if self.holding.contains(&device.phone) {
            return Vec::new();
        }
        self.owed.remove(device).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "15550001111";

    fn device(n: u16) -> DeviceAddr {
        DeviceAddr {
            phone: PHONE.into(),
            device: n,
        }
    }

    fn message(to: &str, id: &str, text: &str) -> ReceivedMessage {
        ReceivedMessage {
            from_jid: device(1).jid(),
            to: to.into(),
            text: text.into(),
            id: id.into(),
            ..Default::default()
        }
    }

    fn owed(id: &str) -> OwedAck {
        OwedAck {
            id: id.into(),
            chat: "15550002222@s.whatsapp.net".into(),
        }
    }

    #[test]
    fn a_message_sent_again_under_its_id_is_listed_once_but_the_same_id_in_another_chat_is_its_own() {
        let mut outbox = Outbox::default();
        assert!(outbox.record(message("a@s.whatsapp.net", "3EB0X", "first")));
        assert!(!outbox.record(message("a@s.whatsapp.net", "3EB0X", "resent")));
        assert!(outbox.record(message("b@s.whatsapp.net", "3EB0X", "elsewhere")));
        let texts: Vec<&str> = outbox.received().iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first", "elsewhere"], "the first copy stands");
    }

    #[test]
    fn refusals_count_down_per_account_and_a_zero_count_ends_them() {
        let mut outbox = Outbox::default();
        outbox.reject(PHONE, 463, 2);
        assert_eq!(outbox.take_refusal("15559999999"), None, "another account sends freely");
        assert_eq!(outbox.take_refusal(PHONE), Some(463));
        assert_eq!(outbox.take_refusal(PHONE), Some(463));
        assert_eq!(outbox.take_refusal(PHONE), None);

        outbox.reject(PHONE, 479, 5);
        outbox.reject(PHONE, 479, 0);
        assert_eq!(outbox.take_refusal(PHONE), None);
    }

    #[test]
    fn held_acks_are_owed_once_per_id_and_go_out_only_after_the_release() {
        let mut outbox = Outbox::default();
        assert!(!outbox.hold_ack(&device(1), owed("a")), "not holding: it goes out now");

        outbox.hold(PHONE);
        assert!(outbox.hold_ack(&device(1), owed("a")));
        assert!(outbox.hold_ack(&device(1), owed("b")));
        assert!(outbox.hold_ack(&device(1), owed("a")), "a resend is held too");
        assert!(outbox.hold_ack(&device(2), owed("c")));
        assert!(outbox.take_owed(&device(1)).is_empty(), "nothing goes out while held");

        assert_eq!(outbox.release(PHONE), 3);
        let ids: Vec<String> = outbox.take_owed(&device(1)).into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["a", "b"], "in order, each id once");
        assert!(outbox.take_owed(&device(1)).is_empty(), "each goes out once");
        assert_eq!(outbox.release(PHONE), 1, "device 2's stays owed until it connects");
        assert_eq!(outbox.take_owed(&device(2)), [owed("c")]);
    }
}
