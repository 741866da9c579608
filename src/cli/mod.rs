//! The command line: the clap tree for every verb, and `dispatch` to the module that owns it.
//!
//! `openclaw gateway` with no subcommand is `openclaw gateway run` (upstream compatibility).
pub(crate) mod assets;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::paths::{Paths, ProcessEnv};
use crate::error::{Exit, Result};

/// OpenClaw Gateway (Rust): a systemd- and launchd-native gateway and its operator CLI.
#[derive(Debug, Parser)]
#[command(name = "openclaw", version = crate::VERSION, propagate_version = true)]
pub(crate) struct Cli {
    /// Use a named profile: state under ~/.openclaw-<NAME>, unit openclaw-gateway-<NAME>.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Dev profile: state under ~/.openclaw-dev and default gateway port 19001.
    #[arg(long, global = true)]
    pub(crate) dev: bool,
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run and manage the gateway (`openclaw gateway` alone runs it in the foreground).
    Gateway(GatewayCmd),
    /// One consistent overview: reachability, service state, ports, auth, config, versions.
    Status(StatusArgs),
    /// Query the running gateway's health (RPC `health`).
    Health(HealthArgs),
    /// Show or follow the gateway's file log (RPC `logs.tail`).
    Logs(LogsArgs),
    /// Detect (and with --repair, fix) drift between what is installed and what should be.
    Doctor(DoctorArgs),
    /// Secrets operations.
    Secrets {
        #[command(subcommand)]
        command: SecretsCmd,
    },
    /// Device pairing and auth tokens (list, approve, reject, remove, rotate, revoke).
    Devices {
        #[command(subcommand)]
        command: DevicesCmd,
    },
    /// Channel operations.
    Channels {
        #[command(subcommand)]
        command: ChannelsCmd,
    },
    /// Create the state dir and a local config with a generated token (idempotent).
    Setup(SetupArgs),
    /// Open the Control UI with your gateway token (prints the URL; the browser gets the token).
    Dashboard(DashboardArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff), or write every page into --out-dir (for packagers).
    #[command(hide = true)]
    Man(ManArgs),
}

/// `openclaw gateway [run flags] [SUBCOMMAND]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct GatewayCmd {
    /// Subcommand; none means `run`.
    #[command(subcommand)]
    pub(crate) command: Option<GatewaySub>,
    /// Flags of `run` when no subcommand is given.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// `openclaw gateway` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GatewaySub {
    /// Run the gateway in the foreground (what service managers execute).
    Run(RunArgs),
    /// Install (or rewrite) and start the user service: systemd units on Linux, a LaunchAgent on macOS.
    Install(InstallArgs),
    /// Start the installed service.
    Start(ServiceArgs),
    /// Stop the service (it stays enabled).
    Stop(ServiceArgs),
    /// Restart the service and wait until the new instance answers.
    Restart(ServiceArgs),
    /// Remove what install created.
    Uninstall(ServiceArgs),
    /// Service state, RPC probe, unit path, listen address, logs.
    Status(GatewayStatusArgs),
    /// Gateway health over RPC.
    Health(HealthArgs),
    /// Call any gateway RPC method.
    Call(CallArgs),
    /// Probe the gateway (hello + health/status/presence/config) and report capability.
    Probe(ProbeArgs),
    /// Print the gateway token from config (the secret is printed only here, on request).
    AuthToken,
}

/// Bind modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BindMode {
    /// 127.0.0.1 and ::1.
    Loopback,
    /// All interfaces (0.0.0.0 and ::); requires auth.
    Lan,
    /// A specific host (`--host`); requires auth unless loopback.
    Custom,
}

/// Auth modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuthMode {
    /// Shared token.
    Token,
    /// Shared password.
    Password,
    /// No auth (loopback only).
    None,
}

