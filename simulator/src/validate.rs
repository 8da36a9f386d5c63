//! Validation of `POST /{version}/{phone_number_id}/messages` bodies, the way Meta answers the
//! message kinds a bulk template sender uses. Written from Meta's documentation and examples,
//! independently of the engine's payload builder.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::config::{ButtonConfig, TemplateConfig};
use crate::graph_error::GraphError;

/// Max length of a header text parameter.
pub const HEADER_TEXT_MAX: usize = 60;
/// Max length of a body text parameter.
pub const BODY_TEXT_MAX: usize = 1024;
/// Max length of a dynamic URL suffix.
pub const URL_SUFFIX_MAX: usize = 2000;
/// Max length of a copy_code coupon.
pub const COUPON_MAX: usize = 15;
/// Max length of `biz_opaque_callback_data`.
pub const OPAQUE_MAX: usize = 512;

const BUTTON_SUB_TYPES: &[&str] = &[
    "booking_confirmation",
    "catalog",
    "copy_code",
    "flow",
    "mpm",
    "order_details",
    "quick_reply",
    "reminder",
    "url",
    "voice_call",
];

const OTHER_TYPES: &[&str] = &[
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "video",
];

/// Templates registered with the simulator.
#[derive(Debug, Default)]
pub struct TemplateBook {
    by_key: HashMap<(String, String), TemplateConfig>,
    names: HashSet<String>,
}

impl TemplateBook {
    pub fn new(templates: &[TemplateConfig]) -> Self {
        let mut by_key = HashMap::new();
        let mut names = HashSet::new();
        for t in templates {
            names.insert(t.name.clone());
            by_key.insert((t.name.clone(), t.language.clone()), t.clone());
        }
        Self { by_key, names }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn get(&self, name: &str, lang: &str) -> Option<&TemplateConfig> {
        // Avoids allocating a key for the common lookup by scanning only on a miss of names.
        if !self.names.contains(name) {
            return None;
        }
        self.by_key.get(&(name.to_owned(), lang.to_owned()))
    }
}

/// What a valid send request carries that the rest of the simulator needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// `to` exactly as sent (echoed as `contacts[].input`).
    pub input: String,
    /// Normalised recipient (digits only).
    pub wa_id: String,
    pub is_template: bool,
    pub category: Option<String>,
    pub biz_opaque: Option<String>,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn lower(v: &Value, key: &str) -> Option<String> {
    s(v, key).map(str::to_ascii_lowercase)
}

/// Checks the whole request body.
pub fn validate(body: &Value, book: &TemplateBook) -> Result<Validated, GraphError> {
    if !body.is_object() {
        return Err(GraphError::invalid_param(
            "The request body must be a JSON object.",
        ));
    }
    match body.get("messaging_product") {
        None | Some(Value::Null) => return Err(GraphError::required("messaging_product")),
        Some(Value::String(p)) if p.eq_ignore_ascii_case("whatsapp") => {}
        Some(other) => {
            return Err(GraphError::new(
                axum::http::StatusCode::BAD_REQUEST,
                100,
                format!(
                    "(#100) Param messaging_product must be one of {{WHATSAPP}} - got {other}."
                ),
                "messaging_product must be whatsapp",
            ))
        }
    }
    if let Some(rt) = body.get("recipient_type") {
        match rt.as_str() {
            Some("individual") | Some("group") => {}
            _ => {
                return Err(GraphError::invalid_param(
                    "recipient_type must be one of {individual, group}",
                ))
            }
        }
    }
    let input = match body.get("to") {
        None | Some(Value::Null) => return Err(GraphError::required("to")),
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(GraphError::invalid_param("Param to must be a string.")),
    };
    let wa_id = normalise_phone(&input)?;
    let biz_opaque = match body.get("biz_opaque_callback_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(b)) if b.chars().count() <= OPAQUE_MAX => Some(b.clone()),
        Some(Value::String(_)) => {
            return Err(GraphError::invalid_param(format!(
                "biz_opaque_callback_data is longer than {OPAQUE_MAX} characters"
            )))
        }
        Some(_) => {
            return Err(GraphError::invalid_param(
                "biz_opaque_callback_data must be a string",
            ))
        }
    };
    let kind = match body.get("type") {
        None | Some(Value::Null) => "text",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(GraphError::invalid_param("Param type must be a string.")),
    };
    let mut category = None;
    let is_template = match kind {
        "template" => {
            let t = body
                .get("template")
                .filter(|t| t.is_object())
                .ok_or_else(|| GraphError::required("template"))?;
            category = validate_template(t, book)?;
            true
        }
        "text" => {
            let text = body
                .get("text")
                .ok_or_else(|| GraphError::required("text"))?;
            match s(text, "body") {
                Some(b) if !b.is_empty() && b.chars().count() <= 4096 => {}
                Some(_) => {
                    return Err(GraphError::bad_value(
                        "text['body'] must be 1 to 4096 characters",
                    ))
                }
                None => return Err(GraphError::required("text['body']")),
            }
            false
        }
        other if OTHER_TYPES.contains(&other) => {
            if !body.get(other).is_some_and(Value::is_object) {
                return Err(GraphError::required(other));
            }
            false
        }
        other => {
            return Err(GraphError::new(
                axum::http::StatusCode::BAD_REQUEST,
                131051,
                "(#131051) Message type unknown",
                format!("Unsupported message type: {other}"),
            ))
        }
    };
    Ok(Validated {
        input,
        wa_id,
        is_template,
        category,
        biz_opaque,
    })
}

/// `+16505551234` / `16505551234` / `+1 (650) 555-1234` -> `16505551234`; 8 to 15 digits.
/// Meta accepts `+`, hyphens, parentheses and spaces in `to` and answers the digits as `wa_id`.
pub fn normalise_phone(to: &str) -> Result<String, GraphError> {
    let body = to.trim().strip_prefix('+').unwrap_or(to.trim());
    let mut digits = String::with_capacity(body.len());
    let mut ok = true;
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '-' | '(' | ')' | ' ' => {}
            _ => ok = false,
        }
    }
    if ok && (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
        Ok(digits)
    } else {
        Err(GraphError::invalid_param(
            "Invalid parameter: 'to' must be a phone number in international format (8 to 15 digits, optional leading +).",
        ))
    }
}

