//! The settings of the daemon's edges in production: the admin port, authentication,
//! TLS and the limits that bound what one client can make the daemon hold. Read with
//! the rest of the configuration; `resolve` reads the token file and refuses an
//! unauthenticated daemon on a non-loopback address.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

/// A secret read from the configuration; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn secret(raw: &str) -> Result<Secret, String> {
    Ok(Secret::new(raw))
}

/// Admin port, authentication, TLS and limits.
#[derive(Debug, Clone, Args)]
pub struct EdgeConfig {
    /// HTTP admin address: /livez, /readyz, /metrics.
    #[arg(long, env = "WA_SESSIOND_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// A file holding the bearer token every SessionService and EmulatorService call
    /// must send (`authorization: Bearer <token>`); surrounding whitespace is ignored.
    #[arg(long, env = "WA_SESSIOND_AUTH_TOKEN_FILE", conflicts_with = "auth_token")]
    pub auth_token_file: Option<PathBuf>,

    /// The bearer token itself. Prefer the environment variable or --auth-token-file:
    /// a command line is visible to other users of the machine.
    #[arg(long, env = "WA_SESSIOND_AUTH_TOKEN", hide_env_values = true, value_parser = secret)]
    pub auth_token: Option<Secret>,

    /// Serve without authentication on a non-loopback --listen address.
    #[arg(long, env = "WA_SESSIOND_ALLOW_INSECURE_NO_AUTH")]
    pub allow_insecure_no_auth: bool,

    /// PEM certificate chain of the gRPC server; turns TLS on (with --tls-key).
    #[arg(long, env = "WA_SESSIOND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "WA_SESSIOND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates: clients must present a certificate they signed (mutual TLS).
    #[arg(long, env = "WA_SESSIOND_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// The most sessions this daemon holds; creating more is refused (RESOURCE_EXHAUSTED).
    #[arg(long, env = "WA_SESSIOND_MAX_SESSIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,

    /// The largest request message accepted, in bytes (the default fits the longest
    /// text, 64 KiB, with room to spare).
    #[arg(long, env = "WA_SESSIOND_MAX_REQUEST_BYTES", default_value_t = 131_072, value_parser = clap::value_parser!(u32).range(1024..=4_194_304))]
    pub max_request_bytes: u32,

    /// Calls served at once on one client connection (HTTP/2 streams past it are refused).
    #[arg(long, env = "WA_SESSIOND_MAX_CONCURRENT_REQUESTS_PER_CONNECTION", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_concurrent_requests_per_connection: u32,

    /// Calls in flight at once over all connections; past it a call is refused at once
    /// (RESOURCE_EXHAUSTED), never queued. A stream counts until its response headers
    /// are out; health checks never count.
    #[arg(long, env = "WA_SESSIOND_MAX_INFLIGHT_CALLS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_inflight_calls: u32,
}

impl EdgeConfig {
    /// Reads the token file, checks the token and the TLS files, and refuses to serve
    /// a non-loopback `listen` without authentication unless allowed. The error is
    /// one line for the operator.
    pub fn resolve(&mut self, listen: SocketAddr) -> Result<(), String> {
        if let Some(path) = &self.auth_token_file {
            let raw = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --auth-token-file {}: {e}", path.display()))?;
            self.auth_token = Some(Secret::new(raw.trim()));
        }
        if let Some(token) = &self.auth_token {
            let usable = !token.expose().is_empty() && token.expose().bytes().all(|b| b.is_ascii_graphic());
            if !usable {
                return Err("the auth token must be printable ascii without spaces, and not empty".into());
            }
        }
        for (flag, path) in [
            ("--tls-cert", &self.tls_cert),
            ("--tls-key", &self.tls_key),
            ("--tls-client-ca", &self.tls_client_ca),
        ] {
            if let Some(path) = path {
                std::fs::File::open(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))?;
            }
        }
        let authenticated = self.auth_token.is_some() || self.tls_client_ca.is_some();
        if !listen.ip().is_loopback() && !authenticated && !self.allow_insecure_no_auth {
            return Err(format!(
                "--listen {listen} is not loopback and no auth token is set: set --auth-token-file or WA_SESSIOND_AUTH_TOKEN (or --tls-client-ca), or pass --allow-insecure-no-auth"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Config;

    fn resolved(args: &[&str]) -> Result<Config, String> {
        let mut config = Config::try_parse_from(["wa-sessiond"].iter().chain(args)).map_err(|e| e.to_string())?;
        config.edge.resolve(config.listen)?;
        Ok(config)
    }

    #[test]
    fn a_non_loopback_listen_without_a_token_is_refused_unless_allowed() {
        let refused = resolved(&["--listen", "0.0.0.0:50051"]).unwrap_err();
        assert!(
            refused.contains("not loopback") && refused.contains("--allow-insecure-no-auth"),
            "{refused}"
        );
        assert!(!refused.contains('\n'));
        assert!(resolved(&["--listen", "0.0.0.0:50051", "--allow-insecure-no-auth"]).is_ok());
        assert!(resolved(&["--listen", "0.0.0.0:50051", "--auth-token", "s3cret"]).is_ok());
        assert!(resolved(&["--listen", "[::1]:50051"]).is_ok());
        assert!(resolved(&[]).is_ok());
    }

    #[test]
    fn the_token_file_is_read_and_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret-token\n").unwrap();
        let config = resolved(&["--listen", "0.0.0.0:1", "--auth-token-file", path.to_str().unwrap()]).unwrap();
        assert_eq!(config.edge.auth_token.as_ref().unwrap().expose(), "s3cret-token");
        assert!(!format!("{config:?}").contains("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        let empty = resolved(&["--auth-token-file", path.to_str().unwrap()]).unwrap_err();
        assert!(empty.contains("not empty"), "{empty}");
        let missing = resolved(&["--auth-token-file", "/nonexistent/token"]).unwrap_err();
        assert!(missing.contains("cannot read --auth-token-file"), "{missing}");
    }

    #[test]
    fn tls_needs_a_cert_and_a_key_and_limits_have_sane_defaults() {
        assert!(resolved(&["--tls-cert", "/x.pem"]).is_err());
        assert!(resolved(&["--tls-client-ca", "/ca.pem"]).is_err());
        let config = resolved(&[]).unwrap();
        assert_eq!(config.edge.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.edge.max_sessions, 10_000);
        assert_eq!(config.edge.max_request_bytes, 131_072);
        assert_eq!(config.edge.max_concurrent_requests_per_connection, 256);
        assert_eq!(config.edge.max_inflight_calls, 10_000);
        assert!(resolved(&["--max-sessions", "0"]).is_err());
        assert!(resolved(&["--max-inflight-calls", "0"]).is_err());
    }
}
