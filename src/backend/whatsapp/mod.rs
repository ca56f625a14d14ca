//! The real WhatsApp backend, on whatsapp-rust: one SQLite credential store per
//! session (`<data-dir>/sessions/<id>/whatsapp.db`), one client per connection with
//! auto-reconnect off (the session actor decides every reconnect, including the 515
//! after pairing), the library's events translated into `BackendEvent`s, and what
//! WhatsApp delivers (messages, receipts, its acks of what the session sent)
//! committed to the session's inbox; every kind of outbound message sent under the
//! daemon's own id (`send`); the reach-out timelock, pushed or asked for after a
//! 463 (`health`); a rate limit, stream error 429 (`rate_limit`); messages it
//! could not decrypt, their placeholders and what the phone sent again
//! (`recovered`); the WhatsApp Web version they announce, pinned or resolved
//! (`version`).

mod client;
mod commit_retry;
mod connection;
mod contacts;
pub mod events;
mod health;
#[cfg(feature = "fake-whatsapp")]
mod http;
mod inbound;
mod inbound_media;
mod media;
mod media_message;
mod pairing;
mod rate_limit;
mod reach;
mod recovered;
mod runtime;
mod send;
mod shared;
mod store;
pub mod version;

use std::time::Duration;

use tracing::info_span;

pub use self::version::WaVersions;
use self::{client::Dial, connection::WhatsappConnection, store::CredentialFiles};
use super::{Backend, BackendError, BoxFuture, Connection, EventSink};
use crate::{config::WhatsappUrl, domain::SessionId, events::Inbox, store::DataDir};

/// The WhatsApp Web version announced when none is pinned and none was resolved
/// yet (or the stored one is older).
pub const DEFAULT_WA_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);

/// The real WhatsApp; cheap to clone.
#[derive(Debug, Clone)]
pub struct WhatsappBackend {
    /// Where each session's store lives.
    data: DataDir,
    /// The version the clients announce and the websocket they dial.
    dial: Dial,
}

impl WhatsappBackend {
    /// A backend keeping stores under `data`, announcing `versions`, dialing `url`;
    /// a stream error 429 shows as a rate limit for `rate_limit_pause`.
    pub fn new(data: DataDir, versions: WaVersions, url: WhatsappUrl, rate_limit_pause: Duration) -> Self {
        Self {
            data,
            dial: Dial {
                versions,
                url,
                rate_limit_pause,
            },
        }
    }

    fn files(&self, session: &SessionId) -> CredentialFiles {
        CredentialFiles::new(&self.data, session)
    }
}

impl Backend for WhatsappBackend {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn files_per_session(&self) -> u64 {
        // The websocket and the credential store's database (`store`: a rollback
        // journal, so no -wal and -shm stay open).
        2
    }

    fn has_credentials(&self, session: &SessionId) -> bool {
        self.files(session).is_linked()
    }

    fn repair(&self, session: &SessionId) -> Option<String> {
        self.files(session).repair()
    }

    fn connect(&self, session: &SessionId, sink: EventSink, inbox: Inbox) -> Box<dyn Connection> {
        let span = info_span!("whatsapp", session_id = %session);
        Box::new(WhatsappConnection::start(
            self.files(session),
            self.dial.clone(),
            span,
            sink,
            inbox,
        ))
    }

    fn wipe(&self, session: &SessionId) -> BoxFuture<'static, Result<(), BackendError>> {
        Box::pin(pairing::wipe(self.files(session)))
    }

    fn logout_stored(&self, session: &SessionId, inbox: Inbox) -> BoxFuture<'static, Result<(), BackendError>> {
        use tracing::Instrument;
        let span = info_span!("whatsapp", session_id = %session);
        Box::pin(pairing::logout_stored(self.files(session), self.dial.clone(), inbox).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::sync::mpsc;

    use super::*;
    use crate::backend::{BackendEvent, CLOSE_TIMEOUT};

    /// A backend dialing a local port nothing listens on: tests never touch the
    /// network.
    fn backend(dir: &std::path::Path) -> WhatsappBackend {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = WhatsappUrl::parse(&format!("ws://127.0.0.1:{port}/ws/chat")).unwrap();
        let versions = WaVersions::pinned(DEFAULT_WA_VERSION, Arc::default());
        WhatsappBackend::new(DataDir::open(dir).unwrap(), versions, url, Duration::from_secs(60))
    }

    fn inbox(dir: &std::path::Path) -> crate::events::Inbox {
        let log = crate::events::EventLog::open(dir, Arc::default()).unwrap();
        crate::events::Inbox::new(log, "test")
    }

    fn sink() -> (EventSink, mpsc::UnboundedReceiver<BackendEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(move |event| drop(tx.send(event))), rx)
    }

    #[tokio::test]
    async fn a_connection_closed_at_once_stops_within_the_bound_and_reports_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = backend(tmp.path());
        let session = SessionId::parse("alice").unwrap();
        let (sink, mut events) = sink();
        let connection = backend.connect(&session, sink, inbox(tmp.path()));
        tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), connection.close())
            .await
            .expect("close is bounded");
        assert!(events.try_recv().is_err(), "nothing is reported once close began");
        assert!(!backend.has_credentials(&session));
    }

    #[tokio::test]
    async fn a_connection_to_a_closed_port_names_why_whatsapp_is_unreachable() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = backend(tmp.path());
        let session = SessionId::parse("bob").unwrap();
        let (sink, mut events) = sink();
        let connection = backend.connect(&session, sink, inbox(tmp.path()));
        let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("the connection reports within the bound")
            .expect("an event");
        match first {
            BackendEvent::ConnectFailed(cause) => assert!(cause.contains("refused"), "{cause}"),
            other => panic!("unexpected first event {other:?}"),
        }
        tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), connection.close())
            .await
            .expect("close is bounded");
        backend.wipe(&session).await.unwrap();
        assert!(!tmp.path().join("sessions/bob/whatsapp.db").exists());
    }

    #[tokio::test]
    async fn unlinking_a_session_without_a_linked_device_only_wipes() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = backend(tmp.path());
        let session = SessionId::parse("carol").unwrap();
        backend.logout_stored(&session, inbox(tmp.path())).await.unwrap();
        assert!(!backend.has_credentials(&session));
    }
}
