//! One connection of a session to WhatsApp: a task that builds a whatsapp-rust client
//! on the session's store, runs it once (auto-reconnect off: the session actor owns
//! every restart) and reports what happens on the sink; and the handle the session
//! actor holds to close it, log out, send (`send`), check numbers (`contacts`)
//! and ask for pairing codes.
//! Inbound messages go to the session's inbox through the client's durability
//! hook; receipts, WhatsApp's acks of sent messages, the timelock it pushes
//! or answers after a 463 (`health`) and a rate limit (`rate_limit`) are logged
//! from here, off the library's dispatch path. A socket's end waits up to `FAILURE_GRACE` for the `<failure>`
//! that explains it; a 405 on an unpinned version asks for the current one. Every
//! wait is bounded, and nothing is reported once `close` or `logout` has begun.

use std::{
    collections::HashMap,
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime},
};

use tokio::{
    sync::Notify,
    task::JoinHandle,
    time::{sleep_until, timeout, timeout_at, Instant},
};
use tracing::{debug, info, warn, Instrument, Span};
use whatsapp_rust::{types::events::Event, Client};

use super::{
    client::{self, own_device, own_jids, Dial},
    contacts,
    events::{EventMapper, RunEnd},
    health::{self, TimelockQuery},
    inbound, media, pairing,
    rate_limit::RateLimitWatch,
    reach, send,
    shared::Shared,
    store::CredentialFiles,
};
use crate::{
    backend::{
        BackendError, BackendEvent, BoxFuture, Connection, Disconnect, EventSink, MediaTransfer, Outbound,
        PairingCodeIssued, SentMessage, CLOSE_TIMEOUT, LOOKUP_BOUND, PAIRING_CODE_BOUND, SEND_BOUND,
    },
    events::{outbound::HealthSignal, Inbox},
};

/// How long a socket's end waits for the failure (405, 401, 402...) that explains
/// it: whatsapp-rust ends the connection before it dispatches the failure.
const FAILURE_GRACE: Duration = Duration::from_millis(200);

/// How long a flush of the device state may take before a step goes on without it.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ends when the event log kept refusing inbound messages.
const REDELIVER: &str =
    "the event log did not take inbound messages in time; reconnecting so whatsapp delivers them again";

/// The handle of one connection. Dropped without `close` (its owner died, or a
/// close was cancelled half-way), it still closes: the drop mutes it and stops the
/// client and the task in the background, within `CLOSE_TIMEOUT`, so no logged-in
/// socket outlives its owner.
pub struct WhatsappConnection {
    /// State shared with the task.
    shared: Arc<Shared>,
    /// The connection task; taken by the close, the logout or the drop that stops it.
    task: Option<JoinHandle<()>>,
    /// The session's span, for what the handle does.
    span: Span,
    /// Where a contact check refused for its rate reports it, and for how long
    /// when WhatsApp names no backoff.
    rate_limits: (Inbox, Duration),
}

impl WhatsappConnection {
    /// Starts the connection task on `files`, delivering to `inbox`, and returns at
    /// once.
    pub fn start(files: CredentialFiles, dial: Dial, span: Span, sink: EventSink, inbox: Inbox) -> Self {
        let shared = Arc::new(Shared::new(sink, dial.versions.clone()));
        let rate_limits = (inbox.clone(), dial.rate_limit_pause);
        let task = tokio::spawn(run(shared.clone(), files, dial, span.clone(), inbox).instrument(span.clone()));
        Self {
            shared,
            task: Some(task),
            span,
            rate_limits,
        }
    }

    /// Mutes the connection, stops the client and waits for the task, all by
    /// `deadline`.
    async fn shut(mut self, deadline: Instant) {
        if let Some(task) = self.task.take() {
            stop(self.shared.clone(), task, deadline).await;
        }
    }
}

