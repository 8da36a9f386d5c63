//! The apalis 1.0 backend: `Backend` + `BackendConfig` implemented directly.
//!
//! * `poll_next` yields jobs from a buffer filled by a stored fetch future (reclaim, bounded
//!   delayed move, `XREADGROUP COUNT batch BLOCK block` on this consumer's own connection);
//!   the next batch is prefetched when the buffer runs low. Fetch errors never leave
//!   `poll_next` (an `Err` there ends the worker): the connection is dropped and remade after
//!   a backoff, and undecodable payloads are dead-lettered.
//! * The layer returned by `middleware()` wraps every other layer, sees each job's final
//!   result and sends its settlement (ack / retry / dead) to the backend over a channel.
//! * `poll_ready` flushes settlements in batches (`ack_batch` or after `ack_linger`) on the
//!   shared connection; `poll_close` hands fetched but unstarted jobs back and force-flushes.

use std::collections::{HashSet, VecDeque};
use std::error::Error as StdError;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::config::QueueConfig;
use crate::conn::Conn;
use crate::core::{Inner, JobMeta};
use crate::error::QueueError;
use crate::proto::{self, Delivered, FetchState, Settle};
use crate::queue::Queue;

type FetchOut = (Option<Conn>, FetchState, Result<Vec<Delivered>, QueueError>);
type FetchFut = BoxFuture<'static, FetchOut>;
type FlushFut = BoxFuture<'static, (Vec<Settle>, Result<(), QueueError>)>;
type RenewFut = BoxFuture<'static, Result<usize, QueueError>>;

/// Most settlements written by one pipeline.
const MAX_FLUSH: usize = 4096;

fn backoff(failures: u32) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << failures.min(6)).min(2000);
    Duration::from_millis(ms)
}

/// The apalis backend of a [`Queue`](crate::Queue); get one from
/// [`Queue::backend`](crate::Queue::backend).
pub struct RedisStreamsBackend<T> {
    inner: Arc<Inner>,
    conn: Option<Conn>,
    state: Option<FetchState>,
    fetch: Option<FetchFut>,
    buffer: VecDeque<Delivered>,
    fetch_backoff: Option<Pin<Box<Sleep>>>,
    fetch_failures: u32,
    tx: mpsc::UnboundedSender<Settle>,
    rx: mpsc::UnboundedReceiver<Settle>,
    pending: Vec<Settle>,
    pending_since: Option<Instant>,
    linger: Option<Pin<Box<Sleep>>>,
    flush: Option<FlushFut>,
    flush_backoff: Option<Pin<Box<Sleep>>>,
    flush_failures: u32,
    close_deadline: Option<Instant>,
    /// Jobs handed to the worker and not yet settled (their leases are renewed).
    started: HashSet<Arc<str>>,
    renew: Option<RenewFut>,
    renew_timer: Option<Pin<Box<Sleep>>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RedisStreamsBackend<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamsBackend")
            .field("queue", &self.inner.cfg.queue)
            .field("buffered", &self.buffer.len())
            .field("pending_settlements", &self.pending.len())
            .finish()
    }
}

