//! The only writer of `api_key_usage`, the per-key counters the usage stats show.
//!
//! `total_messages` grows when a send is recorded (same transaction as its messages);
//! `sent`, `delivered`, `read` and `failed` grow on real transitions of a key's messages
//! (status webhooks, failed sends, swept unknown outcomes), inside the statement that makes
//! the transition, so a counter never moves without its message. The statements here upsert:
//! a key without a row yet gets one.

use sqlx::PgConnection;
use uuid::Uuid;

/// One counter of `api_key_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Counter {
    fn column(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

/// Adds `n` recorded messages to the key's `total_messages` and notes the time of the last.
pub async fn add_messages(conn: &mut PgConnection, key_id: Uuid, n: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_key_usage (key_id, total_messages, last_message_at) VALUES ($1, $2, now())
         ON CONFLICT (key_id) DO UPDATE SET total_messages = api_key_usage.total_messages + EXCLUDED.total_messages,
             last_message_at = EXCLUDED.last_message_at",
    )
    .bind(key_id)
    .bind(n)
    .execute(conn)
    .await?;
    Ok(())
}

/// A data-modifying CTE `name AS (...)` for a statement that changes messages: it adds, per
/// `key_id` of the rows of `source` (a CTE of the same statement with a `key_id` column),
/// each counter's aggregate expression over those rows (keys in id order, so two such
/// statements never lock two keys' rows in opposite orders), e.g.
/// `counters_cte("c", "u", &[(Counter::Failed, "count(*)")])`. Rows without a key count for
/// nothing. Build the statement once (the text does not depend on the data).
pub fn counters_cte(name: &str, source: &str, deltas: &[(Counter, &str)]) -> String {
    let cols: Vec<&str> = deltas.iter().map(|(c, _)| c.column()).collect();
    let exprs: Vec<&str> = deltas.iter().map(|(_, e)| *e).collect();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = k.{c} + EXCLUDED.{c}"))
        .collect();
    format!(
        "{name} AS (
             INSERT INTO api_key_usage AS k (key_id, {cols})
             SELECT key_id, {exprs} FROM {source} WHERE key_id IS NOT NULL GROUP BY key_id
             ORDER BY key_id
             ON CONFLICT (key_id) DO UPDATE SET {sets})",
        cols = cols.join(", "),
        exprs = exprs.join(", "),
        sets = sets.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_cte_names_each_counter_once() {
        let sql = counters_cte(
            "c",
            "u",
            &[(Counter::Sent, "sum(a)"), (Counter::Failed, "count(*)")],
        );
        assert!(sql.starts_with("c AS ("));
        assert!(sql.contains("(key_id, sent, failed)"));
        assert!(sql.contains("SELECT key_id, sum(a), count(*) FROM u WHERE key_id IS NOT NULL"));
        assert!(sql.contains("sent = k.sent + EXCLUDED.sent, failed = k.failed + EXCLUDED.failed"));
    }
}
