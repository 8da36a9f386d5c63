//! What must hold after every scenario, read from the scenario's Postgres, its Redis prefix
//! and the simulator's ground truth.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use crate::stack::Stack;

/// Statuses a message can still leave.
const NOT_FINAL: &str = "status IN ('scheduled','queued','sending','accepted')";

/// Waits until every message is final and the simulator has no status left to post; returns
/// how long that took, or `None` past `bound`.
pub async fn drain(
    db: &PgPool,
    stack: &Stack,
    bound: Duration,
) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    let sql = format!("SELECT count(*) FROM messages WHERE {NOT_FINAL}");
    while start.elapsed() < bound {
        // Postgres may be restarting in the scenario that restarts it: not drained yet.
        let open: i64 = sqlx::query_scalar(&sql).fetch_one(db).await.unwrap_or(1);
        let pending = stack
            .sim_json("/_sim/pending")
            .await
            .ok()
            .and_then(|v| v["webhook_statuses_pending"].as_u64())
            .unwrap_or(1);
        if open == 0 && pending == 0 {
            return Ok(Some(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(None)
}

/// The engine's state after the drain, beside the simulator's truth.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub rows: i64,
    pub distinct_phones: i64,
    pub dispatches: i64,
    pub not_final: i64,
    /// Per-key counters summed: sent, delivered, read, failed.
    pub counters: [i64; 4],
    /// The same four recounted from the messages.
    pub recount: [i64; 4],
    /// The simulator's statuses posted and acknowledged: sent, delivered, read, failed.
    pub truth: [i64; 4],
    pub sim_accepted: i64,
    pub with_wamid: i64,
    pub unknown: i64,
    pub failed_other: i64,
}

pub async fn tally(db: &PgPool, stack: &Stack) -> anyhow::Result<Tally> {
    let (rows, distinct_phones, not_final, with_wamid, unknown, failed): (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(&format!(
            "SELECT count(*), count(DISTINCT to_phone), count(*) FILTER (WHERE {NOT_FINAL}),
                    count(*) FILTER (WHERE wamid IS NOT NULL),
                    count(*) FILTER (WHERE status = 'failed' AND error_code IS NULL AND error_title LIKE 'outcome unknown%'),
                    count(*) FILTER (WHERE status = 'failed')
               FROM messages"
        ))
        .fetch_one(db)
        .await
        .context("counting messages")?;
    let dispatches: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatches")
        .fetch_one(db)
        .await?;
    let c: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(sent), 0)::bigint, coalesce(sum(delivered), 0)::bigint,
                coalesce(sum(read), 0)::bigint, coalesce(sum(failed), 0)::bigint FROM api_key_usage",
    )
    .fetch_one(db)
    .await?;
    let r: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL OR delivered_at IS NOT NULL OR read_at IS NOT NULL),
                count(*) FILTER (WHERE delivered_at IS NOT NULL OR read_at IS NOT NULL),
                count(*) FILTER (WHERE read_at IS NOT NULL),
                count(*) FILTER (WHERE status = 'failed')
           FROM messages",
    )
    .fetch_one(db)
    .await?;
    let stats = stack.sim_json("/_sim/stats").await?;
    let st = |k: &str| stats["statuses"][k].as_i64().unwrap_or(-1);
    Ok(Tally {
        rows,
        distinct_phones,
        dispatches,
        not_final,
        counters: [c.0, c.1, c.2, c.3],
        recount: [r.0, r.1, r.2, r.3],
        truth: [st("sent"), st("delivered"), st("read"), st("failed")],
        sim_accepted: stats["accepted"].as_i64().unwrap_or(-1),
        with_wamid,
        unknown,
        failed_other: failed - unknown,
    })
}

/// The messages not final yet, by status and attempts (for a failure's report).
pub async fn open_messages(db: &PgPool) -> String {
    let rows: Vec<(String, i32, i64, Option<f64>)> = sqlx::query_as(&format!(
        "SELECT status, attempts, count(*), extract(epoch FROM max(next_attempt_at) - now())::float8
           FROM messages WHERE {NOT_FINAL} GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .fetch_all(db)
    .await
    .unwrap_or_default();
    rows.iter()
        .map(|(s, a, n, next)| format!("{n} {s} after {a} attempts (next in {next:.0?} s)"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Tally {
    /// Sends WhatsApp took more than once: every acceptance has a wamid and every message
    /// row keeps one, so acceptances beyond the rows with a wamid are second sends.
    pub fn duplicated(&self) -> i64 {
        (self.sim_accepted - self.with_wamid).max(0)
    }
}

/// Bytes held under `prefix` by keys without a TTL (keys with one expire by themselves:
/// send intents, locks), and how many such keys there are.
pub async fn persistent_bytes(redis_url: &str, prefix: &str) -> anyhow::Result<(u64, usize)> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut keys: Vec<String> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("*{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let (mut bytes, mut n) = (0u64, 0usize);
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut conn).await?;
        if ttl == -1 {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&k)
                .query_async(&mut conn)
                .await?;
            bytes += used.unwrap_or(0);
            n += 1;
        }
    }
    Ok((bytes, n))
}
