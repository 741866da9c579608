//! The checks, and the production [`Ctx`] builder.
//!
//! Ids: `config-valid`, `gateway-mode`, `gateway-auth`, `state-permissions`,
//! `service-secrets`, `service-unit`, `service-socket`, `service-binary`, `service-port`,
//! `service-dropins`, `service-exposure`,
//! `service-state`, `linger`, `competing-units`, `gateway-reachable`, `gateway-argv`,
//! `version-match`, `activation-env`, `profile-collisions`.
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::drift::{self, Class};
use super::{Check, Ctx, Finding, Level, ManagerKind, Repair, ServiceCtx};
use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::config::secrets::resolve_config_secret;
use crate::service::scrub::secret_lines;
use crate::service::systemd::unit_file;

/// The marker line every unit written by `gateway install` carries.
pub use crate::service::systemd::manager::MARKER;
/// The operator-owned environment file in the state dir.
pub const ENV_FILE: &str = "gateway.systemd.env";

struct FnCheck {
    id: &'static str,
    f: fn(&Ctx) -> Finding,
}

impl Check for FnCheck {
    fn id(&self) -> &'static str {
        self.id
    }
    fn run(&self, ctx: &Ctx) -> Finding {
        let mut f = (self.f)(ctx);
        f.id = self.id;
        f
    }
}

/// Every check, in report order.
pub fn all() -> Vec<Box<dyn Check>> {
    type CheckFn = fn(&Ctx) -> Finding;
    let list: [(&'static str, CheckFn); 19] = [
        ("config-valid", config_valid),
        ("gateway-mode", gateway_mode),
        ("gateway-auth", gateway_auth),
        ("state-permissions", state_permissions),
        ("service-secrets", service_secrets),
        ("service-unit", service_unit),
        ("service-socket", service_socket),
        ("service-binary", service_binary),
        ("service-port", service_port),
        ("service-dropins", service_dropins),
        ("service-exposure", service_exposure),
        ("service-state", service_state),
        ("linger", linger),
        ("competing-units", competing_units),
        ("gateway-reachable", gateway_reachable),
        ("gateway-argv", gateway_argv),
        ("version-match", version_match),
        ("activation-env", activation_env),
        ("profile-collisions", profile_collisions),
    ];
    list.into_iter()
        .map(|(id, f)| Box::new(FnCheck { id, f }) as Box<dyn Check>)
        .collect()
}

fn pf(ctx: &Ctx) -> String {
    crate::ops::profile_flag(&ctx.paths)
}

// ---------------------------------------------------------------- config

fn config_valid(ctx: &Ctx) -> Finding {
    match &ctx.config {
        Err(e) => {
            let bak = PathBuf::from(format!("{}.bak", ctx.paths.config_path.display()));
            let mut f = Finding::fail("", e.lines().next().unwrap_or_default().to_string())
                .fix(format!(
                    "Fix the file at the line and column shown{}; the gateway refuses to start (exit 78) and a running one keeps its last good config.",
                    if bak.exists() {
                        format!(", or restore {}", bak.display())
                    } else {
                        String::new()
                    }
                ));
            f.details = e.lines().skip(1).map(str::to_string).collect();
            f
        }
        Ok(c) if !c.exists => Finding::warn(
            "",
            format!("no config at {}", c.path.display()),
        )
        .fix(format!(
            "Create it: `openclaw{} setup` (gateway.mode=local and a generated token), or `openclaw doctor --repair`.",
            pf(ctx)
        ))
        .repair(Repair::SetConfig {
            key: "gateway.mode".into(),
            value: "local".into(),
        }),
        Ok(c) => Finding::ok("", format!("{} parses and validates", c.path.display())),
    }
}

fn gateway_mode(ctx: &Ctx) -> Finding {
    let Some(c) = ctx.cfg().filter(|c| c.exists) else {
        return Finding::skip("", "no valid config");
    };
    match c.gateway.mode.as_deref() {
        Some("local") => Finding::ok("", "gateway.mode=local"),
        None => Finding::fail(
            "",
            "gateway.mode is missing: the gateway refuses to start (\"Gateway start blocked\")",
        )
        .fix("Set gateway.mode=local (`openclaw doctor --repair` does it; the previous file is kept as .bak).")
        .repair(Repair::SetConfig {
            key: "gateway.mode".into(),
            value: "local".into(),
        }),
        Some("remote") => Finding::warn(
            "",
            format!(
                "gateway.mode=remote: no local gateway runs from this config; clients use {}",
                c.get("gateway.remote.url")
                    .and_then(|v| v.as_str())
                    .unwrap_or("gateway.remote.url (unset)")
            ),
        )
        .fix("Set gateway.mode=local to run the gateway on this host."),
        Some(other) => Finding::fail("", format!("gateway.mode={other:?} is not a valid mode"))
            .fix("Set gateway.mode to \"local\" (or \"remote\" with gateway.remote.url)."),
    }
}

fn is_loopback_bind(c: &Config) -> bool {
    match c.gateway.bind.as_deref() {
        None | Some("loopback") | Some("auto") => true,
        Some("custom") => c
            .gateway
            .custom_bind_host
            .as_deref()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback()),
        _ => false,
    }
}

