//! `openclaw gateway install|start|stop|restart|uninstall|status`: the manager-agnostic
//! verbs over [`crate::service::native`]. It owns what every manager shares: the install
//! identity gate, making sure the config is runnable (gateway.mode=local, a token, 0600), the
//! readiness wait (manager state + an RPC probe, with a progress line and a deadline that says
//! what to do next), and the status report (text and `--json`, never a secret).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::commands::client::GatewayStatusOptions;
use crate::config::Config;
use crate::config::paths::{Paths, ProcessEnv};
use crate::error::{Error, Exit, Result};
use crate::service::{Action, NativeOptions, Report, ServiceManager, ServiceSpec, ServiceStatus};

/// `gateway install`.
#[derive(Debug, Clone, Default)]
pub(crate) struct InstallOptions {
    /// Port the service listens on (also written into config when it has none).
    pub port: Option<u16>,
    /// Rewrite and restart even when the installed unit is current.
    pub force: bool,
    /// Install a system-scope unit (root; runs as --user).
    pub system: bool,
    /// User account for --system.
    pub user: Option<String>,
    /// Print the plan and the files, change nothing.
    pub dry_run: bool,
    /// Seconds to wait for the new gateway to answer an RPC probe.
    pub timeout: u64,
}

/// start/stop/restart/uninstall.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceOptions {
    /// Act on the system-scope unit.
    pub system: bool,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Seconds to wait for readiness.
    pub timeout: u64,
}

fn gate(paths: &Paths, verb: &str) -> Result<()> {
    if !paths.default_identity {
        return Err(Error::Msg(format!(
            "service management skipped ({verb}): non-default state dir or config path \
             (OPENCLAW_HOME, OPENCLAW_STATE_DIR or OPENCLAW_CONFIG_PATH is set to {}). A service must own \
             the canonical state of its profile: unset those variables, or use `--profile NAME` for a \
             second gateway.",
            paths.state_dir.display()
        )));
    }
    if std::env::var("OPENCLAW_SUPERVISOR_MODE").as_deref() == Ok("external") {
        return Err(Error::Msg(format!(
            "service management skipped ({verb}): OPENCLAW_SUPERVISOR_MODE=external says another \
             supervisor owns the gateway's lifecycle; use that supervisor, or unset the variable"
        )));
    }
    Ok(())
}

fn program() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::Msg(format!(
            "cannot locate the openclaw binary to run as a service: {e}"
        ))
    })?;
    let exe = exe.canonicalize().unwrap_or(exe);
    if exe.to_string_lossy().ends_with(" (deleted)") {
        return Err(Error::Msg(format!(
            "the running binary {} was deleted (upgraded?): run the install from the new binary",
            exe.display()
        )));
    }
    Ok(exe)
}

fn profile_flag(paths: &Paths) -> String {
    match (&paths.profile, paths.dev) {
        (_, true) => " --dev".into(),
        (Some(p), false) => format!(" --profile {p}"),
        (None, false) => String::new(),
    }
}

/// What install changed (or would change) in the config.
#[derive(Debug, Default)]
pub(crate) struct ConfigPlan {
    /// Human notes, one per change.
    pub notes: Vec<String>,
    /// The document to write, when something changes.
    pub doc: Option<Value>,
    /// The port the service will use.
    pub port: u16,
}

/// Decides what install must change so the gateway can run from `cfg`: `gateway.mode=local`,
/// a token when auth is token-based and none exists, and `gateway.port` when `--port` was given
/// (one source of truth for clients). Pure apart from token generation.
pub(crate) fn plan_config(
    paths: &Paths,
    cfg: &Config,
    port_flag: Option<u16>,
) -> Result<ConfigPlan> {
    let mut doc = cfg.doc.clone();
    let mut notes = Vec::new();
    match cfg.gateway.mode.as_deref() {
        Some("local") => {}
        Some(other) => {
            return Err(Error::Config(format!(
                "{}: gateway.mode is {other:?}; a managed gateway needs \"local\". Change it (or remove the key) and re-run install.",
                cfg.path.display()
            )));
        }
        None => {
            set(&mut doc, &["gateway", "mode"], json!("local"), &cfg.path)?;
            notes.push(
                "No gateway.mode found: set gateway.mode=local for the managed gateway.".into(),
            );
        }
    }
    let mode = cfg.gateway.auth.mode.as_deref().unwrap_or("token");
    if mode == "token" && cfg.gateway.auth.token.is_none() {
        set(
            &mut doc,
            &["gateway", "auth", "mode"],
            json!("token"),
            &cfg.path,
        )?;
        set(
            &mut doc,
            &["gateway", "auth", "token"],
            json!(generate_token()?),
            &cfg.path,
        )?;
        notes.push(format!(
            "No gateway token found: generated one and saved it to {} (mode 0600). Read it with `openclaw{} gateway auth-token`.",
            cfg.path.display(),
            profile_flag(paths)
        ));
    }
    let port = paths.resolve_port(port_flag, &ProcessEnv, cfg.gateway.port)?;
    if let Some(p) = port_flag
        && cfg.gateway.port != Some(p)
    {
        set(&mut doc, &["gateway", "port"], json!(p), &cfg.path)?;
        notes.push(format!(
            "Recorded gateway.port={p} in {} so clients find the service.",
            cfg.path.display()
        ));
    }
    Ok(ConfigPlan {
        doc: (doc != cfg.doc || !cfg.exists).then_some(doc),
        notes,
        port,
    })
}

