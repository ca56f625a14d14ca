//! The server streams: a session's changes, and every session's changes. Each ends
//! when its client goes away (tonic drops it, releasing the watcher).

use std::pin::Pin;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::{wrappers::BroadcastStream, wrappers::ReceiverStream, Stream, StreamExt};
use tonic::Status;

use super::convert;
use crate::{
    domain::{SessionEvent, SessionView},
    proto,
    qr_render::ImageKind,
};

/// A boxed stream of wire messages.
pub type WireStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// One session's changes, converted (and the QR drawn when asked).
pub fn session_changes(changes: mpsc::Receiver<SessionView>, image: Option<ImageKind>) -> WireStream<proto::Session> {
    let stream = ReceiverStream::new(changes).map(move |view| convert::session(view, image).map_err(Status::from));
    Box::pin(stream)
}

/// Every session's current state, then their changes. A client that falls too far
/// behind gets RESOURCE_EXHAUSTED and should list and watch again.
pub fn all_changes(
    current: Vec<SessionView>,
    changes: broadcast::Receiver<SessionEvent>,
) -> WireStream<proto::SessionEvent> {
    let snapshot = tokio_stream::iter(
        current
            .into_iter()
            .map(|view| SessionEvent { view, deleted: false })
            .map(Ok),
    );
    let live = BroadcastStream::new(changes).map(|item| {
        item.map_err(|lagged| {
            Status::resource_exhausted(format!(
                "this watcher fell behind ({lagged}): list the sessions and watch again"
            ))
        })
    });
    let stream = snapshot.chain(live).map(|item| {
        let event = item?;
        Ok(proto::SessionEvent {
            session: Some(convert::session(event.view.clone(), None)?),
            deleted: event.deleted,
        })
    });
    Box::pin(stream)
}
