//! Folding a batch of webhook bodies into what is known of each message: the first timestamp
//! of each status and the first error, keyed by the verified account and number and our
//! message id (the callback data), else the wamid. Every field is checked before it can reach
//! SQL: an event with an id or timestamp Postgres could not hold (or that no real status has)
//! is dropped and counted, never applied. Pure code.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use ezpulze_common::jobs::{VerifiedNumber, WebhookBody};
use uuid::Uuid;

use super::wire::{Envelope, InboundMessage, StatusEvent};

/// The longest wamid accepted (Meta's are about 60 characters).
pub const MAX_WAMID_BYTES: usize = 256;
/// Error titles are cut to this many characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// The earliest event time accepted: 2000-01-01T00:00:00Z.
const MIN_EVENT_SECS: i64 = 946_684_800;
/// How far past the consumer's clock an event time may be.
const MAX_EVENT_AHEAD_SECS: i64 = 86_400;

/// Everything known about one message from a batch of events.
#[derive(Debug, Default, Clone)]
pub struct Folded {
    /// The account whose number the signature verified (None: an unscoped legacy body).
    pub account_id: Option<Uuid>,
    /// The business number the event came for (None with `account_id`).
    pub phone_number_id: Option<String>,
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
    pub(crate) fn add(
        &mut self,
        status: &str,
        at: DateTime<Utc>,
        code: Option<i32>,
        title: Option<String>,
    ) {
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

    /// The grouping key of this event's message.
    pub(crate) fn key(&self) -> String {
        key_of(
            self.account_id,
            self.phone_number_id.as_deref(),
            self.message_id,
            self.wamid.as_deref(),
        )
    }
}

/// Parses raw webhook bodies (unscoped: bodies queued before the api verified numbers, and
/// tests) and folds their statuses per message.
pub fn fold<B: AsRef<[u8]>>(bodies: &[B]) -> Vec<Folded> {
    fold_scoped(bodies.iter().map(|b| (b.as_ref(), None))).folded
}

/// A folded batch, and the bodies that carried events no message may take (index in the
/// batch, first reason): their valid events are folded, the bodies themselves go to the
/// dead-letter stream for inspection.
#[derive(Debug, Default)]
pub struct FoldedBatch {
    pub folded: Vec<Folded>,
    pub invalid: Vec<(usize, &'static str)>,
    /// Inbound messages (empty for status-only bodies): each opens its sender's
    /// customer-service window; those with texts may be consent keywords.
    pub inbound: Vec<Inbound>,
}

/// An inbound message that may be a consent keyword, scoped to the account owning the number
/// it was sent to (`consent` classifies it against that account's keywords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub account_id: Uuid,
    /// The sender, E.164.
    pub phone: String,
    /// Its texts (trimmed, at most `consent::MAX_KEYWORD_CHARS` characters), tried in order.
    pub texts: Vec<String>,
    /// When it was sent (Unix seconds) and its place in the batch: the latest wins.
    pub at: i64,
    pub seq: usize,
}

/// Folds queued webhook jobs: each status is scoped to the account and number its change's
/// `metadata.phone_number_id` was verified for; a status of a number the signature check did
/// not verify is dropped and counted.
pub fn fold_jobs(jobs: &[&WebhookBody]) -> FoldedBatch {
    fold_scoped(jobs.iter().map(|j| (j.as_bytes(), j.numbers.as_deref())))
}

fn fold_scoped<'a>(
    bodies: impl Iterator<Item = (&'a [u8], Option<&'a [VerifiedNumber]>)>,
) -> FoldedBatch {
    let mut by_key: HashMap<String, Folded> = HashMap::new();
    let mut invalid: Vec<(usize, &'static str)> = Vec::new();
    let mut inbound: Vec<Inbound> = Vec::new();
    for (index, (body, numbers)) in bodies.enumerate() {
        let mut mark = |reason: &'static str| {
            rejected(reason);
            if invalid.last().is_none_or(|(i, _)| *i != index) {
                invalid.push((index, reason));
            }
        };
        let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
            metrics::counter!("ezpulze_status_malformed_total").increment(1);
            continue;
        };
        for value in env
            .entry
            .into_iter()
            .flat_map(|e| e.changes)
            .filter_map(|c| c.value)
        {
            let scope = match numbers {
                None => Some((None, None)),
                Some(numbers) => value.metadata.as_ref().and_then(|m| {
                    numbers
                        .iter()
                        .find(|n| n.phone_number_id == m.phone_number_id)
                        .map(|n| (Some(n.account_id), Some(n.phone_number_id.clone())))
                }),
            };
            if !value.messages.is_empty() {
                let account = scope.as_ref().and_then(|(a, _)| *a);
                fold_inbound(account, value.messages, &mut inbound);
            }
            for ev in value.statuses {
                metrics::counter!("ezpulze_status_events_total", "status" => status_label(&ev.status))
                    .increment(1);
                let Some((account_id, phone_number_id)) = scope.clone() else {
                    mark("unverified_number");
                    continue;
                };
                let checked = match check(ev) {
                    Ok(c) => c,
                    Err(reason) => {
                        mark(reason);
                        continue;
                    }
                };
                let f = Folded {
                    account_id,
                    phone_number_id,
                    message_id: checked.message_id,
                    wamid: Some(checked.wamid),
                    ..Folded::default()
                };
                by_key.entry(f.key()).or_insert(f).add(
                    &checked.status,
                    checked.at,
                    checked.code,
                    checked.title,
                );
            }
        }
    }
    FoldedBatch {
        folded: by_key.into_values().collect(),
        invalid,
        inbound,
    }
}

