//! Queue configuration and the retry policy.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Where the queue's Redis lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server, e.g. `redis://127.0.0.1:6379/0`.
    Single(String),
    /// A Redis Cluster, given by one or more seed nodes.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// A single server by URL.
    pub fn single(url: impl Into<String>) -> Self {
        Self::Single(url.into())
    }
}

/// Exponential backoff with jitter for retries whose handler named no delay.
///
/// The delay before retry `n` (1-based) is `min_delay * factor^(n-1)`, capped at
/// `max_delay`, with a random jitter of up to the same amount added (backon's jitter).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub min_delay: Duration,
    /// Upper bound of any backoff delay (before jitter).
    pub max_delay: Duration,
    /// Growth factor per attempt.
    pub factor: f32,
    /// Add random jitter (recommended: spreads retry storms).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay before the retry that follows failed attempt `attempt` (1-based).
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .without_max_times();
        if self.jitter {
            builder = builder.with_jitter();
        }
        let n = attempt.max(1) as usize;
        builder
            .build()
            .nth(n - 1)
            .unwrap_or(self.max_delay)
            .min(self.max_delay.saturating_mul(2))
    }
}

/// Configuration of one queue. All keys of a queue share the Redis Cluster hash tag
/// `{<namespace>:<queue>}`, so a queue lives in one slot.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key prefix (namespace); tests use a unique one so they can share a Redis.
    pub namespace: String,
    /// Queue name, e.g. `dispatch`.
    pub queue: String,
    /// Consumer group name (one group per queue is the normal case).
    pub group: String,
    /// Jobs fetched per `XREADGROUP` (`COUNT`).
    pub batch_size: usize,
    /// How long one `XREADGROUP` blocks when the queue is empty (`BLOCK`). Keep it short: it
    /// bounds how late a due delayed job is moved and how fast shutdown is.
    pub block: Duration,
    /// A job delivered to a consumer that has not settled it for this long is taken over by
    /// another live consumer (`XAUTOCLAIM` min-idle). Must exceed the longest handler run.
    pub lease: Duration,
    /// How often each consumer scans for jobs whose lease ran out.
    pub claim_interval: Duration,
    /// Jobs per pipelined push chunk (bounded: no Redis call is huge).
    pub push_chunk: usize,
    /// Push chunks in flight at once on the multiplexed connection.
    pub push_concurrency: usize,
    /// At most this many due delayed jobs are moved to the stream per Lua call.
    pub promote_chunk: usize,
    /// How often a consumer looks for due delayed jobs (it also shortens its `BLOCK` to the
    /// next due time it knows of).
    pub promote_interval: Duration,
    /// Settlements (ack/retry/dead) flushed together in one pipeline.
    pub ack_batch: usize,
    /// Longest time a settlement waits for its batch to fill.
    pub ack_linger: Duration,
    /// Attempts before a failing job goes to the dead-letter stream.
    pub max_attempts: u32,
    /// Backoff for retries whose handler named no delay.
    pub retry: RetryPolicy,
    /// Response timeout of non-blocking commands.
    pub response_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Error texts stored with dead letters are cut to this many bytes.
    pub max_error_len: usize,
}

impl QueueConfig {
    /// Defaults for a queue named `queue` under `namespace`.
    pub fn new(namespace: impl Into<String>, queue: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            queue: queue.into(),
            group: "workers".to_owned(),
            batch_size: 200,
            block: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            claim_interval: Duration::from_secs(5),
            push_chunk: 1000,
            push_concurrency: 4,
            promote_chunk: 1000,
            promote_interval: Duration::from_millis(250),
            ack_batch: 256,
            ack_linger: Duration::from_millis(2),
            max_attempts: 10,
            retry: RetryPolicy::default(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            max_error_len: 2048,
        }
    }

    /// Builder-style setter for the lease (and a claim interval of a quarter of it, at most
    /// 5 s, at least 50 ms).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.claim_interval = (lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        self
    }

    /// Builder-style setter for `max_attempts`.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Builder-style setter for the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builder-style setter for the fetch batch size.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Builder-style setter for the blocking read time.
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let bad = |s: &str| s.is_empty() || s.contains(['{', '}']);
        if bad(&self.namespace) || bad(&self.queue) || self.group.is_empty() {
            return Err("namespace, queue and group must be non-empty and free of braces".into());
        }
        if self.batch_size == 0 || self.push_chunk == 0 || self.ack_batch == 0 {
            return Err("batch_size, push_chunk and ack_batch must be > 0".into());
        }
        if self.promote_chunk == 0 || self.promote_chunk > 5000 {
            return Err("promote_chunk must be in 1..=5000".into());
        }
        if self.block.is_zero() {
            return Err("block must be > 0 (BLOCK 0 waits forever)".into());
        }
        if self.lease < Duration::from_millis(10) {
            return Err("lease must be at least 10 ms".into());
        }
        Ok(())
    }

    pub(crate) fn tag(&self) -> String {
        format!("{{{}:{}}}", self.namespace, self.queue)
    }
}

/// The Redis keys of one queue (all in one hash slot).
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The main stream: one entry per ready job.
    pub stream: String,
    /// The delayed set: score = due time in ms since the epoch.
    pub delayed: String,
    /// The dead-letter stream.
    pub dead: String,
}

impl Keys {
    pub(crate) fn new(cfg: &QueueConfig) -> Self {
        let tag = cfg.tag();
        Self {
            stream: format!("{tag}:stream"),
            delayed: format!("{tag}:delayed"),
            dead: format!("{tag}:dead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            factor: 2.0,
            jitter: false,
        };
        let ms = |n| p.delay_for(n).as_millis();
        assert_eq!((ms(1), ms(2), ms(3), ms(20)), (100, 200, 400, 1000));
        let j = RetryPolicy { jitter: true, ..p };
        for n in 1..10 {
            let d = j.delay_for(n);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new(&QueueConfig::new("ez", "dispatch"));
        assert_eq!(k.stream, "{ez:dispatch}:stream");
        assert!(k.delayed.starts_with("{ez:dispatch}"));
        assert!(k.dead.starts_with("{ez:dispatch}"));
    }
}