fn gateway_auth(ctx: &Ctx) -> Finding {
    let Some(c) = ctx.cfg().filter(|c| c.exists) else {
        return Finding::skip("", "no valid config");
    };
    let token = match resolve_config_secret(c, "gateway.auth.token") {
        Ok(t) => t.or_else(|| ctx.env("OPENCLAW_GATEWAY_TOKEN").map(str::to_string)),
        Err(e) => {
            return Finding::fail("", e.to_string())
                .fix("Make the SecretRef resolvable (or set gateway.auth.token); the gateway refuses to start without its credential.");
        }
    };
    let password = match resolve_config_secret(c, "gateway.auth.password") {
        Ok(p) => p.or_else(|| ctx.env("OPENCLAW_GATEWAY_PASSWORD").map(str::to_string)),
        Err(e) => return Finding::fail("", e.to_string()),
    };
    let loopback = is_loopback_bind(c);
    let bind = c.gateway.bind.as_deref().unwrap_or("loopback");
    let mode = c.gateway.auth.mode.as_deref();
    match mode {
        None if token.is_some() && password.is_some() => Finding::fail(
            "",
            "both a token and a password are set but gateway.auth.mode is not: the gateway refuses to start",
        )
        .fix("Set gateway.auth.mode to \"token\" or \"password\"."),
        Some("none") if !loopback => Finding::fail(
            "",
            format!("gateway.bind={bind} without auth: the gateway refuses to start (and must not)"),
        )
        .fix("Set gateway.auth.mode=token (`openclaw doctor --repair` generates a token) or bind to loopback.")
        .repair(Repair::GenerateToken),
        Some("none") => Finding::warn(
            "",
            "auth is off (gateway.auth.mode=none): any local process can control the gateway",
        )
        .fix("Use token auth: set gateway.auth.mode=token and a token (`openclaw setup`)."),
        Some("password") if password.is_none() => Finding::fail(
            "",
            "gateway.auth.mode=password but no password is set: the gateway refuses to start",
        )
        .fix("Set gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD)."),
        Some("password") => Finding::ok("", format!("password auth, bind={bind}")),
        Some(m) if m != "token" => Finding::fail("", format!("gateway.auth.mode={m:?} is not supported"))
            .fix("Use token, password or none."),
        _ if token.is_none() && password.is_some() && mode.is_none() => {
            Finding::ok("", format!("password auth, bind={bind}"))
        }
        _ if token.is_none() && !loopback => Finding::fail(
            "",
            format!("gateway.bind={bind} without a token: the gateway refuses to start"),
        )
        .fix("`openclaw doctor --repair` generates gateway.auth.token (0600 config).")
        .repair(Repair::GenerateToken),
        _ if token.is_none() => Finding::warn(
            "",
            "token auth but no token yet: the gateway generates one at first start, and clients cannot authenticate before that",
        )
        .fix("`openclaw doctor --repair` (or `openclaw setup`) generates gateway.auth.token now.")
        .repair(Repair::GenerateToken),
        _ => Finding::ok(
            "",
            format!(
                "token auth{}, bind={bind}",
                if ctx.env("OPENCLAW_GATEWAY_TOKEN").is_some()
                    && c.get("gateway.auth.token").is_none()
                {
                    " (token from OPENCLAW_GATEWAY_TOKEN)"
                } else {
                    ""
                }
            ),
        ),
    }
}

fn mode_of(p: &Path) -> Option<(u32, u32)> {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.permissions().mode() & 0o7777, m.uid()))
}

fn state_permissions(ctx: &Ctx) -> Finding {
    let uid = nix::unistd::geteuid().as_raw();
    let mut problems = Vec::new();
    let mut targets_fix: Vec<(PathBuf, u32)> = Vec::new();
    let mut fatal_owner = None;
    let targets = [
        (ctx.paths.state_dir.clone(), 0o700, "state dir"),
        (ctx.paths.config_path.clone(), 0o600, "config"),
        (
            ctx.paths.state_dir.join(ENV_FILE),
            0o600,
            "service env file",
        ),
    ];
    let mut seen_any = false;
    for (path, want, what) in targets {
        let Some((mode, owner)) = mode_of(&path) else {
            continue;
        };
        seen_any = true;
        if owner != uid {
            fatal_owner = Some(format!(
                "{what} {} belongs to uid {owner}, not to you (uid {uid})",
                path.display()
            ));
            continue;
        }
        if mode & 0o077 != 0 {
            problems.push(format!(
                "{what} {} is {:04o} (want {want:04o}: it holds the gateway token)",
                path.display(),
                mode
            ));
            targets_fix.push((path, want));
        }
    }
    if let Some(o) = fatal_owner {
        return Finding::fail("", o).fix("Fix the ownership (chown) or use your own state dir.");
    }
    if !seen_any {
        return Finding::warn(
            "",
            format!("state dir {} does not exist", ctx.paths.state_dir.display()),
        )
        .fix(format!("Create it: `openclaw{} setup`.", pf(ctx)));
    }
    if problems.is_empty() {
        return Finding::ok("", "state dir 0700, config and env file 0600");
    }
    let mut f = Finding::fail("", problems[0].clone())
        .fix("`openclaw doctor --repair` tightens them (chmod 700 dir, 600 files).");
    f.details = problems[1..].to_vec();
    f.repair = Some(Repair::Chmod {
        targets: targets_fix,
    });
    f
}

// ---------------------------------------------------------------- service files

/// The installed service file, if install wrote one (user dir).
fn user_unit(ctx: &Ctx) -> Option<(PathBuf, String)> {
    let p = ctx.service.user_file();
    std::fs::read_to_string(&p).ok().map(|t| (p, t))
}

/// A same-name unit installed by a package (not ours, never shadowed by doctor).
fn package_unit(ctx: &Ctx) -> Option<(PathBuf, String)> {
    let name = format!("{}.service", ctx.service.name);
    ctx.service
        .package_dirs
        .iter()
        .map(|d| d.join(&name))
        .find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
}

/// Drop-in files for the unit, in every directory systemd reads them from.
pub fn dropins(ctx: &Ctx) -> Vec<PathBuf> {
    let sub = format!("{}.service.d", ctx.service.name);
    let mut out = Vec::new();
    for d in std::iter::once(&ctx.service.user_dir).chain(ctx.service.package_dirs.iter()) {
        if let Ok(rd) = std::fs::read_dir(d.join(&sub)) {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("conf"))
                .collect();
            v.sort();
            out.extend(v);
        }
    }
    out
}

/// The configured gateway credentials (8+ characters), to find them verbatim in files.
pub(crate) fn secret_values(ctx: &Ctx) -> Vec<String> {
    let Some(c) = ctx.cfg() else {
        return Vec::new();
    };
    ["gateway.auth.token", "gateway.auth.password"]
        .iter()
        .filter_map(|k| resolve_config_secret(c, k).ok().flatten())
        .filter(|s| s.len() >= 8)
        .collect()
}

/// The copies install keeps of the previous unit files (`<unit>.bak`).
fn unit_backups(ctx: &Ctx) -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from(format!(
        "{}.bak",
        ctx.service.user_file().display()
    ))];
    if ctx.service.kind == Some(ManagerKind::Systemd) {
        v.push(PathBuf::from(format!(
            "{}.bak",
            ctx.service.socket_file().display()
        )));
    }
    v
}

