//! Validation of the `HEADER`, `BODY` and `FOOTER` components (of a template or a card) and
//! what their text parameters need.

use super::{check_len, check_nonempty, Ctx};
use crate::error::{ErrorCode, Errors};
use crate::template::limits::{MAX_FOOTER_TEXT, MAX_HEADER_TEXT};
use crate::template::model::{Body, Category, Footer, Header, HeaderFormat, ParameterFormat};
use crate::template::spec::{HeaderSpec, MediaKind, TextParams};
use crate::template::text::{named_examples, positional_examples, text_params};

pub(super) fn analyze_header(h: &Header, ctx: &Ctx, path: &str, errs: &mut Errors) -> HeaderSpec {
    if h.format != HeaderFormat::Text && h.text.is_some() {
        errs.push(
            format!("{path}.text"),
            ErrorCode::NotAllowed,
            "only TEXT headers have text",
        );
    }
    match h.format {
        HeaderFormat::Text => {
            let tpath = format!("{path}.text");
            let Some(text) = h.text.as_deref() else {
                errs.push(tpath, ErrorCode::Required, "a TEXT header needs text");
                return HeaderSpec::None;
            };
            if !check_nonempty(errs, &tpath, text, "header text") {
                return HeaderSpec::None;
            }
            check_len(errs, &tpath, text, MAX_HEADER_TEXT, "header text");
            let mut p = text_params(text, ctx.format, &tpath, errs);
            if p.count > 1 {
                errs.push(
                    &tpath,
                    ErrorCode::TooMany,
                    format!("a header takes at most 1 parameter; found {}", p.count),
                );
            }
            let ex = h.example.as_ref();
            match ctx.format {
                ParameterFormat::Positional => positional_examples(
                    &mut p,
                    ex.and_then(|e| e.header_text.as_ref()),
                    &format!("{path}.example.header_text"),
                    errs,
                ),
                ParameterFormat::Named => named_examples(
                    &mut p,
                    ex.and_then(|e| e.header_text_named_params.as_ref()),
                    &format!("{path}.example.header_text_named_params"),
                    errs,
                ),
            }
            HeaderSpec::Text(p)
        }
        HeaderFormat::Image => HeaderSpec::Media(MediaKind::Image),
        HeaderFormat::Video => HeaderSpec::Media(MediaKind::Video),
        HeaderFormat::Document => HeaderSpec::Media(MediaKind::Document),
        HeaderFormat::Location => HeaderSpec::Location,
        HeaderFormat::Product => HeaderSpec::Product,
    }
}

pub(super) fn analyze_body(
    b: &Body,
    ctx: &Ctx,
    max: usize,
    path: &str,
    errs: &mut Errors,
) -> TextParams {
    let tpath = format!("{path}.text");
    let Some(text) = b.text.as_deref() else {
        if ctx.category == Category::Authentication {
            // Meta's fixed text "{{1}} is your verification code."
            return TextParams {
                count: 1,
                occurrences: vec![1],
                static_chars: 32,
                ..TextParams::default()
            };
        }
        errs.push(tpath, ErrorCode::Required, "the body needs text");
        return TextParams::default();
    };
    if !check_nonempty(errs, &tpath, text, "body text") {
        return TextParams::default();
    }
    check_len(errs, &tpath, text, max, "body text");
    if ctx.category != Category::Authentication && b.add_security_recommendation.is_some() {
        errs.push(
            format!("{path}.add_security_recommendation"),
            ErrorCode::NotAllowed,
            "only authentication templates take add_security_recommendation",
        );
    }
    let mut p = text_params(text, ctx.format, &tpath, errs);
    if ctx.category == Category::Authentication && p.count != 1 {
        errs.push(
            &tpath,
            ErrorCode::ParamNumbering,
            "an authentication body has exactly one parameter, the code",
        );
    }
    let ex = b.example.as_ref();
    match ctx.format {
        ParameterFormat::Positional => {
            let sample = ex.and_then(|e| e.body_text.as_ref());
            if let Some(rows) = sample {
                if rows.len() != 1 {
                    errs.push(
                        format!("{path}.example.body_text"),
                        ErrorCode::InvalidValue,
                        "body_text must hold exactly one list of sample values",
                    );
                }
            }
            positional_examples(
                &mut p,
                sample.and_then(|rows| rows.first()),
                &format!("{path}.example.body_text"),
                errs,
            )
        }
        ParameterFormat::Named => named_examples(
            &mut p,
            ex.and_then(|e| e.body_text_named_params.as_ref()),
            &format!("{path}.example.body_text_named_params"),
            errs,
        ),
    }
    p
}

pub(super) fn analyze_footer(f: &Footer, ctx: &Ctx, path: &str, errs: &mut Errors) {
    if let Some(text) = f.text.as_deref() {
        let tpath = format!("{path}.text");
        if check_nonempty(errs, &tpath, text, "footer text") {
            check_len(errs, &tpath, text, MAX_FOOTER_TEXT, "footer text");
            if text.contains("{{") {
                errs.push(
                    tpath,
                    ErrorCode::NotAllowed,
                    "a footer cannot have parameters",
                );
            }
        }
    } else if f.code_expiration_minutes.is_none() {
        errs.push(
            format!("{path}.text"),
            ErrorCode::Required,
            "the footer needs text",
        );
    }
    if let Some(m) = f.code_expiration_minutes {
        let mpath = format!("{path}.code_expiration_minutes");
        if ctx.category != Category::Authentication {
            errs.push(
                mpath,
                ErrorCode::NotAllowed,
                "only authentication templates take code_expiration_minutes",
            );
        } else if !(1..=90).contains(&m) {
            errs.push(mpath, ErrorCode::InvalidValue, "must be between 1 and 90");
        }
    }
}
