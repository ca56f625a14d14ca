//! Messages devices send: each is acknowledged as the server does
//! (`<ack class="message">`).

use wacore_binary::Node;

use crate::{
    stanza::{self, attr},
    world::World,
};

/// Takes a `<message>` from device `from`: the acks to send back.
pub async fn receive(_world: &World, from: &str, message: &Node) -> Vec<Node> {
    let id = attr(message, "id").unwrap_or_default();
    let to = attr(message, "to").unwrap_or_default();
    tracing::info!(%from, %to, %id, "message received");
    vec![stanza::ack("message", &id, &to)]
}
