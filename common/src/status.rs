//! The status consumer (run by every worker process): WhatsApp status webhooks (raw bodies the api pushed onto a Redis
//! stream after checking their signature) become message states and per-key counters.
//!
//! The reducer is monotone: read(4) > delivered(3) > failed(2) > sent(1) > anything before;
//! the first timestamp of each status is kept; duplicates and reordering change nothing. A
//! batch of events is applied with ONE statement that updates the messages, and, for real
//! transitions only, the usage counters of the keys that sent them (same transaction):
//! `sent` = reached sent or later, `delivered` = delivered or read, `read`, `failed` = ended
//! failed. Events for messages not (yet) known wait in `pending_statuses` and are retried;
//! after `PENDING_TTL` they are dropped and counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Config;
use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use redis::AsyncConnectionConfig;
use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const GROUP: &str = "status";
const PENDING_TTL: Duration = Duration::from_secs(3600);
const PENDING_RETRY_EVERY: Duration = Duration::from_secs(2);
const CLAIM_IDLE_MS: u64 = 60_000;

/// The stream the api's webhook receiver writes raw bodies to (one hash tag per prefix).
pub fn stream_key(prefix: &str) -> String {
    format!("{{{prefix}:webhooks}}:stream")
}

/// Deletes the status group's consumers of worker processes that stopped (nothing pending,
/// no read for `idle`); returns how many.
pub async fn prune_consumers(
    conn: &mut redis::aio::ConnectionManager,
    prefix: &str,
    idle: Duration,
) -> redis::RedisResult<usize> {
    ezpulze_queue::prune_idle_consumers(conn, &stream_key(prefix), GROUP, idle).await
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
struct Value {
    #[serde(default)]
    statuses: Vec<StatusEvent>,
}

#[derive(Deserialize)]
struct StatusEvent {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<EventError>,
}

#[derive(Deserialize)]
struct EventError {
    code: i64,
    #[serde(default)]
    title: Option<String>,
}

/// Everything known about one message from a batch of events.
#[derive(Debug, Default, Clone)]
pub struct Folded {
    pub message_id: Option<Uuid>,
    pub wamid: Option<String>,
    pub sent: Option<DateTime<Utc>>,
    pub delivered: Option<DateTime<Utc>>,
    pub read: Option<DateTime<Utc>>,
    pub failed: Option<DateTime<Utc>>,
    pub error_code: Option<i32>,
    pub error_title: Option<String>,
}

fn earliest(slot: &mut Option<DateTime<Utc>>, t: DateTime<Utc>) {
    if slot.is_none_or(|s| t < s) {
        *slot = Some(t);
    }
}

impl Folded {
    fn add(&mut self, status: &str, at: DateTime<Utc>, code: Option<i32>, title: Option<String>) {
        match status {
            "sent" => earliest(&mut self.sent, at),
            "delivered" => earliest(&mut self.delivered, at),
            "read" => earliest(&mut self.read, at),
            "failed" => {
                earliest(&mut self.failed, at);
                if code.is_some() {
                    self.error_code = code;
                    self.error_title = title;
                }
            }
            _ => {}
        }
    }
}

/// Parses raw webhook bodies and folds their statuses per message (by our callback id, else
/// by wamid). Unknown statuses (e.g. `played`) and malformed bodies are skipped and counted.
pub fn fold(bodies: &[Vec<u8>]) -> Vec<Folded> {
    let mut by_key: HashMap<String, Folded> = HashMap::new();
    for body in bodies {
        let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
            metrics::counter!("ezpulze_status_malformed_total").increment(1);
            continue;
        };
        for ev in env
            .entry
            .into_iter()
            .flat_map(|e| e.changes)
            .filter_map(|c| c.value)
            .flat_map(|v| v.statuses)
        {
            metrics::counter!("ezpulze_status_events_total", "status" => status_label(&ev.status))
                .increment(1);
            let message_id = ev
                .biz_opaque_callback_data
                .as_deref()
                .and_then(|c| Uuid::try_parse(c).ok());
            let key = key_of(message_id, Some(&ev.id));
            let at = ev
                .timestamp
                .as_deref()
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
                .unwrap_or_else(Utc::now);
            let (code, title) = match ev.errors.into_iter().next() {
                Some(e) => (i32::try_from(e.code).ok(), e.title),
                None => (None, None),
            };
            let f = by_key.entry(key).or_insert_with(|| Folded {
                message_id,
                wamid: Some(ev.id.clone()),
                ..Folded::default()
            });
            f.add(&ev.status, at, code, title);
        }
    }
    by_key.into_values().collect()
}

