//! The per-connection outbound queue: frames queued by any task (responses, broadcasts) and
//! drained by the socket's writer, with a byte cap (slow-consumer policy), ordered and
//! queue-jumping closes, and the last-inbound clock the idle policy reads.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use serde_json::Value;
use tokio::sync::mpsc::error::TryRecvError;

/// Milliseconds on a monotonic clock (since the first call in this process).
fn mono_ms() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What goes to a socket's writer.
#[derive(Debug)]
pub enum OutMsg {
    /// A text frame.
    Text(String),
    /// A close frame, after which the writer stops.
    Close(u16, String),
}

/// The sending side of a socket: a queue with byte accounting, so the memory it can hold is
/// bounded by `cap` bytes (`maxBufferedBytes`) rather than a message count.
///
/// Closes come in two kinds: [`Outbound::close`] is ordered (queued after pending frames, e.g.
/// an error response then its close), [`Outbound::abort`] jumps the queue (slow consumer: the
/// peer is not reading, so waiting behind its backlog would never end).
///
/// One allocation per socket: a plain queue and a waker for the session task that writes it
/// ([`OutboundRx`]); idle sockets are the common case, so no channel blocks are preallocated.
#[derive(Debug, Clone)]
pub struct Outbound {
    shared: Arc<OutShared>,
}

#[derive(Debug)]
struct OutShared {
    /// Pending frames. `closed` is only set while this lock is held, so nothing is queued after
    /// the close or after the writer went away.
    queue: Mutex<VecDeque<OutMsg>>,
    queued: AtomicUsize,
    closed: AtomicBool,
    urgent_close: Mutex<Option<(u16, String)>>,
    waker: AtomicWaker,
    cap: usize,
    /// When the last inbound frame (any kind) arrived, in [`mono_ms`].
    last_inbound: AtomicU64,
    /// A Ping was asked for and not written yet.
    ping: AtomicBool,
}

/// The writer's side of an [`Outbound`] queue (owned by the socket's session task).
#[derive(Debug)]
pub struct OutboundRx {
    shared: Arc<OutShared>,
}

/// Result of queueing an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued.
    Queued,
    /// Dropped (slow consumer, `dropIfSlow`).
    Dropped,
    /// The socket is closing (slow consumer without `dropIfSlow`, or already closed).
    Closed,
}

