//! Template validation: [`Template::validate`] and [`Template::spec`], the template-level rules
//! (name, language, which components go together) and the helpers the component checks share.

mod buttons;
mod carousel;
mod components;

use super::limits::{MAX_BODY_TEXT, MAX_CARDS, MAX_LTO_TEXT, MAX_NAME, MIN_CARDS};
use super::model::{Button, Category, Component, HeaderFormat, ParameterFormat, Template};
use super::spec::{ButtonKind, ProductNeeds, TemplateSpec};
use super::text::char_len;
use crate::error::{ErrorCode, Errors, FieldError};
use buttons::{analyze_buttons, ButtonsPlace};
use carousel::{analyze_card, CardShape};
use components::{analyze_body, analyze_footer, analyze_header};

impl Template {
    /// Validates the definition; errors carry field paths such as `components[2].buttons[0].url`.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        self.spec().map(|_| ())
    }

    /// Validates the definition and summarises the runtime values it needs.
    pub fn spec(&self) -> Result<TemplateSpec, Vec<FieldError>> {
        let mut errs = Errors::default();
        let spec = analyze(self, &mut errs);
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs.0)
        }
    }
}

fn is_language_code(s: &str) -> bool {
    let (lang, region) = match s.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (s, None),
    };
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| {
        (2..=4).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    });
    lang_ok && region_ok
}

fn check_len(errs: &mut Errors, path: &str, s: &str, max: usize, what: &str) {
    let n = char_len(s);
    if n > max {
        errs.push(
            path,
            ErrorCode::TooLong,
            format!("{what} has {n} characters; at most {max} are allowed"),
        );
    }
}

fn check_nonempty(errs: &mut Errors, path: &str, s: &str, what: &str) -> bool {
    if s.trim().is_empty() {
        errs.push(
            path,
            ErrorCode::Required,
            format!("{what} must not be empty"),
        );
        false
    } else {
        true
    }
}

struct Ctx {
    format: ParameterFormat,
    category: Category,
}

