//! The send lanes as every process uses them: a lane per phone number (the dispatch's),
//! a group per dispatch inside it, an item per message.
//!
//! Producers (the api's ingest and resume, the scheduler's releases and outbox, the worker's
//! drain of the legacy `send` stream) hand [`SendJob`]s to [`SendLanes::push`]: one query
//! reads each dispatch's number and priority, then each dispatch's jobs go to its lane in
//! chunked scripts. The worker reads the lanes (see its README: fairness rule).

use std::collections::HashMap;

use anyhow::Context;
use ezpulze_common::jobs::SendJob;
use ezpulze_common::keyspace::SEND_QUEUE;
use ezpulze_common::Config;
use ezpulze_queue::{LaneItem, Lanes, LanesConfig};
use sqlx::PgPool;
use uuid::Uuid;

/// The lane of dispatches that have no phone number (their messages fail as `config`).
pub const NO_NUMBER_LANE: &str = "none";

/// The lanes' defaults under the configured prefix.
pub fn config(config: &Config) -> LanesConfig {
    let mut cfg = LanesConfig::new(config.redis_prefix.clone(), SEND_QUEUE);
    cfg.shards = config.lane_shards;
    cfg
}

/// A dispatch's lane and priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its phone number ([`NO_NUMBER_LANE`] when it has none).
    pub lane: String,
    /// `"priority": "high"`.
    pub high: bool,
}

/// Send lanes plus the way from a job to its lane.
#[derive(Clone, Debug)]
pub struct SendLanes {
    lanes: Lanes,
}

impl SendLanes {
    /// Connects the configured Redis.
    pub async fn connect(config: &Config, cfg: LanesConfig) -> anyhow::Result<Self> {
        let lanes = Lanes::connect(crate::queues::target(config), cfg)
            .await
            .context("connecting the send lanes")?;
        Ok(Self { lanes })
    }

    /// The lanes themselves.
    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    /// The lane and priority of each of `dispatches` (one query).
    pub async fn routes(db: &PgPool, dispatches: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Route>> {
        let rows: Vec<(Uuid, Option<String>, bool)> = sqlx::query_as(
            "SELECT id, phone_number_id, priority = 'high' FROM dispatches WHERE id = ANY($1)",
        )
        .bind(dispatches)
        .fetch_all(db)
        .await
        .context("reading the lanes of dispatches")?;
        Ok(rows
            .into_iter()
            .map(|(id, pn, high)| {
                (
                    id,
                    Route {
                        lane: pn.unwrap_or_else(|| NO_NUMBER_LANE.to_owned()),
                        high,
                    },
                )
            })
            .collect())
    }

    /// Pushes `jobs` onto their dispatches' lanes. Jobs of a dispatch that no longer exists
    /// are dropped (nothing could send them).
    pub async fn push(&self, db: &PgPool, jobs: &[SendJob]) -> anyhow::Result<usize> {
        let mut by_dispatch: HashMap<Uuid, Vec<&SendJob>> = HashMap::new();
        for j in jobs {
            by_dispatch.entry(j.dispatch_id).or_default().push(j);
        }
        let ids: Vec<Uuid> = by_dispatch.keys().copied().collect();
        let routes = Self::routes(db, &ids).await?;
        let mut pushed = 0;
        for (dispatch, jobs) in by_dispatch {
            let Some(route) = routes.get(&dispatch) else {
                continue;
            };
            let items: Vec<String> = jobs.iter().map(|j| encode(j)).collect();
            pushed += self
                .lanes
                .push(&route.lane, &group(dispatch), route.high, &items)
                .await
                .context("pushing to a send lane")?;
        }
        Ok(pushed)
    }

    /// Removes the ready and delayed jobs of a cancelled or paused dispatch from its lane.
    pub async fn purge(&self, lane: &str, dispatch: Uuid) -> anyhow::Result<u64> {
        self.lanes
            .purge(lane, &group(dispatch))
            .await
            .context("purging a dispatch's lane")
    }
}

/// A dispatch's group name in its lane.
pub fn group(dispatch: Uuid) -> String {
    dispatch.simple().to_string()
}

/// A job as a lane item (the dispatch is its group): `<message id>.<account id>`.
pub fn encode(job: &SendJob) -> String {
    format!("{}.{}", job.message_id.simple(), job.account_id.simple())
}

/// The job a lane item stands for (`None`: not one of ours).
pub fn decode(item: &LaneItem) -> Option<SendJob> {
    let dispatch_id = Uuid::try_parse(item.group()).ok()?;
    let (m, a) = item.item().split_once('.')?;
    Some(SendJob {
        message_id: Uuid::try_parse(m).ok()?,
        dispatch_id,
        account_id: Uuid::try_parse(a).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_penalises_the_gcra_its_lane_reads() {
        // `Throttle::penalize` (after a 130429) writes the key the lane's read script uses.
        let keys = ezpulze_common::keyspace::Keyspace::new("ezp");
        assert_eq!(
            keys.throughput("106540352242922"),
            format!(
                "{}:tp",
                ezpulze_queue::lanes::lane_base("ezp", SEND_QUEUE, "106540352242922")
            )
        );
    }

    #[test]
    fn a_job_survives_its_lane_item() {
        let job = SendJob {
            message_id: Uuid::now_v7(),
            dispatch_id: Uuid::now_v7(),
            account_id: Uuid::new_v4(),
        };
        let item = LaneItem {
            lane: "123".into(),
            member: format!("{}|{}", group(job.dispatch_id), encode(&job)),
        };
        assert_eq!(decode(&item), Some(job));
        let bad = LaneItem {
            lane: "123".into(),
            member: "x|y".into(),
        };
        assert_eq!(decode(&bad), None);
    }
}
