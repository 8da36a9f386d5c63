//! The expander: the state of one expansion (spec, recipient and default variables, errors),
//! error paths and reporting, and the order in which the message components are produced.

use super::message::MessageComponent;
use super::MAX_ERRORS;
use crate::error::{ErrorCode, FieldError};
use crate::template::{TemplateSpec, MAX_BODY_TEXT};
use crate::variables::Variables;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Src {
    Recipient,
    Defaults,
}

/// Where in the variables a slot lives: top level or a card.
#[derive(Clone, Copy)]
pub(super) struct Loc {
    pub(super) card: Option<usize>,
}

pub(super) struct Expander<'s, 'a> {
    pub(super) spec: &'s TemplateSpec,
    pub(super) r: &'a Variables,
    pub(super) d: &'a Variables,
    pub(super) errs: Vec<FieldError>,
    /// Checking defaults alone: no missing-value errors.
    pub(super) partial: bool,
    pub(super) dprefix: &'static str,
}

impl<'s, 'a> Expander<'s, 'a> {
    fn path(&self, src: Src, loc: Loc, rest: std::fmt::Arguments<'_>) -> String {
        let prefix = match src {
            Src::Recipient => "",
            Src::Defaults => self.dprefix,
        };
        match loc.card {
            Some(c) => format!("{prefix}cards[{c}].{rest}"),
            None => format!("{prefix}{rest}"),
        }
    }

    pub(super) fn err(
        &mut self,
        src: Src,
        loc: Loc,
        rest: std::fmt::Arguments<'_>,
        code: ErrorCode,
        msg: impl Into<String>,
    ) {
        if self.errs.len() >= MAX_ERRORS {
            return;
        }
        let field = self.path(src, loc, rest);
        self.errs.push(FieldError::new(field, code, msg));
    }

    pub(super) fn missing(
        &mut self,
        loc: Loc,
        rest: std::fmt::Arguments<'_>,
        msg: impl Into<String>,
    ) {
        if !self.partial {
            self.err(Src::Recipient, loc, rest, ErrorCode::MissingVariable, msg);
        }
    }

    pub(super) fn components(&mut self) -> Vec<MessageComponent<'a>> {
        let spec = self.spec;
        let mut out = Vec::with_capacity(2 + spec.buttons.len());
        let top = Loc { card: None };
        let r = self.r;
        let d = self.d;

        if let Some(p) = self.header(&spec.header, r.header.as_ref(), d.header.as_ref(), top) {
            out.push(MessageComponent::Header { parameters: [p] });
        }
        let body = self.params(
            &spec.body,
            r.body.as_ref(),
            d.body.as_ref(),
            top,
            "body",
            MAX_BODY_TEXT,
        );
        if !body.is_empty() {
            out.push(MessageComponent::Body { parameters: body });
        }
        self.offer(&mut out);
        self.buttons(
            &spec.buttons,
            r.buttons.as_deref(),
            d.buttons.as_deref(),
            top,
            &mut out,
        );
        self.product_extras();
        self.cards(&mut out);
        out
    }

    pub(super) fn extra(&mut self, src: Src, loc: Loc, what: &str, msg: &str) {
        self.err(
            src,
            loc,
            format_args!("{what}"),
            ErrorCode::ExtraVariable,
            msg,
        );
    }
}