/// The inbound messages of one change that could be keywords, for `account` (None: the
/// number was not verified, or the body is unscoped: they are skipped and counted).
fn fold_inbound(account: Option<Uuid>, messages: Vec<InboundMessage>, out: &mut Vec<Inbound>) {
    let skipped = |reason: &'static str| {
        metrics::counter!("ezpulze_consent_inbound_skipped_total", "reason" => reason).increment(1);
    };
    for m in messages {
        let Some(account_id) = account else {
            skipped("unverified_number");
            continue;
        };
        let texts: Vec<String> = m
            .texts()
            .into_iter()
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && t.chars().count() <= ezpulze_common::consent::MAX_KEYWORD_CHARS
            })
            .map(str::to_string)
            .collect();
        // A message with no text is no keyword, but it still opens its sender's
        // customer-service window (`crate::budget`): it is kept with no texts.
        let Some(phone) = ezpulze_common::consent::wa_id_phone(&m.from) else {
            skipped("invalid_from");
            continue;
        };
        let at = match m.timestamp.as_deref() {
            None => Utc::now().timestamp(),
            Some(t) => match t.parse::<i64>().ok().filter(|s| {
                (MIN_EVENT_SECS..=Utc::now().timestamp() + MAX_EVENT_AHEAD_SECS).contains(s)
            }) {
                Some(s) => s,
                None => {
                    skipped("invalid_timestamp");
                    continue;
                }
            },
        };
        let seq = out.len();
        out.push(Inbound {
            account_id,
            phone,
            texts,
            at,
            seq,
        });
    }
}

/// A status event whose every field fits the batch statement.
struct Checked {
    message_id: Option<Uuid>,
    wamid: String,
    status: String,
    at: DateTime<Utc>,
    code: Option<i32>,
    title: Option<String>,
}

/// Checks one event's fields; the reason when it cannot be applied.
fn check(ev: StatusEvent) -> Result<Checked, &'static str> {
    if ev.id.is_empty() || ev.id.len() > MAX_WAMID_BYTES || ev.id.chars().any(char::is_control) {
        return Err("invalid_id");
    }
    let at = match ev.timestamp.as_deref() {
        None => Utc::now(),
        Some(t) => {
            let now = Utc::now().timestamp();
            t.parse::<i64>()
                .ok()
                .filter(|s| (MIN_EVENT_SECS..=now + MAX_EVENT_AHEAD_SECS).contains(s))
                .and_then(|s| Utc.timestamp_opt(s, 0).single())
                .ok_or("invalid_timestamp")?
        }
    };
    let message_id = ev
        .biz_opaque_callback_data
        .as_deref()
        .and_then(|c| Uuid::try_parse(c).ok());
    let (code, title) = match ev.errors.into_iter().next() {
        Some(e) => (
            i32::try_from(e.code).ok(),
            e.title.map(|t| {
                t.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_TITLE_CHARS)
                    .collect()
            }),
        ),
        None => (None, None),
    };
    Ok(Checked {
        message_id,
        wamid: ev.id,
        status: ev.status,
        at,
        code,
        title,
    })
}

