//! What exists, known without asking Postgres: every API key hash and admin token hash (in a
//! Bloom filter each) and every registered `phone_number_id` (a set). A credential or webhook
//! number that is not in them cannot be one of ours, so random keys, random admin tokens and
//! random numbers on the webhook cost no query, however many there are.
//!
//! A filter has no false negatives, so it may only say "unknown" while it holds everything
//! that exists: it is loaded at start-up, reloaded every [`REFRESH`] (which also drops what was
//! deleted), and every creation adds to it at once on the creating replica and, through the
//! key invalidation channel (`+<hex hash>`, `n:<phone_number_id>`), on the others. While that
//! subscription is down the filters are not trusted: every lookup goes to Postgres, as before,
//! until the subscription is back and the filters are reloaded. A creation is also marked in
//! Redis for [`RECENT_SECS`]; a filter miss looks there (one Redis read, no query) before it
//! answers "unknown", so a credential used on another replica before the channel message
//! arrived is not refused.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the filters are rebuilt from Postgres.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Bits of a filter per element it was sized for (with [`PROBES`], about 0.05% false
/// positives: an unknown credential that still costs its query).
const BITS_PER_ELEMENT: usize = 16;
const PROBES: u64 = 7;

/// A Bloom filter over 32-byte HMAC outputs (already uniform: their bytes are the hashes).
struct Bloom {
    bits: Vec<u64>,
    mask: u64,
    held: usize,
    capacity: usize,
}

impl Bloom {
    fn with_capacity(n: usize) -> Bloom {
        let capacity = n.max(1 << 16);
        let m = (capacity * BITS_PER_ELEMENT).next_power_of_two();
        Bloom {
            bits: vec![0; m / 64],
            mask: (m - 1) as u64,
            held: 0,
            capacity,
        }
    }

