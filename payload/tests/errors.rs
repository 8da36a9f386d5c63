//! Bad input: every expansion error code, with its field path.

use ezpulze_payload::{expand, CompiledTemplate, ErrorCode, FieldError, Template, Variables};
use serde_json::{json, Value};

fn compile(t: Value) -> CompiledTemplate {
    let t: Template = serde_json::from_value(t).expect("template json");
    CompiledTemplate::new(t).unwrap_or_else(|e| panic!("invalid template: {e:?}"))
}

fn vars(v: Value) -> Variables {
    serde_json::from_value(v).expect("variables json")
}

fn errs(t: &CompiledTemplate, d: Value, r: Value) -> Vec<FieldError> {
    errs_to(t, d, r, "+16505551234", "cb")
}

/// Errors of the recipient's variables `r`, with no defaults.
fn recipient_errs(t: &CompiledTemplate, r: Value) -> Vec<FieldError> {
    errs(t, json!({}), r)
}

fn errs_to(t: &CompiledTemplate, d: Value, r: Value, to: &str, cb: &str) -> Vec<FieldError> {
    let (d, r) = (vars(d), vars(r));
    match t.expand(&d, &r, to, cb) {
        Ok(m) => panic!("accepted: {}", m.to_json_value()),
        Err(e) => e,
    }
}

#[track_caller]
fn has(errors: &[FieldError], field: &str, code: ErrorCode) {
    assert!(
        errors.iter().any(|e| e.field == field && e.code == code),
        "no {code} at {field} in {errors:#?}"
    );
}

