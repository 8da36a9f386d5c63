//! The entry points: [`CompiledTemplate`] (validated once, expanded per recipient, defaults
//! checked on their own) and the free [`expand`]; both build the [`Message`] envelope around the
//! expanded components.

use super::expander::Expander;
use super::message::{Language, Message, MessageTemplate};
use super::MAX_CALLBACK_DATA;
use crate::error::{ErrorCode, FieldError};
use crate::phone::{canonical_digits, PhoneE164};
use crate::template::{char_len, Template, TemplateSpec};
use crate::variables::Variables;
use std::borrow::Cow;

/// A validated template with its [`TemplateSpec`], ready for fast expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledTemplate {
    template: Template,
    spec: TemplateSpec,
}

impl CompiledTemplate {
    /// Validates `template` and computes its spec.
    pub fn new(template: Template) -> Result<Self, Vec<FieldError>> {
        let spec = template.spec()?;
        Ok(CompiledTemplate { template, spec })
    }

    /// The template definition.
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// What the template needs at send time.
    pub fn spec(&self) -> &TemplateSpec {
        &self.spec
    }

    /// Expands one recipient. `to` may be any form [`PhoneE164::parse`] accepts;
    /// `callback_data` becomes `biz_opaque_callback_data` (omitted when empty).
    pub fn expand<'a>(
        &'a self,
        defaults: &'a Variables,
        recipient: &'a Variables,
        to: &'a str,
        callback_data: &'a str,
    ) -> Result<Message<'a>, Vec<FieldError>> {
        expand_with_spec(
            &self.template,
            &self.spec,
            defaults,
            recipient,
            to,
            callback_data,
        )
    }

    /// Checks a broadcast's defaults on their own: shapes, kinds, limits and extra values are
    /// checked; missing values are not (recipients may supply them). Paths are relative to the
    /// defaults object.
    pub fn check_defaults(&self, defaults: &Variables) -> Result<(), Vec<FieldError>> {
        let empty = Variables::default();
        let mut x = Expander {
            spec: &self.spec,
            r: &empty,
            d: defaults,
            errs: Vec::new(),
            partial: true,
            dprefix: "",
        };
        let _ = x.components();
        if x.errs.is_empty() {
            Ok(())
        } else {
            Err(x.errs)
        }
    }
}

/// Expands one recipient against a template, validating the template first (use
/// [`CompiledTemplate`] on hot paths).
pub fn expand<'a>(
    template: &'a Template,
    defaults: &'a Variables,
    recipient: &'a Variables,
    to: &'a str,
    callback_data: &'a str,
) -> Result<Message<'a>, Vec<FieldError>> {
    let spec = template.spec().map_err(|errs| {
        errs.into_iter()
            .map(|e| {
                FieldError::new(
                    format!("template.{}", e.field),
                    ErrorCode::InvalidTemplate,
                    e.message,
                )
            })
            .collect::<Vec<_>>()
    })?;
    expand_with_spec(template, &spec, defaults, recipient, to, callback_data)
}

fn expand_with_spec<'a>(
    template: &'a Template,
    spec: &TemplateSpec,
    defaults: &'a Variables,
    recipient: &'a Variables,
    to: &'a str,
    callback_data: &'a str,
) -> Result<Message<'a>, Vec<FieldError>> {
    let mut x = Expander {
        spec,
        r: recipient,
        d: defaults,
        errs: Vec::new(),
        partial: false,
        dprefix: "defaults.",
    };
    let to_digits: Cow<'a, str> = match canonical_digits(to) {
        Some(d) => Cow::Borrowed(d),
        None => match PhoneE164::parse(to) {
            Ok(p) => Cow::Owned(p.digits().to_owned()),
            Err(e) => {
                x.errs.push(FieldError::new(
                    "to",
                    ErrorCode::InvalidPhone,
                    e.to_string(),
                ));
                Cow::Borrowed("")
            }
        },
    };
    if callback_data.len() > MAX_CALLBACK_DATA && char_len(callback_data) > MAX_CALLBACK_DATA {
        x.errs.push(FieldError::new(
            "callback_data",
            ErrorCode::TooLong,
            "biz_opaque_callback_data has more than 512 characters",
        ));
    }
    let components = x.components();
    if !x.errs.is_empty() {
        return Err(x.errs);
    }
    Ok(Message {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: to_digits,
        kind: "template",
        biz_opaque_callback_data: callback_data,
        template: MessageTemplate {
            name: &template.name,
            language: Language {
                code: &template.language,
            },
            components,
        },
    })
}
