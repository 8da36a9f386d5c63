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
use sqlx::{PgConnection, Postgres, Transaction};
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
    /// The template every message uses (a template's pause finds its dispatches by it,
    /// `crate::template_status`); `None` when free-form or mixed.
    pub template_id: Option<Uuid>,
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
    /// Recipients of the request that were not queued (kept on the dispatch).
    pub rejections: NewRejections,
}

/// Recipients a dispatch did not queue, column by column (one INSERT for all).
#[derive(Debug, Default)]
pub struct NewRejections {
    ordinals: Vec<i64>,
    contact_ids: Vec<Option<Uuid>>,
    phones: Vec<Option<String>>,
    codes: Vec<String>,
    messages: Vec<String>,
}

impl NewRejections {
    /// One rejection: its position (the request index, or the position in the audience),
    /// the contact (audience sends), the phone when it was one, a code and a message.
    pub fn push(
        &mut self,
        ordinal: i64,
        contact_id: Option<Uuid>,
        phone: Option<String>,
        code: &str,
        message: String,
    ) {
        self.ordinals.push(ordinal);
        self.contact_ids.push(contact_id);
        self.phones.push(phone);
        self.codes.push(code.to_string());
        self.messages.push(message);
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
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
    insert_row(&mut tx, d, dispatch_status, d.messages.len()).await?;
    let key_id = d.key_id.filter(|_| d.counts_in_usage);
    let m = &d.messages;
    insert_messages(&mut tx, d.id, d.account_id, key_id, message_status, m).await?;
    insert_rejections(&mut tx, d.id, &d.rejections).await?;
    if let Some(key_id) = key_id {
        usage::add_messages(&mut tx, key_id, m.len() as i64).await?;
    }
    tx.commit().await?;

    match d.scheduled_at {
        Some(at) => push_release(sink, d.id, at).await,
        None => push_sends(sink, d.id, d.account_id, &m.ids).await,
    }
    Ok(dispatch_status)
}

/// Inserts the dispatch's row in `status`, with `total` messages so far.
pub async fn insert_row(
    conn: &mut PgConnection,
    d: &NewDispatch,
    status: DispatchStatus,
    total: usize,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO dispatches (id, account_id, broadcast_id, key_id, test_mode, phone_number_id, status, total, scheduled_at, priority, template_id)
         VALUES ($1, $2, $3, $4, $5,
                 (SELECT phone_number_id FROM phone_numbers WHERE account_id = $2 ORDER BY position, phone_number_id LIMIT 1),
                 $6, $7, $8, $9, $10)",
    )
    .bind(d.id)
    .bind(d.account_id)
    .bind(d.broadcast_id)
    .bind(d.key_id.filter(|_| d.counts_in_usage))
    .bind(d.test_mode)
    .bind(status)
    .bind(i32::try_from(total).unwrap_or(i32::MAX))
    .bind(d.scheduled_at)
    .bind(if d.high { "high" } else { "normal" })
    .bind(d.template_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts `m` as messages of the dispatch in `status` (one statement).
pub async fn insert_messages(
    conn: &mut PgConnection,
    dispatch_id: Uuid,
    account_id: Uuid,
    key_id: Option<Uuid>,
    status: MessageStatus,
    m: &NewMessages,
) -> sqlx::Result<()> {
    if m.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, ref, payload, status)
         SELECT u.id, $1, $2, $3, u.to_phone, u.ref, u.payload, $4
         FROM UNNEST($5::uuid[], $6::text[], $7::text[], $8::text[]) AS u(id, to_phone, ref, payload)",
    )
    .bind(dispatch_id)
    .bind(account_id)
    .bind(key_id)
    .bind(status)
    .bind(&m.ids)
    .bind(&m.phones)
    .bind(&m.refs)
    .bind(&m.payloads)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inserts the recipients a dispatch did not queue (one statement).
pub async fn insert_rejections(
    conn: &mut PgConnection,
    dispatch_id: Uuid,
    r: &NewRejections,
) -> sqlx::Result<()> {
    if r.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dispatch_rejections (dispatch_id, ordinal, contact_id, phone, code, message)
         SELECT $1, u.ordinal, u.contact_id, u.phone, u.code, u.message
         FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[])
              AS u(ordinal, contact_id, phone, code, message)",
    )
    .bind(dispatch_id)
    .bind(&r.ordinals)
    .bind(&r.contact_ids)
    .bind(&r.phones)
    .bind(&r.codes)
    .bind(&r.messages)
    .execute(conn)
    .await?;
    Ok(())
}

/// Pushes the release of a scheduled dispatch (after its commit). A failure is logged: the
/// scheduler's scan of due dispatches releases it anyway.
pub async fn push_release<S: JobSink>(sink: &S, dispatch_id: Uuid, at: DateTime<Utc>) {
    let job = ReleaseJob { dispatch_id };
    if let Err(e) = sink.push_release(job, SystemTime::from(at)).await {
        tracing::warn!(error = format!("{e:#}"), %dispatch_id,
            "scheduling the release failed; the scheduler's scan will release it");
    }
}

/// Pushes one send job per message (after their commit). Committed rows are the record: a
/// failed push is logged and repaired by the outbox sweep.
pub async fn push_sends<S: JobSink>(sink: &S, dispatch_id: Uuid, account_id: Uuid, ids: &[Uuid]) {
    if ids.is_empty() {
        return;
    }
    let jobs: Vec<SendJob> = ids
        .iter()
        .map(|&message_id| SendJob {
            message_id,
            dispatch_id,
            account_id,
        })
        .collect();
    if let Err(e) = sink.push_send(&jobs).await {
        metrics::counter!("ezpulze_ingest_push_failures_total").increment(1);
        tracing::warn!(error = format!("{e:#}"), %dispatch_id,
            "pushing jobs failed; the outbox sweep will push them");
    }
}
