//! Template definition validation: one bad definition per rule, with its field path and code.

use ezpulze_payload::{ErrorCode, Template};
use serde_json::{json, Value};

fn errors(t: Value) -> Vec<(String, ErrorCode)> {
    let t: Template = serde_json::from_value(t).expect("template json");
    match t.validate() {
        Ok(()) => vec![],
        Err(e) => e.into_iter().map(|e| (e.field, e.code)).collect(),
    }
}

fn tpl(category: &str, components: Value) -> Value {
    json!({"name": "t", "language": "en_US", "category": category, "components": components})
}

fn body() -> Value {
    json!({"type": "BODY", "text": "Hello {{1}}"})
}

#[track_caller]
fn rejects(t: Value, field: &str, code: ErrorCode) {
    let e = errors(t.clone());
    assert!(
        e.iter().any(|(f, c)| f == field && *c == code),
        "expected {code} at {field}, got {e:?} for {t}"
    );
}

fn buttons(b: Value) -> Value {
    json!({"type": "BUTTONS", "buttons": b})
}

fn qr(i: usize) -> Value {
    json!({"type": "QUICK_REPLY", "text": format!("Reply {i}")})
}

#[test]
fn name_and_language() {
    let mut t = tpl("UTILITY", json!([body()]));
    t["name"] = json!("x".repeat(513));
    rejects(t.clone(), "name", ErrorCode::TooLong);
    t["name"] = json!("");
    rejects(t.clone(), "name", ErrorCode::Required);
    t["name"] = json!("has-dash");
    rejects(t.clone(), "name", ErrorCode::InvalidValue);
    t["name"] = json!("ok_name_2");
    t["language"] = json!("en-US");
    rejects(t, "language", ErrorCode::InvalidValue);
}

#[test]
fn components_structure() {
    rejects(tpl("UTILITY", json!([])), "components", ErrorCode::Required);
    rejects(
        tpl("UTILITY", json!([body(), body()])),
        "components[1]",
        ErrorCode::Duplicate,
    );
    rejects(
        tpl("UTILITY", json!([{"type": "BODY"}])),
        "components[0].text",
        ErrorCode::Required,
    );
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "BODY", "text": "x".repeat(1025)}]),
        ),
        "components[0].text",
        ErrorCode::TooLong,
    );
    rejects(
        tpl("UTILITY", json!([{"type": "BODY", "text": "  "}])),
        "components[0].text",
        ErrorCode::Required,
    );
}

#[test]
fn parameters() {
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "BODY", "text": "Hi {{1}} {{3}}"}]),
        ),
        "components[0].text",
        ErrorCode::ParamNumbering,
    );
    rejects(
        tpl("UTILITY", json!([{"type": "BODY", "text": "Hi {{name}}"}])),
        "components[0].text",
        ErrorCode::ParamNumbering,
    );
    rejects(
        tpl("UTILITY", json!([{"type": "BODY", "text": "Hi {{01}}"}])),
        "components[0].text",
        ErrorCode::ParamNumbering,
    );
    rejects(
        tpl("UTILITY", json!([{"type": "BODY", "text": "Hi {{1"}])),
        "components[0].text",
        ErrorCode::ParamNumbering,
    );
    let mut named = tpl(
        "UTILITY",
        json!([{"type": "BODY", "text": "Hi {{First Name}}"}]),
    );
    named["parameter_format"] = json!("NAMED");
    rejects(named, "components[0].text", ErrorCode::ParamNumbering);
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "BODY", "text": "Hi {{1}} {{2}}", "example": {"body_text": [["only one"]]}}]),
        ),
        "components[0].example.body_text",
        ErrorCode::InvalidValue,
    );
    let mut named = tpl(
        "UTILITY",
        json!([{"type": "BODY", "text": "Hi {{first_name}}",
        "example": {"body_text_named_params": [{"param_name": "last_name", "example": "x"}]}}]),
    );
    named["parameter_format"] = json!("NAMED");
    rejects(
        named,
        "components[0].example.body_text_named_params",
        ErrorCode::InvalidValue,
    );
}