fn service_secrets(ctx: &Ctx) -> Finding {
    let secrets = secret_values(ctx);
    let mut fail = Vec::new();
    let mut warn = Vec::new();
    let mut repair = None;
    if let Some((p, text)) = user_unit(ctx) {
        let lines = secret_lines(&text, &secrets);
        if !lines.is_empty() {
            fail.push(format!("{} line(s) {}", p.display(), join(&lines)));
            repair = Some(
                if text.contains("OPENCLAW_GATEWAY_TOKEN=")
                    && ctx
                        .cfg()
                        .is_some_and(|c| c.get("gateway.auth.token").is_none())
                {
                    Repair::AdoptUnitToken { unit: p.clone() }
                } else {
                    Repair::Reinstall { force: false }
                },
            );
        }
    }
    let mut backups = Vec::new();
    for b in unit_backups(ctx) {
        if let Ok(text) = std::fs::read_to_string(&b) {
            let lines = secret_lines(&text, &secrets);
            if !lines.is_empty() {
                fail.push(format!(
                    "{} line(s) {} (backup of an earlier unit)",
                    b.display(),
                    join(&lines)
                ));
                backups.push(b);
            }
        }
    }
    if repair.is_none() && !backups.is_empty() {
        repair = Some(Repair::ScrubSecrets { files: backups });
    }
    for d in dropins(ctx) {
        if let Ok(text) = std::fs::read_to_string(&d) {
            let lines = secret_lines(&text, &secrets);
            if !lines.is_empty() {
                fail.push(format!(
                    "{} line(s) {} (drop-in: yours to edit)",
                    d.display(),
                    join(&lines)
                ));
            }
        }
    }
    let env_file = ctx.paths.state_dir.join(ENV_FILE);
    if let Ok(text) = std::fs::read_to_string(&env_file) {
        let lines = secret_lines(&text, &secrets);
        if !lines.is_empty() {
            warn.push(format!(
                "{} line(s) {} (0600 env file; config is the single source of truth)",
                env_file.display(),
                join(&lines)
            ));
        }
    }
    if fail.is_empty() && warn.is_empty() {
        return Finding::ok("", "no credentials in service files");
    }
    let mut all = fail.clone();
    all.extend(warn);
    let mut f = if fail.is_empty() {
        Finding::warn("", "a gateway credential sits in the service env file")
    } else {
        Finding::fail(
            "",
            "a gateway credential is embedded in a service file (world-readable, and stale after rotation)",
        )
    };
    f.details = all;
    f.remediation = Some(
        "Keep the token only in gateway.auth.token (0600 config). `openclaw doctor --repair` moves it there, rewrites the generated unit and removes it from backups; remove it from drop-ins/env files yourself, then `systemctl --user daemon-reload`.".into(),
    );
    f.repair = repair;
    f
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn no_service(ctx: &Ctx) -> Option<Finding> {
    if ctx.service.kind.is_none() {
        return Some(Finding::skip("", "no service manager on this platform"));
    }
    if !ctx.paths.default_identity {
        return Some(Finding::skip(
            "",
            "non-default state dir or config path (OPENCLAW_HOME/STATE_DIR/CONFIG_PATH): service checks and repairs skipped",
        ));
    }
    None
}

fn service_unit(ctx: &Ctx) -> Finding {
    if let Some(f) = no_service(ctx) {
        return f;
    }
    let ours = user_unit(ctx);
    let pkg = package_unit(ctx);
    let shadows: Option<PathBuf>;
    let (path, text) = match (ours, pkg) {
        (None, Some((p, _))) => {
            return Finding::ok(
                "",
                format!(
                    "package-installed unit {} (owned by your package manager or administrator; not compared, never shadowed)",
                    p.display()
                ),
            );
        }
        (None, None) => {
            return Finding::warn("", format!("{} is not installed", ctx.service.user_file().display()))
                .fix(format!(
                    "Install the service: `openclaw{} gateway install` (doctor never installs one on its own).",
                    pf(ctx)
                ));
        }
        (Some(u), pkg) => {
            // Not an error on its own: a user unit may deliberately override a packaged one.
            shadows = pkg.map(|(p, _)| p);
            u
        }
    };
    let desired = match &ctx.service.desired {
        Ok(d) => d,
        Err(why) => {
            return Finding::skip(
                "",
                format!("{} installed; cannot compare: {why}", path.display()),
            );
        }
    };
    let generated = text.contains(MARKER);
    let d = drift::classify(&text, desired, &ctx.program);
    let overrides = shadows
        .map(|p| format!("overrides the package-installed {}", p.display()))
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    if d.is_empty() {
        return Finding::ok("", format!("{} is current{overrides}", path.display()));
    }
    let details: Vec<String> = d.items.iter().map(drift_detail).collect();
    let edits = d.of(Class::OperatorEdit).count();
    let auto: Vec<Class> = d.classes().into_iter().filter(|c| c.auto()).collect();
    let severe = auto
        .iter()
        .any(|c| matches!(c, Class::StaleBinary | Class::Port | Class::Secret));
    let name = format!("{}.service", ctx.service.name);
    if edits == 0 && generated {
        let mut f = if severe {
            Finding::fail(
                "",
                format!("{} differs from what install writes now", path.display()),
            )
        } else {
            Finding::warn("", format!("{} has outdated defaults", path.display()))
        };
        f.details = details;
        f.remediation = Some(format!(
            "`openclaw{} doctor --repair` rewrites it (previous file kept as .bak, daemon-reload, restart); drop-ins are kept.",
            pf(ctx)
        ));
        f.repair = Some(Repair::Reinstall { force: false });
        return f;
    }
    let what = if generated {
        format!(
            "{edits} operator edit(s) in the generated {}",
            path.display()
        )
    } else {
        format!(
            "{} was not written by `openclaw gateway install` (no marker line)",
            path.display()
        )
    };
    let mut f = if severe {
        Finding::fail("", format!("{what}; also out of date"))
    } else {
        Finding::warn("", format!("{what}: preserved"))
    };
    f.details = details;
    f.remediation = Some(format!(
        "Move your changes into a drop-in (`systemctl --user edit {name}`), which install and doctor never touch; then `openclaw{pf} doctor --repair`. Or `openclaw{pf} doctor --repair --force` rewrites the file now (your version is kept as .bak).",
        pf = pf(ctx)
    ));
    f.repair = Some(Repair::Reinstall { force: true });
    f.needs_force = true;
    f
}

fn drift_detail(i: &drift::Item) -> String {
    format!(
        "{}: {}",
        match i.class {
            Class::Outdated => "outdated",
            Class::StaleBinary => "stale binary",
            Class::Port => "port",
            Class::Secret => "secret",
            Class::OperatorEdit => "operator edit",
        },
        i.describe()
    )
}

/// The socket unit of a generated service: it exists, matches what install writes (its
/// `ListenStream=` port above all), and is enabled through a live `sockets.target.wants`
/// link. Without it `gateway start` fails ("Unit … not found") and nothing listens after
/// the next login.
fn service_socket(ctx: &Ctx) -> Finding {
    let (_, _, ours) = match installed_unit(ctx) {
        Ok(u) => u,
        Err(f) => return f,
    };
    if !ours || !user_unit(ctx).is_some_and(|(_, t)| t.contains(MARKER)) {
        return Finding::skip(
            "",
            "the service unit was not written by `openclaw gateway install`; its socket is not ours to check",
        );
    }
    let desired = match &ctx.service.desired_socket {
        None => return Finding::skip("", "no socket unit rendered"),
        Some(Err(why)) => return Finding::skip("", format!("cannot compare: {why}")),
        Some(Ok(d)) => d,
    };
    let path = ctx.service.socket_file();
    let name = format!("{}.socket", ctx.service.name);
    let link = ctx
        .service
        .user_dir
        .join("sockets.target.wants")
        .join(&name);
    let repair_fix = format!(
        "`openclaw{} doctor --repair` rewrites and re-enables it through the install transaction (daemon-reload, restart).",
        pf(ctx)
    );
    let Ok(text) = std::fs::read_to_string(&path) else {
        let mut f = Finding::fail(
            "",
            format!(
                "{} is missing: `gateway start` fails (\"Unit {name} not found\") and nothing listens after the next login",
                path.display()
            ),
        )
        .fix(repair_fix)
        .repair(Repair::Reinstall { force: false });
        if std::fs::symlink_metadata(&link).is_ok() {
            f.details = vec![format!("{} points at the missing file", link.display())];
        }
        return f;
    };
    let d = drift::classify(&text, desired, &ctx.program);
    let mut details: Vec<String> = d.items.iter().map(drift_detail).collect();
    let enabled = std::fs::metadata(&link).is_ok();
    let dangling = !enabled && std::fs::symlink_metadata(&link).is_ok();
    if dangling {
        details.push(format!("{} is a dangling link", link.display()));
    }
    let edits = d.of(Class::OperatorEdit).count();
    if d.of(Class::Port).next().is_some() {
        let listen =
            unit_file::values(&unit_file::parse(&text), "Socket", "ListenStream").join(", ");
        let port = ctx
            .cli_port
            .as_ref()
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        let mut f = Finding::fail(
            "",
            format!(
                "{} listens on {listen} but the service and this CLI use port {port}: clients are refused",
                path.display()
            ),
        )
        .details(details)
        .fix(repair_fix);
        f.repair = Some(Repair::Reinstall { force: edits > 0 });
        f.needs_force = edits > 0;
        return f;
    }
    if edits > 0 {
        let mut f = Finding::warn("", format!("{edits} operator edit(s) in the generated {}: preserved", path.display()))
            .details(details)
            .fix(format!(
                "Move your changes into a drop-in (`systemctl --user edit {name}`); or `openclaw{} doctor --repair --force` rewrites the file now (your version is kept as .bak).",
                pf(ctx)
            ))
            .repair(Repair::Reinstall { force: true });
        f.needs_force = true;
        return f;
    }
    if !d.is_empty() {
        return Finding::warn("", format!("{} has outdated defaults", path.display()))
            .details(details)
            .fix(repair_fix)
            .repair(Repair::Reinstall { force: false });
    }
    if !enabled {
        return Finding::fail(
            "",
            format!("{name} is not enabled: nothing listens after the next login or reboot"),
        )
        .details(details)
        .fix(repair_fix)
        .repair(Repair::Reinstall { force: false });
    }
    Finding::ok("", format!("{} is current and enabled", path.display()))
}

/// The installed systemd unit the unit checks read (path, entries, written by us), or the
/// finding that says why there is none to check.
fn installed_unit(ctx: &Ctx) -> Result<(PathBuf, Vec<unit_file::Entry>, bool), Finding> {
    if let Some(f) = no_service(ctx) {
        return Err(f);
    }
    if ctx.service.kind != Some(ManagerKind::Systemd) {
        return Err(Finding::skip(
            "",
            "systemd units only (launchd: `openclaw gateway status`)",
        ));
    }
    if let Some((p, t)) = user_unit(ctx) {
        return Ok((p, unit_file::parse(&t), true));
    }
    package_unit(ctx)
        .map(|(p, t)| (p, unit_file::parse(&t), false))
        .ok_or_else(|| Finding::skip("", "no unit installed"))
}

fn service_binary(ctx: &Ctx) -> Finding {
    let (path, entries, ours) = match installed_unit(ctx) {
        Ok(u) => u,
        Err(f) => return f,
    };
    let Some(exec) = unit_file::last(&entries, "Service", "ExecStart") else {
        return Finding::fail("", format!("{} has no ExecStart=", path.display()));
    };
    let argv = unit_file::split_command(exec);
    let prog = PathBuf::from(argv.first().cloned().unwrap_or_default());
    let repair = ours.then_some(Repair::Reinstall { force: false });
    let fix = if ours {
        format!(
            "`openclaw{} doctor --repair` points the unit at {} (or run `gateway install` from the binary you want).",
            pf(ctx),
            ctx.program.display()
        )
    } else {
        "Reinstall the package that ships this unit.".to_string()
    };
    let meta = std::fs::metadata(&prog);
    match meta {
        Err(_) => {
            let mut f = Finding::fail(
                "",
                format!(
                    "ExecStart runs {}, which does not exist: the service cannot start",
                    prog.display()
                ),
            )
            .fix(fix);
            f.repair = repair;
            f
        }
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            let mut f = Finding::fail("", format!("{} is not executable", prog.display())).fix(fix);
            f.repair = repair;
            f
        }
        Ok(_) => {
            let canon = std::fs::canonicalize(&prog).unwrap_or(prog.clone());
            if !ours || canon == ctx.program {
                Finding::ok("", format!("ExecStart runs {}", prog.display()))
            } else {
                let mut f = Finding::warn(
                    "",
                    format!(
                        "the service runs {} but this CLI is {}",
                        prog.display(),
                        ctx.program.display()
                    ),
                )
                .fix(fix);
                f.repair = repair;
                f
            }
        }
    }
}

