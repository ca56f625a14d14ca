//! media_real: the `media` scenario on the daemon's real backend (whatsapp-rust)
//! against the fake WhatsApp, both as child processes: UploadMedia encrypts the file
//! as it streams in (AES-256-CBC, HMAC-SHA256, two SHA-256) and uploads it to the
//! fake's CDN (HTTPS on loopback, under the fake's own CA); the fake's phone sends a
//! file of each size (FakeWhatsapp.SendMedia: the fake encrypts it onto its CDN,
//! not timed; no size cap) and DownloadMedia fetches it from the CDN, decrypts and
//! checks it. The same figures, baseline and targets as `media`. Needs the daemon
//! built with `--features fake-whatsapp` (it trusts the fake's CA only then).

use std::time::Duration;

use crate::{
    child::{free_addr, BenchEnv},
    client,
    fake::Fake,
    media::{self, Linked, MAX_REQUEST, PHONE_CHAT},
    media_measure::Peak,
    real,
};

/// The phone that sends the session its files (digits of [`PHONE_CHAT`]).
const FROM: &str = "15550001111";

/// Runs the scenario and prints its figures.
pub async fn run(env: &BenchEnv) -> Result<(), String> {
    let (ws, control) = (free_addr()?, free_addr()?);
    let fake_proc = env.fake_whatsapp(ws, control).await?;
    let fake = Fake::connect(control).await?;
    let backend_args = real::backend(ws);
    let backend: Vec<&str> = backend_args.iter().map(String::as_str).collect();
    let max_request = MAX_REQUEST.to_string();
    let extra = ["--max-request-bytes", max_request.as_str(), "--qr-timeout", "60s"];
    let data = env.data_dir("media-real");
    let daemon = env.daemon_on("daemon-media-real", &data, &backend, &extra).await?;
    let (session, phone) = real::link_one(client::sessions(daemon.addr).await?, fake.clone(), 0).await?;
    let channel = client::channel(daemon.addr).await?;
    let linked = Linked {
        channel: &channel,
        session: &session,
        chat: PHONE_CHAT,
    };
    let peak = Peak::new(daemon.pid());
    let rows = media::measure(env, &peak, &linked, None, |file| {
        let (mut fake, to) = (fake.clone(), phone.clone());
        async move { fake.send_media(&to, FROM, file).await }
    })
    .await?;
    let rss_after = daemon.rss_kib()?;
    drop(channel);
    daemon.stop(Duration::from_secs(30)).await?;
    fake_proc.stop(Duration::from_secs(30)).await?;
    let _ = std::fs::remove_dir_all(&data);
    media::print(
        "media_real",
        "whatsapp (fake WhatsApp's CDN)",
        &rows,
        peak.method(),
        rss_after,
    );
    Ok(())
}
