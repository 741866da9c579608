//! Admission control: which accepted sockets the gateway serves, and an explicit refusal for
//! the rest (issue 20).
//!
//! Every accepted socket holds a [`Slot`]. It starts *unauthenticated* and counts against a
//! global unauthenticated budget and its peer's budget ([`peer_key`]: IPv4 address, IPv6 /64),
//! so one peer holding sockets mid-header or pre-`connect` cannot use up the gateway. Once the
//! socket authenticates (WS `connect` succeeds, or an HTTP request passes bearer auth) the slot
//! moves to the authenticated budget and frees its unauthenticated ones. Probes such as
//! `/healthz` are unauthenticated by design and stay in the unauthenticated budget: they are
//! short, and keep-alive ones expire with the header-read deadline.
//!
//! The last [`Limits::reserve`] unauthenticated slots are kept for loopback peers that hold
//! (almost) no socket, i.e. requests that cannot come from the flooder: the CLI, the watchdog
//! self-probe and the local UI still get through while peers fill the budget.
//!
//! Over budget the socket is not left in the kernel backlog to time out: it gets a fixed
//! `503 Service Unavailable` with `Retry-After` before a byte of it is read, for plain HTTP and
//! WebSocket upgrades alike (a WS client sees a failed handshake with status 503, which
//! tungstenite and browsers report as such; accepting the upgrade only to close it 1013 would
//! cost a full head parse per refusal). Refusals are bounded too: at most
//! [`MAX_CONCURRENT_REFUSALS`] are in flight, each for at most [`REFUSAL_LINGER`]; beyond that
//! the socket is simply closed.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::peer::peer_key;

/// Budgets (from [`super::state::Settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Unauthenticated sockets in total (`OPENCLAW_MAX_UNAUTH_CONNECTIONS`, default 512).
    pub unauth: usize,
    /// Unauthenticated sockets per peer (`OPENCLAW_MAX_UNAUTH_PER_PEER`, default 128). Not
    /// lower: every local client is one peer (127.0.0.1), and after a plain restart they all
    /// reconnect at once (the zero-downtime suite's 64 clients connect in one burst); a
    /// socket holds its unauthenticated slot only until `connect`, so a burst drains quickly.
    pub per_peer: usize,
    /// Authenticated sockets (`OPENCLAW_MAX_CONNECTIONS`, default 1024).
    pub auth: usize,
    /// Unauthenticated slots only loopback peers holding fewer than [`RESERVE_PEER_MAX`]
    /// sockets may take (default 8, at most a quarter of `unauth`).
    pub reserve: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            unauth: 512,
            per_peer: 128,
            auth: 1024,
            reserve: 8,
        }
    }
}

/// A loopback peer holding fewer unauthenticated sockets than this may use the reserve.
pub(crate) const RESERVE_PEER_MAX: usize = 2;

/// Refusals (503 being written, the peer's request drained) in flight at once.
pub(crate) const MAX_CONCURRENT_REFUSALS: usize = 64;

/// How long one refusal may take (write the 503, drain what the peer sent, close).
pub(crate) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The refusal, written before reading the request (so it is the same for every request).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 57\r\nConnection: close\r\nCache-Control: no-store\r\n\r\nGateway at its connection limit; retry after 1 second(s)\n";

#[derive(Debug, Default)]
struct Counts {
    unauth: usize,
    auth: usize,
    peers: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Shared {
    limits: Limits,
    counts: Mutex<Counts>,
    refusals: Arc<Semaphore>,
}

/// The gateway's admission budgets (cheap to clone, one per listener).
#[derive(Debug, Clone)]
pub struct Admission(Arc<Shared>);

/// One admitted socket's place in the budgets; released when the last handle drops (the
/// stream holds one, its HTTP requests another so they can authenticate it).
#[derive(Debug, Clone)]
pub struct Slot(Arc<SlotInner>);

#[derive(Debug)]
struct SlotInner {
    admission: Admission,
    key: IpAddr,
    authenticated: AtomicBool,
}

impl Admission {
    /// Budgets with these limits.
    pub fn new(limits: Limits) -> Admission {
        let reserve = limits.reserve.min(limits.unauth / 4);
        Admission(Arc::new(Shared {
            limits: Limits { reserve, ..limits },
            counts: Mutex::new(Counts::default()),
            refusals: Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS)),
        }))
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a socket from `ip`, or `None` when it is over budget.
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let key = peer_key(ip);
        let l = self.0.limits;
        let mut c = self.counts();
        let held = c.peers.get(&key).copied().unwrap_or(0);
        if held >= l.per_peer || c.unauth >= l.unauth {
            return None;
        }
        // The key of ::1 is not loopback (see peer.rs): test the address itself.
        if c.unauth >= l.unauth - l.reserve && !(ip.is_loopback() && held < RESERVE_PEER_MAX) {
            return None;
        }
        c.unauth += 1;
        *c.peers.entry(key).or_insert(0) += 1;
        drop(c);
        Some(Slot(Arc::new(SlotInner {
            admission: self.clone(),
            key,
            authenticated: AtomicBool::new(false),
        })))
    }

    /// (unauthenticated, authenticated) sockets held now.
    pub fn held(&self) -> (usize, usize) {
        let c = self.counts();
        (c.unauth, c.auth)
    }

    /// Answers a socket over budget with the 503 and closes it, on a task of its own when a
    /// refusal slot is free; otherwise closes it at once.
    pub(crate) fn refuse(&self, stream: TcpStream) {
        let Ok(permit) = self.0.refusals.clone().try_acquire_owned() else {
            return; // dropped: closed without an answer
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_LINGER, refuse_on(stream)).await;
        });
    }
}