/// Counts an event that is not applied.
pub(crate) fn rejected(reason: &'static str) {
    metrics::counter!("ezpulze_status_rejected_total", "reason" => reason).increment(1);
}

/// How events are grouped: by scope, then our message id, else wamid.
pub(crate) fn key_of(
    account_id: Option<Uuid>,
    phone_number_id: Option<&str>,
    message_id: Option<Uuid>,
    wamid: Option<&str>,
) -> String {
    let scope = match account_id {
        Some(a) => format!("{a}/{}/", phone_number_id.unwrap_or("")),
        None => String::new(),
    };
    match message_id {
        Some(id) => format!("{scope}{id}"),
        None => format!("{scope}w:{}", wamid.unwrap_or("")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_first_timestamps_and_errors_per_message() {
        let id = Uuid::new_v4();
        let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": [
            {"id": "wamid.A", "status": "read", "timestamp": "1700000020", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.A", "status": "sent", "timestamp": "1700000010", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.A", "status": "sent", "timestamp": "1700000005", "biz_opaque_callback_data": id.simple().to_string()},
            {"id": "wamid.B", "status": "failed", "timestamp": "1700000007", "errors": [{"code": 131049, "title": "engagement"}]},
            {"id": "wamid.C", "status": "played", "timestamp": "1700000007"}
        ]}}]}]});
        let mut folded = fold(&[
            serde_json::to_vec(&body).expect("json"),
            b"not json".to_vec(),
        ]);
        folded.sort_by_key(|f| f.wamid.clone());
        assert_eq!(folded.len(), 3);
        assert_eq!(folded[0].message_id, Some(id));
        assert_eq!(folded[0].sent.map(|t| t.timestamp()), Some(1_700_000_005));
        assert_eq!(folded[0].read.map(|t| t.timestamp()), Some(1_700_000_020));
        assert_eq!(folded[1].error_code, Some(131049));
        assert!(folded[2].sent.is_none() && folded[2].failed.is_none());
    }

    #[test]
    fn events_postgres_could_not_hold_are_dropped_and_titles_cleaned() {
        let body = serde_json::json!({"entry": [{"changes": [{"value": {"statuses": [
            {"id": "wamid.\u{0}", "status": "sent", "timestamp": "10"},
            {"id": "", "status": "sent", "timestamp": "10"},
            {"id": "x".repeat(MAX_WAMID_BYTES + 1), "status": "sent"},
            {"id": "wamid.T1", "status": "sent", "timestamp": "99999999999999"},
            {"id": "wamid.T2", "status": "sent", "timestamp": "-5"},
            {"id": "wamid.T3", "status": "sent", "timestamp": "soon"},
            {"id": "wamid.OK", "status": "failed", "timestamp": "1700000000",
             "errors": [{"code": 131049, "title": "bad\u{0}title"}]}
        ]}}]}]});
        let folded = fold(&[serde_json::to_vec(&body).expect("json")]);
        assert_eq!(folded.len(), 1, "{folded:?}");
        assert_eq!(folded[0].wamid.as_deref(), Some("wamid.OK"));
        assert_eq!(folded[0].error_title.as_deref(), Some("badtitle"));
    }

    #[test]
    fn a_verified_job_scopes_each_change_to_its_number_and_drops_unverified_ones() {
        let account = Uuid::new_v4();
        let body = serde_json::json!({"entry": [{"changes": [
            {"value": {"metadata": {"phone_number_id": "1001"},
                       "statuses": [{"id": "wamid.A", "status": "sent", "timestamp": "1700000000"}]}},
            {"value": {"metadata": {"phone_number_id": "2002"},
                       "statuses": [{"id": "wamid.B", "status": "sent", "timestamp": "1700000000"}]}}
        ]}]});
        let job = WebhookBody {
            numbers: Some(vec![VerifiedNumber {
                phone_number_id: "1001".into(),
                account_id: account,
            }]),
            wabas: Vec::new(),
            body: serde_json::value::to_raw_value(&body).expect("raw"),
        };
        let batch = fold_jobs(&[&job]);
        assert_eq!(batch.invalid, vec![(0, "unverified_number")]);
        let folded = batch.folded;
        assert_eq!(folded.len(), 1, "{folded:?}");
        assert_eq!(folded[0].account_id, Some(account));
        assert_eq!(folded[0].phone_number_id.as_deref(), Some("1001"));
        assert_eq!(folded[0].wamid.as_deref(), Some("wamid.A"));
    }
}
