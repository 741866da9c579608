//! The Control UI's Content-Security-Policy, built as upstream builds it: the hashes of the
//! inline scripts of the `index.html` actually served (computed at serve time), sockets back to
//! the gateway, no framing of the UI, no plugins, no `<base>`.
use base64::Engine as _;
use sha2::Digest as _;

/// `'sha256-<base64>'` of `text` (a CSP source expression).
pub(super) fn sha256_source(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The `sha256-…` sources of every non-empty inline `<script>` (one without a `src` attribute)
/// in `html`, in document order. Tag names match case-insensitively.
pub(super) fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find("<script") {
        let open_start = at + found;
        let after_name = open_start + "<script".len();
        at = after_name;
        // `<scripts>` or `<script-x>` is another element.
        match lower.as_bytes().get(after_name) {
            Some(b'>') => {}
            Some(c) if c.is_ascii_whitespace() => {}
            _ => continue,
        }
        let Some(gt) = lower[after_name..].find('>') else {
            break;
        };
        let open_end = after_name + gt + 1;
        let Some(close) = lower[open_end..].find("</script>") else {
            break;
        };
        let content = &html[open_end..open_end + close];
        at = open_end + close + "</script>".len();
        if has_src_attribute(&lower[after_name..open_end - 1]) || content.is_empty() {
            continue;
        }
        out.push(sha256_source(content));
    }
    out
}

/// Whether a start tag's attribute text (lowercased, between the tag name and `>`) names `src`.
fn has_src_attribute(attrs: &str) -> bool {
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if &attrs[name_start..i] == "src" {
            return true;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    i += 1;
                    while i < b.len() && b[i] != q {
                        i += 1;
                    }
                    i += 1;
                }
                _ => {
                    while i < b.len() && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                }
            }
        }
        if i == name_start {
            i += 1;
        }
    }
    false
}

/// The hostname of a `Host` header value when it is a plain host (name, IPv4, `[IPv6]`) with an
/// optional port; `None` for anything else (it would otherwise be copied into the policy).
fn portal_hostname(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(all_digits)) {
            return None;
        }
        let inner = &host[1..end];
        if inner.is_empty() || !inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return None;
        }
        &host[..end + 1]
    } else {
        let name = match host.rsplit_once(':') {
            Some((n, port)) if all_digits(port) => n,
            Some(_) => return None,
            None => host,
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        {
            return None;
        }
        name
    };
    Some(name)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// The policy of a Control UI response. `script_hashes` are the inline scripts of the served
/// document (none for other responses); `allow_wasm` adds `'wasm-unsafe-eval'` (upstream: only
/// with the terminal enabled); `host` (the request's `Host`) lets the UI reach other ports of
/// the gateway host.
pub(super) fn policy(script_hashes: &[String], allow_wasm: bool, host: Option<&str>) -> String {
    let mut script = vec!["'self'".to_string()];
    script.extend(script_hashes.iter().cloned());
    if allow_wasm {
        script.push("'wasm-unsafe-eval'".into());
    }
    let mut connect: Vec<String> = [
        "'self'",
        "ws:",
        "wss:",
        "data:",
        "https://api.openai.com",
        "https://tweakcn.com",
    ]
    .map(String::from)
    .to_vec();
    if let Some(name) = host.and_then(portal_hostname) {
        connect.push(format!("http://{name}:*"));
        connect.push(format!("https://{name}:*"));
    }
    [
        "default-src 'self'".to_string(),
        "base-uri 'none'".into(),
        "object-src 'none'".into(),
        "frame-ancestors 'none'".into(),
        "frame-src 'self' http: https:".into(),
        format!("script-src {}", script.join(" ")),
        "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com".into(),
        "img-src 'self' data: blob: https:".into(),
        "media-src 'self' data: blob:".into(),
        "font-src 'self' https://fonts.gstatic.com".into(),
        "worker-src 'self'".into(),
        format!("connect-src {}", connect.join(" ")),
    ]
    .join("; ")
}

/// Escapes text for an HTML text node or a double-quoted attribute.
pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inline_scripts_with_content_are_hashed() {
        let html = "<SCRIPT data-x=\"a src\">one()</script><script src=\"./a.js\"></script>\
                    <script type='module' crossorigin src=./b.js>x</script><script></script>\
                    <scripts>no</scripts><script>two()</script>";
        assert_eq!(
            inline_script_hashes(html),
            [sha256_source("one()"), sha256_source("two()")]
        );
        assert!(inline_script_hashes("<script>unclosed").is_empty());
    }

    #[test]
    fn the_policy_lists_hashes_and_only_plain_hosts() {
        let p = policy(&["'sha256-x'".into()], false, Some("127.0.0.1:18789"));
        assert!(p.contains("script-src 'self' 'sha256-x'; style-src"), "{p}");
        assert!(
            p.ends_with("connect-src 'self' ws: wss: data: https://api.openai.com https://tweakcn.com http://127.0.0.1:* https://127.0.0.1:*"),
            "{p}"
        );
        assert!(!p.contains("wasm"));
        assert!(policy(&[], true, None).contains("script-src 'self' 'wasm-unsafe-eval'"));
        for bad in ["evil.com; script-src *", "a b", "x:y", "[zz]", ""] {
            assert!(!policy(&[], false, Some(bad)).contains("http://"), "{bad}");
        }
        assert!(policy(&[], false, Some("[::1]:1")).contains("http://[::1]:*"));
    }
}
