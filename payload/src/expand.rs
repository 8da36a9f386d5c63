//! Expansion: template + broadcast defaults + recipient variables -> the Graph API body.
//!
//! [`CompiledTemplate`] validates a template once and keeps its [`TemplateSpec`]; its
//! [`CompiledTemplate::expand`] is the hot path (a few hundred nanoseconds for a typical
//! template). The free [`expand`] validates the template on every call.
//!
//! The result [`Message`] borrows from the template and the variables and serialises to the
//! exact body of `POST /{version}/{phone_number_id}/messages`.

use crate::error::{ErrorCode, FieldError};
use crate::phone::{canonical_digits, PhoneE164};
use crate::template::{
    char_len, ButtonKind, ButtonSpec, HeaderSpec, MediaKind, ParameterFormat, Template,
    TemplateSpec, TextParams, MAX_BODY_TEXT, MAX_COPY_CODE, MAX_HEADER_TEXT,
};
use crate::variables::{
    ButtonValue, CardValues, Currency, DateTime, HeaderValue, Location, Param, Params, Section,
    Variables,
};
use serde::Serialize;
use std::borrow::Cow;

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

// ---------------------------------------------------------------------------------------------
// Output types
// ---------------------------------------------------------------------------------------------

/// A template message body for the Graph API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message<'a> {
    /// Always `whatsapp`.
    pub messaging_product: &'static str,
    /// Always `individual`.
    pub recipient_type: &'static str,
    /// The recipient's digits without `+`.
    pub to: Cow<'a, str>,
    /// Always `template`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Our correlation data (the message id); omitted when empty.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub biz_opaque_callback_data: &'a str,
    /// The template part.
    pub template: MessageTemplate<'a>,
}

impl Message<'_> {
    /// The JSON bytes of the body.
    pub fn to_json_vec(&self) -> Vec<u8> {
        // Serialising these types cannot fail: all map keys are strings and every float is a
        // validated, finite coordinate.
        let mut out = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// The JSON text of the body (no UTF-8 re-check, unlike `String::from_utf8(to_json_vec())`).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The body as a JSON value.
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// `template` object of a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageTemplate<'a> {
    /// Template name.
    pub name: &'a str,
    /// Template language.
    pub language: Language<'a>,
    /// Components with runtime values (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<MessageComponent<'a>>,
}

/// `language` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Language<'a> {
    /// Locale code exactly as approved.
    pub code: &'a str,
}

/// A send-time component.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageComponent<'a> {
    /// `header`.
    Header {
        /// One parameter (serialised as a one-element array).
        parameters: [Parameter<'a>; 1],
    },
    /// `body`.
    Body {
        /// Body parameters in order.
        parameters: Vec<Parameter<'a>>,
    },
    /// `limited_time_offer`.
    LimitedTimeOffer {
        /// One `limited_time_offer` parameter.
        parameters: [Parameter<'a>; 1],
    },
    /// `button`.
    Button {
        /// `quick_reply`, `url`, `copy_code`, `flow`, `mpm` or `catalog`.
        sub_type: &'static str,
        /// 0-based button position, as a string.
        index: Cow<'static, str>,
        /// The button's parameter.
        parameters: [Parameter<'a>; 1],
    },
    /// `carousel`.
    Carousel {
        /// All cards of the template.
        cards: Vec<MessageCard<'a>>,
    },
}

/// A carousel card at send time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageCard<'a> {
    /// 0-based card position.
    pub card_index: usize,
    /// The card's header, body and buttons.
    pub components: Vec<MessageComponent<'a>>,
}

/// A send-time parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Parameter<'a> {
    /// Text.
    Text {
        /// Named templates: the parameter's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter_name: Option<&'a str>,
        /// The (flattened) text.
        text: Cow<'a, str>,
    },
    /// Currency.
    Currency {
        /// Named templates: the parameter's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter_name: Option<&'a str>,
        /// The value.
        currency: CurrencyValue<'a>,
    },
    /// Date/time.
    DateTime {
        /// Named templates: the parameter's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        parameter_name: Option<&'a str>,
        /// The value.
        date_time: DateTimeValue<'a>,
    },
    /// Image header.
    Image {
        /// Link or id.
        image: Media<'a>,
    },
    /// Video header.
    Video {
        /// Link or id.
        video: Media<'a>,
    },
    /// Document header.
    Document {
        /// Link or id, file name.
        document: Media<'a>,
    },
    /// Location header.
    Location {
        /// Coordinates, name, address.
        location: &'a Location,
    },
    /// Product header.
    Product {
        /// The product.
        product: Product<'a>,
    },
    /// Quick-reply payload.
    Payload {
        /// The payload.
        payload: &'a str,
    },
    /// Copy-code value.
    CouponCode {
        /// The code.
        coupon_code: &'a str,
    },
    /// Flow, MPM or catalog action.
    Action {
        /// The action.
        action: Action<'a>,
    },
    /// Limited-time offer.
    LimitedTimeOffer {
        /// Expiry.
        limited_time_offer: OfferExpiry,
    },
}

/// A currency parameter (fallback text flattened like text parameters).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrencyValue<'a> {
    /// What is shown.
    pub fallback_value: Cow<'a, str>,
    /// ISO 4217 code.
    pub code: &'a str,
    /// Amount times 1000.
    pub amount_1000: i64,
}

impl<'a> CurrencyValue<'a> {
    fn new(c: &'a Currency) -> Self {
        CurrencyValue {
            fallback_value: flatten_text(&c.fallback_value),
            code: &c.code,
            amount_1000: c.amount_1000,
        }
    }
}

/// A date/time parameter (fallback text flattened; legacy fields passed on).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateTimeValue<'a> {
    /// What is shown.
    pub fallback_value: Cow<'a, str>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<&'a str>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<i64>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<i64>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<i64>,
    /// Legacy localisation field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub year: Option<i64>,
}