/// Validates `template` and returns the registered category, if any.
fn validate_template(t: &Value, book: &TemplateBook) -> Result<Option<String>, GraphError> {
    let name = match t.get("name") {
        None | Some(Value::Null) => return Err(GraphError::required("template['name']")),
        Some(Value::String(n)) if !n.is_empty() && n.len() <= 512 => n.as_str(),
        Some(_) => {
            return Err(GraphError::invalid_param(
                "template['name'] must be a string of 1 to 512 characters",
            ))
        }
    };
    let language = t
        .get("language")
        .ok_or_else(|| GraphError::required("template['language']"))?;
    let code = match language.get("code") {
        Some(Value::String(c)) if !c.is_empty() => c.as_str(),
        None | Some(Value::Null) => {
            return Err(GraphError::required("template['language']['code']"))
        }
        Some(_) => {
            return Err(GraphError::invalid_param(
                "template['language']['code'] must be a string",
            ))
        }
    };
    if let Some(p) = language.get("policy") {
        if p.as_str() != Some("deterministic") {
            return Err(GraphError::invalid_param(
                "template['language']['policy'] must be one of {DETERMINISTIC}",
            ));
        }
    }
    let registered = if book.is_empty() {
        None
    } else {
        Some(
            book.get(name, code)
                .ok_or_else(|| GraphError::no_template(name, code))?,
        )
    };
    let components: &[Value] = match t.get("components") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(GraphError::invalid_param(
                "template['components'] must be an array",
            ))
        }
    };
    let sent = collect_components(components, "template['components']", false)?;
    check_name_style(
        &sent,
        registered.and_then(|r| r.parameter_format.as_deref()),
    )?;
    if let Some(reg) = registered {
        check_against(&sent, reg)?;
    }
    Ok(registered.and_then(|r| r.category.clone()))
}