fn text_tpl() -> CompiledTemplate {
    compile(
        json!({"name": "t", "language": "en", "category": "UTILITY", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
        {"type": "BODY", "text": "Hi {{1}}, {{2}}"},
        {"type": "BUTTONS", "buttons": [
            {"type": "QUICK_REPLY", "text": "Stop"},
            {"type": "URL", "text": "Go", "url": "https://x.example/{{1}}"},
            {"type": "COPY_CODE", "example": "X"},
            {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550001"}]}]}),
    )
}

fn ok_vars() -> Value {
    json!({"header": ["1"], "body": ["a", "b"], "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]})
}

#[test]
fn valid_baseline() {
    let t = text_tpl();
    let (d, r) = (Variables::default(), vars(ok_vars()));
    t.expand(&d, &r, "+16505551234", "cb").expect("valid");
}

#[test]
fn invalid_phone() {
    let t = text_tpl();
    for bad in [
        "",
        "abc",
        "+1234",
        "+1 650 555 1234 5678 9",
        "0650 555 1234",
    ] {
        let e = errs_to(&t, json!({}), ok_vars(), bad, "cb");
        has(&e, "to", ErrorCode::InvalidPhone);
    }
    // Accepted forms produce digits only.
    let r = vars(ok_vars());
    let d = Variables::default();
    let m = t
        .expand(&d, &r, "0044 (20) 7946-0958", "cb")
        .expect("valid");
    assert_eq!(m.to, "442079460958");
}

#[test]
fn missing_variables() {
    let t = text_tpl();
    let e = recipient_errs(&t, json!({}));
    has(&e, "header[0]", ErrorCode::MissingVariable);
    has(&e, "body[0]", ErrorCode::MissingVariable);
    has(&e, "body[1]", ErrorCode::MissingVariable);
    has(&e, "buttons", ErrorCode::MissingVariable);
    assert_eq!(
        e.iter().filter(|e| e.field == "buttons").count(),
        2,
        "url and copy code"
    );
    // null leaves the slot to the defaults, which lack it too.
    let e = errs(
        &t,
        json!({"body": ["x"]}),
        json!({"header": ["1"], "body": [null, null],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]}),
    );
    has(&e, "body[1]", ErrorCode::MissingVariable);
    assert_eq!(e.len(), 1, "{e:#?}");
}

#[test]
fn extra_variables() {
    let t = text_tpl();
    let e = recipient_errs(
        &t,
        json!({"header": ["1"], "body": ["a", "b", "c"],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"},
                    {"index": 3, "text": "static phone"}, {"index": 0, "text": "no"}],
        "cards": [], "limited_time_offer": {"expiration_time_ms": 1}, "product": {"sections": []}}),
    );
    has(&e, "body[2]", ErrorCode::ExtraVariable);
    has(&e, "buttons[2]", ErrorCode::ExtraVariable);
    has(&e, "buttons[3].text", ErrorCode::ExtraVariable);
    has(&e, "cards", ErrorCode::ExtraVariable);
    has(&e, "limited_time_offer", ErrorCode::ExtraVariable);
    has(&e, "product.sections", ErrorCode::ExtraVariable);
    // Extra values in the defaults are reported under `defaults.`.
    let e = errs(&t, json!({"body": ["a", "b", "c"]}), ok_vars());
    has(&e, "defaults.body[2]", ErrorCode::ExtraVariable);
    // A header for a template without one.
    let plain = compile(json!({"name": "p", "language": "en", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "No params"}]}));
    let e = recipient_errs(
        &plain,
        json!({"header": {"type": "image", "id": "1"}, "body": ["x"]}),
    );
    has(&e, "header", ErrorCode::ExtraVariable);
    has(&e, "body", ErrorCode::ExtraVariable);
}

#[test]
fn named_extra_and_missing() {
    let t = compile(
        json!({"name": "n", "language": "en", "category": "UTILITY", "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Hi {{first_name}} {{code}}"}]}),
    );
    let e = recipient_errs(&t, json!({"body": {"first_name": "M", "nickname": "x"}}));
    has(&e, "body.nickname", ErrorCode::ExtraVariable);
    has(&e, "body.code", ErrorCode::MissingVariable);
    let e = recipient_errs(&t, json!({"body": ["M", "C"]}));
    has(&e, "body", ErrorCode::InvalidValue);
    let positional = text_tpl();
    let e = recipient_errs(&positional, json!({"header": ["1"], "body": {"a": "b"}}));
    has(&e, "body", ErrorCode::InvalidValue);
}

/// A template with a header of `format` and a plain body.
fn header_tpl(category: &str, format: &str) -> CompiledTemplate {
    compile(json!({"name": "m", "language": "en", "category": category,
        "components": [{"type": "HEADER", "format": format}, {"type": "BODY", "text": "Hi"}]}))
}

#[test]
fn wrong_media_kind() {
    let t = header_tpl("MARKETING", "IMAGE");
    for h in [
        json!({"type": "video", "link": "https://x.example/v.mp4"}),
        json!({"type": "document", "id": "1"}),
        json!(["text"]),
        json!({"type": "location", "latitude": 1.0, "longitude": 1.0, "name": "n", "address": "a"}),
        json!({"type": "product", "product_retailer_id": "s"}),
    ] {
        let e = recipient_errs(&t, json!({"header": h}));
        has(&e, "header", ErrorCode::WrongMediaKind);
    }
    let e = errs(
        &t,
        json!({"header": {"type": "video", "id": "1"}}),
        json!({}),
    );
    has(&e, "defaults.header", ErrorCode::WrongMediaKind);
    let text = text_tpl();
    let e = recipient_errs(
        &text,
        json!({"header": {"type": "image", "id": "1"}, "body": ["a", "b"]}),
    );
    has(&e, "header", ErrorCode::WrongMediaKind);
}

#[test]
fn media_values() {
    let t = header_tpl("MARKETING", "DOCUMENT");
    for (header, field, code) in [
        (
            json!({"link": "ftp://x/y.pdf"}),
            "header.link",
            ErrorCode::InvalidValue,
        ),
        (
            json!({"link": "https://x/y.pdf", "id": "1"}),
            "header",
            ErrorCode::InvalidValue,
        ),
        (
            json!({"filename": "y.pdf"}),
            "header",
            ErrorCode::MissingVariable,
        ),
    ] {
        let mut header = header;
        header["type"] = json!("document");
        let e = recipient_errs(&t, json!({ "header": header }));
        has(&e, field, code);
    }
    let loc = header_tpl("UTILITY", "LOCATION");
    let e = recipient_errs(
        &loc,
        json!({"header": {"type": "location", "latitude": 91.0, "longitude": -181.0, "name": " ", "address": ""}}),
    );
    has(&e, "header.latitude", ErrorCode::InvalidValue);
    has(&e, "header.longitude", ErrorCode::InvalidValue);
    has(&e, "header.name", ErrorCode::InvalidValue);
    has(&e, "header.address", ErrorCode::InvalidValue);
}

fn carousel() -> CompiledTemplate {
    let card = json!({"components": [{"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Card {{1}}"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Buy", "url": "https://x.example/{{1}}"}]}]});
    compile(
        json!({"name": "c", "language": "en", "category": "MARKETING", "components": [
        {"type": "BODY", "text": "Hi"}, {"type": "CAROUSEL", "cards": [card.clone(), card.clone(), card]}]}),
    )
}

fn card(i: usize) -> Value {
    json!({"header": {"type": "image", "id": format!("{i}")}, "body": [format!("c{i}")], "buttons": [{"index": 0, "text": "s"}]})
}

#[test]
fn card_count() {
    let t = carousel();
    let e = recipient_errs(&t, json!({"cards": [card(0), card(1)]}));
    has(&e, "cards", ErrorCode::CardCount);
    let e = recipient_errs(&t, json!({"cards": [card(0), card(1), card(2), card(3)]}));
    has(&e, "cards", ErrorCode::CardCount);
    let e = recipient_errs(&t, json!({}));
    has(&e, "cards", ErrorCode::CardCount);
    let e = errs(
        &t,
        json!({"cards": [card(0)]}),
        json!({"cards": [card(0), card(1), card(2)]}),
    );
    has(&e, "defaults.cards", ErrorCode::CardCount);
    // Per-card errors carry the card.
    let e = recipient_errs(
        &t,
        json!({"cards": [card(0), {"header": {"type": "video", "id": "1"}, "body": ["x"], "buttons": [{"index": 0, "text": "s"}]}, {"body": ["x", "y"]}]}),
    );
    has(&e, "cards[1].header", ErrorCode::WrongMediaKind);
    has(&e, "cards[2].header", ErrorCode::MissingVariable);
    has(&e, "cards[2].body[1]", ErrorCode::ExtraVariable);
    has(&e, "cards[2].buttons", ErrorCode::MissingVariable);
    // Defaults fill per card and per slot.
    let (d, r) = (
        vars(json!({"cards": [card(0), card(1), card(2)]})),
        vars(json!({"cards": [{}, {"body": ["mine"]}, {}]})),
    );
    let m = t
        .expand(&d, &r, "+16505551234", "")
        .expect("valid")
        .to_json_value();
    assert_eq!(
        m["template"]["components"][0]["cards"][1]["components"][1]["parameters"][0]["text"],
        "mine"
    );
    assert_eq!(
        m["template"]["components"][0]["cards"][2]["components"][1]["parameters"][0]["text"],
        "c2"
    );
}

#[test]
fn too_long() {
    let t = text_tpl();
    let long = |n: usize| "x".repeat(n);
    let e = recipient_errs(
        &t,
        json!({"header": [long(61)], "body": ["a", "b"],
        "buttons": [{"index": 1, "text": long(2001)}, {"index": 2, "coupon_code": long(16)}]}),
    );
    has(&e, "header[0]", ErrorCode::TooLong);
    has(&e, "buttons[0].text", ErrorCode::TooLong);
    has(&e, "buttons[1].coupon_code", ErrorCode::TooLong);
    // The rendered body counts: static text "Hi , " (5 chars) + params.
    let e = recipient_errs(
        &t,
        json!({"header": ["1"], "body": [long(1000), long(20)],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]}),
    );
    has(&e, "body", ErrorCode::TooLong);
    let r = vars(json!({"header": ["1"], "body": [long(1000), long(19)],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]}));
    t.expand(&Variables::default(), &r, "+16505551234", "")
        .expect("1024 exactly is fine");
    // Characters, not bytes: 60 multi-byte characters fit a header.
    let r = vars(
        json!({"header": ["é".repeat(60)], "body": ["ü".repeat(1000), "a"],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "ÄÖÜ"}]}),
    );
    t.expand(&Variables::default(), &r, "+16505551234", "")
        .expect("multi-byte within limits");
    let e = errs_to(&t, json!({}), ok_vars(), "+16505551234", &long(513));
    has(&e, "callback_data", ErrorCode::TooLong);
}

#[test]
fn text_hygiene_and_empty_values() {
    let t = text_tpl();
    let r = vars(
        json!({"header": ["A\tB"], "body": ["line1\n\nline2", "a      b"],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]}),
    );
    let m = t
        .expand(&Variables::default(), &r, "+16505551234", "")
        .expect("valid")
        .to_json_value();
    let comps = &m["template"]["components"];
    assert_eq!(comps[0]["parameters"][0]["text"], "A B");
    assert_eq!(comps[1]["parameters"][0]["text"], "line1 line2");
    assert_eq!(comps[1]["parameters"][1]["text"], "a b");
    let e = recipient_errs(
        &t,
        json!({"header": [" \n "], "body": ["", "b"],
        "buttons": [{"index": 1, "text": " "}, {"index": 2, "coupon_code": ""}]}),
    );
    has(&e, "header[0]", ErrorCode::InvalidValue);
    has(&e, "body[0]", ErrorCode::InvalidValue);
    has(&e, "buttons[0].text", ErrorCode::InvalidValue);
    has(&e, "buttons[1].coupon_code", ErrorCode::InvalidValue);
    let e = recipient_errs(
        &t,
        json!({"header": [{"type": "currency", "currency": {"fallback_value": "$1", "code": "USD", "amount_1000": 1000}}],
        "body": ["a", {"type": "currency", "currency": {"fallback_value": "$1", "code": "usd", "amount_1000": 1000}}],
        "buttons": [{"index": 1, "text": "s"}, {"index": 2, "coupon_code": "C"}]}),
    );
    has(&e, "header[0]", ErrorCode::InvalidValue);
    has(&e, "body[1]", ErrorCode::InvalidValue);
}