impl<'a> DateTimeValue<'a> {
    fn new(d: &'a DateTime) -> Self {
        DateTimeValue {
            fallback_value: flatten_text(&d.fallback_value),
            calendar: d.calendar.as_deref(),
            day_of_month: d.day_of_month,
            day_of_week: d.day_of_week,
            hour: d.hour,
            minute: d.minute,
            month: d.month,
            year: d.year,
        }
    }
}

/// Media by link or id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Media<'a> {
    /// Public URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<&'a str>,
    /// Media id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Document file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<&'a str>,
}

/// A product reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product<'a> {
    /// Retailer id.
    pub product_retailer_id: &'a str,
    /// Catalog id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<&'a str>,
}

/// A button action.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Action<'a> {
    /// Flow token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<&'a str>,
    /// Flow action data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_action_data: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// MPM/catalog thumbnail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_product_retailer_id: Option<&'a str>,
    /// MPM sections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sections: Option<&'a [Section]>,
}

/// Limited-time offer expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OfferExpiry {
    /// Unix time in milliseconds.
    pub expiration_time_ms: i64,
}

// ---------------------------------------------------------------------------------------------
// Text hygiene
// ---------------------------------------------------------------------------------------------

/// Flattens a text parameter to Meta's rules: a run of whitespace that contains a newline,
/// carriage return or tab becomes one space, and a run of more than 4 spaces becomes one space.
/// Returns the input borrowed when it is already clean.
pub fn flatten_text(s: &str) -> Cow<'_, str> {
    let mut run = 0usize;
    let mut dirty = false;
    for &b in s.as_bytes() {
        match b {
            b'\n' | b'\r' | b'\t' => {
                dirty = true;
                break;
            }
            b' ' => {
                run += 1;
                if run > 4 {
                    dirty = true;
                    break;
                }
            }
            _ => run = 0,
        }
    }
    if !dirty {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut spaces = 0usize;
    let mut ctrl = false;
    let flush = |out: &mut String, spaces: &mut usize, ctrl: &mut bool| {
        if *ctrl || *spaces > 4 {
            out.push(' ');
        } else {
            for _ in 0..*spaces {
                out.push(' ');
            }
        }
        *spaces = 0;
        *ctrl = false;
    };
    for c in s.chars() {
        match c {
            ' ' => spaces += 1,
            '\n' | '\r' | '\t' => {
                spaces += 1;
                ctrl = true;
            }
            _ => {
                if spaces > 0 {
                    flush(&mut out, &mut spaces, &mut ctrl);
                }
                out.push(c);
            }
        }
    }
    if spaces > 0 {
        flush(&mut out, &mut spaces, &mut ctrl);
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// Compiled template
// ---------------------------------------------------------------------------------------------

/// A validated template with its [`TemplateSpec`], ready for fast expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledTemplate {
    template: Template,
    spec: TemplateSpec,
}

impl CompiledTemplate {
    /// Validates `template` and computes its spec.
    pub fn new(template: Template) -> Result<Self, Vec<FieldError>> {
        let spec = template.spec()?;
        Ok(CompiledTemplate { template, spec })
    }

    /// The template definition.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// What the template needs at send time.
    pub fn spec(&self) -> &TemplateSpec {
        &self.spec
    }

    /// Expands one recipient. `to` may be any form [`PhoneE164::parse`] accepts;
    /// `callback_data` becomes `biz_opaque_callback_data` (omitted when empty).
    pub fn expand<'a>(
        &'a self,
        defaults: &'a Variables,
        recipient: &'a Variables,
        to: &'a str,
        callback_data: &'a str,
    ) -> Result<Message<'a>, Vec<FieldError>> {
        expand_with_spec(
            &self.template,
            &self.spec,
            defaults,
            recipient,
            to,
            callback_data,
        )
    }

    /// Checks a broadcast's defaults on their own: shapes, kinds, limits and extra values are
    /// checked; missing values are not (recipients may supply them). Paths are relative to the
    /// defaults object.
    pub fn check_defaults(&self, defaults: &Variables) -> Result<(), Vec<FieldError>> {
        let empty = Variables::default();
        let mut x = Expander {
            spec: &self.spec,
            r: &empty,
            d: defaults,
            errs: Vec::new(),
            partial: true,
            dprefix: "",
        };
        let _ = x.components();
        if x.errs.is_empty() {
            Ok(())
        } else {
            Err(x.errs)
        }
    }
}

/// Expands one recipient against a template, validating the template first (use
/// [`CompiledTemplate`] on hot paths).
pub fn expand<'a>(
    template: &'a Template,
    defaults: &'a Variables,
    recipient: &'a Variables,
    to: &'a str,
    callback_data: &'a str,
) -> Result<Message<'a>, Vec<FieldError>> {
    let spec = template.spec().map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                FieldError::new(
                    format!("template.{}", e.field),
                    ErrorCode::InvalidTemplate,
                    e.message,
                )
            })
            .collect::<Vec<_>>()
    })?;
    expand_with_spec(template, &spec, defaults, recipient, to, callback_data)
}

fn expand_with_spec<'a>(
    template: &'a Template,
    spec: &TemplateSpec,
    defaults: &'a Variables,
    recipient: &'a Variables,
    to: &'a str,
    callback_data: &'a str,
) -> Result<Message<'a>, Vec<FieldError>> {
    let mut x = Expander {
        spec,
        r: recipient,
        d: defaults,
        errs: Vec::new(),
        partial: false,
        dprefix: "defaults.",
    };
    let to_digits: Cow<'a, str> = match canonical_digits(to) {
        Some(d) => Cow::Borrowed(d),
        None => match PhoneE164::parse(to) {
            Ok(p) => Cow::Owned(p.digits().to_owned()),
            Err(e) => {
                x.errs.push(FieldError::new(
                    "to",
                    ErrorCode::InvalidPhone,
                    e.to_string(),
                ));
                Cow::Borrowed("")
            }
        },
    };
    if callback_data.len() > MAX_CALLBACK_DATA && char_len(callback_data) > MAX_CALLBACK_DATA {
        x.errs.push(FieldError::new(
            "callback_data",
            ErrorCode::TooLong,
            "biz_opaque_callback_data has more than 512 characters",
        ));
    }
    let components = x.components();
    if !x.errs.is_empty() {
        return Err(x.errs);
    }
    Ok(Message {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: to_digits,
        kind: "template",
        biz_opaque_callback_data: callback_data,
        template: MessageTemplate {
            name: &template.name,
            language: Language {
                code: &template.language,
            },
            components,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Expander
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Recipient,
    Defaults,
}

/// Where in the variables a slot lives: top level or a card.
#[derive(Clone, Copy)]
struct Loc {
    card: Option<usize>,
}

const INDEXES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

fn index_str(i: usize) -> Cow<'static, str> {
    match INDEXES.get(i) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(i.to_string()),
    }
}

