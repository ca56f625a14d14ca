//! A contact query's answer mapped back to chats, from answers shaped as WhatsApp
//! (and wacore's own fixtures) shape them: a number on WhatsApp under its JID, one
//! not on it without a JID (only its echoed number), one answered under its LID
//! with its phone JID beside it, one with no contact answer at all, and a
//! result-level refusal with a backoff.

use whatsapp_rust::{
    usync::{UsyncAddressingMode, UsyncContext, UsyncMode, UsyncProtocol, UsyncQuery, UsyncUser},
    wacore::iq::{spec::IqSpec, usync::UsyncQuerySpec},
    NodeBuilder,
};

use super::*;

fn contact(kind: &str, number: &str) -> whatsapp_rust::wacore_binary::Node {
    NodeBuilder::new("contact")
        .attr("type", kind)
        .string_content(format!("+{number}"))
        .build()
}

/// Parses an answer with `result` states and `users` as the client does.
fn parsed(
    result: Vec<whatsapp_rust::wacore_binary::Node>,
    users: Vec<whatsapp_rust::wacore_binary::Node>,
) -> UsyncResponse {
    let query = UsyncQuery::new(
        UsyncMode::Query,
        UsyncContext::Interactive,
        vec![UsyncProtocol::Contact {
            addressing_mode: UsyncAddressingMode::Pn,
        }],
        vec![UsyncUser::from_phone("15550001000")],
    )
    .unwrap();
    let spec = UsyncQuerySpec::new(query, "sid").unwrap();
    let node = NodeBuilder::new("iq")
        .attr("type", "result")
        .children([NodeBuilder::new("usync")
            .children([
                NodeBuilder::new("result").children(result).build(),
                NodeBuilder::new("list").children(users).build(),
            ])
            .build()])
        .build();
    spec.parse_response(&node.as_node_ref()).unwrap()
}

#[test]
fn each_answer_maps_back_to_its_chat_by_jid_phone_jid_or_echoed_number() {
    let users = vec![
        NodeBuilder::new("user")
            .attr("jid", "15550001000@s.whatsapp.net")
            .children([contact("in", "15550001000")])
            .build(),
        // Not on WhatsApp: no JID, only the echoed number.
        NodeBuilder::new("user")
            .children([contact("out", "15550001001")])
            .build(),
        // Answered under its LID, its phone JID beside it.
        NodeBuilder::new("user")
            .attr("jid", "100000001@lid")
            .attr("pn_jid", "15550001002@s.whatsapp.net")
            .children([contact("in", "15550001002")])
            .build(),
        // No contact answer: unknown, so absent.
        NodeBuilder::new("user")
            .attr("jid", "15550001003@s.whatsapp.net")
            .children([NodeBuilder::new("lid").build()])
            .build(),
    ];
    let verdicts = verdicts(&parsed(vec![NodeBuilder::new("contact").build()], users)).unwrap();
    let expected: HashMap<String, bool> = [
        ("15550001000@s.whatsapp.net".to_owned(), true),
        ("15550001001@s.whatsapp.net".to_owned(), false),
        ("15550001002@s.whatsapp.net".to_owned(), true),
    ]
    .into();
    assert_eq!(verdicts, expected);
}

#[test]
fn a_contact_query_refused_for_its_rate_names_the_backoff_and_another_refusal_its_code() {
    let refusal = |code: &str| {
        NodeBuilder::new("contact")
            .children([NodeBuilder::new("error")
                .attr("code", code)
                .attr("text", "refused")
                .attr("backoff", "30")
                .build()])
            .build()
    };
    let users = || {
        vec![NodeBuilder::new("user")
            .children([contact("in", "15550001000")])
            .build()]
    };
    let limited = verdicts(&parsed(vec![refusal("429")], users())).unwrap_err();
    let Refused::RateLimited { backoff } = limited else {
        panic!("a rate limit: {limited:?}")
    };
    assert_eq!(backoff, Some(std::time::Duration::from_secs(30)));
    let told = Refused::RateLimited { backoff }.into_backend_error().to_string();
    assert!(told.contains("429") && told.contains("wait 30 s"), "{told}");

    let other = verdicts(&parsed(vec![refusal("500")], users())).unwrap_err();
    let Refused::Other(BackendError::Unreachable(why)) = other else {
        panic!("unreachable: {other:?}")
    };
    assert!(why.contains("500") && why.contains("retry in 30 s"), "{why}");
}
