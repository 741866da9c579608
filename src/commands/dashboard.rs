//! `openclaw dashboard`: the Control UI URL of the local gateway, as upstream's command
//! delivers it: the terminal shows the clean `Dashboard URL:`; the browser (and the clipboard)
//! get the URL with the shared token in its fragment (`#token=…`, which the UI strips and keeps
//! per tab), so the token never lands in the terminal's scrollback. `--json` prints one
//! connection object (`url` is the tokenized URL, as upstream's backward-compatible field).
//!
//! Upstream 2026.9.6 hands the browser a one-time device bootstrap instead of the token; this
//! gateway has no bootstrap tokens, so its `--json` carries no `browserUrl`.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::error::{Exit, Result};
use crate::ops::conn::{self, ConnOptions};

/// `openclaw dashboard` flags (upstream's).
#[derive(Debug, Clone, Default)]
pub(crate) struct DashboardOptions {
    /// Print the URL but do not launch a browser.
    pub no_open: bool,
    /// One machine-readable connection object; no browser, clipboard or prompt.
    pub json: bool,
    /// Accepted for compatibility (upstream: install/start the service without asking); this
    /// command never starts a gateway.
    #[expect(
        dead_code,
        reason = "accepted for upstream compatibility; never prompts"
    )]
    pub yes: bool,
}

/// What the command resolved.
#[derive(Debug, Clone, PartialEq)]
struct Links {
    port: u16,
    base_path: String,
    http_url: String,
    ws_url: String,
    /// The URL with `#token=` when the token may travel in a URL (a plain config or
    /// environment value; never a SecretRef-managed one).
    dashboard_url: String,
    token_included: bool,
}

/// Upstream's `encodeURIComponent`.
fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn links(paths: &Paths, cfg: &Config) -> Result<Links> {
    let target = conn::resolve(
        paths,
        &ConnOptions {
            timeout: 2_000,
            ..ConnOptions::default()
        },
        Some(cfg),
        &ProcessEnv,
    )
    .map_err(crate::error::Error::from)?;
    let port = target.port.unwrap_or(0);
    let host = target
        .url
        .trim_start_matches("ws://")
        .trim_start_matches("wss://")
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let base_path =
        crate::control_ui::normalize_base_path(cfg.gateway.control_ui.base_path.as_deref());
    let http_url = format!("http://{host}:{port}{base_path}/");
    let ws_url = format!("ws://{host}:{port}{base_path}");
    let config_ref = cfg.get("gateway.auth.token").is_some_and(Value::is_object);
    let token = target.token.filter(|t| !t.is_empty());
    let token_included = token.is_some() && !config_ref;
    let dashboard_url = match token.filter(|_| token_included) {
        Some(t) => format!("{http_url}#token={}", encode_component(&t)),
        None => http_url.clone(),
    };
    Ok(Links {
        port,
        base_path,
        http_url,
        ws_url,
        dashboard_url,
        token_included,
    })
}

/// Whether the Control UI document answers (`HEAD` with `Accept: text/html`): `Err(reason)`
/// in upstream's words otherwise.
fn document_ready(links: &Links) -> std::result::Result<(), String> {
    let addr = format!("127.0.0.1:{}", links.port);
    let timeout = Duration::from_secs(2);
    let sock = addr
        .parse()
        .map_err(|e| format!("Control UI dashboard is unavailable: {e}"))?;
    let mut s = match TcpStream::connect_timeout(&sock, timeout) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err("Gateway is not running.".into());
        }
        Err(e) => return Err(format!("Control UI dashboard is unavailable: {e}")),
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!(
        "HEAD {}/ HTTP/1.1\r\nHost: {addr}\r\nAccept: text/html\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        links.base_path
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("Control UI dashboard is unavailable: {e}"))?;
    let mut buf = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("Control UI dashboard is unavailable: {e}")),
        }
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let html = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("content-type")
                && v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("text/html")
        })
    });
    if status == 200 && html {
        Ok(())
    } else {
        Err(format!(
            "Control UI dashboard is unavailable (HTTP {status})."
        ))
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// Runs `argv` with `input` on stdin, bounded by 3 s; true on exit 0.
fn run_with_input(argv: &[&str], input: &str) -> bool {
    let Ok(mut child) = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Upstream's clipboard attempts, in order, for the tools that exist here.
fn copy_to_clipboard(value: &str) -> bool {
    let attempts: [&[&str]; 3] = [
        &["pbcopy"],
        &["xclip", "-selection", "clipboard"],
        &["wl-copy"],
    ];
    attempts
        .iter()
        .filter(|a| on_path(a[0]))
        .any(|a| run_with_input(a, value))
}

/// The opener of this desktop, when there is one (a GUI session on Linux).
fn browser_opener() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        return on_path("open").then_some("open");
    }
    let gui =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    (gui && on_path("xdg-open")).then_some("xdg-open")
}

