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

use crate::error::{ErrorCode, Errors, FieldError};
use serde::{Deserialize, Deserializer, Serialize};

/// Template name limit (characters).
pub const MAX_NAME: usize = 512;
/// Header text limit (characters, template text and runtime value).
pub const MAX_HEADER_TEXT: usize = 60;
/// Body text limit (characters; the rendered body counts).
pub const MAX_BODY_TEXT: usize = 1024;
/// Carousel card body text limit.
pub const MAX_CARD_BODY_TEXT: usize = 160;
/// Footer text limit.
pub const MAX_FOOTER_TEXT: usize = 60;
/// Button label limit.
pub const MAX_BUTTON_TEXT: usize = 25;
/// Button URL limit.
pub const MAX_URL: usize = 2000;
/// Phone-number button number limit.
pub const MAX_BUTTON_PHONE: usize = 20;
/// Buttons per template.
pub const MAX_BUTTONS: usize = 10;
/// Copy-code value limit.
pub const MAX_COPY_CODE: usize = 15;
/// Limited-time-offer text limit.
pub const MAX_LTO_TEXT: usize = 16;
/// Fewest carousel cards.
pub const MIN_CARDS: usize = 2;
/// Most carousel cards.
pub const MAX_CARDS: usize = 10;

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
    fn type_name(&self) -> &'static str {
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
    fn type_name(&self) -> &'static str {
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

    fn label(&self) -> Option<&str> {
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

// ---------------------------------------------------------------------------------------------
// Spec
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

impl Template {
    /// Validates the definition; errors carry field paths such as `components[2].buttons[0].url`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        self.spec().map(|_| ())
    }

    /// Validates the definition and summarises the runtime values it needs.
    pub fn spec(&self) -> Result<TemplateSpec, Vec<FieldError>> {
        let mut errs = Errors::default();
        let spec = analyze(self, &mut errs);
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs.0)
        }
    }

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

pub(crate) fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn is_language_code(s: &str) -> bool {
    let (lang, region) = match s.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| {
        (2..=4).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    lang_ok && region_ok
}

fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Placeholder contents of `text`, in order (`"Hi {{1}} {{2}}"` -> `["1", "2"]`), plus the
/// number of characters used by placeholders. `Err` on an unterminated `{{`.
fn placeholders(text: &str) -> Result<(Vec<&str>, usize), String> {
    let mut out = Vec::new();
    let mut used = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated '{{' placeholder".to_owned());
        };
        let inner = &after[..end];
        out.push(inner);
        used += char_len(inner) + 4;
        rest = &after[end + 2..];
    }
    Ok((out, used))
}

/// Parses the placeholders of a header/body text into a [`TextParams`].
fn text_params(text: &str, format: ParameterFormat, path: &str, errs: &mut Errors) -> TextParams {
    let (found, used) = match placeholders(text) {
        Ok(v) => v,
        Err(msg) => {
            errs.push(path, ErrorCode::ParamNumbering, msg);
            return TextParams::default();
        }
    };
    let static_chars = char_len(text).saturating_sub(used);
    let mut p = TextParams {
        static_chars,
        ..TextParams::default()
    };
    match format {
        ParameterFormat::Positional => {
            let mut max = 0usize;
            let mut nums = Vec::with_capacity(found.len());
            for inner in &found {
                match inner.parse::<usize>() {
                    Ok(n)
                        if (1..=100).contains(&n)
                            && !inner.starts_with('0')
                            && inner.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        max = max.max(n);
                        nums.push(n);
                    }
                    _ => {
                        errs.push(
                            path,
                            ErrorCode::ParamNumbering,
                            format!(
                                "placeholder {{{{{inner}}}}} is not a positional parameter {{{{1}}}}..{{{{n}}}}"
                            ),
                        );
                        return p;
                    }
                }
            }
            let mut occ = vec![0u32; max];
            for n in nums {
                occ[n - 1] += 1;
            }
            if let Some(missing) = occ.iter().position(|&c| c == 0) {
                errs.push(
                    path,
                    ErrorCode::ParamNumbering,
                    format!(
                        "parameters must be numbered contiguously from {{{{1}}}}; {{{{{}}}}} is missing",
                        missing + 1
                    ),
                );
            }
            p.count = max;
            p.occurrences = occ;
        }
        ParameterFormat::Named => {
            for inner in &found {
                if !is_param_name(inner) {
                    errs.push(
                        path,
                        ErrorCode::ParamNumbering,
                        format!(
                            "placeholder {{{{{inner}}}}} is not a named parameter (lowercase letters, digits, underscores)"
                        ),
                    );
                    return p;
                }
                match p.names.iter().position(|n| n == inner) {
                    Some(i) => p.occurrences[i] += 1,
                    None => {
                        p.names.push((*inner).to_owned());
                        p.occurrences.push(1);
                    }
                }
            }
            p.count = p.names.len();
        }
    }
    p
}

