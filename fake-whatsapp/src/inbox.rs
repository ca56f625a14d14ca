//! What the server holds for linked devices (WhatsApp's servers keep the queue,
//! not the device): per device, the messages and receipts addressed to it in the
//! order the server took them, until the device acks each one; which of them went
//! out on the device's current connection (the rest go out on the next one, under
//! the same id); and the keys the device published, which senders open Signal
//! sessions with. Plain state without I/O: the world drives it.

use std::collections::{HashMap, HashSet, VecDeque};

use wacore_binary::Node;

use crate::{
    device_keys::DeviceKeys,
    vocab::{ConnId, DeviceAddr},
};

/// What kind of stanza an item is, as the device's ack names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A `<message>`: acked with a delivery `<receipt>` or an `<ack class="message">`.
    Message,
    /// A `<receipt>`: acked with an `<ack class="receipt">`.
    Receipt,
}

/// What a message item is sealed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Payload {
    /// Its text, as a `conversation`.
    #[default]
    Text,
    /// Nothing the device can decrypt: a well-formed Signal message of a session
    /// it does not have.
    Undecryptable,
    /// An encoded `wa::Message` the account's own phone sends its device
    /// (`category="peer"`, e.g. its answer to a resend request), from the JID the
    /// device addressed it by (its phone number or its LID).
    Peer {
        /// The encoded message.
        message: Vec<u8>,
        /// The phone's JID, the stanza's `from`.
        from: String,
    },
    /// An encoded `wa::Message` a phone sends (media: the file is on the CDN).
    Message(Vec<u8>),
}

/// One message or receipt held for a device.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its place in the server's order (grows by one per item).
    pub seq: u64,
    /// Message or receipt: each is acked by its own kind of ack.
    pub class: Class,
    /// The stanza id the device acks it by.
    pub id: String,
    /// The phone number it comes from (digits).
    pub from: String,
    /// A message's text (empty for a receipt).
    pub text: String,
    /// When the server took it (seconds since the epoch).
    pub t: u64,
    /// The stanza as first sent. A message is sealed (encrypted by its sender) on
    /// its first delivery and its ciphertext is fixed from then on, so a
    /// redelivery is the same stanza; a receipt is built when it is taken.
    pub stanza: Option<Node>,
    /// What a message is sealed from.
    pub payload: Payload,
}

/// What one device's next delivery draws on.
pub struct Unsent<'a> {
    /// The device's keys, for sealing messages.
    pub keys: Option<&'a mut DeviceKeys>,
    /// The items not sent on the connection yet, in order.
    pub items: Vec<&'a mut Item>,
}

/// What the server holds for one device.
#[derive(Debug, Default)]
struct Mailbox {
    /// The keys it published, if any yet.
    keys: Option<DeviceKeys>,
    /// Items not acked, in the server's order.
    items: VecDeque<Item>,
    /// The connection that items up to this seq went out on.
    sent: Option<(ConnId, u64)>,
}

/// Every device's mailbox.
#[derive(Debug, Default)]
pub struct Inbox {
    /// One per linked device, made when it links and dropped when it unlinks.
    mailboxes: HashMap<DeviceAddr, Mailbox>,
    /// The seq of the next item.
    next_seq: u64,
}

impl Inbox {
    /// A device was linked, with the keys its registration carried.
    pub fn link(&mut self, addr: DeviceAddr, keys: Option<DeviceKeys>) {
        self.mailboxes.entry(addr).or_default().keys = keys;
    }

    /// A device is gone: what was held for it is dropped.
    pub fn unlink(&mut self, addr: &DeviceAddr) {
        self.mailboxes.remove(addr);
    }

    /// Every device of `phone` is gone.
    pub fn unlink_all(&mut self, phone: &str) {
        self.mailboxes.retain(|addr, _| addr.phone != phone);
    }

    /// The device's keys, for a sender or for an upload.
    pub fn keys_mut(&mut self, addr: &DeviceAddr) -> Option<&mut DeviceKeys> {
        self.mailboxes.get_mut(addr)?.keys.as_mut()
    }

    /// The device uploaded pre-keys: the first upload gives it keys, later ones
    /// add to them.
    pub fn publish(&mut self, addr: &DeviceAddr, upload: DeviceKeys) {
        let mailbox = self.mailboxes.entry(addr.clone()).or_default();
        match &mut mailbox.keys {
            Some(keys) => keys.absorb(upload),
            None => mailbox.keys = Some(upload),
        }
    }

    /// Holds `item` for `addr` after everything held for it already (its seq is
    /// assigned here).
    pub fn push(&mut self, addr: &DeviceAddr, mut item: Item) {
        self.next_seq += 1;
        item.seq = self.next_seq;
        self.mailboxes.entry(addr.clone()).or_default().items.push_back(item);
    }

