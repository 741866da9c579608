//! The idempotency cache for finished runs: key → final result, bounded in time (5 minutes)
//! and size (1000 entries, oldest evicted first), as upstream's gateway dedupe
//! (`server-constants.ts`). In-flight runs are tracked separately (the active-run map), so an
//! eviction can never let a running key start twice.
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Upstream's dedupe TTL.
pub(crate) const TTL: Duration = Duration::from_secs(5 * 60);
/// Upstream's dedupe capacity.
pub(crate) const MAX_ENTRIES: usize = 1000;

/// A TTL + capacity bounded map. Time is passed in so tests need no sleeps.
#[derive(Debug)]
pub(crate) struct Dedupe<V> {
    ttl: Duration,
    max: usize,
    map: HashMap<String, (Instant, V)>,
    order: VecDeque<(String, Instant)>,
}

impl<V: Clone> Dedupe<V> {
    /// An empty cache.
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Dedupe {
            ttl,
            max: max.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The live entry for `key` at `now`.
    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        self.prune(now);
        self.map.get(key).map(|(_, v)| v.clone())
    }

    /// Stores (or replaces) `key`.
    pub(crate) fn insert(&mut self, key: String, v: V, now: Instant) {
        self.prune(now);
        self.order.push_back((key.clone(), now));
        self.map.insert(key, (now, v));
        while self.map.len() > self.max {
            match self.order.pop_front() {
                Some((k, t)) => {
                    if self.map.get(&k).is_some_and(|(at, _)| *at == t) {
                        self.map.remove(&k);
                    }
                }
                None => break,
            }
        }
    }

    #[cfg(test)]
    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn prune(&mut self, now: Instant) {
        while let Some((k, t)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            if self.map.get(k).is_some_and(|(at, _)| at == t) {
                self.map.remove(k);
            }
            self.order.pop_front();
        }
        // Replaced keys leave stale order entries behind; keep the queue bounded anyway.
        if self.order.len() > self.max * 2 {
            let map = &self.map;
            self.order
                .retain(|(k, t)| map.get(k).is_some_and(|(at, _)| at == t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_ttl_and_evicts_oldest_beyond_capacity() {
        let t0 = Instant::now();
        let mut d = Dedupe::new(Duration::from_secs(300), 3);
        d.insert("a".into(), 1, t0);
        d.insert("b".into(), 2, t0 + Duration::from_secs(1));
        assert_eq!(d.get("a", t0 + Duration::from_secs(299)), Some(1));
        assert_eq!(d.get("a", t0 + Duration::from_secs(300)), None);
        assert_eq!(d.get("b", t0 + Duration::from_secs(300)), Some(2));
        let t1 = t0 + Duration::from_secs(2);
        for (i, k) in ["c", "d", "e"].iter().enumerate() {
            d.insert((*k).into(), 10 + i, t1);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.get("b", t1), None, "oldest evicted");
        assert_eq!(d.get("e", t1), Some(12));
        // replacing a key keeps one entry and the newest value
        d.insert("e".into(), 99, t1);
        assert_eq!(d.get("e", t1), Some(99));
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn thousand_entry_bound_holds() {
        let t0 = Instant::now();
        let mut d = Dedupe::new(TTL, MAX_ENTRIES);
        for i in 0..2500 {
            d.insert(format!("k{i}"), i, t0);
        }
        assert_eq!(d.len(), MAX_ENTRIES);
        assert_eq!(d.get("k1499", t0), None);
        assert_eq!(d.get("k1500", t0), Some(1500));
        assert!(d.order.len() <= MAX_ENTRIES * 2);
    }
}
