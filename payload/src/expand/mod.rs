//! Expansion: template + broadcast defaults + recipient variables -> the Graph API body.
//!
//! [`CompiledTemplate`] validates a template once and keeps its
//! [`TemplateSpec`](crate::template::TemplateSpec); its [`CompiledTemplate::expand`] is the hot
//! path (a few hundred nanoseconds for a typical template). The free [`expand`] validates the
//! template on every call.
//!
//! The result [`Message`] borrows from the template and the variables and serialises to the
//! exact body of `POST /{version}/{phone_number_id}/messages`.

mod buttons;
mod cards;
mod compiled;
mod expander;
mod flatten;
mod header;
mod message;
mod offer;
mod params;
mod products;

pub use compiled::{expand, CompiledTemplate};
pub use flatten::flatten_text;
pub use message::{
    Action, CurrencyValue, DateTimeValue, Language, Media, Message, MessageCard, MessageComponent,
    MessageTemplate, OfferExpiry, Parameter, Product,
};

/// Longest URL-button suffix.
pub const MAX_URL_SUFFIX: usize = 2000;
/// Longest `biz_opaque_callback_data`.
pub const MAX_CALLBACK_DATA: usize = 512;
/// Most MPM sections.
pub const MAX_SECTIONS: usize = 10;
/// Most MPM products over all sections.
pub const MAX_SECTION_PRODUCTS: usize = 30;
/// Longest MPM section title.
pub const MAX_SECTION_TITLE: usize = 24;
/// At most this many errors are reported for one recipient (the first ones found).
pub const MAX_ERRORS: usize = 32;