/// What a list of components carried.
#[derive(Debug, Default)]
struct Sent {
    /// (kind, param count) of the header, if one was sent.
    header: Option<(&'static str, usize)>,
    body_params: usize,
    /// `parameter_name` of each header and body parameter (None = positional).
    header_names: Vec<Option<String>>,
    body_names: Vec<Option<String>>,
    /// index -> sub_type (lower case)
    buttons: Vec<(u32, String)>,
    /// Cards of a carousel component, if one was sent.
    cards: Option<Vec<Sent>>,
}

fn bad_type(path: &str, allowed: &str, got: &str) -> GraphError {
    GraphError::invalid_param(format!(
        "Param {path}['type'] must be one of {{{allowed}}} - got \"{got}\"."
    ))
}

/// `bad_type` with the types allowed where the value stands: `[at the top, in a card]`.
fn bad_type_here(path: &str, [top, card]: [&str; 2], in_card: bool, got: &str) -> GraphError {
    bad_type(path, if in_card { card } else { top }, got)
}

fn collect_components(components: &[Value], base: &str, in_card: bool) -> Result<Sent, GraphError> {
    let mut sent = Sent::default();
    let mut seen_body = false;
    for (i, c) in components.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let kind =
            lower(c, "type").ok_or_else(|| GraphError::required(&format!("{path}['type']")))?;
        let params: &[Value] = match c.get("parameters") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(GraphError::invalid_param(format!(
                    "{path}['parameters'] must be an array"
                )))
            }
        };
        match kind.as_str() {
            "header" => {
                if sent.header.is_some() {
                    return Err(GraphError::invalid_param(format!(
                        "{path}: duplicate header component"
                    )));
                }
                sent.header = Some(check_header(params, &path, in_card)?);
                sent.header_names = param_names(params, "header")?;
            }
            "body" => {
                if seen_body {
                    return Err(GraphError::invalid_param(format!(
                        "{path}: duplicate body component"
                    )));
                }
                seen_body = true;
                sent.body_params = check_body(params, &path)?;
                sent.body_names = param_names(params, "body")?;
            }
            "button" => {
                let (index, sub) = check_button(c, params, &path)?;
                if sent.buttons.iter().any(|(j, _)| *j == index) {
                    return Err(GraphError::invalid_param(format!(
                        "{path}: more than one button component with index {index}"
                    )));
                }
                sent.buttons.push((index, sub));
            }
            "carousel" if !in_card => {
                if sent.cards.is_some() {
                    return Err(GraphError::invalid_param(format!(
                        "{path}: duplicate carousel component"
                    )));
                }
                sent.cards = Some(check_carousel(c, &path)?);
            }
            "limited_time_offer" if !in_card => check_lto(params, &path)?,
            other => {
                let allowed = [
                    "BODY, BUTTON, CAROUSEL, HEADER, LIMITED_TIME_OFFER",
                    "BODY, BUTTON, HEADER",
                ];
                return Err(bad_type_here(&path, allowed, in_card, other));
            }
        }
    }
    Ok(sent)
}

/// Text hygiene shared by header and body text parameters.
fn check_text(v: &Value, path: &str, max: usize) -> Result<(), GraphError> {
    let text = match v.get("text") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => {
            return Err(GraphError::missing(format!(
                "{path}: Parameter of type text is missing text value"
            )))
        }
        Some(_) => {
            return Err(GraphError::bad_value(format!(
                "{path}['text'] must be a string"
            )))
        }
    };
    if text.is_empty() {
        return Err(GraphError::missing(format!(
            "{path}: Parameter of type text is missing text value"
        )));
    }
    if text.contains(['\n', '\r', '\t']) || text.contains("     ") {
        return Err(GraphError::param_issue(
            "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
        ));
    }
    let n = text.chars().count();
    if n > max {
        return Err(GraphError::bad_value(format!(
            "{path}: Param text is {n} characters long; the maximum is {max}"
        )));
    }
    Ok(())
}

