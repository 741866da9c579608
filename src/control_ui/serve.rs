//! Serving a built Control UI from `gateway.controlUi.root` (docs/control-ui.md §5), as upstream's
//! gateway serves its bundle: static files with their precompressed `.br`/`.gz` siblings, MIME
//! types, `assets/*` immutable and everything else revalidated by `Last-Modified`, the app-shell
//! fallback (HTML-accepting unknown paths get `index.html`; unknown assets and `.json` 404), and
//! `index.html` rewritten for the base path with a CSP hashing its inline scripts.
//!
//! Files are opened safely: the decoded path must be relative without `..`; the file's real
//! path (symlinks resolved) must lie inside the root's real path; the final open refuses a
//! symlink swapped in meanwhile; only regular files with one link are served (a hard link could
//! name a file outside the root); a directory is never listed.
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::csp;

/// `Cache-Control` of fingerprinted assets.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Largest file served (the official bundle's largest is a few MiB).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Root files of the UI build, served under any base path (also below `/__openclaw__/`).
const ROOT_PUBLIC_ASSETS: [&str; 6] = [
    "apple-touch-icon.png",
    "favicon-32.png",
    "favicon.ico",
    "favicon.svg",
    "manifest.webmanifest",
    "sw.js",
];

/// Extensions that may have a precompressed sibling (and get `Content-Encoding`).
const COMPRESSIBLE: [&str; 8] = [
    "css",
    "html",
    "js",
    "json",
    "svg",
    "txt",
    "wasm",
    "webmanifest",
];

/// The `Content-Type` of a served extension (lowercase, no dot); `None` for unknown ones.
pub(super) fn content_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json; charset=utf-8",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// An asset path (a known extension other than `.html`): never answered with the app shell.
pub(super) fn is_asset_extension(ext: &str) -> bool {
    ext != "html" && content_type(ext).is_some()
}

/// The lowercase extension of the last path segment (`""` when none).
pub(super) fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// Root public assets whose URL carries the build id (`?v=`) and may then be cached forever.
fn is_versioned_public_asset(rel: &str) -> bool {
    if ROOT_PUBLIC_ASSETS.contains(&rel) {
        return rel != "sw.js";
    }
    let (dir, name) = match rel.rsplit_once('/') {
        Some(x) => x,
        None => return false,
    };
    let ext = extension(name);
    let single = !dir.contains('/');
    match dir.split('/').next().unwrap_or("") {
        "fonts" => single && (ext == "css" || ext == "woff2"),
        "themes" => single && ext == "css",
        "provider-icons" | "cloud-provider-icons" => single && ext == "svg",
        "file-icons" => ext == "svg",
        "app-art" | "community-art" => single && ext == "webp",
        _ => false,
    }
}

/// What one request asks of the UI.
#[derive(Debug)]
pub(super) struct Ask<'a> {
    /// GET or HEAD.
    pub method: &'a Method,
    /// The path below the base path (starts with `/`).
    pub ui_path: &'a str,
    /// The query string (no `?`).
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The normalized base path (`""` or `/x`).
    pub base_path: &'a str,
    /// Where earlier asset generations are kept (`retain`).
    pub retained: &'a Path,
}

/// Whether the client takes an HTML answer (no `Accept`, or one admitting `text/html` or
/// naming `application/xhtml+xml`): only those get the app shell.
pub(super) fn accepts_html(headers: &HeaderMap) -> bool {
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|a| !a.is_empty())
    else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        q > 0.0
            && matches!(
                media.as_str(),
                "text/html" | "text/*" | "*/*" | "application/xhtml+xml"
            )
    })
}

