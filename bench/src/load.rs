//! Closed-loop load and latency figures: C clients over a few HTTP/2 connections,
//! each sending its next GetSession when the last one answered; every latency is
//! kept (microseconds) and sorted for the percentiles.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use tonic::transport::Channel;
use wa_sessiond::proto::session_service_client::SessionServiceClient;

use crate::client;

/// Throughput and latency of one measured run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Answered requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Measured span, seconds.
    pub seconds: f64,
    /// Answered requests per second.
    pub rps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
}

/// Latencies (microseconds) of one or more runs.
#[derive(Debug, Default)]
pub struct Latencies {
    micros: Vec<u32>,
    errors: u64,
    elapsed: Duration,
    /// Every request sent, warm-up included (for CPU per request).
    sent: u64,
}

impl Latencies {
    /// Adds one latency.
    pub fn record(&mut self, latency: Duration) {
        self.micros.push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    /// Adds a failed request.
    pub fn fail(&mut self) {
        self.errors += 1;
    }

    /// Adds another run's figures (their spans add up).
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.sent += other.sent;
    }

    /// Sets the measured span.
    pub fn spanning(mut self, elapsed: Duration) -> Self {
        self.elapsed = elapsed;
        self
    }

    /// Every request sent, warm-up included.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The figures.
    pub fn summary(mut self) -> Summary {
        self.micros.sort_unstable();
        let seconds = self.elapsed.as_secs_f64();
        let requests = self.micros.len() as u64;
        Summary {
            requests,
            errors: self.errors,
            seconds,
            rps: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
            p50_ms: percentile(&self.micros, 0.50),
            p99_ms: percentile(&self.micros, 0.99),
            p999_ms: percentile(&self.micros, 0.999),
            max_ms: self.micros.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        }
    }
}

/// The `q` quantile of sorted microseconds, in milliseconds (nearest rank).
pub fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// What one get load run does.
pub struct GetLoad {
    /// Concurrent clients.
    pub clients: u32,
    /// Unmeasured lead-in.
    pub warmup: Duration,
    /// Measured span.
    pub duration: Duration,
    /// Session ids the clients read, round robin.
    pub ids: Arc<Vec<String>>,
}

/// Runs `load` against the connections `channels`: each client sends GetSession
/// after GetSession until the span ends. Latencies of the warm-up are dropped.
pub async fn get_load(channels: &[Channel], load: &GetLoad) -> Latencies {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..load.clients as usize {
        let mut sessions = SessionServiceClient::new(channels[n % channels.len()].clone());
        let ids = load.ids.clone();
        tasks.spawn(async move {
            let mut latencies = Latencies::default();
            let mut next = n;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return latencies;
                }
                let request = client::get(&ids[next % ids.len()]);
                next += 1;
                latencies.sent += 1;
                let answer = sessions.get_session(request).await;
                if sent < measure_from {
                    continue;
                }
                match answer {
                    Ok(_) => latencies.record(sent.elapsed()),
                    Err(_) => latencies.fail(),
                }
            }
        });
    }
    let mut all = Latencies::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(latencies) = done {
            all.merge(latencies);
        }
    }
    all.spanning(measure_from.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let micros: Vec<u32> = (1..=1000).map(|n| n * 1000).collect();
        assert_eq!(percentile(&micros, 0.5), 500.0);
        assert_eq!(percentile(&micros, 0.99), 990.0);
        assert_eq!(percentile(&micros, 0.999), 999.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
