//! Text parameters of a header or body: positional or named, recipient over defaults, extra and
//! missing values, per-value checks (text, currency, date/time) and the rendered-length limit.

use std::fmt;

use super::expander::{Expander, Loc, Src};
use super::flatten_text;
use super::message::{CurrencyValue, DateTimeValue, Parameter};
use crate::error::ErrorCode;
use crate::template::{char_len, ParameterFormat, TextParams, MAX_HEADER_TEXT};
use crate::variables::{Param, Params};

/// Where one parameter stands after the component's name: `.name` or `[i]`.
#[derive(Clone, Copy)]
enum Slot<'n> {
    Named(&'n str),
    At(usize),
}

impl fmt::Display for Slot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Named(name) => write!(f, ".{name}"),
            Slot::At(i) => write!(f, "[{i}]"),
        }
    }
}

impl Slot<'_> {
    /// The message for a parameter that has no value.
    fn missing(self, what: &str) -> String {
        match self {
            Slot::Named(name) => format!("parameter {name:?} has no value"),
            Slot::At(i) => format!("{what} parameter {{{{{}}}}} has no value", i + 1),
        }
    }
}

fn named_of(p: Option<&Params>) -> &[(String, Param)] {
    match p {
        Some(Params::Named(v)) => v.as_slice(),
        _ => &[],
    }
}

fn positional_of(p: Option<&Params>) -> &[Option<Param>] {
    match p {
        Some(Params::Positional(v)) => v.as_slice(),
        _ => &[],
    }
}

