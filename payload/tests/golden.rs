//! Golden tests: `expand` output against Meta's own send examples, from
//! `shared/reference/whatsapp-cloud-api.md` (sections 1.2-1.7) and the "Send ..." examples of
//! Meta's OpenAPI file `business-messaging-api_v23.0.yaml`.
//!
//! Meta's examples mix forms that the API treats alike; `normalize` maps both sides to one
//! form before comparing: button `index` as a string, lower-case `sub_type`, `to` without `+`,
//! no optional `language.policy`, `recipient_type` defaulting to `individual`. Placeholders
//! such as `template-name` in Meta's examples are replaced by the test template's values.

use ezpulze_payload::{expand, CompiledTemplate, Template, Variables};
use serde_json::{json, Value};

fn normalize(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("button") {
                    if let Some(i) = m.get("index").cloned() {
                        let s = match i {
                            Value::Number(n) => n.to_string(),
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        m.insert("index".into(), Value::String(s));
                    }
                    if let Some(Value::String(s)) = m.get_mut("sub_type") {
                        *s = s.to_lowercase();
                    }
                }
                for (_, x) in m.iter_mut() {
                    walk(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(m) = v.as_object_mut() {
        if let Some(Value::String(to)) = m.get_mut("to") {
            *to = to.trim_start_matches('+').to_owned();
        }
        m.entry("recipient_type").or_insert(json!("individual"));
        if let Some(Value::Object(lang)) = m.get_mut("template").and_then(|t| t.get_mut("language"))
        {
            lang.remove("policy");
        }
    }
    walk(&mut v);
    v
}

/// Expands and compares with Meta's example. `to` and the template name/language of the
/// example are replaced by the test's own when Meta used placeholders.
fn check(template: Value, defaults: Value, vars: Value, mut expected: Value) {
    let t: Template = serde_json::from_value(template).expect("template json");
    let d: Variables = serde_json::from_value(defaults).expect("defaults json");
    let r: Variables = serde_json::from_value(vars).expect("variables json");
    let m = expected.as_object_mut().expect("object");
    let to = m
        .get("to")
        .and_then(Value::as_str)
        .filter(|s| !s.contains("{{"))
        .unwrap_or("16315551234")
        .to_owned();
    m.insert("to".into(), json!(to));
    let cb = m
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(tpl) = m.get_mut("template").and_then(Value::as_object_mut) {
        tpl.insert("name".into(), json!(t.name));
        tpl.insert("language".into(), json!({"code": t.language}));
    }
    let compiled =
        CompiledTemplate::new(t.clone()).unwrap_or_else(|e| panic!("template invalid: {e:?}"));
    let msg = compiled
        .expand(&d, &r, &to, &cb)
        .unwrap_or_else(|e| panic!("expand failed: {e:#?}"));
    let got = msg.to_json_value();
    assert_eq!(
        normalize(got.clone()),
        normalize(expected.clone()),
        "\ngot:      {got}\nexpected: {expected}"
    );
    // The free function and the serialised bytes agree.
    let again = expand(&t, &d, &r, &to, &cb).expect("free expand");
    assert_eq!(again.to_json_value(), got);
    let bytes: Value = serde_json::from_slice(&msg.to_json_vec()).expect("json bytes");
    assert_eq!(bytes, got);
    let text: Value = serde_json::from_str(&msg.to_json_string()).expect("json text");
    assert_eq!(text, got);
}

fn currency() -> Value {
    json!({"type": "currency", "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990}})
}

fn date_time_legacy() -> Value {
    json!({"type": "date_time", "date_time": {"calendar": "GREGORIAN", "day_of_month": 25,
        "day_of_week": 5, "fallback_value": "February 25, 1977", "hour": 15, "minute": 33,
        "month": 2, "year": 1977}})
}

/// The body component Meta's examples send for `body3()` with `"text-string"`, `currency()`
/// and `date_time_legacy()`.
fn body3_sent() -> Value {
    json!({"parameters": [
        {"text": "text-string", "type": "text"},
        {"currency": {"amount_1000": 100990, "code": "USD", "fallback_value": "$100.99"}, "type": "currency"},
        {"date_time": {"calendar": "GREGORIAN", "day_of_month": 25, "day_of_week": 5,
           "fallback_value": "February 25, 1977", "hour": 15, "minute": 33, "month": 2,
           "year": 1977}, "type": "date_time"}], "type": "body"})
}

/// A message as Meta's OpenAPI examples show it; `check` puts in the template's own name and
/// language for the placeholders.
fn openapi_sent(to: &str, components: Value) -> Value {
    json!({
      "messaging_product": "whatsapp", "recipient_type": "individual",
      "template": {"components": components,
        "language": {"code": "language-and-locale-code"}, "name": "template-name"},
      "to": to, "type": "template"
    })
}

/// The image header component of Meta's media examples.
fn image_header_sent() -> Value {
    json!({"parameters": [{"image": {"link": "https://the-image-url"}, "type": "image"}], "type": "header"})
}

fn body3() -> Value {
    json!({"type": "BODY", "text": "Hello {{1}}, you paid {{2}} on {{3}}."})
}

// --- Meta OpenAPI: "Send Message Template Text" ---------------------------------------------
#[test]
fn openapi_template_text() {
    check(
        json!({"name": "shipping_confirmation", "language": "en_US", "category": "UTILITY",
               "components": [body3()]}),
        json!({}),
        json!({"body": ["text-string", currency(), date_time_legacy()]}),
        openapi_sent("16315555555", json!([body3_sent()])),
    );
}

// --- Meta OpenAPI: "Send Message Template Media" (image header by link) ----------------------
#[test]
fn openapi_template_media() {
    check(
        json!({"name": "media_offer", "language": "en_US", "category": "MARKETING",
               "components": [{"type": "HEADER", "format": "IMAGE"}, body3()]}),
        json!({"header": {"type": "image", "link": "https://the-image-url"}}),
        json!({"body": ["text-string", currency(), date_time_legacy()]}),
        openapi_sent(
            "{{Recipient-Phone-Number}}",
            json!([image_header_sent(), body3_sent()]),
        ),
    );
}

// --- Meta OpenAPI: "Send Message Template Interactive" (quick replies) -----------------------
#[test]
fn openapi_template_interactive_quick_replies() {
    check(
        json!({"name": "qr_offer", "language": "en_US", "category": "MARKETING",
               "components": [{"type": "HEADER", "format": "IMAGE"}, body3(),
                 {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Yes"}, {"type": "QUICK_REPLY", "text": "No"}]}]}),
        json!({"buttons": [{"index": 1, "payload": "9rwnB8RbYmPF5t2Mn09x4h"}]}),
        json!({"header": {"type": "image", "link": "https://the-image-url"},
               "body": ["text-string", currency(), date_time_legacy()],
               "buttons": [{"index": "0", "payload": "aGlzIHRoaXMgaXMgY29v"}]}),
        openapi_sent(
            "{{Recipient-Phone-Number}}",
            json!([
              image_header_sent(),
              body3_sent(),
              {"index": "0", "parameters": [{"payload": "aGlzIHRoaXMgaXMgY29v", "type": "payload"}],
               "sub_type": "quick_reply", "type": "button"},
              {"index": "1", "parameters": [{"payload": "9rwnB8RbYmPF5t2Mn09x4h", "type": "payload"}],
               "sub_type": "quick_reply", "type": "button"}]),
        ),
    );
}

// --- Meta OpenAPI: "Send Catalog Template Message" ----------------------------------------
#[test]
fn openapi_catalog_template() {
    check(
        json!({"name": "intro_catalog_offer", "language": "en_US", "category": "MARKETING",
               "components": [
                 {"type": "BODY", "text": "Now shop for your favourite products right here on WhatsApp! Get Rs {{1}} off on all orders above {{2}}Rs! Valid for your first {{3}} orders placed on WhatsApp!",
                  "example": {"body_text": [["100", "400", "3"]]}},
                 {"type": "FOOTER", "text": "Best grocery deals on WhatsApp!"},
                 {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]}]}),
        json!({"product": {"thumbnail_product_retailer_id": "2lc20305pt"}}),
        json!({"body": ["100", "400", "3"]}),
        openapi_sent(
            "+16505551234",
            json!([
              {"parameters": [{"text": "100", "type": "text"}, {"text": "400", "type": "text"},
                              {"text": "3", "type": "text"}], "type": "body"},
              {"index": 0, "parameters": [{"action": {"thumbnail_product_retailer_id": "2lc20305pt"}, "type": "action"}],
               "sub_type": "CATALOG", "type": "button"}]),
        ),
    );
}

/// Meta's "Send Flow Template Message" example message.
fn flow_offer_sent() -> Value {
    json!({
      "messaging_product": "whatsapp",
      "template": {"components": [{"index": "0", "parameters": [{"action": {
          "flow_action_data": {"<CUSTOM_KEY>": "<CUSTOM_VALUE>"}, "flow_token": "<FLOW_TOKEN>"},
          "type": "action"}], "sub_type": "flow", "type": "button"}],
        "language": {"code": "en_US"}, "name": "<TEMPLATE_NAME>"},
      "to": "{{Recipient-Phone-Number}}", "type": "template"
    })
}

// --- Meta OpenAPI: "Send Flow Template Message" --------------------------------------------
#[test]
fn openapi_flow_template() {
    check(
        json!({"name": "flow_offer", "language": "en_US", "category": "MARKETING",
               "components": [{"type": "body", "text": "Check out this new offer"},
                 {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Check out this offer!",
                   "flow_id": "123456", "flow_action": "navigate", "navigate_screen": "WELCOME"}]}]}),
        json!({}),
        json!({"buttons": [{"index": 0, "flow_token": "<FLOW_TOKEN>",
               "flow_action_data": {"<CUSTOM_KEY>": "<CUSTOM_VALUE>"}}]}),
        flow_offer_sent(),
    );
}

// The same flow values in Meta's nested `action` shape.
#[test]
fn flow_values_in_action_shape() {
    check(
        json!({"name": "flow_offer", "language": "en_US", "category": "MARKETING",
               "components": [{"type": "body", "text": "Check out this new offer"},
                 {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Open", "flow_id": 123456}]}]}),
        json!({}),
        json!({"buttons": [{"index": 0, "action": {"flow_token": "<FLOW_TOKEN>",
               "flow_action_data": {"<CUSTOM_KEY>": "<CUSTOM_VALUE>"}}}]}),
        flow_offer_sent(),
    );
}

// An authentication template as Meta's GET returns it (OTP button shown as a URL button).
#[test]
fn authentication_as_returned_by_get() {
    check(
        json!({"name": "auth_get", "language": "en_US", "category": "AUTHENTICATION", "components": [
            {"type": "BODY", "text": "*{{1}}* is your verification code.", "add_security_recommendation": true,
             "example": {"body_text": [["123456"]]}},
            {"type": "FOOTER", "text": "This code expires in 10 minutes."},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Copy code",
                "url": "https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code=otp{{1}}",
                "example": ["https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code=otp123456"]}]}]}),
        json!({}),
        json!({"body": ["493021"]}),
        button_msg(
            "auth_get",
            json!([
            {"type": "body", "parameters": [{"type": "text", "text": "493021"}]},
            {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "493021"}]}]),
        ),
    );
}

// A copy-code button as Meta's GET returns it (label, example as a list).
#[test]
fn copy_code_as_returned_by_get() {
    check(
        json!({"name": "coupon_get", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Your coupon"},
            {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "text": "Copy offer code", "example": ["250FF"]}]}]}),
        json!({}),
        json!({"buttons": [{"index": 0, "coupon_code": "250FF"}]}),
        button_msg(
            "coupon_get",
            json!([
            {"type": "button", "sub_type": "copy_code", "index": "0",
             "parameters": [{"type": "coupon_code", "coupon_code": "250FF"}]}]),
        ),
    );
}

// --- Meta OpenAPI: "Simple Template Message" and "Parameterized Template" ------------------
#[test]
fn openapi_marketing_simple_and_parameterized() {
    check(
        json!({"name": "hello_world", "language": "en", "category": "UTILITY",
               "components": [{"type": "BODY", "text": "Hello World"}]}),
        json!({}),
        json!({}),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16315552222",
               "type": "template", "template": {"name": "hello_world", "language": {"code": "en"}}}),
    );
    check(
        json!({"name": "promotional_offer", "language": "en", "category": "MARKETING",
               "components": [{"type": "BODY", "text": "Dear {{1}}, today only: {{2}}!"}]}),
        json!({}),
        json!({"body": ["John Doe", {"type": "currency", "currency": {"fallback_value": "$25.00", "code": "USD", "amount_1000": 25000}}]}),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16315552222",
               "type": "template", "template": {"name": "promotional_offer", "language": {"code": "en"},
               "components": [{"type": "body", "parameters": [
                  {"type": "text", "text": "John Doe"},
                  {"type": "currency", "currency": {"fallback_value": "$25.00", "code": "USD", "amount_1000": 25000}}]}]}}),
    );
}

