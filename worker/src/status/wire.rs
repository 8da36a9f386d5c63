//! Meta's webhook body, as far as the status consumer reads it: the statuses
//! (`entry[].changes[].value.statuses[]`) and the inbound messages
//! (`entry[].changes[].value.messages[]`, for the consent keywords); everything else in a body
//! is ignored. An inbound message that does not have the expected shape is skipped alone
//! (counted), never failing the body it came in.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Deserialize)]
pub(crate) struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Deserialize)]
pub(crate) struct Change {
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct Value {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub statuses: Vec<StatusEvent>,
    /// Inbound messages of the shape below; others were skipped.
    #[serde(default, deserialize_with = "lenient_messages")]
    pub messages: Vec<InboundMessage>,
}

#[derive(Deserialize)]
pub(crate) struct Metadata {
    pub phone_number_id: String,
}

#[derive(Deserialize)]
pub(crate) struct StatusEvent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    pub errors: Vec<EventError>,
}

#[derive(Deserialize)]
pub(crate) struct EventError {
    pub code: i64,
    #[serde(default)]
    pub title: Option<String>,
}

/// An inbound message from a WhatsApp user to the business number.
#[derive(Deserialize)]
pub(crate) struct InboundMessage {
    /// The sender's `wa_id`: digits, no `+`.
    pub from: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub button: Option<Button>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
}

#[derive(Deserialize)]
pub(crate) struct Text {
    #[serde(default)]
    pub body: Option<String>,
}

/// A quick-reply button of a template, tapped.
#[derive(Deserialize)]
pub(crate) struct Button {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Interactive {
    #[serde(default)]
    pub button_reply: Option<ButtonReply>,
}

#[derive(Deserialize)]
pub(crate) struct ButtonReply {
    #[serde(default)]
    pub title: Option<String>,
}

impl InboundMessage {
    /// The texts the sender sent or tapped, in the order they are tried as keywords.
    pub fn texts(&self) -> Vec<&str> {
        let mut out = Vec::new();
        match self.kind.as_deref() {
            Some("text") | None => {
                out.extend(self.text.as_ref().and_then(|t| t.body.as_deref()));
            }
            Some("button") => {
                if let Some(b) = &self.button {
                    out.extend(b.text.as_deref());
                    out.extend(b.payload.as_deref());
                }
            }
            Some("interactive") => {
                out.extend(
                    self.interactive
                        .as_ref()
                        .and_then(|i| i.button_reply.as_ref())
                        .and_then(|r| r.title.as_deref()),
                );
            }
            Some(_) => {}
        }
        out
    }
}

/// `messages`: each element read on its own; one that is not an inbound message (or a
/// `messages` that is not an array) is skipped and counted.
fn lenient_messages<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<InboundMessage>, D::Error> {
    let raw = Option::<serde_json::Value>::deserialize(de)?;
    let items = match raw {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => {
            malformed(1);
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut bad = 0u64;
    for item in items {
        match InboundMessage::deserialize(item) {
            Ok(m) => out.push(m),
            Err(_) => bad += 1,
        }
    }
    malformed(bad);
    Ok(out)
}

fn malformed(n: u64) {
    if n > 0 {
        metrics::counter!("ezpulze_consent_inbound_skipped_total", "reason" => "malformed")
            .increment(n);
    }
}
