//! One client connection, start to end: a plain `GET /sw.js` answered (`version`),
//! or the WebSocket upgrade (then a refusal, if the control API asked for one), the
//! Noise handshake, a 405 for a version below the minimum, then either pairing (a batch of
//! refs, the phone's pair-success, the device's countersignature, 515) or login
//! (`<success>` for a linked device, `<failure reason="401">` for an unknown one,
//! `<failure reason="402">` while its account is banned), and the
//! stanza loop that answers the device and carries out the control API's orders.
//! Once the device goes active, what the server holds for it goes out as the
//! offline batch (each stanza marked `offline`, then `<ib><offline count>`), and
//! from then on live; its receipts and acks tell the server what to forget
//! (`receipts`). What it sends is acked (or nacked, or the ack held) as
//! `messages` decides; its `media_conn` IQ is answered with the media CDN.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use base64::{prelude::BASE64_STANDARD, Engine as _};
use rand::RngExt as _;
use tokio::{net::TcpStream, sync::mpsc};
use tokio_websockets::ServerBuilder;
use tracing::{debug, info, warn, Instrument};
use wacore_binary::{builder::NodeBuilder, Node};

mod receipts;

use crate::{
    device_keys::DeviceKeys,
    iq::{self, Effect},
    messages,
    noise::{Channel, Handshaken, Responder, ServerIdentity},
    stanza::{self, attr},
    version::{self, Versions},
    vocab::{ConnId, DeviceAddr, Login},
    wire::{Wire, WireEnd},
    world::{Order, World},
};

/// How long a client may take over each handshake message (the client's own
/// bound is 20 s).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// What every connection shares.
pub struct Shared {
    /// Accounts, connections, counters.
    pub world: World,
    /// The server's Noise identity.
    pub identity: ServerIdentity,
    /// Refs per pairing batch.
    pub refs: u32,
    /// The version sw.js names and the minimum a connection needs.
    pub versions: Versions,
    /// The media CDN.
    pub cdn: Arc<crate::cdn::Cdn>,
    /// What the phones sent through it.
    pub phones: crate::media::Phones,
}

/// Serves one accepted TCP connection to its end.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let span = tracing::info_span!("conn", %peer);
    async move {
        if version::is_sw_js(&stream).await {
            return version::serve_sw_js(stream, shared.versions.state().current).await;
        }
        // A bare TCP connect (a client's reachability probe) is not a connection.
        let socket = match ServerBuilder::new().accept(stream).await {
            Ok((_request, socket)) => socket,
            Err(e) => {
                debug!(error = %e, "no websocket upgrade");
                return;
            }
        };
        let mut wire = Wire::new(socket);
        if !shared.world.accept().await {
            info!("refusing the connection before its handshake (fail-connects)");
            wire.close().await;
            return;
        }
        let handshaken = match handshake(&shared.identity, &mut wire).await {
            Ok(handshaken) => handshaken,
            Err(why) => {
                info!(%why, "handshake failed");
                return;
            }
        };
        let (orders_tx, orders) = mpsc::unbounded_channel();
        let id = shared.world.open(orders_tx).await;
        let mut session = Session {
            id,
            shared: shared.clone(),
            wire,
            channel: handshaken.channel,
            device: None,
            live: false,
        };
        let end = session.run(handshaken.payload, handshaken.client_static, orders).await;
        shared.world.close(id).await;
        info!(end = %end, device = ?session.device.as_ref().map(DeviceAddr::jid), "connection closed");
    }
    .instrument(span)
    .await;
}

