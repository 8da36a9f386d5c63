//! Example variables for a template: a full, valid set of per-recipient values.
//!
//! Each slot takes, in order of preference: the broadcast default (so saved media references
//! show up as saved), the template's own `example` value, or a readable sample. The result is
//! accepted by [`crate::expand::expand`] with or without the defaults. It powers the payload
//! generator of the API documentation page.

use crate::expand::CompiledTemplate;
use crate::template::{
    ButtonKind, ButtonSpec, HeaderSpec, MediaKind, ParameterFormat, Template, TemplateSpec,
    TextParams, MAX_HEADER_TEXT,
};
use crate::variables::{
    ButtonValue, CardValues, DocumentRef, HeaderValue, LimitedTimeOfferValue, Location, MediaRef,
    Param, Params, ProductItem, ProductRef, ProductValues, Section, Variables,
};

/// Sample offer expiry (2099-12-31T23:59:59Z) in milliseconds.
pub const SAMPLE_EXPIRATION_MS: i64 = 4_102_444_799_000;
/// Sample one-time code of authentication templates.
pub const SAMPLE_OTP: &str = "123456";

/// A full, valid set of variables for `template` (empty when the template is invalid).
pub fn example_variables(template: &Template, defaults: &Variables) -> Variables {
    match template.spec() {
        Ok(spec) => from_spec(&spec, defaults),
        Err(_) => Variables::default(),
    }
}

/// Example variables that leave to the broadcast's defaults every slot the defaults fill:
/// what an integrator has to send per recipient. Expanding them over `defaults` gives the same
/// body as expanding [`example_variables`] over them.
pub fn example_variables_over_defaults(template: &Template, defaults: &Variables) -> Variables {
    strip_defaulted(example_variables(template, defaults), defaults)
}

impl CompiledTemplate {
    /// A full, valid set of variables for this template (see [`example_variables`]).
    pub fn example_variables(&self, defaults: &Variables) -> Variables {
        from_spec(self.spec(), defaults)
    }

    /// Example variables without the slots the defaults fill (see
    /// [`example_variables_over_defaults`]).
    pub fn example_variables_over_defaults(&self, defaults: &Variables) -> Variables {
        strip_defaulted(from_spec(self.spec(), defaults), defaults)
    }
}

fn strip_params(full: Option<Params>, defaults: Option<&Params>) -> Option<Params> {
    let (Some(full), Some(d)) = (full.clone(), defaults) else {
        return full;
    };
    let out = match (full, d) {
        (Params::Positional(mut v), Params::Positional(dv)) => {
            for (i, slot) in v.iter_mut().enumerate() {
                if matches!(dv.get(i), Some(Some(_))) {
                    *slot = None;
                }
            }
            while matches!(v.last(), Some(None)) {
                v.pop();
            }
            Params::Positional(v)
        }
        (Params::Named(v), Params::Named(dv)) => Params::Named(
            v.into_iter()
                .filter(|(n, _)| !dv.iter().any(|(dn, _)| dn == n))
                .collect(),
        ),
        (other, _) => other,
    };
    (!out.is_empty()).then_some(out)
}

fn strip_header(full: Option<HeaderValue>, defaults: Option<&HeaderValue>) -> Option<HeaderValue> {
    match (full, defaults) {
        (Some(HeaderValue::Text(p)), Some(HeaderValue::Text(dp))) => {
            strip_params(Some(p), Some(dp)).map(HeaderValue::Text)
        }
        (Some(h), Some(d)) if std::mem::discriminant(&h) == std::mem::discriminant(d) => None,
        (h, _) => h,
    }
}

fn strip_buttons(
    full: Option<Vec<ButtonValue>>,
    defaults: Option<&[ButtonValue]>,
) -> Option<Vec<ButtonValue>> {
    let mut b = full?;
    if let Some(d) = defaults {
        b.retain(|x| !d.iter().any(|y| y.index == x.index));
    }
    (!b.is_empty()).then_some(b)
}

