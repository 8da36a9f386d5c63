//! Text measuring and placeholder parsing: character counts, the `{{1}}` / `{{name}}`
//! placeholders of header, body and URL text, and the sample values that go with them.

use super::model::{NamedExample, ParameterFormat};
use super::spec::TextParams;
use crate::error::{ErrorCode, Errors};

pub(crate) fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn is_param_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Placeholder contents of `text`, in order (`"Hi {{1}} {{2}}"` -> `["1", "2"]`), plus the
/// number of characters used by placeholders. `Err` on an unterminated `{{`.
pub(super) fn placeholders(text: &str) -> Result<(Vec<&str>, usize), String> {
    let mut out = Vec::new();
    let mut used = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated '{{' placeholder".to_owned());
        };
        let inner = &after[..end];
        out.push(inner);
        used += char_len(inner) + 4;
        rest = &after[end + 2..];
    }
    Ok((out, used))
}

/// Parses the placeholders of a header/body text into a [`TextParams`].
pub(super) fn text_params(
    text: &str,
    format: ParameterFormat,
    path: &str,
    errs: &mut Errors,
) -> TextParams {
    let (found, used) = match placeholders(text) {
        Ok(v) => v,
        Err(msg) => {
            errs.push(path, ErrorCode::ParamNumbering, msg);
            return TextParams::default();
        }
    };
    let static_chars = char_len(text).saturating_sub(used);
    let mut p = TextParams {
        static_chars,
        ..TextParams::default()
    };
    match format {
        ParameterFormat::Positional => {
            let mut max = 0usize;
            let mut nums = Vec::with_capacity(found.len());
            for inner in &found {
                match inner.parse::<usize>() {
                    Ok(n)
                        if (1..=100).contains(&n)
                            && !inner.starts_with('0')
                            && inner.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        max = max.max(n);
                        nums.push(n);
                    }
                    _ => {
                        errs.push(
                            path,
                            ErrorCode::ParamNumbering,
                            format!(
                                "placeholder {{{{{inner}}}}} is not a positional parameter {{{{1}}}}..{{{{n}}}}"
                            ),
                        );
                        return p;
                    }
                }
            }
            let mut occ = vec![0u32; max];
            for n in nums {
                occ[n - 1] += 1;
            }
            if let Some(missing) = occ.iter().position(|&c| c == 0) {
                errs.push(
                    path,
                    ErrorCode::ParamNumbering,
                    format!(
                        "parameters must be numbered contiguously from {{{{1}}}}; {{{{{}}}}} is missing",
                        missing + 1
                    ),
                );
            }
            p.count = max;
            p.occurrences = occ;
        }
        ParameterFormat::Named => {
            for inner in &found {
                if !is_param_name(inner) {
                    errs.push(
                        path,
                        ErrorCode::ParamNumbering,
                        format!(
                            "placeholder {{{{{inner}}}}} is not a named parameter (lowercase letters, digits, underscores)"
                        ),
                    );
                    return p;
                }
                match p.names.iter().position(|n| n == inner) {
                    Some(i) => p.occurrences[i] += 1,
                    None => {
                        p.names.push((*inner).to_owned());
                        p.occurrences.push(1);
                    }
                }
            }
            p.count = p.names.len();
        }
    }
    p
}

pub(super) fn positional_examples(
    p: &mut TextParams,
    sample: Option<&Vec<String>>,
    path: &str,
    errs: &mut Errors,
) {
    if let Some(s) = sample {
        if s.len() != p.count {
            let why = format!(
                "example has {} values; the text has {} parameters",
                s.len(),
                p.count
            );
            errs.push(path, ErrorCode::InvalidValue, why);
        } else {
            p.examples = s.clone();
        }
    }
}

pub(super) fn named_examples(
    p: &mut TextParams,
    sample: Option<&Vec<NamedExample>>,
    path: &str,
    errs: &mut Errors,
) {
    if let Some(s) = sample {
        let mut ex = Vec::with_capacity(p.count);
        for name in &p.names {
            match s.iter().find(|e| &e.param_name == name) {
                Some(e) => ex.push(e.example.clone()),
                None => {
                    let why = format!("example lacks parameter {name:?}");
                    errs.push(path, ErrorCode::InvalidValue, why);
                    return;
                }
            }
        }
        if let Some(extra) = s.iter().find(|e| !p.names.contains(&e.param_name)) {
            let why = format!(
                "example names {:?}, which the text does not use",
                extra.param_name
            );
            errs.push(path, ErrorCode::InvalidValue, why);
            return;
        }
        p.examples = ex;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::template::test_support::{codes, t};
    use serde_json::json;

    #[test]
    fn placeholders_parse() {
        assert_eq!(
            placeholders("a {{1}} b {{2}}").expect("ok").0,
            vec!["1", "2"]
        );
        assert!(placeholders("a {{1").is_err());
    }

    #[test]
    fn non_contiguous_params() {
        let tpl = t(
            json!({"name":"x","language":"en","category":"UTILITY","components":[
            {"type":"BODY","text":"Hi {{1}} and {{3}}"}]}),
        );
        assert_eq!(
            codes(&tpl),
            vec![("components[0].text".into(), ErrorCode::ParamNumbering)]
        );
    }

    #[test]
    fn named_and_repeated() {
        let tpl = t(
            json!({"name":"x","language":"en","category":"UTILITY","parameter_format":"NAMED",
            "components":[{"type":"BODY","text":"Hi {{first_name}}, {{first_name}} order {{order_id}}",
              "example":{"body_text_named_params":[
                {"param_name":"first_name","example":"Maria"},{"param_name":"order_id","example":"7"}]}}]}),
        );
        let spec = tpl.spec().expect("valid");
        assert_eq!(spec.body.names, vec!["first_name", "order_id"]);
        assert_eq!(spec.body.occurrences, vec![2, 1]);
        assert_eq!(spec.body.examples, vec!["Maria", "7"]);
    }
}
