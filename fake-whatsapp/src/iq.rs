//! Answers to the requests (`<iq type="get|set">`) a logged-in or pairing device
//! sends, by namespace, each by its id in whatever order they come: keepalive,
//! passive/active (going active starts the offline batch), pre-keys (fetches of
//! the phones' bundles; the device's own uploads and rotations are kept for the
//! phones that message it), usync device lists, A/B props, blocklist, privacy,
//! app state, companion removal, the reach-out timelock query (GraphQL over
//! `w:mex`). Anything else gets an error answer and a log
//! line, never silence.

use tracing::{debug, warn};
use wacore_binary::{builder::NodeBuilder, Node};

use crate::{
    health, pair_code, prekeys,
    stanza::{self, attr},
    vocab::{ConnId, DeviceAddr},
    world::World,
};

/// What the connection does besides sending the answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// The device went active: the offline batch and its end marker follow.
    WentActive,
}

/// The answers to `iq` from connection `conn`, in order, and what follows.
pub async fn answer(world: &World, conn: ConnId, device: Option<&DeviceAddr>, iq: &Node) -> (Vec<Node>, Effect) {
    let id = attr(iq, "id").unwrap_or_default();
    let xmlns = attr(iq, "xmlns").unwrap_or_default();
    let kind = attr(iq, "type").unwrap_or_default();
    let first = iq
        .children()
        .and_then(|c| c.first())
        .map(|c| c.tag.to_string())
        .unwrap_or_default();
    debug!(%id, %xmlns, %kind, child = %first, "iq");
    let result = |children: Vec<Node>| vec![stanza::iq_result(&id, children)];
    let answers = match (xmlns.as_str(), first.as_str()) {
        ("w:p", _) => result(vec![]),
        // Going active: the offline batch and its marker follow the answer.
        ("passive", "active") => return (result(vec![]), Effect::WentActive),
        ("passive", _) => result(vec![]),
        ("encrypt", "count") => result(vec![NodeBuilder::new("count").attr("value", "50").build()]),
        // Leaving the digest unparseable makes the client skip its validation quietly.
        ("encrypt", "digest") => result(vec![]),
        ("encrypt", "key") => match prekeys::bundles(world, iq).await {
            Ok(list) => result(vec![list]),
            Err(why) => {
                warn!(%id, %why, "could not answer a pre-key fetch");
                vec![stanza::iq_error(&id, 500, "internal-server-error")]
            }
        },
        ("encrypt", _) if kind == "set" => {
            if let Some(device) = device {
                if let Err(why) = world.publish_keys(device, iq).await {
                    warn!(%id, %why, "could not read the device's keys");
                }
            }
            result(vec![])
        }
        ("usync", _) if is_contact_query(iq) => result(vec![contacts(world, iq).await]),
        ("usync", _) => result(vec![usync(iq)]),
        ("abt", _) => result(vec![NodeBuilder::new("props").attr("protocol", "1").build()]),
        ("blocklist", _) => result(vec![NodeBuilder::new("list").build()]),
        ("privacy", "privacy") if kind == "get" => result(vec![NodeBuilder::new("privacy").build()]),
        ("privacy", _) if kind == "set" => result(vec![]),
        ("w:sync:app:state", _) => result(vec![app_state(iq)]),
        ("w:mex", "query") if query_id(iq).as_deref() == Some(health::TIMELOCK_QUERY_ID) => {
            vec![world.timelock_answer(device, &id).await]
        }
        ("md", "link_code_companion_reg") => link_code(world, conn, &id, iq).await,
        ("md", "remove-companion-device") => {
            let unlinked = match device {
                Some(device) => world.unlink(device).await,
                None => Some(false),
            };
            let Some(unlinked) = unlinked else {
                warn!(%id, "refusing an unlink request, as ordered");
                return (vec![stanza::iq_error(&id, 500, "internal-server-error")], Effect::None);
            };
            // The device closes its stream itself once it has the answer: closing it
            // here at once would race the answer in the client, which routes
            // answers on tasks of their own and fails every waiter on a close.
            tracing::info!(device = ?device.map(DeviceAddr::jid), unlinked, "device removed itself");
            result(vec![])
        }
        _ => {
            warn!(%id, %xmlns, %kind, child = %first, "unknown iq; answering 501");
            vec![stanza::iq_error(&id, 501, "feature-not-implemented")]
        }
    };
    (answers, Effect::None)
}

/// A GraphQL query's persisted id (`<query query_id>`).
fn query_id(iq: &Node) -> Option<String> {
    attr(iq.get_optional_child("query")?, "query_id")
}

