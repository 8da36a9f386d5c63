//! Merging broadcast defaults under recipient values: the recipient wins per slot.

use ezpulze_payload::{CompiledTemplate, Template, Variables};
use serde_json::{json, Value};

fn run(t: Value, d: Value, r: Value) -> Value {
    let t: Template = serde_json::from_value(t).expect("template");
    let c = CompiledTemplate::new(t).expect("valid");
    let d: Variables = serde_json::from_value(d).expect("defaults");
    let r: Variables = serde_json::from_value(r).expect("recipient");
    let m = c
        .expand(&d, &r, "+16505551234", "")
        .unwrap_or_else(|e| panic!("{e:#?}"));
    m.to_json_value()["template"]["components"].clone()
}

#[test]
fn positional_body_per_slot() {
    let t = json!({"name": "t", "language": "en", "category": "UTILITY", "components": [
        {"type": "BODY", "text": "{{1}} {{2}} {{3}}"}]});
    let c = run(
        t,
        json!({"body": ["d1", "d2", "d3"]}),
        json!({"body": [null, "r2"]}),
    );
    let texts: Vec<&str> = c[0]["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .map(|p| p["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["d1", "r2", "d3"]);
}

#[test]
fn named_body_per_name() {
    let t = json!({"name": "t", "language": "en", "category": "UTILITY", "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "{{a}} {{b}}"}]});
    let c = run(
        t,
        json!({"body": {"a": "da", "b": "db"}}),
        json!({"body": {"b": "rb"}}),
    );
    assert_eq!(
        c[0]["parameters"],
        json!([{"type": "text", "parameter_name": "a", "text": "da"},
               {"type": "text", "parameter_name": "b", "text": "rb"}])
    );
}

#[test]
fn buttons_by_index_and_header() {
    let t = json!({"name": "t", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "a"}, {"type": "QUICK_REPLY", "text": "b"}]}]});
    let c = run(
        t,
        json!({"header": {"type": "image", "id": "1"}, "buttons": [{"index": 0, "payload": "d0"}, {"index": 1, "payload": "d1"}]}),
        json!({"header": {"type": "image", "link": "https://x.example/r.jpg"}, "buttons": [{"index": 1, "payload": "r1"}]}),
    );
    assert_eq!(
        c[0]["parameters"][0]["image"],
        json!({"link": "https://x.example/r.jpg"})
    );
    assert_eq!(c[1]["parameters"][0]["payload"], "d0");
    assert_eq!(c[2]["parameters"][0]["payload"], "r1");
}

#[test]
fn product_fields_per_field_and_spm_precedence() {
    let mpm = json!({"name": "t", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Picks"}, {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "View"}]}]});
    let c = run(
        mpm,
        json!({"product": {"thumbnail_product_retailer_id": "d", "sections": [{"product_items": [{"product_retailer_id": "A"}]}]}}),
        json!({"product": {"thumbnail_product_retailer_id": "r"}}),
    );
    assert_eq!(
        c[0]["parameters"][0]["action"]["thumbnail_product_retailer_id"],
        "r"
    );
    assert_eq!(
        c[0]["parameters"][0]["action"]["sections"][0]["product_items"][0]["product_retailer_id"],
        "A"
    );

    let spm = json!({"name": "t", "language": "en", "category": "MARKETING", "components": [
        {"type": "HEADER", "format": "PRODUCT"}, {"type": "BODY", "text": "Hi"},
        {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}]});
    // A recipient's product id beats a saved header product.
    let c = run(
        spm.clone(),
        json!({"header": {"type": "product", "product_retailer_id": "SAVED", "catalog_id": "C"}}),
        json!({"product": {"product_retailer_id": "MINE"}}),
    );
    assert_eq!(
        c[0]["parameters"][0]["product"],
        json!({"product_retailer_id": "MINE"})
    );
    let c = run(
        spm,
        json!({"product": {"catalog_id": "C"}}),
        json!({"header": {"type": "product", "product_retailer_id": "H"}}),
    );
    assert_eq!(
        c[0]["parameters"][0]["product"],
        json!({"product_retailer_id": "H"})
    );
}

#[test]
fn offer_expiry() {
    let t = json!({"name": "t", "language": "en", "category": "MARKETING", "components": [
        {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Soon", "has_expiration": true}},
        {"type": "BODY", "text": "Hi"}]});
    let c = run(
        t,
        json!({"limited_time_offer": {"expiration_time_ms": 1}}),
        json!({"limited_time_offer": {"expiration_time_ms": 2}}),
    );
    assert_eq!(
        c[0]["parameters"][0]["limited_time_offer"]["expiration_time_ms"],
        2
    );
}
