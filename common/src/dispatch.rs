//! Creating a dispatch: the one way every path (a broadcast send, a chatbot flow's first
//! message) records messages and queues them.
//!
//! Outbox rule: the dispatch row, its message rows, the key's `total_messages` and (when the
//! request carried an Idempotency-Key) its record are written in ONE transaction; only after
//! the commit are the jobs pushed. If the push fails, or the process dies in between, the
//! rows stay `queued` and the scheduler's outbox sweep pushes them again; a duplicate job is
//! harmless because a worker claims a row `queued -> sending` once. So an accepted recipient
//! is never lost.
//!
//! The dispatch inherits `test_mode` from the caller (a `sk_test_` key): the worker then
//! sends it to `TEST_GRAPH_API_BASE`, whatever path created it.

use std::future::Future;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::idempotency::{self, IdempotencyRecord};
use crate::jobs::{ReleaseJob, SendJob};
use crate::model::{DispatchStatus, MessageStatus};
use crate::usage;

/// Where jobs go once the rows are committed (the api's queues; a test's own).
pub trait JobSink: Sync {
    /// Pushes one send job per message, pipelined.
    fn push_send(&self, jobs: &[SendJob]) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Pushes the release of a scheduled dispatch, due at `due`.
    fn push_release(
        &self,
        job: ReleaseJob,
        due: SystemTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The messages of a new dispatch, column by column (bound as arrays: one INSERT for all).
#[derive(Debug, Default)]
pub struct NewMessages {
    ids: Vec<Uuid>,
    phones: Vec<String>,
    refs: Vec<Option<String>>,
    payloads: Vec<String>,
}

impl NewMessages {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ids: Vec::with_capacity(n),
            phones: Vec::with_capacity(n),
            refs: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
        }
    }

    /// One message: its id (UUIDv7, also its `biz_opaque_callback_data`), the E.164
    /// recipient, the caller's reference and the Graph API body (JSON).
    pub fn push(&mut self, id: Uuid, to: String, reference: Option<String>, payload: String) {
        self.ids.push(id);
        self.phones.push(to);
        self.refs.push(reference);
        self.payloads.push(payload);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }
}

/// A dispatch to record.
#[derive(Debug)]
pub struct NewDispatch {
    /// Chosen by the caller (UUIDv7), so a response can name it before the commit.
    pub id: Uuid,
    pub account_id: Uuid,
    pub broadcast_id: Option<Uuid>,
    /// The key whose dispatch this is: stored on the dispatch and its messages, and counted in
    /// the key's usage when [`NewDispatch::counts_in_usage`]. `None` for the admin token.
    pub key_id: Option<Uuid>,
    /// The messages' key and usage: Broadcast API sends count; chatbot flow messages do not.
    pub counts_in_usage: bool,
    /// From the caller's key mode: `sk_test_` keys' dispatches go to the test Graph API.
    pub test_mode: bool,
    /// In the future: the dispatch waits (`scheduled`) and is released at this time.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// `"priority": "high"`: ahead of bulk traffic on its number (bulk keeps a share).
    pub high: bool,
    pub messages: NewMessages,
}

/// Why a dispatch was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The Idempotency-Key already has a live record (a concurrent request committed first):
    /// nothing was written.
    #[error("the idempotency key was used by another request")]
    IdempotencyTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Records `d` in `tx` (committing it, together with whatever the caller wrote in it before)
/// and then pushes its jobs. Returns the status the dispatch starts in.
pub async fn create<S: JobSink>(
    mut tx: Transaction<'_, Postgres>,
    sink: &S,
    d: &NewDispatch,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<DispatchStatus, CreateError> {
    // The record first: a concurrent request with the same key waits here, not after its work.
    if let Some(rec) = idempotency {
        if !idempotency::insert(&mut tx, rec).await? {
            return Err(CreateError::IdempotencyTaken);
        }
    }
    let (dispatch_status, message_status) = if d.scheduled_at.is_some() {
        (DispatchStatus::Scheduled, MessageStatus::Scheduled)
    } else {
        (DispatchStatus::Queued, MessageStatus::Queued)
    };
    let key_id = d.key_id.filter(|_| d.counts_in_usage);
    sqlx::query(
        "INSERT INTO dispatches (id, account_id, broadcast_id, key_id, test_mode, phone_number_id, status, total, scheduled_at, priority)
         VALUES ($1, $2, $3, $4, $5,
                 (SELECT phone_number_id FROM phone_numbers WHERE account_id = $2 ORDER BY position, phone_number_id LIMIT 1),
                 $6, $7, $8, $9)",
    )
    .bind(d.id)
    .bind(d.account_id)
    .bind(d.broadcast_id)
    .bind(key_id)
    .bind(d.test_mode)
    .bind(dispatch_status)
    .bind(i32::try_from(d.messages.len()).unwrap_or(i32::MAX))
    .bind(d.scheduled_at)
    .bind(if d.high { "high" } else { "normal" })
    .execute(&mut *tx)
    .await?;
    let m = &d.messages;
    sqlx::query(
        "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, ref, payload, status)
         SELECT u.id, $1, $2, $3, u.to_phone, u.ref, u.payload::jsonb, $4
         FROM UNNEST($5::uuid[], $6::text[], $7::text[], $8::text[]) AS u(id, to_phone, ref, payload)",
    )
    .bind(d.id)
    .bind(d.account_id)
    .bind(key_id)
    .bind(message_status)
    .bind(&m.ids)
    .bind(&m.phones)
    .bind(&m.refs)
    .bind(&m.payloads)
    .execute(&mut *tx)
    .await?;
    if let Some(key_id) = key_id {
        usage::add_messages(&mut tx, key_id, m.len() as i64).await?;
    }
    tx.commit().await?;

    match d.scheduled_at {
        Some(at) => {
            // Due at `scheduled_at` on the schedule queue; the scheduler's scan of due
            // dispatches is the safety net if this push fails.
            let job = ReleaseJob { dispatch_id: d.id };
            if let Err(e) = sink.push_release(job, SystemTime::from(at)).await {
                tracing::warn!(error = format!("{e:#}"), dispatch_id = %d.id,
                    "scheduling the release failed; the scheduler's scan will release it");
            }
        }
        None => {
            let jobs: Vec<SendJob> = m
                .ids
                .iter()
                .map(|&message_id| SendJob {
                    message_id,
                    dispatch_id: d.id,
                    account_id: d.account_id,
                })
                .collect();
            // Committed rows are the record: a failed push is repaired by the outbox sweep.
            if let Err(e) = sink.push_send(&jobs).await {
                metrics::counter!("ezpulze_ingest_push_failures_total").increment(1);
                tracing::warn!(error = format!("{e:#}"), dispatch_id = %d.id,
                    "pushing jobs failed; the outbox sweep will push them");
            }
        }
    }
    Ok(dispatch_status)
}