fn mpm() -> CompiledTemplate {
    compile(
        json!({"name": "m", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Picks"},
        {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "View items"}]}]}),
    )
}

fn items(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"product_retailer_id": format!("SKU-{i}")}))
            .collect(),
    )
}

#[test]
fn mpm_sections() {
    let t = mpm();
    let e = recipient_errs(&t, json!({}));
    has(
        &e,
        "product.thumbnail_product_retailer_id",
        ErrorCode::MissingVariable,
    );
    has(&e, "product.sections", ErrorCode::MissingVariable);
    let e = recipient_errs(
        &t,
        json!({"product": {"thumbnail_product_retailer_id": "a", "sections": []}}),
    );
    has(&e, "product.sections", ErrorCode::TooFew);
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"title": format!("S{i}"), "product_items": items(1)}))
        .collect();
    let e = recipient_errs(
        &t,
        json!({"product": {"thumbnail_product_retailer_id": "a", "sections": eleven}}),
    );
    has(&e, "product.sections", ErrorCode::TooMany);
    let e = recipient_errs(
        &t,
        json!({"product": {"thumbnail_product_retailer_id": "a", "sections": [
        {"title": "A", "product_items": items(20)}, {"title": "B", "product_items": items(11)}]}}),
    );
    has(&e, "product.sections", ErrorCode::TooMany);
    let e = recipient_errs(
        &t,
        json!({"product": {"thumbnail_product_retailer_id": "a", "sections": [
        {"product_items": items(1)}, {"title": "A title that is far too long", "product_items": []}]}}),
    );
    has(&e, "product.sections[0].title", ErrorCode::MissingVariable);
    has(&e, "product.sections[1].title", ErrorCode::TooLong);
    has(&e, "product.sections[1].product_items", ErrorCode::TooFew);
    let e = recipient_errs(
        &t,
        json!({"buttons": [{"index": 0, "text": "x"}], "product": {"product_retailer_id": "x"}}),
    );
    has(&e, "buttons[0]", ErrorCode::ExtraVariable);
    has(&e, "product.product_retailer_id", ErrorCode::ExtraVariable);
    // One section needs no title; 30 products is the limit.
    let r = vars(
        json!({"product": {"thumbnail_product_retailer_id": "a", "sections": [{"product_items": items(30)}]}}),
    );
    t.expand(&Variables::default(), &r, "+16505551234", "")
        .expect("30 products");
}