impl Outbound {
    /// A queue and its receiver (for the socket's writer).
    pub fn new(cap: usize) -> (Outbound, OutboundRx) {
        let shared = Arc::new(OutShared {
            queue: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            urgent_close: Mutex::new(None),
            waker: AtomicWaker::new(),
            cap,
            last_inbound: AtomicU64::new(mono_ms()),
            ping: AtomicBool::new(false),
        });
        (
            Outbound {
                shared: shared.clone(),
            },
            OutboundRx { shared },
        )
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Called by the writer after a text frame went out.
    pub fn mark_written(&self, n: usize) {
        self.shared.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// True once a close was queued.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// Queues a response or direct frame. Responses are never dropped, but a peer that lets
    /// more than `cap` bytes pile up is closed (1008 `slow consumer`) so memory stays bounded.
    pub fn send_value(&self, v: &Value) -> Sent {
        self.send_text(v.to_string())
    }

    /// Queues a text frame (see [`Outbound::send_value`]).
    pub fn send_text(&self, s: String) -> Sent {
        if self.is_closed() {
            return Sent::Closed;
        }
        if self.queued_bytes() > self.shared.cap {
            tracing::warn!(
                queued_bytes = self.queued_bytes(),
                cap = self.shared.cap,
                "slow consumer: a client is not reading its socket; closing it 1008 ahead of its backlog"
            );
            self.abort(1008, "slow consumer");
            return Sent::Closed;
        }
        let n = s.len();
        {
            let mut q = self.shared.lock_queue();
            if self.is_closed() {
                return Sent::Closed;
            }
            self.shared.queued.fetch_add(n, Ordering::Relaxed);
            q.push_back(OutMsg::Text(s));
        }
        self.shared.waker.wake();
        Sent::Queued
    }

    /// Queues an event frame. As upstream, the check is on what is already buffered: over
    /// the cap the event is dropped (`drop_if_slow`) or the socket is closed 1008
    /// `slow consumer`.
    pub fn send_event(&self, s: String, drop_if_slow: bool) -> Sent {
        if self.is_closed() {
            return Sent::Closed;
        }
        if self.queued_bytes() > self.shared.cap && drop_if_slow {
            return Sent::Dropped;
        }
        self.send_text(s)
    }

    /// Queues a close frame after the pending frames (once); later sends are refused.
    pub fn close(&self, code: u16, reason: &str) {
        {
            let mut q = self.shared.lock_queue();
            if self.shared.closed.swap(true, Ordering::Relaxed) {
                return;
            }
            q.push_back(OutMsg::Close(code, reason.to_string()));
        }
        self.shared.waker.wake();
    }

    /// Refuses further frames without queueing a close: the connection is being handed to the
    /// next process (see [`super::handover`]), which continues the stream.
    pub fn seal(&self) {
        // Under the queue lock, like every other change of `closed`.
        let _q = self.shared.lock_queue();
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    /// Closes ahead of the queue (slow consumer). Wins over an ordered close still queued.
    pub fn abort(&self, code: u16, reason: &str) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let mut u = self
            .shared
            .urgent_close
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if u.is_none() {
            *u = Some((code, reason.to_string()));
        }
        drop(u);
        self.shared.waker.wake();
    }

    /// How long since the socket's last inbound frame.
    pub(crate) fn silent_for(&self) -> Duration {
        let last = self.shared.last_inbound.load(Ordering::Relaxed);
        Duration::from_millis(mono_ms().saturating_sub(last))
    }

    /// Asks the writer to send a WebSocket Ping (ahead of queued frames).
    pub(crate) fn ping(&self) {
        if !self.shared.ping.swap(true, Ordering::Relaxed) {
            self.shared.waker.wake();
        }
    }

    /// The close [`Outbound::abort`] asked for, if it was called.
    pub fn aborted(&self) -> Option<(u16, String)> {
        self.shared
            .urgent_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl OutShared {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<OutMsg>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl OutboundRx {
    /// Wakes `waker` when a frame is queued or on [`Outbound::abort`] (call before checking).
    pub fn register(&self, waker: &std::task::Waker) {
        self.shared.waker.register(waker);
    }

    /// Forgets the registered waker: the writer is running and will look at the queue before
    /// it sleeps again (it registers anew first), so frames queued meanwhile need no wake-up.
    pub fn unregister(&self) {
        drop(self.shared.waker.take());
    }

    /// True when a frame (or the ordered close) is waiting.
    pub fn has_pending(&self) -> bool {
        !self.shared.lock_queue().is_empty()
    }

    /// The next queued frame; `Disconnected` when the queue is empty and every [`Outbound`] is
    /// gone (the same contract as the mpsc receiver this replaced).
    pub fn try_recv(&mut self) -> Result<OutMsg, TryRecvError> {
        match self.shared.lock_queue().pop_front() {
            Some(m) => Ok(m),
            None if Arc::strong_count(&self.shared) == 1 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The close [`Outbound::abort`] asked for, if it was called (it jumps the queue).
    pub fn aborted(&self) -> Option<(u16, String)> {
        self.shared
            .urgent_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Bytes of text frames taken from the queue have been written out.
    pub fn mark_written(&self, n: usize) {
        self.shared.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// An inbound frame arrived: the peer is alive.
    pub(crate) fn heard(&self) {
        self.shared.last_inbound.store(mono_ms(), Ordering::Relaxed);
    }

    /// True (once) when a Ping was asked for.
    pub(crate) fn take_ping(&self) -> bool {
        self.shared.ping.load(Ordering::Relaxed) && self.shared.ping.swap(false, Ordering::Relaxed)
    }
}

impl Drop for OutboundRx {
    /// The writer is gone: refuse further frames and free what is still queued.
    fn drop(&mut self) {
        let mut q = self.shared.lock_queue();
        self.shared.closed.store(true, Ordering::Relaxed);
        // A backlog (a slow consumer's) is freed as many small frames: worth a trim too.
        crate::sys::unix::note_freed(self.shared.queued.load(Ordering::Relaxed));
        q.clear();
        q.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outbound_caps_bytes() {
        let (o, mut rx) = Outbound::new(10);
        assert_eq!(o.send_event("123456".into(), false), Sent::Queued);
        assert_eq!(o.send_event("12345".into(), true), Sent::Queued);
        assert_eq!(o.queued_bytes(), 11);
        assert_eq!(o.send_event("x".into(), true), Sent::Dropped);
        o.mark_written(6);
        assert_eq!(o.send_event("x".into(), true), Sent::Queued);
        o.mark_written(6);
        assert_eq!(
            o.send_value(&Value::String("0123456789".into())),
            Sent::Queued
        );
        assert_eq!(o.send_event("y".into(), false), Sent::Closed);
        assert!(o.is_closed());
        assert!(matches!(rx.try_recv(), Ok(OutMsg::Text(t)) if t == "123456"));
        for _ in 0..3 {
            assert!(matches!(rx.try_recv(), Ok(OutMsg::Text(_))));
        }
        assert!(
            rx.try_recv().is_err(),
            "abort does not queue behind the backlog"
        );
        assert_eq!(o.send_text("x".into()), Sent::Closed);
        assert_eq!(o.aborted(), Some((1008, "slow consumer".to_string())));
        assert_eq!(rx.aborted(), o.aborted());
    }

    struct CountWakes(AtomicUsize);
    impl std::task::Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn outbound_close_is_ordered_final_and_wakes_the_writer() {
        let (o, mut rx) = Outbound::new(1000);
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        rx.register(&std::task::Waker::from(wakes.clone()));
        assert_eq!(o.send_text("a".into()), Sent::Queued);
        assert_eq!(wakes.0.load(Ordering::Relaxed), 1);
        o.close(1000, "bye");
        o.close(1012, "again");
        assert_eq!(o.send_text("b".into()), Sent::Closed);
        assert!(rx.has_pending());
        assert!(matches!(rx.try_recv(), Ok(OutMsg::Text(t)) if t == "a"));
        assert!(matches!(rx.try_recv(), Ok(OutMsg::Close(1000, r)) if r == "bye"));
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(rx.aborted(), None);
        rx.register(&std::task::Waker::from(wakes.clone()));
        o.abort(1008, "slow consumer");
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2, "abort wakes the writer");

        drop(o);
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Disconnected);

        // Once the writer is gone nothing more is queued.
        let (o, rx) = Outbound::new(1000);
        assert_eq!(o.send_text("x".into()), Sent::Queued);
        drop(rx);
        assert!(o.is_closed());
        assert_eq!(o.send_text("y".into()), Sent::Closed);
    }
}