/// The pairing-code stages a device sends: `companion_hello` (answered with a
/// ref) and `companion_finish` (handed to the phone typing the code).
async fn link_code(world: &World, conn: ConnId, id: &str, iq: &Node) -> Vec<Node> {
    let Some(reg) = iq.get_optional_child("link_code_companion_reg") else {
        return vec![stanza::iq_error(id, 400, "bad-request")];
    };
    match attr(reg, "stage").as_deref() {
        Some("companion_hello") => match pair_code::companion_hello(reg) {
            Ok(request) => {
                tracing::info!(phone = %request.phone, "a device asks for a pairing code");
                let answer = pair_code::companion_hello_answer(id, &request);
                world.request_code(conn, request).await;
                vec![answer]
            }
            Err(why) => {
                warn!(%id, %why, "a bad companion_hello");
                vec![stanza::iq_error(id, 400, "bad-request")]
            }
        },
        Some("companion_finish") => {
            world.companion_finished(conn, iq.clone()).await;
            vec![stanza::iq_result(id, vec![])]
        }
        other => {
            warn!(%id, stage = ?other, "unknown link_code_companion_reg stage; answering 501");
            vec![stanza::iq_error(id, 501, "feature-not-implemented")]
        }
    }
}

/// A usync answer: every user asked about has one device, the phone (device 0).
/// No LID, no key index: the client addresses by phone number.
fn usync(iq: &Node) -> Node {
    let Some(query) = iq.get_optional_child("usync") else {
        return NodeBuilder::new("usync").build();
    };
    let users = query
        .get_optional_child("list")
        .map(|list| {
            list.get_children_by_tag("user")
                .filter_map(|user| attr(user, "jid"))
                .map(|jid| {
                    let devices = NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list")
                            .children([NodeBuilder::new("device").attr("id", "0").build()])
                            .build()])
                        .build();
                    NodeBuilder::new("user").attr("jid", jid).children([devices]).build()
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    usync_answer(query, NodeBuilder::new("devices").build(), users)
}

/// Whether a usync query asks "is this number on WhatsApp?" (`<query><contact/>`).
fn is_contact_query(iq: &Node) -> bool {
    iq.get_optional_child("usync")
        .and_then(|usync| usync.get_optional_child("query"))
        .is_some_and(|query| query.get_optional_child("contact").is_some())
}

/// A usync contact answer: each user asked about (`<contact>+digits</contact>`, or
/// a `jid`) is `in` or `out` as the world has it. A number on WhatsApp comes back
/// under its JID; one that is not comes back without a JID, only its echoed
/// `<contact type="out">+digits</contact>`, as WhatsApp Web sees it. No LID, no
/// business profile.
async fn contacts(world: &World, iq: &Node) -> Node {
    let Some(query) = iq.get_optional_child("usync") else {
        return NodeBuilder::new("usync").build();
    };
    let numbers: Vec<String> = query
        .get_optional_child("list")
        .map(|list| list.get_children_by_tag("user").filter_map(asked_number).collect())
        .unwrap_or_default();
    let registered = match world.registered_among(&numbers).await {
        Ok(registered) => registered,
        Err(backoff) => {
            let mut error = NodeBuilder::new("error")
                .attr("code", "429")
                .attr("text", "rate-overlimit");
            if backoff > 0 {
                error = error.attr("backoff", backoff.to_string());
            }
            let refused = NodeBuilder::new("contact").children([error.build()]).build();
            return usync_answer(query, refused, []);
        }
    };
    let users = numbers.iter().zip(registered).map(|(number, on)| {
        let contact = NodeBuilder::new("contact")
            .attr("type", if on { "in" } else { "out" })
            .string_content(format!("+{number}"))
            .build();
        let user = NodeBuilder::new("user");
        let user = if on {
            user.attr("jid", format!("{number}@s.whatsapp.net"))
        } else {
            user
        };
        user.children([contact]).build()
    });
    usync_answer(query, NodeBuilder::new("contact").build(), users)
}

/// A usync answer echoing the query's `sid`, `mode`, `context`, `index` and `last`,
/// with the protocol's answer (`<result><{protocol}/></result>`, or its error
/// inside) and the users.
fn usync_answer(query: &Node, protocol: Node, users: impl IntoIterator<Item = Node>) -> Node {
    let mut answer = NodeBuilder::new("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(value) = attr(query, key) {
            answer = answer.attr(key, value);
        }
    }
    answer
        .children([
            NodeBuilder::new("result").children([protocol]).build(),
            NodeBuilder::new("list").children(users).build(),
        ])
        .build()
}

/// The digits a contact query's `<user>` asks about: its `<contact>` text without
/// the `+`, else its `jid`'s user.
fn asked_number(user: &Node) -> Option<String> {
    let text = user
        .get_optional_child("contact")
        .and_then(stanza::content_bytes)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .map(|text| text.trim_start_matches('+').to_owned())
        .filter(|digits| !digits.is_empty());
    text.or_else(|| attr(user, "jid").and_then(|jid| jid.split('@').next().map(str::to_owned)))
}

/// An app-state answer: every collection asked for is empty (synced at version 0).
fn app_state(iq: &Node) -> Node {
    let collections = iq
        .get_optional_child("sync")
        .map(|sync| {
            sync.get_children_by_tag("collection")
                .filter_map(|collection| attr(collection, "name"))
                .map(|name| {
                    NodeBuilder::new("collection")
                        .attr("name", name)
                        .attr("version", "0")
                        .build()
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    NodeBuilder::new("sync").children(collections).build()
}

#[cfg(test)]
#[path = "iq_tests.rs"]
mod tests;
