//! The business portfolio's messaging limit, enforced the way Meta does
//! (`docs/messaging-limits.md`): with `messaging_tier` set, each portfolio (the numbers of one
//! `waba_id`; a number without one is its own) may reach that many unique users outside a
//! customer-service window per moving `messaging_window_ms`. A message beyond it is still
//! accepted (200 with a wamid, as Meta answers) and then fails asynchronously: a `failed`
//! status with [`OVER_LIMIT_CODE`], Meta having no dedicated code. A user who sent the
//! portfolio an inbound message (`POST /_sim/inbound`) in the last 24 h is inside a
//! customer-service window and does not count; a user already reached in the window costs
//! nothing more. `/_sim/stats` reports `messaging_limit`: `counted` (new unique users
//! reached), `already_counted`, `service_window` and `over_limit` (the messages failed for it).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering as AO};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The code of the `failed` status of a message over the limit: 131049 ("not delivered to
/// maintain healthy ecosystem engagement"), what a silently dropped message reports.
pub const OVER_LIMIT_CODE: u32 = 131049;

/// A customer-service window (Meta's 24 h, not shortened with the messaging window).
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Meta's tier names and their limits (None: unlimited).
pub const TIERS: [(&str, Option<u64>); 5] = [
    ("TIER_250", Some(250)),
    ("TIER_2K", Some(2_000)),
    ("TIER_10K", Some(10_000)),
    ("TIER_100K", Some(100_000)),
    ("TIER_UNLIMITED", None),
];

/// The limit of a tier name; Err for a name Meta does not use.
pub fn limit_of(tier: &str) -> Result<Option<u64>, String> {
    TIERS
        .iter()
        .find(|(n, _)| *n == tier)
        .map(|(_, l)| *l)
        .ok_or_else(|| {
            format!(
                "messaging_tier must be one of {} (or null), got {tier:?}",
                TIERS.map(|(n, _)| n).join(", ")
            )
        })
}

#[derive(Debug, Default)]
struct Portfolio {
    /// User -> when last reached (counted) in the window.
    reached: HashMap<String, Instant>,
    /// Reaches in time order, to expire them (a refreshed user has a later entry too).
    order: VecDeque<(Instant, String)>,
    /// User -> their last inbound message.
    inbound: HashMap<String, Instant>,
}

impl Portfolio {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((at, user)) = self.order.pop_front() {
                if self.reached.get(&user) == Some(&at) {
                    self.reached.remove(&user);
                }
            }
        }
    }
}

/// Every portfolio's count, and the ground truth of what the limit did.
#[derive(Debug, Default)]
pub struct Portfolios {
    by_waba: Mutex<HashMap<String, Portfolio>>,
    counted: AtomicU64,
    already: AtomicU64,
    service_window: AtomicU64,
    over_limit: AtomicU64,
}

impl Portfolios {
    /// A user wrote to the portfolio: their customer-service window opens.
    pub fn inbound(&self, waba: &str, user: &str) {
        let mut m = self.by_waba.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(waba.to_owned())
            .or_default()
            .inbound
            .insert(user.to_owned(), Instant::now());
    }

    /// Whether a message from `waba`'s portfolio to `user` stays within `limit` (None: not
    /// enforced) per `window`; counts it. False: over the limit (it will fail).
    pub fn admit(&self, waba: &str, user: &str, limit: Option<u64>, window: Duration) -> bool {
        let Some(limit) = limit else {
            return true;
        };
        let now = Instant::now();
        let mut m = self.by_waba.lock().unwrap_or_else(|p| p.into_inner());
        let p = m.entry(waba.to_owned()).or_default();
        p.expire(now, window);
        if p.inbound
            .get(user)
            .is_some_and(|at| now.duration_since(*at) < SERVICE_WINDOW)
        {
            self.service_window.fetch_add(1, AO::Relaxed);
            return true;
        }
        if p.reached.contains_key(user) {
            p.reached.insert(user.to_owned(), now);
            p.order.push_back((now, user.to_owned()));
            self.already.fetch_add(1, AO::Relaxed);
            return true;
        }
        if (p.reached.len() as u64) < limit {
            p.reached.insert(user.to_owned(), now);
            p.order.push_back((now, user.to_owned()));
            self.counted.fetch_add(1, AO::Relaxed);
            return true;
        }
        self.over_limit.fetch_add(1, AO::Relaxed);
        metrics::counter!("ezpulze_sim_messaging_limit_exceeded_total").increment(1);
        false
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "counted": self.counted.load(AO::Relaxed),
            "already_counted": self.already.load(AO::Relaxed),
            "service_window": self.service_window.load(AO::Relaxed),
            "over_limit": self.over_limit.load(AO::Relaxed),
        })
    }

    /// Forgets every count and window (`/_sim/reset`).
    pub fn reset(&self) {
        self.by_waba
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for c in [
            &self.counted,
            &self.already,
            &self.service_window,
            &self.over_limit,
        ] {
            c.store(0, AO::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_meta_names() {
        assert_eq!(limit_of("TIER_2K"), Ok(Some(2_000)));
        assert_eq!(limit_of("TIER_UNLIMITED"), Ok(None));
        assert!(limit_of("TIER_1K").is_err());
        assert!(limit_of("tier_2k").is_err());
    }

    #[test]
    fn the_config_takes_only_meta_tiers_and_a_window() {
        use crate::config::SimConfig;
        let ok = SimConfig::default()
            .merged(&serde_json::json!({"messaging_tier": "TIER_2K", "messaging_window_ms": 15000}))
            .expect("valid");
        assert_eq!(ok.messaging_tier.as_deref(), Some("TIER_2K"));
        for bad in [
            serde_json::json!({"messaging_tier": "TIER_1K"}),
            serde_json::json!({"messaging_tier": 2000}),
            serde_json::json!({"messaging_window_ms": 0}),
            serde_json::json!({"messaging_window_ms": "1d"}),
        ] {
            assert!(SimConfig::default().merged(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unique_users_outside_the_service_window_count_up_to_the_limit() {
        let p = Portfolios::default();
        let w = Duration::from_secs(60);
        assert!(p.admit("w", "1", Some(2), w));
        assert!(p.admit("w", "1", Some(2), w), "already reached: free");
        assert!(p.admit("w", "2", Some(2), w));
        assert!(
            !p.admit("w", "3", Some(2), w),
            "a third unique user is over"
        );
        p.inbound("w", "3");
        assert!(p.admit("w", "3", Some(2), w), "inside its service window");
        assert!(p.admit("other", "3", Some(2), w), "portfolios count apart");
        assert!(p.admit("w", "4", None, w), "no tier: not enforced");
        let j = p.json();
        assert_eq!(j["counted"], 3);
        assert_eq!(j["already_counted"], 1);
        assert_eq!(j["service_window"], 1);
        assert_eq!(j["over_limit"], 1);
    }

    #[test]
    fn the_window_moves() {
        let p = Portfolios::default();
        let w = Duration::from_millis(50);
        assert!(p.admit("w", "1", Some(1), w));
        assert!(!p.admit("w", "2", Some(1), w));
        std::thread::sleep(Duration::from_millis(60));
        assert!(p.admit("w", "2", Some(1), w));
    }
}
