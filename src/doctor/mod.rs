//! The checks and repairs behind `openclaw doctor` (the verb itself, with its printing, is
//! `commands/doctor.rs`):
//! named checks that detect drift between what is installed and what should be, and repairs
//! that never clobber an operator's work.
//!
//! - Every check implements [`Check`] (kebab-case id) and returns one [`Finding`]:
//!   `ok`/`warn`/`fail`/`skip`, details, a remediation line, and optionally a [`Repair`].
//! - All inputs come from an injected [`Ctx`] (paths, env snapshot, config, service
//!   observations, what install would write now, a gateway probe), so every check is a pure
//!   function of its context and is tested on crafted broken state in a temp dir.
//! - `--repair` applies the findings' repairs: config edits through the atomic writer (the
//!   previous file kept as `.bak`, 0600), permission fixes, and service rewrites through the
//!   install transaction (backup, daemon-reload, restart, readiness). Operator edits in a
//!   generated unit are preserved unless `--force`; drop-ins are never touched. Then the
//!   checks run again on a fresh context: a second `--repair` has nothing to do.
//! - Exit 1 when any check fails after repairs, else 0.
pub mod checks;
pub(crate) mod drift;
pub mod repair;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::Config;
use crate::config::paths::Paths;
use crate::error::Result;
use crate::ops::probe::Reach;
use crate::service::ServiceStatus;

/// Outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Ok,
    /// Not applicable here (with the reason in the summary).
    Skip,
    /// Works, but something will bite later.
    Warn,
    /// Broken now.
    Fail,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Skip => "skip",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// A repair doctor can apply. Values that are secrets are read at apply time, never stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Repair {
    /// `chmod MODE PATH` for each target.
    Chmod {
        /// (file or directory, wanted mode).
        targets: Vec<(PathBuf, u32)>,
    },
    /// Set a config key that is missing (never overwrites a value).
    SetConfig {
        /// Dotted key.
        key: String,
        /// Value.
        value: Value,
    },
    /// Generate `gateway.auth.token` into the config.
    GenerateToken,
    /// Copy a token embedded in a unit into the config (when the config has none), so the
    /// rewritten unit can drop it without locking clients out.
    AdoptUnitToken {
        /// The unit carrying it.
        unit: PathBuf,
    },
    /// Replace the credential lines of kept unit backups (`.bak`) with a comment.
    ScrubSecrets {
        /// The backups.
        files: Vec<PathBuf>,
    },
    /// Rewrite the service definition through the install transaction.
    Reinstall {
        /// Also when the file carries operator edits (needs `--force`).
        force: bool,
    },
}

