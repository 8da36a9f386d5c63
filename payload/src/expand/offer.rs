//! The `limited_time_offer` component: the offer expiry, when the template shows one.

use super::expander::{Expander, Loc, Src};
use super::message::{MessageComponent, OfferExpiry, Parameter};
use crate::error::ErrorCode;

impl<'s, 'a> Expander<'s, 'a> {
    pub(super) fn offer(&mut self, out: &mut Vec<MessageComponent<'a>>) {
        let top = Loc { card: None };
        let wants = self.spec.limited_time_offer == Some(true);
        let (r, d) = (self.r.limited_time_offer, self.d.limited_time_offer);
        if !wants {
            if r.is_some() {
                self.extra(
                    Src::Recipient,
                    top,
                    "limited_time_offer",
                    "this template takes no offer expiry",
                );
            }
            if d.is_some() {
                self.extra(
                    Src::Defaults,
                    top,
                    "limited_time_offer",
                    "this template takes no offer expiry",
                );
            }
            return;
        }
        let picked = r
            .map(|v| (v, Src::Recipient))
            .or(d.map(|v| (v, Src::Defaults)));
        match picked {
            Some((v, src)) => {
                if v.expiration_time_ms <= 0 {
                    self.err(
                        src,
                        top,
                        format_args!("limited_time_offer.expiration_time_ms"),
                        ErrorCode::InvalidValue,
                        "must be a Unix time in milliseconds",
                    );
                } else {
                    out.push(MessageComponent::LimitedTimeOffer {
                        parameters: [Parameter::LimitedTimeOffer {
                            limited_time_offer: OfferExpiry {
                                expiration_time_ms: v.expiration_time_ms,
                            },
                        }],
                    });
                }
            }
            None => self.missing(
                top,
                format_args!("limited_time_offer.expiration_time_ms"),
                "the offer needs its expiry (Unix time in milliseconds)",
            ),
        }
    }
}
