//! The fake under load and loss, against the unmodified whatsapp-rust client: a
//! burst is taken at once (the control call never waits for the device), held
//! while the device cannot commit, then delivered in each chat's order; a device
//! that lost its Signal session asks for the message again and the phone resends
//! it under the same id. Loopback only; every wait is bounded.

mod common;

use std::{collections::HashMap, path::Path};

use common::*;
use fake_whatsapp::proto::SendMessageRequest;
use whatsapp_rust::types::events::Event;

/// Copies the client's SQLite store (with its WAL) from `from` to `to`.
fn copy_store(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("whatsapp.db") {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_burst_is_taken_at_once_held_while_the_device_cannot_commit_then_delivered_in_each_chats_order() {
    const PER_PHONE: usize = 150;
    let phones = ["15550002222", "15550003333"];
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (hook, probe) = Hook::new(0, false);
    let mut device = Device::pair(&fake, dir.path(), Some(hook)).await;

    let senders = phones.map(|phone| {
        let control = fake.control.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_PHONE {
                let request = SendMessageRequest {
                    to_phone_number: OWNER.into(),
                    from_phone_number: phone.into(),
                    text: format!("{phone} #{n}"),
                    ..Default::default()
                };
                let sent = control.clone().send_message(request).await.expect("the fake takes it");
                ids.push(sent.into_inner().message_id);
            }
            ids
        })
    });
    for sender in senders {
        let ids = bounded("a burst of sends", sender).await.unwrap();
        assert_eq!(ids.len(), PER_PHONE);
    }
    assert_eq!(
        fake.pending().await,
        (PER_PHONE * phones.len()) as u64,
        "every send returned while the device committed none"
    );

    probe.gate.send(true).unwrap();
    let messages = device.messages(PER_PHONE * phones.len()).await;
    let mut by_chat: HashMap<String, Vec<String>> = HashMap::new();
    for message in &messages {
        let chat = message.info.source.chat.user.to_string();
        by_chat.entry(chat).or_default().push(text(message).unwrap().to_owned());
    }
    for phone in phones {
        let expected: Vec<String> = (0..PER_PHONE).map(|n| format!("{phone} #{n}")).collect();
        assert_eq!(
            by_chat[phone], expected,
            "the chat with {phone} in the order the server took it"
        );
    }
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}

#[tokio::test]
async fn a_device_that_lost_its_session_asks_again_and_the_phone_resends_under_the_same_id() {
    let fake = Fake::start().await;
    let (dir, before, restored) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let device = Device::pair(&fake, dir.path(), None).await;
    device.stop().await;
    copy_store(dir.path(), before.path());

    let mut device = Device::start(&fake, dir.path(), None).await;
    device.connected().await;
    fake.send(FRIEND, "before the loss").await;
    device.messages(1).await;
    // Acked: the phone holds the session confirmed and sends `msg` from now on.
    fake.wait_pending(0).await;
    device.stop().await;

    // The device comes back with its state from before it knew the phone.
    copy_store(before.path(), restored.path());
    let mut device = Device::start(&fake, restored.path(), None).await;
    device.connected().await;
    let id = fake.send(FRIEND, "after the loss").await;
    let mut undecryptable = false;
    let message = device
        .next(|event| match event {
            Event::UndecryptableMessage(failed) => {
                undecryptable |= failed.info.id == id;
                None
            }
            Event::Messages(batch) => batch.first().cloned(),
            _ => None,
        })
        .await;
    assert!(undecryptable, "the first copy could not be decrypted");
    assert_eq!(message.info.id, id, "the resend carries the same id");
    assert_eq!(text(&message), Some("after the loss"));
    assert_eq!(message.info.source.sender, user(FRIEND));
    fake.wait_pending(0).await;
    device.stop().await;
    fake.running.stop().await;
}
