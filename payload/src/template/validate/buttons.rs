//! Validation of a `BUTTONS` component (top level, media card or product card): per-button
//! rules, per-type and commerce limits, and the [`ButtonSpec`]s of the buttons that take
//! runtime values.

use super::{check_len, check_nonempty, Ctx};
use crate::error::{ErrorCode, Errors};
use crate::template::limits::{
    MAX_BUTTONS, MAX_BUTTON_PHONE, MAX_BUTTON_TEXT, MAX_COPY_CODE, MAX_URL,
};
use crate::template::model::{Button, Buttons, Category};
use crate::template::spec::{ButtonKind, ButtonSpec};
use crate::template::text::placeholders;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ButtonsPlace {
    Top,
    MediaCard,
    ProductCard,
}

pub(super) fn analyze_buttons(
    b: &Buttons,
    ctx: &Ctx,
    place: ButtonsPlace,
    path: &str,
    errs: &mut Errors,
) -> Vec<ButtonSpec> {
    let mut specs = Vec::new();
    let max = match place {
        ButtonsPlace::Top => MAX_BUTTONS,
        ButtonsPlace::MediaCard => 2,
        ButtonsPlace::ProductCard => 1,
    };
    if b.buttons.is_empty() {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::TooFew,
            "at least one button is needed",
        );
    }
    if b.buttons.len() > max {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::TooMany,
            format!(
                "at most {max} buttons are allowed here; found {}",
                b.buttons.len()
            ),
        );
    }
    let mut counts = [0usize; 10];
    for (i, button) in b.buttons.iter().enumerate() {
        let bpath = format!("{path}.buttons[{i}]");
        let slot = match button {
            Button::QuickReply { .. } => 0,
            Button::Url { .. } => 1,
            Button::PhoneNumber { .. } => 2,
            Button::CopyCode { .. } => 3,
            Button::Flow { .. } => 4,
            Button::Mpm { .. } => 5,
            Button::Catalog { .. } => 6,
            Button::Spm { .. } => 7,
            Button::VoiceCall { .. } => 8,
            Button::Otp { .. } => 9,
        };
        counts[slot] += 1;
        let allowed_here = match place {
            ButtonsPlace::Top => {
                !matches!(button, Button::Otp { .. }) || ctx.category == Category::Authentication
            }
            ButtonsPlace::MediaCard => matches!(
                button,
                Button::QuickReply { .. } | Button::Url { .. } | Button::PhoneNumber { .. }
            ),
            ButtonsPlace::ProductCard => {
                matches!(button, Button::Spm { .. } | Button::Url { .. })
            }
        };
        if !allowed_here {
            errs.push(
                format!("{bpath}.type"),
                ErrorCode::NotAllowed,
                format!("a {} button is not allowed here", button.type_name()),
            );
        }
        let otp_as_url = matches!(button, Button::Url { url, .. } if url.contains("{{1}}"));
        if ctx.category == Category::Authentication
            && !matches!(button, Button::Otp { .. })
            && !otp_as_url
        {
            errs.push(
                format!("{bpath}.type"),
                ErrorCode::NotAllowed,
                "authentication templates take only an OTP button",
            );
        }
        if let Some(label) = button.label() {
            let lpath = format!("{bpath}.text");
            if check_nonempty(errs, &lpath, label, "button text") {
                check_len(errs, &lpath, label, MAX_BUTTON_TEXT, "button text");
            }
        } else if let Button::Otp { .. } = button {
            // the label of an OTP button is optional (Meta supplies a default)
        }
        let spec = match button {
            Button::QuickReply { .. } => Some((ButtonKind::QuickReply, false)),
            Button::Url { url, example, .. } => {
                let upath = format!("{bpath}.url");
                check_len(errs, &upath, url, MAX_URL, "url");
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    errs.push(
                        &upath,
                        ErrorCode::InvalidValue,
                        "url must start with https://",
                    );
                }
                match placeholders(url) {
                    Ok((found, _)) if found.is_empty() => None,
                    Ok((found, _)) if found == ["1"] && url.ends_with("{{1}}") => {
                        let prefix = url.trim_end_matches("{{1}}").to_owned();
                        let ex = example
                            .as_ref()
                            .and_then(|e| e.first())
                            .map(|e| e.strip_prefix(prefix.as_str()).unwrap_or(e).to_owned());
                        if ctx.category == Category::Authentication {
                            // Meta's GET returns an authentication template's OTP button as a
                            // URL button ending in `otp{{1}}`; it takes the code.
                            Some((ButtonKind::Otp, true))
                        } else {
                            Some((
                                ButtonKind::UrlSuffix {
                                    static_prefix: prefix,
                                    example: ex,
                                },
                                true,
                            ))
                        }
                    }
                    _ => {
                        errs.push(
                            &upath,
                            ErrorCode::ParamNumbering,
                            "a url may have one {{1}} placeholder, at its end",
                        );
                        None
                    }
                }
            }
            Button::PhoneNumber { phone_number, .. } => {
                let ppath = format!("{bpath}.phone_number");
                if check_nonempty(errs, &ppath, phone_number, "phone_number") {
                    check_len(errs, &ppath, phone_number, MAX_BUTTON_PHONE, "phone_number");
                }
                None
            }
            Button::CopyCode { example, .. } => {
                if let Some(ex) = example {
                    check_len(errs, &format!("{bpath}.example"), ex, MAX_COPY_CODE, "code");
                }
                Some((
                    ButtonKind::CopyCode {
                        example: example.clone(),
                    },
                    true,
                ))
            }
            Button::Flow {
                flow_id,
                flow_name,
                flow_json,
                flow_action,
                ..
            } => {
                if flow_id.is_none() && flow_name.is_none() && flow_json.is_none() {
                    errs.push(
                        format!("{bpath}.flow_id"),
                        ErrorCode::Required,
                        "a FLOW button needs flow_id, flow_name or flow_json",
                    );
                }
                if let Some(a) = flow_action {
                    if a != "navigate" && a != "data_exchange" {
                        errs.push(
                            format!("{bpath}.flow_action"),
                            ErrorCode::InvalidValue,
                            "flow_action must be navigate or data_exchange",
                        );
                    }
                }
                Some((ButtonKind::Flow, false))
            }
            Button::Mpm { .. } => Some((ButtonKind::Mpm, true)),
            Button::Catalog { .. } => Some((ButtonKind::Catalog, false)),
            Button::Spm { .. } | Button::VoiceCall { .. } => None,
            Button::Otp { .. } => Some((ButtonKind::Otp, true)),
        };
        if let Some((kind, required)) = spec {
            specs.push(ButtonSpec {
                index: i,
                kind,
                required,
            });
        }
    }
    let limits: [(usize, usize, &str); 10] = [
        (0, 10, "QUICK_REPLY"),
        (1, 2, "URL"),
        (2, 1, "PHONE_NUMBER"),
        (3, 1, "COPY_CODE"),
        (4, 1, "FLOW"),
        (5, 1, "MPM"),
        (6, 1, "CATALOG"),
        (7, 1, "SPM"),
        (8, 1, "VOICE_CALL"),
        (9, 1, "OTP"),
    ];
    for (slot, lim, name) in limits {
        if counts[slot] > lim {
            errs.push(
                format!("{path}.buttons"),
                ErrorCode::TooMany,
                format!(
                    "at most {lim} {name} button(s) are allowed; found {}",
                    counts[slot]
                ),
            );
        }
    }
    let commerce = counts[5] + counts[6] + counts[7];
    if commerce > 1 {
        errs.push(
            format!("{path}.buttons"),
            ErrorCode::NotAllowed,
            "MPM, CATALOG and SPM buttons exclude each other",
        );
    }
    specs
}
