//! The control API (`wasessiond.fake.v1.FakeWhatsapp`): the test's hands on the
//! fake's phones and server. It only converts requests and maps refusals to gRPC
//! codes; the world does the work.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::{
    conn::Shared,
    pair_code,
    proto::{
        self, fake_whatsapp_server::FakeWhatsapp, AnswerResendRequestsRequest, AnswerResendRequestsResponse,
        CountConnectionsRequest, CountConnectionsResponse, CountMediaRequestsRequest, CountMediaRequestsResponse,
        CountPendingRequest, CountPendingResponse, DropConnectionsRequest, DropConnectionsResponse,
        EnterPairingCodeRequest, EnterPairingCodeResponse, ExpireMediaRequest, ExpireMediaResponse,
        FailConnectsRequest, FailConnectsResponse, HoldServerAcksRequest, HoldServerAcksResponse,
        ListClientVersionsRequest, ListClientVersionsResponse, ListReceivedMessagesRequest,
        ListReceivedMessagesResponse, LogoutDeviceRequest, LogoutDeviceResponse, RefuseUnlinksRequest,
        RefuseUnlinksResponse, RejectSendsRequest, RejectSendsResponse, ReplaceStreamRequest, ReplaceStreamResponse,
        ScanQrRequest, ScanQrResponse, SendMediaRequest, SendMediaResponse, SendMessageRequest, SendMessageResponse,
        SendReceiptRequest, SendReceiptResponse, SendUndecryptableMessageRequest, SendUndecryptableMessageResponse,
        SetAccountHealthRequest, SetAccountHealthResponse, SetMinimumVersionRequest, SetMinimumVersionResponse,
        SetRegisteredRequest, SetRegisteredResponse,
    },
    version,
    vocab::Refusal,
    world::ReceiptKind,
};

