//! Button values of the template or of a card: which given values match a runtime button, the
//! fields each button kind takes, and the `button` components (quick reply, URL suffix, copy
//! code, flow, OTP; MPM and catalog via the product values).

use super::expander::{Expander, Loc, Src};
use super::message::{Action, MessageComponent, Parameter};
use super::MAX_URL_SUFFIX;
use crate::error::ErrorCode;
use crate::template::{char_len, ButtonKind, ButtonSpec, MAX_COPY_CODE};
use crate::variables::{ButtonValue, Param, Params};
use std::borrow::Cow;

const INDEXES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

fn index_str(i: usize) -> Cow<'static, str> {
    match INDEXES.get(i) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(i.to_string()),
    }
}

impl<'s, 'a> Expander<'s, 'a> {
    pub(super) fn buttons(
        &mut self,
        specs: &[ButtonSpec],
        r: Option<&'a [ButtonValue]>,
        d: Option<&'a [ButtonValue]>,
        loc: Loc,
        out: &mut Vec<MessageComponent<'a>>,
    ) {
        for (src, list) in [(Src::Recipient, r), (Src::Defaults, d)] {
            let Some(list) = list else { continue };
            if list.len() > crate::template::MAX_BUTTONS {
                self.err(
                    src,
                    loc,
                    format_args!("buttons"),
                    ErrorCode::TooMany,
                    "a template has at most 10 buttons",
                );
                continue;
            }
            for (pos, bv) in list.iter().enumerate() {
                if list[..pos].iter().any(|o| o.index == bv.index) {
                    self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}].index"),
                        ErrorCode::Duplicate,
                        format!("button {} is given twice", bv.index),
                    );
                    continue;
                }
                match specs.iter().find(|s| s.index == bv.index) {
                    None => self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}]"),
                        ErrorCode::ExtraVariable,
                        format!("button {} takes no runtime value", bv.index),
                    ),
                    Some(s) if matches!(s.kind, ButtonKind::Mpm | ButtonKind::Catalog) => self.err(
                        src,
                        loc,
                        format_args!("buttons[{pos}]"),
                        ErrorCode::ExtraVariable,
                        "MPM and catalog buttons take their values from \"product\"",
                    ),
                    Some(s) => self.check_button_fields(s, bv, src, loc, pos),
                }
            }
        }
        for s in specs {
            let find = |list: Option<&'a [ButtonValue]>| {
                list.and_then(|l| l.iter().enumerate().find(|(_, b)| b.index == s.index))
            };
            let picked = find(r)
                .map(|(pos, b)| (b, Src::Recipient, pos))
                .or_else(|| find(d).map(|(pos, b)| (b, Src::Defaults, pos)));
            let index = index_str(s.index);
            let sub_type = s.sub_type();
            let param = match &s.kind {
                ButtonKind::QuickReply => picked
                    .and_then(|(b, _, _)| b.payload.as_deref())
                    .map(|payload| Parameter::Payload { payload }),
                ButtonKind::UrlSuffix { .. } => self
                    .button_text(
                        picked.and_then(|(b, src, pos)| b.text.as_deref().map(|t| (t, src, pos))),
                        loc,
                        ("text", "url suffix", MAX_URL_SUFFIX),
                        format_args!("url button {} needs its suffix in \"text\"", s.index),
                    )
                    .map(|t| Parameter::Text {
                        parameter_name: None,
                        text: Cow::Borrowed(t),
                    }),
                ButtonKind::CopyCode { .. } => self
                    .button_text(
                        picked.and_then(|(b, src, pos)| {
                            b.coupon_code.as_deref().map(|t| (t, src, pos))
                        }),
                        loc,
                        ("coupon_code", "coupon_code", MAX_COPY_CODE),
                        format_args!("copy-code button {} needs \"coupon_code\"", s.index),
                    )
                    .map(|coupon_code| Parameter::CouponCode { coupon_code }),
                ButtonKind::Flow => picked.and_then(|(b, _, _)| {
                    let nested = b.action.as_ref();
                    let flow_token = b
                        .flow_token
                        .as_deref()
                        .or(nested.and_then(|a| a.flow_token.as_deref()));
                    let flow_action_data = b
                        .flow_action_data
                        .as_ref()
                        .or(nested.and_then(|a| a.flow_action_data.as_ref()));
                    (flow_token.is_some() || flow_action_data.is_some()).then_some(
                        Parameter::Action {
                            action: Action {
                                flow_token,
                                flow_action_data,
                                ..Action::default()
                            },
                        },
                    )
                }),
                ButtonKind::Otp => {
                    let code = match picked
                        .and_then(|(b, src, pos)| b.text.as_deref().map(|t| (t, src, pos)))
                    {
                        Some(v) => Some(v),
                        None => match (&self.r.body, &self.d.body) {
                            (Some(Params::Positional(v)), _)
                                if matches!(v.first(), Some(Some(Param::Text(_)))) =>
                            {
                                match v.first() {
                                    Some(Some(Param::Text(t))) => {
                                        Some((t.as_str(), Src::Recipient, 0))
                                    }
                                    _ => None,
                                }
                            }
                            (_, Some(Params::Positional(v))) => match v.first() {
                                Some(Some(Param::Text(t))) => Some((t.as_str(), Src::Defaults, 0)),
                                _ => None,
                            },
                            _ => None,
                        },
                    };
                    match code {
                        Some((t, src, pos)) if t.trim().is_empty() => {
                            self.err(
                                src,
                                loc,
                                format_args!("buttons[{pos}].text"),
                                ErrorCode::InvalidValue,
                                "the code must not be empty",
                            );
                            None
                        }
                        Some((t, _, _)) => Some(Parameter::Text {
                            parameter_name: None,
                            text: Cow::Borrowed(t),
                        }),
                        None => {
                            self.missing(
                                loc,
                                format_args!("buttons"),
                                format!("OTP button {} needs the code in \"text\"", s.index),
                            );
                            None
                        }
                    }
                }
                ButtonKind::Mpm => self.mpm_action(),
                ButtonKind::Catalog => self.catalog_action(),
            };
            if let Some(p) = param {
                out.push(MessageComponent::Button {
                    sub_type,
                    index,
                    parameters: [p],
                });
            }
        }
    }

    /// The text value of a URL or copy-code button, picked at `buttons[pos]`: not blank and
    /// at most `max` characters; `field` names it in the path and `label` in the messages.
    fn button_text(
        &mut self,
        picked: Option<(&'a str, Src, usize)>,
        loc: Loc,
        (field, label, max): (&str, &str, usize),
        missing: std::fmt::Arguments<'_>,
    ) -> Option<&'a str> {
        let Some((t, src, pos)) = picked else {
            self.missing(loc, format_args!("buttons"), missing.to_string());
            return None;
        };
        if t.trim().is_empty() {
            self.err(
                src,
                loc,
                format_args!("buttons[{pos}].{field}"),
                ErrorCode::InvalidValue,
                format!("{label} must not be empty"),
            );
            None
        } else if t.len() > max && char_len(t) > max {
            self.err(
                src,
                loc,
                format_args!("buttons[{pos}].{field}"),
                ErrorCode::TooLong,
                format!("{label} has at most {max} characters"),
            );
            None
        } else {
            Some(t)
        }
    }

    fn check_button_fields(
        &mut self,
        s: &ButtonSpec,
        b: &ButtonValue,
        src: Src,
        loc: Loc,
        pos: usize,
    ) {
        let allowed: [bool; 6] = match s.kind {
            // payload, text, coupon_code, flow_token, flow_action_data, action
            ButtonKind::QuickReply => [true, false, false, false, false, false],
            ButtonKind::UrlSuffix { .. } | ButtonKind::Otp => {
                [false, true, false, false, false, false]
            }
            ButtonKind::CopyCode { .. } => [false, false, true, false, false, false],
            ButtonKind::Flow => [false, false, false, true, true, true],
            ButtonKind::Mpm | ButtonKind::Catalog => [false; 6],
        };
        let present = [
            b.payload.is_some(),
            b.text.is_some(),
            b.coupon_code.is_some(),
            b.flow_token.is_some(),
            b.flow_action_data.is_some(),
            b.action.is_some(),
        ];
        const NAMES: [&str; 6] = [
            "payload",
            "text",
            "coupon_code",
            "flow_token",
            "flow_action_data",
            "action",
        ];
        if let Some(a) = &b.action {
            if (a.flow_token.is_some() && b.flow_token.is_some())
                || (a.flow_action_data.is_some() && b.flow_action_data.is_some())
            {
                self.err(
                    src,
                    loc,
                    format_args!("buttons[{pos}].action"),
                    ErrorCode::Duplicate,
                    "give flow_token and flow_action_data either at the top or in action",
                );
            }
        }
        for i in 0..NAMES.len() {
            if present[i] && !allowed[i] {
                self.err(
                    src,
                    loc,
                    format_args!("buttons[{pos}].{}", NAMES[i]),
                    ErrorCode::ExtraVariable,
                    format!("a {} button does not take {}", s.sub_type(), NAMES[i]),
                );
            }
        }
    }
}
