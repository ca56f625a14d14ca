//! The accept loop the daemon's plain HTTP listeners share (the admin port, the
//! link page): at most a bounded number of connections served at once (more wait in
//! the listen backlog), and a short pause after a failed accept (e.g. out of file
//! descriptors) instead of a busy loop. A listener that can never accept again (its
//! socket was shut down or is not listening) ends the loop with the error, so the
//! daemon notices that the port is gone.

use std::{future::Future, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tracing::warn;

/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until the task is dropped, serving each connection with
/// `serve`, at most `max_connections` at once; `what` names the listener in logs.
/// Returns only when the listener can never accept again, with why.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    what: &'static str,
    mut serve: F,
) -> std::io::Error
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        while connections.len() >= max_connections {
            connections.join_next().await;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream));
                }
                Err(e) if listener_is_gone(&e) => return e,
                Err(e) => {
                    warn!(error = %e, listener = what, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Whether an accept error is for good: the socket is not listening any more
/// (EINVAL after a shutdown) or cannot accept at all. Running out of descriptors,
/// memory or buffers, and aborted connections, pass.
fn listener_is_gone(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
    )
}
