//! The emulated server's side of one connection, start to end: a batch of QR codes
//! on WhatsApp's schedule, pair-success then the 515 restart, or (with stored
//! credentials) online until closed, dropped, unlinked, replaced or rate-limited.

use std::{collections::HashMap, time::Duration};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{keys, Device, Emulator, EmulatorConfig};
use crate::{
    backend::{
        BackendError, BackendEvent, Disconnect, EventSink, Identity, Outbound, PairingCodeIssued, QrCode, SentMessage,
    },
    domain::SessionId,
    events::{outbound::HealthSignal, Inbox},
};

/// What the phone, the server or the session does to a connection.
pub enum Control {
    /// The session closes it (no logout).
    Close,
    /// The phone scanned a code or entered a pairing code.
    Scanned(Identity),
    /// Socket loss.
    Drop,
    /// The phone unlinked the device (401).
    RemoteLogout,
    /// Another client took the credentials (440).
    Replace,
    /// WhatsApp rate-limits the connection (stream error 429), then closes it.
    RateLimit,
    /// The session logs out.
    Logout(oneshot::Sender<()>),
    /// The server acks these sends now (its held acks were released).
    Acks(Vec<String>),
    /// The server pushes news of the account's health (the reach-out timelock).
    Health(HealthSignal),
    /// The server bans the account for a while: the connection fails with it.
    Ban {
        /// WhatsApp's reason (101-106).
        code: u32,
        /// When the ban ends.
        until: std::time::SystemTime,
    },
    /// The session sends a message.
    Send {
        /// What to send, to whom.
        message: Outbound,
        /// Answered with the message id, or refused when the connection is not online.
        reply: oneshot::Sender<Result<SentMessage, BackendError>>,
    },
    /// The session asks which user chats are on WhatsApp (a usync contact check).
    Registered {
        /// `digits@s.whatsapp.net` each.
        chats: Vec<String>,
        /// Answered with each chat's registration, or refused when not online.
        reply: oneshot::Sender<Result<HashMap<String, bool>, BackendError>>,
    },
    /// The session asks for a pairing code.
    PairingCode {
        /// Digits only.
        phone: String,
        /// Answered once the socket is open (requests made while it opens wait).
        reply: oneshot::Sender<Result<PairingCodeIssued, BackendError>>,
    },
}

/// Whether a connection goes on after a control.
enum Flow {
    Continue,
    End,
}

/// Waits until `deadline` for a control; None when the deadline passed first.
async fn next_control(deadline: Instant, rx: &mut mpsc::Receiver<Control>) -> Option<Control> {
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => None,
        control = rx.recv() => Some(control.unwrap_or(Control::Close)),
    }
}

fn not_online() -> BackendError {
    BackendError::Refused("the connection is not online".into())
}

impl Emulator {
    /// Runs one connection to its end.
    pub(super) async fn serve(
        self,
        session: SessionId,
        control: mpsc::Sender<Control>,
        mut rx: mpsc::Receiver<Control>,
        sink: EventSink,
        inbox: Inbox,
    ) {
        let (number, refuse) = self.register(&session, control).await;
        let config = self.config();
        let opened = Instant::now() + config.step_delay;
        if refuse {
            if next_control(opened, &mut rx).await.is_none() {
                sink(BackendEvent::ConnectFailed(
                    "connection refused (emulated FailConnects)".into(),
                ));
            }
            return self.deregister(&session, number).await;
        }
        // The socket opens; controls that come meanwhile are answered as they would
        // be, pairing-code requests once it is open.
        let mut pending = Vec::new();
        let connected = loop {
            match next_control(opened, &mut rx).await {
                None => break true,
                Some(Control::PairingCode { phone, reply }) => pending.push((phone, reply)),
                Some(control) => {
                    if let Flow::End = self.early(control, &sink) {
                        break false;
                    }
                }
            }
        };
        let ban = match connected {
            true => self.ban_in_force(&session).await,
            false => None,
        };
        if let (Some((code, until)), Some(_)) = (ban, self.read_device(&session)) {
            // A banned account's login fails with the ban, until it ends.
            banned(&sink, code, until);
        } else if connected {
            match self.read_device(&session) {
                Some(device) => self.online(&session, device, &mut rx, &sink, &inbox).await,
                None => self.pair(&session, number, &config, pending, &mut rx, &sink).await,
            }
        }
        self.deregister(&session, number).await;
    }

    /// A control before the socket is open.
    fn early(&self, control: Control, sink: &EventSink) -> Flow {
        match control {
            Control::Close => Flow::End,
            Control::Drop => {
                sink(BackendEvent::ConnectFailed("connection reset (emulated)".into()));
                Flow::End
            }
            Control::Logout(done) => {
                let _ = done.send(());
                Flow::End
            }
            Control::Send { reply, .. } => {
                let _ = reply.send(Err(not_online()));
                Flow::Continue
            }
            Control::Registered { reply, .. } => {
                let _ = reply.send(Err(not_online()));
                Flow::Continue
            }
            Control::PairingCode { reply, .. } => {
                let _ = reply.send(Err(BackendError::Refused(
                    "the connection is still opening: retry".into(),
                )));
                Flow::Continue
            }
            Control::Scanned(_)
            | Control::RemoteLogout
            | Control::Replace
            | Control::RateLimit
            | Control::Acks(_)
            | Control::Health(_)
            | Control::Ban { .. } => Flow::Continue,
        }
    }

