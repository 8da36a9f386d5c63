//! Integrator events (outbound webhooks): the event types, the endpoints' signing secrets and
//! the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
//! The contract is `docs/integrator-events.md`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Every event type an endpoint can subscribe to.
pub const EVENT_TYPES: [&str; 7] = [
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "dispatch.completed",
    "dispatch.paused",
    "dispatch.resumed",
];

/// At most this many endpoints per account.
pub const MAX_ENDPOINTS_PER_ACCOUNT: i64 = 20;
/// `max_per_second` bounds and default.
pub const MIN_PER_SECOND: i32 = 1;
pub const MAX_PER_SECOND: i32 = 1000;
pub const DEFAULT_PER_SECOND: i32 = 50;
/// How long a rotated-out secret keeps signing alongside the new one.
pub const OLD_SECRET_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook secret is whsec_ followed by base64")]
pub struct BadSecret;

/// The HMAC key of a secret: the base64 after `whsec_`.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
    B64.decode(b64).map_err(|_| BadSecret)
}

/// One signature, `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space separated (new key first).
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a valid `v1` signature of the message under `key` (constant time).
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let want = sign(key, id, timestamp, body);
    header.split(' ').any(|sig| {
        use subtle::ConstantTimeEq;
        sig.len() == want.len() && bool::from(sig.as_bytes().ct_eq(want.as_bytes()))
    })
}

/// The columns a message statement's `RETURNING` must give (named so) for
/// [`message_events_cte`]: the message as it is after the statement.
pub const MESSAGE_EVENT_COLUMNS: &str = "m.id, m.account_id, m.key_id, m.dispatch_id, m.ref, \
     m.to_phone, m.status, m.wamid, m.error_code, m.error_title, m.sent_at, m.delivered_at, \
     m.read_at, m.failed_at";

/// The columns a dispatch statement's `RETURNING` must give for [`dispatch_events_cte`].
pub const DISPATCH_EVENT_COLUMNS: &str =
    "id, account_id, broadcast_id, key_id, test_mode, status, total";

/// The ISO 8601 UTC text of `now()` with milliseconds (an event's `created_at`).
const NOW_TEXT: &str = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

/// The endpoints an event of type `ty` (SQL text) of an account, key and mode goes to: active
/// ones, and those the engine disabled after days of failures (their events wait for them to
/// be turned back on); not those their owner turned off.
fn endpoint_match(ty: &str, account: &str, key: &str, test_mode: &str) -> String {
    format!(
        "e.account_id = {account} AND (e.active OR e.disabled_at IS NOT NULL)
         AND e.test_mode = {test_mode}
         AND (cardinality(e.events) = 0 OR {ty} = ANY(e.events))
         AND (e.key_ids IS NULL OR {key} = ANY(e.key_ids))"
    )
}

/// A CTE named `name` that creates the deliveries of the message events of the rows of
/// `source` (a CTE whose rows have [`MESSAGE_EVENT_COLUMNS`] and the columns `events` uses):
/// for each `(type, condition)` whose condition holds for a row, one event with a stable id
/// (`evt_<message id>` and the type's initial: the statements make each transition once, as
/// their counters do), one delivery row per matching endpoint. Its
/// rows are the new deliveries' types: the statement's result can count them with
/// [`created_counts_sql`]. With no endpoint in the account, nothing is written.
pub fn message_events_cte(name: &str, source: &str, events: &[(&str, &str)]) -> String {
    let kinds = events
        .iter()
        .map(|(ty, cond)| {
            let initial = ty
                .trim_start_matches("message.")
                .chars()
                .next()
                .unwrap_or('x');
            format!("('{ty}', '{initial}', {cond})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{name} AS (
             INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body)
             SELECT ezp_uuid7(), e.id, x.account_id, x.evt, x.ty,
                    jsonb_build_object('id', x.evt, 'type', x.ty, 'created_at', {NOW_TEXT},
                        'data', x.data || CASE WHEN e.include_phone
                                           THEN jsonb_build_object('phone', x.to_phone)
                                           ELSE '{{}}'::jsonb END)
               FROM (SELECT s.account_id, s.key_id, s.to_phone, d.test_mode, k.ty,
                            'evt_' || replace(s.id::text, '-', '') || k.initial AS evt,
                            jsonb_build_object('message_id', s.id, 'dispatch_id', s.dispatch_id,
                                'broadcast_id', d.broadcast_id, 'key_id', s.key_id, 'ref', s.ref,
                                'status', s.status, 'wamid', s.wamid, 'error_code', s.error_code,
                                'error_title', s.error_title, 'sent_at', s.sent_at,
                                'delivered_at', s.delivered_at, 'read_at', s.read_at,
                                'failed_at', s.failed_at) AS data
                       FROM {source} s
                       JOIN dispatches d ON d.id = s.dispatch_id
                       CROSS JOIN LATERAL (VALUES {kinds}) AS k(ty, initial, hit)
                      WHERE k.hit
                        AND EXISTS (SELECT 1 FROM webhook_endpoints e0 WHERE e0.account_id = s.account_id)) x
               JOIN webhook_endpoints e ON {matched}
             RETURNING event_type)",
        matched = endpoint_match("x.ty", "x.account_id", "x.key_id", "x.test_mode"),
    )
}

