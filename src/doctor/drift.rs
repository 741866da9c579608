//! Classifies the difference between an installed systemd unit and what `gateway install`
//! would write now, key by key (pure).
//!
//! Classes, and what doctor may do about each:
//! - [`Class::Outdated`]: a key our renderer writes is missing, or holds a value an older
//!   release of the renderer wrote ([`KNOWN_OLD`]). Safe to rewrite.
//! - [`Class::StaleBinary`]: `ExecStart=` runs another binary than this one (moved, upgraded,
//!   deleted). Safe to rewrite.
//! - [`Class::Port`]: `--port` / `OPENCLAW_GATEWAY_PORT` differ from the port the config
//!   resolves (config is the source of truth). Safe to rewrite.
//! - [`Class::Secret`]: a token or password is embedded in the unit. Rewrite (after moving the
//!   value into the 0600 config when the config has none).
//! - [`Class::OperatorEdit`]: anything else — a value we never wrote, an extra key, an edited
//!   argument. Preserved: doctor reports it and rewrites the file only with `--force` (after a
//!   backup); the durable place for customisations is a drop-in, which doctor never touches.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::service::systemd::unit_file::{self, Entry};

/// Values earlier renderer versions wrote, per (section, key): seeing one means "outdated
/// default", not "operator edit".
pub(crate) const KNOWN_OLD: &[(&str, &str, &str)] = &[
    // systemd < 253 got Type=notify + ExecReload; after a systemd upgrade these are outdated.
    ("Service", "Type", "notify"),
    ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
    // Upstream OpenClaw's units (docs/lifecycle.md §2.1): a unit migrated from the Node gateway.
    ("Service", "Restart", "always"),
    ("Service", "RestartSec", "5"),
    ("Service", "TimeoutStopSec", "330"),
    ("Service", "TimeoutStopSec", "30"),
    ("Service", "SuccessExitStatus", "0 143"),
    ("Service", "OOMPolicy", "continue"),
    ("Service", "KillMode", "control-group"),
    ("Service", "KillMode", "process"),
    ("Unit", "After", "network-online.target"),
    ("Unit", "Wants", "network-online.target"),
    ("Unit", "StartLimitBurst", "5"),
    ("Unit", "StartLimitIntervalSec", "60"),
];

/// Keys an older renderer wrote that the current one no longer does.
pub(crate) const KNOWN_RETIRED: &[(&str, &str)] = &[("Service", "ExecReload")];

/// Environment variables that carry secrets.
pub(crate) const SECRET_ENV: &[&str] = &["OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD"];

/// Drift classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Class {
    /// Outdated default (auto-repairable).
    Outdated,
    /// ExecStart runs another binary (auto-repairable).
    StaleBinary,
    /// Port differs from config (auto-repairable).
    Port,
    /// Embedded secret (auto-repairable).
    Secret,
    /// Operator edit (preserved unless --force).
    OperatorEdit,
}

impl Class {
    /// Whether doctor rewrites for this class without `--force`.
    pub(crate) fn auto(self) -> bool {
        self != Class::OperatorEdit
    }
}

/// One differing key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    /// Class.
    pub class: Class,
    /// `Section.Key` (or `Service.Environment.NAME`).
    pub key: String,
    /// Installed value (`None` = missing). Secrets are replaced by `<redacted>`.
    pub installed: Option<String>,
    /// Value install would write now (`None` = install would not write the key).
    pub desired: Option<String>,
    /// Line in the installed file.
    pub line: Option<usize>,
}

impl Item {
    /// One human line.
    pub(crate) fn describe(&self) -> String {
        let at = self
            .line
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        match (&self.installed, &self.desired) {
            (Some(i), Some(d)) => format!("{}{at}: {i:?} → {d:?}", self.key),
            (None, Some(d)) => format!("{}: missing, install writes {d:?}", self.key),
            (Some(i), None) => format!("{}{at}: {i:?} (not written by install)", self.key),
            (None, None) => self.key.clone(),
        }
    }
}

/// The classified difference.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Drift {
    /// Differing keys.
    pub items: Vec<Item>,
}