#[test]
fn duplicates_and_offer() {
    let t = text_tpl();
    let e = recipient_errs(
        &t,
        json!({"header": ["1"], "body": ["a", "b"],
        "buttons": [{"index": 1, "text": "s"}, {"index": "1", "text": "t"}, {"index": 2, "coupon_code": "C"}]}),
    );
    has(&e, "buttons[1].index", ErrorCode::Duplicate);
    let lto = compile(
        json!({"name": "o", "language": "en", "category": "MARKETING", "components": [
        {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Ends soon", "has_expiration": true}},
        {"type": "BODY", "text": "Hi"}]}),
    );
    let e = recipient_errs(&lto, json!({}));
    has(
        &e,
        "limited_time_offer.expiration_time_ms",
        ErrorCode::MissingVariable,
    );
    let e = recipient_errs(
        &lto,
        json!({"limited_time_offer": {"expiration_time_ms": 0}}),
    );
    has(
        &e,
        "limited_time_offer.expiration_time_ms",
        ErrorCode::InvalidValue,
    );
}

#[test]
fn flow_action_conflicts() {
    let t = compile(
        json!({"name": "f", "language": "en", "category": "MARKETING", "components": [
        {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "FLOW", "text": "Open", "flow_name": "signup"},
                                        {"type": "QUICK_REPLY", "text": "No"}]}]}),
    );
    let e = recipient_errs(
        &t,
        json!({"buttons": [
        {"index": 0, "flow_token": "a", "action": {"flow_token": "b"}},
        {"index": 1, "action": {"flow_token": "c"}}]}),
    );
    has(&e, "buttons[0].action", ErrorCode::Duplicate);
    has(&e, "buttons[1].action", ErrorCode::ExtraVariable);
}