/// The encodings the client accepts among `offered` (plus `identity`), best first: by q, then
/// in the order offered (`br` before `gzip` before `identity`).
fn negotiate<'a>(headers: &HeaderMap, offered: &[&'a str]) -> Vec<&'a str> {
    let Some(h) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return vec!["identity"];
    };
    let mut listed: Vec<(String, f32)> = Vec::new();
    for entry in h.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        listed.push((name, q));
    }
    let q_of = |coding: &str| -> Option<f32> {
        listed
            .iter()
            .find(|(n, _)| n == coding)
            .or_else(|| listed.iter().find(|(n, _)| n == "*"))
            .map(|(_, q)| *q)
    };
    let mut ranked: Vec<(&'a str, f32)> = offered
        .iter()
        .filter_map(|c| q_of(c).map(|q| (*c, q)))
        .collect();
    ranked.push(("identity", q_of("identity").unwrap_or(1.0)));
    ranked.retain(|(_, q)| *q > 0.0);
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.into_iter().map(|(c, _)| c).collect()
}

/// Percent-decodes a URL path; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A path relative to the root that stays inside it lexically: not absolute, no `..` or empty
/// segment tricks, no NUL, no backslash (a Windows separator in a Unix name is refused too).
fn is_safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.contains('\0')
        && !rel.contains('\\')
        && rel.split('/').all(|seg| seg != "..")
}

/// A file opened inside the root.
struct Opened {
    file: File,
    len: u64,
    mtime: SystemTime,
}

/// Opens `rel` below `root_real` (a canonical directory) as described in the module docs;
/// `None` when it does not exist, is not a regular file, or would leave the root.
fn open_inside(root_real: &Path, rel: &str) -> Option<Opened> {
    let real: PathBuf = std::fs::canonicalize(root_real.join(rel)).ok()?;
    if !real.starts_with(root_real) {
        tracing::debug!(path = %real.display(), "control ui: refusing a path outside the root");
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&real)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.nlink() > 1 || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    Some(Opened {
        file,
        len: meta.len(),
        mtime: meta.modified().unwrap_or(UNIX_EPOCH),
    })
}

fn read_all(mut o: Opened) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(o.len as usize);
    o.file.read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// `404 Not Found` (plain text, as upstream).
pub(super) fn not_found() -> Response {
    crate::gateway::http_api::text(StatusCode::NOT_FOUND, "Not Found")
}

