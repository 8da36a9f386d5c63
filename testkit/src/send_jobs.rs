//! The send jobs of one engine as tests see them: the lanes (where every producer pushes)
//! and the legacy send stream (drained into the lanes by the workers), counted together.

use ezpulze_common::jobs::SendJob;
use ezpulze_common::Config;
use ezpulze_queue::{Queue, QueueError, QueueStats};
use ezpulze_runtime::send_lanes::{self, SendLanes};

/// The lanes and the legacy stream of one Redis prefix.
#[derive(Clone, Debug)]
pub struct SendJobs {
    pub legacy: Queue<SendJob>,
    pub lanes: SendLanes,
    db: Option<sqlx::PgPool>,
}

impl SendJobs {
    /// Connects both; with `db`, [`SendJobs::push_bulk`] pushes to the lanes (else to the
    /// legacy stream).
    pub async fn connect(config: &Config, db: Option<sqlx::PgPool>) -> SendJobs {
        let legacy =
            ezpulze_runtime::queues::connect(config, ezpulze_runtime::queues::send(config))
                .await
                .expect("connect the legacy send stream");
        let lanes = SendLanes::connect(config, send_lanes::config(config))
            .await
            .expect("connect the send lanes");
        SendJobs { legacy, lanes, db }
    }

    /// Ready, delayed, in-flight and dead jobs of both (dead: the legacy stream's).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let l = self.legacy.stats().await?;
        let s = self.lanes.lanes().stats().await?;
        Ok(QueueStats {
            depth: l.depth + s.ready,
            delayed: l.delayed + s.delayed,
            in_flight: l.in_flight + s.in_flight,
            dead: l.dead,
            oldest_pending_age: l.oldest_pending_age,
        })
    }

    /// Pushes jobs as the api does (to their lanes), or to the legacy stream without a db.
    pub async fn push_bulk(&self, jobs: &[SendJob]) -> anyhow::Result<usize> {
        match &self.db {
            Some(db) => self.lanes.push(db, jobs).await,
            None => Ok(self.legacy.push_bulk(jobs).await?),
        }
    }

    /// Removes every job (a lost Redis, as far as the jobs go).
    pub async fn purge(&self) -> Result<(), QueueError> {
        self.legacy.purge().await?;
        self.lanes.lanes().clear().await
    }
}
