//! What the emulated WhatsApp does to a misbehaving account
//! (`EmulatorService.SetAccountHealth`): new chats barred for a while (the server
//! pushes the timelock to the online device, and nacks sends to chats the account
//! never messaged with 463), or a temporary ban (the online connection fails with
//! it, and every connect is refused with it until it ends), as WhatsApp does.

use std::time::{Duration, SystemTime};

use super::{server::Control, Emulator};
use crate::{
    domain::SessionId,
    events::{outbound::HealthSignal, Inbox},
};

/// WhatsApp's first ban reason: messages to people who do not have the number.
const DEFAULT_BAN_REASON: u32 = 101;

impl Emulator {
    /// Bars new chats for `restricted_for` and bans the account for `ban_for` (zero
    /// lifts either), telling the online device at once.
    pub async fn set_account_health(
        &self,
        session: &SessionId,
        restricted_for: Duration,
        ban_reason: u32,
        ban_for: Duration,
    ) {
        let now = SystemTime::now();
        let restricted_until = (!restricted_for.is_zero()).then(|| now + restricted_for);
        let ban_code = if ban_reason == 0 {
            DEFAULT_BAN_REASON
        } else {
            ban_reason
        };
        let ban = (!ban_for.is_zero()).then(|| (ban_code, now + ban_for));
        let mut accounts = self.inner.accounts.lock().await;
        let account = accounts.entry(session.clone()).or_default();
        account.restricted_until = restricted_until;
        account.banned = ban;
        if let Some(live) = &account.live {
            let _ = live.control.try_send(Control::Health(HealthSignal::Reachout {
                until: restricted_until,
            }));
            if let Some((code, until)) = ban {
                let _ = live.control.try_send(Control::Ban { code, until });
            }
        }
    }

    /// Whether the account may not start new chats now.
    pub(super) async fn new_chats_barred(&self, session: &SessionId) -> bool {
        let accounts = self.inner.accounts.lock().await;
        let until = accounts.get(session).and_then(|a| a.restricted_until);
        until.is_some_and(|until| until > SystemTime::now())
    }

    /// The ban in force on the account, if any: its reason and end.
    pub(super) async fn ban_in_force(&self, session: &SessionId) -> Option<(u32, SystemTime)> {
        let accounts = self.inner.accounts.lock().await;
        let ban = accounts.get(session).and_then(|a| a.banned)?;
        (ban.1 > SystemTime::now()).then_some(ban)
    }

    /// A device coming online hears the timelock in force, as WhatsApp pushes it.
    pub(super) async fn push_health(&self, session: &SessionId, inbox: &Inbox) {
        let accounts = self.inner.accounts.lock().await;
        let until = accounts.get(session).and_then(|a| a.restricted_until);
        if until.is_some_and(|until| until > SystemTime::now()) {
            inbox.health(HealthSignal::Reachout { until });
        }
    }
}
