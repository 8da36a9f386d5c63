//! Micro benchmark of expansion (no criterion): prints ns per operation.
//!
//! `cargo run --release -p ezpulze-payload --example bench_expand`

use ezpulze_payload::{expand, CompiledTemplate, Template, Variables};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;

/// On-CPU time of this thread in ns (Linux `schedstat`), so that other processes competing
/// for the cores do not inflate the figures; `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn time<F: FnMut()>(label: &str, iters: u32, mut f: F) {
    for _ in 0..iters / 10 {
        f();
    }
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let wall = start.elapsed().as_nanos() as f64 / f64::from(iters);
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:>9.0}", (b - a) as f64 / f64::from(iters)),
        _ => "        -".to_owned(),
    };
    println!("{label:<58} {cpu} ns/op on CPU {wall:>9.0} ns/op wall");
}

fn main() {
    let typical: Template = serde_json::from_value(json!({
        "name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} of {{3}} has shipped. Track it with the button below."},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
            {"type": "BUTTONS", "buttons": [
                {"type": "URL", "text": "Track", "url": "https://shop.example.com/track/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Stop"},
                {"type": "PHONE_NUMBER", "text": "Call us", "phone_number": "+16505550100"}]}]
    }))
    .expect("template");
    let defaults: Variables = serde_json::from_value(json!({
        "header": {"type": "image", "link": "https://cdn.example.com/banner.jpg"},
        "buttons": [{"index": 1, "payload": "STOP_campaign_842"}]
    }))
    .expect("defaults");
    let recipient_json = r##"{"body": ["Maria", "#4721", "$100.99"], "buttons": [{"index": 0, "text": "1Z999AA10123456784"}]}"##;
    let recipient: Variables = serde_json::from_str(recipient_json).expect("variables");
    let compiled = CompiledTemplate::new(typical.clone()).expect("valid");

    let n = 200_000;
    time("typical: CompiledTemplate::expand", n, || {
        let m = compiled.expand(&defaults, &recipient, "+16505551234", "01J9ZK3M7Q8R");
        black_box(m.is_ok());
    });
    time("typical: expand + serialise to bytes", n, || {
        if let Ok(m) = compiled.expand(&defaults, &recipient, "+16505551234", "01J9ZK3M7Q8R") {
            black_box(m.to_json_vec());
        }
    });
    if let Ok(m) = compiled.expand(&defaults, &recipient, "+16505551234", "01J9ZK3M7Q8R") {
        let bytes = m.to_json_vec();
        println!("typical body: {} bytes", bytes.len());
        time("typical: serialise an expanded message only", n, || {
            black_box(m.to_json_vec());
        });
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        time(
            "reference: serde_json::to_vec of the same body as a Value",
            n,
            || {
                black_box(serde_json::to_vec(&v).unwrap_or_default());
            },
        );
    }
    time(
        "typical: parse variables JSON + expand + serialise",
        n,
        || {
            if let Ok(r) = serde_json::from_str::<Variables>(recipient_json) {
                if let Ok(m) = compiled.expand(&defaults, &r, "+16505551234", "01J9ZK3M7Q8R") {
                    black_box(m.to_json_vec());
                }
            }
        },
    );
    let media_json = r##"{"header": {"type": "image", "link": "https://cdn.example.com/banner.jpg"}, "body": ["Maria", "#4721", "$100.99"], "buttons": [{"index": 0, "text": "1Z999AA10123456784"}]}"##;
    time("parse variables JSON with a media header", n, || {
        black_box(serde_json::from_str::<Variables>(media_json).is_ok());
    });
    time("parse variables JSON without header", n, || {
        black_box(serde_json::from_str::<Variables>(recipient_json).is_ok());
    });
    time(
        "typical: phone needing normalisation + expand + bytes",
        n,
        || {
            if let Ok(m) =
                compiled.expand(&defaults, &recipient, "+1 (650) 555-1234", "01J9ZK3M7Q8R")
            {
                black_box(m.to_json_vec());
            }
        },
    );
    time(
        "typical: free expand() (validates template each call)",
        n / 4,
        || {
            if let Ok(m) = expand(
                &typical,
                &defaults,
                &recipient,
                "+16505551234",
                "01J9ZK3M7Q8R",
            ) {
                black_box(m.to_json_vec());
            }
        },
    );

    let card = json!({"components": [{"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Only {{1}} today"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "More"},
            {"type": "URL", "text": "Buy", "url": "https://shop.example.com/p/{{1}}"}]}]});
    let carousel: Template = serde_json::from_value(json!({
        "name": "carousel_10", "language": "en_US", "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Hi {{1}}, picks for you"},
            {"type": "CAROUSEL", "cards": vec![card; 10]}]
    }))
    .expect("carousel");
    let cards: Vec<_> = (0..10)
        .map(|i| json!({"header": {"type": "image", "id": format!("12345{i}")}, "body": [format!("{i}0%")],
            "buttons": [{"index": 0, "payload": format!("more-{i}")}, {"index": 1, "text": format!("sku-{i}")}]}))
        .collect();
    let carousel_vars: Variables =
        serde_json::from_value(json!({"body": ["Maria"], "cards": cards})).expect("vars");
    let compiled_carousel = CompiledTemplate::new(carousel).expect("valid");
    let none = Variables::default();
    time("carousel, 10 cards: expand only", n / 4, || {
        let m = compiled_carousel.expand(&none, &carousel_vars, "+16505551234", "01J9ZK3M7Q8R");
        black_box(m.is_ok());
    });
    time(
        "carousel, 10 cards: expand + serialise to bytes",
        n / 4,
        || {
            if let Ok(m) =
                compiled_carousel.expand(&none, &carousel_vars, "+16505551234", "01J9ZK3M7Q8R")
            {
                black_box(m.to_json_vec());
            }
        },
    );
}