fn service_port(ctx: &Ctx) -> Finding {
    let (path, entries, ours) = match installed_unit(ctx) {
        Ok(u) => u,
        Err(f) => return f,
    };
    let Some((cli, source)) = &ctx.cli_port else {
        return Finding::skip("", "the CLI port cannot be resolved (config invalid)");
    };
    let Some(unit) = unit_file::service_port(&entries) else {
        return Finding::warn(
            "",
            format!(
                "{} names no --port; it uses its own default",
                path.display()
            ),
        );
    };
    if unit == *cli {
        return Finding::ok("", format!("service and CLI agree on port {cli}"));
    }
    // Preflight: moving the service onto a port someone else holds (or another profile is
    // configured on) would take this gateway down; that is not a repair.
    if let Some(b) = port_move_blocked(ctx, *cli) {
        return Finding::fail(
            "",
            format!(
                "the service listens on {unit} but this CLI resolves {cli} ({source}); {}",
                b.summary
            ),
        )
        .details(b.details)
        .fix(format!(
            "Not repairable while port {cli} is taken. Next: {} Or keep the service where it is: set gateway.port={unit} in {}.",
            b.next.join(" "),
            ctx.paths.config_path.display()
        ));
    }
    let mut f = Finding::fail(
        "",
        format!(
            "the service listens on {unit} but this CLI resolves {cli} ({source}): clients miss the gateway"
        ),
    )
    .fix(format!(
        "Config is the source of truth: `openclaw{} doctor --repair` moves the service to {cli}; or set gateway.port={unit} to keep the service where it is.",
        pf(ctx)
    ));
    f.repair = ours.then_some(Repair::Reinstall { force: false });
    f
}

