//! The campaigns' baseline: the same texts sent with SendMessage directly over the
//! same sessions, either each session sending its items one after another (what a
//! campaign at interval 0 does, at the daemon's own pace) or paced at a given rate
//! round robin over the sessions.

use std::{sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinSet};
use tonic::transport::Channel;
use wa_sessiond::proto::{
    send_message_request::Content, session_service_client::SessionServiceClient, MessageStatus, SendMessageRequest,
};

use super::rpc::{recipient, text};

/// Calls in flight at most in the paced run (it is paced, not closed-loop).
const PACED_IN_FLIGHT: usize = 4096;

/// How the calls are made.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// One call in flight per session, each session's items back to back.
    PerSession,
    /// This many calls a second, round robin over the sessions.
    Paced(f64),
}

/// What the calls answered.
#[derive(Debug, Default)]
pub struct Answers {
    pub accepted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Answers {
    fn note(&mut self, answer: Result<(), String>) {
        match answer {
            Ok(()) => self.accepted += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Sends `per_session` texts from each of `ids` (session `s`'s item `i` is the
/// text campaign `s` would send as its item `i`, to the same chat).
pub async fn send(channels: &[Channel], ids: &[String], per_session: usize, shape: Shape) -> Answers {
    match shape {
        Shape::PerSession => per_session_loops(channels, ids, per_session).await,
        Shape::Paced(rate) => paced(channels, ids, per_session, rate).await,
    }
}

async fn per_session_loops(channels: &[Channel], ids: &[String], per_session: usize) -> Answers {
    let mut tasks = JoinSet::new();
    for (s, id) in ids.iter().enumerate() {
        let mut client = SessionServiceClient::new(channels[s % channels.len()].clone());
        let id = id.clone();
        tasks.spawn(async move {
            let mut answers = Answers::default();
            for i in 0..per_session {
                answers.note(call(&mut client, &id, s, i).await);
            }
            answers
        });
    }
    let mut all = Answers::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(answers) => {
                all.accepted += answers.accepted;
                all.errors += answers.errors;
                if let Some(e) = answers.first_error {
                    all.first_error.get_or_insert(e);
                }
            }
            Err(e) => all.note(Err(e.to_string())),
        }
    }
    all
}

async fn paced(channels: &[Channel], ids: &[String], per_session: usize, rate: f64) -> Answers {
    let gate = Arc::new(Semaphore::new(PACED_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)));
    let mut tasks = JoinSet::new();
    let mut answers = Answers::default();
    for k in 0..ids.len() * per_session {
        tick.tick().await;
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let (s, i) = (k % ids.len(), k / ids.len());
        let mut client = SessionServiceClient::new(channels[k % channels.len()].clone());
        let id = ids[s].clone();
        tasks.spawn(async move {
            let answer = call(&mut client, &id, s, i).await;
            drop(permit);
            answer
        });
        while let Some(done) = tasks.try_join_next() {
            answers.note(done.map_err(|e| e.to_string()).and_then(|a| a));
        }
    }
    while let Some(done) = tasks.join_next().await {
        answers.note(done.map_err(|e| e.to_string()).and_then(|a| a));
    }
    answers
}

/// One SendMessage: session `s`'s item `i`, with its own idempotency key.
async fn call(client: &mut SessionServiceClient<Channel>, id: &str, s: usize, i: usize) -> Result<(), String> {
    let request = SendMessageRequest {
        session_id: id.to_owned(),
        to: recipient(s, i),
        client_message_id: format!("direct-{s}-{i}"),
        content: Some(Content::Text(text(s, i))),
        ..Default::default()
    };
    let answer = client
        .send_message(request)
        .await
        .map_err(|e| format!("SendMessage: {:?}: {}", e.code(), e.message()))?;
    match answer.into_inner().status {
        s if s == MessageStatus::Sent as i32 => Ok(()),
        s => Err(format!("SendMessage answered status {s}, not SENT")),
    }
}
