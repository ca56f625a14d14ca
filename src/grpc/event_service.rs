//! `EventService`: the event log over gRPC. It checks the request (session ids,
//! consumer name, cursor), works out where the stream starts, and hands the rest to
//! the log's follower; acks go to the log and are on disk before the answer.

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{Request, Response, Status};

use super::streams::WireStream;
use crate::{
    domain::{input, SessionId},
    error::SessionError,
    events::{self, format_cursor, parse_cursor, EventKind, EventLog, Filter, FollowEnd},
    proto::{self, event_service_server::EventService},
    registry::Sessions,
};

/// Events a stream holds ready for a slow client (the rest stay on disk).
const STREAM_BUFFER: usize = 64;

/// The most session ids one stream may filter on (one query parameter each; SQLite
/// takes at most 32,766).
pub const MAX_FILTER_SESSIONS: usize = 1_000;

/// The event log once the data dir is taken (empty while the daemon waits for it).
pub type LogSlot = Arc<OnceLock<EventLog>>;

/// The log in `slot`; UNAVAILABLE until the daemon has restored its state.
pub fn restored(slot: &LogSlot) -> Result<&EventLog, SessionError> {
    slot.get()
        .ok_or_else(|| SessionError::Unavailable("the daemon is restoring its state: retry shortly".into()))
}

/// Serves `EventService` on top of the log and the sessions.
#[derive(Clone)]
pub struct EventApi {
    log: LogSlot,
    sessions: Sessions,
    /// Turns true when the daemon shuts down: every stream ends.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl EventApi {
    /// Serves the log in `log` once it is there; `sessions` answers whether a
    /// filtered id exists.
    pub fn new(log: LogSlot, sessions: Sessions, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            log,
            sessions,
            stopping,
        }
    }

    /// The log; UNAVAILABLE until the daemon has restored its state.
    fn log(&self) -> Result<&EventLog, SessionError> {
        restored(&self.log)
    }

    /// The filter a request asks for (each session once); NOT_FOUND for an id no
    /// session has, INVALID_ARGUMENT past `MAX_FILTER_SESSIONS`.
    async fn filter(&self, body: &proto::StreamEventsRequest) -> Result<Filter, SessionError> {
        let mut sessions: Vec<String> = Vec::with_capacity(body.session_ids.len().min(MAX_FILTER_SESSIONS));
        for raw in &body.session_ids {
            let id = SessionId::parse(raw)?;
            if sessions.iter().any(|s| s == id.as_str()) {
                continue;
            }
            if sessions.len() == MAX_FILTER_SESSIONS {
                return Err(SessionError::InvalidArgument(format!(
                    "session_ids names more than {MAX_FILTER_SESSIONS} sessions: filter on at most \
                     {MAX_FILTER_SESSIONS}, or on none to stream every session"
                )));
            }
            sessions.push(id.to_string());
        }
        for id in &sessions {
            self.sessions.peek(SessionId::parse(id)?).await?;
        }
        let mut kinds = Vec::with_capacity(body.kinds.len());
        for &raw in &body.kinds {
            match EventKind::try_from(raw) {
                Ok(kind) if kind != EventKind::Unspecified => kinds.push(kind),
                _ => {
                    return Err(SessionError::InvalidArgument(format!(
                        "event kind {raw} is unknown: use EVENT_KIND_MESSAGE, EVENT_KIND_RECEIPT or EVENT_KIND_STATUS"
                    )))
                }
            }
        }
        Ok(Filter {
            sessions,
            kinds,
            accepted: Vec::new(),
        })
    }

    /// Where the stream starts: the position after which it sends events.
    async fn start(&self, body: &proto::StreamEventsRequest, filter: &mut Filter) -> Result<u64, SessionError> {
        let consumer = if body.consumer.is_empty() {
            None
        } else {
            Some(input::consumer(&body.consumer)?)
        };
        let stored = match &consumer {
            Some(name) => self.log()?.position(name).await.map_err(storage)?,
            None => None,
        };
        let after = if !body.after_cursor.is_empty() {
            let after = parse_cursor(&body.after_cursor).map_err(SessionError::InvalidArgument)?;
            self.not_ahead(after)?
        } else if let Some(position) = stored {
            // A consumer whose position was trimmed away follows CURSOR_EXPIRED's
            // advice with from_beginning: it starts at the oldest event kept (its
            // next ack moves its position on).
            let expired = events::expired(self.log()?, position, filter)
                .await
                .map_err(storage)?
                .is_some();
            if expired && body.from_beginning {
                self.log()?.oldest_start(filter).await.map_err(storage)?
            } else {
                position
            }
        } else if body.from_beginning {
            self.log()?.oldest_start(filter).await.map_err(storage)?
        } else {
            self.log()?.head()
        };
        if let Some(end) = events::expired(self.log()?, after, filter).await.map_err(storage)? {
            return Err(end_error(end));
        }
        Ok(after)
    }

    /// A cursor past the newest event is one this log never issued.
    fn not_ahead(&self, cursor: u64) -> Result<u64, SessionError> {
        let head = self.log()?.head();
        if cursor > head {
            return Err(SessionError::InvalidArgument(format!(
                "cursor {} is ahead of the newest event ({}): send back a cursor this daemon streamed",
                format_cursor(cursor),
                format_cursor(head)
            )));
        }
        Ok(cursor)
    }
}

