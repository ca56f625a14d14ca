//! A log written by an earlier version: its outbound table gains the columns that
//! name a message's campaign item, its daily-cap record moves to its new table,
//! and a message accepted before (whose row does not name its item) is still
//! followed by its item.

use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection};

use super::campaigns::{accept, new_campaign};
use super::open;
use crate::events::{
    campaign::DAY_MS,
    outbound::{MessageStatus, Update},
    Body, Filter, EVENTS_FILE,
};

/// The outbound table and the daily-cap record as the version before wrote them.
const EARLIER: &str = "
CREATE TABLE outbound (
    n            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    client_id    TEXT,
    chat         TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       INTEGER NOT NULL,
    first_status INTEGER,
    error_code   INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    accepted_ms  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE campaign_sends (session_id TEXT NOT NULL, at_ms INTEGER NOT NULL, new_contact INTEGER NOT NULL);
CREATE INDEX campaign_sends_by_session ON campaign_sends (session_id, new_contact, at_ms);
";

#[tokio::test]
async fn a_log_from_the_version_before_keeps_its_daily_cap_count_and_follows_its_items() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EVENTS_FILE);
    let earlier = Connection::open(&path).unwrap();
    earlier.execute_batch(EARLIER).unwrap();
    let an_hour_ago = crate::store::unix_ms(SystemTime::now()) as i64 - 3_600_000;
    for at in [an_hour_ago, an_hour_ago - DAY_MS] {
        earlier
            .execute(
                "INSERT INTO campaign_sends (session_id, at_ms, new_contact) VALUES ('s', ?1, 1)",
                [at],
            )
            .unwrap();
    }
    drop(earlier);

    let log = open(&dir);
    log.create_campaign(new_campaign(2)).await.unwrap();
    log.accept(accept(0)).await.unwrap();
    log.accept(accept(1)).await.unwrap();
    // M0 as the version before accepted it: its row names no item.
    let side = Connection::open(&path).unwrap();
    side.busy_timeout(Duration::from_secs(10)).unwrap();
    let unnamed = side
        .execute(
            "UPDATE outbound SET campaign = NULL, item_seq = NULL, campaign_id = NULL, item_id = NULL WHERE message_id = ?1",
            params!["M0"],
        )
        .unwrap();
    assert_eq!(unnamed, 1);

    for id in ["M0", "M1"] {
        log.mark_sent("s", id).await.unwrap();
        log.update_detached(Update::to("s", id, MessageStatus::ServerAck));
    }
    // A later job of the writer, awaited: the acks queued before it committed.
    log.forget("s", "none").await.unwrap();
    let day_ago = SystemTime::now() - Duration::from_millis(DAY_MS as u64);
    let (sends, oldest) = log.campaign_sends("s", true, day_ago).await.unwrap();
    assert_eq!(
        sends, 3,
        "the send an hour ago and the two now; not the one a day before"
    );
    assert!(oldest.is_some_and(|t| t < SystemTime::now() - Duration::from_secs(3_000)));

    let row = log.campaign("c").await.unwrap().unwrap();
    assert_eq!((row.counts.server_ack, row.counts.pending), (2, 0), "{row:?}");
    let events = log.page(0, &Filter::default(), 100).await.unwrap();
    let acks: Vec<(String, String, String)> = events
        .iter()
        .filter_map(|event| match &event.body {
            Some(Body::Outbound(u)) if u.status == MessageStatus::ServerAck as i32 => {
                Some((u.message_id.clone(), u.campaign_id.clone(), u.item_id.clone()))
            }
            _ => None,
        })
        .collect();
    let expected = [("M0", "c", "i0"), ("M1", "c", "i1")].map(|(m, c, i)| (m.into(), c.into(), i.into()));
    assert_eq!(acks, expected);
}