fn media_ok(v: &Value, kind: &str, path: &str) -> Result<(), GraphError> {
    let m = v.get(kind).filter(|m| m.is_object()).ok_or_else(|| {
        GraphError::missing(format!(
            "{path}: Parameter of type {kind} is missing {kind} value"
        ))
    })?;
    let has = |k: &str| s(m, k).is_some_and(|x| !x.is_empty());
    if !(has("link") || has("id")) {
        return Err(GraphError::missing(format!(
            "{path}['{kind}']: one of link or id is required"
        )));
    }
    Ok(())
}

fn check_header(
    params: &[Value],
    path: &str,
    in_card: bool,
) -> Result<(&'static str, usize), GraphError> {
    if params.len() > 1 {
        return Err(GraphError::param_count(format!(
            "header: number of localizable_params ({}) does not match the expected number of params (1)",
            params.len()
        )));
    }
    let Some(p) = params.first() else {
        return Err(GraphError::format_mismatch(
            "header: Format mismatch, expected a header parameter, received UNKNOWN",
        ));
    };
    let ppath = format!("{path}['parameters'][0]");
    let kind = lower(p, "type").ok_or_else(|| GraphError::required(&format!("{ppath}['type']")))?;
    let kind: &'static str = match kind.as_str() {
        "text" if !in_card => {
            check_text(p, &ppath, HEADER_TEXT_MAX)?;
            "text"
        }
        "image" => "image",
        "video" => "video",
        "document" if !in_card => "document",
        "location" if !in_card => {
            let l = p.get("location").ok_or_else(|| {
                GraphError::missing(format!(
                    "{ppath}: Parameter of type location is missing location value"
                ))
            })?;
            for k in ["latitude", "longitude"] {
                if !l.get(k).is_some_and(|x| {
                    x.is_number() || x.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
                }) {
                    return Err(GraphError::missing(format!(
                        "{ppath}['location']['{k}'] is required"
                    )));
                }
            }
            for k in ["name", "address"] {
                if s(l, k).is_none_or(str::is_empty) {
                    return Err(GraphError::missing(format!(
                        "{ppath}['location']['{k}'] is required"
                    )));
                }
            }
            "location"
        }
        "product" => {
            let pr = p.get("product").ok_or_else(|| {
                GraphError::missing(format!(
                    "{ppath}: Parameter of type product is missing product value"
                ))
            })?;
            for k in ["product_retailer_id", "catalog_id"] {
                if s(pr, k).is_none_or(str::is_empty) {
                    return Err(GraphError::missing(format!(
                        "{ppath}['product']['{k}'] is required"
                    )));
                }
            }
            "product"
        }
        other => {
            let allowed = [
                "DOCUMENT, IMAGE, LOCATION, PRODUCT, TEXT, VIDEO",
                "IMAGE, PRODUCT, VIDEO",
            ];
            return Err(bad_type_here(&ppath, allowed, in_card, other));
        }
    };
    if matches!(kind, "image" | "video" | "document") {
        media_ok(p, kind, &ppath)?;
    }
    Ok((kind, params.len()))
}

/// The `parameter_name` of each variable parameter (text, currency, date_time; media and
/// product parameters have no names); names must be unique within a component.
fn param_names(params: &[Value], what: &str) -> Result<Vec<Option<String>>, GraphError> {
    let mut out: Vec<Option<String>> = Vec::with_capacity(params.len());
    for p in params {
        let kind = s(p, "type").unwrap_or_default();
        if !["text", "currency", "date_time"]
            .iter()
            .any(|k| kind.eq_ignore_ascii_case(k))
        {
            continue;
        }
        let name = match p.get("parameter_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if !n.is_empty() => Some(n.clone()),
            Some(_) => {
                return Err(GraphError::bad_value(format!(
                    "{what}: parameter_name must be a non-empty string"
                )))
            }
        };
        if name.is_some() && out.contains(&name) {
            return Err(GraphError::bad_value(format!(
                "{what}: parameter_name {:?} is used twice",
                name.unwrap_or_default()
            )));
        }
        out.push(name);
    }
    Ok(out)
}

