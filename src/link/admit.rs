//! What every route of the link page starts with: the app state the routes read,
//! and the admission of a link (its token checks out, the session it was made for
//! still exists, the link was not revoked and the session has not linked since it
//! was issued). `server` routes to `feed` and `actions`; all three read these words
//! from here, so none of them imports another.

use std::{sync::Arc, time::Duration, time::SystemTime};

use tokio::sync::Notify;

use super::{
    limits::{ActionLimits, Caps},
    page::{Framing, Unusable},
    revoked::LinkGenerations,
    token::{Claims, LinkKey, Refusal},
};
use crate::{
    domain::{QrRequest, SessionId, SessionView},
    error::SessionError,
    metrics::Metrics,
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
    /// Each session's link generation: a link of an older one is revoked.
    pub generations: Arc<LinkGenerations>,
    /// The rate of refreshes and pairing codes.
    pub limits: ActionLimits,
    /// Connections per client address, feeds per link.
    pub caps: Caps,
    /// The longest a request's head, or its body, may take to arrive.
    pub read_timeout: Duration,
    /// The longest a feed waits for its client to take an update.
    pub write_timeout: Duration,
    /// Who may frame the documents.
    pub framing: Framing,
    /// Where the page counts what it does.
    pub metrics: Arc<Metrics>,
}

/// Cuts the connection a request came on (put in each request's extensions by the
/// server): a feed that ended, or cannot be written to, frees its connection even
/// when its client stopped reading.
#[derive(Debug, Clone, Default)]
pub struct Cut(Arc<Notify>);

impl Cut {
    /// Cuts the connection once `grace` has passed (time for a last event to go out).
    pub fn after(self, grace: Duration) {
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            self.0.notify_one();
        });
    }

    /// Resolves once the connection is to be cut.
    pub async fn wanted(&self) {
        self.0.notified().await;
    }
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
    /// Checks `token`, that the session it was made for still exists, that the link
    /// was not revoked and that the session has not linked since; a refusal is counted.
    pub async fn admit(&self, token: &str) -> Result<Admitted, Unusable> {
        self.check(token)
            .await
            .inspect_err(|why| self.metrics.link.refused(why.reason()))
    }

    async fn check(&self, token: &str) -> Result<Admitted, Unusable> {
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
        let linked_since = view.connected_at.is_some_and(|at| unix_ms(at) >= claims.issued_ms);
        if linked_since || claims.generation != self.generations.current(&id) {
            return Err(Unusable::Revoked);
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