    fn probes(&self, h: &[u8; 32]) -> impl Iterator<Item = u64> + '_ {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let (a, step) = (word(0), word(8) | 1);
        (0..PROBES).map(move |i| a.wrapping_add(i.wrapping_mul(step)) & self.mask)
    }

    fn insert(&mut self, h: &[u8; 32]) {
        let positions: Vec<u64> = self.probes(h).collect();
        for p in positions {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.held += 1;
    }

    fn contains(&self, h: &[u8; 32]) -> bool {
        self.probes(h)
            .all(|p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

/// The hashes of one kind of credential.
pub struct KnownHashes {
    bloom: RwLock<Bloom>,
    /// Hashes added while a reload reads Postgres (it may have read before they committed):
    /// put into the rebuilt filter too.
    during_load: Mutex<Option<Vec<[u8; 32]>>>,
}

impl Default for KnownHashes {
    fn default() -> Self {
        KnownHashes {
            bloom: RwLock::new(Bloom::with_capacity(0)),
            during_load: Mutex::new(None),
        }
    }
}

impl KnownHashes {
    fn contains(&self, h: &[u8; 32]) -> bool {
        self.bloom.read().map(|b| b.contains(h)).unwrap_or(true)
    }

    /// Adds a new credential's hash (a filter past its size is rebuilt bigger at the next
    /// reload; until then it only answers "maybe" more often).
    pub fn add(&self, h: &[u8; 32]) {
        let mut b = self.bloom.write().unwrap_or_else(|p| p.into_inner());
        b.insert(h);
        if let Some(v) = self
            .during_load
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            v.push(*h);
        }
    }

    fn end_load(&self) {
        *self.during_load.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn begin_load(&self) {
        *self.during_load.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    fn replace(&self, hashes: &[Vec<u8>]) {
        let mut fresh = Bloom::with_capacity(hashes.len() * 2);
        for h in hashes {
            if let Ok(h) = <[u8; 32]>::try_from(h.as_slice()) {
                fresh.insert(&h);
            }
        }
        // Same lock order as `add`: nothing added between the take and the swap is lost.
        let mut b = self.bloom.write().unwrap_or_else(|p| p.into_inner());
        let added = self
            .during_load
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        for h in added.unwrap_or_default() {
            fresh.insert(&h);
        }
        *b = fresh;
    }

    fn overfull(&self) -> bool {
        self.bloom
            .read()
            .map(|b| b.held > b.capacity)
            .unwrap_or(false)
    }
}

/// Everything that exists, as far as unauthenticated traffic is concerned.
#[derive(Default)]
pub struct Known {
    pub keys: KnownHashes,
    pub admin_tokens: KnownHashes,
    numbers: RwLock<HashSet<String>>,
    numbers_during_load: Mutex<Option<Vec<String>>>,
    /// Loaded and kept current by a live subscription (see the module docs).
    trusted: AtomicBool,
}

impl Known {
    /// Whether a key with this hash may exist (false: certainly not, no query needed).
    pub fn may_be_key(&self, h: &[u8; 32]) -> bool {
        !self.is_trusted() || self.keys.contains(h)
    }

    /// Whether an admin token with this hash may exist.
    pub fn may_be_admin_token(&self, h: &[u8; 32]) -> bool {
        !self.is_trusted() || self.admin_tokens.contains(h)
    }

    /// Whether `phone_number_id` may be registered.
    pub fn may_be_number(&self, phone_number_id: &str) -> bool {
        !self.is_trusted()
            || self
                .numbers
                .read()
                .map(|n| n.contains(phone_number_id))
                .unwrap_or(true)
    }

    pub fn add_number(&self, phone_number_id: &str) {
        let mut n = self.numbers.write().unwrap_or_else(|p| p.into_inner());
        n.insert(phone_number_id.to_string());
        if let Some(v) = self
            .numbers_during_load
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            v.push(phone_number_id.to_string());
        }
    }

    fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// Stops answering "unknown" (the subscription that keeps the filters current is down).
    pub fn distrust(&self) {
        self.trusted.store(false, Ordering::Release);
    }

    /// Rebuilds every filter from Postgres, then trusts them.
    pub async fn reload(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        self.keys.begin_load();
        self.admin_tokens.begin_load();
        *self
            .numbers_during_load
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
        let read = async {
            let keys: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
                .fetch_all(db)
                .await?;
            let admins: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM admin_tokens")
                .fetch_all(db)
                .await?;
            let numbers: Vec<String> =
                sqlx::query_scalar("SELECT phone_number_id FROM phone_numbers")
                    .fetch_all(db)
                    .await?;
            Ok::<_, sqlx::Error>((keys, admins, numbers))
        };
        let (keys, admins, numbers) = match read.await {
            Ok(all) => all,
            Err(e) => {
                // Nothing is replaced: the journals are not needed.
                self.keys.end_load();
                self.admin_tokens.end_load();
                *self
                    .numbers_during_load
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                return Err(e);
            }
        };
        self.keys.replace(&keys);
        self.admin_tokens.replace(&admins);
        {
            let mut n = self.numbers.write().unwrap_or_else(|p| p.into_inner());
            let added = self
                .numbers_during_load
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            *n = numbers
                .into_iter()
                .chain(added.unwrap_or_default())
                .collect();
        }
        metrics::gauge!("ezpulze_known_credentials", "kind" => "api_key").set(keys.len() as f64);
        metrics::gauge!("ezpulze_known_credentials", "kind" => "admin_token")
            .set(admins.len() as f64);
        Ok(())
    }

    /// Reloads and trusts the filters (after a (re)subscription).
    pub async fn reload_and_trust(&self, db: &PgPool) {
        match self.reload(db).await {
            Ok(()) => self.trusted.store(true, Ordering::Release),
            Err(e) => {
                self.distrust();
                tracing::warn!(error = %e, "loading the known credentials failed; every lookup asks Postgres until the next reload");
            }
        }
    }

    /// A message of the invalidation channel about a creation; false if it is not one.
    pub fn heard(&self, payload: &str) -> bool {
        if let Some(hex_hash) = payload.strip_prefix('+') {
            if let Some(h) = hex::decode(hex_hash)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            {
                // Keys and admin tokens share the channel; a hash in both costs nothing.
                self.keys.add(&h);
                self.admin_tokens.add(&h);
            }
            return true;
        }
        if let Some(number) = payload.strip_prefix("n:") {
            self.add_number(number);
            return true;
        }
        false
    }

    /// Rebuilds the filters every [`REFRESH`] (or sooner, when one is past its size) while
    /// they are trusted.
    pub async fn run_refresh(&self, db: PgPool, cancel: CancellationToken) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let due =
                last.elapsed() >= REFRESH || self.keys.overfull() || self.admin_tokens.overfull();
            if due && self.is_trusted() {
                last = tokio::time::Instant::now();
                if let Err(e) = self.reload(&db).await {
                    tracing::warn!(error = %e, "reloading the known credentials failed; trying again later");
                }
            }
        }
    }
}

/// How long a creation is also marked in Redis ([`Keyspace::recently_created`]): a replica
/// whose filter misses looks there before it says "unknown", so a key used on another replica
/// the moment it was made (before the channel message arrived) still works. Longer than a
/// [`REFRESH`], after which every filter holds it.
///
/// [`Keyspace::recently_created`]: ezpulze_common::keyspace::Keyspace::recently_created
pub const RECENT_SECS: u64 = 180;

/// The channel message announcing a new key or admin token.
pub fn created_message(hash: &[u8; 32]) -> String {
    format!("+{}", hex::encode(hash))
}

/// The channel message announcing a registered phone number.
pub fn number_message(phone_number_id: &str) -> String {
    format!("n:{phone_number_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_what_was_added_and_little_else() {
        let k = KnownHashes::default();
        let hash = |i: u32| {
            use sha2::Digest;
            let d = sha2::Sha256::digest(i.to_le_bytes());
            <[u8; 32]>::try_from(d.as_slice()).expect("32 bytes")
        };
        for i in 0..10_000 {
            k.add(&hash(i));
        }
        assert!((0..10_000).all(|i| k.contains(&hash(i))));
        let false_positives = (10_000..110_000).filter(|i| k.contains(&hash(*i))).count();
        assert!(false_positives < 100, "{false_positives} in 100,000");
    }
}
