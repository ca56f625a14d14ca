//! A message the device cannot decrypt, on the real backend against the fake
//! (issue 23 item 1): whatsapp-rust asks the account's phone to send it again,
//! and acks the undecryptable stanza once the request is out. The daemon logs a
//! MESSAGE_KIND_UNDECRYPTABLE placeholder on disk before that ack, and, when
//! the phone answers, the message itself once, marked `recovered`, however
//! often its id is delivered afterwards. Unanswered, only the placeholder is
//! there. Multi-threaded like the daemon's own runtime: the placeholder is
//! committed on the library's dispatch path, which needs a worker it can hold.

use fake_whatsapp::proto::{AnswerResendRequestsRequest, SendMessageRequest, SendUndecryptableMessageRequest};
use wa_sessiond::proto::{event::Body, InboundMessage, MessageKind};

use super::{
    common::{fake::logged_messages, *},
    pair, Fake, STEP_BOUND,
};

/// The linked account's phone.
const OWNER: &str = "15550001111";

/// A phone that writes to it.
const FRIEND: &str = "15550002222";

const TEXT: &str = "sent while our keys were out of step";

/// How long the test keeps the log from writing: well past the time the device
/// takes to ask its phone and ack (tens of milliseconds), within the daemon's
/// hold on a placeholder (5 s).
const HELD: std::time::Duration = std::time::Duration::from_millis(1500);

async fn send_undecryptable(fake: &Fake) -> String {
    let request = SendUndecryptableMessageRequest {
        to_phone_number: OWNER.into(),
        from_phone_number: FRIEND.into(),
        text: TEXT.into(),
    };
    let sent = fake.control.clone().send_undecryptable_message(request).await;
    sent.expect("the fake takes it").into_inner().message_id
}

/// `FRIEND` sends `text` under `id` (a new one when empty).
async fn send(fake: &Fake, text: &str, id: &str) -> String {
    let request = SendMessageRequest {
        to_phone_number: OWNER.into(),
        from_phone_number: FRIEND.into(),
        text: text.into(),
        message_id: id.into(),
    };
    let sent = fake.control.clone().send_message(request).await;
    sent.expect("the fake takes it").into_inner().message_id
}

/// Reads `stream` until a message with `text` came (within the bound): every
/// message read, in order.
async fn until_text(stream: &mut tonic::Streaming<wa_sessiond::proto::Event>, text: &str) -> Vec<InboundMessage> {
    let mut got: Vec<InboundMessage> = Vec::new();
    let read = async {
        while !got.iter().any(|m| m.text == text) {
            let event = stream.message().await.expect("a healthy stream").expect("it goes on");
            if let Some(Body::Message(message)) = event.body {
                got.push(message);
            }
        }
    };
    if tokio::time::timeout(STEP_BOUND, read).await.is_err() {
        panic!("{text:?} not logged within {STEP_BOUND:?}; logged: {got:?}");
    }
    got
}

/// The messages of `id` in `got`: (kind, text, recovered).
fn of(got: &[InboundMessage], id: &str) -> Vec<(i32, String, bool)> {
    got.iter()
        .filter(|m| m.id == id)
        .map(|m| (m.kind, m.text.clone(), m.recovered))
        .collect()
}

/// Placeholders on disk in the daemon's event log now.
fn placeholders_on_disk(data_dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(data_dir.join("events.db")).unwrap();
    conn.busy_timeout(STEP_BOUND).unwrap();
    let kind = wa_sessiond::proto::EventKind::Message as i32;
    conn.query_row(
        "SELECT COUNT(*) FROM events WHERE kind = ?1 AND dedupe LIKE 'u' || char(31) || '%'",
        [kind],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_message_is_logged_as_a_placeholder_then_once_as_the_phone_recovered_it() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "pia", OWNER).await;
    let mut messages = logged_messages(&daemon, "pia").await;

    let id = send_undecryptable(&fake).await;
    let got = until_text(&mut messages, TEXT).await;
    let undecryptable = MessageKind::Undecryptable as i32;
    let text = MessageKind::Text as i32;
    assert_eq!(
        of(&got, &id),
        [(undecryptable, String::new(), false), (text, TEXT.to_owned(), true)],
        "the placeholder, then the message: {got:?}"
    );
    let placeholder = got.iter().find(|m| m.id == id).unwrap();
    assert_eq!(
        (placeholder.chat.as_str(), placeholder.sender.as_str()),
        ("15550002222@s.whatsapp.net", "15550002222@s.whatsapp.net")
    );
    assert!(placeholder.sent_at.is_some());
    fake.wait_pending(OWNER, 0).await;

    // The same id delivered normally later is the same message.
    send(&fake, TEXT, &id).await;
    let after = send(&fake, "after it", "").await;
    let got = until_text(&mut messages, "after it").await;
    assert_eq!(of(&got, &id), [], "no duplicate: {got:?}");
    assert_eq!(got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [after.as_str()]);
    fake.wait_pending(OWNER, 0).await;
    daemon.stop().await;
    fake.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_only_the_placeholder_is_logged_and_the_stanza_is_acked_only_once_it_is_on_disk() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), fake.wire()).await;
    pair(&daemon, &fake, "quin", OWNER).await;
    let mut messages = logged_messages(&daemon, "quin").await;
    let off = AnswerResendRequestsRequest { answer: false };
    fake.control.clone().answer_resend_requests(off).await.unwrap();

    // The log cannot write for a while (another writer holds it).
    let blocker = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let id = send_undecryptable(&fake).await;
    stays_false(
        HELD,
        "the stanza acked while its placeholder is not on disk",
        || async { fake.pending(OWNER).await == 0 },
    )
    .await;
    blocker.execute_batch("COMMIT").unwrap();
    // Acked once the device asked its phone (retry receipt, resend request, ack).
    fake.wait_pending(OWNER, 0).await;
    assert_eq!(placeholders_on_disk(dir.path()), 1, "committed before the ack");

    // Whatever the phone sent would come before this.
    send(&fake, "after it", "").await;
    let got = until_text(&mut messages, "after it").await;
    let undecryptable = MessageKind::Undecryptable as i32;
    assert_eq!(of(&got, &id), [(undecryptable, String::new(), false)], "{got:?}");
    daemon.stop().await;
    fake.running.stop().await;
}
