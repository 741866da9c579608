//! The shape of the house, checked on every test run: each top-level module of `src/` sits on a
//! floor, and code may only name modules on floors below its own (or itself). No arrow up, no
//! arrow sideways between peers, hence no import cycle between top-level modules.
//!
//! The table is the picture in `src/lib.rs` and README's layout section; change all three
//! together. What counts as an import: every `crate::<module>` path in code (in `use` lines,
//! groups like `use crate::{a, b::c}` and inline paths), with comments and string literals
//! removed first. `main.rs` is the binary (it names `openclaw::cli` only).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Floors, top to bottom. Modules on one floor are peers and never import each other.
const FLOORS: &[(u8, &[&str])] = &[
    // Test hooks and the one GatewayState fixture: composes everything, used by tests only.
    (12, &["testing"]),
    // Parse argv (clap), dispatch; completions and man pages from the clap tree.
    (11, &["cli"]),
    // The verbs; `commands::gateway` is the composition root.
    (10, &["commands"]),
    // Checks and repairs across the wings below.
    (9, &["doctor"]),
    // Wings: the client library, agent runs, and (later) channels and the Control UI.
    (8, &["ops", "agent", "channels", "control_ui", "test_hooks"]),
    // The gateway kernel: it never names a wing.
    (6, &["gateway"]),
    // Service-manager adapters, both sides (install, and talking to the manager at runtime).
    (5, &["service"]),
    (4, &["config", "telemetry"]),
    (2, &["sys"]),
    (1, &["error"]),
];

/// Items of the crate root usable from every floor (`crate::VERSION`).
const ROOT_ITEMS: &[&str] = &["VERSION"];

/// Extra refusals on top of the floors: (from, to) never allowed even though `to` is lower.
const NEVER: &[(&str, &str)] = &[("testing", "cli")];

fn floor_of(module: &str) -> Option<u8> {
    FLOORS
        .iter()
        .find(|(_, ms)| ms.contains(&module))
        .map(|(f, _)| *f)
}

/// The top-level module a file of `src/` belongs to (`src/gateway/ws.rs` → `gateway`), or
/// `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// `text` with comments, string and char literals blanked (newlines kept, so line numbers hold).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"…" / r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"'
                        && b[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == b'#')
                            .count()
                            == hashes
                    {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                for &c in &b[i..j.min(b.len())] {
                    blank(&mut out, c);
                }
                i = j;
            }
            b'"' => {
                blank(&mut out, b'"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                    if i < b.len() {
                        blank(&mut out, b[i]);
                        i += 1;
                    }
                }
                if i < b.len() {
                    out.push(b' ');
                    i += 1;
                }
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): blank only literals.
                let close = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match close {
                    Some(end) => {
                        for _ in i..=end {
                            out.push(b' ');
                        }
                        i = end + 1;
                    }
                    None => {
                        out.push(b'\'');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ident_at(s: &str, at: usize) -> &str {
    let rest = &s[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Every top-level module named by `crate::…` paths in `code`, with its 1-based line.
fn imports(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    for (at, _) in code.match_indices("crate::") {
        if at > 0 {
            let prev = code.as_bytes()[at - 1];
            // `$crate::` in macros and `openclaw_crate::` style names are not the crate root.
            if prev.is_ascii_alphanumeric() || prev == b'_' || prev == b'$' {
                continue;
            }
        }
        let after = at + "crate::".len();
        if code[after..].starts_with('{') {
            // use crate::{a, b::c, d::{e, f}}: the first segment of each top-level entry.
            let mut depth = 0;
            let mut expect = true;
            for (k, c) in code[after..].char_indices() {
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            expect = true;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect = true,
                    c if depth == 1 && expect && (c.is_ascii_alphabetic() || c == '_') => {
                        found.push((line_of(after + k), ident_at(code, after + k).to_string()));
                        expect = false;
                    }
                    c if !c.is_whitespace() && depth == 1 => expect = false,
                    _ => {}
                }
            }
        } else {
            let name = ident_at(code, after);
            if !name.is_empty() {
                found.push((line_of(at), name.to_string()));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every import of `src/` that breaks the table, as `file:line: from -> to (why)`.
fn violations(src: &Path) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut counts = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let rel = file
            .strip_prefix(src.parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        let Some(from_floor) = floor_of(&from) else {
            bad.push(format!(
                "{rel}: module `{from}` has no floor: add it to FLOORS in tests/it/architecture.rs \
                 (and to the picture in src/lib.rs)"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, to) in imports(&code_only(&text)) {
            if to == from || ROOT_ITEMS.contains(&to.as_str()) {
                continue;
            }
            *counts.entry(format!("{from} -> {to}")).or_insert(0) += 1;
            let why = match floor_of(&to) {
                None => Some(format!("`{to}` has no floor in the table")),
                Some(f) if f > from_floor => Some(format!("upward: floor {from_floor} -> {f}")),
                Some(f) if f == from_floor => Some(format!("sideways between peers on floor {f}")),
                Some(_) if NEVER.contains(&(from.as_str(), to.as_str())) => {
                    Some("refused by NEVER".to_string())
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                bad.push(format!("{rel}:{line}: {from} -> {to} ({why})"));
            }
        }
    }
    (bad, counts)
}

#[test]
fn no_module_imports_from_a_floor_above_or_beside_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (bad, counts) = violations(&src);
    assert!(
        bad.is_empty(),
        "{} import(s) break the layering (src/lib.rs shows the floors; move the code down, or \
         pass what it needs in from above):\n{}\n\nall arrows seen: {counts:?}",
        bad.len(),
        bad.join("\n")
    );
    // The walk really read the crate: the kernel's own imports of config were seen.
    assert!(
        counts.get("gateway -> config").copied().unwrap_or(0) > 0,
        "the architecture test found no gateway -> config import; is it reading src/? {counts:?}"
    );
}

#[test]
fn the_checker_sees_grouped_inline_and_upward_imports_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{config::Paths, error::{Error, Result}};\n\
         // use crate::agent::x;\n\
         /* crate::doctor */ let s = \"crate::cli\"; let r = r#\"crate::ops\"#;\n\
         fn f<'a>(c: char) { let _ = 'x'; crate::agent::run(); }\n\
         macro_rules! m { () => { $crate::sys::now() } }\n",
    );
    let got = imports(&code);
    assert_eq!(
        got,
        vec![
            (1, "config".to_string()),
            (1, "error".to_string()),
            (4, "agent".to_string())
        ]
    );
    // And the table refuses what it should.
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("gateway")).unwrap();
    std::fs::write(
        src.join("gateway/state.rs"),
        "use crate::agent::Agents;\nuse crate::config::Config;\n",
    )
    .unwrap();
    std::fs::write(src.join("ops.rs"), "use crate::agent::x;\n").unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod gateway;\n").unwrap();
    std::fs::write(src.join("nowhere.rs"), "\n").unwrap();
    let (bad, _) = violations(&src);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(
        bad[0].contains("src/gateway/state.rs:1: gateway -> agent (upward"),
        "{bad:#?}"
    );
    assert!(
        bad[1].contains("nowhere") && bad[1].contains("has no floor"),
        "{bad:#?}"
    );
    assert!(
        bad[2].contains("src/ops.rs:1: ops -> agent (sideways"),
        "{bad:#?}"
    );
}
