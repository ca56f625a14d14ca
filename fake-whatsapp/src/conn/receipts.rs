//! What a device tells the server about stanzas it was sent: its receipts (a
//! delivery or read receipt acks messages, a retry receipt asks their sender for
//! a resend, a server-error receipt asks a phone to upload media again) and its
//! acks.

use tracing::{debug, warn};
use wacore_binary::Node;

use super::Session;
use crate::{
    inbox::Class,
    messages,
    stanza::{self, attr},
};

impl Session {
    /// A `<receipt>` the device sent: a delivery (or read) receipt acks the
    /// messages it names; a retry receipt asks their sender for a resend; a
    /// server-error receipt asks a phone to upload media again (the answer, if
    /// the phone gives one, is returned).
    pub(super) async fn receipt_from_device(&mut self, receipt: &Node) -> Option<Node> {
        let device = self.device.clone()?;
        match attr(receipt, "type").as_deref() {
            Some("server-error") => return self.shared.phones.reupload(&self.shared.cdn, receipt).await,
            Some("retry") => {
                if let Err(why) = self.shared.world.resend(&device, receipt).await {
                    warn!(device = %device.jid(), %why, "a retry receipt left unanswered");
                }
            }
            Some("enc_rekey_retry") => debug!("a call rekey retry; ignored"),
            Some("read") => {
                messages::read(&self.shared.world, &device, receipt).await;
                self.shared
                    .world
                    .acked(&device, Class::Message, &stanza::ids_of(receipt))
                    .await;
            }
            _ => {
                self.shared
                    .world
                    .acked(&device, Class::Message, &stanza::ids_of(receipt))
                    .await;
            }
        }
        None
    }

    /// An `<ack>` the device sent for a message (a transport ack or a refusal)
    /// or a receipt it took.
    pub(super) async fn ack_from_device(&mut self, ack: &Node) {
        let Some(device) = self.device.clone() else { return };
        let class = match attr(ack, "class").as_deref() {
            Some("message") => Class::Message,
            Some("receipt") => Class::Receipt,
            other => {
                debug!(class = ?other, "an ack; ignored");
                return;
            }
        };
        if let Some(error) = attr(ack, "error") {
            warn!(device = %device.jid(), %error, id = ?attr(ack, "id"), "the device refused a stanza");
        }
        self.shared.world.acked(&device, class, &stanza::ids_of(ack)).await;
    }
}