/// Header and body use one style: all parameters named, or none.
fn check_name_style(sent: &Sent, format: Option<&str>) -> Result<(), GraphError> {
    let all = sent.header_names.iter().chain(&sent.body_names);
    let named = all.clone().filter(|n| n.is_some()).count();
    let total = all.count();
    match format.map(str::to_ascii_lowercase).as_deref() {
        Some("named") if named < total => Err(GraphError::missing(
            "parameter_name is required on every header and body parameter of a NAMED template",
        )),
        Some("positional") if named > 0 => Err(GraphError::bad_value(
            "parameter_name is not expected for a POSITIONAL template",
        )),
        _ if named > 0 && named < total => Err(GraphError::bad_value(
            "header and body parameters must all be named or all be positional",
        )),
        _ => Ok(()),
    }
}

/// The `kind` object of a currency or date/time parameter, which needs a `fallback_value`.
fn with_fallback<'a>(p: &'a Value, ppath: &str, kind: &str) -> Result<&'a Value, GraphError> {
    let v = p.get(kind).ok_or_else(|| {
        GraphError::missing(format!(
            "{ppath}: Parameter of type {kind} is missing {kind} value"
        ))
    })?;
    if s(v, "fallback_value").is_none_or(str::is_empty) {
        return Err(GraphError::missing(format!(
            "{ppath}['{kind}']['fallback_value'] is required"
        )));
    }
    Ok(v)
}

fn check_body(params: &[Value], path: &str) -> Result<usize, GraphError> {
    for (j, p) in params.iter().enumerate() {
        let ppath = format!("{path}['parameters'][{j}]");
        let kind =
            lower(p, "type").ok_or_else(|| GraphError::required(&format!("{ppath}['type']")))?;
        match kind.as_str() {
            "text" => check_text(p, &ppath, BODY_TEXT_MAX)?,
            "currency" => {
                let c = with_fallback(p, &ppath, "currency")?;
                if s(c, "code").is_none_or(|x| x.len() != 3) {
                    return Err(GraphError::bad_value(format!(
                        "{ppath}['currency']['code'] must be an ISO 4217 code"
                    )));
                }
                if !c
                    .get("amount_1000")
                    .is_some_and(|a| a.is_i64() || a.is_u64())
                {
                    return Err(GraphError::bad_value(format!(
                        "{ppath}['currency']['amount_1000'] must be an integer"
                    )));
                }
            }
            "date_time" => {
                with_fallback(p, &ppath, "date_time")?;
            }
            other => return Err(bad_type(&ppath, "CURRENCY, DATE_TIME, TEXT", other)),
        }
    }
    Ok(params.len())
}

fn parse_index(v: Option<&Value>, path: &str) -> Result<u32, GraphError> {
    let idx = match v {
        None | Some(Value::Null) => return Err(GraphError::required(&format!("{path}['index']"))),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<u64>().ok()
        }
        Some(_) => None,
    };
    match idx {
        Some(i) if i <= 9 => Ok(i as u32),
        _ => Err(GraphError::invalid_param(format!(
            "Param {path}['index'] must be an integer between 0 and 9"
        ))),
    }
}

fn one_param<'a>(params: &'a [Value], path: &str, what: &str) -> Result<&'a Value, GraphError> {
    match params {
        [p] => Ok(p),
        [] => Err(GraphError::missing(format!(
            "{path}: a {what} button requires one parameter"
        ))),
        _ => Err(GraphError::param_count(format!(
            "{path}: a {what} button takes one parameter, received {}",
            params.len()
        ))),
    }
}

fn param_kind(p: &Value, path: &str) -> Result<String, GraphError> {
    lower(p, "type")
        .ok_or_else(|| GraphError::required(&format!("{path}['parameters'][0]['type']")))
}

/// The one parameter of a `what` button, which must be of type `kind`.
fn typed_param<'a>(
    params: &'a [Value],
    path: &str,
    what: &str,
    kind: &str,
) -> Result<&'a Value, GraphError> {
    let p = one_param(params, path, what)?;
    let got = param_kind(p, path)?;
    if got != kind {
        return Err(bad_type(
            &format!("{path}['parameters'][0]"),
            &kind.to_ascii_uppercase(),
            &got,
        ));
    }
    Ok(p)
}

