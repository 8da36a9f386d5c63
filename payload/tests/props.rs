//! Property tests: for random valid templates of every kind, the generated example variables
//! and random valid values (split at random between broadcast defaults and the recipient)
//! always expand, and every body is valid for its template: parameter counts, media kinds,
//! button indexes and sub-types (never a static button), card counts and indexes, text hygiene
//! and limits. The checker reads the template JSON on its own, not the library's spec.

use ezpulze_payload::template::{ButtonKind, HeaderSpec, MediaKind};
use ezpulze_payload::{example_variables, CompiledTemplate, Template, TemplateSpec, Variables};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

// ----------------------------------------------------------------------------------------------
// Template generation
// ----------------------------------------------------------------------------------------------

fn placeholder(i: usize, named: bool) -> String {
    if named {
        format!("{{{{name_{i}}}}}")
    } else {
        format!("{{{{{}}}}}", i + 1)
    }
}

/// A text with `n` parameters, optionally using the first one twice.
fn text_with(prefix: &str, n: usize, named: bool, repeat: bool) -> String {
    let mut s = prefix.to_owned();
    for i in 0..n {
        s.push_str(&format!(" part {} ", placeholder(i, named)));
    }
    if repeat && n > 0 {
        s.push_str(&format!(" again {}", placeholder(0, named)));
    }
    s.push('.');
    s
}

fn body(n: usize, named: bool, repeat: bool, with_example: bool) -> Value {
    let mut b = json!({"type": "BODY", "text": text_with("Hello", n, named, repeat)});
    if with_example && n > 0 {
        b["example"] = if named {
            json!({"body_text_named_params": (0..n).map(|i| json!({"param_name": format!("name_{i}"), "example": format!("ex{i}")})).collect::<Vec<_>>()})
        } else {
            json!({"body_text": [(0..n).map(|i| format!("ex{i}")).collect::<Vec<_>>()]})
        };
    }
    b
}

fn button(kind: u8, i: usize) -> Value {
    match kind {
        0 => json!({"type": "QUICK_REPLY", "text": format!("Reply {i}")}),
        1 => json!({"type": "URL", "text": "Static", "url": "https://example.com/page"}),
        2 => {
            json!({"type": "URL", "text": "Track", "url": "https://example.com/t/{{1}}", "example": ["abc"]})
        }
        3 => json!({"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+15550100"}),
        4 => json!({"type": "COPY_CODE", "example": "SAVE10"}),
        5 => json!({"type": "FLOW", "text": "Open", "flow_id": "123", "flow_action": "navigate"}),
        _ => json!({"type": "VOICE_CALL", "text": "Voice"}),
    }
}