/// When a service rewrite now would move the installed service to another port and that
/// port is taken: why (the repair must then not run).
pub(crate) fn port_move_refusal(ctx: &Ctx) -> Option<crate::ops::preflight::Blocked> {
    let (cli, _) = ctx.cli_port.as_ref()?;
    let (_, entries, _) = installed_unit(ctx).ok()?;
    let unit = unit_file::service_port(&entries)?;
    if unit == *cli {
        return None;
    }
    port_move_blocked(ctx, *cli)
}

/// A service rewrite renders from the config, so while the config's port is taken every
/// rewrite would move the service onto it: such findings offer no repair (the promise must
/// equal what `--repair` does), and say why.
pub(crate) fn hold_blocked_port_moves(ctx: &Ctx, report: &mut super::Report) {
    let rewrites = |f: &Finding| {
        matches!(
            f.repair,
            Some(Repair::Reinstall { .. }) | Some(Repair::AdoptUnitToken { .. })
        )
    };
    if !report.findings.iter().any(rewrites) {
        return;
    }
    let Some(b) = port_move_refusal(ctx) else {
        return;
    };
    for f in report.findings.iter_mut().filter(|f| rewrites(f)) {
        f.repair = None;
        f.needs_force = false;
        f.remediation = Some(format!(
            "Held: rewriting the service now would move it onto a taken port ({}); see service-port.",
            b.summary
        ));
    }
}

/// Why moving this profile's service onto `port` would collide (see `ops::preflight`).
pub(crate) fn port_move_blocked(ctx: &Ctx, port: u16) -> Option<crate::ops::preflight::Blocked> {
    let own = match &ctx.service.status {
        Some(Ok(st)) => crate::ops::preflight::Own::from_status(st),
        _ => Default::default(),
    };
    crate::ops::preflight::move_blocked(&ctx.paths, port, &own, "move the service there")
}

const OVERRIDE_KEYS: &[&str] = &[
    "ExecStart",
    "Environment",
    "EnvironmentFile",
    "User",
    "WorkingDirectory",
];

fn service_dropins(ctx: &Ctx) -> Finding {
    if let Some(f) = no_service(ctx) {
        return f;
    }
    if ctx.service.kind != Some(ManagerKind::Systemd) {
        return Finding::skip(
            "",
            "systemd units only (launchd: `openclaw gateway status`)",
        );
    }
    let files = dropins(ctx);
    if files.is_empty() {
        return Finding::ok("", "no drop-ins");
    }
    let mut overrides = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for e in unit_file::parse(&text) {
            if e.section == "Service" && OVERRIDE_KEYS.contains(&e.key.as_str()) {
                overrides.push(format!("{}:{} overrides {}", f.display(), e.line, e.key));
            }
        }
    }
    let list = files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // The recommended way to customise: information (what is overridden where), never a
    // warning that no repair can clear.
    Finding::ok(
        "",
        format!(
            "{} drop-in(s), left alone: {list}{}",
            files.len(),
            if overrides.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} override(s) of what install manages; they win over repairs to the unit)",
                    overrides.len()
                )
            }
        ),
    )
    .details(overrides)
}

fn service_exposure(ctx: &Ctx) -> Finding {
    if let Some(f) = no_service(ctx) {
        return f;
    }
    match &ctx.service.exposure {
        None => Finding::skip("", "not measured (no installed systemd user unit)"),
        Some(Err(why)) => Finding::skip("", why.clone()),
        Some(Ok((score, word))) => Finding::ok(
            "",
            format!(
                "exposure {score} {word} (`systemd-analyze security --offline=yes {}`; lower is better)",
                ctx.service.user_file().display()
            ),
        ),
    }
}

/// The overall score from `systemd-analyze security` output: ("1.9", "OK").
pub fn parse_exposure(out: &str) -> Option<(String, String)> {
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, tail) = line.rsplit_once(": ")?;
    let mut w = tail.split_whitespace();
    let score = w.next()?.to_string();
    score.parse::<f64>().ok()?;
    Some((score, w.next().unwrap_or_default().to_string()))
}

