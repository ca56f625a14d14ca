//! The usync answers as the client parses them: a contact query says `in` for a
//! number on WhatsApp (under its JID) and `out` for one marked not on it (without
//! a JID, only the echoed number), and is counted; a device-list query's answer
//! is unchanged.

use wacore::iq::{
    spec::IqSpec,
    usync::{
        UsyncAddressingMode, UsyncContext, UsyncMode, UsyncOutcome, UsyncProtocol, UsyncProtocolKind,
        UsyncProtocolResult, UsyncQuery, UsyncQuerySpec, UsyncUser,
    },
};
use wacore_binary::{builder::NodeBuilder, Node};

use super::answer;
use crate::world::World;

fn request(query: &'static str, users: Vec<Node>) -> Node {
    NodeBuilder::new("iq")
        .attr("id", "q1")
        .attr("xmlns", "usync")
        .attr("type", "get")
        .children([NodeBuilder::new("usync")
            .attr("sid", "s1")
            .attr("mode", "query")
            .attr("context", "interactive")
            .children([
                NodeBuilder::new("query")
                    .children([NodeBuilder::new(query).build()])
                    .build(),
                NodeBuilder::new("list").children(users).build(),
            ])
            .build()])
        .build()
}

fn phone_user(number: &str) -> Node {
    NodeBuilder::new("user")
        .children([NodeBuilder::new("contact").string_content(format!("+{number}")).build()])
        .build()
}

#[tokio::test]
async fn a_contact_query_answers_in_and_out_as_the_client_reads_them_and_is_counted() {
    let world = World::default();
    world.set_registered(&["15550002".into()], false).await.unwrap();
    let iq = request("contact", vec![phone_user("15550001"), phone_user("15550002")]);
    let (answers, _) = answer(&world, 1, None, &iq).await;
    let query = UsyncQuery::new(
        UsyncMode::Query,
        UsyncContext::Interactive,
        vec![UsyncProtocol::Contact {
            addressing_mode: UsyncAddressingMode::Pn,
        }],
        vec![UsyncUser::from_phone("15550001")],
    )
    .unwrap();
    let spec = UsyncQuerySpec::new(query, "s1").unwrap();
    let parsed = spec.parse_response(&answers[0].as_node_ref()).unwrap();
    let seen: Vec<(Option<String>, String, Option<String>)> = parsed
        .users
        .iter()
        .map(|user| {
            let Some(UsyncProtocolResult::Contact(UsyncOutcome::Value(contact))) =
                user.protocol(UsyncProtocolKind::Contact)
            else {
                panic!("a contact answer: {user:?}")
            };
            (
                user.id.as_ref().map(|jid| jid.user.to_string()),
                contact.contact_type.to_string(),
                contact.content.as_ref().map(|c| c.to_string()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some("15550001".into()), "in".into(), Some("+15550001".into())),
            (None, "out".into(), Some("+15550002".into())),
        ]
    );
    assert_eq!(
        world.set_registered(&[], true).await.unwrap(),
        (1, 2),
        "one query, two numbers"
    );
}

#[tokio::test]
async fn a_device_list_query_still_answers_device_0_and_is_not_counted() {
    let world = World::default();
    let user = NodeBuilder::new("user").attr("jid", "15550001@s.whatsapp.net").build();
    let (answers, _) = answer(&world, 1, None, &request("devices", vec![user])).await;
    let usync = answers[0].get_optional_child("usync").expect("a usync answer");
    let listed = usync.get_optional_child("list").unwrap();
    let user = listed.get_children_by_tag("user").next().expect("the user");
    assert!(user.get_optional_child("devices").is_some(), "{user:?}");
    assert_eq!(world.set_registered(&[], true).await.unwrap(), (0, 0));
}