fn standard() -> impl Strategy<Value = Value> {
    (
        0u8..7,
        0usize..=5,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        (0usize..=3, 0usize..=1, 0usize..=1, 0usize..=1, 0usize..=1, 0usize..=1, 0usize..=1),
        any::<bool>(),
    )
        .prop_flat_map(|(header, n, named, repeat, example, footer, counts, utility)| {
            let (qr, us, ud, ph, cc, fl, vc) = counts;
            let mut kinds = Vec::new();
            kinds.extend(std::iter::repeat_n(0u8, qr));
            kinds.extend(std::iter::repeat_n(1u8, us));
            kinds.extend(std::iter::repeat_n(2u8, ud));
            kinds.extend(std::iter::repeat_n(3u8, ph));
            kinds.extend(std::iter::repeat_n(4u8, cc));
            kinds.extend(std::iter::repeat_n(5u8, fl));
            kinds.extend(std::iter::repeat_n(6u8, vc));
            Just(kinds).prop_shuffle().prop_map(move |kinds| {
                let mut comps = Vec::new();
                match header {
                    0 => {}
                    1 => comps.push(json!({"type": "HEADER", "format": "TEXT", "text": "Static title"})),
                    2 => {
                        let mut h = json!({"type": "HEADER", "format": "TEXT", "text": format!("Order {}", placeholder(0, named))});
                        if example {
                            h["example"] = if named {
                                json!({"header_text_named_params": [{"param_name": "name_0", "example": "Hx"}]})
                            } else {
                                json!({"header_text": ["Hx"]})
                            };
                        }
                        comps.push(h)
                    }
                    3 => comps.push(json!({"type": "HEADER", "format": "IMAGE"})),
                    4 => comps.push(json!({"type": "HEADER", "format": "VIDEO"})),
                    5 => comps.push(json!({"type": "HEADER", "format": "DOCUMENT"})),
                    _ => comps.push(json!({"type": "HEADER", "format": "LOCATION"})),
                }
                comps.push(body(n, named, repeat, example));
                if footer {
                    comps.push(json!({"type": "FOOTER", "text": "Reply STOP to opt out"}));
                }
                if !kinds.is_empty() {
                    let buttons: Vec<Value> = kinds.iter().enumerate().map(|(i, k)| button(*k, i)).collect();
                    comps.push(json!({"type": "BUTTONS", "buttons": buttons}));
                }
                let mut t = json!({"name": "standard_tpl", "language": "en_US",
                    "category": if utility { "UTILITY" } else { "MARKETING" }, "components": comps});
                if named {
                    t["parameter_format"] = json!("NAMED");
                }
                t
            })
        })
}

fn limited_time_offer() -> impl Strategy<Value = Value> {
    (0usize..=3, any::<bool>(), any::<bool>()).prop_map(|(n, has_exp, code_first)| {
        let mut buttons = vec![button(2, 0)];
        if code_first {
            buttons.insert(0, button(4, 0));
        }
        json!({"name": "lto_tpl", "language": "en", "category": "MARKETING", "components": [
            {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Ends soon!", "has_expiration": has_exp}},
            body(n, false, false, true),
            {"type": "BUTTONS", "buttons": buttons}]})
    })
}

fn carousel() -> impl Strategy<Value = Value> {
    (0u8..3, 2usize..=10, 0usize..=3, 0usize..=2, any::<bool>(), 0u8..4, any::<bool>()).prop_map(
        |(kind, cards, top_n, card_n, card_body, pattern, named)| {
            let product = kind == 2;
            let header = match kind {
                0 => "IMAGE",
                1 => "VIDEO",
                _ => "PRODUCT",
            };
            let buttons: Vec<Value> = if product {
                if pattern % 2 == 0 {
                    vec![json!({"type": "SPM", "text": "View"})]
                } else {
                    vec![button(2, 0)]
                }
            } else {
                match pattern {
                    0 => vec![button(0, 0)],
                    1 => vec![button(2, 0)],
                    2 => vec![button(0, 0), button(2, 1)],
                    _ => vec![button(1, 0), button(3, 1)],
                }
            };
            let card: Vec<Value> = (0..cards)
                .map(|c| {
                    let mut comps = vec![json!({"type": "HEADER", "format": header})];
                    if card_body {
                        // Cards may differ in how many parameters their body has.
                        comps.push(body((card_n + c) % 3, named, false, c % 2 == 0));
                    }
                    comps.push(json!({"type": "BUTTONS", "buttons": buttons}));
                    json!({"components": comps})
                })
                .collect();
            let mut t = json!({"name": "carousel_tpl", "language": "en_US", "category": "MARKETING", "components": [
                body(top_n, named, false, true), {"type": "CAROUSEL", "cards": card}]});
            if named {
                t["parameter_format"] = json!("NAMED");
            }
            t
        },
    )
}

fn commerce() -> impl Strategy<Value = Value> {
    (0u8..3, 0usize..=2, any::<bool>()).prop_map(|(kind, n, header_param)| match kind {
        0 => json!({"name": "spm_tpl", "language": "en_US", "category": "MARKETING", "components": [
            {"type": "HEADER", "format": "PRODUCT"}, body(n, false, false, false),
            {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}]}),
        1 => {
            let text = if header_param { "Forget something {{1}}?" } else { "Our picks" };
            json!({"name": "mpm_tpl", "language": "en_US", "category": "MARKETING", "components": [
                {"type": "HEADER", "format": "TEXT", "text": text}, body(n, false, false, true),
                {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "View items"}]}]})
        }
        _ => json!({"name": "catalog_tpl", "language": "en_US", "category": "MARKETING", "components": [
            body(n, false, false, true), {"type": "FOOTER", "text": "Best deals"},
            {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]}]}),
    })
}

