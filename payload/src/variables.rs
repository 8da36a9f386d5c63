//! Per-recipient variables (also the shape of a broadcast's defaults).
//!
//! See the crate documentation for the JSON shape. Every object rejects unknown fields.
//!
//! ```
//! use ezpulze_payload::Variables;
//! // Every shape at once (a real template uses only the slots it has).
//! let v: Variables = serde_json::from_str(r#"{
//!   "header": {"type": "document", "link": "https://cdn.example.com/i.pdf", "filename": "i.pdf"},
//!   "body": ["Maria", null,
//!            {"type": "currency", "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990}},
//!            {"type": "date_time", "date_time": {"fallback_value": "February 25, 2026"}}],
//!   "buttons": [{"index": 0, "payload": "UNSUB"}, {"index": "1", "text": "1Z999AA1"},
//!               {"index": 2, "coupon_code": "SAVE20"},
//!               {"index": 3, "flow_token": "FT_1", "flow_action_data": {"email": "m@example.com"}}],
//!   "cards": [{"header": {"type": "image", "id": "24230790383178626"}, "body": ["15%"],
//!              "buttons": [{"index": 0, "payload": "more"}]},
//!             {"header": {"type": "product", "product_retailer_id": "SKU-2", "catalog_id": "1948"}}],
//!   "product": {"thumbnail_product_retailer_id": "SKU-1",
//!               "sections": [{"title": "Popular", "product_items": [{"product_retailer_id": "SKU-1"}]}]},
//!   "limited_time_offer": {"expiration_time_ms": 1767225599000}
//! }"#).expect("valid shape");
//! assert_eq!(v.buttons.as_ref().map(Vec::len), Some(4));
//!
//! // Named parameters and a location header.
//! let v: Variables = serde_json::from_str(r#"{
//!   "header": {"type": "location", "latitude": 37.48, "longitude": -122.14,
//!              "name": "Pickup point", "address": "1 Hacker Way"},
//!   "body": {"first_name": "Maria", "order_id": "4721"}
//! }"#).expect("valid shape");
//! assert!(v.cards.is_none());
//!
//! // Unknown keys are refused.
//! assert!(serde_json::from_str::<Variables>(r#"{"bodyy": ["x"]}"#).is_err());
//! ```

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The values for one recipient (or a broadcast's defaults, merged under them per slot).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variables {
    /// Header: text parameters, or a typed media/location/product value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderValue>,
    /// Body parameters: an array (positional) or an object (named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Params>,
    /// Values of buttons that take runtime values, by template button `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ButtonValue>>,
    /// Carousel cards, exactly as many as the template has, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards: Option<Vec<CardValues>>,
    /// Product values for SPM headers, MPM and catalog buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductValues>,
    /// Limited-time offer expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_time_offer: Option<LimitedTimeOfferValue>,
}

impl Variables {
    /// Whether nothing at all is set.
    pub fn is_empty(&self) -> bool {
        self.header.is_none()
            && self.body.is_none()
            && self.buttons.is_none()
            && self.cards.is_none()
            && self.product.is_none()
            && self.limited_time_offer.is_none()
    }
}

/// Text parameters of a header or body.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `["Maria", null, {"type": "currency", ...}]`: `null` leaves the slot to the defaults.
    Positional(Vec<Option<Param>>),
    /// `{"first_name": "Maria"}`, in the order given.
    Named(Vec<(String, Param)>),
}

impl Params {
    /// Whether no value is present.
    pub fn is_empty(&self) -> bool {
        match self {
            Params::Positional(v) => v.iter().all(Option::is_none),
            Params::Named(v) => v.is_empty(),
        }
    }
}

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (`"Maria"`; numbers and booleans are taken as their text).
    Text(String),
    /// `{"type": "currency", "currency": {"fallback_value", "code", "amount_1000"}}`.
    Currency(Currency),
    /// `{"type": "date_time", "date_time": {"fallback_value", ...}}`.
    DateTime(DateTime),
}

/// A currency value as the Graph API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Currency {
    /// What is shown (`"$100.99"`).
    pub fallback_value: String,
    /// ISO 4217 code (`"USD"`).
    pub code: String,
    /// Amount times 1000 (`100990`).
    pub amount_1000: i64,
}

/// A date/time value; only `fallback_value` is rendered today, the other fields are passed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateTime {
    /// What is shown (`"February 25, 2026"`).
    pub fallback_value: String,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<i64>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<i64>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<i64>,
    /// Legacy localisation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i64>,
}