fn positional_examples(
    p: &mut TextParams,
    sample: Option<&Vec<String>>,
    path: &str,
    errs: &mut Errors,
) {
    if let Some(s) = sample {
        if s.len() != p.count {
            errs.push(
                path,
                ErrorCode::InvalidValue,
                format!(
                    "example has {} values; the text has {} parameters",
                    s.len(),
                    p.count
                ),
            );
        } else {
            p.examples = s.clone();
        }
    }
}

fn named_examples(
    p: &mut TextParams,
    sample: Option<&Vec<NamedExample>>,
    path: &str,
    errs: &mut Errors,
) {
    if let Some(s) = sample {
        let mut ex = Vec::with_capacity(p.count);
        for name in &p.names {
            match s.iter().find(|e| &e.param_name == name) {
                Some(e) => ex.push(e.example.clone()),
                None => {
                    errs.push(
                        path,
                        ErrorCode::InvalidValue,
                        format!("example lacks parameter {name:?}"),
                    );
                    return;
                }
            }
        }
        if let Some(extra) = s.iter().find(|e| !p.names.contains(&e.param_name)) {
            errs.push(
                path,
                ErrorCode::InvalidValue,
                format!(
                    "example names {:?}, which the text does not use",
                    extra.param_name
                ),
            );
            return;
        }
        p.examples = ex;
    }
}

fn check_len(errs: &mut Errors, path: &str, s: &str, max: usize, what: &str) {
    let n = char_len(s);
    if n > max {
        errs.push(
            path,
            ErrorCode::TooLong,
            format!("{what} has {n} characters; at most {max} are allowed"),
        );
    }
}

fn check_nonempty(errs: &mut Errors, path: &str, s: &str, what: &str) -> bool {
    if s.trim().is_empty() {
        errs.push(
            path,
            ErrorCode::Required,
            format!("{what} must not be empty"),
        );
        false
    } else {
        true
    }
}

struct Ctx {
    format: ParameterFormat,
    category: Category,
}

fn analyze_header(h: &Header, ctx: &Ctx, path: &str, errs: &mut Errors) -> HeaderSpec {
    if h.format != HeaderFormat::Text && h.text.is_some() {
        errs.push(
            format!("{path}.text"),
            ErrorCode::NotAllowed,
            "only TEXT headers have text",
        );
    }
    match h.format {
        HeaderFormat::Text => {
            let tpath = format!("{path}.text");
            let Some(text) = h.text.as_deref() else {
                errs.push(tpath, ErrorCode::Required, "a TEXT header needs text");
                return HeaderSpec::None;
            };
            if !check_nonempty(errs, &tpath, text, "header text") {
                return HeaderSpec::None;
            }
            check_len(errs, &tpath, text, MAX_HEADER_TEXT, "header text");
            let mut p = text_params(text, ctx.format, &tpath, errs);
            if p.count > 1 {
                errs.push(
                    &tpath,
                    ErrorCode::TooMany,
                    format!("a header takes at most 1 parameter; found {}", p.count),
                );
            }
            let ex = h.example.as_ref();
            match ctx.format {
                ParameterFormat::Positional => positional_examples(
                    &mut p,
                    ex.and_then(|e| e.header_text.as_ref()),
                    &format!("{path}.example.header_text"),
                    errs,
                ),
                ParameterFormat::Named => named_examples(
                    &mut p,
                    ex.and_then(|e| e.header_text_named_params.as_ref()),
                    &format!("{path}.example.header_text_named_params"),
                    errs,
                ),
            }
            HeaderSpec::Text(p)
        }
        HeaderFormat::Image => HeaderSpec::Media(MediaKind::Image),
        HeaderFormat::Video => HeaderSpec::Media(MediaKind::Video),
        HeaderFormat::Document => HeaderSpec::Media(MediaKind::Document),
        HeaderFormat::Location => HeaderSpec::Location,
        HeaderFormat::Product => HeaderSpec::Product,
    }
}