// --- Reference 1.2: skeleton with callback data -------------------------------------------
#[test]
fn reference_skeleton_callback_data() {
    check(
        json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
               "components": [{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                              {"type": "BODY", "text": "Hi {{1}}"}]}),
        json!({}),
        json!({"header": ["#4721"], "body": ["Maria"]}),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
               "type": "template", "biz_opaque_callback_data": "campaign=842;recipient=99117",
               "template": {"name": "order_update", "language": {"code": "en_US", "policy": "deterministic"},
               "components": [
                  {"type": "header", "parameters": [{"type": "text", "text": "#4721"}]},
                  {"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]}}),
    );
}

fn one_header(fmt: &str) -> Value {
    json!({"name": "hdr", "language": "en_US", "category": "UTILITY",
           "components": [{"type": "HEADER", "format": fmt}, {"type": "BODY", "text": "See above."}]})
}

fn with_header_param(p: Value) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
           "type": "template", "template": {"name": "hdr", "language": {"code": "en_US"},
           "components": [{"type": "header", "parameters": [p]}]}})
}

// --- Reference 1.3: header parameters -----------------------------------------------------
#[test]
fn reference_headers() {
    check(
        one_header("IMAGE"),
        json!({}),
        json!({"header": {"type": "image", "link": "https://cdn.example.com/banner.jpg"}}),
        with_header_param(
            json!({"type": "image", "image": {"link": "https://cdn.example.com/banner.jpg"}}),
        ),
    );
    check(
        one_header("VIDEO"),
        json!({}),
        json!({"header": {"type": "video", "id": "1234567890123456"}}),
        with_header_param(json!({"type": "video", "video": {"id": "1234567890123456"}})),
    );
    check(
        one_header("DOCUMENT"),
        json!({}),
        json!({"header": {"type": "document", "link": "https://cdn.example.com/invoice-4721.pdf", "filename": "invoice-4721.pdf"}}),
        with_header_param(json!({"type": "document",
            "document": {"link": "https://cdn.example.com/invoice-4721.pdf", "filename": "invoice-4721.pdf"}})),
    );
    check(
        one_header("LOCATION"),
        json!({}),
        json!({"header": {"type": "location", "latitude": 37.4847, "longitude": -122.1477,
               "name": "Pickup point", "address": "1 Hacker Way, Menlo Park, CA"}}),
        with_header_param(json!({"type": "location", "location": {"latitude": 37.4847,
            "longitude": -122.1477, "name": "Pickup point", "address": "1 Hacker Way, Menlo Park, CA"}})),
    );
}

