//! The queue handle: push, introspection, dead letters, and the plain batch consumer.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use redis::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{Keys, QueueConfig, RedisTarget};
use crate::conn::{Conn, Connector};
use crate::core::{Inner, JobMeta};
use crate::error::{JobError, QueueError};
use crate::metrics as m;
use crate::proto::{self, FetchState, Settle};

/// A delivered, decoded job of the plain consumer API.
#[derive(Debug, Clone)]
pub struct Job<T> {
    /// The job.
    pub payload: T,
    /// Its delivery data; hand it back to [`Queue::complete`] or [`Queue::ack`].
    pub meta: JobMeta,
}

/// Counts of one queue, from [`Queue::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready jobs not yet delivered.
    pub depth: u64,
    /// Jobs waiting for a due time (delayed pushes and retries).
    pub delayed: u64,
    /// Delivered, not yet settled.
    pub in_flight: u64,
    /// In the dead-letter stream.
    pub dead: u64,
    /// Age of the oldest ready or in-flight job (`None` when there is none).
    pub oldest_pending_age: Option<Duration>,
}

/// One entry of the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Id in the dead-letter stream (use it with [`Redrive::Ids`]).
    pub id: String,
    /// The job's stream id when it failed.
    pub original_id: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// The raw job (JSON).
    pub payload: Bytes,
}