impl Drift {
    /// No difference.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Classes present.
    pub(crate) fn classes(&self) -> BTreeSet<Class> {
        self.items.iter().map(|i| i.class).collect()
    }
    #[cfg(test)]
    /// Only auto-repairable classes.
    pub(crate) fn auto_repairable(&self) -> bool {
        !self.items.is_empty() && self.items.iter().all(|i| i.class.auto())
    }
    /// Items of one class.
    pub(crate) fn of(&self, c: Class) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.class == c)
    }
}

type Keyed<'a> = BTreeMap<(String, String), Vec<&'a Entry>>;

fn keyed(entries: &[Entry]) -> Keyed<'_> {
    let mut m: Keyed<'_> = BTreeMap::new();
    for e in entries {
        m.entry((e.section.clone(), e.key.clone()))
            .or_default()
            .push(e);
    }
    m
}

fn same_program(installed: &str, desired: &str, this_binary: &Path) -> bool {
    if installed == desired {
        return true;
    }
    // Symlinks/relative forms that resolve to this binary are the same program.
    std::fs::canonicalize(installed)
        .map(|p| p == this_binary || Path::new(desired) == p)
        .unwrap_or(false)
}

fn port_arg(argv: &[String]) -> (Vec<String>, Option<String>) {
    let mut rest = Vec::new();
    let mut port = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--port" {
            port = it.next().cloned();
        } else if let Some(p) = a.strip_prefix("--port=") {
            port = Some(p.to_string());
        } else {
            rest.push(a.clone());
        }
    }
    (rest, port)
}

/// Compares an installed unit with the desired one. `this_binary` is the canonical path of
/// the running CLI (the binary install would pin).
pub(crate) fn classify(installed: &str, desired: &str, this_binary: &Path) -> Drift {
    let a = unit_file::parse(installed);
    let b = unit_file::parse(desired);
    let ka = keyed(&a);
    let kb = keyed(&b);
    let mut items = Vec::new();
    let keys: BTreeSet<(String, String)> = ka.keys().chain(kb.keys()).cloned().collect();
    for (section, key) in keys {
        let name = format!("{section}.{key}");
        let ia = ka.get(&(section.clone(), key.clone()));
        let ib = kb.get(&(section.clone(), key.clone()));
        let va: Vec<&str> = ia
            .map(|v| v.iter().map(|e| e.value.as_str()).collect())
            .unwrap_or_default();
        let vb: Vec<&str> = ib
            .map(|v| v.iter().map(|e| e.value.as_str()).collect())
            .unwrap_or_default();
        if va == vb {
            continue;
        }
        let line = ia.and_then(|v| v.first()).map(|e| e.line);
        if section == "Service" && key == "Environment" {
            env_items(&a, &b, &mut items);
            continue;
        }
        if section == "Service" && key == "ExecStart" && va.len() == 1 && vb.len() == 1 {
            let ea = unit_file::split_command(va[0]);
            let eb = unit_file::split_command(vb[0]);
            let (ra, pa) = port_arg(&ea);
            let (rb, pb) = port_arg(&eb);
            let prog_a = ra.first().cloned().unwrap_or_default();
            let prog_b = rb.first().cloned().unwrap_or_default();
            let mut explained = false;
            if !same_program(&prog_a, &prog_b, this_binary) {
                items.push(Item {
                    class: Class::StaleBinary,
                    key: "Service.ExecStart[0]".into(),
                    installed: Some(prog_a.clone()),
                    desired: Some(prog_b.clone()),
                    line,
                });
                explained = true;
            }
            if pa != pb {
                items.push(Item {
                    class: Class::Port,
                    key: "Service.ExecStart --port".into(),
                    installed: pa,
                    desired: pb,
                    line,
                });
                explained = true;
            }
            let (ta, tb) = (ra.get(1..).unwrap_or(&[]), rb.get(1..).unwrap_or(&[]));
            if ta != tb || !explained {
                // Arguments a newer renderer added (e.g. `--init`) are an outdated default;
                // anything else (extra, changed or reordered arguments) is the operator's.
                let class = if ta != tb && is_subsequence(ta, tb) {
                    Class::Outdated
                } else {
                    Class::OperatorEdit
                };
                items.push(Item {
                    class,
                    key: name,
                    installed: Some(va[0].to_string()),
                    desired: Some(vb[0].to_string()),
                    line,
                });
            }
            continue;
        }
        let joined_a = (!va.is_empty()).then(|| va.join(" "));
        let joined_b = (!vb.is_empty()).then(|| vb.join(" "));
        let class = match (&joined_a, &joined_b) {
            (None, Some(_)) => Class::Outdated,
            // The socket's addresses (and the description naming them) with only the port
            // changed: the port moved, nothing else.
            (Some(x), Some(y))
                if PORT_KEYS.contains(&(section.as_str(), key.as_str()))
                    && without_ports(x) == without_ports(y) =>
            {
                Class::Port
            }
            (Some(v), Some(_))
                if KNOWN_OLD
                    .iter()
                    .any(|(s, k, old)| *s == section && *k == key && old == v) =>
            {
                Class::Outdated
            }
            (Some(_), None)
                if KNOWN_RETIRED
                    .iter()
                    .any(|(s, k)| *s == section && *k == key) =>
            {
                Class::Outdated
            }
            _ => Class::OperatorEdit,
        };
        items.push(Item {
            class,
            key: name,
            installed: joined_a,
            desired: joined_b,
            line,
        });
    }
    Drift { items }
}