#[test]
fn invalid_template_refused_by_free_expand() {
    let t: Template = serde_json::from_value(
        json!({"name": "Bad", "language": "en", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{2}}"}]}),
    )
    .expect("json");
    let e = match expand(
        &t,
        &Variables::default(),
        &Variables::default(),
        "+16505551234",
        "",
    ) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    has(&e, "template.name", ErrorCode::InvalidTemplate);
    has(
        &e,
        "template.components[0].text",
        ErrorCode::InvalidTemplate,
    );
}

#[test]
fn check_defaults_reports_shape_but_not_missing() {
    let t = text_tpl();
    t.check_defaults(&Variables::default())
        .expect("empty defaults are fine");
    t.check_defaults(&vars(json!({"body": [null, "b"]})))
        .expect("partial defaults are fine");
    let e = t
        .check_defaults(&vars(
            json!({"header": {"type": "image", "id": "1"}, "body": ["a", "b", "c"],
            "buttons": [{"index": 0, "coupon_code": "X"}]}),
        ))
        .expect_err("bad defaults");
    has(&e, "header", ErrorCode::WrongMediaKind);
    has(&e, "body[2]", ErrorCode::ExtraVariable);
    has(&e, "buttons[0].coupon_code", ErrorCode::ExtraVariable);
    assert!(
        e.iter().all(|e| e.code != ErrorCode::MissingVariable),
        "{e:#?}"
    );
    let c = carousel();
    c.check_defaults(&Variables::default())
        .expect("no cards in defaults is fine");
    let e = c
        .check_defaults(&vars(json!({"cards": [card(0)]})))
        .expect_err("wrong count");
    has(&e, "cards", ErrorCode::CardCount);
}

#[test]
fn error_codes_serialise_stably() {
    let e = FieldError::new("to", ErrorCode::InvalidPhone, "bad");
    assert_eq!(
        serde_json::to_value(&e).expect("ser"),
        json!({"field": "to", "code": "invalid_phone", "message": "bad"})
    );
    for (c, s) in [
        (ErrorCode::MissingVariable, "missing_variable"),
        (ErrorCode::ExtraVariable, "extra_variable"),
        (ErrorCode::WrongMediaKind, "wrong_media_kind"),
        (ErrorCode::CardCount, "card_count"),
        (ErrorCode::TooLong, "too_long"),
    ] {
        assert_eq!(c.as_str(), s);
        assert_eq!(serde_json::to_value(c).expect("ser"), json!(s));
    }
}

#[test]
fn error_list_is_bounded() {
    let t = compile(
        json!({"name": "n", "language": "en", "category": "UTILITY", "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Hi {{first_name}}"}]}),
    );
    let mut body = serde_json::Map::new();
    for i in 0..10_000 {
        body.insert(format!("unknown_{i}"), json!("x"));
    }
    // Hostile sizes are refused while parsing...
    assert!(serde_json::from_value::<Variables>(json!({"body": body})).is_err());
    // ...and the error list stays bounded.
    let mut body = serde_json::Map::new();
    for i in 0..100 {
        body.insert(format!("unknown_{i}"), json!("x"));
    }
    let e = recipient_errs(&t, json!({"body": body}));
    assert_eq!(e.len(), ezpulze_payload::expand::MAX_ERRORS);
    let buttons: Vec<Value> = (0..1000)
        .map(|i| json!({"index": i, "payload": "p"}))
        .collect();
    let e = errs(
        &text_tpl(),
        json!({}),
        json!({"header": ["1"], "body": ["a", "b"], "buttons": buttons}),
    );
    has(&e, "buttons", ErrorCode::TooMany);
}