fn analyze(t: &Template, errs: &mut Errors) -> TemplateSpec {
    let mut spec = TemplateSpec {
        parameter_format: t.parameter_format,
        authentication: t.category == Category::Authentication,
        ..TemplateSpec::default()
    };
    let ctx = Ctx {
        format: t.parameter_format,
        category: t.category,
    };

    if t.name.is_empty() {
        errs.push("name", ErrorCode::Required, "name must not be empty");
    } else if t.name.len() > MAX_NAME {
        errs.push(
            "name",
            ErrorCode::TooLong,
            "name has more than 512 characters",
        );
    } else if !t
        .name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errs.push(
            "name",
            ErrorCode::InvalidValue,
            "name may contain only lowercase letters, digits and underscores",
        );
    }
    if !is_language_code(&t.language) {
        errs.push(
            "language",
            ErrorCode::InvalidValue,
            "language must be a locale code such as en, en_US or pt_BR",
        );
    }

    let mut seen: Vec<&'static str> = Vec::new();
    let mut has_body = false;
    let mut has_footer = false;
    let mut header_format = None;
    let mut top_button_types: Vec<&'static str> = Vec::new();
    let mut has_carousel = false;
    for (i, comp) in t.components.iter().enumerate() {
        let path = format!("components[{i}]");
        let name = comp.type_name();
        if seen.contains(&name) {
            errs.push(
                &path,
                ErrorCode::Duplicate,
                format!("a template has at most one {name} component"),
            );
            continue;
        }
        seen.push(name);
        match comp {
            Component::Header(h) => {
                header_format = Some(h.format);
                if t.category == Category::Authentication {
                    errs.push(
                        &path,
                        ErrorCode::NotAllowed,
                        "authentication templates have no header",
                    );
                }
                spec.header = analyze_header(h, &ctx, &path, errs);
            }
            Component::Body(b) => {
                has_body = true;
                spec.body = analyze_body(b, &ctx, MAX_BODY_TEXT, &path, errs);
            }
            Component::Footer(f) => {
                has_footer = true;
                analyze_footer(f, &ctx, &path, errs);
            }
            Component::Buttons(b) => {
                top_button_types = b.buttons.iter().map(Button::type_name).collect();
                spec.buttons = analyze_buttons(b, &ctx, ButtonsPlace::Top, &path, errs);
            }
            Component::Carousel(c) => {
                has_carousel = true;
                let cpath = format!("{path}.cards");
                if c.cards.len() < MIN_CARDS || c.cards.len() > MAX_CARDS {
                    errs.push(
                        &cpath,
                        ErrorCode::CardCount,
                        format!(
                            "a carousel has {MIN_CARDS} to {MAX_CARDS} cards; found {}",
                            c.cards.len()
                        ),
                    );
                }
                let mut first_shape: Option<CardShape> = None;
                for (j, card) in c.cards.iter().enumerate() {
                    let kpath = format!("{cpath}[{j}]");
                    let (cs, shape) = analyze_card(card, &ctx, &kpath, errs);
                    match &first_shape {
                        None => first_shape = Some(shape),
                        Some(first) if *first != shape => errs.push(
                            &kpath,
                            ErrorCode::InvalidValue,
                            "every card must have the same header format, body presence and buttons as the first card",
                        ),
                        Some(_) => {}
                    }
                    spec.cards.push(cs);
                }
            }
            Component::LimitedTimeOffer(l) => {
                let lpath = format!("{path}.limited_time_offer.text");
                if check_nonempty(errs, &lpath, &l.limited_time_offer.text, "offer text") {
                    check_len(
                        errs,
                        &lpath,
                        &l.limited_time_offer.text,
                        MAX_LTO_TEXT,
                        "offer text",
                    );
                }
                if t.category != Category::Marketing {
                    errs.push(
                        &path,
                        ErrorCode::NotAllowed,
                        "limited-time offers are MARKETING templates",
                    );
                }
                spec.limited_time_offer = Some(l.limited_time_offer.has_expiration);
            }
        }
    }
    if !has_body {
        errs.push(
            "components",
            ErrorCode::Required,
            "a template needs a BODY component",
        );
    }
    if has_carousel {
        for (i, comp) in t.components.iter().enumerate() {
            if !matches!(comp, Component::Body(_) | Component::Carousel(_)) {
                errs.push(
                    format!("components[{i}]"),
                    ErrorCode::NotAllowed,
                    format!(
                        "a carousel template has only BODY and CAROUSEL; {} is not allowed",
                        comp.type_name()
                    ),
                );
            }
        }
    }
    if spec.limited_time_offer.is_some() && has_footer {
        errs.push(
            "components",
            ErrorCode::NotAllowed,
            "a limited-time-offer template has no footer",
        );
    }
    if t.category == Category::Authentication
        && !spec.buttons.iter().any(|b| b.kind == ButtonKind::Otp)
    {
        errs.push(
            "components",
            ErrorCode::Required,
            "an authentication template needs an OTP button",
        );
    }
    let has_spm = top_button_types.contains(&"SPM");
    if header_format == Some(HeaderFormat::Product) && !has_spm {
        errs.push(
            "components",
            ErrorCode::Required,
            "a PRODUCT header goes with an SPM button",
        );
    }
    if has_spm && header_format != Some(HeaderFormat::Product) {
        errs.push(
            "components",
            ErrorCode::Required,
            "an SPM button needs a PRODUCT header",
        );
    }
    spec.product = ProductNeeds {
        header_product: header_format == Some(HeaderFormat::Product),
        mpm: top_button_types.contains(&"MPM"),
        catalog: top_button_types.contains(&"CATALOG"),
    };
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::test_support::{codes, t};
    use serde_json::json;

    #[test]
    fn language_codes() {
        for ok in ["en", "en_US", "pt_BR", "fil", "es_LA", "zh_HK"] {
            assert!(is_language_code(ok), "{ok}");
        }
        for bad in ["", "EN", "en-US", "en_us", "english", "e"] {
            assert!(!is_language_code(bad), "{bad}");
        }
    }

    #[test]
    fn many_errors_with_paths() {
        let long = "x".repeat(61);
        let tpl = t(
            json!({"name":"Bad Name","language":"english","category":"MARKETING","components":[
                {"type":"HEADER","format":"TEXT","text": long},
                {"type":"FOOTER","text":"f {{1}}"},
                {"type":"BUTTONS","buttons":[
                    {"type":"URL","text":"Go","url":"ftp://x/{{1}}"},
                    {"type":"URL","text":"Go","url":"https://x/{{1}}/y"},
                    {"type":"URL","text":"This label is far too long to fit","url":"https://x"},
                    {"type":"COPY_CODE","example":"THIS_IS_TOO_LONG_CODE"}
                ]}
            ]}),
        );
        let c = codes(&tpl);
        let want = [
            ("name", ErrorCode::InvalidValue),
            ("language", ErrorCode::InvalidValue),
            ("components[0].text", ErrorCode::TooLong),
            ("components[1].text", ErrorCode::NotAllowed),
            ("components[2].buttons[0].url", ErrorCode::InvalidValue),
            ("components[2].buttons[1].url", ErrorCode::ParamNumbering),
            ("components[2].buttons[2].text", ErrorCode::TooLong),
            ("components[2].buttons[3].example", ErrorCode::TooLong),
            ("components[2].buttons", ErrorCode::TooMany),
            ("components", ErrorCode::Required),
        ];
        for (f, code) in want {
            assert!(
                c.contains(&(f.to_owned(), code)),
                "missing {f} {code:?} in {c:?}"
            );
        }
    }
}