fn analyze_body(b: &Body, ctx: &Ctx, max: usize, path: &str, errs: &mut Errors) -> TextParams {
    let tpath = format!("{path}.text");
    let Some(text) = b.text.as_deref() else {
        if ctx.category == Category::Authentication {
            // Meta's fixed text "{{1}} is your verification code."
            return TextParams {
                count: 1,
                occurrences: vec![1],
                static_chars: 32,
                ..TextParams::default()
            };
        }
        errs.push(tpath, ErrorCode::Required, "the body needs text");
        return TextParams::default();
    };
    if !check_nonempty(errs, &tpath, text, "body text") {
        return TextParams::default();
    }
    check_len(errs, &tpath, text, max, "body text");
    if ctx.category != Category::Authentication && b.add_security_recommendation.is_some() {
        errs.push(
            format!("{path}.add_security_recommendation"),
            ErrorCode::NotAllowed,
            "only authentication templates take add_security_recommendation",
        );
    }
    let mut p = text_params(text, ctx.format, &tpath, errs);
    if ctx.category == Category::Authentication && p.count != 1 {
        errs.push(
            &tpath,
            ErrorCode::ParamNumbering,
            "an authentication body has exactly one parameter, the code",
        );
    }
    let ex = b.example.as_ref();
    match ctx.format {
        ParameterFormat::Positional => {
            let sample = ex.and_then(|e| e.body_text.as_ref());
            if let Some(rows) = sample {
                if rows.len() != 1 {
                    errs.push(
                        format!("{path}.example.body_text"),
                        ErrorCode::InvalidValue,
                        "body_text must hold exactly one list of sample values",
                    );
                }
            }
            positional_examples(
                &mut p,
                sample.and_then(|rows| rows.first()),
                &format!("{path}.example.body_text"),
                errs,
            )
        }
        ParameterFormat::Named => named_examples(
            &mut p,
            ex.and_then(|e| e.body_text_named_params.as_ref()),
            &format!("{path}.example.body_text_named_params"),
            errs,
        ),
    }
    p
}