fn open_url(opener: &str, url: &str) -> bool {
    Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Upstream's hint for a host without a GUI.
fn ssh_hint(port: u16, base_path: &str) -> String {
    let ui_path = if base_path.is_empty() {
        "/".to_string()
    } else {
        format!("{base_path}/")
    };
    [
        "No GUI detected. Open from your computer:".to_string(),
        format!("ssh -N -L {port}:127.0.0.1:{port} <user>@<host>"),
        "Then open:".into(),
        format!("http://localhost:{port}{ui_path}"),
        "Docs:".into(),
        "https://docs.openclaw.ai/gateway/remote".into(),
        "https://docs.openclaw.ai/web/control-ui".into(),
    ]
    .join("\n")
}

fn json_failure(reason: &str) -> Result<Exit> {
    println!("{}", json!({"ok": false, "reason": reason}));
    Ok(Exit::Failure)
}

/// `openclaw dashboard [--no-open] [--json] [--yes]`.
pub(crate) fn run(paths: &Paths, o: &DashboardOptions) -> Result<Exit> {
    let cfg = match Config::load(&paths.config_path) {
        Ok(c) => c,
        Err(_) => {
            let reason = format!(
                "OpenClaw config is invalid: {}. Run `openclaw doctor --fix` or `openclaw config validate`.",
                paths.config_path.display()
            );
            if o.json {
                return json_failure(&reason);
            }
            eprintln!("{reason}");
            return Ok(Exit::Failure);
        }
    };
    let links = match links(paths, &cfg) {
        Ok(l) => l,
        Err(e) if o.json => return json_failure(&e.to_string()),
        Err(e) => return Err(e),
    };
    if let Err(reason) = document_ready(&links) {
        if o.json {
            return json_failure(&reason);
        }
        if reason == "Gateway is not running." {
            println!("{reason}");
            println!("Run `openclaw gateway status --deep` for details.");
            println!("Run `openclaw gateway start` to start a managed gateway.");
            println!("Run `openclaw gateway run` for a foreground gateway.");
        } else {
            eprintln!("{reason}");
            println!("Run `openclaw gateway status --deep` for details.");
        }
        return Ok(Exit::Failure);
    }
    if o.json {
        println!(
            "{}",
            json!({
                "ok": true,
                "url": links.dashboard_url,
                "httpUrl": links.http_url,
                "wsUrl": links.ws_url,
                "port": links.port,
                "tokenIncluded": links.token_included,
            })
        );
        return Ok(Exit::Ok);
    }
    println!("Dashboard URL: {}", links.http_url);
    let copied = copy_to_clipboard(&links.dashboard_url);
    println!(
        "{}",
        if copied {
            "Copied to clipboard."
        } else {
            "Copy to clipboard unavailable."
        }
    );
    let mut opened = false;
    let hint = if o.no_open {
        if copied {
            "Browser launch disabled (--no-open). URL copied to clipboard.".to_string()
        } else {
            "Browser launch disabled (--no-open). Use the URL above.".to_string()
        }
    } else if let Some(opener) = browser_opener() {
        opened = open_url(opener, &links.dashboard_url);
        if copied {
            "Browser launch failed. Open the URL copied to clipboard.".into()
        } else {
            "Browser launch failed. Open the Dashboard URL above manually.".into()
        }
    } else {
        ssh_hint(links.port, &links.base_path)
    };
    let manual_auth = !copied && !opened && links.token_included;
    if opened {
        println!("Opened in your browser. Keep that tab to control OpenClaw.");
    } else if !(o.no_open && manual_auth) {
        println!("{hint}");
    }
    if manual_auth {
        println!(
            "Token auto-auth not delivered. Append your gateway token (from OPENCLAW_GATEWAY_TOKEN or gateway.auth.token) as a URL fragment with key `token` to authenticate."
        );
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_encoded_as_upstreams_encode_uri_component() {
        assert_eq!(encode_component("a b/c+d=é"), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(encode_component("tok-_.!~*'()"), "tok-_.!~*'()");
    }

    #[test]
    fn the_ssh_hint_names_the_port_and_base_path() {
        let h = ssh_hint(18789, "/ui");
        assert!(h.contains("ssh -N -L 18789:127.0.0.1:18789 <user>@<host>"));
        assert!(h.contains("http://localhost:18789/ui/"));
    }
}
