//! Header values of the template or of a card: text parameters, media by link or id, location
//! and product headers, with wrong-kind errors.

use super::expander::{Expander, Loc, Src};
use super::message::{Media, Parameter, Product};
use crate::error::ErrorCode;
use crate::template::{HeaderSpec, MediaKind, MAX_HEADER_TEXT};
use crate::variables::{HeaderValue, Variables};

fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// The recipient's value, else the default's, with where it came from.
fn first_given<'v, T>(r: Option<&'v T>, d: Option<&'v T>) -> Option<(&'v T, Src)> {
    r.map(|v| (v, Src::Recipient))
        .or(d.map(|v| (v, Src::Defaults)))
}

impl<'s, 'a> Expander<'s, 'a> {
    /// Header of the template or of a card.
    pub(super) fn header(
        &mut self,
        spec: &HeaderSpec,
        r: Option<&'a HeaderValue>,
        d: Option<&'a HeaderValue>,
        loc: Loc,
    ) -> Option<Parameter<'a>> {
        match spec {
            HeaderSpec::None => {
                for (src, v) in [(Src::Recipient, r), (Src::Defaults, d)] {
                    if v.is_some() {
                        self.extra(src, loc, "header", "this template has no header values");
                    }
                }
                None
            }
            HeaderSpec::Text(tp) => {
                let mut sides = [None, None];
                for (side, (src, v)) in sides
                    .iter_mut()
                    .zip([(Src::Recipient, r), (Src::Defaults, d)])
                {
                    match v {
                        Some(HeaderValue::Text(p)) => *side = Some(p),
                        Some(other) => {
                            self.wrong_kind(src, loc, "TEXT", other.kind());
                            return None;
                        }
                        None => {}
                    }
                }
                let [rp, dp] = sides;
                let mut ps = self.params(tp, rp, dp, loc, "header", MAX_HEADER_TEXT);
                ps.pop()
            }
            HeaderSpec::Media(kind) => {
                let Some((v, src)) = first_given(r, d) else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        format!("the template's {} header needs a link or id", kind.as_str()),
                    );
                    return None;
                };
                let (link, id, filename) = match (kind, v) {
                    (MediaKind::Image, HeaderValue::Image(m))
                    | (MediaKind::Video, HeaderValue::Video(m)) => {
                        (m.link.as_deref(), m.id.as_deref(), None)
                    }
                    (MediaKind::Document, HeaderValue::Document(m)) => {
                        (m.link.as_deref(), m.id.as_deref(), m.filename.as_deref())
                    }
                    (_, other) => {
                        let want = match kind {
                            MediaKind::Image => "IMAGE",
                            MediaKind::Video => "VIDEO",
                            MediaKind::Document => "DOCUMENT",
                        };
                        self.wrong_kind(src, loc, want, other.kind());
                        return None;
                    }
                };
                match (link, id) {
                    (Some(l), None) => {
                        if !is_http_url(l) || l.len() > 2000 {
                            self.err(
                                src,
                                loc,
                                format_args!("header.link"),
                                ErrorCode::InvalidValue,
                                "link must be a public https:// URL",
                            );
                            return None;
                        }
                    }
                    (None, Some(i)) => {
                        if i.trim().is_empty() {
                            self.err(
                                src,
                                loc,
                                format_args!("header.id"),
                                ErrorCode::InvalidValue,
                                "id must not be empty",
                            );
                            return None;
                        }
                    }
                    (Some(_), Some(_)) => {
                        self.err(
                            src,
                            loc,
                            format_args!("header"),
                            ErrorCode::InvalidValue,
                            "give either link or id, not both",
                        );
                        return None;
                    }
                    (None, None) => {
                        self.err(
                            src,
                            loc,
                            format_args!("header"),
                            ErrorCode::MissingVariable,
                            "media needs a link or an id",
                        );
                        return None;
                    }
                }
                let media = Media { link, id, filename };
                Some(match kind {
                    MediaKind::Image => Parameter::Image { image: media },
                    MediaKind::Video => Parameter::Video { video: media },
                    MediaKind::Document => Parameter::Document { document: media },
                })
            }
            HeaderSpec::Location => {
                let Some((v, src)) = first_given(r, d) else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        "the template's location header needs a location",
                    );
                    return None;
                };
                let HeaderValue::Location(l) = v else {
                    self.wrong_kind(src, loc, "LOCATION", v.kind());
                    return None;
                };
                let checks = [
                    (
                        l.latitude.is_finite() && (-90.0..=90.0).contains(&l.latitude),
                        "latitude",
                        "latitude must be between -90 and 90",
                    ),
                    (
                        l.longitude.is_finite() && (-180.0..=180.0).contains(&l.longitude),
                        "longitude",
                        "longitude must be between -180 and 180",
                    ),
                    (!l.name.trim().is_empty(), "name", "name must not be empty"),
                    (
                        !l.address.trim().is_empty(),
                        "address",
                        "address must not be empty",
                    ),
                ];
                let mut ok = true;
                for (valid, field, msg) in checks {
                    if !valid {
                        self.err(
                            src,
                            loc,
                            format_args!("header.{field}"),
                            ErrorCode::InvalidValue,
                            msg,
                        );
                        ok = false;
                    }
                }
                ok.then_some(Parameter::Location { location: l })
            }
            HeaderSpec::Product => {
                // Recipient first, then defaults; on each side the header value wins over
                // `product.product_retailer_id` (single-product templates only).
                let top = loc.card.is_none();
                let from_product = |v: &'a Variables| {
                    v.product
                        .as_ref()
                        .filter(|_| top)
                        .and_then(|p| p.product_retailer_id.as_deref().map(|id| (id, p)))
                };
                let mut picked = None;
                for (src, h, vars) in [(Src::Recipient, r, self.r), (Src::Defaults, d, self.d)] {
                    if let Some(v) = h {
                        picked = Some((src, Ok(v)));
                        break;
                    }
                    if let Some((id, p)) = from_product(vars) {
                        picked = Some((src, Err((id, p))));
                        break;
                    }
                }
                let Some((src, value)) = picked else {
                    self.missing(
                        loc,
                        format_args!("header"),
                        "the template's product header needs a product_retailer_id",
                    );
                    return None;
                };
                let (id, catalog, field) = match value {
                    Ok(HeaderValue::Product(p)) => (
                        p.product_retailer_id.as_str(),
                        p.catalog_id.as_deref(),
                        "header.product_retailer_id",
                    ),
                    Ok(other) => {
                        self.wrong_kind(src, loc, "PRODUCT", other.kind());
                        return None;
                    }
                    Err((id, p)) => {
                        // The catalog may come from either side's `product`.
                        let catalog = p.catalog_id.as_deref().or_else(|| {
                            [self.r, self.d].into_iter().find_map(|v| {
                                v.product.as_ref().and_then(|p| p.catalog_id.as_deref())
                            })
                        });
                        (id, catalog, "product.product_retailer_id")
                    }
                };
                if id.trim().is_empty() {
                    self.err(
                        src,
                        loc,
                        format_args!("{field}"),
                        ErrorCode::InvalidValue,
                        "must not be empty",
                    );
                    return None;
                }
                Some(Parameter::Product {
                    product: Product {
                        product_retailer_id: id,
                        catalog_id: catalog,
                    },
                })
            }
        }
    }

    fn wrong_kind(&mut self, src: Src, loc: Loc, want: &str, got: &str) {
        self.err(
            src,
            loc,
            format_args!("header"),
            ErrorCode::WrongMediaKind,
            format!("the template's header is {want}; got a {got} value"),
        );
    }
}
