//! The fake WhatsApp's control API, as the `real` and `media_real` scenarios use it:
//! a phone that scans codes or sends files, and the server's connection counts.

use std::{net::SocketAddr, time::Duration};

use fake_whatsapp::proto::{
    fake_whatsapp_client::FakeWhatsappClient, CountConnectionsRequest, MediaKind, ScanQrRequest, SendMediaRequest,
};
use tonic::transport::Channel;

/// A client of the fake's control API; cheap to clone.
#[derive(Clone)]
pub struct Fake {
    /// The control API.
    control: FakeWhatsappClient<Channel>,
}

impl Fake {
    /// Connects to the control API on `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let channel = crate::client::channel(addr).await?;
        let mut fake = Self {
            control: FakeWhatsappClient::new(channel),
        };
        fake.connections().await?;
        Ok(fake)
    }

    /// The phone `phone` (digits) scans `code`.
    pub async fn scan(&mut self, code: &str, phone: &str) -> Result<(), String> {
        let mut request = tonic::Request::new(ScanQrRequest {
            code: code.into(),
            phone_number: phone.into(),
        });
        request.set_timeout(Duration::from_secs(30));
        self.control
            .scan_qr(request)
            .await
            .map(|_| ())
            .map_err(|e| format!("ScanQr failed: {}", e.message()))
    }

    /// WebSocket connections the fake accepted so far, and open now.
    pub async fn connections(&mut self) -> Result<(u64, u64), String> {
        let counted = self
            .control
            .count_connections(CountConnectionsRequest {})
            .await
            .map_err(|e| format!("CountConnections failed: {}", e.message()))?
            .into_inner();
        Ok((counted.started, counted.open))
    }

    /// The phone `from` sends the account `to` (digits) `data` as a document;
    /// returns the message's id.
    pub async fn send_media(&mut self, to: &str, from: &str, data: Vec<u8>) -> Result<String, String> {
        let len = data.len();
        let mut request = tonic::Request::new(SendMediaRequest {
            to_phone_number: to.into(),
            from_phone_number: from.into(),
            kind: MediaKind::Document as i32,
            mime: "application/octet-stream".into(),
            data,
            file_name: "bench.bin".into(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(600));
        Ok(self
            .control
            .send_media(request)
            .await
            .map_err(|e| format!("SendMedia of {len} bytes failed: {:?}: {}", e.code(), e.message()))?
            .into_inner()
            .message_id)
    }
}
