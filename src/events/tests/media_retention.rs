//! Download descriptors follow the log's byte cap, not only its age: once a
//! session's messages are trimmed for room, their descriptors (which hold the media
//! keys) go too, and those of messages still in the log stay.

use std::time::{Duration, SystemTime};

use super::{message, open};
use crate::events::retention::{self, Retention};

#[tokio::test]
async fn descriptors_of_messages_the_byte_cap_trimmed_go_and_the_others_stay() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir);
    let media = log.media().clone();
    media.put_inbound("quiet", "1@s", "q1", "{}".into()).await.unwrap();
    log.append(vec![message("quiet", "1@s", "q1", "kept")]).await.unwrap();
    let per_event = log.bytes();
    for i in 1..=200 {
        media
            .put_inbound("flooded", "9@s", &format!("f{i}"), "{}".into())
            .await
            .unwrap();
    }
    let flood: Vec<_> = (1..=200)
        .map(|i| message("flooded", "9@s", &format!("f{i}"), "unconsumed"))
        .collect();
    log.append(flood).await.unwrap();

    let retention = Retention {
        max_age: Duration::from_secs(3600),
        max_bytes: per_event * 50,
        every: Duration::from_secs(60),
    };
    let trimmed = retention::pass(&log, retention).await.unwrap();
    assert!(trimmed >= 150, "trimmed {trimmed}");
    let kept = |id: &'static str| {
        let media = media.clone();
        let session = if id.starts_with('q') {
            ("quiet", "1@s")
        } else {
            ("flooded", "9@s")
        };
        async move { media.inbound(session.0, session.1, id).await.unwrap().is_some() }
    };
    assert!(kept("f1").await, "a descriptor just kept is never taken for gone");

    // Past the grace, as the next passes see it.
    let later = SystemTime::now() + Duration::from_secs(600);
    let forgotten = retention::forget_trimmed_media(&log, later).await.unwrap();
    assert_eq!(forgotten, trimmed, "one descriptor per trimmed message");
    assert!(
        !kept("f1").await && !kept("f100").await,
        "trimmed messages' descriptors go"
    );
    assert!(kept("f200").await, "the newest message is still in the log");
    assert!(kept("q1").await, "the quiet session lost nothing");
    assert_eq!(retention::forget_trimmed_media(&log, later).await.unwrap(), 0);
}