fn not_acceptable() -> Response {
    let mut r = crate::gateway::http_api::text(StatusCode::NOT_ACCEPTABLE, "Not Acceptable");
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

/// Serves a request for the UI below a usable root (blocking: file I/O). `None`: not ours (an
/// unknown path that does not take HTML), the kernel's 404 stands.
pub(super) fn serve(root_real: &Path, ask: &Ask<'_>) -> Option<Response> {
    let p = ask.ui_path;
    let rel = if p == "/" {
        ""
    } else if let Some(rest) = p
        .strip_prefix("/__openclaw__/")
        .filter(|r| ROOT_PUBLIC_ASSETS.contains(r))
    {
        rest
    } else if let Some(i) = p.find("/assets/") {
        &p[i + 1..]
    } else {
        &p[1..]
    };
    let requested = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    let Some(file_rel) = percent_decode(&requested) else {
        return Some(not_found());
    };
    if !is_safe_relative(&file_rel) {
        return Some(not_found());
    }
    let ext = extension(&file_rel);
    // The precompressed siblings are representations, not resources of their own.
    if ext == "br" || ext == "gz" {
        return Some(not_found());
    }
    let is_index = file_rel == "index.html" || file_rel.ends_with("/index.html");
    let index = match open_inside(root_real, &file_rel) {
        Some(f) if !is_index => return Some(static_file(root_real, &file_rel, &ext, f, ask)),
        Some(f) => f,
        None => {
            // A tab still running the previous bundle: its assets from a kept generation.
            if file_rel.starts_with("assets/") {
                for generation in super::retain::generations(ask.retained) {
                    let Ok(real) = std::fs::canonicalize(&generation) else {
                        continue;
                    };
                    if let Some(f) = open_inside(&real, &file_rel) {
                        return Some(static_file(&real, &file_rel, &ext, f, ask));
                    }
                }
            }
            if is_asset_extension(&ext) {
                return Some(not_found());
            }
            if !accepts_html(ask.headers) {
                return None;
            }
            match open_inside(root_real, "index.html") {
                Some(f) => f,
                None => return Some(not_found()),
            }
        }
    };
    Some(index_html(index, ask))
}

fn static_file(root_real: &Path, rel: &str, ext: &str, file: Opened, ask: &Ask<'_>) -> Response {
    let now = SystemTime::now();
    let last_modified = unix_secs(file.mtime.min(now));
    let immutable = rel.starts_with("assets/")
        || (is_versioned_public_asset(rel)
            && query_param(ask.query, "v").is_some_and(|v| {
                open_inside(root_real, "index.html")
                    .and_then(read_all)
                    .and_then(|b| build_id(&String::from_utf8_lossy(&b)).map(|id| id == v))
                    .unwrap_or(false)
            }));
    let cache = if immutable { IMMUTABLE } else { "no-cache" };
    let compressible = COMPRESSIBLE.contains(&ext);
    let offered: &[&str] = if compressible { &["br", "gzip"] } else { &[] };
    let mut body_file = None;
    let mut encoding = "identity";
    for coding in negotiate(ask.headers, offered) {
        if coding == "identity" {
            body_file = Some(file);
            break;
        }
        let suffix = if coding == "br" { "br" } else { "gz" };
        if let Some(sibling) = open_inside(root_real, &format!("{rel}.{suffix}")) {
            body_file = Some(sibling);
            encoding = coding;
            break;
        }
    }
    let Some(body_file) = body_file else {
        return not_acceptable();
    };
    let lm = httpdate(last_modified);
    if unmodified(ask.headers, last_modified, unix_secs(now)) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        set(&mut r, header::CACHE_CONTROL, cache);
        set(&mut r, header::LAST_MODIFIED, &lm);
        set(&mut r, header::VARY, "Accept-Encoding");
        return r;
    }
    let len = body_file.len;
    let body = if *ask.method == Method::HEAD {
        Body::empty()
    } else {
        match read_all(body_file) {
            Some(b) => Body::from(b),
            None => return not_found(),
        }
    };
    let mut r = Response::new(body);
    set(
        &mut r,
        header::CONTENT_TYPE,
        content_type(ext).unwrap_or("application/octet-stream"),
    );
    set(&mut r, header::CACHE_CONTROL, cache);
    set(&mut r, header::LAST_MODIFIED, &lm);
    set(&mut r, header::VARY, "Accept-Encoding");
    if compressible && encoding != "identity" {
        set(&mut r, header::CONTENT_ENCODING, encoding);
    }
    if *ask.method == Method::HEAD {
        set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    }
    r
}

/// `index.html`, rewritten for the base path, with its CSP (never compressed: rewritten per
/// request; `identity` must be acceptable).
fn index_html(file: Opened, ask: &Ask<'_>) -> Response {
    if !negotiate(ask.headers, &[]).contains(&"identity") {
        return not_acceptable();
    }
    let Some(raw) = read_all(file) else {
        return not_found();
    };
    let html = rewrite_index(&String::from_utf8_lossy(&raw), ask.base_path);
    let host = ask.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let policy = csp::policy(&csp::inline_script_hashes(&html), false, host);
    let len = html.len();
    let mut r = if *ask.method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(html))
    };
    set(&mut r, header::CONTENT_SECURITY_POLICY, &policy);
    set(&mut r, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    set(&mut r, header::VARY, "Accept-Encoding");
    if *ask.method == Method::HEAD {
        set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    }
    r
}