/// Measures the installed unit's exposure offline (from the file, as systemd would load it).
#[cfg(target_os = "linux")]
fn exposure(unit: &Path) -> Option<std::result::Result<(String, String), String>> {
    if !unit.exists() {
        return None;
    }
    use crate::service::exec::CommandRunner;
    let argv = [
        "systemd-analyze".to_string(),
        "security".into(),
        "--offline=yes".into(),
        unit.display().to_string(),
    ];
    let out = match crate::service::exec::SystemRunner.run(&argv) {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(Err(
                "systemd-analyze is not installed: exposure not measured".into(),
            ));
        }
        Err(e) => return Some(Err(format!("running systemd-analyze: {e}"))),
    };
    Some(parse_exposure(&out.stdout).ok_or_else(|| {
        format!(
            "`systemd-analyze security --offline=yes {}` gave no score: {}",
            unit.display(),
            out.stderr.lines().next().unwrap_or("no output")
        )
    }))
}

fn status_of(ctx: &Ctx) -> Option<std::result::Result<&crate::service::ServiceStatus, &str>> {
    ctx.service
        .status
        .as_ref()
        .map(|r| r.as_ref().map_err(String::as_str))
}

fn service_state(ctx: &Ctx) -> Finding {
    if let Some(f) = no_service(ctx) {
        return f;
    }
    match status_of(ctx) {
        None => Finding::skip("", "service manager not queried"),
        Some(Err(e)) => Finding::warn("", format!("cannot query the service manager: {e}")).fix(
            "Status and repairs of the service need a reachable manager; see the message for why.",
        ),
        Some(Ok(s)) if !s.installed => Finding::skip("", format!("{} is not installed", s.name)),
        Some(Ok(s)) => {
            let logs = s.logs.clone().unwrap_or_default();
            if s.reload_pending {
                return Finding::warn(
                    "",
                    format!("{}: the unit changed on disk but the manager has not reloaded it", s.name),
                )
                .fix(format!("`openclaw{} doctor --repair` reloads and restarts it through the install transaction.", pf(ctx)))
                .repair(Repair::Reinstall { force: false });
            }
            if s.state == "failed" || s.last_exit == Some(78) && s.pid.is_none() {
                return Finding::fail(
                    "",
                    format!(
                        "{} {} (last exit {}{})",
                        s.name,
                        s.state,
                        s.last_exit
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "-".into()),
                        if s.last_exit == Some(78) {
                            ": configuration error, not restarted"
                        } else {
                            ""
                        }
                    ),
                )
                .fix(format!(
                    "Read why: `{logs}`; fix it, then `openclaw{} gateway start`.",
                    pf(ctx)
                ));
            }
            let mut notes = Vec::new();
            if !s.enabled {
                notes.push("not enabled (will not start at login/boot)".to_string());
            }
            if s.pid.is_none() {
                notes.push(format!("not running (state {})", s.state));
            }
            if notes.is_empty() {
                Finding::ok(
                    "",
                    format!(
                        "{} enabled and running (pid {})",
                        s.name,
                        s.pid.unwrap_or(0)
                    ),
                )
            } else {
                Finding::warn("", format!("{}: {}", s.name, notes.join(", ")))
                    .fix(format!("`openclaw{} gateway install` enables it; `openclaw{} gateway start` starts it.", pf(ctx), pf(ctx)))
            }
        }
    }
}

fn linger(ctx: &Ctx) -> Finding {
    if ctx.service.kind != Some(ManagerKind::Systemd) {
        return Finding::skip("", "only for systemd user services");
    }
    match status_of(ctx) {
        Some(Ok(s)) if s.installed => match s.linger.as_deref() {
            Some("yes") => Finding::ok("", "linger enabled: the service outlives your login"),
            Some("no") => Finding::warn("", "linger is off: the gateway stops when you log out")
                .fix(format!(
                    "`sudo loginctl enable-linger {}`",
                    ctx.env("USER").unwrap_or("$USER")
                )),
            other => Finding::warn(
                "",
                format!(
                    "linger: {} (logind not reachable)",
                    other.unwrap_or("unknown")
                ),
            )
            .fix(format!(
                "If the gateway must outlive your login: `sudo loginctl enable-linger {}`",
                ctx.env("USER").unwrap_or("$USER")
            )),
        },
        _ => Finding::skip("", "no installed user service"),
    }
}

fn competing_units(ctx: &Ctx) -> Finding {
    if ctx.service.kind != Some(ManagerKind::Systemd) {
        return Finding::skip("", "only for systemd");
    }
    let name = format!("{}.service", ctx.service.name);
    let mut found = Vec::new();
    for d in &ctx.service.system_dirs {
        let p = d.join(&name);
        if p.exists() {
            found.push(format!(
                "system unit {} has the same name: two managers would start two gateways on one port",
                p.display()
            ));
        }
    }
    for legacy in ["clawdbot-gateway.service", "clawdbot.service"] {
        let p = ctx.service.user_dir.join(legacy);
        if p.exists() {
            found.push(format!(
                "legacy unit {}: `systemctl --user disable --now {legacy}` and remove it",
                p.display()
            ));
        }
    }
    if ctx.deep {
        // Other gateway-like units (upstream's extra-service scan): ExecStart mentions a
        // gateway of openclaw/clawdbot, but the unit is neither ours nor a profile's.
        if let Ok(rd) = std::fs::read_dir(&ctx.service.user_dir) {
            let mut extra: Vec<String> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("service"))
                .filter(|p| {
                    let n = p.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
                    n != ctx.service.name
                        && !n.starts_with("openclaw-gateway")
                        && !n.starts_with("clawdbot")
                })
                .filter(|p| {
                    std::fs::read_to_string(p).is_ok_and(|t| {
                        let e = unit_file::parse(&t);
                        unit_file::last(&e, "Service", "ExecStart").is_some_and(|x| {
                            x.contains("gateway")
                                && (x.contains("openclaw") || x.contains("clawdbot"))
                        })
                    })
                })
                .map(|p| {
                    format!(
                        "gateway-like unit {} (`systemctl --user cat {}`)",
                        p.display(),
                        p.file_name().and_then(|n| n.to_str()).unwrap_or_default()
                    )
                })
                .collect();
            extra.sort();
            found.extend(extra);
        }
    }
    if found.is_empty() {
        Finding::ok("", "no competing or legacy units")
    } else {
        Finding::warn("", format!("{} competing unit(s)", found.len()))
            .details(found)
            .fix("Keep exactly one owner of the gateway: disable and remove the others.")
    }
}

