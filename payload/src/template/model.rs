//! The serde model of Meta's message-template format: [`Template`], its components and buttons,
//! as `POST /{WABA-ID}/message_templates` takes them and `GET` returns them, plus the accessors
//! of a template's header and body.

use serde::{Deserialize, Deserializer, Serialize};

/// A message template definition in Meta's format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Lowercase letters, digits and underscores, at most 512 characters.
    pub name: String,
    /// Locale code exactly as approved (`en`, `en_US`, `pt_BR`, ...).
    pub language: String,
    /// Template category.
    pub category: Category,
    /// Positional (`{{1}}`) or named (`{{first_name}}`) parameters; positional when absent.
    #[serde(default, skip_serializing_if = "ParameterFormat::is_positional")]
    pub parameter_format: ParameterFormat,
    /// The template's components.
    pub components: Vec<Component>,
}

/// Template category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// Marketing.
    #[serde(alias = "marketing")]
    Marketing,
    /// Utility.
    #[serde(alias = "utility")]
    Utility,
    /// Authentication (one-time passwords).
    #[serde(alias = "authentication")]
    Authentication,
}

impl Category {
    /// Meta's spelling: `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "MARKETING",
            Category::Utility => "UTILITY",
            Category::Authentication => "AUTHENTICATION",
        }
    }
}

/// How text parameters are written in the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterFormat {
    /// `{{1}}`, `{{2}}`, ...
    #[default]
    #[serde(alias = "positional")]
    Positional,
    /// `{{first_name}}`, ...
    #[serde(alias = "named")]
    Named,
}

impl ParameterFormat {
    fn is_positional(&self) -> bool {
        *self == ParameterFormat::Positional
    }
}

/// One component of a template (or of a carousel card).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Component {
    /// `HEADER`.
    #[serde(rename = "HEADER", alias = "header")]
    Header(Header),
    /// `BODY`.
    #[serde(rename = "BODY", alias = "body")]
    Body(Body),
    /// `FOOTER`.
    #[serde(rename = "FOOTER", alias = "footer")]
    Footer(Footer),
    /// `BUTTONS`.
    #[serde(rename = "BUTTONS", alias = "buttons")]
    Buttons(Buttons),
    /// `CAROUSEL` (media or product cards).
    #[serde(rename = "CAROUSEL", alias = "carousel")]
    Carousel(Carousel),
    /// `LIMITED_TIME_OFFER`.
    #[serde(rename = "LIMITED_TIME_OFFER", alias = "limited_time_offer")]
    LimitedTimeOffer(LimitedTimeOffer),
}

impl Component {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Component::Header(_) => "HEADER",
            Component::Body(_) => "BODY",
            Component::Footer(_) => "FOOTER",
            Component::Buttons(_) => "BUTTONS",
            Component::Carousel(_) => "CAROUSEL",
            Component::LimitedTimeOffer(_) => "LIMITED_TIME_OFFER",
        }
    }
}

/// Header format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeaderFormat {
    /// Text, optionally with one parameter.
    #[serde(alias = "text")]
    Text,
    /// Image (sent by link or media id).
    #[serde(alias = "image")]
    Image,
    /// Video.
    #[serde(alias = "video")]
    Video,
    /// Document (PDF).
    #[serde(alias = "document")]
    Document,
    /// Location (latitude, longitude, name, address).
    #[serde(alias = "location")]
    Location,
    /// Product (single-product templates and product cards).
    #[serde(alias = "product")]
    Product,
}

/// `HEADER` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Header format.
    pub format: HeaderFormat,
    /// Text of a `TEXT` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Sample values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<HeaderExample>,
}

/// Sample values of a header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HeaderExample {
    /// Positional text sample (`["Summer Sale"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<Vec<String>>,
    /// Named text samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text_named_params: Option<Vec<NamedExample>>,
    /// Uploaded media sample handles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_handle: Option<Vec<String>>,
}

/// A named parameter's sample value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedExample {
    /// Parameter name.
    pub param_name: String,
    /// Sample value.
    pub example: String,
}

/// `BODY` component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Body {
    /// Body text with `{{1}}` or `{{name}}` placeholders (absent in authentication templates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Sample values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<BodyExample>,
    /// Authentication templates: add the "do not share" sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_security_recommendation: Option<bool>,
}

/// Sample values of a body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BodyExample {
    /// Positional samples: one inner list (`[["Mark", "FALL25"]]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<Vec<Vec<String>>>,
    /// Named samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text_named_params: Option<Vec<NamedExample>>,
}

/// `FOOTER` component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Footer {
    /// Footer text (no parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Authentication templates: code expiry shown in the footer (1-90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_expiration_minutes: Option<u32>,
}

/// `BUTTONS` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buttons {
    /// Buttons, in display order; a button's position is its send-time `index`.
    pub buttons: Vec<Button>,
}

