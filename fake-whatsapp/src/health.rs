//! What WhatsApp holds against an account, as plain state without I/O: new
//! chats barred until a time (the reach-out timelock: a message to a chat the
//! account never messaged is nacked 463), or a temporary ban with its reason
//! until a time; the chats each account messaged; and the stanzas that say so
//! (the timelock notification and the timelock query's answer, as WhatsApp Web
//! receives them, and `<failure reason="402">`). The world drives it.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use wacore_binary::{builder::NodeBuilder, Node};

use crate::stanza::{self, SERVER};

/// The nack of a message to a new chat while the timelock is on.
pub const NEW_CHAT_BARRED: u32 = 463;

/// WhatsApp's first ban reason (messages to people who do not have the number):
/// the reason of a ban ordered without one.
pub const DEFAULT_BAN_REASON: u32 = 101;

/// The persisted query whatsapp-rust's `mex().fetch_reachout_timelock()` sends.
pub const TIMELOCK_QUERY_ID: &str = wacore::iq::mex_operations::fetch_reachout_timelock::DOC_ID;

/// The `op_name` of the notification WhatsApp pushes when the timelock changes.
pub const TIMELOCK_UPDATE_OP: &str = "NotificationUserReachoutTimelockUpdate";

/// The enforcement WhatsApp reports for a timelock on linked devices.
const ENFORCEMENT: &str = "RESTRICT_ALL_COMPANIONS";

/// A temporary ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// WhatsApp's reason (101-106).
    pub code: u32,
    /// When it ends.
    pub until: SystemTime,
}

/// One account's restrictions (each over once its time has passed).
#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    reachout_until: Option<SystemTime>,
    ban: Option<Ban>,
}

/// Every account's restrictions, and the chats each one messaged.
#[derive(Debug, Default)]
pub struct Health {
    /// By phone number.
    accounts: HashMap<String, Standing>,
    /// `(phone, chat)` for every chat an account's devices messaged and the
    /// server took.
    messaged: HashSet<(String, String)>,
}

impl Health {
    /// Bars new chats for `reachout_for` and bans for `ban_for` with `ban_reason`
    /// (0: the default reason), from `now`; a zero duration lifts either.
    pub fn set(&mut self, phone: &str, reachout_for: Duration, ban_reason: u32, ban_for: Duration, now: SystemTime) {
        let code = if ban_reason == 0 {
            DEFAULT_BAN_REASON
        } else {
            ban_reason
        };
        let standing = Standing {
            reachout_until: (!reachout_for.is_zero()).then(|| now + reachout_for),
            ban: (!ban_for.is_zero()).then(|| Ban {
                code,
                until: now + ban_for,
            }),
        };
        self.accounts.insert(phone.to_owned(), standing);
    }

    /// When the timelock on `phone` ends, if it is on at `now`.
    pub fn reachout_until(&self, phone: &str, now: SystemTime) -> Option<SystemTime> {
        let until = self.accounts.get(phone)?.reachout_until?;
        (until > now).then_some(until)
    }

    /// The ban on `phone` at `now`, if any.
    pub fn ban(&self, phone: &str, now: SystemTime) -> Option<Ban> {
        let ban = self.accounts.get(phone)?.ban?;
        (ban.until > now).then_some(ban)
    }

    /// A message of `phone`'s device to `chat`: whether it is refused (463) as a
    /// new chat under the timelock. One the server takes makes `chat` known.
    pub fn admit(&mut self, phone: &str, chat: &str, now: SystemTime) -> Result<(), u32> {
        let key = (phone.to_owned(), chat.to_owned());
        if self.reachout_until(phone, now).is_some() && !self.messaged.contains(&key) {
            return Err(NEW_CHAT_BARRED);
        }
        self.messaged.insert(key);
        Ok(())
    }
}

