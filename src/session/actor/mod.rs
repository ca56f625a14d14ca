//! The session actor: the only owner of one session's state. All of its requests go
//! through its one mailbox, so they are serialized by construction. This file holds
//! what it owns (`SessionRun`), the `Actor` impl that dispatches each message, and
//! the rule every answer follows: the snapshot is published before the reply goes
//! out, so a read from the registry's snapshot right after sees the change.
//!
//! Each concern of `SessionRun`'s impl has its own file: how it boots (`boot`), QR
//! reads and the callers waiting for a code (`qr`), its backend connections
//! (`connection`), lifecycle commands (`commands`), messages to send and their
//! resends (`outbound`), pairing codes (`sends`), backend events, timers and recovery (`events`), and publishing
//! (`publish`).

mod boot;
mod commands;
mod connection;
mod contacts;
mod events;
mod media;
mod outbound;
mod publish;
mod qr;
mod sends;

use std::{collections::HashSet, sync::Arc, time::SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;
use tracing::warn;

pub(crate) use super::context::{Boot, SessionArgs};
pub use super::context::{SessionContext, Timeouts, DELETED, NOT_CREATED};
pub(crate) use super::messages::SessionMsg;
use super::{
    outbox::Outbox,
    state::SessionState,
    timers::{Post, Timers},
    waiters::Waiters,
    watchers::Watchers,
};
use crate::{
    backend::Connection,
    error::SessionError,
    store::{write_failed, SessionRecord},
};
use publish::Publisher;

/// The session actor (stateless; its state is `SessionRun`).
pub(crate) struct SessionActor;

/// A running session: one incarnation of the actor's state.
pub(crate) struct SessionRun {
    /// The rules and data: the only copy of this session's state.
    state: SessionState,
    /// What is stored on disk; written back after a change it must survive.
    record: SessionRecord,
    /// What every session shares: backend, store, event log, bounds, metrics.
    ctx: Arc<SessionContext>,
    /// Its own address: backend events and watchers that go away come back here.
    myself: ActorRef<SessionMsg>,
    /// The live backend connection (matches `state.conn()`).
    conn: Option<Box<dyn Connection>>,
    /// Attached watch streams.
    watchers: Watchers,
    /// Callers waiting for a code (or for the session to settle).
    waiters: Waiters,
    /// Every timer it has armed; all aborted when it stops or is deleted.
    timers: Timers,
    /// Sends and pairing-code requests, run in the order accepted.
    outbox: Outbox,
    /// Messages on their way through the outbox (sends and resends), by WhatsApp
    /// id: a flush never queues one twice.
    in_flight: HashSet<String>,
    /// A flush stopped at a full outbox: it goes on when a send finishes.
    flush_owed: bool,
    /// Where snapshots, status-change logs and journal entries go.
    publisher: Publisher,
    /// Deleted (or never created): publish nothing more.
    deleted: bool,
    /// How it starts (taken by `post_start`).
    boot: Option<Boot>,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionRun;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionRun, ActorProcessingErr> {
        let publisher = Publisher::new(args.published, args.state.view(), &args.ctx.metrics);
        let mailbox = myself.clone();
        let post: Post = Arc::new(move |msg| {
            let _ = mailbox.cast(msg);
        });
        Ok(SessionRun {
            outbox: Outbox::start(args.state.view().id.clone()),
            in_flight: HashSet::new(),
            flush_owed: false,
            state: args.state,
            record: args.record,
            ctx: args.ctx,
            myself,
            conn: None,
            watchers: Watchers::default(),
            waiters: Waiters::default(),
            timers: Timers::new(post),
            publisher,
            deleted: false,
            boot: Some(args.boot),
        })
    }

    async fn post_start(&self, _: ActorRef<SessionMsg>, run: &mut SessionRun) -> Result<(), ActorProcessingErr> {
        run.boot().await;
        if !run.deleted {
            run.settle().await;
            run.publish();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<SessionMsg>,
        msg: SessionMsg,
        run: &mut SessionRun,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Get { request, reply } => {
                let bound = run.ctx.timeouts.refresh;
                run.get(request, reply, bound).await;
            }
            SessionMsg::RefreshQr { request, reply } => run.refresh(request, reply).await,
            SessionMsg::Backend { conn, event } => {
                let online = matches!(event, crate::backend::BackendEvent::Connected(_));
                run.on_backend(conn, event).await?;
                if online {
                    run.flush_outbound().await;
                }
            }
            SessionMsg::FirstQrDue(conn) => run.first_qr_due(conn).await,
            SessionMsg::QrExpired { generation, index } => run.qr_expired(generation, index).await,
            SessionMsg::WaitersDue => run.waiters_due().await,
            SessionMsg::Reconnect => run.reconnect(),
            SessionMsg::Stable(conn) => run.stable(conn),
            SessionMsg::Watch { keep_fresh, reply } => {
                // Published first: the stream's first snapshot is the registry's.
                run.publish();
                let changes = run.watch(keep_fresh);
                run.answer(reply, Ok(changes));
            }
            SessionMsg::WatcherGone(id) => run.watchers.release(id),
            SessionMsg::Disconnect(reply) => {
                let result = run.disconnect().await;
                run.answer(reply, result);
            }
            SessionMsg::Connect { request, reply } => run.connect_session(request, reply).await,
            SessionMsg::Logout(reply) => {
                let result = run.logout().await;
                run.answer(reply, result);
            }
            SessionMsg::Delete(done) => run.delete(done).await,
            SessionMsg::SendMessage { input, item, reply } => run.send_message(input, item, reply).await,
            SessionMsg::SendSignal { outbound, reply } => run.send_signal(outbound, reply),
            SessionMsg::CheckNumbers { chats, reply } => run.check_numbers(chats, reply),
            SessionMsg::Media(reply) => run.media_transfer(reply),
            SessionMsg::Sent => run.state.mark_active(SystemTime::now()),
            SessionMsg::Flush => run.flush_outbound().await,
            SessionMsg::SendDone(message_id) => run.send_done(message_id).await,
            SessionMsg::RequestPairingCode { phone, reply } => run.request_pairing_code(phone, reply).await,
            SessionMsg::Crash { panic, reply } => {
                warn!(session_id = %run.state.view().id, panic, "crashing on request (EmulatorService.CrashSession)");
                run.answer(reply, Ok(()));
                if panic {
                    panic!("session crashed on request (EmulatorService.CrashSession)");
                }
                return Err("session crashed on request (EmulatorService.CrashSession)".into());
            }
        }
        if run.deleted {
            return Ok(());
        }
        run.settle().await;
        run.publish();
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<SessionMsg>, run: &mut SessionRun) -> Result<(), ActorProcessingErr> {
        run.timers.abort_all();
        run.outbox.stop();
        let stopping = SessionError::Unavailable("the session is stopping: retry in a moment".into());
        for waiter in run.waiters.drain() {
            waiter.finish(Err(stopping.clone()));
        }
        run.close_conn().await;
        Ok(())
    }
}

impl SessionRun {
    fn now() -> (Instant, SystemTime) {
        (Instant::now(), SystemTime::now())
    }

    /// Answers a caller, after publishing: whatever the answer reflects is already
    /// in the registry's snapshot when the caller reads it.
    fn answer<T: Send + 'static>(&mut self, reply: RpcReplyPort<T>, answer: T) {
        self.publish();
        let _ = reply.send(answer);
    }

    /// Publishes the snapshot if it changed (nothing once deleted).
    fn publish(&mut self) {
        if self.deleted {
            return;
        }
        self.publisher.publish(self.state.view(), &mut self.watchers, &self.ctx);
    }

    /// Writes the record; a failure is the caller's error.
    async fn save(&self) -> Result<(), SessionError> {
        let id = &self.state.view().id;
        self.ctx
            .store
            .save(self.record.clone())
            .await
            .map_err(|e| write_failed(&self.ctx.data, id, &e))
    }

    /// Writes the record after something the session did on its own (no caller to
    /// tell): a failure shows in `last_error`, the session goes on.
    async fn save_or_note(&mut self) {
        if let Err(error) = self.save().await {
            warn!(session_id = %self.state.view().id, %error, "the session's record could not be stored");
            self.state.note_error(error.to_string());
        }
    }

    /// Answers every waiting caller with `error` (after publishing what caused it).
    fn fail_waiters(&mut self, error: SessionError) {
        if self.waiters.is_empty() {
            return;
        }
        self.publish();
        for waiter in self.waiters.drain() {
            waiter.finish(Err(error.clone()));
        }
        self.timers.waiters(None);
    }
}