/// The non-empty text of `p[field]` (a parameter of type `field`), at most `max` characters;
/// `label` names it in the error.
fn bounded_text<'a>(
    p: &'a Value,
    path: &str,
    field: &str,
    label: &str,
    max: usize,
) -> Result<&'a str, GraphError> {
    match s(p, field) {
        Some(t) if !t.is_empty() && t.chars().count() <= max => Ok(t),
        Some(t) if !t.is_empty() => Err(GraphError::bad_value(format!(
            "{path}: {label} longer than {max} characters"
        ))),
        _ => Err(GraphError::missing(format!(
            "{path}: Parameter of type {field} is missing {field} value"
        ))),
    }
}

fn check_button(c: &Value, params: &[Value], path: &str) -> Result<(u32, String), GraphError> {
    let sub = match c.get("sub_type") {
        None | Some(Value::Null) => {
            return Err(GraphError::required(&format!("{path}['sub_type']")))
        }
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(other) => other.to_string(),
    };
    if !BUTTON_SUB_TYPES.contains(&sub.as_str()) {
        return Err(GraphError::new(
            axum::http::StatusCode::BAD_REQUEST,
            100,
            format!(
                "(#100) Param {path}['sub_type'] must be one of {{BOOKING_CONFIRMATION, CATALOG, COPY_CODE, FLOW, MPM, ORDER_DETAILS, QUICK_REPLY, REMINDER, URL, VOICE_CALL}} - got \"{sub}\"."
            ),
            format!("Invalid button sub_type \"{sub}\""),
        ));
    }
    let index = parse_index(c.get("index"), path)?;
    match sub.as_str() {
        "quick_reply" => {
            let p = one_param(params, path, "quick_reply")?;
            match param_kind(p, path)?.as_str() {
                "payload" => {
                    if !p
                        .get("payload")
                        .is_some_and(|x| x.is_string() || x.is_number() || x.is_boolean())
                    {
                        return Err(GraphError::missing(format!(
                            "{path}: Parameter of type payload is missing payload value"
                        )));
                    }
                }
                "text" => {
                    if p.get("text").is_none_or(Value::is_null) {
                        return Err(GraphError::missing(format!(
                            "{path}: Parameter of type text is missing text value"
                        )));
                    }
                }
                other => {
                    return Err(bad_type(
                        &format!("{path}['parameters'][0]"),
                        "PAYLOAD, TEXT",
                        other,
                    ))
                }
            }
        }
        "url" => {
            let p = typed_param(params, path, "url", "text")?;
            let t = bounded_text(p, path, "text", "URL suffix", URL_SUFFIX_MAX)?;
            if t.contains(['\n', '\r', '\t', ' ']) {
                return Err(GraphError::bad_value(format!(
                    "{path}: a URL suffix cannot contain whitespace"
                )));
            }
        }
        "copy_code" => {
            let p = typed_param(params, path, "copy_code", "coupon_code")?;
            bounded_text(p, path, "coupon_code", "coupon_code", COUPON_MAX)?;
        }
        "flow" | "catalog" => {
            for (j, p) in params.iter().enumerate() {
                let kind = lower(p, "type").unwrap_or_default();
                if kind != "action" {
                    return Err(bad_type(
                        &format!("{path}['parameters'][{j}]"),
                        "ACTION",
                        &kind,
                    ));
                }
                if !p.get("action").is_some_and(Value::is_object) {
                    return Err(GraphError::missing(format!(
                        "{path}: Parameter of type action is missing action value"
                    )));
                }
            }
        }
        "mpm" => {
            let p = typed_param(params, path, "mpm", "action")?;
            let a = p.get("action").ok_or_else(|| {
                GraphError::missing(format!(
                    "{path}: Parameter of type action is missing action value"
                ))
            })?;
            check_mpm(a, path)?;
        }
        _ => {}
    }
    Ok((index, sub))
}

