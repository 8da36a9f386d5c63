//! Meta's status webhook body, as far as the status consumer reads it
//! (`entry[].changes[].value.statuses[]`); everything else in a body is ignored.

use serde::Deserialize;

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