fn analyze_footer(f: &Footer, ctx: &Ctx, path: &str, errs: &mut Errors) {
    if let Some(text) = f.text.as_deref() {
        let tpath = format!("{path}.text");
        if check_nonempty(errs, &tpath, text, "footer text") {
            check_len(errs, &tpath, text, MAX_FOOTER_TEXT, "footer text");
            if text.contains("{{") {
                errs.push(
                    tpath,
                    ErrorCode::NotAllowed,
                    "a footer cannot have parameters",
                );
            }
        }
    } else if f.code_expiration_minutes.is_none() {
        errs.push(
            format!("{path}.text"),
            ErrorCode::Required,
            "the footer needs text",
        );
    }
    if let Some(m) = f.code_expiration_minutes {
        let mpath = format!("{path}.code_expiration_minutes");
        if ctx.category != Category::Authentication {
            errs.push(
                mpath,
                ErrorCode::NotAllowed,
                "only authentication templates take code_expiration_minutes",
            );
        } else if !(1..=90).contains(&m) {
            errs.push(mpath, ErrorCode::InvalidValue, "must be between 1 and 90");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ButtonsPlace {
    Top,
    MediaCard,
    ProductCard,
}

fn analyze_buttons(
    b: &Buttons,
    ctx: &Ctx,
    place: ButtonsPlace,
    path: &str,
    errs: &mut Errors,
) -> Vec<ButtonSpec> {
    let mut specs = Vec::new();
    let max = match place {
        ButtonsPlace::Top => MAX_BUTTONS,
        ButtonsPlace::MediaCard => 2,
        ButtonsPlace::ProductCard => 1,
    };
    if b.buttons.is_empty() {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::TooFew,
            "at least one button is needed",
        );
    }
    if b.buttons.len() > max {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::TooMany,
            format!(
                "at most {max} buttons are allowed here; found {}",
                b.buttons.len()
            ),
        );
    }
    let mut counts = [0usize; 10];
    for (i, button) in b.buttons.iter().enumerate() {
        let bpath = format!("{path}.buttons[{i}]");
        let slot = match button {
            Button::QuickReply { .. } => 0,
            Button::Url { .. } => 1,
            Button::PhoneNumber { .. } => 2,
            Button::CopyCode { .. } => 3,
            Button::Flow { .. } => 4,
            Button::Mpm { .. } => 5,
            Button::Catalog { .. } => 6,
            Button::Spm { .. } => 7,
            Button::VoiceCall { .. } => 8,
            Button::Otp { .. } => 9,
        };
        counts[slot] += 1;
        let allowed_here = match place {
            ButtonsPlace::Top => {
                !matches!(button, Button::Otp { .. }) || ctx.category == Category::Authentication
            }
            ButtonsPlace::MediaCard => matches!(
                button,
                Button::QuickReply { .. } | Button::Url { .. } | Button::PhoneNumber { .. }
            ),
            ButtonsPlace::ProductCard => {
                matches!(button, Button::Spm { .. } | Button::Url { .. })
            }
        };
        if !allowed_here {
            errs.push(
                format!("{bpath}.type"),
                ErrorCode::NotAllowed,
                format!("a {} button is not allowed here", button.type_name()),
            );
        }
        let otp_as_url = matches!(button, Button::Url { url, .. } if url.contains("{{1}}"));
        if ctx.category == Category::Authentication
            && !matches!(button, Button::Otp { .. })
            && !otp_as_url
        {
            errs.push(
                format!("{bpath}.type"),
                ErrorCode::NotAllowed,
                "authentication templates take only an OTP button",
            );
        }
        if let Some(label) = button.label() {
            let lpath = format!("{bpath}.text");
            if check_nonempty(errs, &lpath, label, "button text") {
                check_len(errs, &lpath, label, MAX_BUTTON_TEXT, "button text");
            }
        } else if let Button::Otp { .. } = button {
            // the label of an OTP button is optional (Meta supplies a default)
        }
        let spec = match button {
            Button::QuickReply { .. } => Some((ButtonKind::QuickReply, false)),
            Button::Url { url, example, .. } => {
                let upath = format!("{bpath}.url");
                check_len(errs, &upath, url, MAX_URL, "url");
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    errs.push(
                        &upath,
                        ErrorCode::InvalidValue,
                        "url must start with https://",
                    );
                }
                match placeholders(url) {
                    Ok((found, _)) if found.is_empty() => None,
                    Ok((found, _)) if found == ["1"] && url.ends_with("{{1}}") => {
                        let prefix = url.trim_end_matches("{{1}}").to_owned();
                        let ex = example
                            .as_ref()
                            .and_then(|e| e.first())
                            .map(|e| e.strip_prefix(prefix.as_str()).unwrap_or(e).to_owned());
                        if ctx.category == Category::Authentication {
                            // Meta's GET returns an authentication template's OTP button as a
                            // URL button ending in `otp{{1}}`; it takes the code.
                            Some((ButtonKind::Otp, true))
                        } else {
                            Some((
                                ButtonKind::UrlSuffix {
                                    static_prefix: prefix,
                                    example: ex,
                                },
                                true,
                            ))
                        }
                    }
                    _ => {
                        errs.push(
                            &upath,
                            ErrorCode::ParamNumbering,
                            "a url may have one {{1}} placeholder, at its end",
                        );
                        None
                    }
                }
            }
            Button::PhoneNumber { phone_number, .. } => {
                let ppath = format!("{bpath}.phone_number");
                if check_nonempty(errs, &ppath, phone_number, "phone_number") {
                    check_len(errs, &ppath, phone_number, MAX_BUTTON_PHONE, "phone_number");
                }
                None
            }
            Button::CopyCode { example, .. } => {
                if let Some(ex) = example {
                    check_len(errs, &format!("{bpath}.example"), ex, MAX_COPY_CODE, "code");
                }
                Some((
                    ButtonKind::CopyCode {
                        example: example.clone(),
                    },
                    true,
                ))
            }
            Button::Flow {
                flow_id,
                flow_name,
                flow_json,
                flow_action,
                ..
            } => {
                if flow_id.is_none() && flow_name.is_none() && flow_json.is_none() {
                    errs.push(
                        format!("{bpath}.flow_id"),
                        ErrorCode::Required,
                        "a FLOW button needs flow_id, flow_name or flow_json",
                    );
                }
                if let Some(a) = flow_action {
                    if a != "navigate" && a != "data_exchange" {
                        errs.push(
                            format!("{bpath}.flow_action"),
                            ErrorCode::InvalidValue,
                            "flow_action must be navigate or data_exchange",
                        );
                    }
                }
                Some((ButtonKind::Flow, false))
            }
            Button::Mpm { .. } => Some((ButtonKind::Mpm, true)),
            Button::Catalog { .. } => Some((ButtonKind::Catalog, false)),
            Button::Spm { .. } | Button::VoiceCall { .. } => None,
            Button::Otp { .. } => Some((ButtonKind::Otp, true)),
        };
        if let Some((kind, required)) = spec {
            specs.push(ButtonSpec {
                index: i,
                kind,
                required,
            });
        }
    }
    let limits: [(usize, usize, &str); 10] = [
        (0, 10, "QUICK_REPLY"),
        (1, 2, "URL"),
        (2, 1, "PHONE_NUMBER"),
        (3, 1, "COPY_CODE"),
        (4, 1, "FLOW"),
        (5, 1, "MPM"),
        (6, 1, "CATALOG"),
        (7, 1, "SPM"),
        (8, 1, "VOICE_CALL"),
        (9, 1, "OTP"),
    ];
    for (slot, lim, name) in limits {
        if counts[slot] > lim {
            errs.push(
                format!("{path}.buttons"),
                ErrorCode::TooMany,
                format!(
                    "at most {lim} {name} button(s) are allowed; found {}",
                    counts[slot]
                ),
            );
        }
    }
    let commerce = counts[5] + counts[6] + counts[7];
    if commerce > 1 {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::NotAllowed,
            "MPM, CATALOG and SPM buttons exclude each other",
        );
    }
    specs
}

