//! Gateway credentials in service definitions: finding the lines that embed one, and
//! scrubbing them out of the copies we keep (unit `.bak` files, doctor repairs). Install's
//! writer and doctor's checks share this one definition of "a line holding a credential".

/// Lines of `text` that embed a gateway credential: `OPENCLAW_GATEWAY_TOKEN=`/`_PASSWORD=`,
/// `--token`/`--password` arguments, or the configured secret itself. Returns line numbers.
pub fn secret_lines(text: &str, secrets: &[String]) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            if t.starts_with('#') {
                return false;
            }
            t.contains("OPENCLAW_GATEWAY_TOKEN=")
                || t.contains("OPENCLAW_GATEWAY_PASSWORD=")
                || t.contains("--token")
                || t.contains("--password")
                || t.contains("<key>OPENCLAW_GATEWAY_TOKEN</key>")
                || t.contains("<key>OPENCLAW_GATEWAY_PASSWORD</key>")
                || secrets.iter().any(|s| t.contains(s.as_str()))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// What replaces a line holding a gateway credential in a kept copy of a unit.
pub const SCRUBBED: &str = "# openclaw: a line holding a gateway credential was removed here (it lives in gateway.auth.token)";

/// `text` with every [`secret_lines`] line replaced by [`SCRUBBED`], or `None` when it holds
/// no credential. Line count and every other byte stay as they were.
pub fn scrub_secret_lines(text: &str, secrets: &[String]) -> Option<String> {
    let lines = secret_lines(text, secrets);
    if lines.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if lines.contains(&(i + 1)) {
            out.push_str(SCRUBBED);
            if l.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(l);
        }
    }
    Some(out)
}
