//! The translation of whatsapp-rust events into `BackendEvent`s for one connection,
//! as plain synchronous code: which events count, the QR numbering, the post-pairing
//! 515 (which the library does not report), "the connection never came up", and a
//! socket's end held back (`pending_loss`) while the connection task waits briefly
//! for the failure that explains it: whatsapp-rust ends the connection of a
//! `<failure>` (405, 401, 402...) before it dispatches the failure's event.

use std::time::{Duration, SystemTime};

use whatsapp_rust::{
    types::events::{ConnectFailure, ConnectFailureReason, Event},
    Jid,
};

use crate::backend::{BackendEvent, Disconnect, Identity, QrCode};

/// QR codes in one batch. WhatsApp sends 6 refs per pairing connection (the first
/// code valid 60 s, the next ones 20 s); the library emits one `PairingQrCode` per ref
/// but does not say how many refs there are, so the count is WhatsApp's usual batch.
pub const QR_BATCH: u32 = 6;

/// Who the client is, read from its device store when an event needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnDevice {
    /// The device JID (`15551234567:12@s.whatsapp.net`), once paired.
    pub jid: Option<Jid>,
    /// The account's display name ("" until known).
    pub push_name: String,
}

/// How a connection's run loop ended, as far as the session needs to know.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Its end was already reported by an event.
    Reported,
    /// Report these, in order.
    Report(Vec<BackendEvent>),
    /// It never came up: find out why and report `ConnectFailed`.
    NeverUp,
}

/// The per-connection translation state.
#[derive(Debug, Default)]
pub struct EventMapper {
    /// Whether the store already held a paired device when the connection started.
    linked_at_start: bool,
    /// QR codes shown on this connection so far.
    qr_shown: u32,
    /// Whether pair-success was reported.
    paired: bool,
    /// Whether the connection came online.
    connected: bool,
    /// Whether the connection's end was reported; nothing is reported after it.
    ended: bool,
    /// The last non-fatal trouble the server reported, for the end-of-run cause.
    last_trouble: Option<String>,
    /// The socket ended (this cause) and no verdict explained it yet.
    pending_loss: Option<String>,
    /// Whether `--wa-version` pins the version (a 405 then stops the session).
    version_pinned: bool,
}

impl EventMapper {
    /// A mapper for a connection on a store that does (or does not) hold a device.
    pub fn new(linked_at_start: bool) -> Self {
        Self {
            linked_at_start,
            ..Self::default()
        }
    }

    /// The same, for a version pinned by `--wa-version` (or not).
    pub fn version_pinned(mut self, pinned: bool) -> Self {
        self.version_pinned = pinned;
        self
    }

    /// Whether the connection's end was reported.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the connection showed a sign of life: a code, pair-success, online,
    /// or a verdict from the server.
    pub fn is_up(&self) -> bool {
        self.qr_shown > 0 || self.paired || self.connected || self.ended || self.pending_loss.is_some()
    }

    /// Whether the socket ended and its explanation is still awaited.
    pub fn has_pending_loss(&self) -> bool {
        !self.ended && self.pending_loss.is_some()
    }

    /// No explanation came in time: the socket's end, as a lost connection.
    pub fn take_pending_loss(&mut self) -> Option<BackendEvent> {
        let cause = self.pending_loss.take()?;
        if self.ended {
            return None;
        }
        self.end_with(Disconnect::ConnectionLost(cause))
    }

    /// Translates one library event; `device` is read only for the events that
    /// need it, `now` dates a ban's end.
    pub fn on_event(
        &mut self,
        event: &Event,
        device: impl FnOnce() -> OwnDevice,
        now: SystemTime,
    ) -> Option<BackendEvent> {
        if self.ended {
            return None;
        }
        match event {
            Event::PairingQrCode(qr) => {
                self.qr_shown += 1;
                Some(BackendEvent::Qr(QrCode {
                    code: qr.code.clone(),
                    ttl: qr.timeout,
                    index: self.qr_shown,
                    count: QR_BATCH.max(self.qr_shown),
                }))
            }
            Event::PairingQrCodesExhausted(_) => self.end(BackendEvent::QrExhausted),
            Event::PairSuccess(success) if !self.paired => {
                self.paired = true;
                Some(pair_success(&success.id))
            }
            Event::PairError(error) => {
                self.last_trouble = Some(format!("pairing failed: {}", error.error));
                None
            }
            Event::Connected(_) => {
                self.connected = true;
                Some(BackendEvent::Connected(identity(&device())))
            }
            Event::Disconnected(d) => {
                // Held: a `<failure>`'s own event may follow (see the module doc).
                self.pending_loss.get_or_insert_with(|| d.reason.to_string());
                None
            }
            Event::LoggedOut(_) => self.end_with(Disconnect::LoggedOut),
            Event::StreamReplaced(_) => self.end_with(Disconnect::Replaced),
            Event::ClientOutdated(_) => self.end_with(Disconnect::ClientOutdated {
                pinned: self.version_pinned,
            }),
            Event::TemporaryBan(ban) => {
                let length = ban.expire.to_std().unwrap_or(Duration::ZERO);
                self.end_with(Disconnect::TemporaryBan {
                    ends_at: Some(now + length),
                    code: u32::try_from(ban.code.code()).unwrap_or(0),
                })
            }
            Event::ConnectFailure(failure) => self.end_with(connect_failure(failure, self.version_pinned)),
            Event::StreamError(error) => {
                self.last_trouble = Some(format!("stream error {}", error.code));
                None
            }
            _ => None,
        }
    }

