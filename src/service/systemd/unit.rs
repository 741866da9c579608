//! Renders `openclaw-gateway[-P].service` and `.socket` from a [`ServiceSpec`].
//!
//! Pure and deterministic: the checked-in `units/` files are this renderer's output for the
//! default install (pinned by a golden test). Values are escaped for systemd's parser, not
//! pasted: `%` → `%%` everywhere specifiers expand, `$` → `$$` in `ExecStart=` (variable
//! expansion), C-style backslash escaping inside double quotes, and control characters are
//! refused. No secret is ever rendered: the token lives in the config file (0600) or in the
//! optional 0600 `EnvironmentFile=`.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::service::ServiceSpec;

/// The first systemd release with `Type=notify-reload` (systemd PR #25916).
pub const NOTIFY_RELOAD_SINCE: u32 = 253;
/// `WatchdogSec=`: the gateway pings at half of it after a real liveness check.
pub const WATCHDOG_SEC: u64 = 30;
/// `TimeoutStopSec=` margin over the drain budget (the gateway extends it while draining).
pub const STOP_MARGIN_SEC: u64 = 15;
/// Soft/hard `LimitNOFILE=`: one fd per WebSocket client, systemd's 1024 soft default is low.
pub const NOFILE: u64 = 65536;
/// Name of the optional, operator-owned environment file in the state dir (0600).
pub const ENV_FILE: &str = "gateway.systemd.env";

/// Which manager the unit is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `systemd --user` (`~/.config/systemd/user`).
    User,
    /// The system manager (`/etc/systemd/system`), running the gateway as `user`.
    System {
        /// `User=` account.
        user: String,
    },
    /// The system manager with a transient account (`DynamicUser=yes`) and the state dir
    /// managed by systemd (`StateDirectory=`, under /var/lib): the system-scope unit the
    /// Debian package ships in /usr/lib/systemd/system, disabled (see [`packaged_system`]).
    SystemDynamic,
}

/// Name of the state directory below /var/lib of the packaged system unit.
pub const PACKAGED_STATE_DIRECTORY: &str = "openclaw";

/// The spec and options of the packaged system-scope unit (units/packaged-system/): default
/// port, `/usr/bin/openclaw`, state in `/var/lib/openclaw` (a `DynamicUser=` account owns it;
/// `OPENCLAW_STATE_DIR` points the gateway at it).
pub fn packaged_system() -> (ServiceSpec, UnitOptions) {
    let state = PathBuf::from("/var/lib").join(PACKAGED_STATE_DIRECTORY);
    let port = crate::config::paths::DEFAULT_PORT;
    let spec = ServiceSpec {
        profile: None,
        name: "openclaw-gateway".into(),
        description: "OpenClaw Gateway".into(),
        program: "/usr/bin/openclaw".into(),
        port,
        config_path: state.join("openclaw.json"),
        env: vec![
            ("OPENCLAW_GATEWAY_PORT".into(), port.to_string()),
            ("OPENCLAW_STATE_DIR".into(), state.display().to_string()),
            ("OPENCLAW_SERVICE_MARKER".into(), "openclaw".into()),
            ("OPENCLAW_SERVICE_KIND".into(), "gateway".into()),
        ],
        state_dir: state,
        drain_secs: crate::service::DRAIN_SECS,
    };
    let opts = UnitOptions {
        scope: Scope::SystemDynamic,
        // Type=notify: the package must run on Debian 12's systemd 252.
        systemd_version: 252,
        home: None,
    };
    (spec, opts)
}

/// Rendering options that are not part of the portable [`ServiceSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOptions {
    /// User or system manager.
    pub scope: Scope,
    /// The manager's version (`systemctl --version`); decides `Type=notify-reload`.
    pub systemd_version: u32,
    /// The user's home: paths below it render as `%h/…` in user units (portable files).
    pub home: Option<PathBuf>,
}

/// A rendered service + socket pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    /// `<name>.service`.
    pub service: String,
    /// `<name>.socket`.
    pub socket: String,
}

/// Renders both units.
pub fn render(spec: &ServiceSpec, opts: &UnitOptions) -> Result<Units> {
    Ok(Units {
        service: render_service(spec, opts)?,
        socket: render_socket(spec, opts)?,
    })
}

fn refuse_control(what: &str, s: &str) -> Result<()> {
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::Msg(format!(
            "cannot write a systemd unit: {what} {s:?} contains a control character (newline, tab, …); \
             move it to a path without one"
        )));
    }
    Ok(())
}

