//! A gRPC method's metric handles, looked up once per method when the server starts,
//! so that counting a call is a few atomic adds: no label strings built and no family
//! lookup per call (the hot read path). Each series still appears only once a call
//! of its method (and code) has finished, exactly as a per-call lookup would show it.

use std::{sync::OnceLock, time::Duration};

use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use tonic::Code;

use super::{CallLabels, MethodLabels, Metrics, NewHistogram};

/// How many gRPC codes there are (`OK` = 0 through `UNAUTHENTICATED` = 16).
const CODES: usize = 17;

/// One method's handles: its duration histogram and a counter per code, each made on
/// its first use.
pub struct MethodMeter {
    /// `(service, method)` labels.
    labels: MethodLabels,
    /// Where the counters are registered.
    handled: Family<CallLabels, Counter>,
    /// Where the histogram is registered.
    seconds: Family<MethodLabels, Histogram, NewHistogram>,
    /// The counter of each code, once used.
    by_code: [OnceLock<Counter>; CODES],
    /// The histogram, once used.
    histogram: OnceLock<Histogram>,
}

impl std::fmt::Debug for MethodMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodMeter").field("labels", &self.labels).finish()
    }
}

impl MethodMeter {
    /// Counts one finished call with `code` (named `code_name`) that took `elapsed`.
    pub fn record(&self, code: Code, code_name: &'static str, elapsed: Duration) {
        let index = usize::try_from(i32::from(code)).unwrap_or(CODES).min(CODES - 1);
        let counter = self.by_code[index].get_or_init(|| {
            let call = CallLabels {
                grpc_service: self.labels.grpc_service.clone(),
                grpc_method: self.labels.grpc_method.clone(),
                grpc_code: code_name,
            };
            self.handled.get_or_create(&call).clone()
        });
        counter.inc();
        let histogram = self
            .histogram
            .get_or_init(|| self.seconds.get_or_create(&self.labels).clone());
        histogram.observe(elapsed.as_secs_f64());
    }
}

impl Metrics {
    /// The handles of `service`'s `method`.
    pub(crate) fn grpc_meter(&self, service: &str, method: &str) -> MethodMeter {
        MethodMeter {
            labels: MethodLabels {
                grpc_service: service.to_owned(),
                grpc_method: method.to_owned(),
            },
            handled: self.grpc_handled.clone(),
            seconds: self.grpc_seconds.clone(),
            by_code: Default::default(),
            histogram: OnceLock::new(),
        }
    }
}
