//! Meta's message-template definition format, its validation, and the summary of the runtime
//! values a template needs ([`TemplateSpec`]).
//!
//! The serde types follow what Meta's `POST /{WABA-ID}/message_templates` takes and what
//! `GET` returns (unknown top-level fields such as `id` or `status` are ignored). Component and
//! button `type` values are accepted in upper or lower case and serialised in upper case.
//!
//! ```
//! use ezpulze_payload::template::Template;
//! let t: Template = serde_json::from_value(serde_json::json!({
//!     "name": "order_update", "language": "en_US", "category": "UTILITY",
//!     "components": [
//!         {"type": "BODY", "text": "Hi {{1}}, order {{2}} has shipped.",
//!          "example": {"body_text": [["Maria", "4721"]]}},
//!         {"type": "BUTTONS", "buttons": [
//!             {"type": "URL", "text": "Track", "url": "https://shop.example.com/t/{{1}}"}]}
//!     ]
//! })).expect("template json");
//! let spec = t.spec().expect("valid template");
//! assert_eq!(spec.body.count, 2);
//! assert_eq!(spec.buttons[0].index, 0);
//! ```

mod limits;
mod model;
mod spec;
mod text;
mod validate;

pub use limits::{
    MAX_BODY_TEXT, MAX_BUTTONS, MAX_BUTTON_PHONE, MAX_BUTTON_TEXT, MAX_CARDS, MAX_CARD_BODY_TEXT,
    MAX_COPY_CODE, MAX_FOOTER_TEXT, MAX_HEADER_TEXT, MAX_LTO_TEXT, MAX_NAME, MAX_URL, MIN_CARDS,
};
pub use model::{
    Body, BodyExample, Button, Buttons, Card, Carousel, Category, Component, Footer, Header,
    HeaderExample, HeaderFormat, LimitedTimeOffer, LimitedTimeOfferDef, NamedExample, OtpType,
    ParameterFormat, Template,
};
pub use spec::{
    ButtonKind, ButtonSpec, CardSpec, HeaderSpec, MediaKind, ProductNeeds, TemplateSpec, TextParams,
};
pub(crate) use text::char_len;

/// Helpers shared by the unit tests of the template modules.
#[cfg(test)]
mod test_support {
    use super::Template;
    use crate::error::ErrorCode;

    pub(super) fn t(v: serde_json::Value) -> Template {
        serde_json::from_value(v).expect("template json")
    }

    pub(super) fn codes(t: &Template) -> Vec<(String, ErrorCode)> {
        match t.validate() {
            Ok(()) => vec![],
            Err(e) => e.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }
}
