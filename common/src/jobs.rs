//! The jobs the engine puts on its queues, shared by the api (producer), the scheduler
//! (outbox re-push) and the workers (consumers).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::keyspace::{SCHEDULE_QUEUE, SEND_QUEUE, WEBHOOK_QUEUE};

/// Send one message. The row in `messages` is the source of truth; the job only points at it,
/// so a duplicate job is harmless (the worker claims rows `queued -> sending` once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: Uuid,
    pub dispatch_id: Uuid,
    pub account_id: Uuid,
}

/// Release a scheduled dispatch (its rows `scheduled -> queued`, jobs pushed). Harmless when
/// repeated: only rows still `scheduled` are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseJob {
    pub dispatch_id: Uuid,
}

/// A business number named by a webhook body (`metadata.phone_number_id`) and the account
/// it belongs to, as found by the signature check: the status consumer applies the body's
/// statuses only to that account's messages sent from that number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedNumber {
    pub phone_number_id: String,
    pub account_id: Uuid,
}

/// The `changes[].field` values of WABA-level webhook changes the engine applies (the status
/// consumer's `lifecycle`); a change of another field without `metadata` is still taken when
/// its WABA's signature holds (and counted), and ignored.
pub const WABA_FIELDS: [&str; 5] = [
    "phone_number_quality_update",
    "account_update",
    "message_template_status_update",
    "message_template_quality_update",
    "template_category_update",
];

/// A WhatsApp Business Account named by a WABA-level webhook body (`entry[].id` of a change
/// without `metadata`: number quality, account updates, template status, quality and
/// category) and the account whose `whatsapp_settings.waba_id` it is, as found by the
/// signature check: the consumer applies those changes only to that account's numbers and
/// templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedWaba {
    pub waba_id: String,
    pub account_id: Uuid,
}

/// A WhatsApp webhook body whose signature the api checked, kept verbatim (the status
/// consumer folds its statuses), with the numbers and WABAs the check verified.
///
/// On the queue: `{"numbers": [...], "wabas": [...], "body": <the body>}` (`wabas` left out
/// when empty, so a body of numbers only is what an api of before WABAs pushed, and reads as
/// no WABA). A job that is the bare body (pushed by an api from before `numbers` existed)
/// reads as `numbers: None` and is applied unscoped, as it was then.
#[derive(Debug)]
pub struct WebhookBody {
    pub numbers: Option<Vec<VerifiedNumber>>,
    /// The WABAs of the body's WABA-level changes (empty: none, or an older api).
    pub wabas: Vec<VerifiedWaba>,
    pub body: Box<serde_json::value::RawValue>,
}

impl Serialize for WebhookBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a> {
            numbers: &'a [VerifiedNumber],
            #[serde(skip_serializing_if = "<[VerifiedWaba]>::is_empty")]
            wabas: &'a [VerifiedWaba],
            body: &'a serde_json::value::RawValue,
        }
        match (&self.numbers, self.wabas.is_empty()) {
            // Unscoped: the bare body, as queued before numbers existed.
            (None, true) => self.body.serialize(s),
            (numbers, _) => Tagged {
                numbers: numbers.as_deref().unwrap_or(&[]),
                wabas: &self.wabas,
                body: &self.body,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tagged {
            numbers: Vec<VerifiedNumber>,
            #[serde(default)]
            wabas: Vec<VerifiedWaba>,
            body: Box<serde_json::value::RawValue>,
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(match serde_json::from_str::<Tagged>(raw.get()) {
            Ok(t) => WebhookBody {
                numbers: Some(t.numbers),
                wabas: t.wabas,
                body: t.body,
            },
            Err(_) => WebhookBody {
                numbers: None,
                wabas: Vec::new(),
                body: raw,
            },
        })
    }
}

impl WebhookBody {
    /// The body's bytes, as received.
    pub fn as_bytes(&self) -> &[u8] {
        self.body.get().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_job_round_trips_and_a_bare_body_reads_as_unscoped() {
        let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
        let job = WebhookBody {
            numbers: Some(vec![VerifiedNumber {
                phone_number_id: "1001".into(),
                account_id: Uuid::nil(),
            }]),
            wabas: Vec::new(),
            body: serde_json::from_str(body).expect("raw"),
        };
        let text = serde_json::to_string(&job).expect("ser");
        // A body of numbers only is queued as an api of before WABAs queued it.
        assert!(!text.contains("wabas"));
        let back: WebhookBody = serde_json::from_str(&text).expect("de");
        assert_eq!(back.numbers, job.numbers);
        assert!(back.wabas.is_empty());
        assert_eq!(back.as_bytes(), body.as_bytes());
        let legacy: WebhookBody = serde_json::from_str(body).expect("legacy");
        assert_eq!(legacy.numbers, None);
        assert_eq!(legacy.as_bytes(), body.as_bytes());
        assert_eq!(serde_json::to_string(&legacy).expect("ser"), body);
    }

    #[test]
    fn a_waba_level_job_round_trips() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"77"}]}"#;
        let job = WebhookBody {
            numbers: None,
            wabas: vec![VerifiedWaba {
                waba_id: "77".into(),
                account_id: Uuid::nil(),
            }],
            body: serde_json::from_str(body).expect("raw"),
        };
        let back: WebhookBody =
            serde_json::from_str(&serde_json::to_string(&job).expect("ser")).expect("de");
        // Tagged with no numbers: a worker of before WABAs applies none of it.
        assert_eq!(back.numbers, Some(Vec::new()));
        assert_eq!(back.wabas, job.wabas);
        assert_eq!(back.as_bytes(), body.as_bytes());
    }
}