    /// The items `addr` holds that did not go out on connection `conn` yet, in
    /// order, with the device's keys. `mark_sent` records what went out.
    pub fn unsent_mut(&mut self, addr: &DeviceAddr, conn: ConnId) -> Unsent<'_> {
        let Some(mailbox) = self.mailboxes.get_mut(addr) else {
            return Unsent {
                keys: None,
                items: Vec::new(),
            };
        };
        let after = mailbox
            .sent
            .filter(|(sent_on, _)| *sent_on == conn)
            .map_or(0, |(_, seq)| seq);
        Unsent {
            keys: mailbox.keys.as_mut(),
            items: mailbox.items.iter_mut().filter(|item| item.seq > after).collect(),
        }
    }

    /// The items of `addr` up to `seq` went out on connection `conn`.
    pub fn mark_sent(&mut self, addr: &DeviceAddr, conn: ConnId, seq: u64) {
        if let Some(mailbox) = self.mailboxes.get_mut(addr) {
            mailbox.sent = Some((conn, seq));
        }
    }

    /// The device acked `ids` of `class`: for each, the oldest item of that id is
    /// forgotten (a resend after a retry is a newer item with the same id, acked
    /// on its own). Returns the forgotten items.
    pub fn ack(&mut self, addr: &DeviceAddr, class: Class, ids: &[String]) -> Vec<Item> {
        let Some(mailbox) = self.mailboxes.get_mut(addr) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| {
                let at = mailbox
                    .items
                    .iter()
                    .position(|item| item.class == class && item.id == *id)?;
                mailbox.items.remove(at)
            })
            .collect()
    }

    /// The newest item of `class` with `id` held for `addr`.
    pub fn newest(&self, addr: &DeviceAddr, class: Class, id: &str) -> Option<&Item> {
        let mailbox = self.mailboxes.get(addr)?;
        mailbox
            .items
            .iter()
            .rev()
            .find(|item| item.class == class && item.id == id)
    }

    /// Messages still held for `phone`'s devices (each counted once, however
    /// many of its devices still owe an ack).
    pub fn pending_messages(&self, phone: &str) -> usize {
        self.mailboxes
            .iter()
            .filter(|(addr, _)| addr.phone == phone)
            .flat_map(|(_, mailbox)| mailbox.items.iter())
            .filter(|item| item.class == Class::Message)
            .map(|item| item.id.as_str())
            .collect::<HashSet<_>>()
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u16) -> DeviceAddr {
        DeviceAddr {
            phone: "15550001111".into(),
            device: n,
        }
    }

    fn item(class: Class, id: &str) -> Item {
        Item {
            seq: 0,
            class,
            id: id.into(),
            from: "15550002222".into(),
            text: id.into(),
            t: 1,
            stanza: None,
            payload: Payload::Text,
        }
    }

    /// Sends everything unsent on `conn`, as a connection does.
    fn send_all(inbox: &mut Inbox, addr: &DeviceAddr, conn: ConnId) -> Vec<String> {
        let sent: Vec<(String, u64)> = inbox
            .unsent_mut(addr, conn)
            .items
            .into_iter()
            .map(|item| (item.id.clone(), item.seq))
            .collect();
        if let Some((_, last)) = sent.last() {
            inbox.mark_sent(addr, conn, *last);
        }
        sent.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn items_go_out_once_per_connection_in_order_and_unacked_ones_again_on_the_next() {
        let mut inbox = Inbox::default();
        let addr = device(1);
        inbox.link(addr.clone(), None);
        for id in ["a", "b", "c"] {
            inbox.push(&addr, item(Class::Message, id));
        }
        assert_eq!(send_all(&mut inbox, &addr, 1), ["a", "b", "c"]);
        assert!(
            send_all(&mut inbox, &addr, 1).is_empty(),
            "nothing twice on one connection"
        );

        inbox.push(&addr, item(Class::Message, "d"));
        assert_eq!(send_all(&mut inbox, &addr, 1), ["d"]);

        let acked = inbox.ack(&addr, Class::Message, &["a".into(), "c".into()]);
        assert_eq!(acked.len(), 2);
        assert_eq!(inbox.pending_messages("15550001111"), 2);
        assert_eq!(
            send_all(&mut inbox, &addr, 2),
            ["b", "d"],
            "the next connection gets the rest"
        );
    }

    #[test]
    fn an_ack_of_the_other_class_forgets_nothing() {
        let mut inbox = Inbox::default();
        let addr = device(1);
        inbox.push(&addr, item(Class::Receipt, "x"));
        assert!(inbox.ack(&addr, Class::Message, &["x".into()]).is_empty());
        assert_eq!(inbox.pending_messages("15550001111"), 0, "receipts are not messages");
        assert_eq!(inbox.ack(&addr, Class::Receipt, &["x".into()]).len(), 1);
        assert!(inbox.unsent_mut(&addr, 1).items.is_empty());
    }

    #[test]
    fn a_message_for_two_devices_is_pending_until_both_acked_it() {
        let mut inbox = Inbox::default();
        let (one, two) = (device(1), device(2));
        for addr in [&one, &two] {
            inbox.push(addr, item(Class::Message, "m"));
        }
        assert_eq!(inbox.pending_messages("15550001111"), 1);
        inbox.ack(&one, Class::Message, &["m".into()]);
        assert_eq!(inbox.pending_messages("15550001111"), 1);
        inbox.ack(&two, Class::Message, &["m".into()]);
        assert_eq!(inbox.pending_messages("15550001111"), 0);
    }

    #[test]
    fn an_ack_forgets_the_oldest_item_of_its_id_so_a_resend_waits_for_its_own() {
        let mut inbox = Inbox::default();
        let addr = device(1);
        inbox.push(&addr, item(Class::Message, "m"));
        assert_eq!(send_all(&mut inbox, &addr, 1), ["m"]);
        inbox.push(&addr, item(Class::Message, "m"));
        let newest = inbox.newest(&addr, Class::Message, "m").unwrap().seq;
        inbox.ack(&addr, Class::Message, &["m".into()]);
        assert_eq!(inbox.pending_messages("15550001111"), 1);
        assert_eq!(inbox.newest(&addr, Class::Message, "m").unwrap().seq, newest);
        assert_eq!(send_all(&mut inbox, &addr, 1), ["m"], "the resend goes out");
    }

    #[test]
    fn unlinking_a_device_drops_what_was_held_for_it() {
        let mut inbox = Inbox::default();
        let addr = device(1);
        inbox.push(&addr, item(Class::Message, "m"));
        inbox.unlink_all("15550001111");
        assert_eq!(inbox.pending_messages("15550001111"), 0);
    }
}
