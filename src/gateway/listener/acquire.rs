//! Listener acquisition: where the gateway's listening sockets come from, decided in one place.
//!
//! Three sources, in this order:
//! 1. **activated**: the service manager passed listening sockets (systemd `LISTEN_FDS` with
//!    `FileDescriptorName=gateway`, or launchd's `Listeners`). They win: the manager owns the
//!    address, binding ourselves would collide with it. Listeners a previous process left in
//!    the fd store are then removed from it.
//! 2. **fd store**: a previous process of this service bound the port itself and kept the
//!    sockets in systemd's fd store (`listen-*`, restart handover). Taken back when they are
//!    exactly the addresses the config asks for, so no connect is refused across a restart.
//! 3. **bound**: otherwise the gateway binds (`--force` first frees the port) and, when the
//!    fd store is configured, keeps the new sockets there for the next restart.
//!
//! It takes two steps because the first must run before any thread exists (it unsets the
//! `LISTEN_*` variables): [`take_inherited`] at the very start of `run_daemon`, then
//! [`acquire`] once the config says which port and bind it wants. The protocol parsing
//! (`LISTEN_FDS`/`LISTEN_PID`/`LISTEN_FDNAMES`, fd names) lives with the service manager
//! adapters ([`crate::service::systemd::activation`], [`crate::service::systemd::fdstore`],
//! [`crate::service::launchd::activation`]); the decisions are here.
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::time::Duration;

use super::{Bind, ListenError, bind_all, force_free_port};
use crate::config::paths::{Env, ProcessEnv};
use crate::error::Result;
use crate::service::systemd::activation::{self, FD_NAME, PassedFd};
use crate::service::systemd::fdstore::{self, Stored};
use crate::service::systemd::notify::Notifier;

/// Listeners and fd-store entries inherited from a service manager, with the manager's fd
/// names.
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    /// (fd name, listener) pairs from socket activation; already non-blocking.
    pub(crate) listeners: Vec<(String, TcpListener)>,
    /// Listeners the gateway put into the fd store itself (`listen-*`, no `.socket` unit).
    pub(crate) stored_listeners: Vec<(String, TcpListener)>,
    /// Other fd-store entries (connections, the handover state, names we do not know), for
    /// [`crate::gateway::handover::Adopted::from_stored`].
    pub(crate) stored: Vec<(String, OwnedFd)>,
    /// `systemd`, `launchd` or `fdstore` (only fd-store entries), for logs and status.
    pub(crate) source: &'static str,
    /// Things worth a log line once logging is up (fds skipped and why, env left in place).
    pub(crate) notes: Vec<String>,
}

/// Takes what the service manager passed, if anything. Call before starting threads (it
/// unsets the `LISTEN_*` variables). `Ok(None)` means "nothing inherited: bind yourself".
/// When the manager passed fds but none is a usable TCP listener this is an error (binding
/// ourselves would collide with the manager's sockets), which the caller reports as a
/// startup refusal.
///
/// One API over both managers: systemd's `LISTEN_FDS` first, then launchd's `Listeners`
/// sockets (always "none" off macOS). A launchd error is not fatal: it comes back as a note
/// with no listeners, and the gateway binds itself.
pub(crate) fn take_inherited() -> Result<Option<Inherited>> {
    if let Some(inh) = take_passed(&ProcessEnv, std::process::id())? {
        return Ok(Some(inh));
    }
    match crate::service::launchd::activation::take_listeners() {
        Ok(Some(ls)) if !ls.is_empty() => Ok(Some(Inherited {
            listeners: ls
                .into_iter()
                .map(|l| ("Listeners".to_string(), l))
                .collect(),
            source: "launchd",
            notes: Vec::new(),
            ..Inherited::default()
        })),
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(Inherited {
            source: "launchd",
            notes: vec![format!(
                "launchd socket activation failed ({e}); binding the port directly"
            )],
            ..Inherited::default()
        })),
    }
}

/// What a passed fd is for, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A socket-activation listener (`gateway`, unnamed, `<unit>.socket`).
    Activation,
    /// A listener a previous process kept in the fd store (`listen-*`).
    StoredListener,
    /// Any other fd-store entry (connections, handover state, unknown names).
    Stored,
}

/// Sorts a passed fd by its name (pure).
pub(crate) fn kind_of(name: &str) -> FdKind {
    if activation::is_listener_name(name) {
        FdKind::Activation
    } else if fdstore::classify(name) == Stored::Listener {
        FdKind::StoredListener
    } else {
        FdKind::Stored
    }
}