/// `%` → `%%` (specifier expansion happens in nearly every setting).
pub fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// Quotes one `ExecStart=` argument: `%`→`%%`, `$`→`$$`, and double quotes with backslash
/// escapes when the word contains whitespace, quotes, backslashes, or is empty or `;`.
pub fn quote_exec_arg(arg: &str) -> Result<String> {
    refuse_control("the ExecStart argument", arg)?;
    let s = escape_specifiers(arg).replace('$', "$$");
    let needs_quotes = s.is_empty()
        || s == ";"
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if needs_quotes {
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(s)
    }
}

/// Quotes one `ExecStart=`-style argument whose `%` are already escaped (a `%h/…` path).
fn quote_escaped_exec_arg(s: &str) -> Result<String> {
    refuse_control("the ExecStartPre argument", s)?;
    let s = s.replace('$', "$$");
    if s.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(s)
    }
}

/// One `Environment=` assignment, quoted when needed (`$` is not expanded there).
pub fn environment_line(key: &str, value: &str) -> Result<String> {
    refuse_control(&format!("the value of {key}"), value)?;
    environment_line_escaped(key, &escape_specifiers(value))
}

/// Same, for a value whose `%` are already escaped (e.g. a `%h/…` path).
fn environment_line_escaped(key: &str, v: &str) -> Result<String> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Msg(format!(
            "cannot write a systemd unit: {key:?} is not a valid environment variable name"
        )));
    }
    if v.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        Ok(format!(
            "Environment=\"{key}={}\"",
            v.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(format!("Environment={key}={v}"))
    }
}

/// A path for settings that expand specifiers; `%h/…` when it lies under the user's home.
fn unit_path(p: &Path, opts: &UnitOptions) -> Result<String> {
    let s = p.to_str().ok_or_else(|| {
        Error::Msg(format!(
            "cannot write a systemd unit: path {} is not valid UTF-8",
            p.display()
        ))
    })?;
    refuse_control("the path", s)?;
    if !p.is_absolute() {
        return Err(Error::Msg(format!(
            "cannot write a systemd unit: path {s:?} is not absolute"
        )));
    }
    if opts.scope == Scope::User
        && let Some(home) = &opts.home
        && let Ok(rest) = p.strip_prefix(home)
        && home != Path::new("/")
    {
        let rest = rest.to_str().unwrap_or_default();
        return Ok(if rest.is_empty() {
            "%h".into()
        } else {
            format!("%h/{}", escape_specifiers(rest))
        });
    }
    Ok(escape_specifiers(s))
}