fn authentication() -> impl Strategy<Value = Value> {
    (any::<bool>(), 0u8..3).prop_map(|(sec, otp)| {
        let otp_type = ["COPY_CODE", "ONE_TAP", "ZERO_TAP"][otp as usize];
        json!({"name": "auth_tpl", "language": "en", "category": "AUTHENTICATION", "components": [
            {"type": "BODY", "add_security_recommendation": sec},
            {"type": "FOOTER", "code_expiration_minutes": 5},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": otp_type, "text": "Copy code",
                "package_name": "com.example.app", "signature_hash": "K8a%2FAINcGX7"}]}]})
    })
}

fn any_template() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => standard(),
        1 => limited_time_offer(),
        3 => carousel(),
        2 => commerce(),
        1 => authentication(),
    ]
}

// ----------------------------------------------------------------------------------------------
// Random values
// ----------------------------------------------------------------------------------------------

/// Small deterministic generator for values (proptest drives the seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// Text with letters, accents, emoji, spaces, tabs and newlines; never blank.
    fn text(&mut self, max: usize) -> String {
        const PIECES: [&str; 10] = ["a", "Z", "é", "✓", "😀", " ", "\n", "\t", "     ", "9"];
        let n = 1 + self.below(max as u64 - 1) as usize;
        let mut s = String::from("x");
        while s.chars().count() < n {
            s.push_str(PIECES[self.below(PIECES.len() as u64) as usize]);
        }
        s.chars().take(n).collect()
    }
    fn word(&mut self, max: usize) -> String {
        let n = 1 + self.below(max as u64) as usize;
        (0..n)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

fn param_value(rng: &mut Rng, header: bool) -> Value {
    match if header { 0 } else { rng.below(5) } {
        3 => {
            json!({"type": "currency", "currency": {"fallback_value": format!("${}", rng.below(1000)), "code": "EUR", "amount_1000": rng.below(1_000_000)}})
        }
        4 => json!({"type": "date_time", "date_time": {"fallback_value": rng.text(20)}}),
        _ => json!(rng.text(if header { 60 } else { 40 })),
    }
}

fn text_values(rng: &mut Rng, count: usize, names: &[String], named: bool, header: bool) -> Value {
    if named {
        let mut m = Map::new();
        for n in names {
            m.insert(n.clone(), param_value(rng, header));
        }
        Value::Object(m)
    } else {
        Value::Array((0..count).map(|_| param_value(rng, header)).collect())
    }
}

fn media(rng: &mut Rng, kind: &str) -> Value {
    let mut m = json!({"type": kind});
    if rng.coin() {
        m["link"] = json!(format!("https://cdn.example.com/{}", rng.word(10)));
    } else {
        m["id"] = json!(format!("{}", rng.next() % 1_000_000_000));
    }
    if kind == "document" && rng.coin() {
        m["filename"] = json!("file.pdf");
    }
    m
}

fn header_value(rng: &mut Rng, spec: &HeaderSpec, named: bool) -> Option<Value> {
    Some(match spec {
        HeaderSpec::None => return None,
        HeaderSpec::Text(p) if p.count == 0 => return None,
        HeaderSpec::Text(p) => text_values(rng, p.count, &p.names, named, true),
        HeaderSpec::Media(MediaKind::Image) => media(rng, "image"),
        HeaderSpec::Media(MediaKind::Video) => media(rng, "video"),
        HeaderSpec::Media(MediaKind::Document) => media(rng, "document"),
        HeaderSpec::Location => {
            json!({"type": "location", "latitude": (rng.below(180) as f64) - 90.0,
            "longitude": (rng.below(360) as f64) - 180.0, "name": rng.word(10), "address": rng.text(30)})
        }
        HeaderSpec::Product => json!({"type": "product", "product_retailer_id": rng.word(8)}),
    })
}

fn button_values(rng: &mut Rng, specs: &[ezpulze_payload::template::ButtonSpec]) -> Vec<Value> {
    let mut out = Vec::new();
    for s in specs {
        let mut b =
            json!({"index": if rng.coin() { json!(s.index) } else { json!(s.index.to_string()) }});
        match s.kind {
            ButtonKind::QuickReply => {
                if rng.coin() {
                    continue;
                }
                b["payload"] = json!(rng.word(20));
            }
            ButtonKind::UrlSuffix { .. } | ButtonKind::Otp => b["text"] = json!(rng.word(30)),
            ButtonKind::CopyCode { .. } => b["coupon_code"] = json!(rng.word(15)),
            ButtonKind::Flow => {
                if rng.coin() {
                    b["flow_token"] = json!(rng.word(10));
                }
                if rng.coin() {
                    b["flow_action_data"] = json!({"k": rng.word(5)});
                }
            }
            ButtonKind::Mpm | ButtonKind::Catalog => continue,
        }
        out.push(b);
    }
    out
}

/// A full set of random values for `spec`.
fn random_full(rng: &mut Rng, spec: &TemplateSpec) -> Map<String, Value> {
    let named = spec.parameter_format == ezpulze_payload::template::ParameterFormat::Named;
    let mut v = Map::new();
    if let Some(h) = header_value(rng, &spec.header, named) {
        v.insert("header".into(), h);
    }
    if spec.body.count > 0 {
        let b = if spec.authentication {
            json!([rng.below(1_000_000).to_string()])
        } else {
            text_values(rng, spec.body.count, &spec.body.names, named, false)
        };
        v.insert("body".into(), b);
    }
    let b = button_values(rng, &spec.buttons);
    if !b.is_empty() {
        v.insert("buttons".into(), json!(b));
    }
    if !spec.cards.is_empty() {
        let cards: Vec<Value> = spec
            .cards
            .iter()
            .map(|c| {
                let mut m = Map::new();
                if let Some(h) = header_value(rng, &c.header, named) {
                    m.insert("header".into(), h);
                }
                if c.body.count > 0 {
                    m.insert(
                        "body".into(),
                        text_values(rng, c.body.count, &c.body.names, named, false),
                    );
                }
                let b = button_values(rng, &c.buttons);
                if !b.is_empty() {
                    m.insert("buttons".into(), json!(b));
                }
                Value::Object(m)
            })
            .collect();
        v.insert("cards".into(), json!(cards));
    }
    let mut product = Map::new();
    if spec.product.mpm || (spec.product.catalog && rng.coin()) {
        product.insert("thumbnail_product_retailer_id".into(), json!(rng.word(8)));
    }
    if spec.product.mpm {
        let n = 1 + rng.below(10) as usize;
        let mut budget = 30usize;
        let sections: Vec<Value> = (0..n)
            .map(|i| {
                let k = 1 + rng.below((budget - (n - i - 1)).min(5) as u64) as usize;
                budget -= k;
                json!({"title": rng.word(24), "product_items": (0..k).map(|_| json!({"product_retailer_id": "SKU"})).collect::<Vec<_>>()})
            })
            .collect();
        product.insert("sections".into(), json!(sections));
    }
    if !product.is_empty() {
        v.insert("product".into(), Value::Object(product));
    }
    if spec.limited_time_offer == Some(true) {
        v.insert(
            "limited_time_offer".into(),
            json!({"expiration_time_ms": 1_767_225_599_000_i64 + rng.below(1000) as i64}),
        );
    }
    v
}

/// Splits a full set between defaults and recipient: each top-level slot goes to one side or
/// both; body arrays are split per position (with `null` holes in the recipient's array).
fn split(rng: &mut Rng, full: Map<String, Value>) -> (Value, Value) {
    let mut d = Map::new();
    let mut r = Map::new();
    for (k, v) in full {
        match (k.as_str(), &v) {
            ("body", Value::Array(items)) if rng.coin() => {
                let mut ra = Vec::new();
                let mut da = Vec::new();
                for it in items {
                    match rng.below(3) {
                        0 => {
                            ra.push(Value::Null);
                            da.push(it.clone());
                        }
                        1 => {
                            ra.push(it.clone());
                            da.push(Value::Null);
                        }
                        _ => {
                            ra.push(it.clone());
                            da.push(json!("overridden default"));
                        }
                    }
                }
                r.insert(k.clone(), json!(ra));
                d.insert(k, json!(da));
            }
            _ => match rng.below(3) {
                0 => {
                    d.insert(k, v);
                }
                1 => {
                    r.insert(k, v);
                }
                _ => {
                    d.insert(k.clone(), v.clone());
                    r.insert(k, v);
                }
            },
        }
    }
    (Value::Object(d), Value::Object(r))
}

// ----------------------------------------------------------------------------------------------
// Independent checker
// ----------------------------------------------------------------------------------------------

fn distinct_placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(s) = rest.find("{{") {
        let after = &rest[s + 2..];
        let e = after.find("}}").expect("closed");
        let inner = after[..e].to_owned();
        if !out.contains(&inner) {
            out.push(inner);
        }
        rest = &after[e + 2..];
    }
    out
}

