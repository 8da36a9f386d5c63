//! Template definitions of every kind, in Meta's format, for tests.

use serde_json::{json, Value};

pub fn text() -> Value {
    json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped.", "example": {"body_text": [["Maria", "4721"]]}}
    ]})
}

pub fn media_buttons() -> Value {
    json!({"name": "promo_image", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://cdn.example.com/h.jpg"]}},
        {"type": "BODY", "text": "Hello {{1}}, take {{2}} off today.", "example": {"body_text": [["Ann", "10%"]]}},
        {"type": "FOOTER", "text": "Reply STOP to opt out"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "Stop promotions"},
            {"type": "URL", "text": "Shop", "url": "https://shop.example.com/{{1}}", "example": ["https://shop.example.com/sale"]},
            {"type": "COPY_CODE", "example": "SAVE10"},
            {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+14155550100"}
        ]}
    ]})
}

pub fn carousel() -> Value {
    let card = |n: u32| {
        json!({"components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": [format!("https://cdn.example.com/{n}.jpg")]}},
            {"type": "BODY", "text": "Card {{1}}", "example": {"body_text": [["one"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "More"}, {"type": "URL", "text": "Buy", "url": "https://shop.example.com/{{1}}", "example": ["https://shop.example.com/x"]}]}
        ]})
    };
    json!({"name": "carousel_promo", "language": "en", "category": "MARKETING", "components": [
        {"type": "BODY", "text": "Offers for {{1}}", "example": {"body_text": [["Ann"]]}},
        {"type": "CAROUSEL", "cards": [card(1), card(2), card(3)]}
    ]})
}

pub fn mpm() -> Value {
    json!({"name": "mpm_picks", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Our picks for {{1}}", "example": {"header_text": ["Ann"]}},
        {"type": "BODY", "text": "Hi {{1}}, have a look.", "example": {"body_text": [["Ann"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "View items"}]}
    ]})
}

pub fn catalog() -> Value {
    json!({"name": "catalog_intro", "language": "en", "category": "MARKETING", "components": [
        {"type": "BODY", "text": "Browse our catalog, {{1}}.", "example": {"body_text": [["Ann"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]}
    ]})
}

pub fn spm() -> Value {
    json!({"name": "spm_offer", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "PRODUCT"},
        {"type": "BODY", "text": "Back in stock, {{1}}!", "example": {"body_text": [["Ann"]]}},
        {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}
    ]})
}

pub fn named() -> Value {
    json!({"name": "named_params", "language": "en", "category": "UTILITY", "parameter_format": "NAMED", "components": [
        {"type": "BODY", "text": "Hi {{first_name}}, code {{code}}", "example": {"body_text_named_params": [
            {"param_name": "first_name", "example": "Ann"}, {"param_name": "code", "example": "X1"}]}}
    ]})
}

pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("text", text()),
        ("media_buttons", media_buttons()),
        ("carousel", carousel()),
        ("mpm", mpm()),
        ("catalog", catalog()),
        ("spm", spm()),
        ("named", named()),
    ]
}
