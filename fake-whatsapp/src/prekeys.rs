//! Pre-key bundles of the fake phones, for devices that open a Signal session
//! with them: the answer to `<iq xmlns="encrypt" type="get"><key><user jid=.../>`.

use wacore::{iq::prekeys::PreKeyBundleUserNode, protocol::ProtocolNode};
use wacore_binary::{builder::NodeBuilder, Node};

use crate::world::World;

/// The `<list>` of one `<user>` bundle per user asked about. Every number is a
/// WhatsApp user with one device, its phone.
pub async fn bundles(world: &World, iq: &Node) -> Result<Node, String> {
    let mut users = Vec::new();
    let asked = iq.get_optional_child("key").map(|key| key.get_children_by_tag("user"));
    for user in asked.into_iter().flatten() {
        let jid = user
            .attrs()
            .optional_jid("jid")
            .ok_or("a pre-key request names a user without a jid")?;
        tracing::debug!(%jid, "pre-key bundle asked for");
        let bundle = world.bundle(&jid).await?;
        let node = PreKeyBundleUserNode::from_bundle(jid, &bundle, None).map_err(|e| e.to_string())?;
        users.push(node.into_node());
    }
    Ok(NodeBuilder::new("list").children(users).build())
}
