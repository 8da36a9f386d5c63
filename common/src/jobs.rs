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

/// A WhatsApp webhook body whose signature the api checked, kept verbatim (the status
/// consumer folds its statuses), with the numbers the check verified.
///
/// On the queue: `{"numbers": [...], "body": <the body>}`. A job that is the bare body (pushed
/// by an api from before `numbers` existed) reads as `numbers: None` and is applied unscoped,
/// as it was then.
#[derive(Debug)]
pub struct WebhookBody {
    pub numbers: Option<Vec<VerifiedNumber>>,
    pub body: Box<serde_json::value::RawValue>,
}

impl Serialize for WebhookBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a> {
            numbers: &'a [VerifiedNumber],
            body: &'a serde_json::value::RawValue,
        }
        match &self.numbers {
            Some(numbers) => Tagged {
                numbers,
                body: &self.body,
            }
            .serialize(s),
            // Unscoped: the bare body, as queued before numbers existed.
            None => self.body.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tagged {
            numbers: Vec<VerifiedNumber>,
            body: Box<serde_json::value::RawValue>,
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(match serde_json::from_str::<Tagged>(raw.get()) {
            Ok(t) => WebhookBody {
                numbers: Some(t.numbers),
                body: t.body,
            },
            Err(_) => WebhookBody {
                numbers: None,
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
            body: serde_json::from_str(body).expect("raw"),
        };
        let back: WebhookBody =
            serde_json::from_str(&serde_json::to_string(&job).expect("ser")).expect("de");
        assert_eq!(back.numbers, job.numbers);
        assert_eq!(back.as_bytes(), body.as_bytes());
        let legacy: WebhookBody = serde_json::from_str(body).expect("legacy");
        assert_eq!(legacy.numbers, None);
        assert_eq!(legacy.as_bytes(), body.as_bytes());
        assert_eq!(serde_json::to_string(&legacy).expect("ser"), body);
    }
}