// ---------------------------------------------------------------- runtime

fn gateway_reachable(ctx: &Ctx) -> Finding {
    let Some(r) = &ctx.gateway else {
        return Finding::skip("", "not probed");
    };
    if r.ok {
        return Finding::ok(
            "",
            format!(
                "reachable at {} ({}ms)",
                r.url,
                r.connect_latency_ms.unwrap_or(0)
            ),
        );
    }
    let why = r.error.clone().unwrap_or_default();
    if !r.transient {
        return Finding::fail("", format!("{} rejected this CLI: {why}", r.url)).fix(
            "The CLI's credential does not match the gateway's: check gateway.auth.token / OPENCLAW_GATEWAY_TOKEN.",
        );
    }
    match status_of(ctx) {
        Some(Ok(s)) if s.installed && s.pid.is_some() => Finding::fail(
            "",
            format!(
                "the service is running (pid {}) but {} does not answer: {why}",
                s.pid.unwrap_or(0),
                r.url
            ),
        )
        .fix(format!(
            "Read why: `{}`; check service-port above.",
            s.logs.clone().unwrap_or_default()
        )),
        _ => Finding::warn("", format!("no gateway answers at {}: {why}", r.url)).fix(format!(
            "Start it: `openclaw{p} gateway start` (service) or `openclaw{p} gateway run`.",
            p = pf(ctx)
        )),
    }
}

/// A gateway on the CLI's port that was given `--token`/`--password`: every local user reads its
/// argv (`/proc/PID/cmdline`, `ps`). Names the flag and the safer home, never the value.
fn gateway_argv(ctx: &Ctx) -> Finding {
    let Some((port, _)) = &ctx.cli_port else {
        return Finding::skip("", "the CLI port cannot be resolved (config invalid)");
    };
    let mut pids: Vec<(i32, String)> = crate::gateway::listener::listeners_on_port(*port)
        .into_iter()
        .map(|h| (h.pid, h.command))
        .collect();
    pids.dedup();
    if pids.is_empty() {
        return Finding::skip("", format!("nothing listens on port {port}"));
    }
    let details: Vec<String> = pids
        .iter()
        .filter_map(|(pid, cmd)| {
            Some((
                pid,
                cmd,
                std::fs::read(format!("/proc/{pid}/cmdline")).ok()?,
            ))
        })
        .flat_map(|(pid, cmd, raw)| {
            argv_secret_flags(&raw).into_iter().map(move |flag| {
                format!(
                    "pid {pid} ({cmd}): {}",
                    crate::gateway::argv_secret_warning(flag)
                )
            })
        })
        .collect();
    if details.is_empty() {
        return Finding::ok(
            "",
            format!("the gateway on port {port} has no credential on its command line"),
        );
    }
    Finding::warn(
        "",
        "the gateway was started with a credential on its command line (readable by every local user)",
    )
    .details(details)
    .fix("Restart it without --token/--password: set OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD in its environment, or gateway.auth.token/password in the config (0600).")
}

/// The credential flags (`--token`, `--password`, also as `--flag=value`) in a NUL-separated
/// `/proc/PID/cmdline`.
pub(crate) fn argv_secret_flags(cmdline: &[u8]) -> Vec<&'static str> {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    ["--token", "--password"]
        .into_iter()
        .filter(|f| {
            args.iter()
                .any(|a| *a == f.as_bytes() || a.starts_with(format!("{f}=").as_bytes()))
        })
        .collect()
}

fn version_match(ctx: &Ctx) -> Finding {
    match &ctx.gateway {
        Some(r) if r.ok => match &r.version {
            Some(v) if *v == ctx.version => Finding::ok("", format!("CLI and gateway are {v}")),
            Some(v) => Finding::warn(
                "",
                format!("CLI is {} but the gateway runs {v}", ctx.version),
            )
            .fix(format!(
                "Restart the gateway onto this version: `openclaw{} gateway restart`.",
                pf(ctx)
            )),
            None => Finding::warn("", "the gateway did not report its version"),
        },
        _ => Finding::skip("", "gateway not reachable"),
    }
}

fn activation_env(ctx: &Ctx) -> Finding {
    let inherited: Vec<&str> = [
        "NOTIFY_SOCKET",
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    ]
    .into_iter()
    .filter(|k| ctx.env(k).is_some())
    .collect();
    if inherited.is_empty() {
        return Finding::ok("", "no inherited NOTIFY_SOCKET/LISTEN_* in this shell");
    }
    Finding::warn(
        "",
        format!(
            "this shell carries {}: a gateway started from here would report readiness to (or adopt sockets from) another service",
            inherited.join(", ")
        ),
    )
    .fix(format!("Run foreground gateways from a clean shell: `env -u {} openclaw gateway run`.", inherited.join(" -u ")))
}

fn profile_collisions(ctx: &Ctx) -> Finding {
    let Some((port, _)) = &ctx.cli_port else {
        return Finding::skip("", "the CLI port cannot be resolved");
    };
    let Ok(others) = crate::config::other_profiles(&ctx.paths) else {
        return Finding::skip("", "home not readable");
    };
    let mut hits = Vec::new();
    for o in others.into_iter().filter(|o| o.port == *port) {
        hits.push(format!(
            "{} ({}) also uses port {port}",
            o.state_dir.display(),
            o.name
                .map(|p| format!("profile {p}"))
                .unwrap_or_else(|| "default profile".into())
        ));
    }
    if hits.is_empty() {
        Finding::ok("", format!("no other profile uses port {port}"))
    } else {
        Finding::warn(
            "",
            format!("{} profile(s) collide on port {port}", hits.len()),
        )
        .details(hits)
        .fix("Give each gateway its own gateway.port (upstream recommends >= 120 ports apart).")
    }
}

// ---------------------------------------------------------------- production context

const ENV_KEYS: &[&str] = &[
    "OPENCLAW_GATEWAY_TOKEN",
    "OPENCLAW_GATEWAY_PASSWORD",
    "OPENCLAW_GATEWAY_PORT",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "USER",
];

