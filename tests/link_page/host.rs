//! A service's own page that offers the link, served by the test on a loopback port
//! of its own (another origin than the link page's): `/popup` opens the link in a
//! popup when its button is clicked, `/frame` embeds it in an iframe. Either writes
//! every message it receives into its list (`#messages`), where WebDriver reads it.

use std::net::SocketAddr;

use axum::{response::Html, routing::get, Router};
use tokio::task::JoinHandle;

use super::browser::Browser;

/// What both pages run: each message becomes a list item holding its origin,
/// whether it came from the link's window, and its data, as JSON.
const LISTEN: &str = r#"
const linkWindow = () => window.linkPopup || (document.getElementById("link") || {}).contentWindow;
window.addEventListener("message", (event) => {
  const item = document.createElement("li");
  item.textContent = JSON.stringify({
    origin: event.origin,
    from_link: event.source !== null && event.source === linkWindow(),
    data: event.data,
  });
  document.getElementById("messages").appendChild(item);
});
"#;

/// The host pages, served until dropped.
pub struct Host {
    /// Where they are served.
    addr: SocketAddr,
    /// The server.
    task: JoinHandle<()>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Host {
    /// Serves the pages for `link` on 127.0.0.1:0.
    pub async fn serve(link: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_on(listener, link)
    }

    /// Serves the pages for `link` on `listener` (bound first when the link page must
    /// know the host's origin).
    pub fn serve_on(listener: tokio::net::TcpListener, link: &str) -> Self {
        let link = serde_json::to_string(link).unwrap();
        let popup = page(&format!(
            r#"<button id="open" type="button">Link WhatsApp</button>
<script>
{LISTEN}
document.getElementById("open").addEventListener("click", () => {{
  window.linkPopup = window.open({link}, "wa-link", "popup,width=480,height=760");
}});
</script>"#
        ));
        let frame = page(&format!(
            r#"<iframe id="link" title="Link WhatsApp" width="480" height="760"></iframe>
<script>
{LISTEN}
document.getElementById("link").src = {link};
</script>"#
        ));
        let router = Router::new()
            .route("/popup", get(move || async move { Html(popup) }))
            .route("/frame", get(move || async move { Html(frame) }));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, task }
    }

    /// The URL of the page at `path` (`/popup` or `/frame`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A page around `body`, with the list the messages go to.
fn page(body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>A service</title></head>\
         <body><h1>A service</h1>{body}<ol id=\"messages\"></ol></body></html>"
    )
}

/// One message the host page received.
#[derive(Debug, serde::Deserialize)]
pub struct Received {
    /// The sender's origin.
    pub origin: String,
    /// Whether it came from the link page's window (the popup or the iframe).
    pub from_link: bool,
    /// What was posted.
    pub data: serde_json::Value,
}

/// The messages the host page shown in `browser`'s current window received, in order.
pub async fn received(browser: &Browser) -> Vec<Received> {
    let items = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#messages li'), (li) => li.textContent)",
            vec![],
        )
        .await
        .unwrap();
    let items: Vec<String> = serde_json::from_value(items).unwrap();
    items.iter().map(|item| serde_json::from_str(item).unwrap()).collect()
}
