//! What WhatsApp tells the real backend about the account's reach-out timelock
//! (new chats barred; the cause of 463 nacks), reported to the session's inbox as
//! `HealthSignal::Reachout`: the timelock WhatsApp pushes when it changes (a
//! `NotificationUserReachoutTimelockUpdate` mex notification), and, after a 463
//! nack, the answer to the library's own query (`fetch_reachout_timelock`), asked
//! off the event loop, bounded, and at most once at a time per connection.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use serde_json::Value;
use tokio::{task::JoinHandle, time::timeout};
use tracing::{debug, warn, Instrument, Span};
use whatsapp_rust::{types::events::MexNotification, Client};

use crate::events::{outbound::HealthSignal, Inbox};

/// The nack of a message to a chat the account may not start (the timelock).
pub const NEW_CHAT_BARRED: u32 = 463;

/// How long the timelock query may take (the library's own IQ bound is 75 s).
const QUERY_BOUND: Duration = Duration::from_secs(20);

/// The mex notification WhatsApp pushes when the timelock changes.
const TIMELOCK_UPDATE_OP: &str = "NotificationUserReachoutTimelockUpdate";

/// The field of its payload that holds the timelock.
const TIMELOCK_UPDATE_FIELD: &str = "xwa2_notify_account_reachout_timelock";

/// What a timelock state means for the account: new chats barred until its end
/// (`time_enforcement_ends`, unix seconds), or not barred when it is inactive.
/// `None` when it cannot be read (active without an end): nothing to report.
pub fn reachout(is_active: Option<bool>, ends: Option<&str>) -> Option<HealthSignal> {
    if is_active != Some(true) {
        return Some(HealthSignal::Reachout { until: None });
    }
    let secs: u64 = ends?.trim().parse().ok().filter(|secs| *secs > 0)?;
    Some(HealthSignal::Reachout {
        until: Some(UNIX_EPOCH + Duration::from_secs(secs)),
    })
}

/// The timelock a mex notification pushes, if it is one (its payload holds it
/// under `data`, or bare).
pub fn pushed(notification: &MexNotification) -> Option<HealthSignal> {
    if notification.op_name != TIMELOCK_UPDATE_OP {
        return None;
    }
    let payload = &notification.payload;
    let lock = payload
        .get("data")
        .and_then(|data| data.get(TIMELOCK_UPDATE_FIELD))
        .or_else(|| payload.get(TIMELOCK_UPDATE_FIELD))?;
    let ends = lock.get("time_enforcement_ends").and_then(|ends| match ends {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    });
    let signal = reachout(lock.get("is_active").and_then(Value::as_bool), ends.as_deref());
    if signal.is_none() {
        warn!("whatsapp pushed a timelock without a readable end; ignored");
    }
    signal
}

/// The connection's timelock query: at most one in flight; aborted with the
/// connection.
#[derive(Debug, Default)]
pub struct TimelockQuery {
    /// The query running, or the last one.
    task: Option<JoinHandle<()>>,
}

impl TimelockQuery {
    /// Runs `query` in the background unless one is still running: whether it
    /// started.
    pub fn start(&mut self, query: impl Future<Output = ()> + Send + 'static) -> bool {
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            return false;
        }
        self.task = Some(tokio::spawn(query.instrument(Span::current())));
        true
    }

    /// After a 463: asks WhatsApp for the timelock (bounded) and reports it to
    /// `inbox`, unless a query is already under way.
    pub fn ask(&mut self, client: &Arc<Client>, inbox: &Inbox) {
        let started = self.start(fetch(client.clone(), inbox.clone()));
        debug!(started, "a 463 nack: asking whatsapp for the timelock");
    }
}

