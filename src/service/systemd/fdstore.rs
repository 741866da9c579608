//! How the gateway uses systemd's file-descriptor store (docs/service-managers.md A3): fd names,
//! whether the store is configured for this process, and what the manager is doing to the
//! unit when SIGTERM arrives (a restart job keeps the store, a stop releases it).
//!
//! # Names (`FDNAME=`)
//! - `listen-<addr>-<port>`: a listening socket the gateway bound itself (no `.socket` unit);
//!   taken back on start so no connect is refused while the service restarts.
//! - `ws-<connId>`: one WebSocket connection handed to the next process (unique per
//!   connection: `FDSTOREREMOVE=1` removes by name).
//! - `ws-state`: a sealed memfd with the per-connection state of the handover.
//!
//! # Semantics verified on systemd 252 (tests/it/systemd_zdt.rs and a python probe)
//! The store survives `systemctl restart` (a restart job), a crash or exit that `Restart=`
//! acts on (SIGKILL with `on-failure`, exit 75 with `RestartForceExitStatus=75`), and is
//! released when the unit is stopped with no job pending (`systemctl stop`, a clean exit):
//! systemd then closes its copies, so a stored connection's peer sees FIN at once. `$FDSTORE`
//! is not set by 252 (it is from 254), hence our own `OPENCLAW_FDSTORE_MAX` in the unit;
//! `FileDescriptorStorePreserve=` (254) is not needed for restarts.
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::paths::Env;

/// Prefix of stored listeners.
pub(crate) const LISTEN_PREFIX: &str = "listen-";
/// Prefix of stored connections.
pub(crate) const CONN_PREFIX: &str = "ws-";
/// The state memfd.
pub(crate) const STATE_NAME: &str = "ws-state";
/// `FileDescriptorStoreMax=` our units set (connections + listeners + the state memfd).
pub(crate) const STORE_MAX: usize = 4096;

/// The name of a stored listener (`:` is not allowed in fd names).
pub(crate) fn listener_name(addr: SocketAddr) -> String {
    format!(
        "{LISTEN_PREFIX}{}-{}",
        addr.ip().to_string().replace(':', "_"),
        addr.port()
    )
}

/// The name of a stored connection.
pub(crate) fn conn_name(conn_id: &str) -> String {
    format!("{CONN_PREFIX}{conn_id}")
}

/// What a passed fd's name says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// A listener we stored.
    Listener,
    /// A connection (id).
    Conn(String),
    /// The handover state.
    State,
    /// Not ours (an older version's name, or something else).
    Unknown,
}

/// Classifies an fd name from `LISTEN_FDNAMES`.
pub(crate) fn classify(name: &str) -> Stored {
    if name == STATE_NAME {
        Stored::State
    } else if let Some(id) = name.strip_prefix(CONN_PREFIX) {
        Stored::Conn(id.to_string())
    } else if name.starts_with(LISTEN_PREFIX) {
        Stored::Listener
    } else {
        Stored::Unknown
    }
}

/// The fd store as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreConfig {
    /// `FileDescriptorStoreMax=` as announced (`$FDSTORE` on systemd ≥ 254, else our unit's
    /// `OPENCLAW_FDSTORE_MAX`).
    pub max: usize,
    /// Our unit (`OPENCLAW_SYSTEMD_UNIT`), for asking the manager about jobs.
    pub unit: Option<String>,
    /// Run by a user manager (`$MANAGERPID` is set only there).
    pub user: bool,
}

impl StoreConfig {
    /// `None` unless a manager listens (`NOTIFY_SOCKET`) and announced a store.
    pub(crate) fn from_env(env: &dyn Env) -> Option<StoreConfig> {
        env.var("NOTIFY_SOCKET")?;
        if env.var("OPENCLAW_FDSTORE").as_deref() == Some("off") {
            return None;
        }
        let max = env
            .var("FDSTORE")
            .or_else(|| env.var("OPENCLAW_FDSTORE_MAX"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|m| *m > 0)?;
        Some(StoreConfig {
            max,
            unit: env.var("OPENCLAW_SYSTEMD_UNIT"),
            user: env.var("MANAGERPID").is_some(),
        })
    }
}

/// The job systemd runs on our unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Job {
    /// `restart` (and `try-restart`, `reload-or-restart`): the store is kept.
    Restart,
    /// `stop`: the store is released when we exit.
    Stop,
    /// No job (someone sent SIGTERM directly, or we exit on our own).
    None,
    /// Another job type.
    Other(String),
}

/// Parses `systemctl list-jobs --no-legend` output for `unit`
/// (`  42 openclaw-gateway.service restart running`).
pub(crate) fn parse_jobs(out: &str, unit: &str) -> Job {
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && f[1] == unit {
            return match f[2] {
                "restart" | "try-restart" | "reload-or-restart" => Job::Restart,
                "stop" => Job::Stop,
                other => Job::Other(other.to_string()),
            };
        }
    }
    Job::None
}

