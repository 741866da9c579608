//! Port preflight: before `gateway install` (or a doctor repair that moves the service) binds
//! or writes anything, who holds the target port? Read from the kernel (`/proc/net/tcp{,6}`,
//! then the owning process through the socket inode under `/proc/<pid>/fd`), and classified:
//! our own service or socket unit (fine: install replaces it), the gateway or socket unit of
//! another profile of this user (named by its state dir), or a foreign process (pid, comm).
//! Only the non-own holders make a [`Collision`], whose message names them and what to do.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::paths::Paths;

/// What belongs to the profile being changed: its running gateway and its socket unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Own {
    /// The service's main pid (its gateway holds the port it serves).
    pub pid: Option<u32>,
    /// Ports the manager listens on for this profile (its socket unit's `ListenStream=`).
    pub socket_ports: Vec<u16>,
}

impl Own {
    /// From a service manager's status of this profile's service.
    pub fn from_status(st: &crate::service::ServiceStatus) -> Own {
        Own {
            pid: st.pid,
            socket_ports: st
                .listen
                .iter()
                .filter_map(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
                .collect(),
        }
    }
}

/// Who holds a listening socket on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// This profile's own gateway or socket unit.
    Own {
        /// Process id.
        pid: i32,
        /// `comm`.
        command: String,
    },
    /// The gateway (or the manager holding the socket unit) of another profile of this user.
    OtherProfile {
        /// Process id.
        pid: i32,
        /// `comm`.
        command: String,
        /// `default profile`, `profile work`, …
        profile: String,
        /// Its state dir.
        state_dir: PathBuf,
        /// The global flag selecting it (`""`, ` --profile work`, ` --dev`).
        flag: String,
    },
    /// Any other process.
    Foreign {
        /// Process id.
        pid: i32,
        /// `comm`.
        command: String,
        /// Listening address.
        addr: SocketAddr,
    },
    /// The kernel lists a listener, but no process visible to us owns it (another user's).
    Hidden {
        /// Listening address.
        addr: SocketAddr,
    },
}

impl Holder {
    /// One line naming the holder.
    pub fn describe(&self) -> String {
        match self {
            Holder::Own { pid, command } => {
                format!("this profile's own gateway ({command}, pid {pid})")
            }
            Holder::OtherProfile {
                pid,
                command,
                profile,
                state_dir,
                ..
            } if is_manager(command) => format!(
                "the socket unit of the {profile} ({}; the manager {command}, pid {pid}, listens for it)",
                state_dir.display()
            ),
            Holder::OtherProfile {
                pid,
                command,
                profile,
                state_dir,
                ..
            } => format!(
                "the gateway of the {profile} ({}; {command}, pid {pid})",
                state_dir.display()
            ),
            Holder::Foreign { pid, command, addr } => {
                format!("pid {pid} ({command}), listening on {addr}")
            }
            Holder::Hidden { addr } => {
                format!("a process this user cannot see (another user's), listening on {addr}")
            }
        }
    }
}

/// The port is taken by something that is not this profile's own service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The port.
    pub port: u16,
    /// The holders that are not ours (never empty).
    pub holders: Vec<Holder>,
}

impl Collision {
    /// The refusal: what is taken, by whom, and what to do. `verb` names the refused action
    /// (`install the service there`), `flag` is this profile's global flag.
    pub fn message(&self, verb: &str, flag: &str) -> String {
        let mut s = self.summary(verb);
        for h in self.holder_lines() {
            s.push_str(&format!("\n  {h}"));
        }
        s.push_str("\nNothing was changed. Next:");
        for n in self.next_steps(flag) {
            s.push_str(&format!("\n  - {n}"));
        }
        s
    }

    /// `port P is already in use: refusing to VERB`.
    pub fn summary(&self, verb: &str) -> String {
        format!("port {} is already in use: refusing to {verb}", self.port)
    }

    /// `held by …`, one per holder.
    pub fn holder_lines(&self) -> Vec<String> {
        self.holders
            .iter()
            .map(|h| format!("held by {}", h.describe()))
            .collect()
    }