impl<'s, 'a> Expander<'s, 'a> {
    /// Resolves text parameters of a header (`what` = "header") or body.
    pub(super) fn params(
        &mut self,
        spec: &TextParams,
        r: Option<&'a Params>,
        d: Option<&'a Params>,
        loc: Loc,
        what: &'static str,
        max_total: usize,
    ) -> Vec<Parameter<'a>> {
        let is_header = what == "header";
        if spec.count == 0 {
            for (src, p) in [(Src::Recipient, r), (Src::Defaults, d)] {
                if p.is_some_and(|p| !p.is_empty()) {
                    self.extra(src, loc, what, "this template text has no parameters");
                }
            }
            return Vec::new();
        }
        let named = self.spec.parameter_format == ParameterFormat::Named;
        for (src, p) in [(Src::Recipient, r), (Src::Defaults, d)] {
            match (named, p) {
                (false, Some(Params::Named(_))) => {
                    self.err(
                        src,
                        loc,
                        format_args!("{what}"),
                        ErrorCode::InvalidValue,
                        "this template has positional parameters: give an array",
                    );
                    return Vec::new();
                }
                (true, Some(Params::Positional(v))) if v.iter().any(Option::is_some) => {
                    self.err(
                        src,
                        loc,
                        format_args!("{what}"),
                        ErrorCode::InvalidValue,
                        "this template has named parameters: give an object of name -> value",
                    );
                    return Vec::new();
                }
                _ => {}
            }
        }
        let (rn, dn) = (named_of(r), named_of(d));
        let (rv, dv) = (positional_of(r), positional_of(d));
        if named {
            for (src, list) in [(Src::Recipient, rn), (Src::Defaults, dn)] {
                for (name, _) in list {
                    if !spec.names.iter().any(|n| n == name) {
                        self.err(
                            src,
                            loc,
                            format_args!("{what}.{name}"),
                            ErrorCode::ExtraVariable,
                            "the template has no parameter of this name",
                        );
                    }
                }
            }
        } else {
            for (src, list) in [(Src::Recipient, rv), (Src::Defaults, dv)] {
                if let Some(extra) = list.iter().skip(spec.count).position(Option::is_some) {
                    let at = spec.count + extra;
                    self.err(
                        src,
                        loc,
                        format_args!("{what}[{at}]"),
                        ErrorCode::ExtraVariable,
                        format!("the template takes {} {what} parameter(s)", spec.count),
                    );
                }
            }
        }
        let mut out = Vec::with_capacity(spec.count);
        let mut total_bytes = spec.static_chars;
        let slots = if named { spec.names.len() } else { spec.count };
        for i in 0..slots {
            // The recipient's value, else the default's.
            let (slot, picked) = if named {
                let name = spec.names[i].as_str();
                let find = |list: &'a [(String, Param)], src| {
                    list.iter()
                        .find(|(n, _)| n == name)
                        .map(|(n, p)| (Some(n.as_str()), p, src))
                };
                let picked = find(rn, Src::Recipient).or_else(|| find(dn, Src::Defaults));
                (Slot::Named(name), picked)
            } else {
                let picked = match rv.get(i) {
                    Some(Some(p)) => Some((None, p, Src::Recipient)),
                    _ => match dv.get(i) {
                        Some(Some(p)) => Some((None, p, Src::Defaults)),
                        _ => None,
                    },
                };
                (Slot::At(i), picked)
            };
            match picked {
                Some((n, p, src)) => {
                    if let Some(param) = self.param(
                        p,
                        n,
                        src,
                        loc,
                        what,
                        format_args!("{what}{slot}"),
                        is_header,
                    ) {
                        let len = param.shown_text().len();
                        total_bytes += len * spec.occurrences.get(i).copied().unwrap_or(1) as usize;
                        out.push(param);
                    }
                }
                None => self.missing(loc, format_args!("{what}{slot}"), slot.missing(what)),
            }
        }
        if !is_header && total_bytes > max_total && out.len() == spec.count {
            // Byte lengths over-count non-ASCII text; count characters before refusing.
            let mut total = spec.static_chars;
            for (i, p) in out.iter().enumerate() {
                let s = p.shown_text();
                total += char_len(s) * spec.occurrences.get(i).copied().unwrap_or(1) as usize;
            }
            if total > max_total {
                self.err(
                    Src::Recipient,
                    loc,
                    format_args!("{what}"),
                    ErrorCode::TooLong,
                    format!(
                        "the {what} would have {total} characters; at most {max_total} are allowed"
                    ),
                );
            }
        }
        out
    }

    /// One parameter value.
    #[allow(clippy::too_many_arguments)]
    fn param(
        &mut self,
        p: &'a Param,
        name: Option<&'a str>,
        src: Src,
        loc: Loc,
        what: &str,
        field: std::fmt::Arguments<'_>,
        is_header: bool,
    ) -> Option<Parameter<'a>> {
        match p {
            Param::Text(t) => {
                let text = flatten_text(t);
                if text.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "text must not be empty",
                    );
                    return None;
                }
                if is_header && text.len() > MAX_HEADER_TEXT && char_len(&text) > MAX_HEADER_TEXT {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::TooLong,
                        format!("a header parameter has at most {MAX_HEADER_TEXT} characters"),
                    );
                    return None;
                }
                Some(Parameter::Text {
                    parameter_name: name,
                    text,
                })
            }
            Param::Currency(c) if !is_header => {
                if c.fallback_value.trim().is_empty()
                    || c.code.len() != 3
                    || !c.code.bytes().all(|b| b.is_ascii_uppercase())
                {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "currency needs a fallback_value and an ISO 4217 code such as USD",
                    );
                    return None;
                }
                Some(Parameter::Currency {
                    parameter_name: name,
                    currency: CurrencyValue::new(c),
                })
            }
            Param::DateTime(dt) if !is_header => {
                if dt.fallback_value.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        field,
                        ErrorCode::InvalidValue,
                        "date_time needs a fallback_value",
                    );
                    return None;
                }
                Some(Parameter::DateTime {
                    parameter_name: name,
                    date_time: DateTimeValue::new(dt),
                })
            }
            _ => {
                self.err(
                    src,
                    loc,
                    field,
                    ErrorCode::InvalidValue,
                    format!("{what} parameters are text"),
                );
                None
            }
        }
    }
}