fn set(r: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

/// The build id the bundle's `index.html` carries (`data-openclaw-control-ui-build-id`).
pub(super) fn build_id(html: &str) -> Option<&str> {
    const ATTR: &str = "data-openclaw-control-ui-build-id=\"";
    let start = html.find(ATTR)? + ATTR.len();
    let len = html[start..].find('"')?;
    let id = &html[start..start + len];
    let ok = (1..=161).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    ok.then_some(id)
}

/// Upstream's `index.html` rewrite: `./assets/…` and the root public assets anchored at the
/// base path (versioned ones get `?v=<build id>`), and the `<html>` tag carrying the base path,
/// the terminal switch (off: this gateway has no terminal) and the build id.
pub(super) fn rewrite_index(html: &str, base_path: &str) -> String {
    let id = build_id(html).map(str::to_string);
    let mut repl: Vec<(String, String)> = vec![
        (
            "src=\"./assets/".into(),
            format!("src=\"{base_path}/assets/"),
        ),
        (
            "href=\"./assets/".into(),
            format!("href=\"{base_path}/assets/"),
        ),
    ];
    for asset in ROOT_PUBLIC_ASSETS {
        let v = match &id {
            Some(id) if is_versioned_public_asset(asset) => format!("?v={id}"),
            _ => String::new(),
        };
        let to = format!("href=\"{base_path}/{asset}{v}\"");
        for from in [
            format!("href=\"./{asset}\""),
            format!("href=\"/{asset}\""),
            format!("href=\"{base_path}/{asset}\""),
        ] {
            if !repl.iter().any(|(f, _)| *f == from) {
                repl.push((from, to.clone()));
            }
        }
    }
    let mut out = String::with_capacity(html.len() + 256);
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        if let Some((from, to)) = repl.iter().find(|(f, _)| rest.starts_with(f.as_str())) {
            out.push_str(to);
            i += from.len();
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            i += c.len_utf8();
        }
    }
    // The <html> start tag.
    let lower = out.to_ascii_lowercase();
    let Some(tag_start) = lower.find("<html").filter(|&s| {
        matches!(
            lower.as_bytes().get(s + 5),
            Some(b'>') | Some(b' ' | b'\t' | b'\n' | b'\r')
        )
    }) else {
        return out;
    };
    let Some(tag_len) = out[tag_start..].find('>') else {
        return out;
    };
    let tag = &out[tag_start..tag_start + tag_len + 1];
    let mut cleaned = tag.to_string();
    while let Some(a) = cleaned.find(" data-openclaw-control-ui-build-id=\"") {
        let value_start = a + " data-openclaw-control-ui-build-id=\"".len();
        let Some(end) = cleaned[value_start..].find('"') else {
            break;
        };
        cleaned.replace_range(a..value_start + end + 1, "");
    }
    let build = id
        .as_deref()
        .map(|id| {
            format!(
                " data-openclaw-control-ui-build-id=\"{}\"",
                csp::escape_html(id)
            )
        })
        .unwrap_or_default();
    let attrs = format!(
        "<html data-openclaw-control-ui-base-path=\"{}\" data-openclaw-terminal-enabled=\"false\"{build}",
        csp::escape_html(base_path)
    );
    let new_tag = format!("{attrs}{}", &cleaned[5..]);
    let mut result = String::with_capacity(out.len() + 128);
    result.push_str(&out[..tag_start]);
    result.push_str(&new_tag);
    result.push_str(&out[tag_start + tag_len + 1..]);
    result
}