    /// What the operator can do, best first.
    pub fn next_steps(&self, flag: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(Holder::OtherProfile { flag: other, .. }) = self
            .holders
            .iter()
            .find(|h| matches!(h, Holder::OtherProfile { .. }))
        {
            out.push(format!(
                "stop that profile's gateway (`openclaw{other} gateway stop`) or move it (`openclaw{other} gateway install --port N`), or"
            ));
        }
        if self
            .holders
            .iter()
            .any(|h| matches!(h, Holder::Foreign { .. } | Holder::Hidden { .. }))
        {
            out.push("stop that process, or".into());
        }
        out.push(format!(
            "choose a free port: `openclaw{flag} gateway install --port N`."
        ));
        out
    }
}

/// Why a move of this profile's service onto a port is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// One line.
    pub summary: String,
    /// Who holds the port (or which profile is configured on it).
    pub details: Vec<String>,
    /// What to do.
    pub next: Vec<String>,
}

impl Blocked {
    /// The whole refusal on one line (a repair's result message).
    pub fn one_line(&self) -> String {
        format!("{}: {}", self.summary, self.details.join("; "))
    }
}

/// Who holds `port`, classified against `own` and the other profiles under `paths.home`.
pub fn holders(paths: &Paths, port: u16, own: &Own) -> Vec<Holder> {
    let procs = crate::gateway::listener::listeners_on_port(port);
    let mut out = Vec::new();
    let others = other_profiles_on(paths, port);
    let mine = if paths.dev {
        Some("dev".to_string())
    } else {
        paths.profile.clone()
    };
    for h in &procs {
        if out.iter().any(|o: &Holder| holder_pid(o) == Some(h.pid)) {
            continue;
        }
        let ours = own.pid.is_some_and(|p| p as i32 == h.pid)
            || (own.socket_ports.contains(&port) && is_manager(&h.command));
        if ours {
            out.push(Holder::Own {
                pid: h.pid,
                command: h.command.clone(),
            });
            continue;
        }
        // A manager's socket cannot be attributed from /proc: a profile configured on this
        // port is the likely owner. A gateway says its profile on its command line.
        let other = if is_manager(&h.command) {
            others.first()
        } else if is_openclaw(h.pid, &h.command) {
            match cmdline_profile(h.pid) {
                Some(p) if p == mine => None,
                Some(p) => others.iter().find(|(name, _)| *name == p),
                None => others.first(),
            }
        } else {
            None
        };
        match other {
            Some((profile, dir)) => out.push(Holder::OtherProfile {
                pid: h.pid,
                command: h.command.clone(),
                profile: match profile {
                    None => "default profile".into(),
                    Some(p) => format!("profile {p}"),
                },
                state_dir: dir.clone(),
                flag: match profile.as_deref() {
                    None => String::new(),
                    Some("dev") => " --dev".into(),
                    Some(p) => format!(" --profile {p}"),
                },
            }),
            None => out.push(Holder::Foreign {
                pid: h.pid,
                command: h.command.clone(),
                addr: h.addr,
            }),
        }
    }
    if procs.is_empty()
        && let Some(addrs) = crate::gateway::listener::kernel_listeners(port)
    {
        // Listed by the kernel, owned by nobody we can see: unless it is our socket unit
        // (a system manager's socket is not readable from here), it is someone else's.
        if !own.socket_ports.contains(&port) {
            out.extend(addrs.into_iter().map(|addr| Holder::Hidden { addr }));
        }
    }
    out
}

/// `Err` when something other than this profile's own service holds `port`.
pub fn check(paths: &Paths, port: u16, own: &Own) -> Result<(), Collision> {
    let holders: Vec<Holder> = holders(paths, port, own)
        .into_iter()
        .filter(|h| !matches!(h, Holder::Own { .. }))
        .collect();
    if holders.is_empty() {
        Ok(())
    } else {
        Err(Collision { port, holders })
    }
}