// --- Reference 1.2/1.4: named parameters ---------------------------------------------------
#[test]
fn reference_named_parameters() {
    check(
        json!({"name": "named_order", "language": "en_US", "category": "UTILITY", "parameter_format": "NAMED",
               "components": [
                 {"type": "HEADER", "format": "TEXT", "text": "Order {{order_no}}",
                  "example": {"header_text_named_params": [{"param_name": "order_no", "example": "4721"}]}},
                 {"type": "BODY", "text": "Hi {{first_name}}, you paid {{total}}.",
                  "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Maria"},
                                                         {"param_name": "total", "example": "$10"}]}}]}),
        json!({}),
        json!({"header": {"order_no": "4721"}, "body": {"total": currency(), "first_name": "Maria"}}),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
               "type": "template", "template": {"name": "named_order", "language": {"code": "en_US"},
               "components": [
                 {"type": "header", "parameters": [{"type": "text", "parameter_name": "order_no", "text": "4721"}]},
                 {"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Maria"},
                    {"type": "currency", "parameter_name": "total", "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990}}]}]}}),
    );
}

fn button_msg(name: &str, comps: Value) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
           "type": "template", "template": {"name": name, "language": {"code": "en_US"}, "components": comps}})
}

// --- Reference 1.5: quick reply, url, copy code -------------------------------------------
#[test]
fn reference_buttons() {
    check(
        json!({"name": "promo", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Sale!"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop promotions"},
                {"type": "URL", "text": "Track", "url": "https://shop.example.com/track/{{1}}", "example": ["1Z999"]},
                {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+16505551234"},
                {"type": "URL", "text": "Site", "url": "https://shop.example.com"}]}]}),
        json!({"buttons": [{"index": 0, "payload": "UNSUB_campaign842"}]}),
        json!({"buttons": [{"index": 1, "text": "1Z999AA10123456784"}]}),
        button_msg(
            "promo",
            json!([
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "UNSUB_campaign842"}]},
            {"type": "button", "sub_type": "url", "index": "1",
             "parameters": [{"type": "text", "text": "1Z999AA10123456784"}]}]),
        ),
    );
    check(
        json!({"name": "coupon", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "BODY", "text": "Your coupon"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Stop"},
                {"type": "COPY_CODE", "example": "SAVE20"}]}]}),
        json!({}),
        json!({"buttons": [{"index": 1, "coupon_code": "SAVE20"}]}),
        button_msg(
            "coupon",
            json!([
            {"type": "button", "sub_type": "copy_code", "index": 1,
             "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}]}]),
        ),
    );
}

// --- Reference 1.5: authentication OTP ----------------------------------------------------
#[test]
fn reference_authentication() {
    let tpl = json!({"name": "auth_code", "language": "en_US", "category": "AUTHENTICATION", "components": [
        {"type": "BODY", "add_security_recommendation": true},
        {"type": "FOOTER", "code_expiration_minutes": 10},
        {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy Code"}]}]});
    let want = button_msg(
        "auth_code",
        json!([
        {"type": "body", "parameters": [{"type": "text", "text": "493021"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "493021"}]}]),
    );
    // The button's code defaults to the body's.
    check(
        tpl.clone(),
        json!({}),
        json!({"body": ["493021"]}),
        want.clone(),
    );
    check(
        tpl,
        json!({}),
        json!({"body": ["493021"], "buttons": [{"index": 0, "text": "493021"}]}),
        want,
    );
}

// --- Reference 1.5: limited-time offer ----------------------------------------------------
#[test]
fn reference_limited_time_offer() {
    check(
        json!({"name": "flash_sale", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Expiring offer!", "has_expiration": true}},
            {"type": "BODY", "text": "Flash sale today."},
            {"type": "BUTTONS", "buttons": [
                {"type": "COPY_CODE", "example": "FLASH25"},
                {"type": "URL", "text": "Book now!", "url": "https://example.com/offer?code={{1}}",
                 "example": ["https://example.com/offer?code=flash25"]}]}]}),
        json!({"limited_time_offer": {"expiration_time_ms": 1767225599000_i64}}),
        json!({"buttons": [{"index": 0, "coupon_code": "FLASH25"}, {"index": 1, "text": "flash25"}]}),
        button_msg(
            "flash_sale",
            json!([
            {"type": "limited_time_offer", "parameters": [{"type": "limited_time_offer",
                "limited_time_offer": {"expiration_time_ms": 1767225599000_i64}}]},
            {"type": "button", "sub_type": "copy_code", "index": 0,
             "parameters": [{"type": "coupon_code", "coupon_code": "FLASH25"}]},
            {"type": "button", "sub_type": "url", "index": 1,
             "parameters": [{"type": "text", "text": "flash25"}]}]),
        ),
    );
}

// --- Reference 1.6: media-card carousel ---------------------------------------------------
#[test]
fn reference_media_carousel() {
    let card = |body: &str| {
        json!({"components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": body},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Send more like this"},
                {"type": "URL", "text": "Buy now", "url": "https://www.luckyshrub.com/shop/{{1}}"}]}]})
    };
    check(
        json!({"name": "carousel_template_media_cards_v1", "language": "en_US", "category": "MARKETING",
               "components": [
                 {"type": "BODY", "text": "Summer is here, {{1}}! Get {{2}} off with code {{3}}."},
                 {"type": "CAROUSEL", "cards": [card("Rare lightning-red aloe."), card("Buddha's belly, now {{1}} off.")]}]}),
        json!({"cards": [
            {"buttons": [{"index": 0, "payload": "more-aloes"}]},
            {"header": {"type": "image", "link": "https://cdn.example.com/buddha.jpg"},
             "buttons": [{"index": 0, "payload": "more-crassula"}]}]}),
        json!({"body": ["Pablo", "30%", "30OFF"], "cards": [
            {"header": {"type": "image", "id": "24230790383178626"}, "buttons": [{"index": 1, "text": "blue-elf"}]},
            {"body": ["15%"], "buttons": [{"index": 1, "text": "buddha"}]}]}),
        json!({
          "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234", "type": "template",
          "template": {"name": "carousel_template_media_cards_v1", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [
                {"type": "text", "text": "Pablo"}, {"type": "text", "text": "30%"}, {"type": "text", "text": "30OFF"}]},
            {"type": "carousel", "cards": [
              {"card_index": 0, "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"id": "24230790383178626"}}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "more-aloes"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "blue-elf"}]}]},
              {"card_index": 1, "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/buddha.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "15%"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "more-crassula"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "buddha"}]}]}]}]}
        }),
    );
}

// --- Reference 1.7: product-card carousel -------------------------------------------------
#[test]
fn reference_product_carousel() {
    let card = json!({"components": [{"type": "HEADER", "format": "PRODUCT"},
        {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}]});
    check(
        json!({"name": "carousel_template_product_cards_v1", "language": "en_US", "category": "MARKETING",
               "components": [{"type": "BODY", "text": "Hi {{1}}, new arrivals!"},
                              {"type": "CAROUSEL", "cards": [card.clone(), card]}]}),
        json!({}),
        json!({"body": ["Pablo"], "cards": [
            {"header": {"type": "product", "product_retailer_id": "SKU-1", "catalog_id": "194836987003835"}},
            {"header": {"type": "product", "product_retailer_id": "SKU-2", "catalog_id": "194836987003835"}}]}),
        json!({
          "type": "template", "messaging_product": "whatsapp", "to": "16505551234",
          "template": {"name": "carousel_template_product_cards_v1", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Pablo"}]},
            {"type": "carousel", "cards": [
              {"card_index": 0, "components": [{"type": "header", "parameters": [{"type": "product",
                  "product": {"product_retailer_id": "SKU-1", "catalog_id": "194836987003835"}}]}]},
              {"card_index": 1, "components": [{"type": "header", "parameters": [{"type": "product",
                  "product": {"product_retailer_id": "SKU-2", "catalog_id": "194836987003835"}}]}]}]}]}
        }),
    );
}

// --- Reference 1.7: single-product template -----------------------------------------------
#[test]
fn reference_spm() {
    let tpl = json!({"name": "spm_black_prince", "language": "en_US", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "PRODUCT"},
        {"type": "BODY", "text": "Hi {{1}}, this one is back."},
        {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}]});
    let want = json!({
      "messaging_product": "whatsapp", "to": "16505551234", "type": "template",
      "template": {"name": "spm_black_prince", "language": {"code": "en_US"}, "components": [
        {"type": "header", "parameters": [{"type": "product",
            "product": {"catalog_id": "194836987003835", "product_retailer_id": "SKU-ECHEVERIA-BP"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}]}});
    check(
        tpl.clone(),
        json!({}),
        json!({"header": {"type": "product", "product_retailer_id": "SKU-ECHEVERIA-BP", "catalog_id": "194836987003835"}, "body": ["Maria"]}),
        want.clone(),
    );
    // The same product given through `product`, catalog from the defaults.
    check(
        tpl,
        json!({"product": {"catalog_id": "194836987003835"}}),
        json!({"product": {"product_retailer_id": "SKU-ECHEVERIA-BP"}, "body": ["Maria"]}),
        want,
    );
}

// --- Reference 1.7 / OpenAPI "Create multi-product message template": MPM ------------------
#[test]
fn reference_mpm() {
    check(
        json!({"category": "MARKETING", "components": [
            {"example": {"header_text": ["Pablo"]}, "format": "TEXT", "text": "Forget something {{1}}?", "type": "HEADER"},
            {"example": {"body_text": [["10OFF"]]},
             "text": "Looks like you left some items in your cart! Use code {{1}} and you can get 10% off of all of them!",
             "type": "BODY"},
            {"buttons": [{"text": "View items", "type": "MPM"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "abandoned_cart"}),
        json!({"product": {"thumbnail_product_retailer_id": "2lc20305pt", "sections": [
            {"title": "Popular Bundles", "product_items": [{"product_retailer_id": "2lc20305pt"}, {"product_retailer_id": "nseiw1x3ch"}]},
            {"title": "Premium Packages", "product_items": [{"product_retailer_id": "n6k6x0y7oe"}]}]}}),
        json!({"header": ["Pablo"], "body": ["10OFF"]}),
        json!({
          "messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234", "type": "template",
          "template": {"name": "abandoned_cart", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "Pablo"}]},
            {"type": "body", "parameters": [{"type": "text", "text": "10OFF"}]},
            {"type": "button", "sub_type": "mpm", "index": 0, "parameters": [{"type": "action", "action": {
                "thumbnail_product_retailer_id": "2lc20305pt",
                "sections": [
                  {"title": "Popular Bundles", "product_items": [
                      {"product_retailer_id": "2lc20305pt"}, {"product_retailer_id": "nseiw1x3ch"}]},
                  {"title": "Premium Packages", "product_items": [
                      {"product_retailer_id": "n6k6x0y7oe"}]}]}}]}]}
        }),
    );
}

// --- Meta OpenAPI template definitions validate ---------------------------------------------
#[test]
fn openapi_template_definitions_validate() {
    let defs = [
        json!({"category": "MARKETING", "components": [
            {"format": "TEXT", "text": "Fall Sale", "type": "HEADER"},
            {"example": {"body_text": [["Mark", "FALL25"]]},
             "text": "Hi {{1}}, our Fall Sale is on! Use promo code {{2}} Get an extra 25% off every order above $350!", "type": "BODY"},
            {"text": "Not interested in any of our sales? Tap Stop Promotions", "type": "FOOTER"},
            {"buttons": [{"text": "Stop promotions", "type": "QUICK_REPLY"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "2023_april_promo", "id": "920070352646140", "status": "APPROVED"}),
        json!({"category": "AUTHENTICATION", "components": [
            {"add_security_recommendation": true, "type": "BODY"},
            {"code_expiration_minutes": 10, "type": "FOOTER"},
            {"buttons": [{"autofill_text": "Autofill", "otp_type": "ONE_TAP", "package_name": "com.example.luckyshrub",
                          "signature_hash": "K8a%2FAINcGX7", "text": "Copy Code", "type": "OTP"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "authentication_code_autofill_button"}),
        json!({"category": "UTILITY", "components": [
            {"example": {"header_handle": ["4::YXBwbGljYXRpb24vcGRm:ARZVv4zuogJMxmAdS3"]}, "format": "DOCUMENT", "type": "HEADER"},
            {"example": {"body_text": [["Mark", "860198-230332"]]},
             "text": "Thank you for your order, {{1}}! Your order number is {{2}}. Tap the PDF linked above to view your receipt. If you have any questions, please use the buttons below to contact support. Thanks again!", "type": "BODY"},
            {"buttons": [{"phone_number": "16467043595", "text": "Call", "type": "PHONE_NUMBER"},
                         {"text": "Contact Support", "type": "URL", "url": "https://www.examplesite.com/support"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "order_confirmation"}),
        json!({"category": "MARKETING", "components": [
            {"example": {"header_handle": ["4::aW1hZ2UvanBn:ARYytyb0kLp5htbBB8vWlclG5M9gMBxiEyt4FNCvrueWBOmFmRAztEuNtPGUnEC22Etc_SAAVU0YJOk3B7A"]},
             "format": "IMAGE", "type": "HEADER"},
            {"example": {"body_text": [["Mark", "Tuscan Getaway package", "800"]]},
             "text": "Hi {{1}}! For a limited time only you can get our {{2}} for as low as {{3}}. Tap the Offer Details button for more information.", "type": "BODY"},
            {"text": "Offer valid until May 31, 2023", "type": "FOOTER"},
            {"buttons": [{"phone_number": "16467043595", "text": "Call", "type": "PHONE_NUMBER"},
                         {"example": ["summer2023"], "text": "Shop Now", "type": "URL",
                          "url": "https://damp-sea-63235.herokuapp.com/shop?promo={{1}}"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "limited_time_offer_tuscan_getaway_2023"}),
        json!({"category": "UTILITY", "components": [
            {"format": "LOCATION", "type": "HEADER"},
            {"example": {"body_text": [["Mark", "566701"]]},
             "text": "Good news {{1}}! Your order #{{2}} is on its way to the location above. Thank you for your order!", "type": "BODY"},
            {"text": "To stop receiving delivery updates, tap the button below.", "type": "FOOTER"},
            {"buttons": [{"text": "Stop Delivery Updates", "type": "QUICK_REPLY"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "order_delivery_update"}),
        json!({"category": "MARKETING", "components": [
            {"text": "Check out this new offer", "type": "body"},
            {"buttons": [{"flow_action": "navigate", "flow_name": "{{Flow-Name}}", "navigate_screen": "<SCREEN_ID>",
                          "text": "Check out this offer!", "type": "FLOW"}], "type": "BUTTONS"}],
          "language": "en_US", "name": "flow_template_by_name"}),
    ];
    for d in defs {
        let t: Template = serde_json::from_value(d.clone()).expect("template json");
        let spec = t.spec().unwrap_or_else(|e| panic!("{}: {e:?}", t.name));
        // Every one of Meta's definitions expands with its generated example variables.
        let ex = ezpulze_payload::example_variables(&t, &Variables::default());
        expand(&t, &Variables::default(), &ex, "+16505551234", "id")
            .unwrap_or_else(|e| panic!("{}: {e:?}", t.name));
        if t.name == "limited_time_offer_tuscan_getaway_2023" {
            assert_eq!(
                spec.body.examples,
                vec!["Mark", "Tuscan Getaway package", "800"]
            );
            assert_eq!(spec.buttons.len(), 1);
            assert_eq!(spec.buttons[0].index, 1);
            let v = serde_json::to_value(&ex).expect("ser");
            assert_eq!(v["buttons"], json!([{"index": 1, "text": "summer2023"}]));
        }
    }
}