/// A path inside a space-separated list setting (`ReadWritePaths=`): quoted when needed.
fn list_path(p: &Path, opts: &UnitOptions) -> Result<String> {
    let s = unit_path(p, opts)?;
    if s.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\\'))
    {
        Ok(format!(
            "\"{}\"",
            s.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Ok(s)
    }
}

/// Whether a path is hidden by `PrivateTmp=yes` (the service would not see it).
fn under_tmp(p: &Path) -> bool {
    p.starts_with("/tmp") || p.starts_with("/var/tmp")
}

/// `PrivateTmp=yes` unless it would hide the binary or the state dir.
fn private_tmp(spec: &ServiceSpec) -> bool {
    !under_tmp(&spec.program) && !under_tmp(&spec.state_dir)
}

/// The `ExecStart=` argv (program first).
pub fn exec_start(spec: &ServiceSpec) -> Vec<String> {
    vec![
        spec.program.to_string_lossy().into_owned(),
        "gateway".into(),
        "run".into(),
        "--port".into(),
        spec.port.to_string(),
        // First start without `openclaw setup` (a distro package's unit): create a local config
        // with a generated token (0600). Never touches an existing config.
        "--init".into(),
    ]
}

/// `<name>.service`.
pub fn render_service(spec: &ServiceSpec, opts: &UnitOptions) -> Result<String> {
    let name = &spec.name;
    let user = opts.scope == Scope::User;
    let notify_reload = opts.systemd_version >= NOTIFY_RELOAD_SINCE;
    refuse_control("the description", &spec.description)?;
    let mut o = String::new();
    let cmd = if user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    if opts.scope == Scope::SystemDynamic {
        let _ = writeln!(
            o,
            "# {name}.service: the openclaw package's system-scope gateway, disabled until\n\
             # `systemctl enable --now {name}.socket`. Runs as a transient account with its state\n\
             # (config, token) in /var/lib/{PACKAGED_STATE_DIRECTORY}. Customise with a drop-in\n\
             # (`{cmd} edit {name}.service`): package upgrades replace this file."
        );
    } else {
        let _ = writeln!(
            o,
            "# {name}.service: generated by `openclaw gateway install`."
        );
        let _ = writeln!(
            o,
            "# Customise with a drop-in (`{cmd} edit {name}.service`): install rewrites this file"
        );
        let _ = writeln!(o, "# and keeps the previous one as {name}.service.bak.");
    }
    o.push_str("[Unit]\n");
    let _ = writeln!(o, "Description={}", escape_specifiers(&spec.description));
    o.push_str("Documentation=https://docs.openclaw.ai/gateway\n");
    // A manual `systemctl start` of the service must not come up without its sockets.
    let _ = writeln!(o, "Requires={name}.socket");
    if user {
        let _ = writeln!(o, "After={name}.socket");
    } else {
        let _ = writeln!(o, "After={name}.socket network.target");
    }
    // In [Unit]: in [Service] systemd ignores them (syncthing #7529).
    o.push_str("StartLimitIntervalSec=300\nStartLimitBurst=10\n\n");

    o.push_str("[Service]\n");
    if notify_reload {
        // systemd >= 253: reload = SIGHUP, finished by RELOADING=1+MONOTONIC_USEC … READY=1.
        o.push_str("Type=notify-reload\n");
    } else {
        o.push_str("Type=notify\n");
    }
    o.push_str("NotifyAccess=main\n");
    let argv = exec_start(spec)
        .iter()
        .map(|a| quote_exec_arg(a))
        .collect::<Result<Vec<_>>>()?;
    let _ = writeln!(o, "ExecStart={}", argv.join(" "));
    if !notify_reload {
        o.push_str("ExecReload=/bin/kill -HUP $MAINPID\n");
    }
    if let Scope::System { user } = &opts.scope {
        if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::Msg(format!(
                "cannot write a system unit: {user:?} is not a valid user name for User="
            )));
        }
        let _ = writeln!(o, "User={}", escape_specifiers(user));
    }
    let dynamic = opts.scope == Scope::SystemDynamic;
    if dynamic {
        // systemd creates /var/lib/openclaw (0700) owned by the transient account, keeps its
        // uid stable across restarts, and makes it writable under ProtectSystem=strict.
        o.push_str("DynamicUser=yes\n");
        let _ = writeln!(o, "StateDirectory={PACKAGED_STATE_DIRECTORY}");
        o.push_str("StateDirectoryMode=0700\n");
    }
    let state = unit_path(&spec.state_dir, opts)?;
    if user {
        // A packaged unit starts for users who never ran `openclaw setup`: the state dir may
        // not exist yet, and ReadWritePaths= below fails (226/NAMESPACE) on a missing path
        // while ProtectHome= keeps the gateway from creating it. `+` runs this one step
        // outside the sandbox; the umask keeps the new directory 0700. (System units: install
        // creates the directory, or StateDirectory= does.)
        let _ = writeln!(
            o,
            "ExecStartPre=+/bin/mkdir -p -m 0700 {}",
            quote_escaped_exec_arg(&state)?
        );
        // `-`: the mkdir above runs in it too, before it exists.
        let _ = writeln!(o, "WorkingDirectory=-{state}");
    } else {
        let _ = writeln!(o, "WorkingDirectory={state}");
    }
    for (k, v) in &spec.env {
        let line = if Path::new(v).is_absolute() {
            // Paths under home become %h/… so the file stays portable.
            environment_line_escaped(k, &unit_path(Path::new(v), opts)?)?
        } else {
            environment_line(k, v)?
        };
        o.push_str(&line);
        o.push('\n');
    }
    // Identity marker: the gateway knows which unit runs it (supervisor detection, status).
    o.push_str(&environment_line(
        "OPENCLAW_SYSTEMD_UNIT",
        &format!("{name}.service"),
    )?);
    o.push('\n');
    let _ = writeln!(
        o,
        "EnvironmentFile=-{}",
        unit_path(&spec.state_dir.join(ENV_FILE), opts)?
    );
    if private_tmp(spec) {
        // The file log defaults to /tmp/openclaw, which PrivateTmp would make invisible
        // outside the service: keep it in the (writable) state dir instead.
        let logs = unit_path(&spec.state_dir.join("logs"), opts)?;
        o.push_str(&environment_line_escaped("OPENCLAW_LOG_DIR", &logs)?);
        o.push('\n');
    }
    o.push_str("Restart=on-failure\nRestartSec=2\n");
    // 78 = config error / startup refusal: restarting cannot help, so don't loop.
    o.push_str("RestartPreventExitStatus=78\n");
    // 75 = planned restart (a restart-required config change): restarted even under
    // Restart=on-failure, and not logged as a failure.
    o.push_str("RestartForceExitStatus=75\nSuccessExitStatus=75\n");
    o.push_str("TimeoutStartSec=30\n");
    let _ = writeln!(o, "TimeoutStopSec={}", spec.drain_secs + STOP_MARGIN_SEC);
    let _ = writeln!(o, "WatchdogSec={WATCHDOG_SEC}");
    // Zero-downtime restarts: live WebSocket connections (and self-bound listeners) go into
    // the fd store across `restart`; systemd < 254 does not export $FDSTORE, so say it.
    let max = super::fdstore::STORE_MAX;
    let _ = writeln!(o, "FileDescriptorStoreMax={max}");
    o.push_str(&environment_line("OPENCLAW_FDSTORE_MAX", &max.to_string())?);
    o.push('\n');
    // SIGTERM to the gateway (graceful drain), SIGKILL to anything it left behind.
    o.push_str("KillMode=mixed\n");
    let _ = writeln!(o, "LimitNOFILE={NOFILE}");
    o.push_str("UMask=0077\n");

    o.push_str("# Hardening (`systemd-analyze security");
    o.push_str(if user { " --user" } else { "" });
    let _ = writeln!(o, " {name}.service`).");
    o.push_str("NoNewPrivileges=yes\n");
    if user {
        // A user manager can only set up the mount namespaces below inside a user namespace.
        o.push_str("PrivateUsers=yes\n");
    }
    o.push_str("ProtectSystem=strict\nProtectHome=read-only\n");
    if user {
        // `-`: a missing path is skipped instead of failing the namespace setup (226), which
        // systemd performs even for the `+` ExecStartPre= that creates it.
        let path = list_path(&spec.state_dir, opts)?;
        let path = match path.strip_prefix('"') {
            Some(rest) => format!("\"-{rest}"),
            None => format!("-{path}"),
        };
        let _ = writeln!(o, "ReadWritePaths={path}");
    } else if !dynamic {
        // (StateDirectory= makes the dynamic variant's state writable.)
        let _ = writeln!(o, "ReadWritePaths={}", list_path(&spec.state_dir, opts)?);
    }
    // PrivateTmp would hide a binary or state dir that lives under /tmp (test installs).
    if private_tmp(spec) {
        o.push_str("PrivateTmp=yes\n");
    }
    if !user {
        // Not in user units: inside a user namespace (PrivateUsers=yes) these remount parts of
        // /proc and fail with 226/NAMESPACE wherever /proc is a container's private procfs
        // (reproduced in our systemd sandbox). An unprivileged service cannot write
        // /proc/sys nor read the kernel log anyway.
        o.push_str("ProtectKernelTunables=yes\nProtectKernelLogs=yes\n");
    }
    o.push_str(
        "PrivateDevices=yes\n\
         DevicePolicy=closed\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         PrivateMounts=yes\n\
         ProtectProc=invisible\n\
         KeyringMode=private\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
         RestrictNamespaces=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         MemoryDenyWriteExecute=yes\n\
         RemoveIPC=yes\n\
         CapabilityBoundingSet=\n\
         AmbientCapabilities=\n\
         SystemCallArchitectures=native\n\
         SystemCallFilter=@system-service\n\
         SystemCallFilter=~@privileged @resources\n\
         SystemCallErrorNumber=EPERM\n\n",
    );

    o.push_str("[Install]\n");
    if user {
        o.push_str("WantedBy=default.target\n");
    } else {
        o.push_str("WantedBy=multi-user.target\n");
    }
    let _ = writeln!(o, "Also={name}.socket");
    Ok(o)
}