struct Expander<'s, 'a> {
    spec: &'s TemplateSpec,
    r: &'a Variables,
    d: &'a Variables,
    errs: Vec<FieldError>,
    /// Checking defaults alone: no missing-value errors.
    partial: bool,
    dprefix: &'static str,
}

fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

impl<'s, 'a> Expander<'s, 'a> {
    fn path(&self, src: Src, loc: Loc, rest: std::fmt::Arguments<'_>) -> String {
        let prefix = match src {
            Src::Recipient => "",
            Src::Defaults => self.dprefix,
        };
        match loc.card {
            Some(c) => format!("{prefix}cards[{c}].{rest}"),
            None => format!("{prefix}{rest}"),
        }
    }

    fn err(
        &mut self,
        src: Src,
        loc: Loc,
        rest: std::fmt::Arguments<'_>,
        code: ErrorCode,
        msg: impl Into<String>,
    ) {
        if self.errs.len() >= MAX_ERRORS {
            return;
        }
        let field = self.path(src, loc, rest);
        self.errs.push(FieldError::new(field, code, msg));
    }

    fn missing(&mut self, loc: Loc, rest: std::fmt::Arguments<'_>, msg: impl Into<String>) {
        if !self.partial {
            self.err(Src::Recipient, loc, rest, ErrorCode::MissingVariable, msg);
        }
    }

    fn components(&mut self) -> Vec<MessageComponent<'a>> {
        let spec = self.spec;
        let mut out = Vec::with_capacity(2 + spec.buttons.len());
        let top = Loc { card: None };
        let r = self.r;
        let d = self.d;