fn strip_defaulted(full: Variables, defaults: &Variables) -> Variables {
    let mut v = Variables {
        header: strip_header(full.header, defaults.header.as_ref()),
        body: strip_params(full.body, defaults.body.as_ref()),
        buttons: strip_buttons(full.buttons, defaults.buttons.as_deref()),
        cards: full.cards,
        product: full.product,
        limited_time_offer: full
            .limited_time_offer
            .filter(|_| defaults.limited_time_offer.is_none()),
    };
    if let Some(dcards) = defaults.cards.as_deref() {
        let cards = v.cards.take().unwrap_or_default();
        if cards.len() == dcards.len() {
            let stripped: Vec<CardValues> = cards
                .into_iter()
                .zip(dcards)
                .map(|(c, d)| CardValues {
                    header: strip_header(c.header, d.header.as_ref()),
                    body: strip_params(c.body, d.body.as_ref()),
                    buttons: strip_buttons(c.buttons, d.buttons.as_deref()),
                })
                .collect();
            let all_empty = stripped
                .iter()
                .all(|c| c.header.is_none() && c.body.is_none() && c.buttons.is_none());
            v.cards = (!all_empty).then_some(stripped);
        } else if !cards.is_empty() {
            v.cards = Some(cards);
        }
    }
    let default_product_header = defaults
        .product
        .as_ref()
        .is_some_and(|p| p.product_retailer_id.is_some());
    if default_product_header
        && defaults.header.is_none()
        && matches!(v.header, Some(HeaderValue::Product(_)))
    {
        v.header = None;
    }
    if let (Some(p), Some(dp)) = (v.product.as_mut(), defaults.product.as_ref()) {
        if dp.product_retailer_id.is_some() {
            p.product_retailer_id = None;
        }
        if dp.catalog_id.is_some() {
            p.catalog_id = None;
        }
        if dp.thumbnail_product_retailer_id.is_some() {
            p.thumbnail_product_retailer_id = None;
        }
        if dp.sections.is_some() {
            p.sections = None;
        }
    }
    if v.product
        .as_ref()
        .is_some_and(|p| *p == ProductValues::default())
    {
        v.product = None;
    }
    v
}

fn from_spec(spec: &TemplateSpec, defaults: &Variables) -> Variables {
    let named = spec.parameter_format == ParameterFormat::Named;
    let mut v = Variables {
        header: header(
            &spec.header,
            defaults.header.as_ref(),
            defaults.product.as_ref(),
            named,
        ),
        ..Variables::default()
    };
    if spec.body.count > 0 {
        let sample_otp = spec.authentication.then_some(SAMPLE_OTP);
        v.body = Some(params(
            &spec.body,
            defaults.body.as_ref(),
            named,
            usize::MAX,
            sample_otp,
        ));
    }
    let code = match &v.body {
        Some(Params::Positional(p)) => match p.first() {
            Some(Some(Param::Text(t))) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    };
    let top_buttons = buttons(&spec.buttons, defaults.buttons.as_deref(), code.as_deref());
    if !top_buttons.is_empty() {
        v.buttons = Some(top_buttons);
    }
    if !spec.cards.is_empty() {
        let dcards = defaults
            .cards
            .as_deref()
            .filter(|c| c.len() == spec.cards.len());
        let cards = spec
            .cards
            .iter()
            .enumerate()
            .map(|(i, cs)| {
                let dc = dcards.and_then(|c| c.get(i));
                let body = (cs.body.count > 0).then(|| {
                    params(
                        &cs.body,
                        dc.and_then(|c| c.body.as_ref()),
                        named,
                        usize::MAX,
                        None,
                    )
                });
                let b = buttons(&cs.buttons, dc.and_then(|c| c.buttons.as_deref()), None);
                CardValues {
                    header: header(&cs.header, dc.and_then(|c| c.header.as_ref()), None, named),
                    body,
                    buttons: (!b.is_empty()).then_some(b),
                }
            })
            .collect();
        v.cards = Some(cards);
    }
    let dp = defaults.product.as_ref();
    if spec.product.mpm || spec.product.catalog {
        let thumb = dp
            .and_then(|p| p.thumbnail_product_retailer_id.clone())
            .unwrap_or_else(|| "SKU-1".to_owned());
        let sections = spec.product.mpm.then(|| {
            dp.and_then(|p| p.sections.clone()).unwrap_or_else(|| {
                vec![Section {
                    title: Some("Featured".to_owned()),
                    product_items: vec![
                        ProductItem {
                            product_retailer_id: "SKU-1".to_owned(),
                        },
                        ProductItem {
                            product_retailer_id: "SKU-2".to_owned(),
                        },
                    ],
                }]
            })
        });
        v.product = Some(ProductValues {
            thumbnail_product_retailer_id: Some(thumb),
            sections,
            ..ProductValues::default()
        });
    }
    if spec.limited_time_offer == Some(true) {
        v.limited_time_offer = Some(
            defaults
                .limited_time_offer
                .unwrap_or(LimitedTimeOfferValue {
                    expiration_time_ms: SAMPLE_EXPIRATION_MS,
                }),
        );
    }
    v
}

/// The template's example when it is a usable value of at most `max` characters, else
/// `fallback`.
fn example_or(example: &Option<String>, max: usize, fallback: &str) -> String {
    example
        .as_deref()
        .filter(|e| usable(e, max))
        .unwrap_or(fallback)
        .to_owned()
}

fn usable(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

fn params(
    spec: &TextParams,
    defaults: Option<&Params>,
    named: bool,
    max: usize,
    sample: Option<&str>,
) -> Params {
    let sample_for = |i: usize| -> String {
        if let Some(s) = sample {
            return s.to_owned();
        }
        match spec.examples.get(i) {
            Some(e) if usable(e, max) => e.clone(),
            _ => match spec.names.get(i) {
                Some(n) => n.replace('_', " "),
                None => format!("value {}", i + 1),
            },
        }
    };
    if named {
        let dn = match defaults {
            Some(Params::Named(v)) => v.as_slice(),
            _ => &[],
        };
        Params::Named(
            spec.names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let p = dn
                        .iter()
                        .find(|(dn, _)| dn == n)
                        .map(|(_, p)| p.clone())
                        .unwrap_or_else(|| Param::Text(sample_for(i)));
                    (n.clone(), p)
                })
                .collect(),
        )
    } else {
        let dv = match defaults {
            Some(Params::Positional(v)) => v.as_slice(),
            _ => &[],
        };
        Params::Positional(
            (0..spec.count)
                .map(|i| {
                    Some(match dv.get(i) {
                        Some(Some(p)) => p.clone(),
                        _ => Param::Text(sample_for(i)),
                    })
                })
                .collect(),
        )
    }
}

