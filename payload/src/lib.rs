//! # ezpulze-payload
//!
//! Pure code (no I/O) that turns a WhatsApp message template, a broadcast's default values
//! and one recipient's values into the exact JSON body of the Graph API send call
//! `POST /{version}/{phone_number_id}/messages`.
//!
//! * [`template`]: Meta's message-template definition format, [`Template::validate`] and the
//!   [`TemplateSpec`] summary of the runtime values a template needs.
//! * [`variables`]: the per-recipient variables shape of the public API ([`Variables`]).
//! * [`expand`](mod@expand): [`CompiledTemplate::expand`] / [`expand()`] producing a [`Message`].
//! * [`phone`]: E.164 normalisation ([`PhoneE164`]).
//! * [`example`]: [`example_variables`], a full valid set of variables for any template, and
//!   [`example_variables_over_defaults`], only what a recipient must add to a broadcast's
//!   defaults.
//!
//! ## The variables shape
//!
//! A recipient's `variables` (and a broadcast's `variables`, which are the defaults) is an
//! object with these optional keys; unknown keys are refused everywhere:
//!
//! ```json
//! {
//!   "header": ...,
//!   "body": ...,
//!   "buttons": [ {"index": 0, ...} ],
//!   "cards": [ {"header": ..., "body": ..., "buttons": [...]} ],
//!   "product": {"product_retailer_id", "catalog_id", "thumbnail_product_retailer_id", "sections"},
//!   "limited_time_offer": {"expiration_time_ms": 1767225599000}
//! }
//! ```
//!
//! **`header`** is one of
//! * text parameters: `["Order #4721"]`, or just `"Order #4721"`; named templates:
//!   `{"order_no": "4721"}`;
//! * `{"type": "image", "link": "https://..."}` or `{"type": "image", "id": "1234"}`
//!   (exactly one of `link`/`id`); `{"type": "video", ...}` likewise;
//! * `{"type": "document", "link"|"id", "filename"?: "invoice.pdf"}`;
//! * `{"type": "location", "latitude": 37.48, "longitude": -122.14, "name": "...",
//!   "address": "..."}`;
//! * `{"type": "product", "product_retailer_id": "SKU-1", "catalog_id"?: "..."}`
//!   (single-product templates; `product.product_retailer_id` works too).
//!
//! **`body`** is an array for positional templates, one entry per `{{n}}` in order:
//! `["Maria", {"type": "currency", "currency": {"fallback_value": "$100.99", "code": "USD",
//! "amount_1000": 100990}}, {"type": "date_time", "date_time": {"fallback_value":
//! "February 25, 2026"}}]`. Plain strings are text (numbers and booleans are taken as text;
//! `{"type": "text", "text": "..."}` also works). A `null` entry leaves that slot to the
//! defaults. Named templates take an object: `{"first_name": "Maria", "order_id": "4721"}`.
//!
//! **`buttons`** lists values of buttons that take runtime values, by the template's 0-based
//! button `index` (a number or numeric string):
//! * quick reply: `{"index": 0, "payload": "UNSUB"}` (optional; without it WhatsApp returns
//!   the button text);
//! * URL with a `{{1}}` suffix: `{"index": 1, "text": "1Z999AA10123456784"}` (≤ 2000);
//! * copy code: `{"index": 0, "coupon_code": "SAVE20"}` (≤ 15);
//! * flow: `{"index": 0, "flow_token": "FT_1", "flow_action_data": {...}}` (both optional;
//!   Meta's nested `{"index": 0, "action": {"flow_token", "flow_action_data"}}` works too);
//! * authentication OTP: `{"index": 0, "text": "493021"}`; defaults to the body's code.
//!
//! Static buttons (static URL, phone number, SPM "View") take nothing and are never sent.
//! MPM and catalog buttons take their values from `product`.
//!
//! **`cards`** (carousel templates) has exactly as many entries as the template has cards; each
//! card has its own `header` (`{"type": "image"|"video", ...}` or `{"type": "product", ...}`),
//! `body` and `buttons` in the shapes above.
//!
//! **`product`**: `thumbnail_product_retailer_id` and `sections` for MPM templates
//! (`[{"title": "Popular", "product_items": [{"product_retailer_id": "SKU-1"}]}]`, 1-10
//! sections, ≤ 30 products, titles required when more than one section); an optional
//! `thumbnail_product_retailer_id` for catalog templates; `product_retailer_id` and
//! `catalog_id` for single-product templates.
//!
//! **`limited_time_offer`**: `{"expiration_time_ms": <Unix ms>}` when the template's offer has
//! an expiry.
//!
//! ### Merging defaults
//!
//! Slots are merged one by one and the recipient wins: each header, each body parameter
//! (position or name), each button (by index, the whole button object), each card's header,
//! body parameters and buttons, each `product` field, and the offer expiry.
//!
//! ## Example
//!
//! ```
//! use ezpulze_payload::{CompiledTemplate, Template, Variables};
//! use serde_json::json;
//!
//! let template: Template = serde_json::from_value(json!({
//!     "name": "order_update", "language": "en_US", "category": "UTILITY",
//!     "components": [
//!         {"type": "HEADER", "format": "IMAGE"},
//!         {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships today."},
//!         {"type": "BUTTONS", "buttons": [
//!             {"type": "URL", "text": "Track", "url": "https://shop.example.com/t/{{1}}"}]}
//!     ]
//! })).expect("template");
//! let compiled = CompiledTemplate::new(template).expect("valid template");
//! let defaults: Variables = serde_json::from_value(json!({
//!     "header": {"type": "image", "link": "https://cdn.example.com/banner.jpg"}
//! })).expect("defaults");
//! let recipient: Variables = serde_json::from_value(json!({
//!     "body": ["Maria", "4721"], "buttons": [{"index": 0, "text": "4721"}]
//! })).expect("variables");
//! let msg = compiled.expand(&defaults, &recipient, "+1 650 555 1234", "msg_01").expect("valid");
//! assert_eq!(msg.to_json_value(), json!({
//!     "messaging_product": "whatsapp", "recipient_type": "individual",
//!     "to": "16505551234", "type": "template", "biz_opaque_callback_data": "msg_01",
//!     "template": {"name": "order_update", "language": {"code": "en_US"}, "components": [
//!         {"type": "header", "parameters": [
//!             {"type": "image", "image": {"link": "https://cdn.example.com/banner.jpg"}}]},
//!         {"type": "body", "parameters": [
//!             {"type": "text", "text": "Maria"}, {"type": "text", "text": "4721"}]},
//!         {"type": "button", "sub_type": "url", "index": "0", "parameters": [
//!             {"type": "text", "text": "4721"}]}
//!     ]}
//! }));
//! ```
//!
//! Errors are a list of [`FieldError`] `{field, code, message}` with stable codes such as
//! `invalid_phone`, `missing_variable`, `extra_variable`, `wrong_media_kind`, `card_count`
//! and `too_long` (see [`ErrorCode`]).

#![warn(missing_docs)]

pub mod error;
pub mod example;
pub mod expand;
pub mod phone;
pub mod template;
pub mod variables;

pub use error::{ErrorCode, FieldError, FieldErrors};
pub use example::{example_variables, example_variables_over_defaults};
pub use expand::{expand, flatten_text, CompiledTemplate, Message};
pub use phone::{PhoneE164, PhoneError};
pub use template::{Template, TemplateSpec};
pub use variables::Variables;