    async fn pair(
        &self,
        session: &SessionId,
        number: u64,
        config: &EmulatorConfig,
        pending: Vec<(String, oneshot::Sender<Result<PairingCodeIssued, BackendError>>)>,
        rx: &mut mpsc::Receiver<Control>,
        sink: &EventSink,
    ) {
        let keys = keys::DeviceKeys::random();
        let batch_ends = Instant::now() + config.first_ttl + config.next_ttl * config.qr_count.saturating_sub(1);
        for (phone, reply) in pending {
            let issued = self.issue_pairing_code(session, number, phone, batch_ends).await;
            let _ = reply.send(Ok(issued));
        }
        for index in 1..=config.qr_count {
            let ttl = if index == 1 { config.first_ttl } else { config.next_ttl };
            let code = keys.qr_code();
            let expires = Instant::now() + ttl;
            self.show(session, number, &code, expires).await;
            let count = config.qr_count;
            sink(BackendEvent::Qr(QrCode {
                code,
                ttl,
                index,
                count,
            }));
            while let Some(control) = next_control(expires, rx).await {
                let flow = match control {
                    Control::Scanned(identity) => {
                        self.complete_pairing(session, identity, config, rx, sink).await;
                        Flow::End
                    }
                    Control::PairingCode { phone, reply } => {
                        let issued = self.issue_pairing_code(session, number, phone, batch_ends).await;
                        let _ = reply.send(Ok(issued));
                        Flow::Continue
                    }
                    Control::Drop => {
                        let lost = Disconnect::ConnectionLost("socket closed (emulated drop)".into());
                        sink(BackendEvent::Disconnected(lost));
                        Flow::End
                    }
                    other => self.early(other, sink),
                };
                if let Flow::End = flow {
                    return;
                }
            }
        }
        sink(BackendEvent::QrExhausted);
    }

    async fn complete_pairing(
        &self,
        session: &SessionId,
        identity: Identity,
        config: &EmulatorConfig,
        rx: &mut mpsc::Receiver<Control>,
        sink: &EventSink,
    ) {
        if let Err(e) = self.store_device(session, &identity).await {
            let cause = format!("the emulated device could not store its credentials: {e}");
            return sink(BackendEvent::Disconnected(Disconnect::ConnectionLost(cause)));
        }
        sink(BackendEvent::PairSuccess {
            phone_number: identity.phone_number,
            jid: identity.jid,
        });
        if let Some(Control::Close) = next_control(Instant::now() + config.step_delay, rx).await {
            return;
        }
        sink(BackendEvent::Disconnected(Disconnect::RestartRequired));
    }

    /// Online with stored credentials: hands what the server holds to the inbox
    /// (a batch at a time, controls in between) and follows the controls.
    async fn online(
        &self,
        session: &SessionId,
        device: Device,
        rx: &mut mpsc::Receiver<Control>,
        sink: &EventSink,
        inbox: &Inbox,
    ) {
        sink(BackendEvent::Connected(Identity {
            phone_number: device.phone_number,
            jid: device.jid,
            push_name: device.push_name,
            connected_at: None,
        }));
        self.push_health(session, inbox).await;
        let online_at_ms = crate::store::unix_ms(std::time::SystemTime::now());
        let wake = self.inbound_wake(session).await;
        loop {
            let more = self.deliver_batch(session, inbox, online_at_ms).await;
            let control = if more {
                match rx.try_recv() {
                    Ok(control) => Some(control),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => Some(Control::Close),
                }
            } else {
                tokio::select! {
                    control = rx.recv() => Some(control.unwrap_or(Control::Close)),
                    () = wake.notified() => None,
                }
            };
            if let Some(control) = control {
                if let Flow::End = self.online_control(session, control, sink, inbox).await {
                    return;
                }
            }
        }
    }

    /// A control while online.
    async fn online_control(&self, session: &SessionId, control: Control, sink: &EventSink, inbox: &Inbox) -> Flow {
        match control {
            Control::Close => return Flow::End,
            Control::Drop => {
                let lost = Disconnect::ConnectionLost("socket closed (emulated drop)".into());
                sink(BackendEvent::Disconnected(lost));
                return Flow::End;
            }
            Control::RemoteLogout => {
                self.remove_device(session).await;
                sink(BackendEvent::Disconnected(Disconnect::LoggedOut));
                return Flow::End;
            }
            Control::Replace => {
                sink(BackendEvent::Disconnected(Disconnect::Replaced));
                return Flow::End;
            }
            Control::RateLimit => {
                let pause = self.config().rate_limit_pause;
                inbox.health(HealthSignal::RateLimited {
                    until: std::time::SystemTime::now() + pause,
                });
                let lost = Disconnect::ConnectionLost("stream error 429 (emulated rate limit)".into());
                sink(BackendEvent::Disconnected(lost));
                return Flow::End;
            }
            Control::Logout(done) => {
                self.remove_device(session).await;
                let _ = done.send(());
                return Flow::End;
            }
            Control::Send { message, reply } => {
                let _ = reply.send(self.take_sent(session, message, inbox).await);
            }
            Control::Registered { chats, reply } => {
                let _ = reply.send(self.check_registered(chats, inbox));
            }
            Control::Acks(ids) => {
                for id in ids {
                    inbox.server_ack(id, None);
                }
            }
            Control::Health(signal) => inbox.health(signal),
            Control::Ban { code, until } => {
                banned(sink, code, until);
                return Flow::End;
            }
            Control::PairingCode { reply, .. } => {
                let _ = reply.send(Err(BackendError::Refused("the device is already linked".into())));
            }
            Control::Scanned(_) => {}
        }
        Flow::Continue
    }
}

/// How long an emulated pairing code stays valid at most (WhatsApp: about 160 s).
pub const PAIRING_CODE_TTL: Duration = Duration::from_secs(180);

/// The connection fails with the ban (`<failure reason=402>`).
fn banned(sink: &EventSink, code: u32, until: std::time::SystemTime) {
    sink(BackendEvent::Disconnected(Disconnect::TemporaryBan {
        ends_at: Some(until),
        code,
    }));
}