/// The array `v[key]`, or a missing-parameter error naming `field()` as required.
fn required_array<'a>(
    v: &'a Value,
    key: &str,
    field: impl FnOnce() -> String,
) -> Result<&'a Vec<Value>, GraphError> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::missing(format!("{} is required", field())))
}

fn check_mpm(a: &Value, path: &str) -> Result<(), GraphError> {
    if s(a, "thumbnail_product_retailer_id").is_none_or(str::is_empty) {
        return Err(GraphError::missing(format!(
            "{path}: action['thumbnail_product_retailer_id'] is required"
        )));
    }
    let sections = required_array(a, "sections", || format!("{path}: action['sections']"))?;
    if sections.is_empty() || sections.len() > 10 {
        return Err(GraphError::bad_value(format!(
            "{path}: 1 to 10 sections are allowed"
        )));
    }
    let mut total = 0usize;
    for sec in sections {
        let items = sec
            .get("product_items")
            .and_then(Value::as_array)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                GraphError::missing(format!("{path}: every section needs product_items"))
            })?;
        if items
            .iter()
            .any(|i| s(i, "product_retailer_id").is_none_or(str::is_empty))
        {
            return Err(GraphError::missing(format!(
                "{path}: product_items need a product_retailer_id"
            )));
        }
        total += items.len();
        if sections.len() > 1 && s(sec, "title").is_none_or(str::is_empty) {
            return Err(GraphError::missing(format!(
                "{path}: section titles are required when there is more than one section"
            )));
        }
    }
    if total > 30 {
        return Err(GraphError::bad_value(format!(
            "{path}: at most 30 products in total, got {total}"
        )));
    }
    Ok(())
}