/// Whole seconds from `now` to `until`, rounded up (a ban's `expire`: a client
/// waiting that long finds the ban over).
pub fn seconds_left(until: SystemTime, now: SystemTime) -> u64 {
    let left = until.duration_since(now).unwrap_or_default();
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// `<failure reason="402" code=CODE expire=SECONDS/>`: the account is banned.
pub fn ban_failure(ban: Ban, now: SystemTime) -> Node {
    NodeBuilder::new("failure")
        .attr("reason", "402")
        .attr("code", ban.code.to_string())
        .attr("expire", seconds_left(ban.until, now).to_string())
        .build()
}

/// The timelock's state as WhatsApp's GraphQL states it: active with its end
/// (unix seconds, as a string), or inactive.
fn timelock_json(until: Option<SystemTime>) -> String {
    match until {
        Some(until) => {
            let ends = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            format!(r#"{{"is_active":true,"time_enforcement_ends":"{ends}","enforcement_type":"{ENFORCEMENT}"}}"#)
        }
        None => r#"{"is_active":false}"#.to_owned(),
    }
}

/// `<notification type="mex"><update op_name="NotificationUserReachoutTimelockUpdate">`
/// with the timelock as JSON: what WhatsApp pushes when it changes.
pub fn timelock_notification(until: Option<SystemTime>) -> Node {
    let json = format!(
        r#"{{"data":{{"xwa2_notify_account_reachout_timelock":{}}}}}"#,
        timelock_json(until)
    );
    NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", "mex")
        .attr("id", stanza::next_id())
        .attr("t", stanza::now().to_string())
        .children([NodeBuilder::new("update")
            .attr("op_name", TIMELOCK_UPDATE_OP)
            .bytes(json.into_bytes())
            .build()])
        .build()
}

/// The answer to the timelock query `id`: `<iq type="result"><result>{json}</result>`.
pub fn timelock_answer(id: &str, until: Option<SystemTime>) -> Node {
    let json = format!(
        r#"{{"data":{{"xwa2_fetch_account_reachout_timelock":{}}}}}"#,
        timelock_json(until)
    );
    let result = NodeBuilder::new("result").bytes(json.into_bytes()).build();
    stanza::iq_result(id, vec![result])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "15550001111";
    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn under_the_timelock_only_chats_the_account_messaged_before_are_admitted() {
        let mut health = Health::default();
        assert_eq!(health.admit(PHONE, "old@s.whatsapp.net", at(0)), Ok(()));
        health.set(PHONE, HOUR, 0, Duration::ZERO, at(10));
        assert_eq!(health.reachout_until(PHONE, at(11)), Some(at(3610)));
        assert_eq!(health.admit(PHONE, "old@s.whatsapp.net", at(11)), Ok(()));
        assert_eq!(health.admit(PHONE, "new@s.whatsapp.net", at(11)), Err(463));
        assert_eq!(
            health.admit(PHONE, "new@s.whatsapp.net", at(12)),
            Err(463),
            "a refusal teaches nothing"
        );
        assert_eq!(
            health.admit("15559999999", "new@s.whatsapp.net", at(12)),
            Ok(()),
            "per account"
        );

        assert_eq!(health.reachout_until(PHONE, at(3610)), None, "over at its end");
        assert_eq!(health.admit(PHONE, "new@s.whatsapp.net", at(3610)), Ok(()));
    }

    #[test]
    fn a_zero_duration_lifts_the_timelock_and_the_ban() {
        let mut health = Health::default();
        health.set(PHONE, HOUR, 104, HOUR, at(0));
        assert_eq!(
            health.ban(PHONE, at(1)),
            Some(Ban {
                code: 104,
                until: at(3600)
            })
        );
        health.set(PHONE, Duration::ZERO, 0, Duration::ZERO, at(2));
        assert_eq!(health.ban(PHONE, at(3)), None);
        assert_eq!(health.reachout_until(PHONE, at(3)), None);
        assert_eq!(health.admit(PHONE, "new@s.whatsapp.net", at(3)), Ok(()));
    }

    #[test]
    fn a_ban_without_a_reason_is_the_first_and_ends_on_time() {
        let mut health = Health::default();
        health.set(PHONE, Duration::ZERO, 0, Duration::from_secs(3), at(0));
        assert_eq!(health.ban(PHONE, at(2)).map(|b| b.code), Some(DEFAULT_BAN_REASON));
        assert_eq!(health.ban(PHONE, at(3)), None);
    }

    #[test]
    fn a_bans_expire_rounds_up_so_a_client_waiting_it_out_finds_it_over() {
        let now = at(100);
        assert_eq!(seconds_left(now + Duration::from_millis(2_100), now), 3);
        assert_eq!(seconds_left(now + Duration::from_secs(3), now), 3);
        assert_eq!(seconds_left(now, now + Duration::from_secs(1)), 0);
        let failure = ban_failure(
            Ban {
                code: 104,
                until: at(160),
            },
            now,
        );
        let attrs = |key| stanza::attr(&failure, key);
        assert_eq!(
            (attrs("reason"), attrs("code"), attrs("expire")),
            (Some("402".into()), Some("104".into()), Some("60".into()))
        );
    }

    #[test]
    fn the_timelock_reads_as_whatsapp_states_it() {
        assert_eq!(
            timelock_json(Some(at(1_786_218_427))),
            r#"{"is_active":true,"time_enforcement_ends":"1786218427","enforcement_type":"RESTRICT_ALL_COMPANIONS"}"#
        );
        assert_eq!(timelock_json(None), r#"{"is_active":false}"#);
    }
}