/// A template button.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Button {
    /// Quick reply; an optional runtime `payload`.
    #[serde(rename = "QUICK_REPLY", alias = "quick_reply")]
    QuickReply {
        /// Label.
        text: String,
    },
    /// URL, static or with one `{{1}}` suffix at the end (runtime value: the suffix).
    #[serde(rename = "URL", alias = "url")]
    Url {
        /// Label.
        text: String,
        /// URL, e.g. `https://shop.example.com/track/{{1}}`.
        url: String,
        /// Sample suffix or full sample URL (a string or a list of strings).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "opt_one_or_many"
        )]
        example: Option<Vec<String>>,
    },
    /// Call a phone number (static).
    #[serde(rename = "PHONE_NUMBER", alias = "phone_number")]
    PhoneNumber {
        /// Label.
        text: String,
        /// Number to call.
        phone_number: String,
    },
    /// Copy a coupon code (runtime value: the code, at most 15 characters).
    #[serde(rename = "COPY_CODE", alias = "copy_code")]
    CopyCode {
        /// Label (Meta shows "Copy offer code").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Sample code (a string, or the first of a list as Meta's GET returns it).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "opt_first_of_one_or_many"
        )]
        example: Option<String>,
    },
    /// Open a WhatsApp Flow (optional runtime flow token and action data).
    #[serde(rename = "FLOW", alias = "flow")]
    Flow {
        /// Label.
        text: String,
        /// Flow id.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "opt_string_or_number"
        )]
        flow_id: Option<String>,
        /// Flow name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow_name: Option<String>,
        /// Inline Flow JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow_json: Option<String>,
        /// `navigate` or `data_exchange`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow_action: Option<String>,
        /// First screen for `navigate`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        navigate_screen: Option<String>,
    },
    /// Multi-product message (runtime: thumbnail and sections).
    #[serde(rename = "MPM", alias = "mpm")]
    Mpm {
        /// Label.
        text: String,
    },
    /// View catalog (runtime: optional thumbnail product).
    #[serde(rename = "CATALOG", alias = "catalog")]
    Catalog {
        /// Label.
        text: String,
    },
    /// Single-product "View" button (no runtime value; the product is in the header).
    #[serde(rename = "SPM", alias = "spm")]
    Spm {
        /// Label.
        text: String,
    },
    /// Voice call button (static).
    #[serde(rename = "VOICE_CALL", alias = "voice_call")]
    VoiceCall {
        /// Label.
        text: String,
    },
    /// One-time password button of an authentication template (runtime: the code).
    #[serde(rename = "OTP", alias = "otp")]
    Otp {
        /// `COPY_CODE`, `ONE_TAP` or `ZERO_TAP`.
        otp_type: OtpType,
        /// Label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// One-tap autofill label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        autofill_text: Option<String>,
        /// Android package name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package_name: Option<String>,
        /// Android app signature hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature_hash: Option<String>,
    },
}

/// One-time password delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OtpType {
    /// Copy code.
    #[serde(alias = "copy_code")]
    CopyCode,
    /// One-tap autofill.
    #[serde(alias = "one_tap")]
    OneTap,
    /// Zero-tap.
    #[serde(alias = "zero_tap")]
    ZeroTap,
}

impl Button {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Button::QuickReply { .. } => "QUICK_REPLY",
            Button::Url { .. } => "URL",
            Button::PhoneNumber { .. } => "PHONE_NUMBER",
            Button::CopyCode { .. } => "COPY_CODE",
            Button::Flow { .. } => "FLOW",
            Button::Mpm { .. } => "MPM",
            Button::Catalog { .. } => "CATALOG",
            Button::Spm { .. } => "SPM",
            Button::VoiceCall { .. } => "VOICE_CALL",
            Button::Otp { .. } => "OTP",
        }
    }

    pub(super) fn label(&self) -> Option<&str> {
        match self {
            Button::QuickReply { text }
            | Button::Url { text, .. }
            | Button::PhoneNumber { text, .. }
            | Button::Flow { text, .. }
            | Button::Mpm { text }
            | Button::Catalog { text }
            | Button::Spm { text }
            | Button::VoiceCall { text } => Some(text),
            Button::Otp { text, .. } | Button::CopyCode { text, .. } => text.as_deref(),
        }
    }
}

/// `CAROUSEL` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carousel {
    /// 2-10 cards of the same shape.
    pub cards: Vec<Card>,
}

/// A carousel card: `HEADER` (IMAGE/VIDEO or PRODUCT), optional `BODY`, `BUTTONS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// The card's components.
    pub components: Vec<Component>,
}

/// `LIMITED_TIME_OFFER` component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitedTimeOffer {
    /// Offer details.
    pub limited_time_offer: LimitedTimeOfferDef,
}

/// Offer details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitedTimeOfferDef {
    /// Offer text (at most 16 characters).
    pub text: String,
    /// Whether an expiry is shown (then the send needs `expiration_time_ms`).
    #[serde(default)]
    pub has_expiration: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn opt_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

fn opt_first_of_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<OneOrMany>::deserialize(d)?.and_then(|v| match v {
        OneOrMany::One(s) => Some(s),
        OneOrMany::Many(v) => v.into_iter().next(),
    }))
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SN {
        S(String),
        N(serde_json::Number),
    }
    Ok(Option::<SN>::deserialize(d)?.map(|v| match v {
        SN::S(s) => s,
        SN::N(n) => n.to_string(),
    }))
}

impl Template {
    /// The header component, if any.
    pub fn header(&self) -> Option<&Header> {
        self.components.iter().find_map(|c| match c {
            Component::Header(h) => Some(h),
            _ => None,
        })
    }

    /// The body component, if any.
    pub fn body(&self) -> Option<&Body> {
        self.components.iter().find_map(|c| match c {
            Component::Body(b) => Some(b),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::test_support::t;
    use serde_json::json;

    #[test]
    fn roundtrip_serde() {
        let tpl = t(
            json!({"name":"x","language":"en_US","category":"marketing","components":[
            {"type":"body","text":"Hi {{1}}"},
            {"type":"BUTTONS","buttons":[{"type":"FLOW","text":"Go","flow_id":123}]}]}),
        );
        let v = serde_json::to_value(&tpl).expect("ser");
        assert_eq!(v["components"][0]["type"], "BODY");
        assert_eq!(v["category"], "MARKETING");
        assert_eq!(v["components"][1]["buttons"][0]["flow_id"], "123");
        let back: Template = serde_json::from_value(v).expect("de");
        assert_eq!(back, tpl);
    }
}