fn check_lto(params: &[Value], path: &str) -> Result<(), GraphError> {
    for p in params {
        if let Some(ms) = p
            .get("limited_time_offer")
            .and_then(|l| l.get("expiration_time_ms"))
        {
            match ms.as_i64() {
                Some(v) if v >= 1_000_000_000_000 => {}
                _ => {
                    return Err(GraphError::bad_value(format!(
                        "{path}: expiration_time_ms must be a Unix timestamp in milliseconds"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn check_carousel(c: &Value, path: &str) -> Result<Vec<Sent>, GraphError> {
    let cards = required_array(c, "cards", || format!("{path}['cards']"))?;
    if cards.is_empty() || cards.len() > 10 {
        return Err(GraphError::bad_value(format!(
            "{path}: a carousel has 1 to 10 cards, received {}",
            cards.len()
        )));
    }
    let mut out: Vec<Option<Sent>> = (0..cards.len()).map(|_| None).collect();
    for (i, card) in cards.iter().enumerate() {
        let cpath = format!("{path}['cards'][{i}]");
        let idx = match card.get("card_index") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            None | Some(Value::Null) => {
                return Err(GraphError::required(&format!("{cpath}['card_index']")))
            }
            _ => None,
        };
        let idx = match idx {
            Some(i) if (i as usize) < cards.len() => i as usize,
            _ => {
                return Err(GraphError::invalid_param(format!(
                    "{cpath}['card_index'] must be an integer from 0 to {}",
                    cards.len() - 1
                )))
            }
        };
        let comps = required_array(card, "components", || format!("{cpath}['components']"))?;
        let sent = collect_components(comps, &format!("{cpath}['components']"), true)?;
        if sent.header.is_none() {
            return Err(GraphError::format_mismatch(format!(
                "{cpath}: header: Format mismatch, expected IMAGE, VIDEO or PRODUCT, received UNKNOWN"
            )));
        }
        let slot = out
            .get_mut(idx)
            .ok_or_else(|| GraphError::invalid_param("card_index out of range"))?;
        if slot.is_some() {
            return Err(GraphError::invalid_param(format!(
                "{cpath}: card_index {idx} is used twice"
            )));
        }
        *slot = Some(sent);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Compares what was sent with the registered template.
fn check_against(sent: &Sent, reg: &TemplateConfig) -> Result<(), GraphError> {
    let hf = reg.header_format.to_ascii_lowercase();
    let expected_header = reg.header_param_count() as usize;
    match (&sent.header, hf.as_str()) {
        (None, "none") => {}
        (None, "text") if expected_header == 0 => {}
        (Some((_, n)), "none") => {
            return Err(GraphError::param_count(format!(
                "header: number of localizable_params ({n}) does not match the expected number of params (0)"
            )))
        }
        (None, "text") => {
            return Err(GraphError::param_count(format!(
                "header: number of localizable_params (0) does not match the expected number of params ({expected_header})"
            )))
        }
        (None, f) => {
            return Err(GraphError::format_mismatch(format!(
                "header: Format mismatch, expected {}, received UNKNOWN",
                f.to_ascii_uppercase()
            )))
        }
        (Some((kind, n)), f) => {
            if *kind != f {
                return Err(GraphError::format_mismatch(format!(
                    "header: Format mismatch, expected {}, received {}",
                    f.to_ascii_uppercase(),
                    kind.to_ascii_uppercase()
                )));
            }
            if *n != expected_header {
                return Err(GraphError::param_count(format!(
                    "header: number of localizable_params ({n}) does not match the expected number of params ({expected_header})"
                )));
            }
        }
    }
    if let Some(names) = &reg.body_param_names {
        for n in sent.body_names.iter().flatten() {
            if !names.contains(n) {
                return Err(GraphError::bad_value(format!(
                    "body: the template has no parameter named {n:?}"
                )));
            }
        }
    }
    if sent.body_params != reg.body_params as usize {
        return Err(GraphError::param_count(format!(
            "body: number of localizable_params ({}) does not match the expected number of params ({})",
            sent.body_params, reg.body_params
        )));
    }
    check_buttons(&sent.buttons, &reg.buttons, "buttons")?;
    let n_cards = sent.cards.as_ref().map_or(0, Vec::len);
    if n_cards != reg.cards as usize {
        return Err(GraphError::format_mismatch(format!(
            "carousel: number of cards ({n_cards}) does not match the number of cards in the created template ({})",
            reg.cards
        )));
    }
    let card_header = reg.card_header_format.to_ascii_lowercase();
    for (i, card) in sent.cards.iter().flatten().enumerate() {
        if let Some((kind, _)) = card.header {
            if kind != card_header {
                return Err(GraphError::format_mismatch(format!(
                    "cards[{i}].header: Format mismatch, expected {}, received {}",
                    card_header.to_ascii_uppercase(),
                    kind.to_ascii_uppercase()
                )));
            }
        }
        if let Some(expected) = reg.card_body_params {
            if card.body_params != expected as usize {
                return Err(GraphError::param_count(format!(
                    "cards[{i}].body: number of localizable_params ({}) does not match the expected number of params ({expected})",
                    card.body_params
                )));
            }
        }
        check_buttons(
            &card.buttons,
            &reg.card_buttons,
            &format!("cards[{i}].buttons"),
        )?;
    }
    Ok(())
}

fn check_buttons(
    sent: &[(u32, String)],
    reg: &[ButtonConfig],
    what: &str,
) -> Result<(), GraphError> {
    for (index, sub) in sent {
        match reg.iter().find(|b| b.index == *index) {
            None => {
                return Err(GraphError::bad_value(format!(
                    "{what}: the template has no button taking parameters at index {index}"
                )))
            }
            Some(b) if !b.sub_type.eq_ignore_ascii_case(sub) => {
                return Err(GraphError::format_mismatch(format!(
                    "{what}: Format mismatch at index {index}, expected {}, received {}",
                    b.sub_type.to_ascii_uppercase(),
                    sub.to_ascii_uppercase()
                )))
            }
            Some(_) => {}
        }
    }
    for b in reg.iter().filter(|b| b.is_required()) {
        if !sent.iter().any(|(i, _)| *i == b.index) {
            return Err(GraphError::missing(format!(
                "{what}: Button at index {} of type {} requires a parameter",
                b.index,
                b.sub_type.to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}
