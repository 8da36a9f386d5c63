//! The status consumer (run by every worker process): WhatsApp status webhooks (bodies the
//! api checked the signature of and pushed onto the webhook queue) become message states and
//! per-key counters.
//!
//! The reducer is monotone: read(4) > delivered(3) > failed(2) > sent(1) > anything before;
//! the first timestamp of each status is kept; duplicates and reordering change nothing. A
//! batch of events is applied with ONE statement that updates the messages, and, for real
//! transitions only, the usage counters of the keys that sent them (same transaction):
//! `sent` = reached sent or later, `delivered` = delivered or read, `read`, `failed` = ended
//! failed. Events for messages not (yet) known wait in `pending_statuses` and are retried;
//! after [`reduce::PENDING_TTL`] they are dropped and counted.
//!
//! Reading is the queue's (`ezpulze-queue`): batches from the group `status`, bodies of a
//! consumer that died are taken over after the lease, acks are XACK+XDEL in one pipeline.
//!
//! | module | owns |
//! |---|---|
//! | `wire` | the parts of Meta's webhook body that are read |
//! | `fold` | a batch of bodies -> what is known of each message (pure) |
//! | `reduce` | the batch statement, parking and retrying unknown-message events |

mod fold;
mod reduce;
mod wire;

use std::time::{Duration, Instant};

use ezpulze_common::jobs::WebhookBody;
use ezpulze_queue::{Job, Queue};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use fold::{fold, Folded};
pub use reduce::{apply, retry_parked, PENDING_TTL};

/// How often events parked for unknown messages are tried again.
const PENDING_RETRY_EVERY: Duration = Duration::from_secs(2);
/// A batch statement that failed (a deadlock with another consumer) is tried this often.
const APPLY_TRIES: u32 = 4;

/// Consumes the webhook queue until cancelled; a failed step is logged and its bodies come
/// back after the queue's lease.
pub async fn run(
    db: PgPool,
    queue: Queue<WebhookBody>,
    batch: usize,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut consumer = queue.consumer(format!("status-{}", Uuid::new_v4().simple()));
    let mut last_parked = Instant::now();
    while !cancel.is_cancelled() {
        let step = async {
            let jobs = consumer.fetch_batch(batch).await?;
            if !jobs.is_empty() {
                apply_batch(&db, &queue, jobs).await?;
            }
            if last_parked.elapsed() > PENDING_RETRY_EVERY {
                last_parked = Instant::now();
                retry_parked(&db).await?;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            res = step => if let Err(e) = res {
                metrics::counter!("ezpulze_status_step_errors_total").increment(1);
                tracing::warn!(error = format!("{e:#}"), "status consumer step failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// Folds, applies and parks one batch, then acks its bodies.
async fn apply_batch(
    db: &PgPool,
    queue: &Queue<WebhookBody>,
    jobs: Vec<Job<WebhookBody>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_bytes()).collect();
    let folded = fold(&bodies);
    let mut attempt = 1;
    let unmatched = loop {
        match apply(db, &folded).await {
            Ok(u) => break u,
            // A deadlock with another consumer: the batch is simply applied again.
            Err(e) if attempt < APPLY_TRIES => {
                attempt += 1;
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempt,
                    "status batch failed; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    };
    reduce::park(db, &unmatched).await?;
    let metas: Vec<_> = jobs.iter().map(|j| j.meta.clone()).collect();
    queue.ack(&metas).await?;
    metrics::histogram!("ezpulze_status_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("ezpulze_status_bodies_total").increment(jobs.len() as u64);
    Ok(())
}
