//! Validation of one carousel card: its components, and the shape every card of a carousel must
//! share with the first.

use super::buttons::{analyze_buttons, ButtonsPlace};
use super::components::{analyze_body, analyze_header};
use super::Ctx;
use crate::error::{ErrorCode, Errors};
use crate::template::limits::MAX_CARD_BODY_TEXT;
use crate::template::model::{Button, Card, Component, HeaderFormat};
use crate::template::spec::CardSpec;

#[derive(PartialEq, Eq)]
pub(super) struct CardShape {
    header: Option<HeaderFormat>,
    has_body: bool,
    buttons: Vec<&'static str>,
}

pub(super) fn analyze_card(
    card: &Card,
    ctx: &Ctx,
    path: &str,
    errs: &mut Errors,
) -> (CardSpec, CardShape) {
    let mut spec = CardSpec::default();
    let mut shape = CardShape {
        header: None,
        has_body: false,
        buttons: Vec::new(),
    };
    let mut seen: Vec<&'static str> = Vec::new();
    for (i, comp) in card.components.iter().enumerate() {
        let cpath = format!("{path}.components[{i}]");
        let name = comp.type_name();
        if seen.contains(&name) {
            errs.push(
                &cpath,
                ErrorCode::Duplicate,
                format!("a card has one {name} component"),
            );
            continue;
        }
        seen.push(name);
        match comp {
            Component::Header(h) => {
                shape.header = Some(h.format);
                match h.format {
                    HeaderFormat::Image | HeaderFormat::Video | HeaderFormat::Product => {
                        spec.header = analyze_header(h, ctx, &cpath, errs);
                    }
                    _ => errs.push(
                        format!("{cpath}.format"),
                        ErrorCode::NotAllowed,
                        "a card header is IMAGE, VIDEO or PRODUCT",
                    ),
                }
            }
            Component::Body(b) => {
                shape.has_body = true;
                spec.body = analyze_body(b, ctx, MAX_CARD_BODY_TEXT, &cpath, errs);
            }
            Component::Buttons(b) => {
                let place = if shape.header == Some(HeaderFormat::Product) {
                    ButtonsPlace::ProductCard
                } else {
                    ButtonsPlace::MediaCard
                };
                shape.buttons = b.buttons.iter().map(Button::type_name).collect();
                spec.buttons = analyze_buttons(b, ctx, place, &cpath, errs);
            }
            other => errs.push(
                format!("{cpath}.type"),
                ErrorCode::NotAllowed,
                format!("a card cannot have a {} component", other.type_name()),
            ),
        }
    }
    if shape.header.is_none() {
        errs.push(
            format!("{path}.components"),
            ErrorCode::Required,
            "every card needs a HEADER (IMAGE, VIDEO or PRODUCT)",
        );
    }
    if shape.buttons.is_empty() && shape.header != Some(HeaderFormat::Product) {
        errs.push(
            format!("{path}.components"),
            ErrorCode::Required,
            "every media card needs BUTTONS",
        );
    }
    (spec, shape)
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorCode;
    use crate::template::test_support::{codes, t};
    use crate::template::{ButtonKind, HeaderSpec, MediaKind};
    use serde_json::json;

    #[test]
    fn carousel_rules() {
        let card = |fmt: &str| {
            json!({"components":[{"type":"HEADER","format":fmt},
                {"type":"BODY","text":"Card {{1}}"},
                {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"More"}]}]})
        };
        let one = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE")]}]}),
        );
        assert!(codes(&one).contains(&("components[1].cards".into(), ErrorCode::CardCount)));
        let mixed = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE"), card("VIDEO")]}]}),
        );
        assert!(codes(&mixed).contains(&("components[1].cards[1]".into(), ErrorCode::InvalidValue)));
        let ok = t(
            json!({"name":"c","language":"en","category":"MARKETING","components":[
            {"type":"BODY","text":"Hi"},{"type":"CAROUSEL","cards":[card("IMAGE"), card("IMAGE")]}]}),
        );
        let spec = ok.spec().expect("valid");
        assert_eq!(spec.cards.len(), 2);
        assert_eq!(spec.cards[1].header, HeaderSpec::Media(MediaKind::Image));
        assert_eq!(spec.cards[1].body.count, 1);
        assert_eq!(spec.cards[1].buttons[0].kind, ButtonKind::QuickReply);
    }
}
