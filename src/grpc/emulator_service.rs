//! `EmulatorService`: the phone's side of the emulated WhatsApp.

use tonic::{Request, Response, Status};

use crate::{
    backend::emulator::Emulator,
    proto::{self, emulator_service_server::EmulatorService},
    session::SessionId,
};

/// Serves `EmulatorService` on top of the emulator.
#[derive(Clone)]
pub struct EmulatorApi {
    /// The emulated WhatsApp.
    emulator: Emulator,
}

impl EmulatorApi {
    /// Serves `emulator`.
    pub fn new(emulator: Emulator) -> Self {
        Self { emulator }
    }
}

#[tonic::async_trait]
impl EmulatorService for EmulatorApi {
    async fn scan_qr(&self, request: Request<proto::ScanQrRequest>) -> Result<Response<proto::ScanQrResponse>, Status> {
        let body = request.into_inner();
        let id = SessionId::parse(&body.session_id)?;
        let identity = self.emulator.scan_qr(&id, &body.code, &body.phone_number).await?;
        tracing::info!(session_id = %id, "emulated phone scanned the qr code");
        Ok(Response::new(proto::ScanQrResponse {
            phone_number: identity.phone_number,
            jid: identity.jid,
        }))
    }
}