impl<T> RedisStreamsBackend<T> {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner,
            conn: None,
            state: Some(FetchState::new()),
            fetch: None,
            buffer: VecDeque::new(),
            fetch_backoff: None,
            fetch_failures: 0,
            tx,
            rx,
            pending: Vec::new(),
            pending_since: None,
            linger: None,
            flush: None,
            flush_backoff: None,
            flush_failures: 0,
            close_deadline: None,
            started: HashSet::new(),
            renew: None,
            renew_timer: None,
            _t: PhantomData,
        }
    }

    fn push_pending(&mut self, s: Settle) {
        self.started.remove(s.id());
        if matches!(s, Settle::Forget { .. }) {
            return;
        }
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.push(s);
    }

    fn start_fetch(&mut self, consumer: &str) {
        let inner = self.inner.clone();
        let conn = self.conn.take();
        let mut state = self.state.take().unwrap_or_else(FetchState::new);
        let consumer = consumer.to_owned();
        self.fetch = Some(
            async move {
                let mut conn = match conn {
                    Some(c) => c,
                    None => match inner.connector.reader().await {
                        Ok(c) => c,
                        Err(e) => return (None, state, Err(e)),
                    },
                };
                let res = proto::fetch(
                    &mut conn,
                    &inner.keys,
                    &inner.cfg,
                    &consumer,
                    inner.cfg.batch_size,
                    &mut state,
                    true,
                )
                .await;
                (Some(conn), state, res)
            }
            .boxed(),
        );
    }

    /// Polls the stored fetch; true when it finished (results buffered or error handled).
    fn poll_fetch(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(f) = self.fetch.as_mut() else {
            return false;
        };
        let Poll::Ready((conn, state, res)) = f.poll_unpin(cx) else {
            return false;
        };
        self.fetch = None;
        self.state = Some(state);
        match res {
            Ok(jobs) => {
                self.conn = conn;
                self.fetch_failures = 0;
                self.buffer.extend(jobs);
            }
            Err(e) => {
                // Drop the connection: the next fetch reconnects (Redis restart, CLIENT KILL).
                self.conn = None;
                self.fetch_failures = self.fetch_failures.saturating_add(1);
                tracing::warn!(queue = %self.inner.cfg.queue, error = %e, failures = self.fetch_failures, "fetch failed; reconnecting after a backoff");
                self.fetch_backoff =
                    Some(Box::pin(tokio::time::sleep(backoff(self.fetch_failures))));
            }
        }
        true
    }

    /// Renews the leases of started jobs every `lease / 3`, so a long-running handler keeps
    /// its job (only ids this consumer still owns are touched).
    fn drive_renewal(&mut self, cx: &mut Context<'_>, consumer: &str) {
        if let Some(f) = self.renew.as_mut() {
            match f.poll_unpin(cx) {
                Poll::Pending => return,
                Poll::Ready(res) => {
                    self.renew = None;
                    match res {
                        Ok(n) => {
                            tracing::trace!(queue = %self.inner.cfg.queue, renewed = n, "leases renewed")
                        }
                        Err(e) => {
                            tracing::warn!(queue = %self.inner.cfg.queue, error = %e, "lease renewal failed")
                        }
                    }
                }
            }
        }
        if self.started.is_empty() {
            self.renew_timer = None;
            return;
        }
        let period = (self.inner.cfg.lease / 3).max(Duration::from_millis(5));
        let timer = self
            .renew_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
        if timer.poll_unpin(cx).is_pending() {
            return;
        }
        self.renew_timer = None;
        let ids: Vec<Arc<str>> = self.started.iter().cloned().collect();
        let inner = self.inner.clone();
        let consumer = consumer.to_owned();
        let mut f = async move {
            let mut conn = inner.shared();
            proto::renew(&mut conn, &inner.keys, &inner.cfg, &consumer, &ids).await
        }
        .boxed();
        if let Poll::Ready(res) = f.poll_unpin(cx) {
            if let Err(e) = res {
                tracing::warn!(queue = %self.inner.cfg.queue, error = %e, "lease renewal failed");
            }
        } else {
            self.renew = Some(f);
        }
        // Arm the next period (registers the waker).
        let mut next = Box::pin(tokio::time::sleep(period));
        let _ = next.poll_unpin(cx);
        self.renew_timer = Some(next);
    }

    /// Drives settlement flushing; returns true when nothing is left to write.
    fn drive_settlements(&mut self, cx: &mut Context<'_>, force: bool) -> bool {
        loop {
            while let Poll::Ready(Some(s)) = self.rx.poll_recv(cx) {
                self.push_pending(s);
            }
            if let Some(f) = self.flush.as_mut() {
                match f.poll_unpin(cx) {
                    Poll::Pending => return false,
                    Poll::Ready((mut items, res)) => {
                        self.flush = None;
                        match res {
                            Ok(()) => self.flush_failures = 0,
                            Err(e) => {
                                self.flush_failures = self.flush_failures.saturating_add(1);
                                tracing::warn!(queue = %self.inner.cfg.queue, error = %e, count = items.len(), "settling jobs failed; will retry");
                                items.append(&mut self.pending);
                                self.pending = items;
                                self.pending_since = Some(Instant::now());
                                self.flush_backoff = Some(Box::pin(tokio::time::sleep(backoff(
                                    self.flush_failures,
                                ))));
                            }
                        }
                        continue;
                    }
                }
            }
            if self.pending.is_empty() {
                self.linger = None;
                self.pending_since = None;
                return true;
            }
            if let Some(b) = self.flush_backoff.as_mut() {
                if b.poll_unpin(cx).is_pending() {
                    return false;
                }
                self.flush_backoff = None;
            }
            let cfg = &self.inner.cfg;
            let since = self.pending_since.unwrap_or_else(Instant::now);
            let due =
                force || self.pending.len() >= cfg.ack_batch || since.elapsed() >= cfg.ack_linger;
            if !due {
                let at = tokio::time::Instant::from_std(since + cfg.ack_linger);
                let sleep = self
                    .linger
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if sleep.poll_unpin(cx).is_pending() {
                    return false;
                }
                self.linger = None;
                continue;
            }
            self.linger = None;
            let items: Vec<Settle> = if self.pending.len() > MAX_FLUSH {
                let rest = self.pending.split_off(MAX_FLUSH);
                std::mem::replace(&mut self.pending, rest)
            } else {
                std::mem::take(&mut self.pending)
            };
            self.pending_since = if self.pending.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
            let inner = self.inner.clone();
            let mut conn = inner.shared();
            self.flush = Some(
                async move {
                    let r = proto::settle(&mut conn, &inner.keys, &inner.cfg, &items).await;
                    (items, r)
                }
                .boxed(),
            );
        }
    }
}