/// Mutes the connection, stops the client and waits for `task`, all by `deadline`.
async fn stop(shared: Arc<Shared>, mut task: JoinHandle<()>, deadline: Instant) {
    shared.closed.store(true, Ordering::SeqCst);
    shared.stop.notify_one();
    let client = shared.client.borrow().clone();
    if let Some(client) = client {
        if timeout_at(deadline, client.disconnect()).await.is_err() {
            warn!("the whatsapp client did not disconnect in time");
        }
    }
    if timeout_at(deadline, &mut task).await.is_err() {
        warn!("the connection task did not stop in time; aborting it");
        task.abort();
    }
    // Let the client (and its store) go now, not when the handle is dropped.
    if let Some(client) = shared.client.send_replace(None) {
        let client = Arc::downgrade(&client);
        debug!(references_left = client.strong_count(), "connection closed");
    }
}

impl Drop for WhatsappConnection {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return; // closed or logged out already
        };
        // Muted at once: the owner is gone, nothing may be reported to it.
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.stop.notify_one();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                info!(parent: &self.span, "connection dropped without a close: closing it");
                let stopping = stop(self.shared.clone(), task, Instant::now() + CLOSE_TIMEOUT);
                runtime.spawn(stopping.instrument(self.span.clone()));
            }
            // No runtime left (the process is ending): nothing runs the client now.
            Err(_) => task.abort(),
        }
    }
}

impl Connection for WhatsappConnection {
    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let span = self.span.clone();
        Box::pin(async move { self.shut(Instant::now() + CLOSE_TIMEOUT).await }.instrument(span))
    }

    fn logout(self: Box<Self>) -> BoxFuture<'static, Result<(), BackendError>> {
        let span = self.span.clone();
        let logout = async move {
            // Muted first: the library reports our own logout as LoggedOut.
            self.shared.closed.store(true, Ordering::SeqCst);
            let client = self.shared.client.borrow().clone();
            let online = client.as_ref().is_some_and(|c| c.is_connected() && c.is_logged_in());
            let unlinked = match client.filter(|_| online) {
                Some(client) => pairing::unlink(&client).await,
                None => Err(BackendError::Unreachable(
                    "the connection was not online, so whatsapp was not asked to unlink the device".into(),
                )),
            };
            self.shut(Instant::now() + CLOSE_TIMEOUT).await;
            unlinked
        };
        Box::pin(logout.instrument(span))
    }

    fn send(&self, message: Outbound) -> BoxFuture<'static, Result<SentMessage, BackendError>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            let deadline = Instant::now() + SEND_BOUND;
            let client = shared.client(deadline).await?;
            // A send racing the connection's end (a 429, a lost socket) would wait
            // on a dead client until the bound, holding every send behind it.
            tokio::select! {
                sent = send::send(&client, message, deadline) => sent,
                () = shared.client_gone() => Err(BackendError::Unreachable(
                    "the connection closed while the message was being sent".into(),
                )),
            }
        })
    }

    fn registered(&self, chats: Vec<String>) -> BoxFuture<'static, Result<HashMap<String, bool>, BackendError>> {
        let shared = self.shared.clone();
        let (inbox, pause) = self.rate_limits.clone();
        Box::pin(async move {
            let deadline = Instant::now() + LOOKUP_BOUND;
            let client = shared.client(deadline).await?;
            let answer = contacts::registered(&client, chats, deadline).await;
            if let Err(contacts::Refused::RateLimited { backoff }) = &answer {
                let until = SystemTime::now() + backoff.unwrap_or(pause);
                warn!(?backoff, "whatsapp rate-limited the contact check (429)");
                inbox.health(HealthSignal::RateLimited { until });
            }
            answer.map_err(contacts::Refused::into_backend_error)
        })
    }

    fn request_pairing_code(&self, phone_number: &str) -> BoxFuture<'static, Result<PairingCodeIssued, BackendError>> {
        let shared = self.shared.clone();
        let phone_number = phone_number.to_owned();
        Box::pin(async move {
            let deadline = Instant::now() + PAIRING_CODE_BOUND;
            pairing::request(shared.client(deadline).await?, phone_number, deadline).await
        })
    }

    fn media(&self) -> Option<Arc<dyn MediaTransfer>> {
        let shared = self.shared.clone();
        let client: media::ClientSource = Arc::new(move |deadline| {
            let shared = shared.clone();
            Box::pin(async move { shared.client(deadline).await })
        });
        Some(Arc::new(media::RealMedia(client)))
    }
}

