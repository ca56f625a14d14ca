//! Pre-key bundles of the fake phones, for devices that open a Signal session
//! with them.

use wacore_binary::Node;

use crate::world::World;

/// The `<list>` answering a pre-key fetch (`<key><user jid=.../></key>`).
pub async fn bundles(_world: &World, _iq: &Node) -> Result<Node, String> {
    Err("the fake does not serve pre-key bundles yet".into())
}