#[test]
fn header_and_footer() {
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "HEADER", "format": "TEXT"}, body()]),
        ),
        "components[0].text",
        ErrorCode::Required,
    );
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "HEADER", "format": "TEXT", "text": "{{1}} and {{2}}"}, body()]),
        ),
        "components[0].text",
        ErrorCode::TooMany,
    );
    rejects(
        tpl(
            "UTILITY",
            json!([{"type": "HEADER", "format": "IMAGE", "text": "no"}, body()]),
        ),
        "components[0].text",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "UTILITY",
            json!([body(), {"type": "FOOTER", "text": "x".repeat(61)}]),
        ),
        "components[1].text",
        ErrorCode::TooLong,
    );
    rejects(
        tpl(
            "UTILITY",
            json!([body(), {"type": "FOOTER", "code_expiration_minutes": 5}]),
        ),
        "components[1].code_expiration_minutes",
        ErrorCode::NotAllowed,
    );
}

#[test]
fn button_rules() {
    let eleven: Vec<Value> = (0..11).map(qr).collect();
    let three_urls: Vec<Value> = (0..3)
        .map(|i| json!({"type": "URL", "text": format!("U{i}"), "url": "https://x.example"}))
        .collect();
    // The buttons of a marketing template, and the error under `components[1].buttons`.
    let cases = [
        (json!([]), "", ErrorCode::TooFew),
        (json!(eleven), "", ErrorCode::TooMany),
        (json!(three_urls), "", ErrorCode::TooMany),
        (
            json!([{"type": "COPY_CODE", "example": "A"}, {"type": "COPY_CODE", "example": "B"}]),
            "",
            ErrorCode::TooMany,
        ),
        (
            json!([{"type": "MPM", "text": "a"}, {"type": "CATALOG", "text": "b"}]),
            "",
            ErrorCode::NotAllowed,
        ),
        (
            json!([{"type": "FLOW", "text": "Open"}]),
            "[0].flow_id",
            ErrorCode::Required,
        ),
        (
            json!([{"type": "FLOW", "text": "Open", "flow_id": 1, "flow_action": "jump"}]),
            "[0].flow_action",
            ErrorCode::InvalidValue,
        ),
        (
            json!([{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "1".repeat(21)}]),
            "[0].phone_number",
            ErrorCode::TooLong,
        ),
        (
            json!([{"type": "QUICK_REPLY", "text": ""}]),
            "[0].text",
            ErrorCode::Required,
        ),
        (
            json!([{"type": "URL", "text": "Go", "url": "https://x/{{1}}{{2}}"}]),
            "[0].url",
            ErrorCode::ParamNumbering,
        ),
        (
            json!([{"type": "OTP", "otp_type": "COPY_CODE"}]),
            "[0].type",
            ErrorCode::NotAllowed,
        ),
    ];
    for (b, field, code) in cases {
        rejects(
            tpl("MARKETING", json!([body(), buttons(b)])),
            &format!("components[1].buttons{field}"),
            code,
        );
    }
}

#[test]
fn authentication_rules() {
    rejects(
        tpl("AUTHENTICATION", json!([{"type": "BODY"}])),
        "components",
        ErrorCode::Required,
    );
    rejects(
        tpl(
            "AUTHENTICATION",
            json!([{"type": "BODY"}, buttons(json!([qr(0)]))]),
        ),
        "components[1].buttons[0].type",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "AUTHENTICATION",
            json!([{"type": "HEADER", "format": "TEXT", "text": "Code"}, {"type": "BODY"},
            buttons(json!([{"type": "OTP", "otp_type": "COPY_CODE"}]))]),
        ),
        "components[0]",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "AUTHENTICATION",
            json!([{"type": "BODY", "text": "{{1}} and {{2}}"},
            buttons(json!([{"type": "OTP", "otp_type": "COPY_CODE"}]))]),
        ),
        "components[0].text",
        ErrorCode::ParamNumbering,
    );
    rejects(
        tpl(
            "AUTHENTICATION",
            json!([{"type": "BODY"}, {"type": "FOOTER", "code_expiration_minutes": 91},
            buttons(json!([{"type": "OTP", "otp_type": "ONE_TAP"}]))]),
        ),
        "components[1].code_expiration_minutes",
        ErrorCode::InvalidValue,
    );
    assert!(errors(tpl(
        "AUTHENTICATION",
        json!([{"type": "BODY", "add_security_recommendation": true},
        buttons(json!([{"type": "OTP", "otp_type": "ZERO_TAP"}]))])
    ))
    .is_empty());
}