        if let Some(p) = self.header(&spec.header, r.header.as_ref(), d.header.as_ref(), top) {
            out.push(MessageComponent::Header { parameters: [p] });
        }
        let body = self.params(
            &spec.body,
            r.body.as_ref(),
            d.body.as_ref(),
            top,
            "body",
            MAX_BODY_TEXT,
        );
        if !body.is_empty() {
            out.push(MessageComponent::Body { parameters: body });
        }
        self.offer(&mut out);
        self.buttons(
            &spec.buttons,
            r.buttons.as_deref(),
            d.buttons.as_deref(),
            top,
            &mut out,
        );
        self.product_extras();
        self.cards(&mut out);
        out
    }

    fn offer(&mut self, out: &mut Vec<MessageComponent<'a>>) {
        let top = Loc { card: None };
        let wants = self.spec.limited_time_offer == Some(true);
        let (r, d) = (self.r.limited_time_offer, self.d.limited_time_offer);
        if !wants {
            if r.is_some() {
                self.extra(
                    Src::Recipient,
                    top,
                    "limited_time_offer",
                    "this template takes no offer expiry",
                );
            }
            if d.is_some() {
                self.extra(
                    Src::Defaults,
                    top,
                    "limited_time_offer",
                    "this template takes no offer expiry",
                );
            }
            return;
        }
        let picked = r
            .map(|v| (v, Src::Recipient))
            .or(d.map(|v| (v, Src::Defaults)));
        match picked {
            Some((v, src)) => {
                if v.expiration_time_ms <= 0 {
                    self.err(
                        src,
                        top,
                        format_args!("limited_time_offer.expiration_time_ms"),
                        ErrorCode::InvalidValue,
                        "must be a Unix time in milliseconds",
                    );
                } else {
                    out.push(MessageComponent::LimitedTimeOffer {
                        parameters: [Parameter::LimitedTimeOffer {
                            limited_time_offer: OfferExpiry {
                                expiration_time_ms: v.expiration_time_ms,
                            },
                        }],
                    });
                }
            }
            None => self.missing(
                top,
                format_args!("limited_time_offer.expiration_time_ms"),
                "the offer needs its expiry (Unix time in milliseconds)",
            ),
        }
    }

    fn extra(&mut self, src: Src, loc: Loc, what: &str, msg: &str) {
        self.err(
            src,
            loc,
            format_args!("{what}"),
            ErrorCode::ExtraVariable,
            msg,
        );
    }

    /// Header of the template or of a card.
    fn header(
        &mut self,
        spec: &HeaderSpec,
        r: Option<&'a HeaderValue>,
        d: Option<&'a HeaderValue>,
        loc: Loc,
    ) -> Option<Parameter<'a>> {
        match spec {
            HeaderSpec::None => {
                if r.is_some() {
                    self.extra(
                        Src::Recipient,
                        loc,
                        "header",
                        "this template has no header values",
                    );
                }
                if d.is_some() {
                    self.extra(
                        Src::Defaults,
                        loc,
                        "header",
                        "this template has no header values",
                    );
                }
                None
            }
            HeaderSpec::Text(tp) => {
                let as_params = |v: Option<&'a HeaderValue>| match v {
                    Some(HeaderValue::Text(p)) => Ok(Some(p)),
                    Some(other) => Err(other.kind()),
                    None => Ok(None),
                };
                let rp = match as_params(r) {
                    Ok(p) => p,
                    Err(kind) => {
                        self.wrong_kind(Src::Recipient, loc, "TEXT", kind);
                        return None;
                    }
                };
                let dp = match as_params(d) {
                    Ok(p) => p,
                    Err(kind) => {
                        self.wrong_kind(Src::Defaults, loc, "TEXT", kind);
                        return None;
                    }
                };
                let mut ps = self.params(tp, rp, dp, loc, "header", MAX_HEADER_TEXT);
                ps.pop()
            }
            HeaderSpec::Media(kind) => {
                let picked = r
                    .map(|v| (v, Src::Recipient))
                    .or(d.map(|v| (v, Src::Defaults)));
                let Some((v, src)) = picked else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        format!("the template's {} header needs a link or id", kind.as_str()),
                    );
                    return None;
                };
                let (link, id, filename) = match (kind, v) {
                    (MediaKind::Image, HeaderValue::Image(m))
                    | (MediaKind::Video, HeaderValue::Video(m)) => {
                        (m.link.as_deref(), m.id.as_deref(), None)
                    }
                    (MediaKind::Document, HeaderValue::Document(m)) => {
                        (m.link.as_deref(), m.id.as_deref(), m.filename.as_deref())
                    }
                    (_, other) => {
                        let want = match kind {
                            MediaKind::Image => "IMAGE",
                            MediaKind::Video => "VIDEO",
                            MediaKind::Document => "DOCUMENT",
                        };
                        self.wrong_kind(src, loc, want, other.kind());
                        return None;
                    }
                };
                match (link, id) {
                    (Some(l), None) => {
                        if !is_http_url(l) || l.len() > 2000 {
                            self.err(
                                src,
                                loc,
                                format_args!("header.link"),
                                ErrorCode::InvalidValue,
                                "link must be a public https:// URL",
                            );
                            return None;
                        }
                    }
                    (None, Some(i)) => {
                        if i.trim().is_empty() {
                            self.err(
                                src,
                                loc,
                                format_args!("header.id"),
                                ErrorCode::InvalidValue,
                                "id must not be empty",
                            );
                            return None;
                        }
                    }
                    (Some(_), Some(_)) => {
                        self.err(
                            src,
                            loc,
                            format_args!("header"),
                            ErrorCode::InvalidValue,
                            "give either link or id, not both",
                        );
                        return None;
                    }
                    (None, None) => {
                        self.err(
                            src,
                            loc,
                            format_args!("header"),
                            ErrorCode::MissingVariable,
                            "media needs a link or an id",
                        );
                        return None;
                    }
                }
                let media = Media { link, id, filename };
                Some(match kind {
                    MediaKind::Image => Parameter::Image { image: media },
                    MediaKind::Video => Parameter::Video { video: media },
                    MediaKind::Document => Parameter::Document { document: media },
                })
            }
            HeaderSpec::Location => {
                let picked = r
                    .map(|v| (v, Src::Recipient))
                    .or(d.map(|v| (v, Src::Defaults)));
                let Some((v, src)) = picked else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        "the template's location header needs a location",
                    );
                    return None;
                };
                let HeaderValue::Location(l) = v else {
                    self.wrong_kind(src, loc, "LOCATION", v.kind());
                    return None;
                };
                let mut ok = true;
                if !(l.latitude.is_finite() && (-90.0..=90.0).contains(&l.latitude)) {
                    self.err(
                        src,
                        loc,
                        format_args!("header.latitude"),
                        ErrorCode::InvalidValue,
                        "latitude must be between -90 and 90",
                    );
                    ok = false;
                }
                if !(l.longitude.is_finite() && (-180.0..=180.0).contains(&l.longitude)) {
                    self.err(
                        src,
                        loc,
                        format_args!("header.longitude"),
                        ErrorCode::InvalidValue,
                        "longitude must be between -180 and 180",
                    );
                    ok = false;
                }
                if l.name.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        format_args!("header.name"),
                        ErrorCode::InvalidValue,
                        "name must not be empty",
                    );
                    ok = false;
                }
                if l.address.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        format_args!("header.address"),
                        ErrorCode::InvalidValue,
                        "address must not be empty",
                    );
                    ok = false;
                }
                ok.then_some(Parameter::Location { location: l })
            }
            HeaderSpec::Product => {
                // Recipient first, then defaults; on each side the header value wins over
                // `product.product_retailer_id` (single-product templates only).
                let top = loc.card.is_none();
                let from_product = |v: &'a Variables| {
                    v.product
                        .as_ref()
                        .filter(|_| top)
                        .and_then(|p| p.product_retailer_id.as_deref().map(|id| (id, p)))
                };
                let mut picked = None;
                for (src, h, vars) in [(Src::Recipient, r, self.r), (Src::Defaults, d, self.d)] {
                    if let Some(v) = h {
                        picked = Some((src, Ok(v)));
                        break;
                    }
                    if let Some((id, p)) = from_product(vars) {
                        picked = Some((src, Err((id, p))));
                        break;
                    }
                }
                let Some((src, value)) = picked else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        "the template's product header needs a product_retailer_id",
                    );
                    return None;
                };
                let (id, catalog, field) = match value {
                    Ok(HeaderValue::Product(p)) => (
                        p.product_retailer_id.as_str(),
                        p.catalog_id.as_deref(),
                        "header.product_retailer_id",
                    ),
                    Ok(other) => {
                        self.wrong_kind(src, loc, "PRODUCT", other.kind());
                        return None;
                    }
                    Err((id, p)) => {
                        // The catalog may come from either side's `product`.
                        let catalog = p.catalog_id.as_deref().or_else(|| {
                            [self.r, self.d].into_iter().find_map(|v| {
                                v.product.as_ref().and_then(|p| p.catalog_id.as_deref())
                            })
                        });
                        (id, catalog, "product.product_retailer_id")
                    }
                };
                if id.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        format_args!("{field}"),
                        ErrorCode::InvalidValue,
                        "must not be empty",
                    );
                    return None;
                }
                Some(Parameter::Product {
                    product: Product {
                        product_retailer_id: id,
                        catalog_id: catalog,
                    },
                })
            }
        }
    }

    fn wrong_kind(&mut self, src: Src, loc: Loc, want: &str, got: &str) {
        self.err(
            src,
            loc,
            format_args!("header"),
            ErrorCode::WrongMediaKind,
            format!("the template's header is {want}; got a {got} value"),
        );
    }

    /// Resolves text parameters of a header (`what` = "header") or body.
    fn params(
        &mut self,
        spec: &TextParams,
        r: Option<&'a Params>,
        d: Option<&'a Params>,
        loc: Loc,
        what: &'static str,
        max_total: usize,
    ) -> Vec<Parameter<'a>> {
        let is_header = what == "header";
        if spec.count == 0 {
            if r.is_some_and(|p| !p.is_empty()) {
                self.extra(
                    Src::Recipient,
                    loc,
                    what,
                    "this template text has no parameters",
                );
            }
            if d.is_some_and(|p| !p.is_empty()) {
                self.extra(
                    Src::Defaults,
                    loc,
                    what,
                    "this template text has no parameters",
                );
            }
            return Vec::new();
        }
        let named = self.spec.parameter_format == ParameterFormat::Named;
        for (src, p) in [(Src::Recipient, r), (Src::Defaults, d)] {
            match (named, p) {
                (false, Some(Params::Named(_))) => {
                    self.err(
                        src,
                        loc,
                        format_args!("{what}"),
                        ErrorCode::InvalidValue,
                        "this template has positional parameters: give an array",
                    );
                    return Vec::new();
                }
                (true, Some(Params::Positional(v))) if v.iter().any(Option::is_some) => {
                    self.err(
                        src,
                        loc,
                        format_args!("{what}"),
                        ErrorCode::InvalidValue,
                        "this template has named parameters: give an object of name -> value",
                    );
                    return Vec::new();
                }
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(spec.count);
        let mut total_bytes = spec.static_chars;
        if named {
            let rn = match r {
                Some(Params::Named(v)) => v.as_slice(),
                _ => &[],
            };
            let dn = match d {
                Some(Params::Named(v)) => v.as_slice(),
                _ => &[],
            };
            for (src, list) in [(Src::Recipient, rn), (Src::Defaults, dn)] {
                for (name, _) in list {
                    if !spec.names.iter().any(|n| n == name) {
                        self.err(
                            src,
                            loc,
                            format_args!("{what}.{name}"),
                            ErrorCode::ExtraVariable,
                            "the template has no parameter of this name",
                        );
                    }
                }
            }
            for (i, name) in spec.names.iter().enumerate() {
                let picked = rn
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(n, p)| (n.as_str(), p, Src::Recipient))
                    .or_else(|| {
                        dn.iter()
                            .find(|(n, _)| n == name)
                            .map(|(n, p)| (n.as_str(), p, Src::Defaults))
                    });
                match picked {
                    Some((n, p, src)) => {
                        if let Some((param, len)) = self.param(
                            p,
                            Some(n),
                            src,
                            loc,
                            what,
                            format_args!("{what}.{name}"),
                            is_header,
                        ) {
                            total_bytes +=
                                len * spec.occurrences.get(i).copied().unwrap_or(1) as usize;
                            out.push(param);
                        }
                    }
                    None => self.missing(
                        loc,
                        format_args!("{what}.{name}"),
                        format!("parameter {name:?} has no value"),
                    ),
                }
            }
        } else {
            let rv = match r {
                Some(Params::Positional(v)) => v.as_slice(),
                _ => &[],
            };
            let dv = match d {
                Some(Params::Positional(v)) => v.as_slice(),
                _ => &[],
            };
            for (src, list) in [(Src::Recipient, rv), (Src::Defaults, dv)] {
                if let Some(extra) = list.iter().skip(spec.count).position(Option::is_some) {
                    let at = spec.count + extra;
                    self.err(
                        src,
                        loc,
                        format_args!("{what}[{at}]"),
                        ErrorCode::ExtraVariable,
                        format!("the template takes {} {what} parameter(s)", spec.count),
                    );
                }
            }
            for i in 0..spec.count {
                let picked = match rv.get(i) {
                    Some(Some(p)) => Some((p, Src::Recipient)),
                    _ => match dv.get(i) {
                        Some(Some(p)) => Some((p, Src::Defaults)),
                        _ => None,
                    },
                };
                match picked {
                    Some((p, src)) => {
                        if let Some((param, len)) = self.param(
                            p,
                            None,
                            src,
                            loc,
                            what,
                            format_args!("{what}[{i}]"),
                            is_header,
                        ) {
                            total_bytes +=
                                len * spec.occurrences.get(i).copied().unwrap_or(1) as usize;
                            out.push(param);
                        }
                    }
                    None => self.missing(
                        loc,
                        format_args!("{what}[{i}]"),
                        format!("{what} parameter {{{{{}}}}} has no value", i + 1),
                    ),
                }
            }
        }
        if !is_header && total_bytes > max_total && out.len() == spec.count {
            // Byte lengths over-count non-ASCII text; count characters before refusing.
            let mut total = spec.static_chars;
            for (i, p) in out.iter().enumerate() {
                let s: &str = match p {
                    Parameter::Text { text, .. } => text,
                    Parameter::Currency { currency, .. } => &currency.fallback_value,
                    Parameter::DateTime { date_time, .. } => &date_time.fallback_value,
                    _ => "",
                };
                total += char_len(s) * spec.occurrences.get(i).copied().unwrap_or(1) as usize;
            }
            if total > max_total {
                self.err(
                    Src::Recipient,
                    loc,
                    format_args!("{what}"),
                    ErrorCode::TooLong,
                    format!(
                        "the {what} would have {total} characters; at most {max_total} are allowed"
                    ),
                );
            }
        }
        out
    }

    /// One parameter value; returns it with its byte length.
    #[allow(clippy::too_many_arguments)]
    fn param(
        &mut self,
        p: &'a Param,
        name: Option<&'a str>,
        src: Src,
        loc: Loc,
        what: &str,
        field: std::fmt::Arguments<'_>,
        is_header: bool,
    ) -> Option<(Parameter<'a>, usize)> {
        match p {
            Param::Text(t) => {
                let text = flatten_text(t);
                if text.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "text must not be empty",
                    );
                    return None;
                }
                if is_header && text.len() > MAX_HEADER_TEXT && char_len(&text) > MAX_HEADER_TEXT {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::TooLong,
                        format!("a header parameter has at most {MAX_HEADER_TEXT} characters"),
                    );
                    return None;
                }
                let len = text.len();
                Some((
                    Parameter::Text {
                        parameter_name: name,
                        text,
                    },
                    len,
                ))
            }
            Param::Currency(c) if !is_header => {
                if c.fallback_value.trim().is_empty()
                    || c.code.len() != 3
                    || !c.code.bytes().all(|b| b.is_ascii_uppercase())
                {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "currency needs a fallback_value and an ISO 4217 code such as USD",
                    );
                    return None;
                }
                let currency = CurrencyValue::new(c);
                let len = currency.fallback_value.len();
                Some((
                    Parameter::Currency {
                        parameter_name: name,
                        currency,
                    },
                    len,
                ))
            }
            Param::DateTime(dt) if !is_header => {
                if dt.fallback_value.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "date_time needs a fallback_value",
                    );
                    return None;
                }
                let date_time = DateTimeValue::new(dt);
                let len = date_time.fallback_value.len();
                Some((
                    Parameter::DateTime {
                        parameter_name: name,
                        date_time,
                    },
                    len,
                ))
            }
            _ => {
                self.err(
                    src,
                    loc,
                    field,
                    ErrorCode::InvalidValue,
                    format!("{what} parameters are text"),
                );
                None
            }
        }
    }

    fn buttons(
        &mut self,
        specs: &[ButtonSpec],
        r: Option<&'a [ButtonValue]>,
        d: Option<&'a [ButtonValue]>,
        loc: Loc,
        out: &mut Vec<MessageComponent<'a>>,
    ) {
        for (src, list) in [(Src::Recipient, r), (Src::Defaults, d)] {
            let Some(list) = list else { continue };
            if list.len() > crate::template::MAX_BUTTONS {
                self.err(
                    src,
                    loc,
                    format_args!("buttons"),
                    ErrorCode::TooMany,
                    "a template has at most 10 buttons",
                );
                continue;
            }
            for (pos, bv) in list.iter().enumerate() {
                if list[..pos].iter().any(|o| o.index == bv.index) {
                    self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}].index"),
                        ErrorCode::Duplicate,
                        format!("button {} is given twice", bv.index),
                    );
                    continue;
                }
                match specs.iter().find(|s| s.index == bv.index) {
                    None => self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}]"),
                        ErrorCode::ExtraVariable,
                        format!("button {} takes no runtime value", bv.index),
                    ),
                    Some(s) if matches!(s.kind, ButtonKind::Mpm | ButtonKind::Catalog) => self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}]"),
                        ErrorCode::ExtraVariable,
                        "MPM and catalog buttons take their values from \"product\"",
                    ),
                    Some(s) => self.check_button_fields(s, bv, src, loc, pos),
                }
            }
        }
        for s in specs {
            let find = |list: Option<&'a [ButtonValue]>| {
                list.and_then(|l| l.iter().enumerate().find(|(_, b)| b.index == s.index))
            };
            let picked = find(r)
                .map(|(pos, b)| (b, Src::Recipient, pos))
                .or_else(|| find(d).map(|(pos, b)| (b, Src::Defaults, pos)));
            let index = index_str(s.index);
            let sub_type = s.sub_type();
            let param = match &s.kind {
                ButtonKind::QuickReply => picked
                    .and_then(|(b, _, _)| b.payload.as_deref())
                    .map(|payload| Parameter::Payload { payload }),
                ButtonKind::UrlSuffix { .. } => match picked
                    .and_then(|(b, src, pos)| b.text.as_deref().map(|t| (t, src, pos)))
                {
                    Some((t, src, pos)) => {
                        if t.trim().is_empty() {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].text"),
                                ErrorCode::InvalidValue,
                                "url suffix must not be empty",
                            );
                            None
                        } else if t.len() > MAX_URL_SUFFIX && char_len(t) > MAX_URL_SUFFIX {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].text"),
                                ErrorCode::TooLong,
                                format!("url suffix has at most {MAX_URL_SUFFIX} characters"),
                            );
                            None
                        } else {
                            Some(Parameter::Text {
                                parameter_name: None,
                                text: Cow::Borrowed(t),
                            })
                        }
                    }
                    None => {
                        self.missing(
                            loc,
                            format_args!("buttons"),
                            format!("url button {} needs its suffix in \"text\"", s.index),
                        );
                        None
                    }
                },
                ButtonKind::CopyCode { .. } => match picked
                    .and_then(|(b, src, pos)| b.coupon_code.as_deref().map(|t| (t, src, pos)))
                {
                    Some((c, src, pos)) => {
                        if c.trim().is_empty() {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].coupon_code"),
                                ErrorCode::InvalidValue,
                                "coupon_code must not be empty",
                            );
                            None
                        } else if char_len(c) > MAX_COPY_CODE {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].coupon_code"),
                                ErrorCode::TooLong,
                                format!("coupon_code has at most {MAX_COPY_CODE} characters"),
                            );
                            None
                        } else {
                            Some(Parameter::CouponCode { coupon_code: c })
                        }
                    }
                    None => {
                        self.missing(
                            loc,
                            format_args!("buttons"),
                            format!("copy-code button {} needs \"coupon_code\"", s.index),
                        );
                        None
                    }
                },
                ButtonKind::Flow => picked.and_then(|(b, _, _)| {
                    let nested = b.action.as_ref();
                    let flow_token = b
                        .flow_token
                        .as_deref()
                        .or(nested.and_then(|a| a.flow_token.as_deref()));
                    let flow_action_data = b
                        .flow_action_data
                        .as_ref()
                        .or(nested.and_then(|a| a.flow_action_data.as_ref()));
                    (flow_token.is_some() || flow_action_data.is_some()).then_some(
                        Parameter::Action {
                            action: Action {
                                flow_token,
                                flow_action_data,
                                ..Action::default()
                            },
                        },
                    )
                }),
                ButtonKind::Otp => {
                    let code = match picked
                        .and_then(|(b, src, pos)| b.text.as_deref().map(|t| (t, src, pos)))
                    {
                        Some(v) => Some(v),
                        None => match (&self.r.body, &self.d.body) {
                            (Some(Params::Positional(v)), _)
                                if matches!(v.first(), Some(Some(Param::Text(_)))) =>
                            {
                                match v.first() {
                                    Some(Some(Param::Text(t))) => {
                                        Some((t.as_str(), Src::Recipient, 0))
                                    }
                                    _ => None,
                                }
                            }
                            (_, Some(Params::Positional(v))) => match v.first() {
                                Some(Some(Param::Text(t))) => Some((t.as_str(), Src::Defaults, 0)),
                                _ => None,
                            },
                            _ => None,
                        },
                    };
                    match code {
                        Some((t, src, pos)) if t.trim().is_empty() => {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].text"),
                                ErrorCode::InvalidValue,
                                "the code must not be empty",
                            );
                            None
                        }
                        Some((t, _, _)) => Some(Parameter::Text {
                            parameter_name: None,
                            text: Cow::Borrowed(t),
                        }),
                        None => {
                            self.missing(
                                loc,
                                format_args!("buttons"),
                                format!("OTP button {} needs the code in \"text\"", s.index),
                            );
                            None
                        }
                    }
                }
                ButtonKind::Mpm => self.mpm_action(),
                ButtonKind::Catalog => self.catalog_action(),
            };
            if let Some(p) = param {
                out.push(MessageComponent::Button {
                    sub_type,
                    index,
                    parameters: [p],
                });
            }
        }
    }

    fn check_button_fields(
        &mut self,
        s: &ButtonSpec,
        b: &ButtonValue,
        src: Src,
        loc: Loc,
        pos: usize,
    ) {
        let allowed: [bool; 6] = match s.kind {
            // payload, text, coupon_code, flow_token, flow_action_data, action
            ButtonKind::QuickReply => [true, false, false, false, false, false],
            ButtonKind::UrlSuffix { .. } | ButtonKind::Otp => {
                [false, true, false, false, false, false]
            }
            ButtonKind::CopyCode { .. } => [false, false, true, false, false, false],
            ButtonKind::Flow => [false, false, false, true, true, true],
            ButtonKind::Mpm | ButtonKind::Catalog => [false; 6],
        };
        let present = [
            b.payload.is_some(),
            b.text.is_some(),
            b.coupon_code.is_some(),
            b.flow_token.is_some(),
            b.flow_action_data.is_some(),
            b.action.is_some(),
        ];
        const NAMES: [&str; 6] = [
            "payload",
            "text",
            "coupon_code",
            "flow_token",
            "flow_action_data",
            "action",
        ];
        if let Some(a) = &b.action {
            if (a.flow_token.is_some() && b.flow_token.is_some())
                || (a.flow_action_data.is_some() && b.flow_action_data.is_some())
            {
                self.err(
                    src,
                    loc,
                    format_args!("buttons[{pos}].action"),
                    ErrorCode::Duplicate,
                    "give flow_token and flow_action_data either at the top or in action",
                );
            }
        }
        for i in 0..NAMES.len() {
            if present[i] && !allowed[i] {
                self.err(
                    src,
                    loc,
                    format_args!("buttons[{pos}].{}", NAMES[i]),
                    ErrorCode::ExtraVariable,
                    format!("a {} button does not take {}", s.sub_type(), NAMES[i]),
                );
            }
        }
    }

    fn product_pick<T: ?Sized>(
        &self,
        f: impl Fn(&'a crate::variables::ProductValues) -> Option<&'a T>,
    ) -> Option<(&'a T, Src)> {
        self.r
            .product
            .as_ref()
            .and_then(&f)
            .map(|v| (v, Src::Recipient))
            .or_else(|| {
                self.d
                    .product
                    .as_ref()
                    .and_then(&f)
                    .map(|v| (v, Src::Defaults))
            })
    }

    fn mpm_action(&mut self) -> Option<Parameter<'a>> {
        let top = Loc { card: None };
        let thumb = self.product_pick(|p| p.thumbnail_product_retailer_id.as_deref());
        let sections = self.product_pick(|p| p.sections.as_deref());
        let mut ok = true;
        match thumb {
            None => {
                self.missing(
                    top,
                    format_args!("product.thumbnail_product_retailer_id"),
                    "an MPM template needs a thumbnail product",
                );
                ok = false;
            }
            Some((t, src)) if t.trim().is_empty() => {
                self.err(
                    src,
                    top,
                    format_args!("product.thumbnail_product_retailer_id"),
                    ErrorCode::InvalidValue,
                    "must not be empty",
                );
                ok = false;
            }
            Some(_) => {}
        }
        match sections {
            None => {
                self.missing(
                    top,
                    format_args!("product.sections"),
                    "an MPM template needs 1-10 sections of products",
                );
                ok = false;
            }
            Some((secs, src)) => ok &= self.check_sections(secs, src),
        }
        if !ok {
            return None;
        }
        Some(Parameter::Action {
            action: Action {
                thumbnail_product_retailer_id: thumb.map(|(t, _)| t),
                sections: sections.map(|(s, _)| s),
                ..Action::default()
            },
        })
    }

    fn check_sections(&mut self, secs: &[Section], src: Src) -> bool {
        let top = Loc { card: None };
        if secs.is_empty() {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooFew,
                "at least one section is needed",
            );
            return false;
        }
        if secs.len() > MAX_SECTIONS {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooMany,
                format!("at most {MAX_SECTIONS} sections are allowed"),
            );
            return false;
        }
        let mut ok = true;
        let mut total = 0;
        for (i, s) in secs.iter().enumerate() {
            total += s.product_items.len();
            match &s.title {
                None if secs.len() > 1 => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::MissingVariable,
                        "every section needs a title when there are several",
                    );
                    ok = false;
                }
                Some(t) if t.trim().is_empty() => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::InvalidValue,
                        "title must not be empty",
                    );
                    ok = false;
                }
                Some(t) if char_len(t) > MAX_SECTION_TITLE => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::TooLong,
                        format!("a section title has at most {MAX_SECTION_TITLE} characters"),
                    );
                    ok = false;
                }
                _ => {}
            }
            if s.product_items.is_empty() {
                self.err(
                    src,
                    top,
                    format_args!("product.sections[{i}].product_items"),
                    ErrorCode::TooFew,
                    "a section needs at least one product",
                );
                ok = false;
            }
            for (j, item) in s.product_items.iter().enumerate() {
                if item.product_retailer_id.trim().is_empty() {
                    self.err(
                        src,
                        top,
                        format_args!(
                            "product.sections[{i}].product_items[{j}].product_retailer_id"
                        ),
                        ErrorCode::InvalidValue,
                        "must not be empty",
                    );
                    ok = false;
                }
            }
        }
        if total > MAX_SECTION_PRODUCTS {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooMany,
                format!("at most {MAX_SECTION_PRODUCTS} products in total; found {total}"),
            );
            ok = false;
        }
        ok
    }

    fn catalog_action(&mut self) -> Option<Parameter<'a>> {
        let (t, src) = self.product_pick(|p| p.thumbnail_product_retailer_id.as_deref())?;
        if t.trim().is_empty() {
            self.err(
                src,
                Loc { card: None },
                format_args!("product.thumbnail_product_retailer_id"),
                ErrorCode::InvalidValue,
                "must not be empty",
            );
            return None;
        }
        Some(Parameter::Action {
            action: Action {
                thumbnail_product_retailer_id: Some(t),
                ..Action::default()
            },
        })
    }

    /// Product fields the template does not use.
    fn product_extras(&mut self) {
        let needs = self.spec.product;
        let header_from_product = needs.header_product;
        let thumb = needs.mpm || needs.catalog;
        for (src, p) in [
            (Src::Recipient, self.r.product.as_ref()),
            (Src::Defaults, self.d.product.as_ref()),
        ] {
            let Some(p) = p else { continue };
            let checks: [(bool, bool, &str); 4] = [
                (
                    p.product_retailer_id.is_some(),
                    header_from_product,
                    "product.product_retailer_id",
                ),
                (
                    p.catalog_id.is_some(),
                    header_from_product,
                    "product.catalog_id",
                ),
                (
                    p.thumbnail_product_retailer_id.is_some(),
                    thumb,
                    "product.thumbnail_product_retailer_id",
                ),
                (p.sections.is_some(), needs.mpm, "product.sections"),
            ];
            for (present, used, field) in checks {
                if present && !used {
                    self.extra(
                        src,
                        Loc { card: None },
                        field,
                        "this template does not use this product value",
                    );
                }
            }
        }
    }

    fn cards(&mut self, out: &mut Vec<MessageComponent<'a>>) {
        let spec = self.spec;
        let n = spec.cards.len();
        let top = Loc { card: None };
        let r = self.r.cards.as_deref();
        let d = self.d.cards.as_deref();
        if n == 0 {
            if r.is_some() {
                self.extra(
                    Src::Recipient,
                    top,
                    "cards",
                    "this template has no carousel",
                );
            }
            if d.is_some() {
                self.extra(Src::Defaults, top, "cards", "this template has no carousel");
            }
            return;
        }
        let mut bad = false;
        for (src, list) in [(Src::Recipient, r), (Src::Defaults, d)] {
            if let Some(l) = list {
                if l.len() != n {
                    self.err(
                        src,
                        top,
                        format_args!("cards"),
                        ErrorCode::CardCount,
                        format!("the template has {n} cards; got {}", l.len()),
                    );
                    bad = true;
                }
            }
        }
        if bad {
            return;
        }
        if r.is_none() && d.is_none() {
            if !self.partial {
                self.err(
                    Src::Recipient,
                    top,
                    format_args!("cards"),
                    ErrorCode::CardCount,
                    format!("the template has {n} cards; \"cards\" needs {n} entries"),
                );
            }
            return;
        }
        let mut cards = Vec::with_capacity(n);
        for (i, cs) in spec.cards.iter().enumerate() {
            let loc = Loc { card: Some(i) };
            let rc: Option<&'a CardValues> = r.and_then(|l| l.get(i));
            let dc: Option<&'a CardValues> = d.and_then(|l| l.get(i));
            let mut comps = Vec::with_capacity(3);
            if let Some(h) = self.header(
                &cs.header,
                rc.and_then(|c| c.header.as_ref()),
                dc.and_then(|c| c.header.as_ref()),
                loc,
            ) {
                comps.push(MessageComponent::Header { parameters: [h] });
            }
            let body = self.params(
                &cs.body,
                rc.and_then(|c| c.body.as_ref()),
                dc.and_then(|c| c.body.as_ref()),
                loc,
                "body",
                MAX_BODY_TEXT,
            );
            if !body.is_empty() {
                comps.push(MessageComponent::Body { parameters: body });
            }
            self.buttons(
                &cs.buttons,
                rc.and_then(|c| c.buttons.as_deref()),
                dc.and_then(|c| c.buttons.as_deref()),
                loc,
                &mut comps,
            );
            cards.push(MessageCard {
                card_index: i,
                components: comps,
            });
        }
        out.push(MessageComponent::Carousel { cards });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_rules() {
        let cases = [
            ("plain text", "plain text"),
            ("a\nb", "a b"),
            ("a\r\n\r\nb", "a b"),
            ("a\tb", "a b"),
            ("a    b", "a    b"),
            ("a     b", "a b"),
            ("a  \n  b", "a b"),
            ("end\n", "end "),
            ("ünïcödé\n✓", "ünïcödé ✓"),
        ];
        for (i, want) in cases {
            assert_eq!(flatten_text(i), want, "{i:?}");
        }
        assert!(matches!(flatten_text("clean"), Cow::Borrowed(_)));
    }
}
