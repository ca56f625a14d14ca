//! The tokio runtime handed to whatsapp-rust, with every task it spawns inside the
//! session's tracing span, so the library's own log lines (bridged from `log`) carry
//! `session_id` like ours.

use std::{future::Future, pin::Pin, time::Duration};

use tracing::{Instrument, Span};
use whatsapp_rust::{wacore::runtime::AbortHandle, Runtime, TokioRuntime};

/// A boxed task future, as the library's `Runtime` takes it.
type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// `TokioRuntime`, instrumented with one session's span.
pub struct SessionRuntime {
    /// The session's span (carries `session_id`).
    span: Span,
    /// Does the actual work.
    inner: TokioRuntime,
}

impl SessionRuntime {
    /// A runtime whose tasks run in `span`.
    pub fn new(span: Span) -> Self {
        Self {
            span,
            inner: TokioRuntime,
        }
    }
}

impl Runtime for SessionRuntime {
    fn spawn(&self, future: Task) -> AbortHandle {
        self.inner.spawn(Box::pin(future.instrument(self.span.clone())))
    }

    fn spawn_detached(&self, future: Task) {
        self.inner
            .spawn_detached(Box::pin(future.instrument(self.span.clone())));
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.inner.sleep(duration)
    }

    fn spawn_blocking(&self, f: Box<dyn FnOnce() + Send + 'static>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let span = self.span.clone();
        self.inner.spawn_blocking(Box::new(move || span.in_scope(f)))
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.inner.yield_now()
    }
}