fn comp<'v>(comps: &'v [Value], ty: &str) -> Option<&'v Value> {
    comps.iter().find(|c| c["type"] == ty)
}

fn check_text_param(p: &Value, max: usize) {
    let t = match p["type"].as_str() {
        Some("text") => p["text"].as_str(),
        Some("currency") => p["currency"]["fallback_value"].as_str(),
        Some("date_time") => p["date_time"]["fallback_value"].as_str(),
        _ => None,
    };
    if let Some(t) = t {
        assert!(
            !t.contains('\n') && !t.contains('\t') && !t.contains('\r'),
            "{t:?}"
        );
        assert!(!t.contains("     "), "{t:?}");
        assert!(!t.trim().is_empty());
        assert!(t.chars().count() <= max, "{t:?}");
    }
}

/// Checks header/body/buttons of one component list (top level or a card) against the
/// template's component list.
fn check_components(tcomps: &[Value], out: &[Value], named: bool, auth: bool) {
    // Header.
    let th = comp(tcomps, "HEADER");
    let oh = comp(out, "header");
    match th.map(|h| h["format"].as_str().expect("format")) {
        None => assert!(oh.is_none()),
        Some("TEXT") => {
            let n = distinct_placeholders(th.and_then(|h| h["text"].as_str()).unwrap_or("")).len();
            if n == 0 {
                assert!(oh.is_none());
            } else {
                let ps = oh.expect("header")["parameters"]
                    .as_array()
                    .expect("params");
                assert_eq!(ps.len(), n);
                assert_eq!(ps[0]["type"], "text");
                check_text_param(&ps[0], 60);
                assert_eq!(ps[0].get("parameter_name").is_some(), named);
            }
        }
        Some(f) => {
            let ps = oh.expect("header")["parameters"]
                .as_array()
                .expect("params");
            assert_eq!(ps.len(), 1);
            let kind = f.to_lowercase();
            assert_eq!(ps[0]["type"], kind.as_str());
            let obj = ps[0][kind.as_str()].as_object().expect("media object");
            if kind != "location" && kind != "product" {
                assert!(obj.contains_key("link") ^ obj.contains_key("id"), "{obj:?}");
            }
        }
    }
    // Body.
    let tb = comp(tcomps, "BODY");
    let ob = comp(out, "body");
    let n = match tb.and_then(|b| b["text"].as_str()) {
        Some(t) => distinct_placeholders(t).len(),
        None if auth => 1,
        None => 0,
    };
    if n == 0 {
        assert!(ob.is_none());
    } else {
        let ps = ob.expect("body")["parameters"].as_array().expect("params");
        assert_eq!(ps.len(), n);
        let mut total = 0;
        for p in ps {
            check_text_param(p, 1024);
            assert_eq!(p.get("parameter_name").is_some(), named, "{p}");
            total += p["text"].as_str().map(|t| t.chars().count()).unwrap_or(0);
        }
        assert!(total <= 1024);
    }
    // Buttons.
    let tbuttons: Vec<Value> = comp(tcomps, "BUTTONS")
        .map(|b| b["buttons"].as_array().expect("buttons").clone())
        .unwrap_or_default();
    let obuttons: Vec<&Value> = out.iter().filter(|c| c["type"] == "button").collect();
    let mut last = None;
    for b in &obuttons {
        let idx: usize = b["index"]
            .as_str()
            .expect("index string")
            .parse()
            .expect("number");
        assert!(last.is_none_or(|l| l < idx), "indexes ascending and unique");
        last = Some(idx);
        let tb = &tbuttons[idx];
        let ty = tb["type"].as_str().expect("type");
        let dynamic_url = ty == "URL" && tb["url"].as_str().expect("url").contains("{{1}}");
        let want = match ty {
            "QUICK_REPLY" => "quick_reply",
            "URL" if dynamic_url => "url",
            "OTP" => "url",
            "COPY_CODE" => "copy_code",
            "FLOW" => "flow",
            "MPM" => "mpm",
            "CATALOG" => "catalog",
            other => panic!("static button {other} sent: {b}"),
        };
        assert_eq!(b["sub_type"], want);
        let ps = b["parameters"].as_array().expect("params");
        assert_eq!(ps.len(), 1);
        match want {
            "quick_reply" => assert_eq!(ps[0]["type"], "payload"),
            "url" => {
                assert_eq!(ps[0]["type"], "text");
                assert!(ps[0]["text"].as_str().expect("t").chars().count() <= 2000);
            }
            "copy_code" => {
                assert_eq!(ps[0]["type"], "coupon_code");
                assert!(ps[0]["coupon_code"].as_str().expect("c").chars().count() <= 15);
            }
            "mpm" => {
                let a = &ps[0]["action"];
                assert!(a["thumbnail_product_retailer_id"].is_string());
                let secs = a["sections"].as_array().expect("sections");
                assert!((1..=10).contains(&secs.len()));
                let total: usize = secs
                    .iter()
                    .map(|s| s["product_items"].as_array().expect("items").len())
                    .sum();
                assert!((1..=30).contains(&total));
            }
            _ => assert_eq!(ps[0]["type"], "action"),
        }
    }
    // Required runtime buttons are all present.
    for (i, tb) in tbuttons.iter().enumerate() {
        let ty = tb["type"].as_str().expect("type");
        let required = matches!(ty, "COPY_CODE" | "MPM" | "OTP")
            || (ty == "URL" && tb["url"].as_str().expect("url").contains("{{1}}"));
        if required {
            assert!(
                obuttons
                    .iter()
                    .any(|b| b["index"].as_str().and_then(|s| s.parse::<usize>().ok()) == Some(i)),
                "required button {i} ({ty}) missing"
            );
        }
    }
}