/// How events are grouped: by our message id, else by wamid.
fn key_of(message_id: Option<Uuid>, wamid: Option<&str>) -> String {
    match message_id {
        Some(id) => id.to_string(),
        None => format!("w:{}", wamid.unwrap_or("")),
    }
}

fn status_label(s: &str) -> &'static str {
    match s {
        "sent" => "sent",
        "delivered" => "delivered",
        "read" => "read",
        "failed" => "failed",
        _ => "other",
    }
}

/// Applies folded events in one statement; returns the events that matched no message.
pub async fn apply(db: &PgPool, events: &[Folded]) -> anyhow::Result<Vec<Folded>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Option<Uuid>> = events.iter().map(|e| e.message_id).collect();
    let wamids: Vec<Option<String>> = events.iter().map(|e| e.wamid.clone()).collect();
    let col = |f: fn(&Folded) -> Option<DateTime<Utc>>| events.iter().map(f).collect::<Vec<_>>();
    let matched: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "WITH ev AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                                  $5::timestamptz[], $6::timestamptz[], $7::int[], $8::text[])
                 AS e(mid, wamid, s_ts, d_ts, r_ts, f_ts, ecode, etitle)),
         t AS (
             SELECT tid, min(s_ts) AS s_ts, min(d_ts) AS d_ts, min(r_ts) AS r_ts, min(f_ts) AS f_ts,
                    max(ecode) AS ecode, max(etitle) AS etitle
             FROM (SELECT e.mid AS tid, e.* FROM ev e WHERE e.mid IS NOT NULL
                   UNION ALL
                   SELECT m.id AS tid, e.* FROM ev e JOIN messages m ON e.mid IS NULL AND m.wamid = e.wamid) x
             GROUP BY tid
             ORDER BY tid),
         o AS (
             SELECT m.id, m.key_id,
                    (m.sent_at IS NOT NULL OR m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS had_sent,
                    (m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS had_delivered,
                    (m.read_at IS NOT NULL) AS had_read,
                    (m.status = 'failed') AS had_failed,
                    CASE m.status WHEN 'read' THEN 4 WHEN 'delivered' THEN 3 WHEN 'failed' THEN 2
                                  WHEN 'sent' THEN 1 ELSE 0 END AS old_rank,
                    CASE WHEN t.r_ts IS NOT NULL THEN 4 WHEN t.d_ts IS NOT NULL THEN 3
                         WHEN t.f_ts IS NOT NULL THEN 2 WHEN t.s_ts IS NOT NULL THEN 1 ELSE 0 END AS ev_rank,
                    t.s_ts, t.d_ts, t.r_ts, t.f_ts, t.ecode, t.etitle
             FROM t CROSS JOIN LATERAL (
                 SELECT * FROM messages m WHERE m.id = t.tid FOR UPDATE) m),
         u AS (
             UPDATE messages m SET
                 status = CASE WHEN o.ev_rank > o.old_rank
                               THEN (ARRAY['sent','failed','delivered','read'])[o.ev_rank] ELSE m.status END,
                 sent_at = COALESCE(m.sent_at, o.s_ts),
                 delivered_at = COALESCE(m.delivered_at, o.d_ts),
                 read_at = COALESCE(m.read_at, o.r_ts),
                 failed_at = COALESCE(m.failed_at, o.f_ts),
                 error_code = COALESCE(o.ecode, m.error_code),
                 error_title = COALESCE(o.etitle, m.error_title),
                 updated_at = now()
             FROM o WHERE m.id = o.id
             RETURNING m.id, m.wamid, m.key_id, o.had_sent, o.had_delivered, o.had_read, o.had_failed,
                 (m.sent_at IS NOT NULL OR m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS has_sent,
                 (m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS has_delivered,
                 (m.read_at IS NOT NULL) AS has_read,
                 (m.status = 'failed') AS has_failed),
         c AS (
             INSERT INTO api_key_usage AS k (key_id, sent, delivered, read, failed)
             SELECT key_id, sum(has_sent::int - had_sent::int), sum(has_delivered::int - had_delivered::int),
                    sum(has_read::int - had_read::int), sum(has_failed::int - had_failed::int)
             FROM u WHERE key_id IS NOT NULL GROUP BY key_id
             ON CONFLICT (key_id) DO UPDATE SET sent = k.sent + EXCLUDED.sent,
                 delivered = k.delivered + EXCLUDED.delivered, read = k.read + EXCLUDED.read,
                 failed = k.failed + EXCLUDED.failed)
         SELECT id, wamid FROM u",
    )
    .bind(&ids)
    .bind(&wamids)
    .bind(col(|e| e.sent))
    .bind(col(|e| e.delivered))
    .bind(col(|e| e.read))
    .bind(col(|e| e.failed))
    .bind(events.iter().map(|e| e.error_code).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.error_title.clone()).collect::<Vec<_>>())
    .fetch_all(db)
    .await
    .context("applying status events")?;
    let hit_ids: std::collections::HashSet<Uuid> = matched.iter().map(|m| m.0).collect();
    let hit_wamids: std::collections::HashSet<&str> =
        matched.iter().filter_map(|m| m.1.as_deref()).collect();
    let unmatched: Vec<Folded> = events
        .iter()
        .filter(|e| match e.message_id {
            Some(id) => !hit_ids.contains(&id),
            None => !e.wamid.as_deref().is_some_and(|w| hit_wamids.contains(w)),
        })
        .cloned()
        .collect();
    metrics::counter!("ezpulze_status_applied_total").increment(matched.len() as u64);
    Ok(unmatched)
}

/// Keeps events that matched nothing, to be retried.
async fn park(db: &PgPool, events: &[Folded]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    metrics::counter!("ezpulze_status_unmatched_total").increment(events.len() as u64);
    // One row per status of each event (so the retry re-folds them exactly).
    let mut ids = Vec::new();
    let mut wamids = Vec::new();
    let mut statuses = Vec::new();
    let mut ats = Vec::new();
    let mut codes = Vec::new();
    let mut titles = Vec::new();
    for e in events {
        for (status, at) in [
            ("sent", e.sent),
            ("delivered", e.delivered),
            ("read", e.read),
            ("failed", e.failed),
        ] {
            if let Some(at) = at {
                ids.push(e.message_id);
                wamids.push(e.wamid.clone());
                statuses.push(status);
                ats.push(at);
                codes.push(if status == "failed" {
                    e.error_code
                } else {
                    None
                });
                titles.push(if status == "failed" {
                    e.error_title.clone()
                } else {
                    None
                });
            }
        }
    }
    sqlx::query(
        "INSERT INTO pending_statuses (message_id, wamid, status, event_at, error_code, error_title)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::text[])",
    )
    .bind(&ids)
    .bind(&wamids)
    .bind(&statuses)
    .bind(&ats)
    .bind(&codes)
    .bind(&titles)
    .execute(db)
    .await
    .context("parking unmatched status events")?;
    Ok(())
}

/// Retries parked events; drops (and counts) those older than the TTL.
pub async fn retry_parked(db: &PgPool) -> anyhow::Result<usize> {
    #[derive(sqlx::FromRow)]
    struct Parked {
        id: i64,
        message_id: Option<Uuid>,
        wamid: Option<String>,
        status: String,
        event_at: DateTime<Utc>,
        error_code: Option<i32>,
        error_title: Option<String>,
    }
    let mut tx = db.begin().await?;
    let rows: Vec<Parked> = sqlx::query_as(
        "SELECT id, message_id, wamid, status, event_at, error_code, error_title FROM pending_statuses
         ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut by_key: HashMap<String, Folded> = HashMap::new();
    for r in &rows {
        let key = key_of(r.message_id, r.wamid.as_deref());
        by_key
            .entry(key)
            .or_insert_with(|| Folded {
                message_id: r.message_id,
                wamid: r.wamid.clone(),
                ..Folded::default()
            })
            .add(&r.status, r.event_at, r.error_code, r.error_title.clone());
    }
    let events: Vec<Folded> = by_key.into_values().collect();
    let unmatched = apply(db, &events).await?;
    let still: std::collections::HashSet<String> = unmatched
        .iter()
        .map(|e| key_of(e.message_id, e.wamid.as_deref()))
        .collect();
    let done: Vec<i64> = rows
        .iter()
        .filter(|r| !still.contains(&key_of(r.message_id, r.wamid.as_deref())))
        .map(|r| r.id)
        .collect();
    sqlx::query("DELETE FROM pending_statuses WHERE id = ANY($1)")
        .bind(&done)
        .execute(&mut *tx)
        .await?;
    let expired = sqlx::query(
        "DELETE FROM pending_statuses WHERE received_at < now() - make_interval(secs => $1)",
    )
    .bind(PENDING_TTL.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if expired > 0 {
        metrics::counter!("ezpulze_status_expired_total").increment(expired);
        tracing::warn!(expired, "status events for unknown messages expired");
    }
    tx.commit().await?;
    Ok(done.len())
}

async fn reader(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    // Blocking reads must outlive the client's default response timeout.
    let cfg = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(3)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// Consumes the webhook stream until cancelled, reconnecting after errors.
pub async fn run(
    config: Config,
    db: PgPool,
    redis: redis::Client,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let key = stream_key(&config.redis_prefix);
    let me = format!("status-{}", Uuid::new_v4().simple());
    let mut last_parked = Instant::now();
    let mut last_claim = Instant::now() - Duration::from_secs(3600);
    let mut conn: Option<MultiplexedConnection> = None;
    while !cancel.is_cancelled() {
        let c = match &mut conn {
            Some(c) => c,
            None => match reader(&redis).await {
                Ok(mut c) => {
                    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&key)
                        .arg(GROUP)
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async(&mut c)
                        .await;
                    if let Err(e) = created {
                        if e.code() != Some("BUSYGROUP") {
                            tracing::warn!(error = %e, "creating the status consumer group");
                        }
                    }
                    conn.insert(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "status consumer cannot reach Redis; retrying");
                    tokio::select! { _ = cancel.cancelled() => break, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                    continue;
                }
            },
        };
        let step = async {
            let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
            if last_claim.elapsed() > Duration::from_secs(30) {
                last_claim = Instant::now();
                // Events held by a consumer that died: take them over.
                let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&me)
                    .arg(CLAIM_IDLE_MS)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(config.status_batch)
                    .query_async(c)
                    .await?;
                for id in claimed.claimed {
                    if let Some(b) = id.get::<Vec<u8>>("b") {
                        entries.push((id.id, b));
                    }
                }
            }
            if entries.is_empty() {
                let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&me)
                    .arg("COUNT")
                    .arg(config.status_batch)
                    .arg("BLOCK")
                    .arg(500)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(c)
                    .await?;
                for k in reply.map(|r| r.keys).unwrap_or_default() {
                    for id in k.ids {
                        let body = id.get::<Vec<u8>>("b").unwrap_or_default();
                        entries.push((id.id, body));
                    }
                }
            }
            if !entries.is_empty() {
                let started = Instant::now();
                let bodies: Vec<Vec<u8>> = entries.iter().map(|e| e.1.clone()).collect();
                let folded = fold(&bodies);
                let mut attempt = 0;
                let unmatched = loop {
                    match apply(&db, &folded).await {
                        Ok(u) => break u,
                        // A deadlock with another consumer: the batch is simply applied again.
                        Err(e) if attempt < 3 => {
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
                park(&db, &unmatched).await?;
                let ids: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
                redis::pipe()
                    .cmd("XACK")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&ids)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&key)
                    .arg(&ids)
                    .ignore()
                    .query_async::<()>(c)
                    .await?;
                metrics::histogram!("ezpulze_status_batch_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("ezpulze_status_bodies_total").increment(entries.len() as u64);
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
                tracing::warn!(error = format!("{e:#}"), "status consumer step failed; reconnecting");
                conn = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_first_timestamps_and_errors_per_message() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": [
            {"id": "wamid.A", "status": "read", "timestamp": "20", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.A", "status": "sent", "timestamp": "10", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.A", "status": "sent", "timestamp": "5", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.B", "status": "failed", "timestamp": "7", "errors": [{"code": 131049, "title": "engagement"}]},
            {"id": "wamid.C", "status": "played", "timestamp": "7"}
        ]}}]}]});
        let mut folded = fold(&[
            serde_json::to_vec(&body).expect("json"),
            b"not json".to_vec(),
        ]);
        folded.sort_by_key(|f| f.wamid.clone());
        assert_eq!(folded.len(), 3);
        assert_eq!(folded[0].message_id, Some(id));
        assert_eq!(folded[0].sent.map(|t| t.timestamp()), Some(5));
        assert_eq!(folded[0].read.map(|t| t.timestamp()), Some(20));
        assert_eq!(folded[1].error_code, Some(131049));
        assert!(folded[2].sent.is_none() && folded[2].failed.is_none());
    }
}
