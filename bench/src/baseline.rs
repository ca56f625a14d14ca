//! The baseline: a plain tonic server, in its own process like the daemon, whose
//! GetSession returns a clone of one prebuilt Session (a real one fetched from the
//! daemon, so the same encoded size) and whose other methods are UNIMPLEMENTED.
//! What the daemon costs on top of gRPC is the difference between the two.

use std::{net::SocketAddr, path::Path};

use prost::Message;
use tonic::{Request, Response, Status};
use wa_sessiond::proto::{self, session_service_server::SessionService, session_service_server::SessionServiceServer};

/// Serves the baseline on `listen` until the process is killed.
pub async fn serve(listen: SocketAddr, prototype: &Path) -> Result<(), String> {
    let bytes = std::fs::read(prototype).map_err(|e| format!("cannot read {}: {e}", prototype.display()))?;
    let session = proto::Session::decode(bytes.as_slice()).map_err(|e| format!("bad prototype session: {e}"))?;
    tonic::transport::Server::builder()
        .add_service(SessionServiceServer::new(Baseline { session }))
        .serve(listen)
        .await
        .map_err(|e| format!("baseline server failed: {e}"))
}

/// Answers GetSession with `session`.
struct Baseline {
    /// The prebuilt answer.
    session: proto::Session,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("the baseline serves GetSession only"))
}

type Empty<T> = tokio_stream::Empty<Result<T, Status>>;

#[tonic::async_trait]
impl SessionService for Baseline {
    type WatchSessionStream = Empty<proto::Session>;
    type WatchSessionsStream = Empty<proto::SessionEvent>;
    type DownloadMediaStream = Empty<proto::MediaChunk>;

    async fn upload_media(
        &self,
        _: Request<tonic::Streaming<proto::UploadMediaRequest>>,
    ) -> Result<Response<proto::MediaHandle>, Status> {
        unimplemented()
    }

    async fn download_media(
        &self,
        _: Request<proto::DownloadMediaRequest>,
    ) -> Result<Response<Self::DownloadMediaStream>, Status> {
        unimplemented()
    }

    async fn get_session(&self, _: Request<proto::GetSessionRequest>) -> Result<Response<proto::Session>, Status> {
        Ok(Response::new(self.session.clone()))
    }

    async fn create_session(
        &self,
        _: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        unimplemented()
    }

    async fn list_sessions(
        &self,
        _: Request<proto::ListSessionsRequest>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        unimplemented()
    }

    async fn refresh_qr(&self, _: Request<proto::RefreshQrRequest>) -> Result<Response<proto::Session>, Status> {
        unimplemented()
    }

    async fn watch_session(
        &self,
        _: Request<proto::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        unimplemented()
    }

    async fn watch_sessions(
        &self,
        _: Request<proto::WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        unimplemented()
    }

    async fn disconnect_session(
        &self,
        _: Request<proto::DisconnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        unimplemented()
    }

    async fn connect_session(
        &self,
        _: Request<proto::ConnectSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        unimplemented()
    }

    async fn logout_session(
        &self,
        _: Request<proto::LogoutSessionRequest>,
    ) -> Result<Response<proto::Session>, Status> {
        unimplemented()
    }

    async fn delete_session(
        &self,
        _: Request<proto::DeleteSessionRequest>,
    ) -> Result<Response<proto::DeleteSessionResponse>, Status> {
        unimplemented()
    }

    async fn send_text_message(
        &self,
        _: Request<proto::SendTextMessageRequest>,
    ) -> Result<Response<proto::SendTextMessageResponse>, Status> {
        unimplemented()
    }

    async fn send_message(
        &self,
        _: Request<proto::SendMessageRequest>,
    ) -> Result<Response<proto::SendMessageResponse>, Status> {
        unimplemented()
    }

    async fn get_message_status(
        &self,
        _: Request<proto::GetMessageStatusRequest>,
    ) -> Result<Response<proto::MessageStatusInfo>, Status> {
        unimplemented()
    }

    async fn send_chat_state(
        &self,
        _: Request<proto::SendChatStateRequest>,
    ) -> Result<Response<proto::SendChatStateResponse>, Status> {
        unimplemented()
    }

    async fn mark_read(&self, _: Request<proto::MarkReadRequest>) -> Result<Response<proto::MarkReadResponse>, Status> {
        unimplemented()
    }

    async fn get_account_health(
        &self,
        _: Request<proto::GetAccountHealthRequest>,
    ) -> Result<Response<proto::AccountHealth>, Status> {
        unimplemented()
    }

    async fn request_pairing_code(
        &self,
        _: Request<proto::RequestPairingCodeRequest>,
    ) -> Result<Response<proto::PairingCode>, Status> {
        unimplemented()
    }

    async fn create_link_url(
        &self,
        _: Request<proto::CreateLinkUrlRequest>,
    ) -> Result<Response<proto::CreateLinkUrlResponse>, Status> {
        unimplemented()
    }

    async fn revoke_links(
        &self,
        _: Request<proto::RevokeLinksRequest>,
    ) -> Result<Response<proto::RevokeLinksResponse>, Status> {
        unimplemented()
    }
}