impl Drop for TimelockQuery {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Asks for the timelock, within `QUERY_BOUND`, and reports what it says.
async fn fetch(client: Arc<Client>, inbox: Inbox) {
    match timeout(QUERY_BOUND, client.mex().fetch_reachout_timelock()).await {
        Ok(Ok(lock)) => match reachout(lock.is_active, lock.time_enforcement_ends.as_deref()) {
            Some(signal) => inbox.health(signal),
            None => warn!("the timelock query answered without a readable end"),
        },
        Ok(Err(e)) => warn!(error = %e, "the timelock query failed"),
        Err(_) => warn!(bound = ?QUERY_BOUND, "the timelock query did not answer in time"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::sync::oneshot;

    use std::time::SystemTime;

    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn notification(op_name: &str, payload: Value) -> MexNotification {
        MexNotification::builder()
            .op_name(op_name.into())
            .payload(payload)
            .build()
    }

    #[test]
    fn an_active_timelock_bars_new_chats_until_its_end_and_an_inactive_one_lifts_the_bar() {
        let barred = reachout(Some(true), Some("1786218427"));
        assert_eq!(
            barred,
            Some(HealthSignal::Reachout {
                until: at(1_786_218_427)
            })
        );
        assert_eq!(
            reachout(Some(false), Some("1786218427")),
            Some(HealthSignal::Reachout { until: None })
        );
        assert_eq!(reachout(None, None), Some(HealthSignal::Reachout { until: None }));
        assert_eq!(reachout(Some(true), None), None, "active without an end: unreadable");
        assert_eq!(reachout(Some(true), Some("soon")), None);
        assert_eq!(reachout(Some(true), Some("0")), None);
    }

    #[test]
    fn the_pushed_timelock_is_read_as_whatsapp_sends_it_and_other_mex_notifications_are_not() {
        let lock = json!({"is_active": true, "time_enforcement_ends": "1786218427", "enforcement_type": "RESTRICT_ALL_COMPANIONS"});
        let wrapped = notification(
            TIMELOCK_UPDATE_OP,
            json!({"data": {TIMELOCK_UPDATE_FIELD: lock.clone()}}),
        );
        assert_eq!(
            pushed(&wrapped),
            Some(HealthSignal::Reachout {
                until: at(1_786_218_427)
            })
        );
        let bare = notification(TIMELOCK_UPDATE_OP, json!({TIMELOCK_UPDATE_FIELD: lock}));
        assert_eq!(
            pushed(&bare),
            Some(HealthSignal::Reachout {
                until: at(1_786_218_427)
            })
        );
        let numeric =
            json!({"data": {TIMELOCK_UPDATE_FIELD: {"is_active": true, "time_enforcement_ends": 1_786_218_427}}});
        assert_eq!(
            pushed(&notification(TIMELOCK_UPDATE_OP, numeric)),
            Some(HealthSignal::Reachout {
                until: at(1_786_218_427)
            })
        );
        let lifted = json!({"data": {TIMELOCK_UPDATE_FIELD: {"is_active": false}}});
        assert_eq!(
            pushed(&notification(TIMELOCK_UPDATE_OP, lifted)),
            Some(HealthSignal::Reachout { until: None })
        );

        let other = notification("NotificationNewChatMessagesCappingInfoUpdate", json!({"data": {}}));
        assert_eq!(pushed(&other), None);
        assert_eq!(pushed(&notification(TIMELOCK_UPDATE_OP, json!({"data": {}}))), None);
    }

    #[tokio::test]
    async fn one_timelock_query_at_a_time_and_the_next_once_it_is_over() {
        let mut query = TimelockQuery::default();
        let (finish, finished) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel::<()>();
        assert!(query.start(async move {
            let _ = finished.await;
            let _ = done_tx.send(());
        }));
        assert!(!query.start(async {}), "one in flight: no second");
        finish.send(()).unwrap();
        done.await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while !query.start(async {}) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a new query once the first is over");
    }

    #[tokio::test]
    async fn a_query_in_flight_ends_with_its_connection() {
        let (_keep, never) = oneshot::channel::<()>();
        let (dropped_tx, dropped) = oneshot::channel::<()>();
        struct Guard(Option<oneshot::Sender<()>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = self.0.take().map(|tx| tx.send(()));
            }
        }
        let mut query = TimelockQuery::default();
        let guard = Guard(Some(dropped_tx));
        query.start(async move {
            let _guard = guard;
            let _ = never.await;
        });
        drop(query);
        tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .expect("the query is aborted")
            .unwrap();
    }
}
