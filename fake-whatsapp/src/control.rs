//! The control API (`wasessiond.fake.v1.FakeWhatsapp`): the test's hands on the
//! fake's phones and server. It only converts requests and maps refusals to gRPC
//! codes; the world does the work.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    conn::Shared,
    pair_code,
    proto::{
        fake_whatsapp_server::FakeWhatsapp, CountConnectionsRequest, CountConnectionsResponse, DropConnectionsRequest,
        DropConnectionsResponse, EnterPairingCodeRequest, EnterPairingCodeResponse, FailConnectsRequest,
        FailConnectsResponse, ListReceivedMessagesRequest, ListReceivedMessagesResponse, LogoutDeviceRequest,
        LogoutDeviceResponse, ReplaceStreamRequest, ReplaceStreamResponse, ScanQrRequest, ScanQrResponse,
    },
    world::Refusal,
};

/// The service over the shared state.
pub struct Control {
    /// What the connections share.
    pub shared: Arc<Shared>,
}

fn status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::NotFound(why) => Status::not_found(why),
        Refusal::Invalid(why) => Status::invalid_argument(why),
    }
}

#[tonic::async_trait]
impl FakeWhatsapp for Control {
    async fn scan_qr(&self, request: Request<ScanQrRequest>) -> Result<Response<ScanQrResponse>, Status> {
        let request = request.into_inner();
        let device = self
            .shared
            .world
            .scan(&request.code, &request.phone_number)
            .await
            .map_err(status)?;
        tracing::info!(device = %device.jid(), "a phone scanned a qr code");
        Ok(Response::new(ScanQrResponse {
            jid: device.jid(),
            phone_number: device.phone,
        }))
    }

    async fn enter_pairing_code(
        &self,
        request: Request<EnterPairingCodeRequest>,
    ) -> Result<Response<EnterPairingCodeResponse>, Status> {
        let code = request.into_inner().code;
        let device = pair_code::enter(&self.shared.world, &code).await.map_err(status)?;
        tracing::info!(device = %device.jid(), "a phone typed a pairing code");
        Ok(Response::new(EnterPairingCodeResponse {
            jid: device.jid(),
            phone_number: device.phone,
        }))
    }

    async fn drop_connections(
        &self,
        request: Request<DropConnectionsRequest>,
    ) -> Result<Response<DropConnectionsResponse>, Status> {
        let phone = request.into_inner().phone_number;
        let dropped = self.shared.world.drop_connections(&phone).await;
        tracing::info!(%phone, dropped, "dropping connections");
        Ok(Response::new(DropConnectionsResponse { dropped }))
    }

    async fn logout_device(
        &self,
        request: Request<LogoutDeviceRequest>,
    ) -> Result<Response<LogoutDeviceResponse>, Status> {
        let phone = request.into_inner().phone_number;
        let removed = self.shared.world.logout_devices(&phone).await.map_err(status)?;
        tracing::info!(%phone, removed, "the phone unlinked its devices");
        Ok(Response::new(LogoutDeviceResponse { removed }))
    }

    async fn replace_stream(
        &self,
        request: Request<ReplaceStreamRequest>,
    ) -> Result<Response<ReplaceStreamResponse>, Status> {
        let phone = request.into_inner().phone_number;
        let replaced = self.shared.world.replace_streams(&phone).await.map_err(status)?;
        tracing::info!(%phone, replaced, "streams replaced");
        Ok(Response::new(ReplaceStreamResponse { replaced }))
    }

    async fn fail_connects(
        &self,
        request: Request<FailConnectsRequest>,
    ) -> Result<Response<FailConnectsResponse>, Status> {
        let count = request.into_inner().count;
        self.shared.world.fail_connects(count).await;
        tracing::info!(count, "refusing the next connections");
        Ok(Response::new(FailConnectsResponse {}))
    }

    async fn list_received_messages(
        &self,
        _request: Request<ListReceivedMessagesRequest>,
    ) -> Result<Response<ListReceivedMessagesResponse>, Status> {
        let messages = self.shared.world.received().await;
        Ok(Response::new(ListReceivedMessagesResponse { messages }))
    }

    async fn count_connections(
        &self,
        _request: Request<CountConnectionsRequest>,
    ) -> Result<Response<CountConnectionsResponse>, Status> {
        let (started, open) = self.shared.world.count_connections().await;
        Ok(Response::new(CountConnectionsResponse { started, open }))
    }
}