impl Repair {
    /// One human line.
    pub fn describe(&self) -> String {
        match self {
            Repair::Chmod { targets } => targets
                .iter()
                .map(|(p, m)| format!("chmod {m:o} {}", p.display()))
                .collect::<Vec<_>>()
                .join("; "),
            Repair::SetConfig { key, value } => format!("set {key}={value} in the config"),
            Repair::GenerateToken => "generate gateway.auth.token in the config".into(),
            Repair::AdoptUnitToken { unit } => format!(
                "move the token embedded in {} into the config",
                unit.display()
            ),
            Repair::ScrubSecrets { files } => format!(
                "remove the credential from {}",
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Repair::Reinstall { force: false } => {
                "rewrite the service definition (gateway install transaction)".into()
            }
            Repair::Reinstall { force: true } => {
                "rewrite the service definition, replacing operator edits (backup kept)".into()
            }
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Check id (kebab-case).
    pub id: &'static str,
    /// Level.
    pub level: Level,
    /// One line.
    pub summary: String,
    /// More lines (file:line, drift items, …).
    pub details: Vec<String>,
    /// What the operator should do.
    pub remediation: Option<String>,
    /// What `--repair` would do (`None`: nothing automatic).
    pub repair: Option<Repair>,
    /// The repair needs `--force` (it would replace operator edits).
    pub needs_force: bool,
}

impl Finding {
    fn new(id: &'static str, level: Level, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            level,
            summary: summary.into(),
            details: Vec::new(),
            remediation: None,
            repair: None,
            needs_force: false,
        }
    }
    /// `ok`.
    pub fn ok(id: &'static str, summary: impl Into<String>) -> Finding {
        Self::new(id, Level::Ok, summary)
    }
    /// `warn`.
    pub fn warn(id: &'static str, summary: impl Into<String>) -> Finding {
        Self::new(id, Level::Warn, summary)
    }
    /// `fail`.
    pub fn fail(id: &'static str, summary: impl Into<String>) -> Finding {
        Self::new(id, Level::Fail, summary)
    }
    /// `skip`.
    pub fn skip(id: &'static str, summary: impl Into<String>) -> Finding {
        Self::new(id, Level::Skip, summary)
    }
    /// Adds a remediation line.
    pub fn fix(mut self, r: impl Into<String>) -> Finding {
        self.remediation = Some(r.into());
        self
    }
    /// Adds a repair.
    pub fn repair(mut self, r: Repair) -> Finding {
        self.repair = Some(r);
        self
    }
    /// Adds detail lines.
    pub fn details(mut self, d: Vec<String>) -> Finding {
        self.details = d;
        self
    }
}

/// One named check.
pub trait Check {
    /// Kebab-case id (`config-valid`, `service-port`, …).
    fn id(&self) -> &'static str;
    /// Runs against the context.
    fn run(&self, ctx: &Ctx) -> Finding;
}

/// Which service manager the definitions belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ManagerKind {
    /// systemd user units.
    Systemd,
    /// launchd LaunchAgents.
    Launchd,
}

/// Runs the install transaction for repairs (the native manager in production, a recorder in
/// tests). Returns a human summary of what it did.
pub type Reinstaller = Box<dyn Fn(bool) -> Result<String>>;

/// The install transaction (`openclaw gateway install` with its defaults) for a profile: the
/// verb layer passes it in, so the checks library never names the command that uses it.
pub type InstallFn = fn(&Paths) -> Result<()>;

/// What doctor knows about the service definition.
pub struct ServiceCtx {
    /// Manager (`None`: no service support on this platform/build).
    pub kind: Option<ManagerKind>,
    /// Unit base name (`openclaw-gateway[-P]`) or launchd label.
    pub name: String,
    /// Where install writes user units (`~/.config/systemd/user`) or plists
    /// (`~/Library/LaunchAgents`).
    pub user_dir: PathBuf,
    /// Package-manager unit dirs (`/usr/lib/systemd/user`, …): units there are not ours.
    pub package_dirs: Vec<PathBuf>,
    /// System-manager unit dirs (`/etc/systemd/system`, …).
    pub system_dirs: Vec<PathBuf>,
    /// The service file install would write now, or why it cannot be rendered.
    pub desired: std::result::Result<String, String>,
    /// The socket unit install would write now (systemd), or why it cannot be rendered
    /// (`None`: this manager has no socket unit, or it was not rendered).
    pub desired_socket: Option<std::result::Result<String, String>>,
    /// `systemd-analyze security` of the installed unit: (score, verdict word), or why it
    /// could not be measured (`None`: not measured here).
    pub exposure: Option<std::result::Result<(String, String), String>>,
    /// What the manager reports (`None`: not asked).
    pub status: Option<std::result::Result<ServiceStatus, String>>,
    /// The install transaction.
    pub reinstall: Option<Reinstaller>,
}

impl std::fmt::Debug for ServiceCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCtx")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("user_dir", &self.user_dir)
            .finish()
    }
}

impl ServiceCtx {
    /// No service manager.
    pub fn none(name: &str) -> ServiceCtx {
        ServiceCtx {
            kind: None,
            name: name.into(),
            user_dir: PathBuf::new(),
            package_dirs: vec![],
            system_dirs: vec![],
            desired: Err("no service manager on this platform".into()),
            desired_socket: None,
            exposure: None,
            status: None,
            reinstall: None,
        }
    }

    /// `<user_dir>/<name>.service` (systemd) or `<user_dir>/<label>.plist` (launchd).
    pub fn user_file(&self) -> PathBuf {
        match self.kind {
            Some(ManagerKind::Launchd) => self.user_dir.join(format!("{}.plist", self.name)),
            _ => self.user_dir.join(format!("{}.service", self.name)),
        }
    }

