//! Linking by pairing code, on the world's side: the connections waiting for a code
//! to be typed, the phone's `primary_hello` out and the device's `companion_finish`
//! back, then the pair-success as after a QR scan (`pair_code` drives it).

use tokio::sync::oneshot;
use wacore_binary::Node;

use super::{Order, World};
use crate::{
    pairing::ScannedCode,
    vocab::{CodeRequest, ConnId, DeviceAddr, Refusal},
};

impl World {
    /// A device on connection `id` asked for a pairing code for `request.phone`.
    pub async fn request_code(&self, id: ConnId, request: CodeRequest) {
        if let Some(conn) = self.inner.lock().await.conns.get_mut(&id) {
            conn.code_request = Some(request);
        }
    }

    /// The connections waiting for a pairing code to be typed, newest first.
    pub async fn code_requests(&self) -> Vec<(ConnId, CodeRequest)> {
        let inner = self.inner.lock().await;
        let mut waiting: Vec<_> = inner
            .conns
            .iter()
            .filter_map(|(id, conn)| Some((*id, conn.code_request.clone()?)))
            .collect();
        waiting.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        waiting
    }

    /// Sends the phone's `primary_hello` to connection `id`; the device's
    /// `companion_finish` arrives on the receiver.
    pub async fn send_primary_hello(&self, id: ConnId, hello: Node) -> Option<oneshot::Receiver<Node>> {
        let mut inner = self.inner.lock().await;
        let conn = inner.conns.get_mut(&id)?;
        let (tx, rx) = oneshot::channel();
        conn.orders.send(Order::Send(hello)).ok()?;
        conn.finish_waiter = Some(tx);
        Some(rx)
    }

    /// The device on connection `id` sent its `companion_finish`.
    pub async fn companion_finished(&self, id: ConnId, finish: Node) {
        let waiter = self
            .inner
            .lock()
            .await
            .conns
            .get_mut(&id)
            .and_then(|conn| conn.finish_waiter.take());
        match waiter {
            Some(waiter) => drop(waiter.send(finish)),
            None => tracing::warn!("a companion_finish nobody waits for"),
        }
    }

    /// The typed code checked out: sends the pair-success to connection `id`.
    pub async fn pair_by_code(&self, id: ConnId, phone: &str, code: ScannedCode) -> Result<DeviceAddr, Refusal> {
        let mut inner = self.inner.lock().await;
        if let Some(conn) = inner.conns.get_mut(&id) {
            conn.code_request = None;
        }
        inner.pair_on(id, phone, code)
    }
}
