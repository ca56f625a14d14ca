//! What only the real backend shows, against the fake: a sent text decrypted by
//! WhatsApp for the right JID, a logout that removes the device at WhatsApp,
//! linking by pairing code, and refused connects retried with growing waits.

use std::time::Duration;

use fake_whatsapp::proto::{
    DropConnectionsRequest, EnterPairingCodeRequest, FailConnectsRequest, ListReceivedMessagesRequest,
};
use wa_sessiond::proto::{LogoutSessionRequest, RequestPairingCodeRequest, SendTextMessageRequest, SessionStatus};

use super::{common::*, pair, wait_until, Fake, PUSH_NAME, STEP_BOUND};

#[tokio::test]
async fn a_sent_text_reaches_whatsapp_encrypted_and_the_fake_decrypts_it_for_the_right_jid() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "erin", "15550005555").await;
    let mut client = daemon.sessions().await;

    let text = "hello from the real backend: ünïcödé ✓";
    let send = SendTextMessageRequest {
        session_id: "erin".into(),
        to: "+15559990000".into(),
        text: text.into(),
    };
    let sent = tokio::time::timeout(STEP_BOUND, client.send_text_message(send))
        .await
        .expect("the send answers within the bound")
        .unwrap()
        .into_inner();
    assert!(!sent.message_id.is_empty());

    let received = wait_for(STEP_BOUND, "the fake to decrypt the message", || {
        let (mut control, id) = (fake.control.clone(), sent.message_id.clone());
        async move {
            let listed = control.list_received_messages(ListReceivedMessagesRequest {}).await;
            let messages = listed.unwrap().into_inner().messages;
            messages.into_iter().find(|m| m.id == id)
        }
    })
    .await;
    assert_eq!(received.text, text);
    assert_eq!(received.to, "15559990000@s.whatsapp.net");
    assert_eq!(received.from_jid, "15550005555:1@s.whatsapp.net");
    daemon.stop().await;
}

#[tokio::test]
async fn logging_a_session_out_unlinks_the_device_at_whatsapp() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "frank", "15550006666").await;
    let mut client = daemon.sessions().await;

    let logout = LogoutSessionRequest {
        session_id: "frank".into(),
    };
    let session = tokio::time::timeout(STEP_BOUND, client.logout_session(logout))
        .await
        .expect("the logout answers within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(status(&session), SessionStatus::LoggedOut);

    let left = fake.phone_logout("15550006666").await;
    assert_eq!(left, 0, "whatsapp no longer lists the device");
    assert!(!dir.path().join("sessions/frank/whatsapp.db").exists());
    daemon.stop().await;
}

#[tokio::test]
async fn a_pairing_code_typed_on_the_phone_links_the_session() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    let mut client = daemon.sessions().await;
    client.create_session(create("gina")).await.unwrap();

    let request = RequestPairingCodeRequest {
        session_id: "gina".into(),
        phone_number: "+15550007777".into(),
    };
    let issued = tokio::time::timeout(STEP_BOUND, client.request_pairing_code(request))
        .await
        .expect("a pairing code within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(issued.code.len(), 9, "shown as XXXX-XXXX: {}", issued.code);

    let typed = EnterPairingCodeRequest { code: issued.code };
    let linked = tokio::time::timeout(STEP_BOUND, fake.control.clone().enter_pairing_code(typed))
        .await
        .expect("the phone finishes within the bound")
        .unwrap()
        .into_inner();
    assert_eq!(linked.phone_number, "15550007777");
    let session = wait_until(&daemon, "gina", "CONNECTED", |s| status(s) == SessionStatus::Connected).await;
    assert_eq!(session.phone_number, "15550007777");
    assert_eq!(session.jid, linked.jid);
    assert_eq!(session.push_name, PUSH_NAME);
    daemon.stop().await;
}

#[tokio::test]
async fn refused_connects_are_retried_until_whatsapp_takes_the_device_back() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "hank", "15550008888").await;
    let (started, _) = fake.connections().await;

    let mut control = fake.control.clone();
    control.fail_connects(FailConnectsRequest { count: 3 }).await.unwrap();
    let drop = DropConnectionsRequest {
        phone_number: "15550008888".into(),
    };
    control.drop_connections(drop).await.unwrap();
    wait_until(&daemon, "hank", "RECONNECTING", |s| {
        status(s) == SessionStatus::Reconnecting
    })
    .await;
    // When each attempt reaches the fake (polled every few milliseconds).
    let mut attempts = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP_BOUND;
    while attempts.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "4 attempts within {STEP_BOUND:?}: {attempts:?}"
        );
        let (now_started, _) = fake.connections().await;
        while started + (attempts.len() as u64) < now_started {
            attempts.push(tokio::time::Instant::now());
        }
        if attempts.len() < 4 {
            let session = daemon
                .sessions()
                .await
                .get_session(peek("hank"))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                status(&session),
                SessionStatus::Reconnecting,
                "waiting between attempts"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gaps: Vec<_> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] < gaps[1], "the wait grows after each refusal: {gaps:?}");
    let session = wait_until(&daemon, "hank", "CONNECTED after the refusals", |s| {
        status(s) == SessionStatus::Connected
    })
    .await;
    assert_eq!(session.jid, "15550008888:1@s.whatsapp.net");
    let (after, open) = fake.connections().await;
    assert_eq!(
        (after - started, open),
        (4, 1),
        "three refused attempts, then one that stays"
    );
    daemon.stop().await;
}