#[derive(PartialEq, Eq)]
struct CardShape {
    header: Option<HeaderFormat>,
    has_body: bool,
    buttons: Vec<&'static str>,
}

fn analyze_card(card: &Card, ctx: &Ctx, path: &str, errs: &mut Errors) -> (CardSpec, CardShape) {
    let mut spec = CardSpec::default();
    let mut shape = CardShape {
        header: None,
        has_body: false,
        buttons: Vec::new(),
    };
    let mut seen: Vec<&'static str> = Vec::new();
    for (i, comp) in card.components.iter().enumerate() {
        let cpath = format!("{path}.components[{i}]");
        let name = comp.type_name();
        if seen.contains(&name) {
            errs.push(
                &cpath,
                ErrorCode::Duplicate,
                format!("a card has one {name} component"),
            );
            continue;
        }
        seen.push(name);
        match comp {
            Component::Header(h) => {
                shape.header = Some(h.format);
                match h.format {
                    HeaderFormat::Image | HeaderFormat::Video | HeaderFormat::Product => {
                        spec.header = analyze_header(h, ctx, &cpath, errs);
                    }
                    _ => errs.push(
                        format!("{cpath}.format"),
                        ErrorCode::NotAllowed,
                        "a card header is IMAGE, VIDEO or PRODUCT",
                    ),
                }
            }
            Component::Body(b) => {
                shape.has_body = true;
                spec.body = analyze_body(b, ctx, MAX_CARD_BODY_TEXT, &cpath, errs);
            }
            Component::Buttons(b) => {
                let place = if shape.header == Some(HeaderFormat::Product) {
                    ButtonsPlace::ProductCard
                } else {
                    ButtonsPlace::MediaCard
                };
                shape.buttons = b.buttons.iter().map(Button::type_name).collect();
                spec.buttons = analyze_buttons(b, ctx, place, &cpath, errs);
            }
            other => errs.push(
                format!("{cpath}.type"),
                ErrorCode::NotAllowed,
                format!("a card cannot have a {} component", other.type_name()),
            ),
        }
    }
    if shape.header.is_none() {
        errs.push(
            format!("{path}.components"),
            ErrorCode::Required,
            "every card needs a HEADER (IMAGE, VIDEO or PRODUCT)",
        );
    }
    if shape.buttons.is_empty() && shape.header != Some(HeaderFormat::Product) {
        errs.push(
            format!("{path}.components"),
            ErrorCode::Required,
            "every media card needs BUTTONS",
        );
    }
    (spec, shape)
}