/// Flags of `openclaw gateway run`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RunArgs {
    /// Port (precedence: --port, OPENCLAW_GATEWAY_PORT, gateway.port, 18789).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Bind mode (precedence: --bind, gateway.bind, loopback).
    #[arg(long, value_enum)]
    pub(crate) bind: Option<BindMode>,
    /// Host for --bind custom.
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Gateway token (prefer config or OPENCLAW_GATEWAY_TOKEN: argv is visible to other users).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Gateway password.
    #[arg(long)]
    pub(crate) password: Option<String>,
    /// Auth mode.
    #[arg(long, value_enum)]
    pub(crate) auth: Option<AuthMode>,
    /// Debug logging on stderr.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Stop whatever listens on the port first, then start.
    #[arg(long)]
    pub(crate) force: bool,
    /// Start without a local-mode config (missing config or gateway.mode != local).
    #[arg(long)]
    pub(crate) allow_unconfigured: bool,
    /// First-run bootstrap: when no config file exists, create one (gateway.mode=local and a
    /// generated token, 0600) and start. Never touches an existing config.
    #[arg(long)]
    pub(crate) init: bool,
}

/// `gateway install`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct InstallArgs {
    /// Port the service listens on (also written into config when it has none).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Rewrite and restart even when the installed unit is current.
    #[arg(long)]
    pub(crate) force: bool,
    /// Install a system-scope unit (root; runs as --user).
    #[arg(long)]
    pub(crate) system: bool,
    /// User account for --system.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Print the plan and the files, change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Seconds to wait for the new gateway to answer an RPC probe.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

/// start/stop/restart/uninstall.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServiceArgs {
    /// Act on the system-scope unit.
    #[arg(long)]
    pub(crate) system: bool,
    /// Print the plan, change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Seconds to wait for readiness.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

/// How to reach a gateway: explicit URL + credentials, or the local one from profile/config/env.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ConnArgs {
    /// Gateway URL (ws://host:port); requires --token or --password.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Token.
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Password.
    #[arg(long)]
    pub(crate) password: Option<String>,
    /// Port of the local gateway (instead of the resolved one).
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Per-call timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) timeout: u64,
}

