//! One client's byte stream: WebSocket messages in and out, WhatsApp's connection
//! header in front of the client's first frame, and 3-byte length framing with
//! buffering (a client may coalesce frames into one message or split one across
//! several).

use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_websockets::{CloseCode, Message, WebSocketStream};
use wacore_noise::framing::FrameDecoder;

use crate::noise::WA_CONN_HEADER;

/// How the stream ended or broke.
#[derive(Debug)]
pub enum WireEnd {
    /// The client closed the socket.
    Closed,
    /// Something it sent was not WhatsApp's framing, or the socket failed.
    Broken(String),
}

/// A client's socket with the framing state.
pub struct Wire {
    /// The upgraded socket.
    socket: WebSocketStream<TcpStream>,
    /// Whether the connection header was read.
    header_read: bool,
    /// Bytes before the header is complete.
    head: Vec<u8>,
    /// Frames being reassembled.
    frames: FrameDecoder,
}

impl Wire {
    /// Wraps an upgraded socket.
    pub fn new(socket: WebSocketStream<TcpStream>) -> Self {
        Self {
            socket,
            header_read: false,
            head: Vec::new(),
            frames: FrameDecoder::new(),
        }
    }

    /// The next complete frame (without its length), reading as many messages as
    /// it takes. Cancel-safe: bytes read stay buffered.
    pub async fn next_frame(&mut self) -> Result<BytesMut, WireEnd> {
        loop {
            if let Some(frame) = self.frames.decode_frame() {
                return Ok(frame);
            }
            let message = match self.socket.next().await {
                None => return Err(WireEnd::Closed),
                Some(Err(e)) => return Err(WireEnd::Broken(format!("websocket: {e}"))),
                Some(Ok(message)) => message,
            };
            if message.is_close() {
                return Err(WireEnd::Closed);
            }
            if !message.is_binary() {
                continue;
            }
            let payload = message.into_payload();
            self.feed(&payload)?;
        }
    }

    /// Like `next_frame`, bounded by `bound`.
    pub async fn next_frame_within(&mut self, bound: Duration) -> Result<BytesMut, WireEnd> {
        tokio::time::timeout(bound, self.next_frame())
            .await
            .map_err(|_| WireEnd::Broken(format!("nothing received within {bound:?}")))?
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), WireEnd> {
        if self.header_read {
            self.frames.feed(bytes);
            return Ok(());
        }
        self.head.extend_from_slice(bytes);
        if self.head.len() < WA_CONN_HEADER.len() {
            return Ok(());
        }
        if self.head[..WA_CONN_HEADER.len()] != WA_CONN_HEADER {
            return Err(WireEnd::Broken(format!(
                "the connection does not start with WhatsApp's header (got {:02x?})",
                &self.head[..WA_CONN_HEADER.len()]
            )));
        }
        self.header_read = true;
        let rest = self.head.split_off(WA_CONN_HEADER.len());
        self.frames.feed(&rest);
        Ok(())
    }

    /// Sends bytes (one or more frames) as one binary message.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), WireEnd> {
        self.socket
            .send(Message::binary(bytes))
            .await
            .map_err(|e| WireEnd::Broken(format!("websocket: {e}")))
    }

    /// Closes the socket (a normal close), best effort.
    pub async fn close(&mut self) {
        let _ = self
            .socket
            .send(Message::close(Some(CloseCode::NORMAL_CLOSURE), ""))
            .await;
        let _ = self.socket.close().await;
    }
}
