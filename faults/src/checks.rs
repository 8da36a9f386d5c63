//! What must hold after every scenario, read from the scenario's Postgres, its Redis prefix
//! and the simulator's ground truth.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use crate::stack::Stack;

/// Statuses a message can still leave.
const NOT_FINAL: &str = "status IN ('scheduled','queued','deferred','sending','accepted')";

/// Waits until every message is final, the simulator has no status left to post and the
/// queue streams under `prefix` are empty (a job a Redis crash gave back is read again and
/// settled); returns how long that took, or `None` past `bound`.
pub async fn drain(
    db: &PgPool,
    stack: &Stack,
    redis_url: &[String],
    prefix: &str,
    bound: Duration,
) -> anyhow::Result<Drain> {
    let start = Instant::now();
    let mut out = Drain::default();
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
            out.final_after.get_or_insert(start.elapsed());
            if queued_entries(redis_url, prefix).await == 0 {
                out.empty_after = Some(start.elapsed());
                return Ok(out);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(out)
}

/// When the drain reached each point, from its start (`None`: not within the bound).
#[derive(Debug, Default, Clone, Copy)]
pub struct Drain {
    /// Every message final, no status left to post.
    pub final_after: Option<Duration>,
    /// And the queue streams empty.
    pub empty_after: Option<Duration>,
}

/// Entries left in the streams and lanes under `prefix` (ready lists, delayed and in-flight
/// sets; the lane registry is not work) (unknown while Redis is unreachable: 1).
async fn queued_entries(redis_url: &[String], prefix: &str) -> u64 {
    match persistent_keys(redis_url, prefix).await {
        Ok(keys) => keys
            .iter()
            .filter(|(k, _)| {
                !k.contains(":registry:") && !k.ends_with(":hi") && !k.ends_with(":lo")
            })
            .filter_map(|(_, (_, len))| *len)
            .sum(),
        Err(_) => 1,
    }
}

/// The nodes to read keys from: the live primaries of a cluster (asked of the first node that
/// answers), or the one server.
async fn primaries(seeds: &[String]) -> anyhow::Result<Vec<String>> {
    for seed in seeds {
        let Ok(client) = redis::Client::open(seed.as_str()) else {
            continue;
        };
        let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        else {
            continue;
        };
        let nodes: redis::RedisResult<String> = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await;
        match nodes {
            Ok(text) => {
                return Ok(text
                    .lines()
                    .filter(|l| l.contains("master") && !l.contains("fail"))
                    .filter_map(|l| l.split_whitespace().nth(1))
                    .filter_map(|a| a.split('@').next())
                    .map(|a| format!("redis://{a}"))
                    .collect())
            }
            // Not a cluster: the one server.
            Err(_) => return Ok(vec![seed.clone()]),
        }
    }
    anyhow::bail!("no Redis node answers")
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
/// send intents, locks), key by key (with, for a stream, its length).
pub async fn persistent_keys(
    redis_urls: &[String],
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, (u64, Option<u64>)>> {
    let mut out = std::collections::BTreeMap::new();
    for node in primaries(redis_urls).await? {
        out.extend(node_persistent_keys(&node, prefix).await?);
    }
    Ok(out)
}

/// [`persistent_keys`] of one node.
async fn node_persistent_keys(
    redis_url: &str,
    prefix: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, (u64, Option<u64>)>> {
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
    let mut out = std::collections::BTreeMap::new();
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query_async(&mut conn).await?;
        if ttl != -1 {
            continue;
        }
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&k)
            .query_async(&mut conn)
            .await?;
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut conn).await?;
        let len: Option<u64> = match kind.as_str() {
            "stream" => redis::cmd("XLEN").arg(&k).query_async(&mut conn).await.ok(),
            "list" => redis::cmd("LLEN").arg(&k).query_async(&mut conn).await.ok(),
            "zset" => redis::cmd("ZCARD")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .ok(),
            _ => None,
        };
        out.insert(k, (used.unwrap_or(0), len));
    }
    Ok(out)
}

/// The keys that grew most between two [`persistent_keys`] readings.
pub fn growth(
    before: &std::collections::BTreeMap<String, (u64, Option<u64>)>,
    after: &std::collections::BTreeMap<String, (u64, Option<u64>)>,
) -> (i64, String) {
    let total = |m: &std::collections::BTreeMap<String, (u64, Option<u64>)>| {
        m.values().map(|v| v.0 as i64).sum::<i64>()
    };
    let mut grown: Vec<(i64, &String, Option<u64>)> = after
        .iter()
        .map(|(k, (b, len))| (*b as i64 - before.get(k).map_or(0, |v| v.0 as i64), k, *len))
        .filter(|g| g.0 > 0)
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.0));
    let top = grown
        .iter()
        .take(3)
        .map(|(b, k, len)| match len {
            Some(n) => format!("{k} +{b} B ({n} entries)"),
            None => format!("{k} +{b} B"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    (total(after) - total(before), top)
}
