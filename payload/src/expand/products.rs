//! Product values (`variables.product`): the MPM action (thumbnail and sections, with their
//! limits), the catalog action, and product values the template does not use.

use super::expander::{Expander, Loc, Src};
use super::message::{Action, Parameter};
use super::{MAX_SECTIONS, MAX_SECTION_PRODUCTS, MAX_SECTION_TITLE};
use crate::error::ErrorCode;
use crate::template::char_len;
use crate::variables::Section;

impl<'s, 'a> Expander<'s, 'a> {
    fn product_pick<T: ?Sized>(
        &self,
        f: impl Fn(&'a crate::variables::ProductValues) -> Option<&'a T>,
    ) -> Option<(&'a T, Src)> {
        self.r
            .product
            .as_ref()
            .and_then(&f)
            .map(|v| (v, Src::Recipient))
            .or_else(|| {
                self.d
                    .product
                    .as_ref()
                    .and_then(&f)
                    .map(|v| (v, Src::Defaults))
            })
    }

    pub(super) fn mpm_action(&mut self) -> Option<Parameter<'a>> {
        let top = Loc { card: None };
        let thumb = self.product_pick(|p| p.thumbnail_product_retailer_id.as_deref());
        let sections = self.product_pick(|p| p.sections.as_deref());
        let mut ok = true;
        match thumb {
            None => {
                self.missing(
                    top,
                    format_args!("product.thumbnail_product_retailer_id"),
                    "an MPM template needs a thumbnail product",
                );
                ok = false;
            }
            Some((t, src)) if t.trim().is_empty() => {
                self.err(
                    src,
                    top,
                    format_args!("product.thumbnail_product_retailer_id"),
                    ErrorCode::InvalidValue,
                    "must not be empty",
                );
                ok = false;
            }
            Some(_) => {}
        }
        match sections {
            None => {
                self.missing(
                    top,
                    format_args!("product.sections"),
                    "an MPM template needs 1-10 sections of products",
                );
                ok = false;
            }
            Some((secs, src)) => ok &= self.check_sections(secs, src),
        }
        if !ok {
            return None;
        }
        Some(Parameter::Action {
            action: Action {
                thumbnail_product_retailer_id: thumb.map(|(t, _)| t),
                sections: sections.map(|(s, _)| s),
                ..Action::default()
            },
        })
    }

    fn check_sections(&mut self, secs: &[Section], src: Src) -> bool {
        let top = Loc { card: None };
        if secs.is_empty() {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooFew,
                "at least one section is needed",
            );
            return false;
        }
        if secs.len() > MAX_SECTIONS {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooMany,
                format!("at most {MAX_SECTIONS} sections are allowed"),
            );
            return false;
        }
        let mut ok = true;
        let mut total = 0;
        for (i, s) in secs.iter().enumerate() {
            total += s.product_items.len();
            match &s.title {
                None if secs.len() > 1 => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::MissingVariable,
                        "every section needs a title when there are several",
                    );
                    ok = false;
                }
                Some(t) if t.trim().is_empty() => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::InvalidValue,
                        "title must not be empty",
                    );
                    ok = false;
                }
                Some(t) if char_len(t) > MAX_SECTION_TITLE => {
                    self.err(
                        src,
                        top,
                        format_args!("product.sections[{i}].title"),
                        ErrorCode::TooLong,
                        format!("a section title has at most {MAX_SECTION_TITLE} characters"),
                    );
                    ok = false;
                }
                _ => {}
            }
            if s.product_items.is_empty() {
                self.err(
                    src,
                    top,
                    format_args!("product.sections[{i}].product_items"),
                    ErrorCode::TooFew,
                    "a section needs at least one product",
                );
                ok = false;
            }
            for (j, item) in s.product_items.iter().enumerate() {
                if item.product_retailer_id.trim().is_empty() {
                    self.err(
                        src,
                        top,
                        format_args!(
                            "product.sections[{i}].product_items[{j}].product_retailer_id"
                        ),
                        ErrorCode::InvalidValue,
                        "must not be empty",
                    );
                    ok = false;
                }
            }
        }
        if total > MAX_SECTION_PRODUCTS {
            self.err(
                src,
                top,
                format_args!("product.sections"),
                ErrorCode::TooMany,
                format!("at most {MAX_SECTION_PRODUCTS} products in total; found {total}"),
            );
            ok = false;
        }
        ok
    }

    pub(super) fn catalog_action(&mut self) -> Option<Parameter<'a>> {
        let (t, src) = self.product_pick(|p| p.thumbnail_product_retailer_id.as_deref())?;
        if t.trim().is_empty() {
            self.err(
                src,
                Loc { card: None },
                format_args!("product.thumbnail_product_retailer_id"),
                ErrorCode::InvalidValue,
                "must not be empty",
            );
            return None;
        }
        Some(Parameter::Action {
            action: Action {
                thumbnail_product_retailer_id: Some(t),
                ..Action::default()
            },
        })
    }

    /// Product fields the template does not use.
    pub(super) fn product_extras(&mut self) {
        let needs = self.spec.product;
        let header_from_product = needs.header_product;
        let thumb = needs.mpm || needs.catalog;
        for (src, p) in [
            (Src::Recipient, self.r.product.as_ref()),
            (Src::Defaults, self.d.product.as_ref()),
        ] {
            let Some(p) = p else { continue };
            let checks: [(bool, bool, &str); 4] = [
                (
                    p.product_retailer_id.is_some(),
                    header_from_product,
                    "product.product_retailer_id",
                ),
                (
                    p.catalog_id.is_some(),
                    header_from_product,
                    "product.catalog_id",
                ),
                (
                    p.thumbnail_product_retailer_id.is_some(),
                    thumb,
                    "product.thumbnail_product_retailer_id",
                ),
                (p.sections.is_some(), needs.mpm, "product.sections"),
            ];
            for (present, used, field) in checks {
                if present && !used {
                    self.extra(
                        src,
                        Loc { card: None },
                        field,
                        "this template does not use this product value",
                    );
                }
            }
        }
    }
}
