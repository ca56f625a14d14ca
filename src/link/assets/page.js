"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("link-config").textContent);
  // Every call goes under the page's own path: /…/link/<token>/events and so on.
  const base = location.pathname.replace(/\/+$/, "");
  const WARN_MS = 15000;
  // While the feed is live a fresh code normally follows the old one at once; the
  // overlay waits this long for it before offering the button.
  const LIVE_GRACE_MS = 3000;
  const REDIRECT_DELAY_MS = 1500;
  const STATUS = {
    SESSION_STATUS_STARTING: "Preparing a code…",
    SESSION_STATUS_CONNECTING: "Preparing a code…",
    SESSION_STATUS_QR_WAITING: "Waiting for you to scan the code",
    SESSION_STATUS_PAIRING: "Scanned. Linking your phone…",
    SESSION_STATUS_RESTARTING: "Scanned. Finishing the link…",
    SESSION_STATUS_CONNECTED: "Linked",
    SESSION_STATUS_RECONNECTING: "Reconnecting to WhatsApp…",
    SESSION_STATUS_DISCONNECTED: "Linking is paused for this account. Ask for a new link later.",
    SESSION_STATUS_LOGGED_OUT: "This account was logged out. Get a new code to link it again.",
    SESSION_STATUS_FAILED: "Linking failed. Get a new code to try again.",
  };
  const RENEWABLE = ["SESSION_STATUS_LOGGED_OUT", "SESSION_STATUS_FAILED"];

  let skew = 0; // the server's clock minus the browser's, ms
  let state = null; // the last state the server sent
  let feed = null; // the EventSource, while open
  let feedLive = false; // the feed is connected and delivering
  let feedStopped = null; // why the feed was closed on purpose: "idle", "gone", "done"
  let retryTimer = null;
  let retryDelay = 1000;
  let pairing = null; // the pairing code shown, with its expiry
  let finished = false; // linked, or the link is gone

  const serverNow = () => Date.now() + skew;
  const syncClock = (now) => {
    if (typeof now === "number") skew = now - Date.now();
  };
  const mmss = (ms) => {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const pad = (n) => String(n).padStart(2, "0");
    return pad(Math.floor(total / 60)) + ":" + pad(total % 60);
  };
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };
  const setStatus = (text, tone) => {
    const el = $("status");
    setText(el, text);
    el.dataset.tone = tone || "";
  };

  function apply(next) {
    if (finished || !next) return;
    syncClock(next.now);
    if (state && next.revision < state.revision) return;
    state = next;
    render();
  }

  function render() {
    if (state.status === "SESSION_STATUS_CONNECTED") {
      showLinked();
      return;
    }
    const img = $("qr");
    const qr = state.qr;
    if (qr) {
      if (img.getAttribute("src") !== qr.svg) img.src = qr.svg;
      img.alt = "QR code " + qr.index + " of " + qr.count + " to scan with WhatsApp";
      img.hidden = false;
      $("qr-placeholder").hidden = true;
    } else {
      img.hidden = true;
      img.removeAttribute("src");
      const scanned = ["SESSION_STATUS_PAIRING", "SESSION_STATUS_RESTARTING"].includes(state.status);
      setText($("qr-placeholder"), scanned ? "Scanned. Linking your phone…" : "Preparing a code…");
      $("qr-placeholder").hidden = false;
    }
    tick();
  }

  function statusText() {
    let text = STATUS[state.status] || "Working…";
    if (state.status === "SESSION_STATUS_QR_WAITING" && !$("phone-view").hidden) {
      text = pairing ? "Enter the code on your phone" : "Enter your phone number to get a code";
    }
    if (state.status === "SESSION_STATUS_FAILED" && state.error) {
      text = "Linking failed: " + state.error + ". Get a new code to try again.";
    }
    return text;
  }

  function tick() {
    if (finished) return;
    if (state) {
      const qr = state.qr;
      const countdown = $("countdown");
      let expired = false;
      let text = statusText();
      let tone = RENEWABLE.includes(state.status) ? "bad" : "";
      if (qr) {
        const left = qr.expires_at - serverNow();
        countdown.hidden = false;
        setText($("countdown-time"), mmss(left));
        countdown.classList.toggle("warn", left > 0 && left <= WARN_MS);
        countdown.classList.toggle("over", left <= 0);
        if (left <= 0) {
          expired = !feedLive || left < -LIVE_GRACE_MS;
          if ($("phone-view").hidden) {
            text = expired ? "This code expired. Select Get a new code." : "Getting a new code…";
          }
        }
      } else {
        countdown.hidden = true;
        expired = RENEWABLE.includes(state.status);
      }
      $("expired").hidden = !expired;
      setText($("expired-text"), qr ? "This code expired" : "No code to scan");
      setStatus(text, tone);
    }
    if (pairing) {
      const left = pairing.expires_at - serverNow();
      const countdown = $("pairing-countdown");
      setText($("pairing-time"), mmss(left));
      countdown.classList.toggle("warn", left > 0 && left <= WARN_MS);
      countdown.classList.toggle("over", left <= 0);
    }
  }

  function openFeed() {
    closeFeed();
    feedStopped = null;
    let url = base + "/events";
    if (state) url += "?last_event_id=" + state.revision;
    const source = new EventSource(url);
    feed = source;
    source.onopen = () => {
      feedLive = true;
      retryDelay = 1000;
    };
    source.addEventListener("state", (event) => {
      feedLive = true;
      apply(JSON.parse(event.data));
    });
    source.addEventListener("idle", () => {
      stopFeed("idle");
      tick();
    });
    source.addEventListener("gone", () => {
      stopFeed("gone");
      showGone();
    });
    source.onerror = () => {
      feedLive = false;
      tick();
      // While CONNECTING the browser retries by itself (with Last-Event-ID); once
      // CLOSED it does not, so try again with a growing pause.
      if (source === feed && source.readyState === EventSource.CLOSED && !feedStopped) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(openFeed, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      }
    };
  }

  function closeFeed() {
    clearTimeout(retryTimer);
    if (feed) feed.close();
    feed = null;
    feedLive = false;
  }

  function stopFeed(why) {
    closeFeed();
    feedStopped = why;
  }

  async function post(path, body) {
    const response = await fetch(base + "/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
    if (response.status === 403 || response.status === 410) {
      showGone();
      throw new Error("gone");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || "something went wrong: try again");
    return answer;
  }

  async function renew() {
    const button = $("renew");
    button.disabled = true;
    setStatus("Getting a new code…");
    try {
      apply(await post("refresh", {}));
    } catch (error) {
      if (!finished) setStatus(error.message, "bad");
    } finally {
      button.disabled = false;
    }
    if (!finished) openFeed();
  }

  async function requestPairingCode(event) {
    event.preventDefault();
    const input = $("phone");
    const submit = $("phone-submit");
    setText($("phone-error"), "");
    if (!input.value.trim()) {
      setText($("phone-error"), "Enter your phone number with its country code, e.g. +1 555 123 4567.");
      input.focus();
      return;
    }
    submit.disabled = true;
    setStatus("Asking WhatsApp for a code…");
    try {
      const number = input.value.replace(/[\s().-]/g, "");
      const code = await post("pairing-code", { phone_number: number });
      syncClock(code.now);
      pairing = code;
      setText($("pairing-code"), code.code);
      $("pairing-code").setAttribute("aria-label", "Pairing code " + code.code.split("").join(" "));
      $("phone-form").hidden = true;
      $("pairing").hidden = false;
      openFeed(); // a fresh feed, so the link is seen for as long as the code lives
      tick();
    } catch (error) {
      if (!finished) setText($("phone-error"), error.message);
    } finally {
      submit.disabled = false;
    }
  }

  function showPhone(show) {
    $("qr-view").hidden = show;
    $("phone-view").hidden = !show;
    $("lead").textContent = show
      ? "Link with your phone number instead of scanning."
      : "Scan the code with WhatsApp on your phone.";
    setText($("switch"), show ? "Scan a QR code instead" : "Link with phone number instead");
    if (show && !pairing) $("phone").focus();
  }

  function finish() {
    finished = true;
    stopFeed("done");
    for (const id of ["qr-view", "phone-view", "switch", "lead"]) $(id).hidden = true;
  }

  function showLinked() {
    if (finished) return;
    finish();
    $("done").hidden = false;
    setStatus("Linked", "ok");
    $("done-title").focus();
    const message = { type: "wa-sessiond.linked" };
    if (config.redirect_url) {
      setText($("done-next"), "Taking you back…");
      setTimeout(() => location.replace(config.redirect_url), REDIRECT_DELAY_MS);
    } else if (window.opener) {
      try {
        window.opener.postMessage(message, "*");
      } catch (_) {
        // the opener went away: nothing to tell
      }
      setTimeout(() => window.close(), REDIRECT_DELAY_MS);
    } else if (window.parent !== window) {
      window.parent.postMessage(message, "*");
    }
  }

  function showGone() {
    if (finished) return;
    finish();
    $("gone").hidden = false;
    setStatus("This link is no longer valid", "bad");
    $("gone-title").focus();
  }

  $("renew").addEventListener("click", renew);
  $("phone-form").addEventListener("submit", requestPairingCode);
  $("switch").addEventListener("click", () => showPhone($("phone-view").hidden));
  $("phone-again").addEventListener("click", () => {
    pairing = null;
    $("pairing").hidden = true;
    $("phone-form").hidden = false;
    $("phone").focus();
  });
  // A person coming back to a page whose feed went idle gets it back.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && feedStopped === "idle") openFeed();
  });
  setInterval(tick, 200);
  openFeed();
})();
