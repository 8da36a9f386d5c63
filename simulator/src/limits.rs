//! Throughput per phone number (1-second wall-clock windows) and the per-recipient pair gap.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

#[derive(Debug, Default)]
struct Window {
    sec: u64,
    admitted: u32,
    observed: u32,
    max_observed: u32,
}

/// Per-number windows and per-pair last-send instants.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: DashMap<String, Arc<Mutex<Window>>>,
    pairs: DashMap<u64, Instant>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn pair_key(phone_number_id: &str, wa_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    phone_number_id.hash(&mut h);
    0xffu8.hash(&mut h);
    wa_id.hash(&mut h);
    h.finish()
}

impl Limiter {
    fn window(&self, phone_number_id: &str) -> Arc<Mutex<Window>> {
        if let Some(w) = self.windows.get(phone_number_id) {
            return w.clone();
        }
        self.windows
            .entry(phone_number_id.to_owned())
            .or_default()
            .clone()
    }

    /// Records one send attempt on the number and says whether it fits in `limit` per second
    /// (0 = no limit). Every call counts toward the observed rate; only admitted ones use quota.
    pub fn admit_throughput(&self, phone_number_id: &str, limit: u32) -> bool {
        let w = self.window(phone_number_id);
        let now = unix_now();
        let Ok(mut w) = w.lock() else {
            return true;
        };
        if w.sec != now {
            w.sec = now;
            w.admitted = 0;
            w.observed = 0;
        }
        w.observed += 1;
        if w.observed > w.max_observed {
            w.max_observed = w.observed;
        }
        if limit > 0 && w.admitted >= limit {
            return false;
        }
        w.admitted += 1;
        true
    }

    /// Whether a message to this recipient is allowed now (`gap` zero = always); records it if so.
    pub fn admit_pair(&self, phone_number_id: &str, wa_id: &str, gap: Duration) -> bool {
        if gap.is_zero() {
            return true;
        }
        let key = pair_key(phone_number_id, wa_id);
        let now = Instant::now();
        let mut entry = self
            .pairs
            .entry(key)
            .or_insert_with(|| now - gap - Duration::from_millis(1));
        if now.duration_since(*entry) < gap {
            return false;
        }
        *entry = now;
        true
    }

    /// Forgets pairs whose gap has passed (bounded memory).
    pub fn prune_pairs(&self, gap: Duration) {
        let now = Instant::now();
        self.pairs.retain(|_, t| now.duration_since(*t) < gap);
    }

    pub fn pairs_len(&self) -> usize {
        self.pairs.len()
    }

    /// Highest attempts per 1-second window seen for each number.
    pub fn max_mps(&self) -> BTreeMap<String, u32> {
        self.windows
            .iter()
            .map(|e| {
                let max = e.value().lock().map(|w| w.max_observed).unwrap_or(0);
                (e.key().clone(), max)
            })
            .collect()
    }

    pub fn reset(&self) {
        self.windows.clear();
        self.pairs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_gap() {
        let l = Limiter::default();
        let gap = Duration::from_secs(60);
        assert!(l.admit_pair("1", "491701234567", gap));
        assert!(!l.admit_pair("1", "491701234567", gap));
        assert!(l.admit_pair("2", "491701234567", gap));
        assert!(l.admit_pair("1", "491701234568", gap));
        assert!(l.admit_pair("1", "491701234567", Duration::ZERO));
    }

    #[test]
    fn throughput_counts() {
        let l = Limiter::default();
        let mut ok = 0;
        for _ in 0..10 {
            if l.admit_throughput("1", 3) {
                ok += 1;
            }
        }
        // At most two windows were touched.
        assert!((3..=6).contains(&ok));
        assert!(l.max_mps()["1"] >= 5);
    }
}
