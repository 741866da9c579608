//! The gateway's own page, served when no usable `gateway.controlUi.root` is configured: connect
//! over WS with a token the user types, show health and presence, follow events, and tell the
//! user how to serve the official Control UI instead. Its CSP admits only its own inline script
//! and style, by hash.
use std::sync::OnceLock;

use super::csp::sha256_source;

/// Where the notice (HTML, escaped) goes in [`PAGE_HTML`]; outside the hashed script and style.
const NOTICE_MARK: &str = "<!--NOTICE-->";

/// How to get the official UI, shown on the page and in the startup warning.
pub(super) const HOW_TO_GET_THE_UI: &str = "run `npm pack openclaw@2026.9.6`, unpack it \
     (`tar xzf openclaw-2026.9.6.tgz`), set gateway.controlUi.root to the unpacked \
     package/dist/control-ui directory, and restart the gateway";

/// The page with `notice` (plain text; escaped here) in its notice box.
pub(super) fn render(notice: &str) -> String {
    let body = format!(
        "<p class=\"notice\" id=\"notice\">{}</p>",
        super::csp::escape_html(notice)
    );
    PAGE_HTML.replacen(NOTICE_MARK, &body, 1)
}

/// The page's Content-Security-Policy: only its own inline script and style (by hash), sockets
/// back to us, no framing, plugins, base or form targets.
pub(super) fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let inner = |open: &str, close: &str| {
            let start = PAGE_HTML.find(open).expect("page has the element") + open.len();
            let len = PAGE_HTML[start..].find(close).expect("element is closed");
            sha256_source(&PAGE_HTML[start..start + len])
        };
        format!(
            "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; \
             form-action 'none'; script-src {}; style-src {}; connect-src 'self' ws: wss:",
            inner("<script>", "</script>"),
            inner("<style>", "</style>"),
        )
    })
}

/// The minimal page. Browsers send `Origin`, so device-less scopes are cleared and only
/// `health` is callable; presence comes from the hello snapshot.
pub(super) const PAGE_HTML: &str = r#"<!doctype html>
<html lang="en" data-openclaw-control-ui-base-path="">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenClaw Gateway</title>
<style>
 body{font:14px system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
 input,button{font:inherit;padding:.3rem .6rem}
 pre{background:#f4f4f4;padding:.8rem;overflow:auto;max-height:22rem}
 .ok{color:#0a7d32}.err{color:#b00020}
 .notice{background:#fff8e1;border:1px solid #e0c060;padding:.6rem .8rem}
 code{background:#f4f4f4;padding:0 .2rem}
 table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}
</style>
</head>
<body>
<h1>OpenClaw Gateway</h1>
<!--NOTICE-->
<form id="f">
 <label>Gateway token <input id="token" type="password" autocomplete="off" size="40"></label>
 <button>Connect</button> <span id="status">disconnected</span>
</form>
<h2>Health</h2><pre id="health">–</pre>
<h2>Presence</h2><table><thead><tr><th>mode</th><th>client</th><th>host</th><th>reason</th><th>since</th></tr></thead><tbody id="presence"></tbody></table>
<h2>Events</h2><pre id="events"></pre>
<script>
"use strict";
let ws = null, n = 0, pending = {}, timer = null;
const $ = (id) => document.getElementById(id);
function setStatus(t, cls) { const s = $("status"); s.textContent = t; s.className = cls || ""; }
function logEvent(e) { const p = $("events"); p.textContent = (JSON.stringify(e) + "\n" + p.textContent).slice(0, 20000); }
function showPresence(list) {
  const tb = $("presence"); tb.textContent = "";
  for (const p of list || []) {
    const tr = document.createElement("tr");
    for (const v of [p.mode, p.clientId || "", p.host || "", p.reason || "", p.onlineSince ? new Date(p.onlineSince).toLocaleTimeString() : ""]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
}
function call(method, params) {
  const id = "ui-" + (++n);
  ws.send(JSON.stringify({ type: "req", id, method, params: params || {} }));
  return new Promise((res, rej) => { pending[id] = { res, rej }; });
}
async function refreshHealth() {
  try { $("health").textContent = JSON.stringify(await call("health"), null, 2); }
  catch (e) { $("health").textContent = String(e); }
}
function connect(token) {
  if (ws) ws.close();
  const url = location.origin.replace(/^http/, "ws") + "/";
  ws = new WebSocket(url);
  setStatus("connecting…");
  ws.onmessage = (m) => {
    let f; try { f = JSON.parse(m.data); } catch { return; }
    if (f.type === "event" && f.event === "connect.challenge") {
      ws.send(JSON.stringify({ type: "req", id: "connect", method: "connect", params: {
        minProtocol: 4, maxProtocol: 4,
        client: { id: "webchat-ui", version: "control-ui", platform: navigator.platform || "web", mode: "webchat" },
        role: "operator", scopes: ["operator.read"], caps: [], auth: { token } } }));
      return;
    }
    if (f.type === "res" && f.id === "connect") {
      if (!f.ok) { setStatus(f.error.message, "err"); return; }
      const h = f.payload;
      setStatus("connected to " + h.server.version + " (conn " + h.server.connId.slice(0, 8) + ")", "ok");
      $("health").textContent = JSON.stringify(h.snapshot.health, null, 2);
      showPresence(h.snapshot.presence);
      clearInterval(timer); timer = setInterval(refreshHealth, 10000);
      return;
    }
    if (f.type === "res" && pending[f.id]) {
      const p = pending[f.id]; delete pending[f.id];
      f.ok ? p.res(f.payload) : p.rej(new Error(f.error.code + ": " + f.error.message));
      return;
    }
    if (f.type === "event") {
      logEvent({ event: f.event, seq: f.seq, payload: f.payload });
      if (f.event === "health") $("health").textContent = JSON.stringify(f.payload, null, 2);
      if (f.event === "presence") showPresence(f.payload.presence);
    }
  };
  ws.onclose = (e) => { clearInterval(timer); setStatus("closed " + e.code + (e.reason ? " " + e.reason : ""), e.code === 1000 ? "" : "err"); };
}
$("f").onsubmit = (e) => { e.preventDefault(); connect($("token").value); };
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_is_escaped_and_outside_the_hashed_elements() {
        let page = render("root <x> & \"y\"");
        assert!(
            page.contains("root &lt;x&gt; &amp; &quot;y&quot;"),
            "{page}"
        );
        assert!(!page.contains(NOTICE_MARK));
        // The hashes are computed from the template; the rendered script and style are equal.
        let script = |p: &str| {
            let s = p.find("<script>").unwrap();
            p[s..p.find("</script>").unwrap()].to_string()
        };
        assert_eq!(script(&page), script(PAGE_HTML));
        assert!(csp().contains("script-src 'sha256-"));
    }
}