impl<T> Backend for RedisStreamsBackend<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Task = Task<T>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.drive_settlements(cx, false);
        self.drive_renewal(cx, worker.name());
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            self.poll_fetch(cx);
            if let Some(d) = self.buffer.pop_front() {
                if d.fetched_at.elapsed() > self.inner.cfg.lease * 3 / 4 {
                    // Waited in the buffer for most of its lease: another consumer may take
                    // it over any moment, so do not start it here (it is reclaimed, not lost).
                    tracing::debug!(queue = %self.inner.cfg.queue, id = %d.id, "buffered job near its lease end skipped");
                    continue;
                }
                match self.inner.decode::<T>(d) {
                    Ok((args, meta)) => {
                        if self.fetch.is_none()
                            && self.fetch_backoff.is_none()
                            && self.buffer.len() < self.inner.cfg.batch_size / 2
                        {
                            // Prefetch the next batch while this one is worked on.
                            self.start_fetch(worker.name());
                            self.poll_fetch(cx);
                        }
                        let prev = meta.attempt().saturating_sub(1) as usize;
                        // The task id is the stream id; a reclaimed delivery gets its attempt
                        // appended, so it can never clash with a still-running earlier
                        // delivery of the same job in this worker (apalis rejects duplicates).
                        let task_id = if meta.reclaimed() {
                            format!("{}/{}", meta.id(), meta.attempt())
                        } else {
                            meta.id().to_owned()
                        };
                        self.started.insert(meta.id_arc());
                        let task = TaskBuilder::new(args)
                            .task_id(TaskId::from_string(task_id))
                            .attempt(prev)
                            .data(meta)
                            .build();
                        return Poll::Ready(Some(Ok(task)));
                    }
                    Err(settle) => {
                        self.push_pending(settle);
                        continue;
                    }
                }
            }
            if self.fetch.is_none() {
                if let Some(b) = self.fetch_backoff.as_mut() {
                    if b.poll_unpin(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.fetch_backoff = None;
                }
                self.start_fetch(worker.name());
            }
            if !self.poll_fetch(cx) {
                return Poll::Pending;
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        let cfg = &self.inner.cfg;
        let deadline = *self
            .close_deadline
            .get_or_insert_with(|| Instant::now() + (cfg.block + cfg.response_timeout * 2));
        let late = Instant::now() >= deadline;
        // Let an outstanding read finish so its jobs can be handed back now rather than
        // after the lease.
        if self.fetch.is_some() && !self.poll_fetch(cx) && !late {
            return Poll::Pending;
        }
        self.fetch = None;
        let handed_back: Vec<Settle> = self
            .buffer
            .drain(..)
            .map(|d| match d.payload {
                Some(payload) => Settle::Requeue {
                    id: d.id,
                    payload,
                    attempts: d.attempt.saturating_sub(1),
                },
                None => Settle::Dead {
                    id: d.id,
                    payload: bytes::Bytes::new(),
                    attempts: d.attempt,
                    error: "stream entry has no payload field".to_owned(),
                },
            })
            .collect();
        for s in handed_back {
            self.push_pending(s);
        }
        if self.drive_settlements(cx, true) {
            return Poll::Ready(Ok(()));
        }
        if late {
            tracing::warn!(
                queue = %self.inner.cfg.queue,
                unsettled = self.pending.len(),
                "shutdown deadline passed with unsettled jobs; they stay pending and are reclaimed after the lease"
            );
            return Poll::Ready(Ok(()));
        }
        // Make sure we are polled again before the deadline even if Redis never answers.
        let mut wake = Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )));
        if wake.poll_unpin(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        self.linger = Some(wake);
        Poll::Pending
    }
}