fn header(
    spec: &HeaderSpec,
    default: Option<&HeaderValue>,
    dproduct: Option<&ProductValues>,
    named: bool,
) -> Option<HeaderValue> {
    match spec {
        HeaderSpec::None => None,
        HeaderSpec::Text(p) if p.count == 0 => None,
        HeaderSpec::Text(p) => {
            let d = match default {
                Some(HeaderValue::Text(d)) => Some(d),
                _ => None,
            };
            Some(HeaderValue::Text(params(
                p,
                d,
                named,
                MAX_HEADER_TEXT,
                None,
            )))
        }
        HeaderSpec::Media(kind) => Some(match (kind, default) {
            (MediaKind::Image, Some(h @ HeaderValue::Image(_)))
            | (MediaKind::Video, Some(h @ HeaderValue::Video(_)))
            | (MediaKind::Document, Some(h @ HeaderValue::Document(_))) => h.clone(),
            (MediaKind::Image, _) => HeaderValue::Image(MediaRef {
                link: Some("https://example.com/media/sample.jpg".to_owned()),
                id: None,
            }),
            (MediaKind::Video, _) => HeaderValue::Video(MediaRef {
                link: Some("https://example.com/media/sample.mp4".to_owned()),
                id: None,
            }),
            (MediaKind::Document, _) => HeaderValue::Document(DocumentRef {
                link: Some("https://example.com/media/sample.pdf".to_owned()),
                id: None,
                filename: Some("sample.pdf".to_owned()),
            }),
        }),
        HeaderSpec::Location => Some(match default {
            Some(h @ HeaderValue::Location(_)) => h.clone(),
            _ => HeaderValue::Location(Location {
                latitude: 37.4847,
                longitude: -122.1477,
                name: "Pickup point".to_owned(),
                address: "1 Hacker Way, Menlo Park, CA".to_owned(),
            }),
        }),
        HeaderSpec::Product => Some(match default {
            Some(h @ HeaderValue::Product(_)) => h.clone(),
            _ => HeaderValue::Product(ProductRef {
                product_retailer_id: dproduct
                    .and_then(|p| p.product_retailer_id.clone())
                    .unwrap_or_else(|| "SKU-1".to_owned()),
                catalog_id: dproduct.and_then(|p| p.catalog_id.clone()),
            }),
        }),
    }
}

fn buttons(
    specs: &[ButtonSpec],
    defaults: Option<&[ButtonValue]>,
    code: Option<&str>,
) -> Vec<ButtonValue> {
    let mut out = Vec::new();
    for s in specs {
        if let Some(d) = defaults.and_then(|l| l.iter().find(|b| b.index == s.index)) {
            out.push(d.clone());
            continue;
        }
        let mut b = ButtonValue {
            index: s.index,
            ..ButtonValue::default()
        };
        match &s.kind {
            ButtonKind::QuickReply => b.payload = Some(format!("button_{}", s.index)),
            ButtonKind::UrlSuffix { example, .. } => {
                b.text = Some(example_or(example, crate::expand::MAX_URL_SUFFIX, "sample"))
            }
            ButtonKind::CopyCode { example } => {
                b.coupon_code = Some(example_or(
                    example,
                    crate::template::MAX_COPY_CODE,
                    "SAVE10",
                ))
            }
            ButtonKind::Flow => b.flow_token = Some("unused".to_owned()),
            ButtonKind::Otp => b.text = Some(code.unwrap_or(SAMPLE_OTP).to_owned()),
            ButtonKind::Mpm | ButtonKind::Catalog => continue,
        }
        out.push(b);
    }
    out
}