/// What the passed fds amount to, from how many were meant as activation listeners and how
/// many of those were adopted (pure). `Ok(source)` names the source for logs.
pub(crate) fn passed_source(activation_fds: usize, adopted: usize) -> Option<&'static str> {
    match (activation_fds, adopted) {
        // Only fd-store entries: no socket unit (the gateway binds or takes its stored ones).
        (0, _) => Some("fdstore"),
        // The manager meant to pass listeners and none is usable: refuse.
        (_, 0) => None,
        _ => Some("systemd"),
    }
}

/// systemd's `LISTEN_FDS`: parses the protocol variables for `pid`, unsets them, and adopts
/// each fd according to its name.
fn take_passed(env: &dyn Env, pid: u32) -> Result<Option<Inherited>> {
    let parsed = activation::parse(env, pid);
    let mut notes = Vec::new();
    // Unset first, whatever the outcome, so no child ever sees them.
    if env.var("LISTEN_FDS").is_some() && !activation::unset_vars() {
        notes.push(
            "socket activation: threads already running, LISTEN_* left in the environment".into(),
        );
    }
    let Some(fds) = parsed? else { return Ok(None) };
    if fds.is_empty() {
        return Ok(None);
    }
    let mut listeners = Vec::new();
    let mut stored_listeners = Vec::new();
    let mut stored = Vec::new();
    let mut activation_fds = 0;
    for PassedFd { fd, name } in fds {
        match kind_of(&name) {
            // fd-store entries (docs/service-managers.md A3): ours by name, the rest is removed
            // from the store by the handover code.
            FdKind::StoredListener => match activation::adopt(fd) {
                Ok(l) => stored_listeners.push((name, l)),
                Err(why) => notes.push(format!("fd store: fd {fd} ({name}) skipped: {why}")),
            },
            FdKind::Stored => match activation::claim(fd) {
                Ok(o) => stored.push((name, o)),
                Err(why) => notes.push(format!("fd store: fd {fd} ({name}) skipped: {why}")),
            },
            FdKind::Activation => {
                activation_fds += 1;
                match activation::adopt(fd) {
                    Ok(l) => listeners.push((name, l)),
                    Err(why) => notes.push(format!(
                        "socket activation: fd {fd} ({name}) skipped: {why}"
                    )),
                }
            }
        }
    }
    let Some(source) = passed_source(activation_fds, listeners.len()) else {
        return Err(ListenError::ActivationUnusable {
            name: FD_NAME,
            notes: notes.join("; "),
        }
        .into());
    };
    Ok(Some(Inherited {
        listeners,
        stored_listeners,
        stored,
        source,
        notes,
    }))
}

/// Where the listening sockets came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Passed by the service manager (`systemd` or `launchd`): the manager owns the address,
    /// so a new port or bind applies only after its socket definition changes.
    Activated(&'static str),
    /// Taken back from systemd's fd store (a previous process of this service bound them).
    FdStore,
    /// Bound by this process.
    Bound,
}

impl Source {
    /// The service manager owns the sockets.
    pub(crate) fn is_activated(self) -> bool {
        matches!(self, Source::Activated(_))
    }
}

/// The listening sockets of the gateway (the master copies: every generation serves on
/// duplicates, so the sockets stay open across in-process restarts) and their source.
#[derive(Debug)]
pub(crate) struct Acquired {
    /// Non-blocking listeners, at least one.
    pub(crate) listeners: Vec<TcpListener>,
    /// Where they came from.
    pub(crate) source: Source,
}

/// Which source [`acquire`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The manager's activation listeners.
    Activated,
    /// The listeners kept in the fd store.
    FdStore,
    /// Bind ourselves.
    Bind,
}

/// Which source [`acquire`] takes (pure): activation listeners win; fd-store listeners are
/// taken when every one is an address the config asks for (`want`, same `port` unless 0);
/// otherwise bind. A stored listener whose address is unknown (`None`) never matches.
pub(crate) fn decide(
    activated: usize,
    stored: &[Option<SocketAddr>],
    want: &[IpAddr],
    port: u16,
) -> Pick {
    if activated > 0 {
        return Pick::Activated;
    }
    let matches = !stored.is_empty()
        && stored
            .iter()
            .all(|a| a.is_some_and(|a| want.contains(&a.ip()) && (port == 0 || a.port() == port)));
    if matches { Pick::FdStore } else { Pick::Bind }
}