/// The largest control request taken (a `SendMedia` carries a whole file).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024 * 1024;

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

    async fn refuse_unlinks(
        &self,
        request: Request<RefuseUnlinksRequest>,
    ) -> Result<Response<RefuseUnlinksResponse>, Status> {
        let count = request.into_inner().count;
        self.shared.world.refuse_unlinks(count).await;
        tracing::info!(count, "refusing the next unlink requests");
        Ok(Response::new(RefuseUnlinksResponse {}))
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

    async fn send_message(
        &self,
        request: Request<SendMessageRequest>,
    ) -> Result<Response<SendMessageResponse>, Status> {
        let request = request.into_inner();
        let (to, from) = (request.to_phone_number, request.from_phone_number);
        let message_id = self
            .shared
            .world
            .send_message(&to, &from, &request.text, &request.message_id)
            .await
            .map_err(status)?;
        tracing::debug!(%to, %from, %message_id, "a phone sent a message");
        Ok(Response::new(SendMessageResponse { message_id }))
    }

    async fn send_undecryptable_message(
        &self,
        request: Request<SendUndecryptableMessageRequest>,
    ) -> Result<Response<SendUndecryptableMessageResponse>, Status> {
        let request = request.into_inner();
        let (to, from) = (request.to_phone_number, request.from_phone_number);
        let message_id = self
            .shared
            .world
            .send_undecryptable(&to, &from, &request.text)
            .await
            .map_err(status)?;
        tracing::debug!(%to, %from, %message_id, "a phone sent an undecryptable message");
        Ok(Response::new(SendUndecryptableMessageResponse { message_id }))
    }

    async fn answer_resend_requests(
        &self,
        request: Request<AnswerResendRequestsRequest>,
    ) -> Result<Response<AnswerResendRequestsResponse>, Status> {
        let answer = request.into_inner().answer;
        self.shared.world.answer_resend_requests(answer).await;
        Ok(Response::new(AnswerResendRequestsResponse {}))
    }

    async fn send_receipt(
        &self,
        request: Request<SendReceiptRequest>,
    ) -> Result<Response<SendReceiptResponse>, Status> {
        let request = request.into_inner();
        let kind = match proto::ReceiptKind::try_from(request.kind) {
            Ok(proto::ReceiptKind::Delivered) => ReceiptKind::Delivered,
            Ok(proto::ReceiptKind::Read) => ReceiptKind::Read,
            Ok(proto::ReceiptKind::Played) => ReceiptKind::Played,
            Ok(proto::ReceiptKind::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(
                    "a receipt kind is required: delivered, read or played",
                ))
            }
        };
        let (to, from) = (request.to_phone_number, request.from_phone_number);
        self.shared
            .world
            .send_receipt(&to, &from, &request.message_ids, kind)
            .await
            .map_err(status)?;
        tracing::debug!(%to, %from, ?kind, ids = request.message_ids.len(), "a phone sent a receipt");
        Ok(Response::new(SendReceiptResponse {}))
    }

    async fn count_pending(
        &self,
        request: Request<CountPendingRequest>,
    ) -> Result<Response<CountPendingResponse>, Status> {
        let phone = request.into_inner().phone_number;
        let pending = self.shared.world.count_pending(&phone).await.map_err(status)?;
        Ok(Response::new(CountPendingResponse { pending }))
    }

    async fn reject_sends(
        &self,
        request: Request<RejectSendsRequest>,
    ) -> Result<Response<RejectSendsResponse>, Status> {
        let request = request.into_inner();
        let (phone, code, count) = (request.phone_number, request.code, request.count);
        self.shared
            .world
            .reject_sends(&phone, code, count)
            .await
            .map_err(status)?;
        tracing::info!(%phone, code, count, "refusing the account's next sends");
        Ok(Response::new(RejectSendsResponse {}))
    }

    async fn hold_server_acks(
        &self,
        request: Request<HoldServerAcksRequest>,
    ) -> Result<Response<HoldServerAcksResponse>, Status> {
        let request = request.into_inner();
        let (phone, hold) = (request.phone_number, request.hold);
        let released = self.shared.world.hold_acks(&phone, hold).await.map_err(status)?;
        tracing::info!(%phone, hold, released, "server acks held or released");
        Ok(Response::new(HoldServerAcksResponse { released }))
    }

    async fn set_account_health(
        &self,
        request: Request<SetAccountHealthRequest>,
    ) -> Result<Response<SetAccountHealthResponse>, Status> {
        let request = request.into_inner();
        let reachout_for = duration(request.reachout_restricted_for, "reachout_restricted_for")?;
        let ban_for = duration(request.temp_ban_for, "temp_ban_for")?;
        let (phone, reason) = (request.phone_number, request.temp_ban_reason);
        let told = self
            .shared
            .world
            .set_health(&phone, reachout_for, reason, ban_for)
            .await
            .map_err(status)?;
        tracing::info!(%phone, ?reachout_for, reason, ?ban_for, told, "account health set");
        Ok(Response::new(SetAccountHealthResponse { told }))
    }

    async fn set_registered(
        &self,
        request: Request<SetRegisteredRequest>,
    ) -> Result<Response<SetRegisteredResponse>, Status> {
        let request = request.into_inner();
        let (numbers, registered) = (request.phone_numbers, request.registered);
        if request.rate_limit_next_checks > 0 {
            let (count, backoff) = (request.rate_limit_next_checks, request.rate_limit_backoff_seconds);
            self.shared.world.rate_limit_checks(count, backoff).await;
            tracing::info!(
                count,
                backoff,
                "the next contact queries are refused for their rate (429)"
            );
        }
        let (contact_queries, numbers_checked) = self
            .shared
            .world
            .set_registered(&numbers, registered)
            .await
            .map_err(status)?;
        tracing::info!(count = numbers.len(), registered, "numbers marked on WhatsApp or not");
        Ok(Response::new(SetRegisteredResponse {
            contact_queries,
            numbers_checked,
        }))
    }

    async fn set_minimum_version(
        &self,
        request: Request<SetMinimumVersionRequest>,
    ) -> Result<Response<SetMinimumVersionResponse>, Status> {
        let minimum = version::parse(&request.into_inner().version).map_err(Status::invalid_argument)?;
        let state = self.shared.versions.set_minimum(minimum);
        tracing::info!(minimum = %version::dotted(minimum), current = %version::dotted(state.current), "minimum version raised");
        Ok(Response::new(SetMinimumVersionResponse {
            current_version: version::dotted(state.current),
        }))
    }

    async fn list_client_versions(
        &self,
        _request: Request<ListClientVersionsRequest>,
    ) -> Result<Response<ListClientVersionsResponse>, Status> {
        let versions = self.shared.versions.seen_dotted().await;
        Ok(Response::new(ListClientVersionsResponse { versions }))
    }

    async fn send_media(&self, request: Request<SendMediaRequest>) -> Result<Response<SendMediaResponse>, Status> {
        let request = request.into_inner();
        let (to, from) = (request.to_phone_number.as_str(), request.from_phone_number.as_str());
        let shared = &self.shared;
        shared.world.check_recipient(to, from).await.map_err(status)?;
        let id = crate::world::new_message_id();
        let (message, direct_path) = shared.phones.seal(&shared.cdn, &id, &request).await.map_err(status)?;
        let message_id = shared.world.send_media(to, from, &id, &message).await.map_err(status)?;
        tracing::info!(%to, %from, %message_id, size = request.data.len(), "a phone sent media");
        Ok(Response::new(SendMediaResponse {
            message_id,
            direct_path,
        }))
    }

    async fn expire_media(
        &self,
        request: Request<ExpireMediaRequest>,
    ) -> Result<Response<ExpireMediaResponse>, Status> {
        let request = request.into_inner();
        let direct_path = self
            .shared
            .phones
            .expire(
                &self.shared.cdn,
                &request.message_id,
                &request.direct_path,
                request.phone_online,
            )
            .await
            .map_err(status)?;
        tracing::info!(%direct_path, phone_online = request.phone_online, "media expired");
        Ok(Response::new(ExpireMediaResponse { direct_path }))
    }

    async fn count_media_requests(
        &self,
        _request: Request<CountMediaRequestsRequest>,
    ) -> Result<Response<CountMediaRequestsResponse>, Status> {
        let counts = self.shared.cdn.counts().await;
        Ok(Response::new(CountMediaRequestsResponse {
            uploads: counts.uploads,
            downloads: counts.downloads,
            reupload_requests: counts.reupload_requests,
            resume_checks: counts.resume_checks,
            resumed_uploads: counts.resumed_uploads,
            phone_uploads: counts.phone_uploads,
        }))
    }

    async fn rate_limit(
        &self,
        request: Request<proto::RateLimitRequest>,
    ) -> Result<Response<proto::RateLimitResponse>, Status> {
        let phone = request.into_inner().phone_number;
        let devices = self.shared.world.rate_limit(&phone).await.map_err(status)?;
        tracing::info!(%phone, devices, "streams rate-limited (429)");
        Ok(Response::new(proto::RateLimitResponse { devices }))
    }
}

/// A request's duration (absent: zero); a negative one is refused.
fn duration(value: Option<prost_types::Duration>, field: &str) -> Result<std::time::Duration, Status> {
    let Some(value) = value else {
        return Ok(std::time::Duration::ZERO);
    };
    std::time::Duration::try_from(value).map_err(|_| Status::invalid_argument(format!("{field} must not be negative")))
}