async fn refuse_on(mut stream: TcpStream) {
    if stream.write_all(REFUSAL).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Read (and discard) what the peer sent until it closes: closing with unread bytes would
    // reset the connection and could discard the 503 before the client reads it.
    let mut buf = [0u8; 1024];
    let mut left = 64 * 1024usize;
    while left > 0 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Moves the request's connection to the authenticated budget once its credentials passed;
/// `Some(503 + Retry-After)` (the response to send) when that budget is full. Requests without a slot (served by
/// something other than our listener) pass.
pub(crate) fn authenticate_request(
    ext: &axum::http::Extensions,
) -> Option<axum::response::Response> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match ext.get::<Slot>() {
        Some(slot) if !slot.authenticate() => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::RETRY_AFTER, "1"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "Gateway at its authenticated connection limit (OPENCLAW_MAX_CONNECTIONS); retry after 1 second(s)\n",
        )
            .into_response()),
        _ => None,
    }
}

impl Slot {
    /// Moves the socket to the authenticated budget (idempotent). False when that budget is
    /// full: the caller refuses the request (the socket keeps its unauthenticated slot).
    pub fn authenticate(&self) -> bool {
        let s = &self.0;
        if s.authenticated.load(Ordering::Acquire) {
            return true;
        }
        let l = s.admission.0.limits;
        let mut c = s.admission.counts();
        if s.authenticated.load(Ordering::Acquire) {
            return true;
        }
        if c.auth >= l.auth {
            return false;
        }
        c.auth += 1;
        c.unauth -= 1;
        release_peer(&mut c, s.key);
        s.authenticated.store(true, Ordering::Release);
        true
    }

    /// Whether the socket has authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Acquire)
    }
}

fn release_peer(c: &mut Counts, key: IpAddr) {
    if let Some(n) = c.peers.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            c.peers.remove(&key);
        }
    }
}

impl Drop for SlotInner {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        if self.authenticated.load(Ordering::Acquire) {
            c.auth -= 1;
        } else {
            c.unauth -= 1;
            release_peer(&mut c, self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(unauth: usize, per_peer: usize, auth: usize, reserve: usize) -> Limits {
        Limits {
            unauth,
            per_peer,
            auth,
            reserve,
        }
    }

    #[test]
    fn a_peer_is_capped_but_others_still_get_in() {
        let a = Admission::new(limits(100, 3, 10, 0));
        let held: Vec<Slot> = (0..3).map(|_| a.admit(ip("192.0.2.1")).unwrap()).collect();
        assert!(a.admit(ip("192.0.2.1")).is_none(), "4th socket of one peer");
        // The same peer over a mapped address is the same peer.
        assert!(a.admit(ip("::ffff:192.0.2.1")).is_none());
        assert!(a.admit(ip("192.0.2.2")).is_some());
        drop(held);
        assert_eq!(a.held(), (0, 0), "every slot released");
        assert!(a.admit(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn ipv6_peers_are_capped_by_their_slash_64() {
        let a = Admission::new(limits(100, 2, 10, 0));
        let _s1 = a.admit(ip("2001:db8:1:2::1")).unwrap();
        let _s2 = a.admit(ip("2001:db8:1:2::2")).unwrap();
        assert!(a.admit(ip("2001:db8:1:2:ffff::3")).is_none());
        assert!(a.admit(ip("2001:db8:1:3::1")).is_some());
    }

    #[test]
    fn the_reserve_is_for_loopback_peers_holding_nothing() {
        let a = Admission::new(limits(8, 8, 10, 2));
        let _flood: Vec<Slot> = (0..6).map(|_| a.admit(ip("127.0.0.2")).unwrap()).collect();
        // 6 of 8 held: the last 2 are the reserve.
        assert!(a.admit(ip("127.0.0.2")).is_none(), "the flooder");
        assert!(a.admit(ip("192.0.2.9")).is_none(), "not loopback");
        let cli = a
            .admit(ip("127.0.0.1"))
            .expect("an operator's first socket");
        let probe = a.admit(ip("::1")).expect("IPv6 loopback");
        assert!(a.admit(ip("127.0.0.3")).is_none(), "unauth budget full");
        drop((cli, probe));
        assert_eq!(a.held(), (6, 0));
    }

    #[test]
    fn authenticating_moves_the_slot_between_budgets() {
        let a = Admission::new(limits(4, 1, 1, 0));
        let s = a.admit(ip("192.0.2.1")).unwrap();
        assert!(a.admit(ip("192.0.2.1")).is_none());
        let req_handle = s.clone();
        assert!(req_handle.authenticate());
        assert!(s.authenticate(), "idempotent");
        assert_eq!(a.held(), (0, 1));
        // The peer's unauthenticated budget is free again; the authenticated one is full.
        let t = a.admit(ip("192.0.2.1")).expect("peer budget released");
        assert!(!t.authenticate(), "authenticated budget full");
        assert!(!t.is_authenticated());
        drop((s, req_handle));
        assert_eq!(a.held(), (1, 0));
        assert!(t.authenticate());
        drop(t);
        assert_eq!(a.held(), (0, 0));
    }
}