/// Whether a conditional GET/HEAD may get a 304: `If-None-Match` decides when present (only
/// `*` matches: no entity tags are generated), else `If-Modified-Since` at or after the file's
/// time (and not in the future).
fn unmodified(headers: &HeaderMap, last_modified: i64, now: i64) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|v| v.trim() == "*");
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_httpdate)
        .is_some_and(|since| since <= now && last_modified <= since)
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64) - 1,
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn httpdate(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an IMF-fixdate (the form browsers echo back); `None` for anything else.
pub(super) fn parse_httpdate(s: &str) -> Option<i64> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, hms, "GMT"] = f.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == mon)? as u8 + 1;
    let mut t = hms.split(':').map(|x| x.parse::<u8>().ok());
    let (h, m, sec) = (t.next()??, t.next()??, t.next()??);
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(month).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms(h, m, sec).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn http_dates_round_trip() {
        assert_eq!(httpdate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_httpdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_httpdate("Sun, 32 Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn encodings_are_negotiated_by_q_then_preference() {
        let n = |v: &str| negotiate(&headers(&[("accept-encoding", v)]), &["br", "gzip"]);
        assert_eq!(n("gzip, deflate, br, zstd"), ["br", "gzip", "identity"]);
        assert_eq!(n("gzip;q=1, br;q=0.5"), ["gzip", "identity", "br"]);
        assert_eq!(n("br;q=0, identity;q=0, gzip"), ["gzip"]);
        assert_eq!(n("*;q=0"), Vec::<&str>::new());
        assert_eq!(negotiate(&HeaderMap::new(), &["br"]), ["identity"]);
    }

    #[test]
    fn html_acceptance_follows_the_accept_header() {
        assert!(accepts_html(&HeaderMap::new()));
        assert!(accepts_html(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )])));
        assert!(accepts_html(&headers(&[("accept", "*/*")])));
        assert!(!accepts_html(&headers(&[("accept", "application/json")])));
        assert!(!accepts_html(&headers(&[("accept", "text/html;q=0")])));
    }

    #[test]
    fn unsafe_paths_are_refused_lexically() {
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\0b", ""] {
            assert!(!is_safe_relative(bad), "{bad:?}");
        }
        assert!(is_safe_relative("assets/app.js"));
        assert_eq!(percent_decode("%2e%2e/x").as_deref(), Some("../x"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn versioned_public_assets_match_upstreams_list() {
        for yes in [
            "favicon.svg",
            "manifest.webmanifest",
            "fonts/inter.woff2",
            "themes/x.css",
            "file-icons/a/b.svg",
            "app-art/x.webp",
        ] {
            assert!(is_versioned_public_asset(yes), "{yes}");
        }
        for no in [
            "sw.js",
            "fonts/a/b.css",
            "assets/x.js",
            "themes/x.js",
            "index.html",
        ] {
            assert!(!is_versioned_public_asset(no), "{no}");
        }
    }

    #[test]
    fn index_is_rewritten_for_the_base_path_and_build() {
        let html = "<!doctype html>\n<HTML data-openclaw-control-ui-build-id=\"b-1.2\" lang=\"en\"><head>\
                    <link rel=\"icon\" href=\"./favicon.svg\"><link rel=\"manifest\" href=\"/manifest.webmanifest\">\
                    <script type=\"module\" src=\"./assets/index-x.js\"></script>\
                    <link rel=\"stylesheet\" href=\"./assets/index-y.css\"><link href=\"./sw.js\"></head></HTML>";
        let out = rewrite_index(html, "/ui");
        assert!(
            out.contains("<html data-openclaw-control-ui-base-path=\"/ui\" data-openclaw-terminal-enabled=\"false\" data-openclaw-control-ui-build-id=\"b-1.2\" lang=\"en\">"),
            "{out}"
        );
        assert!(out.contains("href=\"/ui/favicon.svg?v=b-1.2\""), "{out}");
        assert!(
            out.contains("href=\"/ui/manifest.webmanifest?v=b-1.2\""),
            "{out}"
        );
        assert!(out.contains("src=\"/ui/assets/index-x.js\""), "{out}");
        assert!(out.contains("href=\"/ui/assets/index-y.css\""), "{out}");
        assert!(out.contains("href=\"/ui/sw.js\""), "{out}");
        let root = rewrite_index(html, "");
        assert!(root.contains("href=\"/favicon.svg?v=b-1.2\""), "{root}");
        assert!(root.contains("src=\"/assets/index-x.js\""), "{root}");
        assert!(
            root.contains("data-openclaw-control-ui-base-path=\"\""),
            "{root}"
        );
    }
}