fn check_body_against_template(t: &Value, msg: &Value) {
    assert_eq!(msg["messaging_product"], "whatsapp");
    assert_eq!(msg["recipient_type"], "individual");
    assert_eq!(msg["type"], "template");
    assert_eq!(msg["to"], "16505551234");
    assert_eq!(msg["biz_opaque_callback_data"], "msg-1");
    assert_eq!(msg["template"]["name"], t["name"]);
    assert_eq!(msg["template"]["language"]["code"], t["language"]);
    let named = t["parameter_format"] == "NAMED";
    let auth = t["category"] == "AUTHENTICATION";
    let tcomps = t["components"].as_array().expect("components");
    let out: Vec<Value> = msg["template"]["components"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check_components(tcomps, &out, named, auth);
    // Offer.
    let lto = comp(tcomps, "LIMITED_TIME_OFFER");
    let wants_expiry = lto.is_some_and(|l| l["limited_time_offer"]["has_expiration"] == true);
    assert_eq!(comp(&out, "limited_time_offer").is_some(), wants_expiry);
    // Carousel.
    match comp(tcomps, "CAROUSEL") {
        None => assert!(comp(&out, "carousel").is_none()),
        Some(c) => {
            let tcards = c["cards"].as_array().expect("cards");
            let ocards = comp(&out, "carousel").expect("carousel")["cards"]
                .as_array()
                .expect("cards")
                .clone();
            assert_eq!(ocards.len(), tcards.len(), "card count");
            for (i, (tc, oc)) in tcards.iter().zip(&ocards).enumerate() {
                assert_eq!(oc["card_index"], i);
                check_components(
                    tc["components"].as_array().expect("components"),
                    oc["components"].as_array().expect("components"),
                    named,
                    false,
                );
            }
        }
    }
    // The SPM "View" button never appears; a product header does.
    if comp(tcomps, "HEADER").is_some_and(|h| h["format"] == "PRODUCT") {
        assert_eq!(
            comp(&out, "header").expect("header")["parameters"][0]["type"],
            "product"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_templates_are_valid(t in any_template()) {
        let tpl: Template = serde_json::from_value(t.clone()).expect("template json");
        let errs = tpl.validate().err();
        prop_assert!(errs.is_none(), "{t}\n{errs:#?}");
    }

    #[test]
    fn example_variables_always_expand(t in any_template()) {
        let tpl: Template = serde_json::from_value(t.clone()).expect("template json");
        let compiled = CompiledTemplate::new(tpl.clone()).expect("valid");
        let none = Variables::default();
        let ex = example_variables(&tpl, &none);
        // Through JSON, as the docs page hands it to integrators.
        let ex: Variables = serde_json::from_value(serde_json::to_value(&ex).expect("ser")).expect("reparse");
        let msg = compiled.expand(&none, &ex, "+1 650 555 1234", "msg-1");
        prop_assert!(msg.is_ok(), "{t}\n{}\n{:#?}", serde_json::to_string(&ex).unwrap_or_default(), msg.err());
        if let Ok(m) = msg {
            check_body_against_template(&t, &m.to_json_value());
        }
    }

    #[test]
    fn random_values_split_with_defaults_always_expand(t in any_template(), seed in 1u64..u64::MAX) {
        let tpl: Template = serde_json::from_value(t.clone()).expect("template json");
        let compiled = CompiledTemplate::new(tpl).expect("valid");
        let mut rng = Rng(seed);
        let full = random_full(&mut rng, compiled.spec());
        let (d, r) = split(&mut rng, full);
        let dv: Variables = serde_json::from_value(d.clone()).expect("defaults json");
        let rv: Variables = serde_json::from_value(r.clone()).expect("variables json");
        prop_assert!(compiled.check_defaults(&dv).is_ok(), "{d}");
        let msg = compiled.expand(&dv, &rv, "+16505551234", "msg-1");
        prop_assert!(msg.is_ok(), "{t}\nd={d}\nr={r}\n{:#?}", msg.err());
        if let Ok(m) = msg {
            let v = m.to_json_value();
            check_body_against_template(&t, &v);
            prop_assert!(!v.to_string().contains("overridden default"), "recipient must win: {v}");
            // Example variables built on these defaults also expand, with and without them.
            let ex = compiled.example_variables(&dv);
            prop_assert!(compiled.expand(&dv, &ex, "+16505551234", "msg-1").is_ok());
            prop_assert!(compiled.expand(&Variables::default(), &ex, "+16505551234", "msg-1").is_ok());
            // Leaving defaulted slots out gives the same body over the defaults.
            let min = compiled.example_variables_over_defaults(&dv);
            let full_body = compiled.expand(&dv, &ex, "+16505551234", "msg-1").map(|m| m.to_json_value());
            let min_body = compiled.expand(&dv, &min, "+16505551234", "msg-1").map(|m| m.to_json_value());
            prop_assert!(min_body.is_ok(), "d={d}\nmin={}\n{:#?}", serde_json::to_string(&min).unwrap_or_default(), min_body.as_ref().err());
            prop_assert_eq!(full_body.ok(), min_body.ok());
        }
    }
}

// ----------------------------------------------------------------------------------------------
// No input makes the library panic
// ----------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z{}0-9 \\n\\t_:/.é]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "image",
            "video",
            "document",
            "location",
            "product",
            "text",
            "currency",
            "date_time",
            "{{1}}",
            "{{",
            "}}",
            "https://x.example/{{1}}",
            "0",
            "1",
            "9",
            "10",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        let keys = prop::sample::select(vec![
            "type",
            "text",
            "link",
            "id",
            "filename",
            "latitude",
            "longitude",
            "name",
            "address",
            "product_retailer_id",
            "catalog_id",
            "index",
            "payload",
            "coupon_code",
            "flow_token",
            "flow_action_data",
            "header",
            "body",
            "buttons",
            "cards",
            "product",
            "sections",
            "product_items",
            "title",
            "thumbnail_product_retailer_id",
            "limited_time_offer",
            "expiration_time_ms",
            "currency",
            "date_time",
            "fallback_value",
            "code",
            "amount_1000",
            "first_name",
            "name_0",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..5).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn arb_variables() -> impl Strategy<Value = Value> {
    let slot = prop::sample::select(vec![
        "header",
        "body",
        "buttons",
        "cards",
        "product",
        "limited_time_offer",
    ]);
    prop::collection::vec((slot, arb_json()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_variables_never_panic(
        t in any_template(),
        d in arb_variables(),
        r in arb_variables(),
        to in "[+0-9 ()a-]{0,20}",
        cb in "[a-z0-9]{0,600}",
    ) {
        let tpl: Template = serde_json::from_value(t).expect("template json");
        let compiled = CompiledTemplate::new(tpl).expect("valid");
        let dv: Variables = serde_json::from_value(d).unwrap_or_default();
        let rv: Variables = serde_json::from_value(r).unwrap_or_default();
        let _ = compiled.check_defaults(&dv);
        if let Ok(m) = compiled.expand(&dv, &rv, &to, &cb) {
            let _ = m.to_json_vec();
        }
        let _ = compiled.example_variables(&dv);
        let _ = compiled.example_variables_over_defaults(&dv);
    }

    #[test]
    fn arbitrary_template_texts_never_panic(
        header in "[a-z{}0-9 _]{0,70}",
        body in "[a-z{}0-9 _é]{0,80}",
        url in "(https://)?[a-z{}0-9/]{0,20}",
        named in any::<bool>(),
    ) {
        let mut t = json!({"name": "fuzz", "language": "en", "category": "MARKETING", "components": [
            {"type": "HEADER", "format": "TEXT", "text": header},
            {"type": "BODY", "text": body},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Go", "url": url}]}]});
        if named {
            t["parameter_format"] = json!("NAMED");
        }
        let tpl: Template = serde_json::from_value(t).expect("template json");
        if let Ok(spec) = tpl.spec() {
            let ex = example_variables(&tpl, &Variables::default());
            let compiled = CompiledTemplate::new(tpl).expect("valid");
            prop_assert_eq!(compiled.spec(), &spec);
            prop_assert!(compiled.expand(&Variables::default(), &ex, "+16505551234", "").is_ok());
        }
    }
}
