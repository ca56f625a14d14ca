//! What every route of the link page starts with: the app state the routes read,
//! and the admission of a link (its token checks out and the session it was made
//! for still exists). `server` routes to `feed` and `actions`; all three read
//! these words from here, so none of them imports another.

use std::{sync::Arc, time::Duration, time::SystemTime};

use super::{
    page::Unusable,
    token::{Claims, LinkKey, Refusal},
};
use crate::{
    domain::{QrRequest, SessionId, SessionView},
    error::SessionError,
    registry::Sessions,
    store::unix_ms,
};

/// What every route reads.
pub struct LinkApp {
    /// The key every link is signed with (kept in the data dir, so links outlive a restart).
    pub key: Arc<LinkKey>,
    /// The daemon's door: every session call a page makes goes through it.
    pub sessions: Sessions,
    /// How long a page's feed lasts before it ends with an `idle` event.
    pub idle_timeout: Duration,
    /// The public origin (`https://host[:port]`) of `--link-base-url`, if set: posts
    /// from it are same-origin even when a proxy rewrites `Host`.
    pub public_origin: Option<String>,
}

/// A link that checked out: its claims, and its session as it is now.
pub struct Admitted {
    /// What the link grants (its session, that session's creation time, where to go once linked).
    pub claims: Claims,
    /// The link's session id, parsed from the claims once.
    pub id: SessionId,
}

/// Reads the state of a session without starting anything.
pub const PEEK: QrRequest = QrRequest {
    min_validity: Duration::ZERO,
    may_refresh: false,
    deadline: None,
};

impl LinkApp {
    /// Checks `token` and that the session it was made for still exists.
    pub async fn admit(&self, token: &str) -> Result<Admitted, Unusable> {
        let claims = self
            .key
            .verify(token, SystemTime::now())
            .map_err(|refusal| match refusal {
                Refusal::Forged => Unusable::Forged,
                Refusal::Expired => Unusable::Expired,
            })?;
        let id = SessionId::parse(&claims.session_id).map_err(|_| Unusable::Forged)?;
        let view = self.sessions.get(id.clone(), PEEK).await.map_err(|e| unusable(&e))?;
        if !same_session(&claims, &view) {
            return Err(Unusable::Deleted);
        }
        Ok(Admitted { claims, id })
    }
}

/// Whether `view` is the session the link was made for (not a later one of the
/// same id).
pub fn same_session(claims: &Claims, view: &SessionView) -> bool {
    unix_ms(view.created_at) == claims.created_ms
}

/// What a failed session call means for a link.
pub fn unusable(error: &SessionError) -> Unusable {
    match error {
        SessionError::NotFound(_) => Unusable::Deleted,
        _ => Unusable::Unavailable,
    }
}