fn analyze(t: &Template, errs: &mut Errors) -> TemplateSpec {
    let mut spec = TemplateSpec {
        parameter_format: t.parameter_format,
        authentication: t.category == Category::Authentication,
        ..TemplateSpec::default()
    };
    let ctx = Ctx {
        format: t.parameter_format,
        category: t.category,
    };

    if t.name.is_empty() {
        errs.push("name", ErrorCode::Required, "name must not be empty");
    } else if t.name.len() > MAX_NAME {
        errs.push(
            "name",
            ErrorCode::TooLong,
            "name has more than 512 characters",
        );
    } else if !t
        .name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errs.push(
            "name",
            ErrorCode::InvalidValue,
            "name may contain only lowercase letters, digits and underscores",
        );
    }
    if !is_language_code(&t.language) {
        errs.push(
            "language",
            ErrorCode::InvalidValue,
            "language must be a locale code such as en, en_US or pt_BR",
        );
    }

    let mut seen: Vec<&'static str> = Vec::new();
    let mut has_body = false;
    let mut has_footer = false;
    let mut header_format = None;
    let mut top_button_types: Vec<&'static str> = Vec::new();
    let mut has_carousel = false;
    for (i, comp) in t.components.iter().enumerate() {
        let path = format!("components[{i}]");
        let name = comp.type_name();
        if seen.contains(&name) {
            errs.push(
                &path,
                ErrorCode::Duplicate,
                format!("a template has at most one {name} component"),
            );
            continue;
        }
        seen.push(name);
        match comp {
            Component::Header(h) => {
                header_format = Some(h.format);
                if t.category == Category::Authentication {
                    errs.push(
                        &path,
                        ErrorCode::NotAllowed,
                        "authentication templates have no header",
                    );
                }
                spec.header = analyze_header(h, &ctx, &path, errs);
            }
            Component::Body(b) => {
                has_body = true;
                spec.body = analyze_body(b, &ctx, MAX_BODY_TEXT, &path, errs);
            }
            Component::Footer(f) => {
                has_footer = true;
                analyze_footer(f, &ctx, &path, errs);
            }
            Component::Buttons(b) => {
                top_button_types = b.buttons.iter().map(Button::type_name).collect();
                spec.buttons = analyze_buttons(b, &ctx, ButtonsPlace::Top, &path, errs);
            }
            Component::Carousel(c) => {
                has_carousel = true;
                let cpath = format!("{path}.cards");
                if c.cards.len() < MIN_CARDS || c.cards.len() > MAX_CARDS {
                    errs.push(
                        &cpath,
                        ErrorCode::CardCount,
                        format!(
                            "a carousel has {MIN_CARDS} to {MAX_CARDS} cards; found {}",
                            c.cards.len()
                        ),
                    );
                }
                let mut first_shape: Option<CardShape> = None;
                for (j, card) in c.cards.iter().enumerate() {
                    let kpath = format!("{cpath}[{j}]");
                    let (cs, shape) = analyze_card(card, &ctx, &kpath, errs);
                    match &first_shape {
                        None => first_shape = Some(shape),
                        Some(first) if *first != shape => errs.push(
                            &kpath,
                            ErrorCode::InvalidValue,
                            "every card must have the same header format, body presence and buttons as the first card",
                        ),
                        Some(_) => {}
                    }
                    spec.cards.push(cs);
                }
            }
            Component::LimitedTimeOffer(l) => {
                let lpath = format!("{path}.limited_time_offer.text");
                if check_nonempty(errs, &lpath, &l.limited_time_offer.text, "offer text") {
                    check_len(
                        errs,
                        &lpath,
                        &l.limited_time_offer.text,
                        MAX_LTO_TEXT,
                        "offer text",
                    );
                }
                if t.category != Category::Marketing {
                    errs.push(
                        &path,
                        ErrorCode::NotAllowed,
                        "limited-time offers are MARKETING templates",
                    );
                }
                spec.limited_time_offer = Some(l.limited_time_offer.has_expiration);
            }
        }
    }
    if !has_body {
        errs.push(
            "components",
            ErrorCode::Required,
            "a template needs a BODY component",
        );
    }
    if has_carousel {
        for (i, comp) in t.components.iter().enumerate() {
            if !matches!(comp, Component::Body(_) | Component::Carousel(_)) {
                errs.push(
                    format!("components[{i}]"),
                    ErrorCode::NotAllowed,
                    format!(
                        "a carousel template has only BODY and CAROUSEL; {} is not allowed",
                        comp.type_name()
                    ),
                );
            }
        }
    }
    if spec.limited_time_offer.is_some() && has_footer {
        errs.push(
            "components",
            ErrorCode::NotAllowed,
            "a limited-time-offer template has no footer",
        );
    }
    if t.category == Category::Authentication
        && !spec.buttons.iter().any(|b| b.kind == ButtonKind::Otp)
    {
        errs.push(
            "components",
            ErrorCode::Required,
            "an authentication template needs an OTP button",
        );
    }
    let has_spm = top_button_types.contains(&"SPM");
    if header_format == Some(HeaderFormat::Product) && !has_spm {
        errs.push(
            "components",
            ErrorCode::Required,
            "a PRODUCT header goes with an SPM button",
        );
    }
    if has_spm && header_format != Some(HeaderFormat::Product) {
        errs.push(
            "components",
            ErrorCode::Required,
            "an SPM button needs a PRODUCT header",
        );
    }
    spec.product = ProductNeeds {
        header_product: header_format == Some(HeaderFormat::Product),
        mpm: top_button_types.contains(&"MPM"),
        catalog: top_button_types.contains(&"CATALOG"),
    };
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: serde_json::Value) -> Template {
        serde_json::from_value(v).expect("template json")
    }

    fn codes(t: &Template) -> Vec<(String, ErrorCode)> {
        match t.validate() {
            Ok(()) => vec![],
            Err(e) => e.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    #[test]
    fn placeholders_parse() {
        assert_eq!(
            placeholders("a {{1}} b {{2}}").expect("ok").0,
            vec!["1", "2"]
        );
        assert!(placeholders("a {{1").is_err());
    }

    #[test]
    fn language_codes() {
        for ok in ["en", "en_US", "pt_BR", "fil", "es_LA", "zh_HK"] {
            assert!(is_language_code(ok), "{ok}");
        }
        for bad in ["", "EN", "en-US", "en_us", "english", "e"] {
            assert!(!is_language_code(bad), "{bad}");
        }
    }

    #[test]
    fn non_contiguous_params() {
        let tpl = t(
            json!({"name":"x","language":"en","category":"UTILITY","components":[
            {"type":"BODY","text":"Hi {{1}} and {{3}}"}]}),
        );
        assert_eq!(
            codes(&tpl),
            vec![("components[0].text".into(), ErrorCode::ParamNumbering)]
        );
    }

    #[test]
    fn named_and_repeated() {
        let tpl = t(
            json!({"name":"x","language":"en","category":"UTILITY","parameter_format":"NAMED",
            "components":[{"type":"BODY","text":"Hi {{first_name}}, {{first_name}} order {{order_id}}",
              "example":{"body_text_named_params":[
                {"param_name":"first_name","example":"Maria"},{"param_name":"order_id","example":"7"}]}}]}),
        );
        let spec = tpl.spec().expect("valid");
        assert_eq!(spec.body.names, vec!["first_name", "order_id"]);
        assert_eq!(spec.body.occurrences, vec![2, 1]);
        assert_eq!(spec.body.examples, vec!["Maria", "7"]);
    }

    #[test]
    fn many_errors_with_paths() {
        let long = "x".repeat(61);
        let tpl = t(
            json!({"name":"Bad Name","language":"english","category":"MARKETING","components":[
                {"type":"HEADER","format":"TEXT","text": long},
                {"type":"FOOTER","text":"f {{1}}"},
                {"type":"BUTTONS","buttons":[
                    {"type":"URL","text":"Go","url":"ftp://x/{{1}}"},
                    {"type":"URL","text":"Go","url":"https://x/{{1}}/y"},
                    {"type":"URL","text":"This label is far too long to fit","url":"https://x"},
                    {"type":"COPY_CODE","example":"THIS_IS_TOO_LONG_CODE"}
                ]}
            ]}),
        );
        let c = codes(&tpl);
        let want = [
            ("name", ErrorCode::InvalidValue),
            ("language", ErrorCode::InvalidValue),
            ("components[0].text", ErrorCode::TooLong),
            ("components[1].text", ErrorCode::NotAllowed),
            ("components[2].buttons[0].url", ErrorCode::InvalidValue),
            ("components[2].buttons[1].url", ErrorCode::ParamNumbering),
            ("components[2].buttons[2].text", ErrorCode::TooLong),
            ("components[2].buttons[3].example", ErrorCode::TooLong),
            ("components[2].buttons", ErrorCode::TooMany),
            ("components", ErrorCode::Required),
        ];
        for (f, code) in want {
            assert!(
                c.contains(&(f.to_owned(), code)),
                "missing {f} {code:?} in {c:?}"
            );
        }
    }

    #[test]
    fn carousel_rules() {
        let card = |fmt: &str| {
            json!({"components":[{"type":"HEADER","format":fmt},
                {"type":"BODY","text":"Card {{1}}"},
                {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"More"}]}]})
        };
        let one = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE")]}]}),
        );
        assert!(codes(&one).contains(&("components[1].cards".into(), ErrorCode::CardCount)));
        let mixed = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE"), card("VIDEO")]}]}),
        );
        assert!(codes(&mixed).contains(&("components[1].cards[1]".into(), ErrorCode::InvalidValue)));
        let ok = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE"), card("IMAGE")]}]}),
        );
        let spec = ok.spec().expect("valid");
        assert_eq!(spec.cards.len(), 2);
        assert_eq!(spec.cards[1].header, HeaderSpec::Media(MediaKind::Image));
        assert_eq!(spec.cards[1].body.count, 1);
        assert_eq!(spec.cards[1].buttons[0].kind, ButtonKind::QuickReply);
    }

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
