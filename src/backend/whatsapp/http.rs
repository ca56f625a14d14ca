//! The HTTP client whatsapp-rust uses for media (uploads, downloads, the resume
//! checks) in a `fake-whatsapp` build: it trusts only the fake WhatsApp's CA
//! (`fake_whatsapp::CA_PEM`, not the public web PKI) and refuses any host that
//! is not loopback, as such a build talks only to the fake. A default build does
//! not compile this module: it keeps the library's own client (ureq, the public
//! web PKI).

use std::{net::IpAddr, sync::Arc};

use whatsapp_rust::{
    anyhow::{self, anyhow},
    async_trait,
    http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient},
    wacore::net::{StreamingHttpResponse, UploadBody},
};

/// whatsapp-rust's ureq client with the fake's CA as the only root, behind a
/// loopback check on every request.
#[derive(Debug, Clone)]
pub struct LoopbackOnly {
    inner: UreqHttpClient,
}

impl LoopbackOnly {
    /// The client; panics only if the fake's committed CA does not parse (a
    /// build defect, caught by every test that builds a client).
    pub fn new() -> Self {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let ca = Certificate::from_pem(fake_whatsapp::CA_PEM.as_bytes()).expect("the fake's ca parses");
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
            .build();
        let agent = ureq::Agent::config_builder().tls_config(tls).build().new_agent();
        Self {
            inner: UreqHttpClient::with_agent(agent),
        }
    }
}

impl Default for LoopbackOnly {
    fn default() -> Self {
        Self::new()
    }
}

/// `Ok` when `url`'s host is a loopback address or `localhost`; else an error
/// saying why it is refused.
fn loopback(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow!("refusing a malformed media url: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let is_loopback = bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if is_loopback {
        return Ok(());
    }
    Err(anyhow!(
        "refusing media host {host:?}: a fake-whatsapp build talks only to loopback hosts (the fake's cdn)"
    ))
}

#[async_trait]
impl HttpClient for LoopbackOnly {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        loopback(&request.url)?;
        self.inner.execute(request).await
    }

    fn supports_streaming(&self) -> bool {
        self.inner.supports_streaming()
    }

    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        loopback(&request.url)?;
        self.inner.execute_streaming(request)
    }

    fn supports_upload_streaming(&self) -> bool {
        self.inner.supports_upload_streaming()
    }

    fn execute_upload(
        &self,
        request: HttpRequest,
        body: UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        loopback(&request.url)?;
        self.inner.execute_upload(request, body, content_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_pass_and_the_rest_are_refused_saying_so() {
        for url in [
            "https://127.0.0.1:4443/mms/image/T?auth=a&token=T",
            "https://[::1]:4443/v/t62/x.enc?token=T",
            "https://localhost/v/x.enc",
            "https://127.8.9.10/x",
        ] {
            assert!(loopback(url).is_ok(), "{url} is loopback");
        }
        for url in [
            "https://mmg.whatsapp.net/v/t62.7118-24/x.enc?auth=a&token=T",
            "https://10.0.0.1/x",
            "https://[2001:db8::1]/x",
            "https://localhost.example.com/x",
        ] {
            let refusal = loopback(url).expect_err(url).to_string();
            assert!(refusal.contains("only to loopback"), "{url}: {refusal}");
        }
    }

    #[tokio::test]
    async fn a_request_to_a_public_host_is_refused_before_any_connection() {
        let client = LoopbackOnly::new();
        let refused = client
            .execute(HttpRequest::get("https://mmg.whatsapp.net/v/t62.7118-24/x.enc?token=T"))
            .await
            .expect_err("a public host is refused");
        assert!(
            refused.to_string().contains("refusing media host \"mmg.whatsapp.net\""),
            "{refused}"
        );
        let upload = HttpRequest::post("https://203.0.113.7/mms/image/T?auth=a&token=T");
        let refused = client
            .execute_upload(upload, Box::new(std::io::empty()), 0)
            .expect_err("an upload to a public host is refused");
        assert!(refused.to_string().contains("only to loopback"), "{refused}");
    }

    #[tokio::test]
    async fn the_fakes_cdn_is_trusted_and_the_public_pki_client_is_not() {
        let fake = fake_whatsapp::Running::start(fake_whatsapp::Options::default())
            .await
            .expect("the fake starts");
        let url = format!("https://{}/v/t62.7118-24/none.enc?token=T", fake.cdn_addr);
        let answered = LoopbackOnly::new()
            .execute(HttpRequest::get(url.clone()))
            .await
            .expect("the fake's certificate is trusted");
        assert_eq!(answered.status_code, 404, "an unknown file");
        let public = UreqHttpClient::new().execute(HttpRequest::get(url)).await;
        assert!(
            public.is_err(),
            "the library's default client does not trust the fake's ca"
        );
        fake.stop().await;
    }
}