fn set(doc: &mut Value, keys: &[&str], v: Value, path: &std::path::Path) -> Result<()> {
    let mut cur = doc;
    for (i, k) in keys.iter().enumerate() {
        let obj = cur.as_object_mut().ok_or_else(|| {
            Error::Config(format!(
                "{}: {} is not an object; fix the file and re-run install",
                path.display(),
                keys[..i].join(".")
            ))
        })?;
        if i == keys.len() - 1 {
            obj.insert((*k).to_string(), v);
            return Ok(());
        }
        cur = obj
            .entry((*k).to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

fn generate_token() -> Result<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| Error::Msg(format!("generating a token: {e}")))?;
    Ok(hex::encode(b))
}

fn ensure_private(paths: &Paths) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = &paths.state_dir;
    if !d.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)
            .map_err(|e| Error::io("creating state directory", d, e))?;
    }
    // A config holding a token must not be readable by others.
    if let Ok(m) = std::fs::metadata(&paths.config_path)
        && m.permissions().mode() & 0o077 != 0
    {
        std::fs::set_permissions(&paths.config_path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("tightening permissions of", &paths.config_path, e))?;
        println!("Tightened {} to mode 0600.", paths.config_path.display());
    }
    Ok(())
}

fn native_opts(system: bool, user: Option<String>) -> NativeOptions {
    NativeOptions { system, user }
}

fn spec_for(mgr: &dyn ServiceManager, paths: &Paths, port: u16) -> Result<ServiceSpec> {
    Ok(ServiceSpec::for_paths(
        paths,
        mgr.service_name(paths),
        port,
        program()?,
    ))
}

/// The port of the installed service: config/env/profile resolution (install records
/// `--port` in config, so this agrees with the unit). Loading the config here also validates
/// it *before* start/restart tears anything down: a broken config refuses (exit 78) and the
/// running gateway keeps serving.
fn installed_port(paths: &Paths) -> Result<u16> {
    let cfg = Config::load(&paths.config_path)?;
    paths.resolve_port(None, &ProcessEnv, cfg.gateway.port)
}

/// The result of one readiness probe.
pub(crate) type Probe = std::result::Result<(), String>;

/// Credentials for the RPC probe (never printed).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeAuth {
    token: Option<String>,
    password: Option<String>,
}

impl ProbeAuth {
    /// `OPENCLAW_GATEWAY_TOKEN`/`_PASSWORD`, else the config's `gateway.auth.*` (SecretRefs
    /// resolved), as the gateway itself resolves them.
    pub(crate) fn from_config(paths: &Paths) -> ProbeAuth {
        let cfg = Config::load(&paths.config_path).ok();
        let pick = |env: &str, key: &str| {
            std::env::var(env)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    cfg.as_ref().and_then(|c| {
                        crate::config::resolve_secret_value(c.get(key), key)
                            .ok()
                            .flatten()
                    })
                })
        };
        ProbeAuth {
            token: pick("OPENCLAW_GATEWAY_TOKEN", "gateway.auth.token"),
            password: pick("OPENCLAW_GATEWAY_PASSWORD", "gateway.auth.password"),
        }
    }
}

/// Probes the gateway on loopback: `GET /healthz` must answer `{"ok":true,…}`, then a real
/// protocol-v4 RPC (connect handshake + `health`) must succeed ([`crate::ops::probe::local_ready`]).
pub(crate) fn probe(port: u16, timeout: Duration, auth: &ProbeAuth) -> Probe {
    crate::ops::probe::local_ready(
        port,
        timeout,
        auth.token.as_deref(),
        auth.password.as_deref(),
    )
}

fn describe_failure(st: &ServiceStatus, spec: &ServiceSpec) -> Error {
    let logs = st.logs.clone().unwrap_or_default();
    if st.last_exit == Some(78) {
        return Error::Config(format!(
            "{} refused to start: exit 78 (configuration error or startup refusal), so the service manager \
             will not restart it. Read why with `{logs}`, fix {}, then run `openclaw gateway start`.",
            st.name,
            spec.config_path.display()
        ));
    }
    if let Some(c @ 200..=243) = st.last_exit {
        return Error::Msg(format!(
            "{} could not be started by systemd: exit {c} ({}), before the gateway ran. Read why with `{logs}`; \
             if a hardening setting is unsupported here, override it in a drop-in (`systemctl --user edit {}`).",
            st.name,
            systemd_exit_name(c),
            st.name
        ));
    }
    Error::Msg(format!(
        "{} failed (state {}/{}, result {}, last exit {}). Read why with `{logs}`, then run `openclaw gateway start`.",
        st.name,
        st.state,
        st.sub_state.as_deref().unwrap_or("-"),
        st.result.as_deref().unwrap_or("-"),
        st.last_exit
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
    ))
}