/// The connection task: build, run once, report, stop.
async fn run(shared: Arc<Shared>, files: CredentialFiles, dial: Dial, span: Span, inbox: Inbox) {
    // Probed alongside the library's own attempt, to name a failure quickly.
    let mut probe = tokio::spawn(reach::probe(dial.url.clone()));
    let redeliver = Arc::new(Notify::new());
    let hook = inbound::InboxHook::new(inbox.clone(), redeliver.clone());
    let built = tokio::select! {
        built = client::build(&files, &dial, span, hook) => built,
        () = shared.stop.notified() => {
            probe.abort();
            return;
        }
    };
    let mut built = match built {
        Ok(built) => built,
        Err(cause) => {
            warn!(%cause, "could not start the whatsapp client");
            probe.abort();
            shared.report(BackendEvent::ConnectFailed(cause));
            return;
        }
    };
    let client = built.client.clone();
    shared.client.send_replace(Some(client.clone()));
    if shared.is_closed() {
        // close() may have looked before the client existed: stop it here.
        probe.abort();
        let _ = timeout(CLOSE_TIMEOUT, client.disconnect()).await;
        return;
    }
    let linked_at_start = client.pn().is_some();
    let mut mapper = EventMapper::new(linked_at_start).version_pinned(dial.versions.is_pinned());
    let mut running = built.bot.spawn();
    let mut probed: Option<Result<(), String>> = None;
    // Aborted when the run ends, with the connection.
    let mut timelock = TimelockQuery::default();
    let _rate_limit = RateLimitWatch::start(&client, inbox.clone(), dial.rate_limit_pause);
    // While a socket's end awaits its explanation: until when.
    let mut grace: Option<Instant> = None;
    debug!(linked_at_start, "whatsapp client running");
    loop {
        tokio::select! {
            biased;
            Some(event) = built.events.recv() => {
                handle(&shared, &files, &client, &inbox, &mut mapper, &mut timelock, &event).await;
            }
            () = sleep_until(grace.unwrap_or_else(Instant::now)), if grace.is_some() => {
                if let Some(lost) = mapper.take_pending_loss() {
                    deliver(&shared, &files, &client, lost).await;
                }
            }
            () = &mut running => break,
            // The hook gave a batch back: only a new connection gets it delivered again.
            () = redeliver.notified() => {
                if let Some(lost) = mapper.give_up(REDELIVER) {
                    shared.report(lost);
                }
                let _ = timeout(CLOSE_TIMEOUT, client.disconnect()).await;
                probe.abort();
                return;
            }
            result = &mut probe, if probed.is_none() => {
                let result = result.unwrap_or_else(|e| Err(format!("the reachability probe failed: {e}")));
                if let Err(cause) = &result {
                    if !mapper.is_up() && !client.is_connected() {
                        info!(%cause, "whatsapp is unreachable");
                        shared.report(BackendEvent::ConnectFailed(cause.clone()));
                        let _ = timeout(CLOSE_TIMEOUT, client.disconnect()).await;
                        return;
                    }
                }
                probed = Some(result);
            }
        }
        grace = mapper
            .has_pending_loss()
            .then(|| grace.unwrap_or_else(|| Instant::now() + FAILURE_GRACE));
    }
    // Everything the loop dispatched before it ended is queued by now, except
    // perhaps the failure that explains the end: wait for it, briefly.
    let deadline = grace.unwrap_or_else(|| Instant::now() + FAILURE_GRACE);
    loop {
        let event = match built.events.try_recv() {
            Ok(event) => event,
            Err(_) if !mapper.ended() && !shared.is_closed() => match timeout_at(deadline, built.events.recv()).await {
                Ok(Some(event)) => event,
                _ => break,
            },
            Err(_) => break,
        };
        handle(&shared, &files, &client, &inbox, &mut mapper, &mut timelock, &event).await;
    }
    if shared.is_closed() {
        return;
    }
    let ended = mapper.on_run_ended(&own_device(&client));
    let _ = timeout(FLUSH_TIMEOUT, client.persistence_manager().flush()).await;
    match ended {
        RunEnd::Reported => {}
        RunEnd::Report(events) => {
            for event in events {
                deliver(&shared, &files, &client, event).await;
            }
        }
        RunEnd::NeverUp => {
            let probed = match probed {
                Some(result) => result,
                None => (&mut probe)
                    .await
                    .unwrap_or_else(|e| Err(format!("the reachability probe failed: {e}"))),
            };
            let cause = probed
                .err()
                .unwrap_or_else(|| reach::handshake_failed(&dial.url, mapper.last_trouble()));
            info!(%cause, "could not connect to whatsapp");
            shared.report(BackendEvent::ConnectFailed(cause));
        }
    }
    probe.abort();
    let _ = timeout(CLOSE_TIMEOUT, client.disconnect()).await;
}

