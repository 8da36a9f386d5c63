//! An audience: which of the account's contacts an audience send goes to.
//!
//! Every criterion given narrows it (they are ANDed): `tags_all` (the contact has every one),
//! `tags_any` (at least one), `tags_none` (none of them), `attributes` (each named attribute
//! equals the given string, number or boolean), `contact_ids` (one of these contacts). At
//! least one criterion is required; `"all": true` names every contact of the account. Tags
//! match exactly (no wildcards or operators; negation is `tags_none`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::routes::contacts::fields::{self, Errors};

/// At most this many tags in one list, attributes, and contact ids.
pub const MAX_TAGS: usize = 50;
pub const MAX_ATTRIBUTES: usize = 20;
pub const MAX_CONTACT_IDS: usize = 10_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_all: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_any: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_none: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

impl Audience {
    /// Checks and normalises (tags trimmed and de-duplicated, empty lists dropped).
    pub fn validated(mut self) -> ApiResult<Audience> {
        let mut errors = Errors::default();
        for (name, list) in [
            ("audience.tags_all", &mut self.tags_all),
            ("audience.tags_any", &mut self.tags_any),
            ("audience.tags_none", &mut self.tags_none),
        ] {
            if let Some(raw) = list.take() {
                if raw.len() > MAX_TAGS {
                    errors.push(name, format!("at most {MAX_TAGS} tags"));
                    continue;
                }
                for (i, t) in raw.iter().enumerate() {
                    let t = t.trim();
                    if t.starts_with('!') || t.contains('*') {
                        errors.push(
                            format!("{name}[{i}]"),
                            "tags match exactly: no wildcards or operators (use tags_none to exclude)",
                        );
                    }
                }
                let tags = fields::tags(name, &raw, &mut errors);
                *list = Some(tags).filter(|t| !t.is_empty());
            }
        }
        if let Some(attrs) = &self.attributes {
            if attrs.len() > MAX_ATTRIBUTES {
                errors.push(
                    "audience.attributes",
                    format!("at most {MAX_ATTRIBUTES} attributes"),
                );
            }
            for (k, v) in attrs {
                if k.is_empty() || k.chars().count() > 100 {
                    errors.push("audience.attributes", "names are 1 to 100 characters");
                }
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    errors.push(
                        format!("audience.attributes.{k}"),
                        "must be a string, number or boolean",
                    );
                }
            }
            if attrs.is_empty() {
                self.attributes = None;
            }
        }
        if let Some(ids) = &mut self.contact_ids {
            if ids.len() > MAX_CONTACT_IDS {
                errors.push(
                    "audience.contact_ids",
                    format!("at most {MAX_CONTACT_IDS} contact ids"),
                );
            }
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                self.contact_ids = None;
            }
        }
        if self.all == Some(false) {
            self.all = None;
        }
        let narrowed = self.tags_all.is_some()
            || self.tags_any.is_some()
            || self.tags_none.is_some()
            || self.attributes.is_some()
            || self.contact_ids.is_some();
        if !narrowed && self.all.is_none() {
            errors.push(
                "audience",
                "name at least one of tags_all, tags_any, tags_none, attributes, contact_ids (or \"all\": true for every contact)",
            );
        }
        if narrowed && self.all.is_some() {
            errors.push(
                "audience.all",
                "\"all\" cannot be combined with other criteria",
            );
        }
        errors.finish()?;
        Ok(self)
    }

    /// Pushes the audience's conditions on contacts `c` (each starting with ` AND `).
    pub fn push_conditions(&self, q: &mut QueryBuilder<'_, Postgres>) {
        if let Some(t) = &self.tags_all {
            q.push(" AND c.tags @> ").push_bind(t.clone());
        }
        if let Some(t) = &self.tags_any {
            q.push(" AND c.tags && ").push_bind(t.clone());
        }
        if let Some(t) = &self.tags_none {
            q.push(" AND NOT (c.tags && ")
                .push_bind(t.clone())
                .push(")");
        }
        if let Some(a) = &self.attributes {
            q.push(" AND c.attributes @> ")
                .push_bind(Value::Object(a.clone()));
        }
        if let Some(ids) = &self.contact_ids {
            q.push(" AND c.id = ANY(").push_bind(ids.clone()).push(")");
        }
    }

    /// `SELECT <what> FROM contacts c WHERE` the account's contacts up to `upper` in the
    /// audience (the caller may push more conditions).
    pub fn select<'a>(&self, what: &str, account: Uuid, upper: Uuid) -> QueryBuilder<'a, Postgres> {
        let mut q = QueryBuilder::new(format!("SELECT {what}"));
        self.push_from(&mut q, account, upper);
        q
    }

    /// ` FROM contacts c WHERE` the account's contacts up to `upper` in the audience.
    pub fn push_from(&self, q: &mut QueryBuilder<'_, Postgres>, account: Uuid, upper: Uuid) {
        q.push(" FROM contacts c WHERE c.account_id = ")
            .push_bind(account)
            .push(" AND c.id <= ")
            .push_bind(upper);
        self.push_conditions(q);
    }
}
