//! Folding a batch of webhook bodies into what is known of each message: the first timestamp
//! of each status and the first error, keyed by our message id (the callback data), else by
//! wamid. Pure code.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::wire::Envelope;

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
}

/// Parses raw webhook bodies and folds their statuses per message (by our callback id, else
/// by wamid). Unknown statuses (e.g. `played`) and malformed bodies are skipped and counted.
pub fn fold<B: AsRef<[u8]>>(bodies: &[B]) -> Vec<Folded> {
    let mut by_key: HashMap<String, Folded> = HashMap::new();
    for body in bodies {
        let Ok(env) = serde_json::from_slice::<Envelope>(body.as_ref()) else {
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
pub(crate) fn key_of(message_id: Option<Uuid>, wamid: Option<&str>) -> String {
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