impl DeadLetter {
    /// Decodes the job.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// When the job was dead-lettered (from the entry id).
    pub fn failed_at(&self) -> Option<SystemTime> {
        let ms: u64 = self.id.split('-').next()?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// Which dead letters to re-drive.
#[derive(Debug, Clone)]
pub enum Redrive {
    /// Every dead letter (moved in bounded chunks).
    All,
    /// These dead-letter ids ([`DeadLetter::id`]).
    Ids(Vec<String>),
}

/// A cheap-to-clone handle on one queue of jobs of type `T` (serde JSON on the wire).
pub struct Queue<T> {
    pub(crate) inner: Arc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("namespace", &self.inner.cfg.namespace)
            .field("queue", &self.inner.cfg.queue)
            .finish()
    }
}

impl<T> Queue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Connects (one shared, self-reconnecting connection) and creates the consumer group.
    pub async fn connect(target: RedisTarget, cfg: QueueConfig) -> Result<Self, QueueError> {
        cfg.validate().map_err(QueueError::Config)?;
        let connector = Connector::new(&target, &cfg)?;
        let mut conn = connector.shared().await?;
        let keys = Keys::new(&cfg);
        proto::ensure_group(&mut conn, &keys, &cfg).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                keys,
                connector,
                conn,
            }),
            _t: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.cfg
    }

    /// A plain batch consumer named `name` (unique per live consumer).
    pub fn consumer(&self, name: impl Into<String>) -> Consumer<T> {
        Consumer {
            queue: self.clone(),
            name: name.into(),
            conn: None,
            state: FetchState::new(),
        }
    }

    fn encode(job: &T) -> Result<Vec<u8>, QueueError> {
        serde_json::to_vec(job).map_err(QueueError::Encode)
    }

    /// Pushes one job; returns its stream id.
    pub async fn push(&self, job: &T) -> Result<String, QueueError> {
        let payload = Self::encode(job)?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.inner.keys.stream)
            .arg("*")
            .arg("d")
            .arg(payload);
        let mut delay = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            let mut conn = self.inner.shared();
            match cmd.query_async::<String>(&mut conn).await {
                Ok(id) => {
                    m::pushed(&self.inner.cfg.queue, 1);
                    return Ok(id);
                }
                Err(e) if transient(&e) && tries < 4 => {
                    tries += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Pushes many jobs: pipelined in chunks of `push_chunk`, `push_concurrency` chunks in
    /// flight. Returns how many were pushed. On error some chunks may have been pushed.
    pub async fn push_bulk(&self, jobs: &[T]) -> Result<usize, QueueError> {
        let cfg = &self.inner.cfg;
        let mut in_flight = FuturesUnordered::new();
        let mut total = 0usize;
        for chunk in jobs.chunks(cfg.push_chunk) {
            let pipe = self.xadd_pipeline(chunk)?;
            in_flight.push(send_chunk(self.inner.clone(), pipe, chunk.len()));
            if in_flight.len() >= cfg.push_concurrency.max(1) {
                if let Some(r) = in_flight.next().await {
                    total += r?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            total += r?;
        }
        Ok(total)
    }

    fn xadd_pipeline(&self, chunk: &[T]) -> Result<redis::Pipeline, QueueError> {
        let mut pipe = redis::pipe();
        for job in chunk {
            pipe.cmd("XADD")
                .arg(&self.inner.keys.stream)
                .arg("*")
                .arg("d")
                .arg(Self::encode(job)?)
                .ignore();
        }
        Ok(pipe)
    }

    /// Pushes jobs that become ready after `delay`.
    pub async fn push_delayed(&self, jobs: &[T], delay: Duration) -> Result<usize, QueueError> {
        let due =
            proto::now_ms().saturating_add(i64::try_from(proto::ms(delay)).unwrap_or(i64::MAX / 2));
        self.push_due(jobs, due).await
    }

    /// Pushes jobs that become ready at `at`.
    pub async fn push_at(&self, jobs: &[T], at: SystemTime) -> Result<usize, QueueError> {
        let due = at
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
            .unwrap_or(0);
        self.push_due(jobs, due).await
    }

    async fn push_due(&self, jobs: &[T], due_ms: i64) -> Result<usize, QueueError> {
        let cfg = &self.inner.cfg;
        let delayed = &self.inner.keys.delayed;
        let mut total = 0;
        for chunk in jobs.chunks(cfg.push_chunk) {
            let mut pipe = redis::pipe();
            for job in chunk {
                pipe.cmd("ZADD")
                    .arg(delayed)
                    .arg(due_ms)
                    .arg(proto::delayed_member(&Self::encode(job)?, 0))
                    .ignore();
            }
            query_retrying(&self.inner, &pipe).await?;
            total += chunk.len();
            m::pushed(&cfg.queue, chunk.len());
        }
        Ok(total)
    }

    /// Moves due delayed jobs to the stream now (workers do this by themselves; this is for
    /// setups where nothing consumes for a while). Bounded per call; returns how many moved.
    pub async fn promote_due(&self) -> Result<usize, QueueError> {
        let mut conn = self.inner.shared();
        let mut total = 0usize;
        loop {
            let v: Value = redis::cmd("EVAL")
                .arg(proto::PROMOTE_LUA)
                .arg(2)
                .arg(&self.inner.keys.delayed)
                .arg(&self.inner.keys.stream)
                .arg(proto::now_ms())
                .arg(self.inner.cfg.promote_chunk)
                .query_async(&mut conn)
                .await?;
            let moved = match v {
                Value::Array(v) => match v.first() {
                    Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
                    _ => 0,
                },
                _ => 0,
            };
            total += moved;
            if moved < self.inner.cfg.promote_chunk {
                return Ok(total);
            }
        }
    }

    /// Settles finished jobs: `Ok` acks (XACK+XDEL), `Err(JobError)` retries or
    /// dead-letters. One pipeline per call.
    pub async fn complete<I>(&self, results: I) -> Result<(), QueueError>
    where
        I: IntoIterator<Item = (JobMeta, Result<(), JobError>)>,
    {
        let items: Vec<Settle> = results
            .into_iter()
            .map(|(meta, r)| match r {
                Ok(()) => self.inner.decide(&meta, None),
                Err(e) => self.inner.decide(&meta, Some(&e)),
            })
            .collect();
        let mut conn = self.inner.shared();
        proto::settle(&mut conn, &self.inner.keys, &self.inner.cfg, &items).await
    }

    /// Renews the lease of jobs that `consumer` is still working on (for handlers that may run
    /// longer than the lease; the apalis backend does this by itself every `lease / 3`). Jobs
    /// another consumer has already taken over are left alone. Returns how many were renewed.
    pub async fn extend_lease(
        &self,
        consumer: &str,
        jobs: &[JobMeta],
    ) -> Result<usize, QueueError> {
        let ids: Vec<Arc<str>> = jobs.iter().map(JobMeta::id_arc).collect();
        let mut conn = self.inner.shared();
        proto::renew(&mut conn, &self.inner.keys, &self.inner.cfg, consumer, &ids).await
    }

    /// Acknowledges (and deletes) finished jobs in one pipeline.
    pub async fn ack(&self, jobs: &[JobMeta]) -> Result<(), QueueError> {
        self.complete(jobs.iter().map(|m| (m.clone(), Ok(()))))
            .await
    }

    /// Deletes this queue's consumers that hold nothing and have not read for `idle` (the
    /// names of worker processes that stopped); returns how many. See
    /// [`prune_idle_consumers`](crate::prune_idle_consumers).
    pub async fn prune_consumers(&self, idle: Duration) -> Result<usize, QueueError> {
        let mut conn = self.inner.shared();
        Ok(crate::prune_idle_consumers(
            &mut conn,
            &self.inner.keys.stream,
            &self.inner.cfg.group,
            idle,
        )
        .await?)
    }

    /// Depth, delayed, in-flight and dead counts and the oldest pending job's age.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        match self.stats_once().await {
            Err(QueueError::Redis(e)) if proto::is_nogroup(&e) => {
                let mut conn = self.inner.shared();
                proto::ensure_group(&mut conn, &self.inner.keys, &self.inner.cfg).await?;
                self.stats_once().await
            }
            other => other,
        }
    }

    async fn stats_once(&self) -> Result<QueueStats, QueueError> {
        let k = &self.inner.keys;
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&k.stream);
        pipe.cmd("XPENDING")
            .arg(&k.stream)
            .arg(&self.inner.cfg.group);
        pipe.cmd("ZCARD").arg(&k.delayed);
        pipe.cmd("XLEN").arg(&k.dead);
        pipe.cmd("XRANGE")
            .arg(&k.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let mut conn = self.inner.shared();
        let (len, pending, delayed, dead, first): (u64, Value, u64, u64, Value) =
            pipe.query_async(&mut conn).await?;
        let in_flight = match pending {
            Value::Array(v) => match v.first() {
                Some(Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            },
            _ => 0,
        };
        let oldest_pending_age = proto::parse_entries(first)?.first().and_then(|e| {
            let ms: i64 = e.id.split('-').next()?.parse().ok()?;
            let age = proto::now_ms().saturating_sub(ms).max(0);
            Some(Duration::from_millis(u64::try_from(age).unwrap_or(0)))
        });
        Ok(QueueStats {
            depth: len.saturating_sub(in_flight),
            delayed,
            in_flight,
            dead,
            oldest_pending_age,
        })
    }

    /// [`Queue::stats`], also published as the `ezpulze_queue_*` gauges.
    pub async fn report_metrics(&self) -> Result<QueueStats, QueueError> {
        let s = self.stats().await?;
        m::gauges(&self.inner.cfg.queue, &s);
        Ok(s)
    }

    /// The oldest `limit` dead letters.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut conn = self.inner.shared();
        let v: Value = redis::cmd("XRANGE")
            .arg(&self.inner.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        Ok(proto::parse_entries(v)?
            .into_iter()
            .map(|e| DeadLetter {
                id: e.id.to_string(),
                original_id: e.source,
                attempts: e.attempts,
                error: e.error.unwrap_or_default(),
                payload: e.payload.unwrap_or_default(),
            })
            .collect())
    }

    /// Moves dead letters back to the queue with a fresh attempt count, in bounded chunks.
    /// Returns how many moved.
    pub async fn redrive(&self, which: Redrive) -> Result<usize, QueueError> {
        let chunk = self.inner.cfg.promote_chunk;
        let mut conn = self.inner.shared();
        let k = &self.inner.keys;
        let run = |ids: &[String]| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(proto::REDRIVE_LUA)
                .arg(2)
                .arg(&k.dead)
                .arg(&k.stream)
                .arg(chunk);
            for id in ids {
                cmd.arg(id);
            }
            cmd
        };
        let mut total = 0usize;
        match which {
            Redrive::All => loop {
                let n: usize = run(&[]).query_async(&mut conn).await?;
                total += n;
                if n < chunk {
                    break;
                }
            },
            Redrive::Ids(ids) => {
                for part in ids.chunks(chunk) {
                    let n: usize = run(part).query_async(&mut conn).await?;
                    total += n;
                }
            }
        }
        m::pushed(&self.inner.cfg.queue, total);
        Ok(total)
    }

    /// Deletes every key of this queue, consumer group included (tests and tooling). Pushing
    /// again recreates the stream; consumers recreate the group when they next read.
    pub async fn purge(&self) -> Result<(), QueueError> {
        let k = &self.inner.keys;
        let mut conn = self.inner.shared();
        let _: () = redis::cmd("DEL")
            .arg(&k.stream)
            .arg(&k.delayed)
            .arg(&k.dead)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

/// Whether an error is a connection problem worth one more try (the shared connection
/// reconnects by itself).
fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// Runs a pipeline on the shared connection, retrying connection errors a few times (50, 100,
/// 200, 400 ms apart). A retried push may duplicate jobs whose reply was lost (at least once).
async fn query_retrying(inner: &Inner, pipe: &redis::Pipeline) -> Result<(), QueueError> {
    let mut delay = Duration::from_millis(50);
    let mut tries = 0;
    loop {
        let mut conn = inner.shared();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => return Ok(()),
            Err(e) if transient(&e) && tries < 4 => {
                tries += 1;
                tracing::debug!(queue = %inner.cfg.queue, error = %e, "redis connection error; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn send_chunk(
    inner: Arc<Inner>,
    pipe: redis::Pipeline,
    len: usize,
) -> Result<usize, QueueError> {
    query_retrying(&inner, &pipe).await?;
    m::pushed(&inner.cfg.queue, len);
    Ok(len)
}

/// A plain batch consumer: `fetch_batch`, work on the whole batch, then
/// [`Queue::complete`] (or [`Queue::ack`]) it in one pipeline. Same semantics as the
/// apalis backend (leases, reclaim, delayed moves, retries, dead letters).
pub struct Consumer<T> {
    queue: Queue<T>,
    name: String,
    conn: Option<Conn>,
    state: FetchState,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .finish()
    }
}

impl<T> Consumer<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// The queue this consumer reads.
    pub fn queue(&self) -> &Queue<T> {
        &self.queue
    }

    /// Fetches up to `max` jobs, waiting up to the configured `block` when none is ready
    /// (an empty result is normal). Undecodable jobs are dead-lettered here. On error the
    /// read connection is dropped and the next call reconnects.
    pub async fn fetch_batch(&mut self, max: usize) -> Result<Vec<Job<T>>, QueueError> {
        self.fetch(max, true).await
    }

    /// [`Consumer::fetch_batch`] without waiting: what is ready now (to top up a batch).
    pub async fn fetch_ready(&mut self, max: usize) -> Result<Vec<Job<T>>, QueueError> {
        self.fetch(max, false).await
    }

    async fn fetch(&mut self, max: usize, block: bool) -> Result<Vec<Job<T>>, QueueError> {
        let inner = self.queue.inner.clone();
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => inner.connector.reader().await?,
        };
        let got = proto::fetch(
            &mut conn,
            &inner.keys,
            &inner.cfg,
            &self.name,
            max.max(1),
            &mut self.state,
            block,
        )
        .await?;
        self.conn = Some(conn);
        let mut jobs = Vec::with_capacity(got.len());
        let mut bad = Vec::new();
        for d in got {
            match inner.decode::<T>(d) {
                Ok((payload, meta)) => jobs.push(Job { payload, meta }),
                Err(s) => bad.push(s),
            }
        }
        if !bad.is_empty() {
            let mut c = inner.shared();
            proto::settle(&mut c, &inner.keys, &inner.cfg, &bad).await?;
        }
        Ok(jobs)
    }
}