    /// `<user_dir>/<name>.socket` (systemd).
    pub fn socket_file(&self) -> PathBuf {
        self.user_dir.join(format!("{}.socket", self.name))
    }
}

/// Everything a check may look at.
#[derive(Debug)]
pub struct Ctx {
    /// Paths of this profile.
    pub paths: Paths,
    /// Relevant environment variables.
    pub env: HashMap<String, String>,
    /// The config, or the error loading it.
    pub config: std::result::Result<Config, String>,
    /// Port the CLI resolves and the rule that picked it.
    pub cli_port: Option<(u16, String)>,
    /// Canonical path of this binary (what install pins).
    pub program: PathBuf,
    /// This binary's version.
    pub version: String,
    /// Service view.
    pub service: ServiceCtx,
    /// Gateway probe (`None`: not probed).
    pub gateway: Option<Reach>,
    /// `--deep`.
    pub deep: bool,
}

impl Ctx {
    /// The config when it loaded.
    pub fn cfg(&self) -> Option<&Config> {
        self.config.as_ref().ok()
    }
    /// An env var from the snapshot.
    pub fn env(&self, k: &str) -> Option<&str> {
        self.env
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// All findings of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Findings in check order.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Any `fail`.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Fail)
    }
    /// Findings with an applicable repair (`force`: include those needing `--force`).
    pub fn repairable(&self, force: bool) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.repair.is_some() && f.level >= Level::Warn && (force || !f.needs_force))
            .collect()
    }
    /// Without `force`, a service rewrite is held back for every finding while one of them
    /// would replace operator edits.
    pub fn reinstall_held(&self, force: bool) -> bool {
        !force
            && self.findings.iter().any(|f| {
                f.needs_force
                    && f.level >= Level::Warn
                    && matches!(f.repair, Some(Repair::Reinstall { .. }))
            })
    }
    /// The repairable findings `--repair` will actually carry out (what the summary counts).
    pub fn will_repair(&self, force: bool) -> Vec<&Finding> {
        let held = self.reinstall_held(force);
        self.repairable(force)
            .into_iter()
            .filter(|f| !(held && matches!(f.repair, Some(Repair::Reinstall { .. }))))
            .collect()
    }
}

/// Runs every check.
pub fn run_all(checks: &[Box<dyn Check>], ctx: &Ctx) -> Report {
    let mut r = Report {
        findings: checks.iter().map(|c| c.run(ctx)).collect(),
    };
    // A rewrite that would move the service onto a taken port is no repair (port preflight).
    self::checks::hold_blocked_port_moves(ctx, &mut r);
    r
}

/// Text rendering.
pub fn render_text(r: &Report, force: bool) -> String {
    let mut o = String::new();
    let width = r.findings.iter().map(|f| f.id.len()).max().unwrap_or(0);
    for f in &r.findings {
        let _ = writeln!(o, "{:<4} {:<width$}  {}", f.level.word(), f.id, f.summary);
        for d in &f.details {
            let _ = writeln!(o, "     {:<width$}  - {d}", "");
        }
        if let Some(rem) = f.remediation.as_ref().filter(|_| f.level >= Level::Warn) {
            let _ = writeln!(o, "     {:<width$}  → {rem}", "");
        }
    }
    let count = |l: Level| r.findings.iter().filter(|f| f.level == l).count();
    let repairable = r.will_repair(force).len();
    let held = r.repairable(force).len() - repairable;
    let _ = write!(
        o,
        "Summary: {} ok, {} warn, {} fail, {} skipped",
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail),
        count(Level::Skip)
    );
    if repairable > 0 {
        let _ = write!(
            o,
            " ({repairable} repairable: run `openclaw doctor --repair`)"
        );
    }
    if held > 0 {
        let _ = write!(
            o,
            " ({held} held back by operator edits: move them into a drop-in, or `openclaw doctor --repair --force`)"
        );
    }
    o.push('\n');
    o
}

/// JSON rendering.
pub fn render_json(r: &Report, applied: &[repair::Applied]) -> Value {
    json!({
        "ok": !r.failed(),
        "findings": r.findings,
        "repairs": applied,
    })
}