#[test]
fn product_and_offer_rules() {
    rejects(
        tpl(
            "MARKETING",
            json!([{"type": "HEADER", "format": "PRODUCT"}, body()]),
        ),
        "components",
        ErrorCode::Required,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), buttons(json!([{"type": "SPM", "text": "View"}]))]),
        ),
        "components",
        ErrorCode::Required,
    );
    let lto = json!({"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "This text is too long", "has_expiration": true}});
    rejects(
        tpl("MARKETING", json!([lto, body()])),
        "components[0].limited_time_offer.text",
        ErrorCode::TooLong,
    );
    let lto = json!({"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Soon", "has_expiration": true}});
    rejects(
        tpl("UTILITY", json!([lto.clone(), body()])),
        "components[0]",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([lto, body(), {"type": "FOOTER", "text": "f"}]),
        ),
        "components",
        ErrorCode::NotAllowed,
    );
}

fn card(header: &str, buttons_: Value) -> Value {
    json!({"components": [{"type": "HEADER", "format": header}, {"type": "BODY", "text": "Card"},
        {"type": "BUTTONS", "buttons": buttons_}]})
}

#[test]
fn carousel_rules() {
    let c = card("IMAGE", json!([qr(0)]));
    let eleven: Vec<Value> = (0..11).map(|_| c.clone()).collect();
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": eleven}]),
        ),
        "components[1].cards",
        ErrorCode::CardCount,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([{"type": "HEADER", "format": "IMAGE"}, body(), {"type": "CAROUSEL", "cards": [c.clone(), c.clone()]}]),
        ),
        "components[0]",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), card("IMAGE", json!([qr(0), qr(1), qr(2)]))]}]),
        ),
        "components[1].cards[1].components[2].buttons",
        ErrorCode::TooMany,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), card("DOCUMENT", json!([qr(0)]))]}]),
        ),
        "components[1].cards[1].components[0].format",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), card("IMAGE", json!([{"type": "COPY_CODE", "example": "A"}]))]}]),
        ),
        "components[1].cards[1].components[2].buttons[0].type",
        ErrorCode::NotAllowed,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), card("IMAGE", json!([{"type": "URL", "text": "Go", "url": "https://x.example"}]))]}]),
        ),
        "components[1].cards[1]",
        ErrorCode::InvalidValue,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), {"components": [{"type": "BODY", "text": "x"}, {"type": "BUTTONS", "buttons": [qr(0)]}]}]}]),
        ),
        "components[1].cards[1].components",
        ErrorCode::Required,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), {"components": [
            {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "x".repeat(161)}, {"type": "BUTTONS", "buttons": [qr(0)]}]}]}]),
        ),
        "components[1].cards[1].components[1].text",
        ErrorCode::TooLong,
    );
    rejects(
        tpl(
            "MARKETING",
            json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), {"components": [
            {"type": "HEADER", "format": "IMAGE"}, {"type": "FOOTER", "text": "f"}, {"type": "BUTTONS", "buttons": [qr(0)]}]}]}]),
        ),
        "components[1].cards[1].components[1].type",
        ErrorCode::NotAllowed,
    );
    assert!(errors(tpl(
        "MARKETING",
        json!([body(), {"type": "CAROUSEL", "cards": [c.clone(), c]}])
    ))
    .is_empty());
}

#[test]
fn unknown_component_and_button_types_fail_to_parse() {
    for bad in [
        tpl("MARKETING", json!([{"type": "SIDEBAR"}])),
        tpl(
            "MARKETING",
            json!([body(), buttons(json!([{"type": "TELEPORT", "text": "x"}]))]),
        ),
        tpl("PROMOTIONAL", json!([body()])),
        tpl(
            "MARKETING",
            json!([{"type": "HEADER", "format": "GIF"}, body()]),
        ),
    ] {
        assert!(
            serde_json::from_value::<Template>(bad.clone()).is_err(),
            "parsed {bad}"
        );
    }
}