/// Acquires the listening sockets for `bind`/`port` (see the module doc for the order).
/// `force` frees the port before binding. Stored listeners not taken are removed from the fd
/// store; self-bound ones are put there when the store is configured.
pub(crate) fn acquire(
    inherited: Option<Inherited>,
    bind: &Bind,
    port: u16,
    force: bool,
    notifier: &Notifier,
) -> std::result::Result<Acquired, ListenError> {
    let (activated, stored_listeners, manager) = match inherited {
        Some(inh) => (inh.listeners, inh.stored_listeners, inh.source),
        None => (Vec::new(), Vec::new(), "none"),
    };
    let stored_addrs: Vec<Option<SocketAddr>> = stored_listeners
        .iter()
        .map(|(_, l)| l.local_addr().ok())
        .collect();
    // Resolving a custom host is only needed (and only done) to compare stored listeners.
    let want = if activated.is_empty() && !stored_addrs.is_empty() {
        bind.addrs().map_err(ListenError::Addrs)?
    } else {
        Vec::new()
    };
    match decide(activated.len(), &stored_addrs, &want, port) {
        Pick::Activated => {
            tracing::info!(
                source = manager,
                count = activated.len(),
                "using inherited listening sockets"
            );
            forget_stored_listeners(stored_listeners, notifier);
            Ok(Acquired {
                listeners: activated.into_iter().map(|(_, l)| l).collect(),
                source: Source::Activated(manager),
            })
        }
        Pick::FdStore => {
            tracing::info!(
                count = stored_listeners.len(),
                "using the listening sockets kept in the fd store"
            );
            Ok(Acquired {
                listeners: stored_listeners.into_iter().map(|(_, l)| l).collect(),
                source: Source::FdStore,
            })
        }
        Pick::Bind => {
            forget_stored_listeners(stored_listeners, notifier);
            if force {
                let pids = force_free_port(port)?;
                if !pids.is_empty() {
                    tracing::info!(?pids, "--force: port {} freed", port);
                }
            }
            let ls = bind_all(bind, port)?;
            if fdstore::StoreConfig::from_env(&ProcessEnv).is_some() {
                store_listeners(&ls, notifier);
            }
            Ok(Acquired {
                listeners: ls,
                source: Source::Bound,
            })
        }
    }
}

/// Drops stored listeners we do not use (socket activation took over, or the address
/// changed) and takes them out of the store, waiting until the manager has closed its copies
/// (so the address can be bound again).
fn forget_stored_listeners(stored: Vec<(String, TcpListener)>, notifier: &Notifier) {
    if stored.is_empty() {
        return;
    }
    let mut names: Vec<String> = stored.iter().map(|(n, _)| n.clone()).collect();
    names.dedup();
    drop(stored);
    for n in &names {
        if let Err(e) = notifier.remove_stored(n) {
            tracing::warn!("fd store: removing {n} failed: {e}");
        }
    }
    if let Err(e) = notifier.barrier(Duration::from_secs(5)) {
        tracing::warn!("fd store: removing stale listeners was not confirmed: {e}");
    }
    tracing::info!(?names, "fd store: stale listening sockets removed");
}