/// UNAVAILABLE: the log could not be read or written.
fn storage(error: crate::store::DbError) -> SessionError {
    SessionError::Unavailable(format!("the event log failed: {error}; try again"))
}

/// The error a stream ends with.
fn end_error(end: FollowEnd) -> SessionError {
    match end {
        FollowEnd::Expired { oldest, head } => {
            let oldest_cursor = oldest.map(format_cursor).unwrap_or_default();
            let message = match oldest {
                Some(_) => format!(
                    "the position is older than what the event log keeps: events up to before {oldest_cursor} were trimmed; \
                     resume from_beginning (oldest kept: {oldest_cursor}) or raise --event-retention"
                ),
                None => format!(
                    "the position is older than what the event log keeps and the log is empty now (newest: {}); \
                     resume without a cursor",
                    format_cursor(head)
                ),
            };
            SessionError::CursorExpired { message, oldest_cursor }
        }
        FollowEnd::Failed(error) => storage(error),
    }
}

#[tonic::async_trait]
impl EventService for EventApi {
    type StreamEventsStream = WireStream<proto::Event>;

    async fn stream_events(
        &self,
        request: Request<proto::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let body = request.into_inner();
        let mut filter = self.filter(&body).await?;
        let after = self.start(&body, &mut filter).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(events::follow(
            self.log()?.clone(),
            after,
            filter,
            tx,
            self.stopping.clone(),
        ));
        let stream = ReceiverStream::new(rx).map(|item| item.map_err(|end| Status::from(end_error(end))));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ack_events(
        &self,
        request: Request<proto::AckEventsRequest>,
    ) -> Result<Response<proto::AckEventsResponse>, Status> {
        let body = request.into_inner();
        let consumer = input::consumer(&body.consumer)?;
        let cursor = parse_cursor(&body.cursor).map_err(SessionError::InvalidArgument)?;
        let cursor = self.not_ahead(cursor)?;
        let log = self.log()?;
        let stored = log.ack(&consumer, cursor).await.map_err(storage)?.ok_or_else(|| {
            SessionError::ResourceExhausted(format!(
                "the event log keeps at most {} consumers (--max-consumers) and {consumer:?} would be a new one: delete unused ones with DeleteConsumer, or raise the bound",
                log.max_consumers()
            ))
        })?;
        Ok(Response::new(proto::AckEventsResponse {
            cursor: format_cursor(stored),
        }))
    }

    async fn delete_consumer(
        &self,
        request: Request<proto::DeleteConsumerRequest>,
    ) -> Result<Response<proto::DeleteConsumerResponse>, Status> {
        let consumer = input::consumer(&request.get_ref().consumer)?;
        if !self.log()?.delete_consumer(&consumer).await.map_err(storage)? {
            return Err(SessionError::Missing(format!("no consumer named {consumer:?}: nothing to delete")).into());
        }
        Ok(Response::new(proto::DeleteConsumerResponse {}))
    }
}