/// Keys whose value names the port (socket unit): a change of only its digits is a port move.
const PORT_KEYS: &[(&str, &str)] = &[("Socket", "ListenStream"), ("Unit", "Description")];

/// `s` with the port digits after each word's last `:` removed (`[::1]:18789` → `[::1]:`).
fn without_ports(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| match w.rsplit_once(':') {
            Some((host, tail)) => format!(
                "{host}:{}",
                tail.trim_start_matches(|c: char| c.is_ascii_digit())
            ),
            None => w.to_string(),
        })
        .collect()
}

fn is_subsequence(small: &[String], big: &[String]) -> bool {
    let mut it = big.iter();
    small.iter().all(|s| it.any(|b| b == s))
}

fn env_items(a: &[Entry], b: &[Entry], items: &mut Vec<Item>) {
    let ea = unit_file::environment(a);
    let eb = unit_file::environment(b);
    let lines = unit_file::environment_lines(a);
    let names: BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for n in names {
        let (va, vb) = (ea.get(n), eb.get(n));
        if va == vb {
            continue;
        }
        let class = if SECRET_ENV.contains(&n.as_str()) {
            Class::Secret
        } else if n == "OPENCLAW_GATEWAY_PORT" {
            Class::Port
        } else if va.is_none() {
            Class::Outdated
        } else {
            Class::OperatorEdit
        };
        let redact = |v: Option<&String>| {
            v.map(|s| {
                if SECRET_ENV.contains(&n.as_str()) {
                    "<redacted>".to_string()
                } else {
                    s.clone()
                }
            })
        };
        items.push(Item {
            class,
            key: format!("Service.Environment.{n}"),
            installed: redact(va),
            desired: redact(vb),
            line: lines.get(n).copied(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIRED: &str = "# header\n[Unit]\nDescription=OpenClaw Gateway\nStartLimitBurst=10\n\n[Service]\nType=notify\nExecStart=/usr/bin/openclaw gateway run --port 18789\nEnvironment=OPENCLAW_GATEWAY_PORT=18789\nEnvironment=OPENCLAW_SERVICE_MARKER=openclaw\nTimeoutStopSec=45\nNoNewPrivileges=yes\n\n[Install]\nWantedBy=default.target\n";

    fn bin() -> &'static Path {
        Path::new("/usr/bin/openclaw")
    }

    #[test]
    fn identical_and_comment_only_changes_are_no_drift() {
        assert!(classify(DESIRED, DESIRED, bin()).is_empty());
        let c = DESIRED.replace("# header", "# other header\n# more");
        assert!(classify(&c, DESIRED, bin()).is_empty());
    }

    #[test]
    fn port_binary_secret_and_outdated_are_auto() {
        let inst = DESIRED
            .replace("--port 18789", "--port 18795")
            .replace("PORT=18789", "PORT=18795")
            .replace("/usr/bin/openclaw", "/opt/old/openclaw")
            .replace("NoNewPrivileges=yes\n", "")
            .replace(
                "TimeoutStopSec=45",
                "TimeoutStopSec=45\nEnvironment=OPENCLAW_GATEWAY_TOKEN=s3cret",
            );
        let d = classify(&inst, DESIRED, bin());
        let classes = d.classes();
        assert!(classes.contains(&Class::Port));
        assert!(classes.contains(&Class::StaleBinary));
        assert!(classes.contains(&Class::Secret));
        assert!(classes.contains(&Class::Outdated));
        assert!(d.auto_repairable(), "{d:#?}");
        let all = format!("{d:?}");
        assert!(!all.contains("s3cret"), "secrets never reach a report");
    }

    #[test]
    fn operator_edits_are_preserved_class() {
        let inst = DESIRED
            .replace("TimeoutStopSec=45", "TimeoutStopSec=120")
            .replace("[Install]", "Nice=5\n\n[Install]")
            .replace("run --port", "run --verbose --port");
        let d = classify(&inst, DESIRED, bin());
        let edits: Vec<&str> = d.of(Class::OperatorEdit).map(|i| i.key.as_str()).collect();
        assert_eq!(
            edits,
            vec![
                "Service.ExecStart",
                "Service.Nice",
                "Service.TimeoutStopSec"
            ]
        );
        assert!(!d.auto_repairable());
        let t = d.of(Class::OperatorEdit).next().unwrap().describe();
        assert!(t.contains("(line 8)"), "{t}");
    }

    #[test]
    fn arguments_added_by_a_newer_renderer_are_outdated() {
        let desired = DESIRED.replace("--port 18789", "--port 18789 --init");
        let d = classify(DESIRED, &desired, bin());
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].class, Class::Outdated);
        let reordered = desired.replace(
            "gateway run --port 18789 --init",
            "run gateway --port 18789",
        );
        let d = classify(&reordered, &desired, bin());
        assert_eq!(d.items[0].class, Class::OperatorEdit);
    }

    #[test]
    fn known_old_values_are_outdated() {
        let desired = DESIRED.replace("Type=notify", "Type=notify-reload");
        let inst = DESIRED.replace(
            "Type=notify",
            "Type=notify\nExecReload=/bin/kill -HUP $MAINPID",
        );
        let d = classify(&inst, &desired, bin());
        assert!(d.items.iter().all(|i| i.class == Class::Outdated), "{d:#?}");
        assert_eq!(d.items.len(), 2);
    }

    #[test]
    fn a_moved_socket_port_is_port_drift_but_another_address_is_an_edit() {
        let sock = "[Unit]\nDescription=OpenClaw Gateway socket (127.0.0.1:18789, [::1]:18789)\n[Socket]\nListenStream=127.0.0.1:18789\nListenStream=[::1]:18789\n";
        let moved = sock.replace("18789", "18790");
        let d = classify(&moved, sock, bin());
        assert_eq!(d.items.len(), 2, "{d:#?}");
        assert!(d.items.iter().all(|i| i.class == Class::Port), "{d:#?}");
        let open = sock.replace("ListenStream=127.0.0.1", "ListenStream=0.0.0.0");
        let d = classify(&open, sock, bin());
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].class, Class::OperatorEdit);
        let any6 = moved.replace("[::1]", "[::]");
        assert!(
            classify(&any6, sock, bin())
                .of(Class::OperatorEdit)
                .next()
                .is_some()
        );
    }

    #[test]
    fn environment_items_carry_their_own_line() {
        let inst = DESIRED.replace(
            "TimeoutStopSec=45",
            "TimeoutStopSec=45\nEnvironment=OPENCLAW_GATEWAY_TOKEN=s3cret",
        );
        let d = classify(&inst, DESIRED, bin());
        let secret = d.of(Class::Secret).next().expect("secret item");
        let want = inst
            .lines()
            .position(|l| l.contains("OPENCLAW_GATEWAY_TOKEN"))
            .unwrap()
            + 1;
        assert_eq!(secret.line, Some(want), "{d:#?}");
        assert!(secret.describe().contains(&format!("(line {want})")));
    }
}