/// Builds the context from this process: config, env, the native service manager (when this
/// build has one) and a gateway probe capped at 2 s.
pub fn real_ctx(paths: &Paths, deep: bool, install: Option<super::InstallFn>) -> Ctx {
    let env: HashMap<String, String> = ENV_KEYS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let config = Config::load(&paths.config_path).map_err(|e| e.to_string());
    let cli_port = config
        .as_ref()
        .ok()
        .and_then(|c| crate::ops::conn::local_port(paths, None, &ProcessEnv, c).ok());
    let program = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_default();
    // The gateway probe and the service manager queries are independent: overlap them.
    let (p2, c2) = (paths.clone(), config.as_ref().ok().cloned());
    let probing = std::thread::spawn(move || probe(&p2, c2.as_ref()));
    let service = native_service_ctx(paths, cli_port.as_ref().map(|(p, _)| *p), install);
    let gateway = probing.join().ok().flatten();
    Ctx {
        paths: paths.clone(),
        env,
        config,
        cli_port,
        program,
        version: crate::VERSION.to_string(),
        service,
        gateway,
        deep,
    }
}

fn probe(paths: &Paths, cfg: Option<&Config>) -> Option<crate::ops::probe::Reach> {
    let conn = crate::ops::conn::ConnOptions {
        timeout: 2_000,
        ..Default::default()
    };
    let target = crate::ops::conn::resolve(paths, &conn, cfg, &ProcessEnv).ok()?;
    if !target.is_local() {
        return None;
    }
    let rt = crate::ops::rpc::runtime().ok()?;
    let (r, _) = rt.block_on(crate::ops::probe::reach(
        &target,
        &crate::ops::rpc::Identity::read(),
        |c| async move {
            c.close();
            None
        },
    ));
    Some(r)
}

/// systemd's user unit search path outside the user's own config dir: the administrator's
/// `/etc/systemd/user`, then the package vendor directories.
pub fn package_user_unit_dirs() -> Vec<PathBuf> {
    std::iter::once("/etc/systemd/user")
        .chain(crate::service::systemd::manager::VENDOR_USER_UNIT_DIRS)
        .map(PathBuf::from)
        .collect()
}

/// System unit directories.
pub use crate::service::systemd::manager::SYSTEM_UNIT_DIRS;

fn native_service_ctx(
    paths: &Paths,
    port: Option<u16>,
    install: Option<super::InstallFn>,
) -> ServiceCtx {
    let port = port.unwrap_or_else(|| paths.fallback_port());
    let program = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("openclaw"));
    let spec = crate::service::ServiceSpec::for_paths(paths, paths.unit_name(), port, program);
    let mut ctx = if cfg!(target_os = "linux") {
        linux_service_ctx(paths, &spec)
    } else if cfg!(target_os = "macos") {
        ServiceCtx {
            kind: Some(ManagerKind::Launchd),
            name: paths.launchd_label(),
            user_dir: paths.home.join("Library/LaunchAgents"),
            package_dirs: vec![],
            system_dirs: vec![PathBuf::from("/Library/LaunchDaemons")],
            desired: Err(
                "plist drift is checked by `openclaw gateway install` (conservative launchd audit)"
                    .into(),
            ),
            desired_socket: None,
            exposure: None,
            status: None,
            reinstall: None,
        }
    } else {
        return ServiceCtx::none(&paths.unit_name());
    };
    if let Ok(mgr) = crate::service::native(&crate::service::NativeOptions::default()) {
        let mut s = spec.clone();
        s.name = mgr.service_name(paths);
        ctx.status = Some(
            mgr.status(&s)
                .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string()),
        );
    }
    let p = paths.clone();
    let name = ctx.name.clone();
    ctx.reinstall = install.map(|install| -> super::Reinstaller {
        Box::new(move |_force| {
            // The install transaction itself: config made runnable, files rewritten with a
            // .bak, daemon-reload, enable, restart, readiness wait. It also refuses to shadow a
            // system or packaged unit.
            install(&p).map(|()| format!("rewrote {name} through `openclaw gateway install` (previous file kept as .bak) and the gateway answered"))
        })
    });
    ctx
}

#[cfg(target_os = "linux")]
fn linux_service_ctx(paths: &Paths, spec: &crate::service::ServiceSpec) -> ServiceCtx {
    use crate::service::systemd::manager::SystemdManager;
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| paths.home.join(".config"));
    let rendered: std::result::Result<Vec<(PathBuf, String)>, String> =
        match SystemdManager::new(&crate::service::NativeOptions::default()) {
            Err(e) => Err(e.to_string()),
            Ok(m) => {
                // The manager's version decides Type=notify-reload; without a reachable manager,
                // the installed systemd's own version is the same number.
                let version = m.connect().ok().or_else(|| m.installed_version());
                match version {
                    None => {
                        Err("cannot determine the systemd version (is systemctl installed?)".into())
                    }
                    Some(v) => m.desired_files(spec, v).map_err(|e| e.to_string()),
                }
            }
        };
    let pick = |ext: &str| {
        rendered.clone().and_then(|files| {
            files
                .into_iter()
                .find(|(p, _)| p.extension().and_then(|e| e.to_str()) == Some(ext))
                .map(|(_, text)| text)
                .ok_or_else(|| format!("the renderer produced no {ext} unit"))
        })
    };
    let desired = pick("service");
    let desired_socket = Some(pick("socket"));
    ServiceCtx {
        kind: Some(ManagerKind::Systemd),
        name: paths.unit_name(),
        user_dir: config_home.join("systemd/user"),
        package_dirs: package_user_unit_dirs(),
        system_dirs: SYSTEM_UNIT_DIRS.iter().map(PathBuf::from).collect(),
        desired,
        desired_socket,
        exposure: exposure(
            &config_home
                .join("systemd/user")
                .join(format!("{}.service", paths.unit_name())),
        ),
        status: None,
        reinstall: None,
    }
}

#[cfg(not(target_os = "linux"))]
fn linux_service_ctx(paths: &Paths, _spec: &crate::service::ServiceSpec) -> ServiceCtx {
    ServiceCtx::none(&paths.unit_name())
}

/// Level of a finding by id (tests).
pub fn level_of(r: &super::Report, id: &str) -> Option<Level> {
    r.findings.iter().find(|f| f.id == id).map(|f| f.level)
}