/// Runs the XX handshake on `wire`.
async fn handshake(identity: &ServerIdentity, wire: &mut Wire) -> Result<Handshaken, String> {
    let hello = wire
        .next_frame_within(HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (responder, server_hello) = Responder::hello(identity, &hello).map_err(|e| e.to_string())?;
    wire.send(server_hello).await.map_err(|e| format!("{e:?}"))?;
    let finish = wire
        .next_frame_within(HANDSHAKE_TIMEOUT)
        .await
        .map_err(|e| format!("{e:?}"))?;
    responder.finish(&finish).map_err(|e| e.to_string())
}

/// A connection after its handshake.
struct Session {
    /// Its number in the world.
    id: ConnId,
    /// What all connections share.
    shared: Arc<Shared>,
    /// The WebSocket, with WhatsApp's framing.
    wire: Wire,
    /// The Noise transport.
    channel: Channel,
    /// The device logged in on it.
    device: Option<DeviceAddr>,
    /// Whether the offline batch went out: what arrives for the device now goes
    /// out at once.
    live: bool,
}

/// Why a session stopped.
type End = String;

impl Session {
    async fn run(
        &mut self,
        payload: waproto::whatsapp::ClientPayload,
        client_static: [u8; 32],
        mut orders: mpsc::UnboundedReceiver<Order>,
    ) -> End {
        let registration = payload
            .device_pairing_data
            .as_option()
            .map(DeviceKeys::from_registration)
            .and_then(|keys| keys.inspect_err(|why| warn!(%why, "unreadable registration keys")).ok());
        let Some(mut admitted) = self.shared.versions.admit(&payload).await else {
            return self.end_with(&version::outdated()).await;
        };
        let opened = match payload.username {
            Some(phone) => self.login(phone, payload.device.unwrap_or(0), &client_static).await,
            None => self.offer_refs(registration).await,
        };
        if let Err(end) = opened {
            return end;
        }
        loop {
            let step = tokio::select! {
                frame = self.wire.next_frame() => match frame {
                    Ok(frame) => match self.channel.open(frame) {
                        Ok(node) => self.handle(node).await,
                        Err(why) => Err(format!("bad frame: {why}")),
                    },
                    Err(WireEnd::Closed) => Err("closed by the client".into()),
                    Err(WireEnd::Broken(why)) => Err(why),
                },
                Some(order) = orders.recv() => match order {
                    Order::Send(node) => self.send(&node).await,
                    Order::End(error) => Err(self.end_with(&error).await),
                    Order::Drop => Err("dropped (control)".into()),
                    Order::Deliver if self.live => self.deliver(false).await.map(|_| ()),
                    Order::Deliver => Ok(()),
                },
                () = admitted.revoked() => Err("dropped: below the new minimum version".into()),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Seals and sends one stanza.
    async fn send(&mut self, node: &Node) -> Result<(), End> {
        debug!(tag = %node.tag, "send");
        let bytes = self.channel.seal(node).map_err(|e| e.to_string())?;
        self.wire.send(bytes).await.map_err(|e| format!("{e:?}"))
    }

    /// Sends a stream error (or a `<failure>`) and closes the socket.
    async fn end_with(&mut self, error: &Node) -> End {
        let _ = self.send(error).await;
        self.wire.close().await;
        if error.tag == "failure" {
            return format!("failure {}", attr(error, "reason").unwrap_or_default());
        }
        let code = attr(error, "code").unwrap_or_default();
        let conflict = error
            .get_optional_child("conflict")
            .and_then(|c| attr(c, "type"))
            .unwrap_or_default();
        format!("stream error {code} {conflict}").trim_end().to_owned()
    }

    /// A new device: offer it a batch of refs, one QR code each.
    async fn offer_refs(&mut self, registration: Option<DeviceKeys>) -> Result<(), End> {
        let refs: Vec<String> = (0..self.shared.refs).map(|_| fresh_ref()).collect();
        self.shared.world.offer_refs(self.id, refs.clone(), registration).await;
        let refs: Vec<Node> = refs
            .into_iter()
            .map(|r| NodeBuilder::new("ref").bytes(r.into_bytes()).build())
            .collect();
        let pair_device = NodeBuilder::new("pair-device").children(refs).build();
        info!(refs = self.shared.refs, "new device: offering refs");
        self.send(&stanza::server_iq(&stanza::next_id(), "set", "md", vec![pair_device]))
            .await
    }

    /// A linked device logs in: `<success>` if the world knows it by its key.
    async fn login(&mut self, phone: u64, device: u32, client_static: &[u8; 32]) -> Result<(), End> {
        let addr = DeviceAddr {
            phone: phone.to_string(),
            device: u16::try_from(device).unwrap_or(u16::MAX),
        };
        match self.shared.world.login(self.id, &addr, client_static).await {
            Login::Accepted(lid) => {
                info!(device = %addr.jid(), "device logged in");
                self.device = Some(addr);
                self.send(&stanza::success(&lid)).await
            }
            Login::Unknown => {
                info!(device = %addr.jid(), "unknown device: login refused (401)");
                let _ = self.send(&stanza::failure(401)).await;
                self.wire.close().await;
                Err("login refused".into())
            }
            Login::Banned(failure) => {
                info!(device = %addr.jid(), "banned account: login refused (402)");
                let _ = self.send(&failure).await;
                self.wire.close().await;
                Err("login refused: the account is banned".into())
            }
        }
    }

    /// One stanza from the device.
    async fn handle(&mut self, node: Node) -> Result<(), End> {
        match node.tag.as_ref() {
            "iq" => self.handle_iq(node).await,
            "message" => {
                let acks = messages::receive(&self.shared.world, &self.shared.cdn, self.device.as_ref(), &node).await;
                for ack in acks {
                    self.send(&ack).await?;
                }
                Ok(())
            }
            "receipt" => {
                let id = attr(&node, "id").unwrap_or_default();
                let to = attr(&node, "to").unwrap_or_default();
                let answer = self.receipt_from_device(&node).await;
                self.send(&stanza::ack("receipt", &id, &to)).await?;
                match answer {
                    Some(answer) => self.send(&answer).await,
                    None => Ok(()),
                }
            }
            "ack" => {
                self.ack_from_device(&node).await;
                Ok(())
            }
            "chatstate" => {
                if let Some(device) = &self.device {
                    messages::chat_state(&self.shared.world, device, &node).await;
                }
                Ok(())
            }
            "ib" | "presence" | "notification" => {
                debug!(tag = %node.tag, "ignored");
                Ok(())
            }
            other => {
                warn!(tag = %other, "unknown stanza; ignored");
                Ok(())
            }
        }
    }

    async fn handle_iq(&mut self, node: Node) -> Result<(), End> {
        let kind = attr(&node, "type").unwrap_or_default();
        if kind == "result" || kind == "error" {
            return self.handle_answer(&node, &kind).await;
        }
        let media_conn =
            attr(&node, "xmlns").as_deref() == Some("w:m") && node.get_optional_child("media_conn").is_some();
        if media_conn {
            let id = attr(&node, "id").unwrap_or_default();
            return self
                .send(&stanza::iq_result(&id, vec![self.shared.cdn.media_conn()]))
                .await;
        }
        let (answers, effect) = iq::answer(&self.shared.world, self.id, self.device.as_ref(), &node).await;
        for answer in &answers {
            self.send(answer).await?;
        }
        match effect {
            Effect::None => Ok(()),
            Effect::WentActive => self.offline_batch().await,
        }
    }

    /// The device went active: what the server holds for it goes out, each
    /// stanza marked `offline`, then `<ib><offline count=N>`; from now on it
    /// goes out live. Then the acks for its sends released while it had no
    /// connection.
    async fn offline_batch(&mut self) -> Result<(), End> {
        let count = self.deliver(true).await?;
        self.live = true;
        info!(device = ?self.device.as_ref().map(DeviceAddr::jid), count, "offline batch delivered");
        self.send(&stanza::offline_done(count)).await?;
        // Acks released while the device had no connection.
        let Some(device) = self.device.clone() else {
            return Ok(());
        };
        for ack in self.shared.world.take_owed_acks(&device).await {
            self.send(&ack).await?;
        }
        Ok(())
    }

    /// Sends what the server holds for the device and this connection did not
    /// send yet, in order (`offline`: as part of the offline batch, announced by
    /// an `offline_preview`). How many stanzas went out.
    async fn deliver(&mut self, offline: bool) -> Result<u32, End> {
        let Some(device) = self.device.clone() else {
            return Ok(0);
        };
        let stanzas = self.shared.world.take_unsent(self.id, &device).await;
        let count = u32::try_from(stanzas.len()).unwrap_or(u32::MAX);
        if offline && count > 0 {
            let messages = stanzas.iter().filter(|node| node.tag == "message").count();
            let messages = u32::try_from(messages).unwrap_or(u32::MAX);
            self.send(&stanza::offline_preview(count, messages)).await?;
        }
        for mut node in stanzas {
            if offline {
                node.attrs.insert("offline", "0");
            }
            self.send(&node).await?;
        }
        Ok(count)
    }

    /// An answer to one of the server's requests: the pair-device ack, or the
    /// device's pair-device-sign (then 515: restart with the new credentials).
    async fn handle_answer(&mut self, node: &Node, kind: &str) -> Result<(), End> {
        let id = attr(node, "id").unwrap_or_default();
        match self.shared.world.answer_pairing(self.id, &id, node).await {
            Some(Ok(addr)) => {
                info!(device = %addr.jid(), "device linked; restart required (515)");
                Err(self.end_with(&stanza::stream_error(515)).await)
            }
            Some(Err(why)) => {
                warn!(%id, %kind, %why, "the device's pairing answer was refused");
                Ok(())
            }
            None => {
                debug!(%id, %kind, "answer");
                Ok(())
            }
        }
    }
}

/// A ref like WhatsApp's: `2@` and random base64.
fn fresh_ref() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    format!("2@{}", BASE64_STANDARD.encode(bytes))
}