impl<T> BackendConfig for RedisStreamsBackend<T> {
    type Args = T;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = SettleLayer;

    fn config(&self) -> &Self::Config {
        &self.inner.cfg
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        SettleLayer {
            inner: self.inner.clone(),
            tx: self.tx.clone(),
        }
    }
}

struct ForgetOnDrop {
    tx: mpsc::UnboundedSender<Settle>,
    id: Option<Arc<str>>,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.send(Settle::Forget { id });
        }
    }
}

/// The backend's middleware: it wraps all user layers, sees each job's final result and
/// hands the settlement to the backend, which writes settlements in batches.
#[derive(Clone)]
pub struct SettleLayer {
    inner: Arc<Inner>,
    tx: mpsc::UnboundedSender<Settle>,
}

impl std::fmt::Debug for SettleLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettleLayer").finish()
    }
}

impl<S> Layer<S> for SettleLayer {
    type Service = SettleService<S>;

    fn layer(&self, service: S) -> Self::Service {
        SettleService {
            service,
            inner: self.inner.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// See [`SettleLayer`].
#[derive(Clone)]
pub struct SettleService<S> {
    service: S,
    inner: Arc<Inner>,
    tx: mpsc::UnboundedSender<Settle>,
}

impl<S> std::fmt::Debug for SettleService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettleService").finish()
    }
}

impl<S, Args> Service<Task<Args>> for SettleService<S>
where
    S: Service<Task<Args>>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let meta = task.ctx().data().get::<JobMeta>().cloned();
        let fut = self.service.call(task);
        let inner = self.inner.clone();
        let tx = self.tx.clone();
        Box::pin(async move {
            // If this future is dropped before the job finished, tell the backend to stop
            // renewing its lease: the job is then reclaimed after the lease, not stuck.
            let mut guard = meta.as_ref().map(|m| ForgetOnDrop {
                tx: tx.clone(),
                id: Some(m.id_arc()),
            });
            let res = fut.await.map_err(Into::into);
            if let Some(g) = guard.as_mut() {
                g.id = None;
            }
            if let Some(meta) = meta {
                let err: Option<&(dyn StdError + 'static)> = match &res {
                    Ok(_) => None,
                    Err(e) => Some(&**e),
                };
                let settle = inner.decide(&meta, err);
                match &settle {
                    Settle::Dead { error, .. } => {
                        tracing::warn!(queue = %inner.cfg.queue, id = meta.id(), attempt = meta.attempt(), error = %error, "job dead-lettered")
                    }
                    Settle::Retry { .. } => {
                        tracing::debug!(queue = %inner.cfg.queue, id = meta.id(), attempt = meta.attempt(), "job failed; retry scheduled")
                    }
                    _ => {}
                }
                // The receiver lives as long as the backend; if it is gone the job stays
                // pending and is reclaimed after the lease.
                let _ = tx.send(settle);
            }
            res
        })
    }
}

impl<T> Queue<T>
where
    T: serde::Serialize + DeserializeOwned + Send + 'static,
{
    /// The apalis backend for `WorkerBuilder::new(name).backend(queue.backend())`. Each call
    /// gives an independent consumer (its own blocking-read connection, made lazily); the
    /// worker's name is the consumer name, and a restarted worker may reuse it at once.
    pub fn backend(&self) -> RedisStreamsBackend<T> {
        RedisStreamsBackend::new(self.inner.clone())
    }
}
