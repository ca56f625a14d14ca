//! The link page's one door to the sessions: the daemon's own door
//! (`registry::Sessions`), taking ids by reference and checking phone numbers the
//! way the page sends them. Nothing else in `link/` knows how sessions are run.

use tokio::sync::mpsc;

use crate::{
    error::SessionError,
    registry,
    session::{commands::PairingCodeView, input, waiters::QrRequest, SessionId, SessionView},
};

/// A cloneable handle on the sessions.
#[derive(Clone)]
pub struct Sessions {
    /// The door into the actors.
    door: registry::Sessions,
}

impl Sessions {
    /// Goes through `door`.
    pub fn new(door: registry::Sessions) -> Self {
        Self { door }
    }

    /// The session, waiting for (or starting) a QR code as `request` asks.
    pub async fn get(&self, id: &SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.door.get(id.clone(), request).await
    }

    /// The session's current state, then every change; `keep_fresh` regenerates the
    /// QR while the receiver is held.
    pub async fn watch(&self, id: &SessionId, keep_fresh: bool) -> Result<mpsc::Receiver<SessionView>, SessionError> {
        self.door.watch(id.clone(), keep_fresh).await
    }

    /// Closes the pairing connection and returns the first code of a new one.
    pub async fn refresh_qr(&self, id: &SessionId, request: QrRequest) -> Result<SessionView, SessionError> {
        self.door.refresh_qr(id.clone(), request).await
    }

    /// An 8-character code to link `phone` (`+15551234567` or digits) by number.
    pub async fn request_pairing_code(&self, id: &SessionId, phone: String) -> Result<PairingCodeView, SessionError> {
        let phone = input::phone_number(&phone)?;
        self.door.request_pairing_code(id.clone(), phone).await
    }
}
