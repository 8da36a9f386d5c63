//! The `carousel` component: card count checks and each card's header, body and buttons.

use super::expander::{Expander, Loc, Src};
use super::message::{MessageCard, MessageComponent};
use crate::error::ErrorCode;
use crate::template::MAX_BODY_TEXT;
use crate::variables::CardValues;

impl<'s, 'a> Expander<'s, 'a> {
    pub(super) fn cards(&mut self, out: &mut Vec<MessageComponent<'a>>) {
        let spec = self.spec;
        let n = spec.cards.len();
        let top = Loc { card: None };
        let r = self.r.cards.as_deref();
        let d = self.d.cards.as_deref();
        if n == 0 {
            if r.is_some() {
                self.extra(
                    Src::Recipient,
                    top,
                    "cards",
                    "this template has no carousel",
                );
            }
            if d.is_some() {
                self.extra(Src::Defaults, top, "cards", "this template has no carousel");
            }
            return;
        }
        let mut bad = false;
        for (src, list) in [(Src::Recipient, r), (Src::Defaults, d)] {
            if let Some(l) = list {
                if l.len() != n {
                    self.err(
                        src,
                        top,
                        format_args!("cards"),
                        ErrorCode::CardCount,
                        format!("the template has {n} cards; got {}", l.len()),
                    );
                    bad = true;
                }
            }
        }
        if bad {
            return;
        }
        if r.is_none() && d.is_none() {
            if !self.partial {
                self.err(
                    Src::Recipient,
                    top,
                    format_args!("cards"),
                    ErrorCode::CardCount,
                    format!("the template has {n} cards; \"cards\" needs {n} entries"),
                );
            }
            return;
        }
        let mut cards = Vec::with_capacity(n);
        for (i, cs) in spec.cards.iter().enumerate() {
            let loc = Loc { card: Some(i) };
            let rc: Option<&'a CardValues> = r.and_then(|l| l.get(i));
            let dc: Option<&'a CardValues> = d.and_then(|l| l.get(i));
            let mut comps = Vec::with_capacity(3);
            if let Some(h) = self.header(
                &cs.header,
                rc.and_then(|c| c.header.as_ref()),
                dc.and_then(|c| c.header.as_ref()),
                loc,
            ) {
                comps.push(MessageComponent::Header { parameters: [h] });
            }
            let body = self.params(
                &cs.body,
                rc.and_then(|c| c.body.as_ref()),
                dc.and_then(|c| c.body.as_ref()),
                loc,
                "body",
                MAX_BODY_TEXT,
            );
            if !body.is_empty() {
                comps.push(MessageComponent::Body { parameters: body });
            }
            self.buttons(
                &cs.buttons,
                rc.and_then(|c| c.buttons.as_deref()),
                dc.and_then(|c| c.buttons.as_deref()),
                loc,
                &mut comps,
            );
            cards.push(MessageCard {
                card_index: i,
                components: comps,
            });
        }
        out.push(MessageComponent::Carousel { cards });
    }
}