/// One forwarded event: a receipt, WhatsApp's ack of a sent message or the
/// timelock it pushes is logged to the inbox (queued, never awaited; a 463 nack
/// also asks for the timelock, in the background); anything else is translated
/// and reported.
async fn handle(
    shared: &Shared,
    files: &CredentialFiles,
    client: &Arc<Client>,
    inbox: &Inbox,
    mapper: &mut EventMapper,
    timelock: &mut TimelockQuery,
    event: &Event,
) {
    match event {
        Event::Receipt(receipt) => {
            if let Some(receipt) = inbound::receipt(receipt, &own_jids(client)) {
                debug!(
                    messages = receipt.message_ids.len(),
                    kind = receipt.kind,
                    "receipt logged"
                );
                inbox.receipt(receipt);
            }
        }
        Event::ServerAck(ack) => {
            if let Some((message_id, error)) = send::server_ack(ack) {
                debug!(%message_id, ?error, "server ack logged");
                inbox.server_ack(message_id, error);
                if error == Some(health::NEW_CHAT_BARRED) {
                    timelock.ask(client, inbox);
                }
            }
        }
        Event::MexNotification(notification) => {
            if let Some(signal) = health::pushed(notification) {
                info!(?signal, "whatsapp pushed the reach-out timelock");
                inbox.health(signal);
            }
        }
        other => {
            if let Some(mapped) = mapper.on_event(other, || own_device(client), SystemTime::now()) {
                deliver(shared, files, client, mapped).await;
            }
        }
    }
}

/// Reports `event`, first persisting what it means for the store: a paired device
/// is flushed to disk and marked before anyone hears of it.
async fn deliver(shared: &Shared, files: &CredentialFiles, client: &Client, event: BackendEvent) {
    if let BackendEvent::Disconnected(Disconnect::ClientOutdated { pinned: false }) = &event {
        let versions = shared.versions.clone();
        tokio::spawn(async move { versions.after_outdated().await }.in_current_span());
    }
    let linked_jid = match &event {
        BackendEvent::PairSuccess { jid, .. } => Some(jid.clone()),
        BackendEvent::Connected(identity) if !files.is_linked() => Some(identity.jid.clone()),
        _ => None,
    };
    if let Some(jid) = linked_jid {
        if timeout(FLUSH_TIMEOUT, client.persistence_manager().flush())
            .await
            .is_err()
        {
            warn!("flushing the paired device took too long");
        }
        let files = files.clone();
        let marked = tokio::task::spawn_blocking(move || files.mark_linked(&jid)).await;
        if !matches!(marked, Ok(Ok(()))) {
            warn!(?marked, "could not mark the store as linked");
        }
    }
    shared.report(event);
}