/// What the manager says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManagerView {
    /// Our unit's current job.
    pub job: Job,
    /// `FileDescriptorStoreMax` as the manager has it (drop-ins included).
    pub store_max: Option<usize>,
}

/// Asks the manager (`systemctl [--user] list-jobs` and `show -p FileDescriptorStoreMax`),
/// bounded by `timeout`. `None` when it cannot be asked (no unit name, no systemctl, no bus).
pub(crate) async fn query_manager(cfg: &StoreConfig, timeout: Duration) -> Option<ManagerView> {
    let unit = cfg.unit.clone()?;
    let run = |args: Vec<String>| {
        let user = cfg.user;
        async move {
            let mut c = tokio::process::Command::new("systemctl");
            if user {
                c.arg("--user");
                if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                    c.env(
                        "XDG_RUNTIME_DIR",
                        format!("/run/user/{}", nix::unistd::getuid()),
                    );
                }
            }
            c.args(&args)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let out = c.output().await.ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    };
    let jobs = run(vec![
        "list-jobs".into(),
        "--no-legend".into(),
        "--no-pager".into(),
        unit.clone(),
    ]);
    let show = run(vec![
        "show".into(),
        unit.clone(),
        "-p".into(),
        "FileDescriptorStoreMax".into(),
        "--value".into(),
    ]);
    let (jobs, show) = tokio::time::timeout(timeout, async { tokio::join!(jobs, show) })
        .await
        .ok()?;
    let jobs = jobs?;
    Some(ManagerView {
        job: parse_jobs(&jobs, &unit),
        store_max: show.and_then(|s| s.trim().parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(Vec<(&'static str, &'static str)>);
    impl Env for E {
        fn var(&self, key: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn names_round_trip_and_are_valid() {
        let v6 = listener_name("[::1]:18789".parse().unwrap());
        assert_eq!(v6, "listen-__1-18789");
        assert!(super::super::notify::valid_fd_name(&v6));
        assert_eq!(classify(&v6), Stored::Listener);
        assert_eq!(
            classify(&listener_name("127.0.0.1:1".parse().unwrap())),
            Stored::Listener
        );
        let c = conn_name("6f1c0c1e-0000-4000-8000-000000000000");
        assert!(super::super::notify::valid_fd_name(&c));
        assert_eq!(
            classify(&c),
            Stored::Conn("6f1c0c1e-0000-4000-8000-000000000000".into())
        );
        assert_eq!(classify(STATE_NAME), Stored::State);
        assert_eq!(classify("stored"), Stored::Unknown);
        assert_eq!(classify("gateway"), Stored::Unknown);
    }

    #[test]
    fn store_config_needs_a_manager_and_a_size() {
        assert_eq!(StoreConfig::from_env(&E(vec![])), None);
        assert_eq!(
            StoreConfig::from_env(&E(vec![("OPENCLAW_FDSTORE_MAX", "10")])),
            None,
            "no NOTIFY_SOCKET: nobody to store into"
        );
        let e = E(vec![
            ("NOTIFY_SOCKET", "/run/n"),
            ("OPENCLAW_FDSTORE_MAX", "4096"),
            ("OPENCLAW_SYSTEMD_UNIT", "gw.service"),
            ("MANAGERPID", "12"),
        ]);
        assert_eq!(
            StoreConfig::from_env(&e),
            Some(StoreConfig {
                max: 4096,
                unit: Some("gw.service".into()),
                user: true
            })
        );
        // systemd >= 254 announces the size itself.
        let e = E(vec![("NOTIFY_SOCKET", "/run/n"), ("FDSTORE", "7")]);
        assert_eq!(StoreConfig::from_env(&e).unwrap().max, 7);
        let e = E(vec![("NOTIFY_SOCKET", "/run/n"), ("FDSTORE", "0")]);
        assert_eq!(StoreConfig::from_env(&e), None);
        let e = E(vec![
            ("NOTIFY_SOCKET", "/run/n"),
            ("FDSTORE", "7"),
            ("OPENCLAW_FDSTORE", "off"),
        ]);
        assert_eq!(StoreConfig::from_env(&e), None);
    }

    #[test]
    fn jobs() {
        let out = "  17 other.service start waiting\n  42 gw.service restart running\n";
        assert_eq!(parse_jobs(out, "gw.service"), Job::Restart);
        assert_eq!(
            parse_jobs("9 gw.service stop running\n", "gw.service"),
            Job::Stop
        );
        assert_eq!(parse_jobs("", "gw.service"), Job::None);
        assert_eq!(parse_jobs(out, "x.service"), Job::None);
        assert_eq!(
            parse_jobs("1 gw.service reload running", "gw.service"),
            Job::Other("reload".into())
        );
    }
}
