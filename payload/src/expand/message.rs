//! The output model: [`Message`] and its parts (components, cards, parameters, media, product
//! and action values), borrowing from the template and the variables and serialising to the
//! exact body of `POST /{version}/{phone_number_id}/messages`.

use super::flatten_text;
use crate::variables::{Currency, DateTime, Location, Section};
use serde::Serialize;
use std::borrow::Cow;

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

impl Parameter<'_> {
    /// The text a text, currency or date/time parameter shows; empty for the others.
    pub(super) fn shown_text(&self) -> &str {
        match self {
            Parameter::Text { text, .. } => text,
            Parameter::Currency { currency, .. } => &currency.fallback_value,
            Parameter::DateTime { date_time, .. } => &date_time.fallback_value,
            _ => "",
        }
    }
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
    pub(super) fn new(c: &'a Currency) -> Self {
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
    pub(super) fn new(d: &'a DateTime) -> Self {
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