/// `<name>.socket`: loopback on both families, handed to the service as fds named `gateway`.
pub fn render_socket(spec: &ServiceSpec, opts: &UnitOptions) -> Result<String> {
    let name = &spec.name;
    let p = spec.port;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# {name}.socket: generated by `openclaw gateway install`."
    );
    o.push_str(
        "# systemd holds the listeners, so restarts and crashes never refuse a connection.\n",
    );
    o.push_str("[Unit]\n");
    let _ = writeln!(
        o,
        "Description={} socket (127.0.0.1:{p}, [::1]:{p})",
        escape_specifiers(&spec.description)
    );
    o.push_str("Documentation=https://docs.openclaw.ai/gateway\n\n");
    o.push_str("[Socket]\n");
    let _ = writeln!(o, "ListenStream=127.0.0.1:{p}");
    let _ = writeln!(o, "ListenStream=[::1]:{p}");
    // [::1] must not also claim 127.0.0.1 (dual-stack); FreeBind: ::1 may not exist yet.
    o.push_str("BindIPv6Only=ipv6-only\nFreeBind=yes\n");
    let _ = writeln!(o, "FileDescriptorName={}", super::activation::FD_NAME);
    let _ = writeln!(o, "Service={name}.service");
    o.push_str("NoDelay=yes\n\n");
    o.push_str("[Install]\nWantedBy=sockets.target\n");
    let _ = opts;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> ServiceSpec {
        ServiceSpec {
            profile: None,
            name: "openclaw-gateway".into(),
            description: "OpenClaw Gateway".into(),
            program: "/usr/bin/openclaw".into(),
            port: 18789,
            state_dir: "/home/alice/.openclaw".into(),
            config_path: "/home/alice/.openclaw/openclaw.json".into(),
            env: vec![("OPENCLAW_GATEWAY_PORT".into(), "18789".into())],
            drain_secs: 30,
        }
    }
    fn user(v: u32) -> UnitOptions {
        UnitOptions {
            scope: Scope::User,
            systemd_version: v,
            home: Some("/home/alice".into()),
        }
    }

    #[test]
    fn exec_args_are_quoted_and_escaped() {
        assert_eq!(
            quote_exec_arg("/usr/bin/openclaw").unwrap(),
            "/usr/bin/openclaw"
        );
        assert_eq!(
            quote_exec_arg("/opt/my app/oc").unwrap(),
            "\"/opt/my app/oc\""
        );
        assert_eq!(quote_exec_arg("50%").unwrap(), "50%%");
        assert_eq!(quote_exec_arg("$HOME").unwrap(), "$$HOME");
        assert_eq!(quote_exec_arg("a\"b").unwrap(), "\"a\\\"b\"");
        assert_eq!(quote_exec_arg("a\\b").unwrap(), "\"a\\\\b\"");
        assert_eq!(quote_exec_arg("").unwrap(), "\"\"");
        assert_eq!(quote_exec_arg(";").unwrap(), "\";\"");
        assert!(quote_exec_arg("a\nb").is_err());
    }

    #[test]
    fn environment_lines() {
        assert_eq!(environment_line("A", "b").unwrap(), "Environment=A=b");
        assert_eq!(
            environment_line("A", "b c %d $e").unwrap(),
            "Environment=\"A=b c %%d $e\""
        );
        assert!(environment_line("A B", "x").is_err());
        assert!(environment_line("A", "x\ny").is_err());
    }

    #[test]
    fn paths_under_home_use_the_h_specifier() {
        let s = render_service(&spec(), &user(252)).unwrap();
        assert!(s.contains("WorkingDirectory=-%h/.openclaw\n"), "{s}");
        assert!(
            s.contains("ExecStartPre=+/bin/mkdir -p -m 0700 %h/.openclaw\n"),
            "{s}"
        );
        assert!(s.contains("ReadWritePaths=-%h/.openclaw\n"));
        assert!(s.contains("EnvironmentFile=-%h/.openclaw/gateway.systemd.env\n"));
        let mut odd = spec();
        odd.state_dir = "/srv/gw 100%".into();
        let s = render_service(&odd, &user(252)).unwrap();
        assert!(s.contains("WorkingDirectory=-/srv/gw 100%%\n"), "{s}");
        assert!(
            s.contains("ExecStartPre=+/bin/mkdir -p -m 0700 \"/srv/gw 100%%\"\n"),
            "{s}"
        );
        assert!(s.contains("ReadWritePaths=\"-/srv/gw 100%%\"\n"), "{s}");
    }

    #[test]
    fn notify_reload_only_on_253_and_later() {
        let old = render_service(&spec(), &user(252)).unwrap();
        assert!(old.contains("Type=notify\n"));
        assert!(old.contains("ExecReload=/bin/kill -HUP $MAINPID\n"));
        let new = render_service(&spec(), &user(253)).unwrap();
        assert!(new.contains("Type=notify-reload\n"));
        assert!(!new.contains("ExecReload"));
    }

    #[test]
    fn restart_policy_and_limits_sit_in_the_right_sections() {
        let s = render_service(&spec(), &user(252)).unwrap();
        let unit = &s[s.find("[Unit]").unwrap()..s.find("[Service]").unwrap()];
        assert!(unit.contains("StartLimitIntervalSec=") && unit.contains("StartLimitBurst="));
        let svc = &s[s.find("[Service]").unwrap()..s.find("[Install]").unwrap()];
        for k in [
            "Restart=on-failure\n",
            "RestartPreventExitStatus=78\n",
            "RestartForceExitStatus=75\n",
            "KillMode=mixed\n",
            "TimeoutStopSec=45\n",
            "WatchdogSec=30\n",
            "FileDescriptorStoreMax=4096\n",
            "Environment=OPENCLAW_FDSTORE_MAX=4096\n",
            "LimitNOFILE=65536\n",
            "NoNewPrivileges=yes\n",
            "ProtectSystem=strict\n",
            "PrivateTmp=yes\n",
            "MemoryDenyWriteExecute=yes\n",
        ] {
            assert!(svc.contains(k), "missing {k:?} in\n{svc}");
        }
    }

    #[test]
    fn no_private_tmp_when_it_would_hide_the_binary() {
        let mut t = spec();
        t.program = "/tmp/build/openclaw".into();
        assert!(
            !render_service(&t, &user(252))
                .unwrap()
                .contains("PrivateTmp")
        );
    }

    #[test]
    fn system_scope_runs_as_user_with_absolute_paths() {
        let o = UnitOptions {
            scope: Scope::System {
                user: "alice".into(),
            },
            systemd_version: 252,
            home: Some("/home/alice".into()),
        };
        let s = render_service(&spec(), &o).unwrap();
        assert!(s.contains("User=alice\n"));
        assert!(s.contains("WorkingDirectory=/home/alice/.openclaw\n"));
        assert!(!s.contains("PrivateUsers"));
        assert!(s.contains("WantedBy=multi-user.target\n"));
        let bad = UnitOptions {
            scope: Scope::System { user: "a b".into() },
            ..o
        };
        assert!(render_service(&spec(), &bad).is_err());
    }

    #[test]
    fn packaged_system_unit_uses_a_dynamic_user_and_var_lib() {
        let (spec, opts) = packaged_system();
        let s = render_service(&spec, &opts).unwrap();
        for k in [
            "DynamicUser=yes\n",
            "StateDirectory=openclaw\n",
            "StateDirectoryMode=0700\n",
            "WorkingDirectory=/var/lib/openclaw\n",
            "Environment=OPENCLAW_STATE_DIR=/var/lib/openclaw\n",
            "ExecStart=/usr/bin/openclaw gateway run --port 18789 --init\n",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(s.contains(k), "missing {k:?} in\n{s}");
        }
        // No fixed account, no ExecStartPre (StateDirectory= creates the state dir), and no
        // ReadWritePaths= on the /var/lib/openclaw symlink DynamicUser= manages.
        for k in ["User=", "ExecStartPre", "ReadWritePaths", "PrivateUsers"] {
            assert!(!s.contains(&format!("\n{k}")), "unexpected {k} in\n{s}");
        }
        // Not the install marker: `gateway uninstall` must never treat it as its own file.
        assert!(!s.contains(crate::service::systemd::manager::MARKER));
    }

    #[test]
    fn socket_listens_on_both_loopback_families_only() {
        let s = render_socket(&spec(), &user(252)).unwrap();
        assert!(s.contains("ListenStream=127.0.0.1:18789\n"));
        assert!(s.contains("ListenStream=[::1]:18789\n"));
        assert!(s.contains("BindIPv6Only=ipv6-only\n"));
        assert!(s.contains("FileDescriptorName=gateway\n"));
        assert_eq!(s.matches("ListenStream=").count(), 2);
    }

    #[test]
    fn no_secret_reaches_a_unit() {
        // The renderer has no input for secrets; make sure env never carries one by accident.
        let s = render(&spec(), &user(252)).unwrap();
        for needle in ["TOKEN", "PASSWORD", "token=", "password="] {
            assert!(!s.service.contains(needle) && !s.socket.contains(needle));
        }
    }
}