    /// The run loop returned on its own (not closed by us): what that means.
    /// `device` is the store's device now.
    pub fn on_run_ended(&mut self, device: &OwnDevice) -> RunEnd {
        if let Some(lost) = self.take_pending_loss() {
            return RunEnd::Report(vec![lost]);
        }
        if self.ended {
            return RunEnd::Reported;
        }
        self.ended = true;
        let newly_paired = !self.linked_at_start && device.jid.is_some();
        if (self.paired || newly_paired) && !self.connected {
            // The 515 "restart required" after pair-success: with auto-reconnect off
            // the library just ends its loop, without an event (and it may end it
            // before its pair-success event is dispatched).
            let mut report = Vec::new();
            if !self.paired {
                self.paired = true;
                report.extend(device.jid.as_ref().map(pair_success));
            }
            report.push(BackendEvent::Disconnected(Disconnect::RestartRequired));
            return RunEnd::Report(report);
        }
        if self.connected || self.qr_shown > 0 {
            let cause = self
                .last_trouble
                .clone()
                .unwrap_or_else(|| "whatsapp closed the connection".into());
            return RunEnd::Report(vec![BackendEvent::Disconnected(Disconnect::ConnectionLost(cause))]);
        }
        RunEnd::NeverUp
    }

    /// The connection is being closed by us to be opened again (`cause`): the lost
    /// connection to report, unless its end was reported already.
    pub fn give_up(&mut self, cause: &str) -> Option<BackendEvent> {
        if self.ended {
            return None;
        }
        self.end_with(Disconnect::ConnectionLost(cause.to_owned()))
    }

    /// The non-fatal trouble seen, if any (names a failure to come up).
    pub fn last_trouble(&self) -> Option<&str> {
        self.last_trouble.as_deref()
    }

    fn end(&mut self, event: BackendEvent) -> Option<BackendEvent> {
        self.ended = true;
        Some(event)
    }

    fn end_with(&mut self, why: Disconnect) -> Option<BackendEvent> {
        self.end(BackendEvent::Disconnected(why))
    }
}

/// Digits of a JID's user part (`15551234567:12@s.whatsapp.net` → `15551234567`).
pub fn phone_of(jid: &Jid) -> String {
    jid.user.chars().filter(char::is_ascii_digit).collect()
}

fn pair_success(jid: &Jid) -> BackendEvent {
    BackendEvent::PairSuccess {
        phone_number: phone_of(jid),
        jid: jid.to_string(),
    }
}

fn identity(device: &OwnDevice) -> Identity {
    Identity {
        phone_number: device.jid.as_ref().map(phone_of).unwrap_or_default(),
        jid: device.jid.as_ref().map(ToString::to_string).unwrap_or_default(),
        push_name: device.push_name.clone(),
        connected_at: None,
    }
}

/// A `<failure>` at login, by its reason code.
fn connect_failure(failure: &ConnectFailure, version_pinned: bool) -> Disconnect {
    match failure.reason {
        reason if reason.is_logged_out() => Disconnect::LoggedOut,
        ConnectFailureReason::ClientOutdated => Disconnect::ClientOutdated { pinned: version_pinned },
        ConnectFailureReason::TempBanned => Disconnect::TemporaryBan { ends_at: None, code: 0 },
        reason => {
            let detail = failure.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            Disconnect::ConnectionLost(format!("whatsapp refused the login ({}){detail}", reason.code()))
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