/// Names of systemd's own exit codes (systemd.exec(5) "Process Exit Codes").
pub(crate) fn systemd_exit_name(c: i32) -> &'static str {
    match c {
        200 => "CHDIR: the working directory is missing",
        203 => "EXEC: the binary could not be executed",
        209 => "STDOUT",
        217 => "USER",
        218 => "CAPABILITIES",
        226 => "NAMESPACE: the sandbox (ProtectSystem=, PrivateTmp=, …) could not be set up",
        228 => "SECCOMP",
        _ => "a service setup step failed",
    }
}

/// Waits until the manager reports the service active with a main pid (different from
/// `old_pid` when given) and the gateway answers the probe. Polls with a deadline: the
/// manager offers no event a CLI could wait on without D-Bus.
pub(crate) fn wait_ready(
    mgr: &dyn ServiceManager,
    spec: &ServiceSpec,
    timeout: Duration,
    old_pid: Option<u32>,
    auth: &ProbeAuth,
) -> Result<ServiceStatus> {
    let deadline = Instant::now() + timeout;
    println!(
        "Waiting for {} to answer on 127.0.0.1:{} (up to {}s)…",
        spec.name,
        spec.port,
        timeout.as_secs()
    );
    let mut last;
    loop {
        let st = mgr.status(spec)?;
        if st.state == "failed"
            || (st.sub_state.as_deref() == Some("auto-restart") && st.last_exit == Some(78))
        {
            return Err(describe_failure(&st, spec));
        }
        let fresh = st.pid.is_some() && (old_pid.is_none() || st.pid != old_pid);
        if st.state == "active" && fresh {
            match probe(spec.port, Duration::from_secs(2), auth) {
                Ok(()) => return Ok(st),
                Err(e) => last = e,
            }
        } else {
            last = format!(
                "service is {}/{}",
                st.state,
                st.sub_state.as_deref().unwrap_or("-")
            );
        }
        if Instant::now() >= deadline {
            return Err(Error::Msg(format!(
                "{} did not answer within {}s (last check: {last}). It may still be starting: check \
                 `openclaw gateway status` and `{}`.",
                spec.name,
                timeout.as_secs(),
                st.logs.unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `gateway install`.
pub(crate) fn install(paths: &Paths, args: &InstallOptions) -> Result<Exit> {
    gate(paths, "install")?;
    let owner = if args.system {
        Some(system_account(args)?)
    } else {
        None
    };
    // A system service runs as --user: its state lives in *that* user's home, not root's.
    let sys_paths;
    let paths = match &owner {
        Some(acct) => {
            let env: std::collections::HashMap<String, String> =
                [("HOME".to_string(), acct.dir.display().to_string())].into();
            let p = if paths.dev {
                Paths::resolve(None, true, &env)?
            } else {
                Paths::resolve(paths.profile.as_deref(), false, &env)?
            };
            sys_paths = p;
            &sys_paths
        }
        None => paths,
    };
    let mgr = crate::service::native(&native_opts(
        args.system,
        owner.as_ref().map(|a| a.name.clone()),
    ))?;
    let cfg = Config::load(&paths.config_path)?;
    let plan = plan_config(paths, &cfg, args.port)?;
    let spec = spec_for(mgr.as_ref(), paths, plan.port)?;
    if args.dry_run {
        if plan.doc.is_some() {
            println!("# {} would be updated:", paths.config_path.display());
            for n in &plan.notes {
                println!("#   {n}");
            }
        }
        print!(
            "{}",
            mgr.dry_run(&spec, Action::Install { force: args.force })?
        );
        // The same preflight install runs: say now that it would refuse.
        let own = mgr
            .status(&spec)
            .map(|s| crate::ops::preflight::Own::from_status(&s))
            .unwrap_or_default();
        if let Err(c) = crate::ops::preflight::check(paths, spec.port, &own) {
            println!("# install would refuse:");
            for l in c
                .message("install the service there", &profile_flag(paths))
                .lines()
            {
                println!("#   {}", l.trim_start());
            }
        }
        return Ok(Exit::Ok);
    }
    // Reach the manager before writing anything (no user manager = clear error, no files).
    let before = mgr.status(&spec)?;
    // Preflight: who holds the target port? Our own service or socket unit is fine (install
    // replaces it); anyone else means the gateway could never answer there: refuse now,
    // naming them, before anything is written or bound.
    if let Err(c) = crate::ops::preflight::check(
        paths,
        spec.port,
        &crate::ops::preflight::Own::from_status(&before),
    ) {
        return Err(Error::Msg(
            c.message("install the service there", &profile_flag(paths)),
        ));
    }
    ensure_private(paths)?;
    if let Some(doc) = &plan.doc {
        // 0600 in a 0700 directory, the previous content kept as `.bak` (0600).
        crate::config::write::write_config(&paths.config_path, doc)?;
    }
    if let Some(acct) = &owner {
        // Written by root for the service account: hand them over.
        for p in [&paths.state_dir, &paths.config_path] {
            if p.exists() {
                nix::unistd::chown(p.as_path(), Some(acct.uid), Some(acct.gid))
                    .map_err(|e| Error::io("changing the owner of", p.as_path(), e.into()))?;
            }
        }
    }
    for n in &plan.notes {
        println!("{n}");
    }
    // A new `--port` is kept in the config only if the gateway answers there: otherwise the
    // previous value goes back, so clients keep finding whatever served before.
    let previous_port = args
        .port
        .filter(|p| cfg.gateway.port != Some(*p))
        .map(|_| cfg.doc.get("gateway").and_then(|g| g.get("port")).cloned());
    let auth = ProbeAuth::from_config(paths);
    let outcome = reported(|r| mgr.install(&spec, args.force, r)).and_then(|()| {
        wait_ready(
            mgr.as_ref(),
            &spec,
            Duration::from_secs(args.timeout),
            None,
            &auth,
        )
    });
    let st = match outcome {
        Ok(st) => st,
        Err(e) => {
            if let Some(old) = previous_port {
                match restore_port(paths, old.as_ref(), owner.as_ref()) {
                    Ok(()) => println!(
                        "Rolled back gateway.port in {} (the gateway did not answer on {}).",
                        paths.config_path.display(),
                        spec.port
                    ),
                    Err(re) => eprintln!(
                        "warning: could not roll back gateway.port in {}: {re}; set it back by hand.",
                        paths.config_path.display()
                    ),
                }
            }
            return Err(e);
        }
    };
    println!(
        "Gateway service installed and answering: ws://127.0.0.1:{} (pid {}).",
        spec.port,
        st.pid.map(|p| p.to_string()).unwrap_or_default()
    );
    linger_advice(&st);
    Ok(Exit::Ok)
}

/// Puts `gateway.port` back to `old` (absent: removed) after an install that did not answer.
/// No second backup: the `.bak` install kept is still the file as it was before install.
fn restore_port(
    paths: &Paths,
    old: Option<&Value>,
    owner: Option<&nix::unistd::User>,
) -> Result<()> {
    let cfg = Config::load(&paths.config_path)?;
    let mut doc = cfg.doc.clone();
    match old {
        Some(v) => set(&mut doc, &["gateway", "port"], v.clone(), &cfg.path)?,
        None => {
            if let Some(gw) = doc.get_mut("gateway").and_then(Value::as_object_mut) {
                gw.remove("port");
            }
        }
    }
    if doc == cfg.doc {
        return Ok(());
    }
    let mut text = serde_json::to_string_pretty(&doc).map_err(|e| {
        Error::Msg(format!(
            "serializing config for {}: {e}",
            cfg.path.display()
        ))
    })?;
    text.push('\n');
    crate::config::write::write_atomic(&paths.config_path, text.as_bytes(), 0o600)?;
    if let Some(acct) = owner {
        nix::unistd::chown(paths.config_path.as_path(), Some(acct.uid), Some(acct.gid)).map_err(
            |e| {
                Error::io(
                    "changing the owner of",
                    paths.config_path.as_path(),
                    e.into(),
                )
            },
        )?;
    }
    Ok(())
}

/// The account a `--system` service runs as (`--user`, else `SUDO_USER`).
fn system_account(args: &InstallOptions) -> Result<nix::unistd::User> {
    let name = args
        .user
        .clone()
        .or_else(|| std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| {
            Error::Msg("--system needs the account the gateway runs as: add --user NAME".into())
        })?;
    if !args.dry_run && !nix::unistd::geteuid().is_root() {
        return Err(Error::Msg(format!(
            "--system writes /etc/systemd/system and needs root: run `sudo openclaw gateway install --system --user {name}`"
        )));
    }
    nix::unistd::User::from_name(&name)
        .map_err(|e| Error::Msg(format!("looking up user {name:?}: {e}")))?
        .ok_or_else(|| Error::Msg(format!("--user {name:?}: no such account on this system")))
}

fn linger_advice(st: &ServiceStatus) {
    match st.linger.as_deref() {
        Some("no") => println!(
            "Warning: lingering is disabled: the gateway stops when you log out. Fix: `{}`",
            linger_fix()
        ),
        Some("unknown") => println!(
            "Linger: unknown (logind not reachable); if the gateway must outlive your login: `{}`",
            linger_fix()
        ),
        _ => {}
    }
}

fn linger_fix() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "$USER".into());
    format!("sudo loginctl enable-linger {user}")
}

fn service_cmd(paths: &Paths, args: &ServiceOptions, action: Action) -> Result<Exit> {
    gate(paths, verb(action))?;
    let mgr = crate::service::native(&native_opts(args.system, None))?;
    let spec = spec_for(mgr.as_ref(), paths, installed_port(paths)?)?;
    if args.dry_run {
        print!("{}", mgr.dry_run(&spec, action)?);
        return Ok(Exit::Ok);
    }
    let timeout = Duration::from_secs(args.timeout);
    let auth = ProbeAuth::from_config(paths);
    match action {
        Action::Start => {
            reported(|r| mgr.start(&spec, r))?;
            let st = wait_ready(mgr.as_ref(), &spec, timeout, None, &auth)?;
            println!("Started {} (pid {}).", st.name, st.pid.unwrap_or_default());
        }
        Action::Restart => {
            let old = mgr.status(&spec)?.pid;
            if let Some(pid) = old {
                // The coming SIGTERM is a restart: the gateway hands its connections to the
                // next process (it also asks the manager; this covers a manager it cannot ask).
                let _ = crate::gateway::handover::write_restart_intent(paths, pid);
            }
            reported(|r| mgr.restart(&spec, r))?;
            let st = wait_ready(mgr.as_ref(), &spec, timeout, old, &auth)?;
            println!(
                "Restarted {} (pid {}).",
                st.name,
                st.pid.unwrap_or_default()
            );
        }
        Action::Stop => {
            reported(|r| mgr.stop(&spec, r))?;
            println!(
                "Stopped {} (still enabled: it starts again at login; `openclaw{} gateway start` starts it now).",
                spec.name,
                profile_flag(paths)
            );
        }
        Action::Uninstall => {
            reported(|r| mgr.uninstall(&spec, r))?;
            println!(
                "Uninstalled {}. Config and state in {} are kept.",
                spec.name,
                paths.state_dir.display()
            );
        }
        Action::Install { .. } => unreachable!("install has its own command"),
    }
    Ok(Exit::Ok)
}

/// Runs one manager action and prints what it reports (also what it did before failing).
fn reported(f: impl FnOnce(&mut Report) -> Result<()>) -> Result<()> {
    let mut report = Report::default();
    let result = f(&mut report);
    for l in &report.lines {
        println!("{l}");
    }
    result
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Install { .. } => "install",
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
        Action::Uninstall => "uninstall",
    }
}

/// `gateway start`.
pub(crate) fn start(paths: &Paths, args: &ServiceOptions) -> Result<Exit> {
    service_cmd(paths, args, Action::Start)
}
/// `gateway stop`.
pub(crate) fn stop(paths: &Paths, args: &ServiceOptions) -> Result<Exit> {
    service_cmd(paths, args, Action::Stop)
}
/// `gateway restart` (waits for a new, answering instance). A config the new instance would
/// refuse (exit 78) refuses the restart first, before the service manager is asked anything:
/// the running gateway keeps its clients and its last good config.
pub(crate) fn restart(paths: &Paths, args: &ServiceOptions) -> Result<Exit> {
    if let Err(e) = Config::load(&paths.config_path) {
        return Err(Error::Config(format!(
            "gateway restart refused, nothing was stopped: the new instance would exit 78 on {}\n\
             The running gateway keeps serving with its last good config; fix {}, then run `openclaw{} gateway restart`.",
            e.to_string().lines().next().unwrap_or_default(),
            paths.config_path.display(),
            profile_flag(paths)
        )));
    }
    service_cmd(paths, args, Action::Restart)
}
/// `gateway uninstall`.
pub(crate) fn uninstall(paths: &Paths, args: &ServiceOptions) -> Result<Exit> {
    service_cmd(paths, args, Action::Uninstall)
}

/// `gateway status` (service part + RPC probe).
pub(crate) fn status(paths: &Paths, args: &GatewayStatusOptions) -> Result<Exit> {
    if args.conn.url.is_some() {
        // An explicit (maybe remote) gateway: the client-side probe only, with upstream's
        // explicit-credentials rule (ops::conn).
        return crate::commands::client::remote_status(paths, args);
    }
    let mgr = crate::service::native(&native_opts(false, None))?;
    // Status must explain a broken config, not fail on it.
    let (port, config_error) = match args.conn.port {
        Some(p) => (p, None),
        None => match installed_port(paths) {
            Ok(p) => (p, None),
            Err(e) => (
                paths
                    .resolve_port(None, &ProcessEnv, None)
                    .unwrap_or(paths.fallback_port()),
                Some(e.to_string()),
            ),
        },
    };
    let spec = spec_for(mgr.as_ref(), paths, port)?;
    let st = mgr.status(&spec);
    // With the config unreadable, the port the service manager listens on is the truth.
    let port = match (&config_error, &st) {
        (Some(_), Ok(s)) => s
            .listen
            .iter()
            .find_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
            .unwrap_or(port),
        _ => port,
    };
    let mut auth = ProbeAuth::from_config(paths);
    if args.conn.token.is_some() {
        auth.token = args.conn.token.clone();
    }
    if args.conn.password.is_some() {
        auth.password = args.conn.password.clone();
    }
    let rpc = probe(
        port,
        Duration::from_millis(args.conn.timeout.min(10_000)),
        &auth,
    );
    // The probe's connection may have socket-started a stopped service: report the runtime
    // as it is now, not as it was before the probe.
    let st = match st {
        Ok(s) if s.installed && s.pid.is_none() => mgr.status(&spec),
        other => other,
    };
    if args.json {
        let v = json!({
            "service": match &st { Ok(s) => serde_json::to_value(s).unwrap_or(Value::Null), Err(_) => Value::Null },
            "serviceError": st.as_ref().err().map(|e| e.to_string()),
            "runtime": st.as_ref().ok().map(ServiceStatus::runtime_word),
            "rpc": { "ok": rpc.is_ok(), "url": format!("ws://127.0.0.1:{port}"), "error": rpc.as_ref().err() },
            "port": port,
            "configPath": paths.config_path,
            "configError": config_error,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        // What listens comes from the kernel (the probe port and the ports the socket unit
        // names), not from the unit file, which may have changed since it was applied.
        let mut ports = vec![port];
        if let Ok(s) = &st {
            ports.extend(
                s.listen
                    .iter()
                    .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok())),
            );
        }
        ports.sort_unstable();
        ports.dedup();
        let kernel: Option<Vec<SocketAddr>> = ports
            .iter()
            .map(|p| crate::gateway::listener::kernel_listeners(*p))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        print!("{}", render_status(&st, &rpc, port, kernel.as_deref()));
        if let Some(e) = &config_error {
            println!("Config: invalid: {}", e.lines().next().unwrap_or_default());
            if st.as_ref().is_ok_and(|s| s.runtime_word() == "running") {
                println!(
                    "  The running gateway keeps its last good config; fix the file and it reloads (a restart would fail with exit 78)."
                );
            }
        }
    }
    if args.require_rpc && rpc.is_err() {
        return Ok(Exit::Failure);
    }
    Ok(Exit::Ok)
}

/// `Listening:` from what the kernel reports, saying who holds the sockets and when the
/// socket unit names other addresses than those actually bound.
fn listening_line(s: &ServiceStatus, kernel: &[SocketAddr], port: u16) -> String {
    let bound: Vec<String> = kernel.iter().map(|a| a.to_string()).collect();
    let mut configured = s.listen.clone();
    configured.sort();
    let mut actual = bound.clone();
    actual.sort();
    let note = if s.socket_activated && configured != actual {
        format!(
            "; the socket unit names {}, applied when the socket restarts (`openclaw gateway install`)",
            s.listen.join(", ")
        )
    } else if !configured.is_empty() && !s.socket_activated {
        "; the socket unit is stopped".to_string()
    } else {
        String::new()
    };
    if bound.is_empty() {
        return format!("Listening: nothing on port {port} (kernel){note}\n");
    }
    let who = if s.socket_activated {
        "socket-activated: systemd holds the sockets"
    } else {
        "bound by the gateway itself"
    };
    format!("Listening: {} ({who}{note})\n", bound.join(", "))
}

/// The human status report. `kernel`: the addresses the kernel has listening on the ports
/// involved (`None`: unknown on this platform).
pub(crate) fn render_status(
    st: &Result<ServiceStatus>,
    rpc: &Probe,
    port: u16,
    kernel: Option<&[SocketAddr]>,
) -> String {
    let mut o = String::new();
    match st {
        Err(e) => o.push_str(&format!("Service: unavailable ({e})\n")),
        Ok(s) => {
            o.push_str(&format!(
                "Service: {} {} ({})\n",
                s.manager,
                s.scope.as_deref().unwrap_or(""),
                if !s.installed {
                    "not installed"
                } else if s.enabled {
                    "enabled"
                } else {
                    "disabled"
                }
            ));
            if let Some(f) = &s.file {
                let edit = match s.scope.as_deref() {
                    Some("system") => "systemctl edit",
                    _ => "systemctl --user edit",
                };
                match (s.source.as_deref(), &s.source_dir) {
                    (Some("package"), Some(dir)) => o.push_str(&format!(
                        "Service file: {} (package-managed, from {}: package upgrades replace it; \
                         customise with `{edit} {}`)\n",
                        f.display(),
                        dir.display(),
                        s.name
                    )),
                    (Some("local"), _) => o.push_str(&format!(
                        "Service file: {} (not written by openclaw: install leaves it alone unless --force)\n",
                        f.display()
                    )),
                    _ => o.push_str(&format!("Service file: {}\n", f.display())),
                }
            }
            for d in &s.drop_ins {
                o.push_str(&format!("Drop-in: {}\n", d.display()));
            }
            let mut rt = format!("Runtime: {}", s.runtime_word());
            let mut parts = Vec::new();
            if let Some(p) = s.pid {
                parts.push(format!("pid {p}"));
            }
            parts.push(format!("state {}", s.state));
            if let Some(sub) = &s.sub_state {
                parts.push(format!("sub {sub}"));
            }
            if let Some(c) = s.last_exit {
                parts.push(format!(
                    "last exit {c}{}",
                    if c == 78 {
                        " = config error, not restarted"
                    } else {
                        ""
                    }
                ));
            }
            if let Some(r) = &s.result {
                parts.push(format!("result {r}"));
            }
            if let Some(n) = s.restarts {
                parts.push(format!("restarts {n}"));
            }
            rt.push_str(&format!(" ({})\n", parts.join(", ")));
            o.push_str(&rt);
            // systemd keeps the last STATUS= after the process is gone: only a live
            // instance's text is the gateway speaking.
            if let Some(t) = s.status_text.as_ref().filter(|_| s.pid.is_some()) {
                o.push_str(&format!("Gateway says: {t}\n"));
            }
            if s.start_limit_hit {
                o.push_str(&format!(
                    "Start limit: hit (it failed too often in a row; StartLimitBurst= within StartLimitIntervalSec=): \
                     systemd will not start it again until `systemctl --user reset-failed {}` \
                     (`openclaw gateway start` does that); read why it crashed first: `{}`\n",
                    s.name,
                    s.logs.clone().unwrap_or_default()
                ));
            }
        }
    }
    match rpc {
        Ok(()) => o.push_str(&format!("RPC probe: ok (ws://127.0.0.1:{port})\n")),
        Err(e) => o.push_str(&format!("RPC probe: failed: {e}\n")),
    }
    if let Ok(s) = st {
        if let Some(k) = kernel {
            o.push_str(&listening_line(s, k, port));
        } else if s.listen.is_empty() {
            o.push_str(&format!(
                "Listening: 127.0.0.1:{port} (bound by the gateway itself)\n"
            ));
        } else {
            o.push_str(&format!(
                "Listening: {} ({})\n",
                s.listen.join(", "),
                if s.socket_activated {
                    "socket-activated: systemd holds the sockets"
                } else {
                    "socket unit inactive"
                }
            ));
        }
        if let Some(l) = &s.logs {
            o.push_str(&format!("Logs: {l}\n"));
        }
        if let Some(l) = &s.linger
            && l != "n/a"
        {
            let fix = if l == "yes" {
                String::new()
            } else {
                format!(" (to outlive logout: `{}`)", linger_fix())
            };
            o.push_str(&format!("Linger: {l}{fix}\n"));
        }
        if s.reload_pending {
            o.push_str("Systemd reload: pending (the unit file changed on disk): run `openclaw gateway install` or `systemctl --user daemon-reload`\n");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn paths() -> Paths {
        let e: HashMap<String, String> = [("HOME".to_string(), "/h".to_string())].into();
        Paths::resolve(None, false, &e).unwrap()
    }

    #[test]
    fn a_port_install_could_not_serve_is_rolled_back_and_the_rest_kept() {
        let home = tempfile::tempdir().unwrap();
        let e: HashMap<String, String> =
            [("HOME".to_string(), home.path().display().to_string())].into();
        let p = Paths::resolve(None, false, &e).unwrap();
        std::fs::create_dir_all(&p.state_dir).unwrap();
        let read = || -> Value {
            serde_json::from_str(&std::fs::read_to_string(&p.config_path).unwrap()).unwrap()
        };
        std::fs::write(
            &p.config_path,
            r#"{"gateway": {"mode": "local", "port": 4000, "auth": {"token": "t"}}}"#,
        )
        .unwrap();
        restore_port(&p, Some(&json!(3000)), None).unwrap();
        assert_eq!(read()["gateway"]["port"], 3000, "the previous port is back");
        assert_eq!(read()["gateway"]["auth"]["token"], "t", "the rest is kept");
        restore_port(&p, None, None).unwrap();
        assert!(
            read()["gateway"].get("port").is_none(),
            "no previous port: removed"
        );
        assert_eq!(read()["gateway"]["mode"], "local");
        restore_port(&p, None, None).unwrap();
        assert!(
            !p.config_path.with_extension("json.bak").exists(),
            "a rollback keeps no second backup"
        );
    }

    #[test]
    fn install_makes_a_fresh_config_runnable() {
        let p = paths();
        let cfg = Config::parse(&p.config_path, String::new()).unwrap();
        let plan = plan_config(&p, &cfg, Some(20001)).unwrap();
        let doc = plan.doc.unwrap();
        assert_eq!(doc["gateway"]["mode"], "local");
        assert_eq!(doc["gateway"]["auth"]["token"].as_str().unwrap().len(), 48);
        assert_eq!(doc["gateway"]["port"], 20001);
        assert_eq!(plan.port, 20001);
    }

    #[test]
    fn install_leaves_a_complete_config_alone_and_refuses_remote() {
        let p = paths();
        let text = r#"{gateway: {mode: "local", auth: {token: "t"}, port: 3000}}"#;
        let cfg = Config::parse(&p.config_path, text.into()).unwrap();
        let plan = plan_config(&p, &cfg, None).unwrap();
        assert!(plan.doc.is_none() && plan.notes.is_empty());
        assert_eq!(plan.port, 3000);
        let remote =
            Config::parse(&p.config_path, r#"{gateway: {mode: "remote"}}"#.into()).unwrap();
        let e = plan_config(&p, &remote, None).unwrap_err();
        assert_eq!(e.exit(), Exit::Config);
    }

    #[test]
    fn status_text_names_state_probe_and_next_steps() {
        let st = ServiceStatus {
            manager: "systemd".into(),
            name: "openclaw-gateway.service".into(),
            installed: true,
            enabled: true,
            state: "active".into(),
            sub_state: Some("running".into()),
            pid: Some(42),
            reload_pending: true,
            socket_activated: true,
            listen: vec!["127.0.0.1:1".into(), "[::1]:1".into()],
            logs: Some("journalctl --user -u openclaw-gateway.service -n 200 --no-pager".into()),
            linger: Some("unknown".into()),
            scope: Some("user".into()),
            ..Default::default()
        };
        let t = render_status(&Ok(st.clone()), &Ok(()), 1, None);
        assert!(
            t.contains("Runtime: running (pid 42, state active, sub running)"),
            "{t}"
        );
        assert!(t.contains("RPC probe: ok"));
        assert!(t.contains("socket-activated"));
        assert!(
            t.contains("Logs: journalctl --user -u openclaw-gateway.service -n 200 --no-pager")
        );
        assert!(t.contains("Systemd reload: pending"));
        assert!(t.contains("Linger: unknown"));
        // A distribution package's unit is named as such, with how to customise it.
        let pkg = ServiceStatus {
            file: Some("/usr/lib/systemd/user/openclaw-gateway.service".into()),
            source: Some("package".into()),
            source_dir: Some("/usr/lib/systemd/user".into()),
            drop_ins: vec![
                "/home/a/.config/systemd/user/openclaw-gateway.service.d/port.conf".into(),
            ],
            ..st.clone()
        };
        let t = render_status(&Ok(pkg), &Ok(()), 1, None);
        assert!(
            t.contains(
                "Service file: /usr/lib/systemd/user/openclaw-gateway.service (package-managed, \
                 from /usr/lib/systemd/user: package upgrades replace it; customise with \
                 `systemctl --user edit openclaw-gateway.service`)"
            ),
            "{t}"
        );
        assert!(t.contains(
            "Drop-in: /home/a/.config/systemd/user/openclaw-gateway.service.d/port.conf"
        ));
        let t = render_status(
            &Err(Error::Msg("no manager".into())),
            &Err("connect: refused".into()),
            1,
            None,
        );
        assert!(t.contains("RPC probe: failed: connect: refused"), "{t}");
    }

    #[test]
    fn a_running_launch_agent_reports_runtime_running() {
        let st = ServiceStatus {
            manager: "launchd".into(),
            name: "ai.openclaw.gateway".into(),
            installed: true,
            enabled: true,
            state: "running".into(),
            sub_state: Some("running".into()),
            pid: Some(4242),
            ..Default::default()
        };
        let t = render_status(&Ok(st), &Ok(()), 1, None);
        assert!(
            t.contains("Runtime: running (pid 4242, state running, sub running)"),
            "{t}"
        );
    }

    #[test]
    fn stale_status_text_is_not_shown_and_the_start_limit_is_named() {
        let st = ServiceStatus {
            manager: "systemd".into(),
            name: "openclaw-gateway.service".into(),
            installed: true,
            state: "failed".into(),
            result: Some("exit-code".into()),
            start_limit_hit: true,
            status_text: Some("listening on ws://127.0.0.1:1".into()),
            logs: Some("journalctl --user -u openclaw-gateway.service".into()),
            ..Default::default()
        };
        let t = render_status(&Ok(st.clone()), &Err("connect: refused".into()), 1, None);
        assert!(!t.contains("Gateway says"), "{t}");
        assert!(
            t.contains("Start limit: hit")
                && t.contains("systemctl --user reset-failed openclaw-gateway.service"),
            "{t}"
        );
        let live = ServiceStatus {
            pid: Some(7),
            state: "active".into(),
            result: Some("success".into()),
            start_limit_hit: false,
            ..st
        };
        let t = render_status(&Ok(live), &Ok(()), 1, None);
        assert!(
            t.contains("Gateway says: listening on ws://127.0.0.1:1"),
            "{t}"
        );
        assert!(!t.contains("Start limit"), "{t}");
    }

    #[test]
    fn a_silent_gateway_reads_as_a_timeout_and_a_closing_one_as_closed() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        // Accepted by the kernel backlog, never answered.
        let e = crate::ops::probe::healthz(port, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("sent no answer within 0.3s"), "{e}");
        drop(silent);
        let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closing.local_addr().unwrap().port();
        let t = std::thread::spawn(move || drop(closing.accept().unwrap()));
        let e = crate::ops::probe::healthz(port, Duration::from_secs(10)).unwrap_err();
        t.join().unwrap();
        assert!(e.contains("closed the connection without an answer"), "{e}");
    }

    #[test]
    fn listening_comes_from_the_kernel() {
        let st = ServiceStatus {
            manager: "systemd".into(),
            name: "openclaw-gateway.service".into(),
            installed: true,
            listen: vec!["127.0.0.1:2".into(), "[::1]:2".into()],
            ..Default::default()
        };
        let t = render_status(&Ok(st.clone()), &Err("refused".into()), 1, Some(&[]));
        assert!(
            t.contains("Listening: nothing on port 1 (kernel); the socket unit is stopped\n"),
            "{t}"
        );
        let bound: Vec<SocketAddr> =
            vec!["127.0.0.1:1".parse().unwrap(), "[::1]:1".parse().unwrap()];
        let active = ServiceStatus {
            socket_activated: true,
            ..st
        };
        let t = render_status(&Ok(active.clone()), &Ok(()), 1, Some(&bound));
        assert!(
            t.contains("Listening: 127.0.0.1:1, [::1]:1 (socket-activated: systemd holds the sockets; the socket unit names 127.0.0.1:2, [::1]:2, applied when the socket restarts"),
            "{t}"
        );
        let same = ServiceStatus {
            listen: vec!["127.0.0.1:1".into(), "[::1]:1".into()],
            ..active
        };
        let t = render_status(&Ok(same), &Ok(()), 1, Some(&bound));
        assert!(
            t.contains(
                "Listening: 127.0.0.1:1, [::1]:1 (socket-activated: systemd holds the sockets)\n"
            ),
            "{t}"
        );
    }
}
