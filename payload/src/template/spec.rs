//! The summary of what a template needs at send time ([`TemplateSpec`]): text parameter counts
//! and names, the header kind, the buttons that take runtime values, carousel cards, product
//! values and the offer expiry. Produced by validation, read by expansion and the examples.

use super::model::ParameterFormat;
use serde::Serialize;

/// The runtime text parameters of one header or body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TextParams {
    /// How many values must be sent.
    pub count: usize,
    /// Parameter names in order of first appearance (named format only; empty otherwise).
    pub names: Vec<String>,
    /// Sample values from the template's `example` (empty, or one per parameter).
    pub examples: Vec<String>,
    /// Characters of the text without its placeholders.
    #[serde(skip)]
    pub(crate) static_chars: usize,
    /// How often each parameter's placeholder appears in the text.
    #[serde(skip)]
    pub(crate) occurrences: Vec<u32>,
}

/// Media kind of a media header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// `image`.
    Image,
    /// `video`.
    Video,
    /// `document`.
    Document,
}

impl MediaKind {
    /// Lower-case Graph API name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
        }
    }
}

/// What a header needs at send time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum HeaderSpec {
    /// No header, or a header without runtime values is absent.
    #[default]
    None,
    /// Text header with `TextParams::count` parameters (0 or 1).
    Text(TextParams),
    /// Media header of this kind (link or id).
    Media(MediaKind),
    /// Location header.
    Location,
    /// Product header (single product template or product card).
    Product,
}

impl HeaderSpec {
    /// Whether a value must be sent for this header.
    pub fn needs_value(&self) -> bool {
        match self {
            HeaderSpec::None => false,
            HeaderSpec::Text(p) => p.count > 0,
            _ => true,
        }
    }
}

/// The kind of a button that takes runtime values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ButtonKind {
    /// `quick_reply`: optional `payload`.
    QuickReply,
    /// `url`: the `{{1}}` suffix (`text`). `static_prefix` is the URL before `{{1}}`.
    UrlSuffix {
        /// URL before the placeholder.
        static_prefix: String,
        /// Sample suffix from the template, if any.
        example: Option<String>,
    },
    /// `copy_code`: `coupon_code`.
    CopyCode {
        /// Sample code from the template.
        example: Option<String>,
    },
    /// `flow`: optional `flow_token` and `flow_action_data`.
    Flow,
    /// `mpm`: thumbnail and sections from `product`.
    Mpm,
    /// `catalog`: optional thumbnail from `product`.
    Catalog,
    /// Authentication `url` button carrying the one-time code (`text`, defaults to the body's
    /// code).
    Otp,
}

/// A button that takes runtime values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ButtonSpec {
    /// Position in the template's button list (the send-time `index`).
    pub index: usize,
    /// What it takes.
    pub kind: ButtonKind,
    /// Whether a value must be supplied (quick reply, flow and catalog values are optional).
    pub required: bool,
}

impl ButtonSpec {
    /// The send-time `sub_type`.
    pub fn sub_type(&self) -> &'static str {
        match self.kind {
            ButtonKind::QuickReply => "quick_reply",
            ButtonKind::UrlSuffix { .. } | ButtonKind::Otp => "url",
            ButtonKind::CopyCode { .. } => "copy_code",
            ButtonKind::Flow => "flow",
            ButtonKind::Mpm => "mpm",
            ButtonKind::Catalog => "catalog",
        }
    }
}

/// What one carousel card needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CardSpec {
    /// The card header (media or product).
    pub header: HeaderSpec,
    /// The card body's parameters.
    pub body: TextParams,
    /// The card's runtime buttons.
    pub buttons: Vec<ButtonSpec>,
}

/// Which product values the template needs from `variables.product`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ProductNeeds {
    /// Single-product header (`product_retailer_id`, optional `catalog_id`).
    pub header_product: bool,
    /// MPM button: `thumbnail_product_retailer_id` and `sections`.
    pub mpm: bool,
    /// Catalog button: optional `thumbnail_product_retailer_id`.
    pub catalog: bool,
}

/// Summary of the runtime values a template needs (serialisable for documentation pages).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct TemplateSpec {
    /// Positional or named.
    pub parameter_format: ParameterFormat,
    /// Header needs.
    pub header: HeaderSpec,
    /// Body parameters (authentication templates: one, the code).
    pub body: TextParams,
    /// Buttons taking runtime values (static buttons are not listed).
    pub buttons: Vec<ButtonSpec>,
    /// One entry per carousel card (empty without carousel).
    pub cards: Vec<CardSpec>,
    /// Product values.
    pub product: ProductNeeds,
    /// `Some(has_expiration)` for a limited-time-offer template.
    pub limited_time_offer: Option<bool>,
    /// Authentication template.
    pub authentication: bool,
}

#[cfg(test)]
mod tests {
    use crate::template::test_support::t;
    use serde_json::json;

    #[test]
    fn spec_serialises_for_docs() {
        let tpl = t(
            json!({"name":"x","language":"en","category":"MARKETING","components":[
            {"type":"HEADER","format":"VIDEO"},
            {"type":"BODY","text":"Hi {{1}}","example":{"body_text":[["Maria"]]}},
            {"type":"BUTTONS","buttons":[{"type":"PHONE_NUMBER","text":"Call","phone_number":"+1555"},
                {"type":"COPY_CODE","example":"SAVE5"}]}]}),
        );
        let v = serde_json::to_value(tpl.spec().expect("valid")).expect("ser");
        assert_eq!(v["header"], json!({"kind": "media", "params": "video"}));
        assert_eq!(
            v["body"],
            json!({"count": 1, "names": [], "examples": ["Maria"]})
        );
        assert_eq!(
            v["buttons"],
            json!([{"index": 1, "kind": {"kind": "copy_code", "example": "SAVE5"}, "required": true}])
        );
        assert_eq!(v["cards"], json!([]));
    }
}