/// A header value.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// Text parameters: `["Order #4721"]`, `"Order #4721"` or `{"order_no": "4721"}`.
    Text(Params),
    /// `{"type": "image", "link" | "id"}`.
    Image(MediaRef),
    /// `{"type": "video", "link" | "id"}`.
    Video(MediaRef),
    /// `{"type": "document", "link" | "id", "filename"?}`.
    Document(DocumentRef),
    /// `{"type": "location", "latitude", "longitude", "name", "address"}`.
    Location(Location),
    /// `{"type": "product", "product_retailer_id", "catalog_id"?}`.
    Product(ProductRef),
}

impl HeaderValue {
    /// Short name of the value's kind (`text`, `image`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            HeaderValue::Text(_) => "text",
            HeaderValue::Image(_) => "image",
            HeaderValue::Video(_) => "video",
            HeaderValue::Document(_) => "document",
            HeaderValue::Location(_) => "location",
            HeaderValue::Product(_) => "product",
        }
    }
}

/// Image or video by public link or uploaded media id (exactly one).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRef {
    /// Public HTTPS URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Media id from `/{PHONE_NUMBER_ID}/media`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Document by link or id, with an optional file name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    /// Public HTTPS URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Media id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// File name shown to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A location header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Latitude, -90..=90.
    pub latitude: f64,
    /// Longitude, -180..=180.
    pub longitude: f64,
    /// Place name.
    pub name: String,
    /// Address.
    pub address: String,
}

/// A catalog product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRef {
    /// The product's retailer id (SKU) in the catalog.
    pub product_retailer_id: String,
    /// Catalog id (optional; the WABA's connected catalog otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

/// The runtime value of one template button, addressed by the template's button `index`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonValue {
    /// 0-based position of the button in the template (a number or a numeric string).
    #[serde(deserialize_with = "de_index")]
    pub index: usize,
    /// Quick reply payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// URL suffix (URL buttons) or one-time code (OTP buttons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Copy-code value (at most 15 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_code: Option<String>,
    /// Flow token (flow buttons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// Flow action data (flow buttons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// Flow values in Meta's nested shape (`{"flow_token", "flow_action_data"}`), an
    /// alternative to the two fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<FlowAction>,
}

/// Flow button values in Meta's `action` shape.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowAction {
    /// Flow token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// Flow action data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Values of one carousel card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardValues {
    /// The card header: `{"type": "image"|"video", ...}` or `{"type": "product", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderValue>,
    /// The card body's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Params>,
    /// The card's runtime buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buttons: Option<Vec<ButtonValue>>,
}

/// Product values (each field is its own slot when merging defaults).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductValues {
    /// Single-product template: the header product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    /// Single-product template: its catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// MPM (required) and catalog (optional) buttons: the thumbnail product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_product_retailer_id: Option<String>,
    /// MPM button: 1-10 sections, at most 30 products in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sections: Option<Vec<Section>>,
}

/// An MPM section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Title (required when there is more than one section; at most 24 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Products of the section.
    pub product_items: Vec<ProductItem>,
}

/// A product in an MPM section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductItem {
    /// The product's retailer id.
    pub product_retailer_id: String,
}

/// Limited-time offer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitedTimeOfferValue {
    /// Offer expiry as a Unix timestamp in milliseconds.
    pub expiration_time_ms: i64,
}

// ---------------------------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------------------------

fn de_index<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a button index (0-9) as a number or a numeric string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom("button index out of range"))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom("button index must not be negative"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
            if v.is_empty() || v.len() > 4 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom("button index must be a number"));
            }
            v.parse()
                .map_err(|_| E::custom("button index must be a number"))
        }
    }
    d.deserialize_any(V)
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TaggedParam {
    Text { text: String },
    Currency { currency: Currency },
    DateTime { date_time: DateTime },
}

impl From<TaggedParam> for Param {
    fn from(t: TaggedParam) -> Self {
        match t {
            TaggedParam::Text { text } => Param::Text(text),
            TaggedParam::Currency { currency } => Param::Currency(currency),
            TaggedParam::DateTime { date_time } => Param::DateTime(date_time),
        }
    }
}