/// Keeps self-bound listeners in the fd store, so a restart never refuses a connect.
fn store_listeners(ls: &[TcpListener], notifier: &Notifier) {
    use std::os::fd::AsFd;
    for l in ls {
        let Ok(addr) = l.local_addr() else { continue };
        let name = fdstore::listener_name(addr);
        match notifier.store_fd(&name, l.as_fd()) {
            Ok(()) => tracing::debug!(%addr, "listening socket kept in the fd store as {name}"),
            Err(e) => tracing::warn!("fd store: storing listener {addr} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    fn at(ip: IpAddr, port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip, port))
    }

    #[test]
    fn fd_names_sort_into_activation_stored_listener_and_other() {
        assert_eq!(kind_of("gateway"), FdKind::Activation);
        assert_eq!(kind_of("unknown"), FdKind::Activation);
        assert_eq!(kind_of("my-gw.socket"), FdKind::Activation);
        assert_eq!(kind_of("listen-127.0.0.1-18789"), FdKind::StoredListener);
        assert_eq!(kind_of("ws-abc"), FdKind::Stored);
        assert_eq!(kind_of("ws-state"), FdKind::Stored);
        assert_eq!(kind_of("stored"), FdKind::Stored);
        assert_eq!(kind_of("connection"), FdKind::Stored);
    }

    #[test]
    fn passed_fds_without_a_usable_activation_listener_are_refused() {
        // Only fd-store entries: not socket-activated, nothing to refuse.
        assert_eq!(passed_source(0, 0), Some("fdstore"));
        // A socket unit passed listeners and one was adopted.
        assert_eq!(passed_source(2, 1), Some("systemd"));
        // A socket unit passed fds meant as listeners, none usable: binding would collide.
        assert_eq!(passed_source(1, 0), None);
    }

    #[test]
    fn unusable_activation_is_a_config_refusal_naming_the_fd_name() {
        let e = crate::error::Error::from(ListenError::ActivationUnusable {
            name: FD_NAME,
            notes: "socket activation: fd 3 (gateway) skipped: not a socket".into(),
        });
        assert_eq!(e.exit(), crate::error::Exit::Config);
        let text = e.to_string();
        assert!(
            text.starts_with("socket activation: the service manager passed file descriptors but none is a listening TCP socket named \"gateway\" (socket activation: fd 3"),
            "{text}"
        );
        assert!(text.ends_with("or reinstall with `openclaw gateway install --force`."));
    }

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
    fn listen_fds_for_another_process_or_none_at_all_is_not_activation() {
        // (No fd is touched: nothing is adopted unless LISTEN_PID is ours and LISTEN_FDS > 0.)
        assert!(take_passed(&E(vec![]), 42).unwrap().is_none());
        let theirs = E(vec![("LISTEN_FDS", "1"), ("LISTEN_PID", "7")]);
        assert!(take_passed(&theirs, 42).unwrap().is_none());
        let zero = E(vec![("LISTEN_FDS", "0"), ("LISTEN_PID", "42")]);
        assert!(take_passed(&zero, 42).unwrap().is_none());
        // A malformed count is an error naming the variable, not a silent bind.
        let bad = E(vec![("LISTEN_FDS", "x"), ("LISTEN_PID", "42")]);
        let e = take_passed(&bad, 42).unwrap_err();
        assert!(e.to_string().contains("LISTEN_FDS=\"x\""), "{e}");
    }

    #[test]
    fn activated_listeners_win_over_stored_ones() {
        let stored = [at(V4, 18789)];
        assert_eq!(decide(1, &stored, &[V4, V6], 18789), Pick::Activated);
        assert_eq!(decide(1, &[], &[], 18789), Pick::Activated);
    }

    #[test]
    fn stored_listeners_are_taken_when_they_are_the_wanted_addresses() {
        let want = [V4, V6];
        let both = [at(V4, 18789), at(V6, 18789)];
        assert_eq!(decide(0, &both, &want, 18789), Pick::FdStore);
        // Port 0 (pick one): any stored port of a wanted address will do.
        assert_eq!(decide(0, &both, &want, 0), Pick::FdStore);
        // One of the pair is enough when ::1 was unavailable at bind time.
        assert_eq!(decide(0, &both[..1], &want, 18789), Pick::FdStore);
    }

    #[test]
    fn stored_listeners_on_another_address_or_port_mean_bind() {
        let want = [V4, V6];
        assert_eq!(decide(0, &[at(V4, 18790)], &want, 18789), Pick::Bind);
        let lan = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        assert_eq!(decide(0, &[at(V4, 18789)], &lan, 18789), Pick::Bind);
        // Every stored listener must match, and an unreadable address never does.
        assert_eq!(
            decide(0, &[at(V4, 18789), at(V4, 1)], &want, 18789),
            Pick::Bind
        );
        assert_eq!(decide(0, &[None], &want, 18789), Pick::Bind);
    }

    #[test]
    fn nothing_inherited_means_bind() {
        assert_eq!(decide(0, &[], &[V4, V6], 18789), Pick::Bind);
    }

    #[test]
    fn acquire_without_inherited_sockets_binds_and_says_so() {
        let notifier = Notifier::default();
        let a = acquire(None, &Bind::Custom("127.0.0.1".into()), 0, false, &notifier).unwrap();
        assert_eq!(a.source, Source::Bound);
        assert_eq!(a.listeners.len(), 1);
        assert!(a.listeners[0].local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn acquire_prefers_activated_and_takes_back_matching_stored_listeners() {
        let notifier = Notifier::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inh = Inherited {
            listeners: vec![("gateway".into(), l)],
            source: "systemd",
            ..Inherited::default()
        };
        let a = acquire(Some(inh), &Bind::Loopback, port + 1, false, &notifier).unwrap();
        assert_eq!(a.source, Source::Activated("systemd"));
        assert_eq!(a.listeners[0].local_addr().unwrap().port(), port);

        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inh = Inherited {
            stored_listeners: vec![("listen-127.0.0.1-x".into(), l)],
            source: "fdstore",
            ..Inherited::default()
        };
        let a = acquire(Some(inh), &Bind::Loopback, port, false, &notifier).unwrap();
        assert_eq!(a.source, Source::FdStore);
        assert_eq!(a.listeners[0].local_addr().unwrap().port(), port);
    }
}