/// Why moving this profile's service onto `port` would collide: a holder that is not ours,
/// or another profile configured on it; `None` when the move is safe. Used by doctor: its
/// port repair must not act against a collision it reports.
pub fn move_blocked(paths: &Paths, port: u16, own: &Own, verb: &str) -> Option<Blocked> {
    let flag = crate::ops::profile_flag(paths);
    if let Err(c) = check(paths, port, own) {
        return Some(Blocked {
            summary: c.summary(verb),
            details: c.holder_lines(),
            next: c.next_steps(&flag),
        });
    }
    let configured = other_profiles_on(paths, port);
    if configured.is_empty() {
        return None;
    }
    Some(Blocked {
        summary: format!(
            "port {port} is also configured for another profile: refusing to {verb} (the two gateways would collide)"
        ),
        details: configured
            .iter()
            .map(|(p, dir)| {
                format!(
                    "configured for the {} ({})",
                    p.as_ref()
                        .map(|p| format!("profile {p}"))
                        .unwrap_or_else(|| "default profile".into()),
                    dir.display()
                )
            })
            .collect(),
        next: vec![format!(
            "give each profile its own gateway.port, or choose a free port: `openclaw{flag} gateway install --port N`."
        )],
    })
}

fn holder_pid(h: &Holder) -> Option<i32> {
    match h {
        Holder::Own { pid, .. }
        | Holder::OtherProfile { pid, .. }
        | Holder::Foreign { pid, .. } => Some(*pid),
        Holder::Hidden { .. } => None,
    }
}

/// A service manager (`systemd`, `launchd`) holding a socket for a socket-activated unit.
fn is_manager(command: &str) -> bool {
    command == "systemd" || command == "launchd"
}

fn is_openclaw(pid: i32, command: &str) -> bool {
    command.starts_with("openclaw")
        || argv(pid)
            .first()
            .and_then(|a0| {
                Path::new(a0)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .is_some_and(|f| f.starts_with("openclaw"))
}

fn argv(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The profile a gateway process was started for (`Some(None)`: the default profile).
fn cmdline_profile(pid: i32) -> Option<Option<String>> {
    let a = argv(pid);
    if a.is_empty() {
        return None;
    }
    if a.iter().any(|x| x == "--dev") {
        return Some(Some("dev".into()));
    }
    if let Some(i) = a.iter().position(|x| x == "--profile") {
        return a.get(i + 1).map(|p| Some(p.clone()));
    }
    if let Some(p) = a.iter().find_map(|x| x.strip_prefix("--profile=")) {
        return Some(Some(p.to_string()));
    }
    Some(None)
}

/// The other profiles under `paths.home` whose gateway uses `port` (configured, or derived).
fn other_profiles_on(paths: &Paths, port: u16) -> Vec<(Option<String>, PathBuf)> {
    crate::config::other_profiles(paths)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.port == port)
        .map(|o| (o.name, o.state_dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(home: &Path) -> Paths {
        let env: std::collections::HashMap<String, String> =
            [("HOME".to_string(), home.display().to_string())].into();
        Paths::resolve(None, false, &env).unwrap()
    }

    #[test]
    fn a_listener_nobody_visible_owns_is_refused_and_our_socket_unit_is_fine() {
        // listeners_on_port skips the calling process: hold the port from a child instead.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let home = tempfile::tempdir().unwrap();
        let p = paths(home.path());
        // Our own listener is invisible to the scan (it skips the caller); the kernel still
        // lists it, so it reads as held by someone we cannot attribute.
        let e = check(&p, port, &Own::default()).unwrap_err();
        assert_eq!(e.port, port);
        let m = e.message("install the service there", "");
        assert!(m.contains(&format!("port {port} is already in use")), "{m}");
        assert!(m.contains("--port N"), "{m}");
        assert!(m.contains("Nothing was changed"), "{m}");
        // Our socket unit on that port is fine.
        let own = Own {
            pid: None,
            socket_ports: vec![port],
        };
        assert!(check(&p, port, &own).is_ok());
        drop(l);
        assert!(
            check(&p, port, &Own::default()).is_ok(),
            "a free port passes"
        );
    }

    #[test]
    fn another_profile_is_named_with_its_flag() {
        let c = Collision {
            port: 20001,
            holders: vec![Holder::OtherProfile {
                pid: 42,
                command: "openclaw".into(),
                profile: "default profile".into(),
                state_dir: "/h/.openclaw".into(),
                flag: String::new(),
            }],
        };
        let m = c.message("move the service there", " --profile work");
        assert!(
            m.contains(
                "held by the gateway of the default profile (/h/.openclaw; openclaw, pid 42)"
            ),
            "{m}"
        );
        assert!(m.contains("`openclaw gateway stop`"), "{m}");
        assert!(
            m.contains("`openclaw --profile work gateway install --port N`"),
            "{m}"
        );
    }
}