/// A CTE named `name` that creates the deliveries of a `ty` event (`dispatch.completed`,
/// `dispatch.paused` or `dispatch.resumed`) for each dispatch row of `source` (columns `id`, `account_id`,
/// `broadcast_id`, `key_id`, `test_mode`, `status`, `total`). Each event gets a new id.
pub fn dispatch_events_cte(name: &str, source: &str, ty: &str) -> String {
    format!(
        "{name} AS (
             INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body)
             SELECT ezp_uuid7(), e.id, x.account_id, x.evt, '{ty}',
                    jsonb_build_object('id', x.evt, 'type', '{ty}', 'created_at', {NOW_TEXT},
                        'data', jsonb_build_object('dispatch_id', x.id, 'broadcast_id', x.broadcast_id,
                            'key_id', x.key_id, 'status', x.status, 'total', x.total))
               FROM (SELECT s.*, 'evt_' || replace(gen_random_uuid()::text, '-', '') AS evt
                       FROM {source} s
                      WHERE EXISTS (SELECT 1 FROM webhook_endpoints e0 WHERE e0.account_id = s.account_id)
                      OFFSET 0) x
               JOIN webhook_endpoints e ON {matched}
             RETURNING event_type)",
        matched = endpoint_match(&format!("'{ty}'"), "x.account_id", "x.key_id", "x.test_mode"),
    )
}

/// One statement creating a `ty` event of the dispatch `$1` (as it is now), returning
/// [`created_counts_sql`]: for a change made by plain statements (the resume route).
pub fn dispatch_event_sql(ty: &str) -> String {
    format!(
        "WITH r AS (SELECT {DISPATCH_EVENT_COLUMNS} FROM dispatches WHERE id = $1),
         {events}
         SELECT {created}",
        events = dispatch_events_cte("h", "r", ty),
        created = created_counts_sql("h"),
    )
}

/// An `int[]` expression counting the rows of the events CTE `name` by type, in
/// [`EVENT_TYPES`] order (an uncorrelated subquery: evaluated once per statement).
pub fn created_counts_sql(name: &str) -> String {
    let counts = EVENT_TYPES
        .iter()
        .map(|t| format!("count(*) FILTER (WHERE event_type = '{t}')"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("(SELECT ARRAY[{counts}]::int[] FROM {name})")
}

/// Adds counts from [`created_counts_sql`] to `ezpulze_webhook_events_created_total{type}`.
pub fn record_created(counts: &[i32]) {
    for (ty, n) in EVENT_TYPES.iter().zip(counts) {
        if *n > 0 {
            metrics::counter!("ezpulze_webhook_events_created_total", "type" => *ty)
                .increment(u64::try_from(*n).unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's test vector.
    #[test]
    fn signs_the_specification_vector() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
        assert!(!verify(&key, "msg_other", 1614265330, b"{}", &sig));
    }

    #[test]
    fn new_secrets_decode() {
        let s = new_secret();
        assert_eq!(secret_key(&s).expect("key").len(), 24);
        assert_eq!(secret_key("nope"), Err(BadSecret));
        assert_eq!(secret_key("whsec_!!"), Err(BadSecret));
    }
}
