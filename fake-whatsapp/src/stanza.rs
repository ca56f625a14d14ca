//! The stanzas the fake server sends, built in one place: iq answers, server
//! requests, stream errors, login verdicts and the offline marker; and small
//! readers for what clients send.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use wacore_binary::{builder::NodeBuilder, Node, NodeContent};

/// The server's JID.
pub const SERVER: &str = "s.whatsapp.net";

/// Ids of the requests the server sends.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a server request.
pub fn next_id() -> String {
    format!("fake-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An attribute of `node` as text.
pub fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|value| value.as_str().into_owned())
}

/// The bytes a node carries (text counts as its UTF-8 bytes).
pub fn content_bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(bytes)) => Some(bytes),
        Some(NodeContent::String(text)) => Some(text.as_bytes()),
        _ => None,
    }
}

/// `<iq type="result" id=ID from="s.whatsapp.net">children</iq>`.
pub fn iq_result(id: &str, children: Vec<Node>) -> Node {
    let builder = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "result")
        .attr("id", id.to_owned());
    if children.is_empty() {
        builder.build()
    } else {
        builder.children(children).build()
    }
}

/// `<iq type="error" id=ID><error code=CODE text=TEXT/></iq>`.
pub fn iq_error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text.to_owned())
            .build()])
        .build()
}

/// A request from the server: `<iq from="s.whatsapp.net" type=TYPE id=ID xmlns=XMLNS>`.
pub fn server_iq(id: &str, kind: &'static str, xmlns: &'static str, children: Vec<Node>) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", kind)
        .attr("id", id.to_owned())
        .attr("xmlns", xmlns)
        .attr("t", now().to_string())
        .children(children)
        .build()
}

/// `<stream:error code=CODE/>`: 515 restart required, 503 unavailable...
pub fn stream_error(code: u16) -> Node {
    NodeBuilder::new("stream:error").attr("code", code.to_string()).build()
}

/// `<stream:error code=CODE><conflict type=KIND/></stream:error>`: `device_removed`
/// (with 401) or `replaced`.
pub fn stream_conflict(code: Option<u16>, kind: &'static str) -> Node {
    let mut builder = NodeBuilder::new("stream:error");
    if let Some(code) = code {
        builder = builder.attr("code", code.to_string());
    }
    builder
        .children([NodeBuilder::new("conflict").attr("type", kind).build()])
        .build()
}

/// `<success t=NOW lid=LID .../>`: the login is accepted.
pub fn success(lid: &str) -> Node {
    NodeBuilder::new("success")
        .attr("t", now().to_string())
        .attr("lid", lid.to_owned())
        .attr("props", "1")
        .attr("location", "fake")
        .attr("creation", "1700000000")
        .build()
}

/// `<failure reason=REASON/>`: the login is refused (401: logged out).
pub fn failure(reason: u16) -> Node {
    NodeBuilder::new("failure").attr("reason", reason.to_string()).build()
}

/// `<ib><offline count=N/></ib>`: the offline queue is delivered.
pub fn offline_done(count: u32) -> Node {
    NodeBuilder::new("ib")
        .children([NodeBuilder::new("offline").attr("count", count.to_string()).build()])
        .build()
}

/// `<ack class=CLASS id=ID from=FROM t=NOW/>`: the server took a stanza.
pub fn ack(class: &'static str, id: &str, from: &str) -> Node {
    NodeBuilder::new("ack")
        .attr("class", class)
        .attr("id", id.to_owned())
        .attr("from", from.to_owned())
        .attr("t", now().to_string())
        .build()
}

/// `<ack class="message" id=ID from=FROM error=CODE t=NOW/>`: the server refused
/// a message a device sent (a nack: 463 when the account may not start new chats).
pub fn nack(id: &str, from: &str, code: u32) -> Node {
    NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("from", from.to_owned())
        .attr("error", code.to_string())
        .attr("t", now().to_string())
        .build()
}

/// `<message from=FROM id=ID t=T type="text" notify=NAME><enc v="2" type=KIND>`: a
/// message the server relays to a device, as WhatsApp sends a 1:1 text.
pub fn relayed_message(from: &str, id: &str, t: u64, notify: &str, kind: &'static str, body: Vec<u8>) -> Node {
    NodeBuilder::new("message")
        .attr("from", from.to_owned())
        .attr("id", id.to_owned())
        .attr("t", t.to_string())
        .attr("type", "text")
        .attr("notify", notify.to_owned())
        .children([NodeBuilder::new("enc")
            .attr("v", "2")
            .attr("type", kind)
            .bytes(body)
            .build()])
        .build()
}

/// `<receipt from=FROM id=IDS[0] t=NOW [type=KIND]>` with the other ids in
/// `<list><item id/></list>`: a recipient's receipt for messages a device sent
/// (no type: delivered; `read`; `played`).
pub fn relayed_receipt(from: &str, ids: &[String], kind: Option<&'static str>) -> Node {
    let mut builder = NodeBuilder::new("receipt")
        .attr("from", from.to_owned())
        .attr("id", ids.first().cloned().unwrap_or_default())
        .attr("t", now().to_string());
    if let Some(kind) = kind {
        builder = builder.attr("type", kind);
    }
    if ids.len() > 1 {
        let items = ids[1..]
            .iter()
            .map(|id| NodeBuilder::new("item").attr("id", id.clone()).build());
        builder = builder.children([NodeBuilder::new("list").children(items).build()]);
    }
    builder.build()
}

/// `<ib><offline_preview count=N message=N .../></ib>`: what the offline batch
/// that follows holds.
pub fn offline_preview(count: u32, messages: u32) -> Node {
    NodeBuilder::new("ib")
        .children([NodeBuilder::new("offline_preview")
            .attr("count", count.to_string())
            .attr("message", messages.to_string())
            .attr("receipt", (count - messages).to_string())
            .attr("notification", "0")
            .attr("call", "0")
            .attr("appdata", "0")
            .attr("status", "0")
            .build()])
        .build()
}

/// Every id a `<receipt>` or `<ack>` names: its `id` and those of
/// `<list><item id/></list>`.
pub fn ids_of(node: &Node) -> Vec<String> {
    let listed = node
        .get_optional_child("list")
        .into_iter()
        .flat_map(|list| list.get_children_by_tag("item"))
        .filter_map(|item| attr(item, "id"));
    attr(node, "id").into_iter().chain(listed).collect()
}
