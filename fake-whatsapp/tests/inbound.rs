//! The unmodified whatsapp-rust client, built as the daemon builds it (SQLite
//! store, tokio websocket transport), against the fake with nothing in between:
//! a message from one of the fake's phones arrives decrypted as the client's
//! `Messages` event, live or in the offline batch; the fake holds it until the
//! client acks it and delivers it again, under the same id, when it did not; a
//! phone's receipt for what the device sent arrives as the client's `Receipt`.
//! Loopback only; every wait is bounded.

mod common;

use common::*;
use fake_whatsapp::proto::{DropConnectionsRequest, ReceiptKind, SendReceiptRequest};
use whatsapp_rust::types::{durability_hook::InboundMessage, events::Event, presence::ReceiptType};

#[tokio::test]
async fn a_message_to_a_connected_device_arrives_decrypted_with_its_sender_and_chat_and_a_second_follows() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;

    let id = fake.send(FRIEND, "hello from a phone").await;
    let [first] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(text(&first), Some("hello from a phone"));
    assert_eq!(first.info.id, id);
    assert_eq!(first.info.source.sender, user(FRIEND));
    assert_eq!(first.info.source.chat, user(FRIEND));
    assert!(!first.info.source.is_from_me);
    assert!(!first.info.is_offline, "a live delivery");
    assert_eq!(first.info.push_name, "Fake Phone");
    // The device acked it: the phone knows the session stands, and the next
    // message goes on it as a `msg`.
    fake.wait_pending(0).await;

    let second_id = fake.send(FRIEND, "and a second one").await;
    let [second] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(text(&second), Some("and a second one"));
    assert_eq!(second.info.id, second_id);
    assert_eq!(second.info.source.sender, user(FRIEND));
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn messages_sent_while_the_device_is_offline_arrive_in_order_marked_offline_and_are_forgotten_once_acked() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let device = Device::pair(&fake, dir.path(), None).await;
    device.stop().await;

    let texts = ["one", "two", "three"];
    let mut ids = Vec::new();
    for text in texts {
        ids.push(fake.send(FRIEND, text).await);
    }
    ids.push(fake.send("15550003333", "from another phone").await);
    assert_eq!(
        fake.pending().await,
        4,
        "the server holds them while the device is away"
    );

    let mut device = Device::start(&fake, dir.path(), None).await;
    let messages = device.messages(4).await;
    let from_friend: Vec<&InboundMessage> = messages
        .iter()
        .filter(|message| message.info.source.chat == user(FRIEND))
        .collect();
    let got: Vec<_> = from_friend.iter().filter_map(|message| text(message)).collect();
    assert_eq!(got, texts, "one chat's messages in the order the server took them");
    let mut got_ids: Vec<_> = messages.iter().map(|message| message.info.id.clone()).collect();
    got_ids.sort();
    ids.sort();
    assert_eq!(got_ids, ids);
    assert!(
        messages.iter().all(|message| message.info.is_offline),
        "each came in the offline batch"
    );
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_delivery_the_device_did_not_ack_comes_again_with_the_same_id_after_a_reconnect() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (hook, mut probe) = Hook::new(1, true);
    let mut device = Device::pair(&fake, dir.path(), Some(hook)).await;

    let id = fake.send(FRIEND, "commit me").await;
    let (first, offline) = bounded("the hook's first call", probe.seen.recv()).await.unwrap();
    assert_eq!((first.as_str(), offline), (id.as_str(), false));
    assert_eq!(fake.pending().await, 1, "refused by the hook: not acked, still held");

    let drop = DropConnectionsRequest {
        phone_number: OWNER.into(),
    };
    fake.control.clone().drop_connections(drop).await.unwrap();
    let (again, offline) = bounded("the hook's second call", probe.seen.recv()).await.unwrap();
    assert_eq!(again, id, "the same message, under the same id");
    assert!(offline, "redelivered in the offline batch of the next connection");
    let [message] = <[InboundMessage; 1]>::try_from(device.messages(1).await).ok().unwrap();
    assert_eq!(
        (message.info.id.as_str(), text(&message)),
        (id.as_str(), Some("commit me"))
    );
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_phones_receipt_for_a_sent_message_arrives_as_the_clients_receipt_event_with_its_id_and_kind() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let sent = bounded("a send", device.client().send_text(user(FRIEND), "did you get this?"))
        .await
        .expect("the device sends");

    for (kind, expected) in [
        (ReceiptKind::Delivered, ReceiptType::Delivered),
        (ReceiptKind::Read, ReceiptType::Read),
        (ReceiptKind::Played, ReceiptType::Played),
    ] {
        let receipt = SendReceiptRequest {
            to_phone_number: OWNER.into(),
            from_phone_number: FRIEND.into(),
            message_ids: vec![sent.message_id.clone()],
            kind: kind as i32,
        };
        fake.control
            .clone()
            .send_receipt(receipt)
            .await
            .expect("the phone sends a receipt");
        let receipt = device
            .next(|event| match event {
                Event::Receipt(receipt) => Some(receipt.clone()),
                _ => None,
            })
            .await;
        assert_eq!(receipt.message_ids, std::slice::from_ref(&sent.message_id));
        assert_eq!(receipt.r#type, expected);
        assert_eq!(receipt.source.chat, user(FRIEND));
        assert_eq!(receipt.source.sender, user(FRIEND));
    }
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_message_after_the_device_uploaded_its_pre_keys_opens_the_session_on_one_of_them_and_decrypts_first_time() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut device = Device::pair(&fake, dir.path(), None).await;
    let client = device.client();
    bounded("the device's pre-key upload", async {
        while !client.persistence_manager().get_device_snapshot().server_has_prekeys {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;

    let id = fake.send("15550004444", "on a one-time pre-key").await;
    let mut undecryptable = false;
    let message = device
        .next(|event| match event {
            Event::UndecryptableMessage(_) => {
                undecryptable = true;
                None
            }
            Event::Messages(batch) => batch.first().cloned(),
            _ => None,
        })
        .await;
    assert!(!undecryptable, "the first copy decrypts: no retry");
    assert_eq!(
        (message.info.id.as_str(), text(&message)),
        (id.as_str(), Some("on a one-time pre-key"))
    );
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}