/// `gateway status`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct GatewayStatusArgs {
    /// Also inspect other installed gateway units/agents and system-level ones.
    #[arg(long)]
    pub(crate) deep: bool,
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Fail unless an RPC (`status`) succeeds.
    #[arg(long)]
    pub(crate) require_rpc: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `openclaw status`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct StatusArgs {
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Everything, including secrets-free config details.
    #[arg(long)]
    pub(crate) all: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `health`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct HealthArgs {
    /// JSON output (the payload verbatim).
    #[arg(long)]
    pub(crate) json: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `gateway call`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct CallArgs {
    /// Method name.
    pub(crate) method: String,
    /// Params as JSON.
    #[arg(long)]
    pub(crate) params: Option<String>,
    /// Wait for the final response of two-stage methods (agent).
    #[arg(long)]
    pub(crate) expect_final: bool,
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `gateway probe`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ProbeArgs {
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `logs`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct LogsArgs {
    /// Keep polling for new lines (survives gateway restarts).
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// Print raw JSONL records.
    #[arg(long)]
    pub(crate) json: bool,
    /// Lines to show initially.
    #[arg(long, default_value_t = 200)]
    pub(crate) limit: u32,
    /// Poll interval in milliseconds for --follow.
    #[arg(long, default_value_t = 1000)]
    pub(crate) interval: u64,
    /// Bytes to read initially (the gateway caps it at 1 MB).
    #[arg(long, default_value_t = 250_000)]
    pub(crate) max_bytes: u64,
    /// No colours even on a terminal (NO_COLOR is honoured too).
    #[arg(long)]
    pub(crate) no_color: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `doctor`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DoctorArgs {
    /// Apply the repairs (backing up anything rewritten).
    #[arg(long, alias = "fix")]
    pub(crate) repair: bool,
    /// JSON output.
    #[arg(long)]
    pub(crate) json: bool,
    /// Never prompt.
    #[arg(long)]
    pub(crate) non_interactive: bool,
    /// Accept the recommended repairs (same as --repair).
    #[arg(long)]
    pub(crate) yes: bool,
    /// With --repair: also rewrite service files that carry operator edits (backed up first).
    #[arg(long)]
    pub(crate) force: bool,
    /// Also scan other profiles and system locations for competing gateways.
    #[arg(long)]
    pub(crate) deep: bool,
}

/// `secrets …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCmd {
    /// Re-resolve SecretRefs in the running gateway (RPC `secrets.reload`).
    Reload {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Connection.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Flags every `devices` verb takes (upstream's: `--url`, `--token`, `--password`,
/// `--timeout`, `--json`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DevicesCommon {
    /// JSON output (recommended for scripting).
    #[arg(long)]
    pub(crate) json: bool,
    /// Connection.
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// `devices …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCmd {
    /// List pending pairing requests and paired devices.
    List(DevicesCommon),
    /// Approve a pending request by exact id; without one (or with --latest) preview the newest and exit 1.
    Approve {
        /// Pending request id.
        request_id: Option<String>,
        /// Show the most recent pending request to approve explicitly.
        #[arg(long)]
        latest: bool,
        #[command(flatten)]
        common: DevicesCommon,
    },
    /// Reject a pending device pairing request.
    Reject {
        /// Pending request id.
        request_id: String,
        #[command(flatten)]
        common: DevicesCommon,
    },
    /// Remove a paired device entry.
    Remove {
        /// Paired device id.
        device_id: String,
        #[command(flatten)]
        common: DevicesCommon,
    },
    /// Rotate a device token for a role (prints JSON).
    Rotate {
        /// Device id.
        #[arg(long)]
        device: String,
        /// Role name.
        #[arg(long)]
        role: String,
        /// Scopes to attach to the token (repeatable).
        #[arg(long = "scope", num_args = 1.., conflicts_with = "no_scopes")]
        scope: Vec<String>,
        /// Rotate with an empty scope set.
        #[arg(long)]
        no_scopes: bool,
        #[command(flatten)]
        common: DevicesCommon,
    },
    /// Revoke a device token for a role (prints JSON).
    Revoke {
        /// Device id.
        #[arg(long)]
        device: String,
        /// Role name.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        common: DevicesCommon,
    },
}

/// `channels …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ChannelsCmd {
    /// Channel status (RPC `channels.status`).
    Status {
        /// Actively probe each channel.
        #[arg(long)]
        probe: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Connection.
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `setup`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SetupArgs {
    /// Port to record in config.
    #[arg(long)]
    pub(crate) port: Option<u16>,
}

/// `dashboard` (upstream's flags).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DashboardArgs {
    /// Print the URL but do not launch a browser.
    #[arg(long)]
    pub(crate) no_open: bool,
    /// Print one machine-readable connection object (no browser, clipboard or prompt).
    #[arg(long)]
    pub(crate) json: bool,
    /// Accepted for compatibility; this command never installs or starts the gateway.
    #[arg(long)]
    pub(crate) yes: bool,
}

/// `completions`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CompletionsArgs {
    /// Target shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ManArgs {
    /// Write openclaw.1 and one page per command into this directory instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub(crate) out_dir: Option<std::path::PathBuf>,
}

/// Parses argv, runs the command, prints any error once, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("{e}");
            e.exit().into()
        }
    }
}

/// Routes a parsed command line to the module that owns the verb.
pub(crate) fn dispatch(cli: Cli) -> Result<Exit> {
    // Generated assets need no home directory or config (package builds run without one).
    match &cli.command {
        Command::Completions(a) => return assets::completions(a),
        Command::Man(a) => return assets::man(a),
        _ => {}
    }
    let paths = Paths::resolve(cli.profile.as_deref(), cli.dev, &ProcessEnv)?;
    match cli.command {
        Command::Gateway(g) => match g.command {
            None => crate::commands::gateway::run(&paths, g.run.into()),
            Some(GatewaySub::Run(a)) => crate::commands::gateway::run(&paths, a.into()),
            Some(GatewaySub::Install(a)) => crate::commands::service::install(&paths, &a.into()),
            Some(GatewaySub::Start(a)) => crate::commands::service::start(&paths, &a.into()),
            Some(GatewaySub::Stop(a)) => crate::commands::service::stop(&paths, &a.into()),
            Some(GatewaySub::Restart(a)) => crate::commands::service::restart(&paths, &a.into()),
            Some(GatewaySub::Uninstall(a)) => {
                crate::commands::service::uninstall(&paths, &a.into())
            }
            Some(GatewaySub::Status(a)) => crate::commands::service::status(&paths, &a.into()),
            Some(GatewaySub::AuthToken) => crate::commands::setup::auth_token(&paths),
            Some(GatewaySub::Health(a)) => {
                crate::commands::client::health::run(&paths, &a.into(), Style::Gateway)
            }
            Some(GatewaySub::Call(a)) => crate::commands::client::call::run(&paths, &a.into()),
            Some(GatewaySub::Probe(a)) => crate::commands::client::probe::run(&paths, &a.into()),
        },
        Command::Status(a) => crate::commands::client::status::run(&paths, &a.into()),
        Command::Health(a) => {
            crate::commands::client::health::run(&paths, &a.into(), Style::Summary)
        }
        Command::Logs(a) => crate::commands::client::logs::run(&paths, &a.into()),
        Command::Doctor(a) => crate::commands::doctor::run(&paths, &a.into()),
        Command::Secrets {
            command: SecretsCmd::Reload { json, conn },
        } => crate::commands::secrets::reload(&paths, json, &conn.into()),
        Command::Devices { command } => crate::commands::devices::run(&paths, &command.into()),
        Command::Channels {
            command: ChannelsCmd::Status { probe, json, conn },
        } => crate::commands::client::channels::status(&paths, probe, json, &conn.into()),
        Command::Setup(a) => crate::commands::setup::setup(&paths, &a.into()),
        Command::Dashboard(a) => crate::commands::dashboard::run(&paths, &a.into()),
        Command::Completions(a) => assets::completions(&a),
        Command::Man(a) => assets::man(&a),
    }
}

// The clap structs above are the CLI's own; every layer below takes the plain option structs
// of the module that owns the verb. These conversions are the only place the two meet.

/// `impl From<clap struct> for options struct`, field by field; fields after `;` convert
/// with `Into` (the nested connection flags).
macro_rules! plain {
    ($from:ty => $to:path { $($f:ident),* $(; $($c:ident),*)? }) => {
        impl From<$from> for $to {
            fn from(a: $from) -> $to {
                $to { $($f: a.$f,)* $($($c: a.$c.into(),)*)? }
            }
        }
    };
}

use crate::commands::client::call::CallOptions;
use crate::commands::client::health::{HealthOptions, Style};
use crate::commands::client::logs::LogsOptions;
use crate::commands::client::probe::{GatewayStatusOptions, ProbeOptions};
use crate::commands::client::status::StatusOptions;
use crate::commands::dashboard::DashboardOptions;
use crate::commands::doctor::DoctorOptions;
use crate::commands::service::{InstallOptions, ServiceOptions};
use crate::commands::setup::SetupOptions;
use crate::gateway::options::{self as run, RunOptions};
use crate::ops::conn::ConnOptions;

plain!(ConnArgs => ConnOptions { url, token, password, port, timeout });
plain!(GatewayStatusArgs => GatewayStatusOptions { deep, json, require_rpc; conn });
plain!(StatusArgs => StatusOptions { json, all; conn });
plain!(HealthArgs => HealthOptions { json; conn });
plain!(CallArgs => CallOptions { method, params, expect_final, json; conn });
plain!(ProbeArgs => ProbeOptions { json; conn });
plain!(LogsArgs => LogsOptions { follow, json, limit, interval, max_bytes, no_color; conn });
plain!(DoctorArgs => DoctorOptions { repair, json, non_interactive, yes, force, deep });
plain!(SetupArgs => SetupOptions { port });
plain!(DashboardArgs => DashboardOptions { no_open, json, yes });
plain!(InstallArgs => InstallOptions { port, force, system, user, dry_run, timeout });
plain!(ServiceArgs => ServiceOptions { system, dry_run, timeout });

impl From<DevicesCmd> for crate::commands::devices::DevicesOptions {
    fn from(c: DevicesCmd) -> Self {
        use crate::commands::devices::DevicesVerb as V;
        let (verb, common) = match c {
            DevicesCmd::List(common) => (V::List, common),
            DevicesCmd::Approve {
                request_id,
                latest,
                common,
            } => (V::Approve { request_id, latest }, common),
            DevicesCmd::Reject { request_id, common } => (V::Reject { request_id }, common),
            DevicesCmd::Remove { device_id, common } => (V::Remove { device_id }, common),
            DevicesCmd::Rotate {
                device,
                role,
                scope,
                no_scopes,
                common,
            } => {
                let scopes = if no_scopes {
                    Some(Vec::new())
                } else {
                    (!scope.is_empty()).then_some(scope)
                };
                (
                    V::Rotate {
                        device,
                        role,
                        scopes,
                    },
                    common,
                )
            }
            DevicesCmd::Revoke {
                device,
                role,
                common,
            } => (V::Revoke { device, role }, common),
        };
        Self {
            verb,
            json: common.json,
            conn: common.conn.into(),
        }
    }
}

impl From<BindMode> for run::BindMode {
    fn from(b: BindMode) -> run::BindMode {
        match b {
            BindMode::Loopback => run::BindMode::Loopback,
            BindMode::Lan => run::BindMode::Lan,
            BindMode::Custom => run::BindMode::Custom,
        }
    }
}

impl From<AuthMode> for run::AuthMode {
    fn from(m: AuthMode) -> run::AuthMode {
        match m {
            AuthMode::Token => run::AuthMode::Token,
            AuthMode::Password => run::AuthMode::Password,
            AuthMode::None => run::AuthMode::None,
        }
    }
}

impl From<RunArgs> for RunOptions {
    fn from(a: RunArgs) -> RunOptions {
        RunOptions {
            port: a.port,
            bind: a.bind.map(Into::into),
            host: a.host,
            token: a.token,
            password: a.password,
            auth: a.auth.map(Into::into),
            verbose: a.verbose,
            force: a.force,
            allow_unconfigured: a.allow_unconfigured,
            init: a.init,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gateway_alone_is_run_and_flags_reach_the_plain_options() {
        let cli =
            Cli::try_parse_from(["openclaw", "gateway", "--port", "5", "--bind", "lan"]).unwrap();
        let Command::Gateway(g) = cli.command else {
            panic!("not gateway")
        };
        assert!(g.command.is_none());
        let run: RunOptions = g.run.into();
        assert_eq!(run.port, Some(5));
        assert_eq!(run.bind, Some(run::BindMode::Lan));
    }

    #[test]
    fn nested_connection_flags_convert_with_the_verb() {
        let cli = Cli::try_parse_from([
            "openclaw", "--dev", "gateway", "call", "health", "--params", "{}", "--json", "--url",
            "ws://h:1", "--token", "t",
        ])
        .unwrap();
        assert!(cli.dev);
        let Command::Gateway(GatewayCmd {
            command: Some(GatewaySub::Call(a)),
            ..
        }) = cli.command
        else {
            panic!("not gateway call")
        };
        let o: CallOptions = a.into();
        assert_eq!(o.method, "health");
        assert_eq!(o.params.as_deref(), Some("{}"));
        assert!(o.json && !o.expect_final);
        assert_eq!(o.conn.url.as_deref(), Some("ws://h:1"));
        assert_eq!(o.conn.token.as_deref(), Some("t"));
        // The clap default survives the conversion.
        assert_eq!(o.conn.timeout, 10_000);
    }
}