struct ParamVisitor;

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = Param;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text value or a {\"type\": \"currency\"|\"date_time\"|\"text\", ...} object")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Param, E> {
        Ok(Param::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Param, E> {
        Ok(Param::Text(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Param, E> {
        Ok(Param::Text(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Param, E> {
        Ok(Param::Text(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Param, E> {
        Ok(Param::Text(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Param, E> {
        Ok(Param::Text(v.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Param, A::Error> {
        TaggedParam::deserialize(de::value::MapAccessDeserializer::new(map)).map(Param::from)
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Param::Text(t) => s.serialize_str(t),
            Param::Currency(c) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "currency")?;
                m.serialize_entry("currency", c)?;
                m.end()
            }
            Param::DateTime(dt) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "date_time")?;
                m.serialize_entry("date_time", dt)?;
                m.end()
            }
        }
    }
}

/// Most entries in a named-parameter object (bounds parsing work on hostile input).
pub const MAX_NAMED_PARAMS: usize = 100;

fn too_many_named<E: de::Error>() -> E {
    E::custom(format!("at most {MAX_NAMED_PARAMS} named parameters"))
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Params;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of parameters (positional) or an object of named parameters")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Params, E> {
        Ok(Params::Positional(vec![Some(Param::Text(v.to_owned()))]))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(p) = seq.next_element::<Option<Param>>()? {
            v.push(p);
        }
        Ok(Params::Positional(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        let mut v: Vec<(String, Param)> = Vec::new();
        while let Some((k, p)) = map.next_entry::<String, Option<Param>>()? {
            if v.len() >= MAX_NAMED_PARAMS {
                return Err(too_many_named());
            }
            if v.iter().any(|(n, _)| *n == k) {
                return Err(de::Error::custom(format!("parameter {k:?} given twice")));
            }
            if let Some(p) = p {
                v.push((k, p));
            }
        }
        Ok(Params::Named(v))
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamsVisitor)
    }
}

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Params::Positional(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for p in v {
                    seq.serialize_element(p)?;
                }
                seq.end()
            }
            Params::Named(v) => {
                let mut m = s.serialize_map(Some(v.len()))?;
                for (k, p) in v {
                    m.serialize_entry(k, p)?;
                }
                m.end()
            }
        }
    }
}

const TYPED_HEADER_KINDS: [&str; 6] = ["text", "image", "video", "document", "location", "product"];

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = HeaderValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "text parameters (string, array or named object) or a {\"type\": \"image\"|\"video\"|\"document\"|\"location\"|\"product\", ...} object",
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderValue, E> {
        ParamsVisitor.visit_str(v).map(HeaderValue::Text)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<HeaderValue, A::Error> {
        ParamsVisitor.visit_seq(seq).map(HeaderValue::Text)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderValue, A::Error> {
        // Read entries as parameters (numbers become text) without an intermediate JSON
        // value; a "type" naming a header kind makes it a typed header, else named params.
        let mut entries: Vec<(String, Param)> = Vec::with_capacity(4);
        while let Some((k, v)) = map.next_entry::<String, Option<Param>>()? {
            if entries.len() >= MAX_NAMED_PARAMS {
                return Err(too_many_named());
            }
            if entries.iter().any(|(n, _)| *n == k) {
                return Err(de::Error::custom(format!("{k:?} given twice")));
            }
            if let Some(v) = v {
                entries.push((k, v));
            }
        }
        let kind = entries.iter().find_map(|(k, v)| match v {
            Param::Text(t) if k == "type" => TYPED_HEADER_KINDS.iter().find(|x| **x == t.as_str()),
            _ => None,
        });
        match kind {
            Some(kind) => typed_header(kind, entries).map_err(de::Error::custom),
            None => Ok(HeaderValue::Text(Params::Named(entries))),
        }
    }
}

fn typed_header(kind: &str, entries: Vec<(String, Param)>) -> Result<HeaderValue, String> {
    let allowed: &[&str] = match kind {
        "text" => &["text"],
        "image" | "video" => &["link", "id"],
        "document" => &["link", "id", "filename"],
        "location" => &["latitude", "longitude", "name", "address"],
        _ => &["product_retailer_id", "catalog_id"],
    };
    let mut fields: [Option<String>; 4] = Default::default();
    for (k, v) in entries {
        if k == "type" {
            continue;
        }
        let Some(pos) = allowed.iter().position(|a| *a == k) else {
            return Err(format!(
                "unknown field `{k}` in a {kind} header, expected one of {allowed:?}"
            ));
        };
        let Param::Text(s) = v else {
            return Err(format!("`{k}` must be a string"));
        };
        fields[pos] = Some(s);
    }
    let [a, b, c, d] = fields;
    let need = |v: Option<String>, f: &str| v.ok_or_else(|| format!("missing field `{f}`"));
    let coord = |v: Option<String>, f: &str| -> Result<f64, String> {
        need(v, f)?
            .parse::<f64>()
            .map_err(|_| format!("`{f}` must be a number"))
    };
    Ok(match kind {
        "text" => HeaderValue::Text(Params::Positional(vec![Some(Param::Text(need(
            a, "text",
        )?))])),
        "image" => HeaderValue::Image(MediaRef { link: a, id: b }),
        "video" => HeaderValue::Video(MediaRef { link: a, id: b }),
        "document" => HeaderValue::Document(DocumentRef {
            link: a,
            id: b,
            filename: c,
        }),
        "location" => HeaderValue::Location(Location {
            latitude: coord(a, "latitude")?,
            longitude: coord(b, "longitude")?,
            name: need(c, "name")?,
            address: need(d, "address")?,
        }),
        _ => HeaderValue::Product(ProductRef {
            product_retailer_id: need(a, "product_retailer_id")?,
            catalog_id: b,
        }),
    })
}

impl<'de> Deserialize<'de> for HeaderValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeaderVisitor)
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TypedHeaderRef<'a> {
    Image(&'a MediaRef),
    Video(&'a MediaRef),
    Document(&'a DocumentRef),
    Location(&'a Location),
    Product(&'a ProductRef),
}

impl Serialize for HeaderValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HeaderValue::Text(p) => p.serialize(s),
            HeaderValue::Image(m) => TypedHeaderRef::Image(m).serialize(s),
            HeaderValue::Video(m) => TypedHeaderRef::Video(m).serialize(s),
            HeaderValue::Document(d) => TypedHeaderRef::Document(d).serialize(s),
            HeaderValue::Location(l) => TypedHeaderRef::Location(l).serialize(s),
            HeaderValue::Product(p) => TypedHeaderRef::Product(p).serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Result<Variables, serde_json::Error> {
        serde_json::from_value(j)
    }

    #[test]
    fn shapes_parse_and_roundtrip() {
        let cases = [
            json!({"header": ["Order #1"], "body": ["Maria", null, {"type":"currency","currency":{"fallback_value":"$1","code":"USD","amount_1000":1000}}]}),
            json!({"header": {"type":"image","link":"https://x/y.jpg"}}),
            json!({"header": {"type":"document","id":"123","filename":"a.pdf"}}),
            json!({"header": {"type":"location","latitude":1.5,"longitude":2.0,"name":"N","address":"A"}}),
            json!({"header": {"type":"product","product_retailer_id":"SKU"}}),
            json!({"header": {"sale": "Fall"}, "body": {"first_name": "Maria", "when": {"type":"date_time","date_time":{"fallback_value":"Feb 2"}}}}),
            json!({"buttons": [{"index": 0, "payload": "p"}, {"index": "1", "text": "sfx"}]}),
            json!({"cards": [{"header": {"type":"video","id":"9"}, "body": ["a"], "buttons": [{"index":0,"payload":"x"}]}]}),
            json!({"product": {"thumbnail_product_retailer_id":"a","sections":[{"title":"T","product_items":[{"product_retailer_id":"a"}]}]}}),
            json!({"limited_time_offer": {"expiration_time_ms": 1767225599000_i64}}),
        ];
        for c in cases {
            let parsed = v(c.clone()).unwrap_or_else(|e| panic!("{c}: {e}"));
            let back = serde_json::to_value(&parsed).expect("ser");
            let again = v(back).expect("reparse");
            assert_eq!(parsed, again, "{c}");
        }
    }

    #[test]
    fn conveniences() {
        let x = v(json!({"header": "Sale", "body": [42, true, 1.5]})).expect("ok");
        assert_eq!(
            x.header,
            Some(HeaderValue::Text(Params::Positional(vec![Some(
                Param::Text("Sale".into())
            )])))
        );
        assert_eq!(
            x.body,
            Some(Params::Positional(vec![
                Some(Param::Text("42".into())),
                Some(Param::Text("true".into())),
                Some(Param::Text("1.5".into()))
            ]))
        );
    }

    #[test]
    fn rejects_unknown_and_bad() {
        let bad = [
            json!({"hedaer": ["x"]}),
            json!({"header": {"type":"image","url":"https://x"}}),
            json!({"body": [{"type":"currency","currency":{"fallback_value":"$1","code":"USD"}}]}),
            json!({"body": [{"type":"money","value":1}]}),
            json!({"body": [["nested"]]}),
            json!({"buttons": [{"index": 0, "payload": "p", "extra": 1}]}),
            json!({"buttons": [{"index": -1}]}),
            json!({"buttons": [{"index": "x"}]}),
            json!({"cards": [{"footer": "x"}]}),
            json!({"product": {"sections":[{"product_items":[{"id":"a"}]}]}}),
            json!({"limited_time_offer": {"expiration_time_ms": "soon"}}),
        ];
        for b in bad {
            assert!(v(b.clone()).is_err(), "accepted {b}");
        }
    }
}
