//! Waiting until the engine has nothing left to send, instead of sleeping.

use std::fmt;
use std::time::Duration;

use ezpulze_common::jobs::WebhookBody;
use ezpulze_common::model::MessageStatus;
use ezpulze_common::Config;
use ezpulze_queue::Queue;
use ezpulze_runtime::queues;
use sqlx::PgPool;

use crate::app::TestApp;

/// How long [`drain`] waits at most.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

/// What is left to send: the send queue's jobs and the message rows not yet sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Left {
    pub depth: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub queued_rows: i64,
    pub sending_rows: i64,
}

impl Left {
    pub fn is_idle(&self) -> bool {
        *self == Left::default()
    }
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "send queue depth {}, in flight {}, delayed {}; message rows queued {}, sending {}",
            self.depth, self.in_flight, self.delayed, self.queued_rows, self.sending_rows
        )
    }
}

/// The send queue and the message rows of one engine (its database and Redis prefix).
pub struct Engine {
    queue: crate::send_jobs::SendJobs,
    webhooks: Vec<Queue<WebhookBody>>,
    db: PgPool,
}

impl Engine {
    pub async fn connect(config: &Config, db: PgPool) -> Engine {
        let queue = crate::send_jobs::SendJobs::connect(config, None).await;
        let webhooks = queues::connect_webhooks(config)
            .await
            .expect("connect the webhook queue");
        Engine {
            queue,
            webhooks,
            db,
        }
    }

    pub async fn of(app: &TestApp) -> Engine {
        Self::connect(&app.config(), app.pool().await).await
    }

    /// What is left right now.
    pub async fn left(&self) -> Left {
        let stats = self.queue.stats().await.expect("send queue stats");
        let rows: Vec<(MessageStatus, i64)> = sqlx::query_as(&format!(
            "SELECT status, count(*) FROM messages WHERE status IN ({}) GROUP BY status",
            MessageStatus::sql_list(&[MessageStatus::Queued, MessageStatus::Sending])
        ))
        .fetch_all(&self.db)
        .await
        .expect("count waiting message rows");
        let count =
            |want: MessageStatus| rows.iter().find(|(s, _)| *s == want).map_or(0, |(_, n)| *n);
        Left {
            depth: stats.depth,
            in_flight: stats.in_flight,
            delayed: stats.delayed,
            queued_rows: count(MessageStatus::Queued),
            sending_rows: count(MessageStatus::Sending),
        }
    }

    /// Status bodies on the webhook queue not yet applied and acked: (depth, in flight).
    pub async fn webhooks_left(&self) -> (u64, u64) {
        let mut left = (0, 0);
        for w in &self.webhooks {
            let stats = w.stats().await.expect("webhook queue stats");
            left.0 += stats.depth;
            left.1 += stats.in_flight;
        }
        left
    }

    /// Waits until nothing is left (see [`drain`]).
    pub async fn drain(&self, deadline: Duration) {
        let start = std::time::Instant::now();
        loop {
            let left = self.left().await;
            if left.is_idle() {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "not drained after {deadline:?}: {left}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits (at most [`DRAIN_DEADLINE`]) until the send queue's depth, in-flight and delayed
/// jobs are 0 and no message row is `queued` or `sending`; panics naming what is left.
pub async fn drain(app: &TestApp) {
    Engine::of(app).await.drain(DRAIN_DEADLINE).await;
}
