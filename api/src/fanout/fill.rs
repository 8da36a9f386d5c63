//! `variables_from`: a broadcast's variables filled per contact from what is stored about it.
//!
//! The value has the shape of a recipient's `variables` (see `ezpulze_payload::Variables`);
//! any string in it may hold placeholders: `{{contact.name}}`, `{{contact.phone}}`,
//! `{{contact.email}}`, `{{contact.id}}` or `{{attributes.<name>}}`, each with an optional
//! default after a `|` (`{{contact.name|there}}`), used when the field is missing or empty.
//! Text around placeholders is kept (`"Order {{attributes.order_id}}"`). A placeholder whose
//! field is empty and has no default makes the contact rejected with [`MISSING_VARIABLE`].

use std::collections::HashSet;

use serde_json::{Map, Value};

use ezpulze_payload::Variables;

/// The rejection code of a contact whose variables cannot be filled.
pub const MISSING_VARIABLE: &str = "missing_variable";
/// The rejection code of a contact whose filled variables the template refuses.
pub const INVALID_VARIABLES: &str = "invalid_variables";

/// A contact field a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    Phone,
    Email,
    Id,
    Attribute(String),
}

impl Field {
    fn parse(s: &str) -> Result<Field, String> {
        match s {
            "contact.name" => Ok(Field::Name),
            "contact.phone" => Ok(Field::Phone),
            "contact.email" => Ok(Field::Email),
            "contact.id" => Ok(Field::Id),
            _ => match s.strip_prefix("attributes.") {
                Some(k) if !k.is_empty() && k.chars().count() <= 100 => {
                    Ok(Field::Attribute(k.to_string()))
                }
                _ => Err(format!(
                    "unknown field `{s}`: use contact.name, contact.phone, contact.email, contact.id or attributes.<name>"
                )),
            },
        }
    }

    fn label(&self) -> String {
        match self {
            Field::Name => "contact.name".into(),
            Field::Phone => "contact.phone".into(),
            Field::Email => "contact.email".into(),
            Field::Id => "contact.id".into(),
            Field::Attribute(k) => format!("attributes.{k}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Slot {
        field: Field,
        default: Option<String>,
    },
}

/// The compiled mapping: the JSON tree with every string split into segments.
#[derive(Debug, Clone)]
enum Node {
    Plain(Value),
    Text(Vec<Segment>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A contact as the fan-out reads it.
pub struct ContactView<'a> {
    pub id: uuid::Uuid,
    pub phone: &'a str,
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Fill {
    root: Node,
}

/// At most this many placeholders in one `variables_from`.
const MAX_SLOTS: usize = 100;

impl Fill {
    /// Compiles `value`. Errors name the path and what is wrong.
    pub fn compile(value: &Value) -> Result<Fill, String> {
        let mut slots = 0;
        let root = node(value, "variables_from", &mut slots)?;
        let fill = Fill { root };
        // The shape is checked with every slot filled.
        let probe = fill.render_with(&mut |_| Some("x".to_string()))?;
        serde_json::from_value::<Variables>(probe).map_err(|e| format!("variables_from: {e}"))?;
        Ok(fill)
    }

    /// The variables with every placeholder filled with `x` (to check a template can take
    /// them before any contact is read).
    pub fn probe(&self) -> Variables {
        self.render_with(&mut |_| Some("x".to_string()))
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }

    /// The attribute names the placeholders use.
    pub fn attributes(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        walk(&self.root, &mut |f| {
            if let Field::Attribute(k) = f {
                out.insert(k.clone());
            }
        });
        out
    }

    /// The variables of one contact; `Err` names the first field that is empty without a
    /// default (or a shape the filled values break).
    pub fn render(&self, c: &ContactView<'_>) -> Result<Variables, (&'static str, String)> {
        let mut missing = None;
        let value = render_node(&self.root, &mut |f| value_of(f, c), &mut missing)
            .map_err(|m| (MISSING_VARIABLE, m))?;
        if let Some(field) = missing {
            return Err((
                MISSING_VARIABLE,
                format!("{field} is empty for this contact"),
            ));
        }
        serde_json::from_value(value).map_err(|e| (INVALID_VARIABLES, e.to_string()))
    }

    fn render_with(&self, get: &mut dyn FnMut(&Field) -> Option<String>) -> Result<Value, String> {
        render_node(&self.root, get, &mut None)
    }
}

fn value_of(f: &Field, c: &ContactView<'_>) -> Option<String> {
    let s = match f {
        Field::Name => c.name.map(str::to_string),
        Field::Phone => Some(c.phone.to_string()),
        Field::Email => c.email.map(str::to_string),
        Field::Id => Some(c.id.to_string()),
        Field::Attribute(k) => match c.attributes.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => Some(other.to_string()),
        },
    };
    s.filter(|s| !s.trim().is_empty())
}

fn walk(n: &Node, f: &mut dyn FnMut(&Field)) {
    match n {
        Node::Plain(_) => {}
        Node::Text(segs) => segs.iter().for_each(|s| {
            if let Segment::Slot { field, .. } = s {
                f(field)
            }
        }),
        Node::Array(items) => items.iter().for_each(|i| walk(i, f)),
        Node::Object(fields) => fields.iter().for_each(|(_, v)| walk(v, f)),
    }
}

/// Renders `n`; the first field that is empty with no default is named in `missing`.
fn render_node(
    n: &Node,
    get: &mut dyn FnMut(&Field) -> Option<String>,
    missing: &mut Option<String>,
) -> Result<Value, String> {
    Ok(match n {
        Node::Plain(v) => v.clone(),
        Node::Text(segs) => {
            let mut out = String::new();
            for s in segs {
                match s {
                    Segment::Text(t) => out.push_str(t),
                    Segment::Slot { field, default } => match (get(field), default) {
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => {
                            if missing.is_none() {
                                *missing = Some(field.label());
                            }
                        }
                    },
                }
            }
            Value::String(out)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_node(i, get, missing))
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_node(v, get, missing)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn node(v: &Value, path: &str, slots: &mut usize) -> Result<Node, String> {
    Ok(match v {
        Value::String(s) => {
            let segs = segments(s).map_err(|e| format!("{path}: {e}"))?;
            let n = segs
                .iter()
                .filter(|s| matches!(s, Segment::Slot { .. }))
                .count();
            if n == 0 {
                Node::Plain(v.clone())
            } else {
                *slots += n;
                if *slots > MAX_SLOTS {
                    return Err(format!("variables_from: at most {MAX_SLOTS} placeholders"));
                }
                Node::Text(segs)
            }
        }
        Value::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| node(x, &format!("{path}[{i}]"), slots))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Node::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), node(x, &format!("{path}.{k}"), slots)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => Node::Plain(other.clone()),
    })
}

/// Splits a string into text and `{{field|default}}` slots.
fn segments(s: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Segment::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "a `{{` without its `}}`".to_string())?;
        let inner = &after[..close];
        let (field, default) = match inner.split_once('|') {
            Some((f, d)) => (f.trim(), Some(d.to_string())),
            None => (inner.trim(), None),
        };
        out.push(Segment::Slot {
            field: Field::parse(field)?,
            default,
        });
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contact<'a>(attrs: &'a Map<String, Value>, name: Option<&'a str>) -> ContactView<'a> {
        ContactView {
            id: uuid::Uuid::nil(),
            phone: "+15550001111",
            name,
            email: None,
            attributes: attrs,
        }
    }

    #[test]
    fn fills_fields_attributes_and_defaults() {
        let f = Fill::compile(
            &json!({"body": ["{{contact.name|there}}", "Order {{attributes.order_id}}", 7]}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.attributes(), HashSet::from(["order_id".to_string()]));
        let attrs = json!({"order_id": 4721})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let v = f
            .render(&contact(&attrs, None))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            serde_json::to_value(v).unwrap_or_default(),
            json!({"body": ["there", "Order 4721", "7"]})
        );
        let v = f
            .render(&contact(&attrs, Some("Maria")))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            serde_json::to_value(v).unwrap_or_default()["body"][0],
            "Maria"
        );
    }

    #[test]
    fn an_empty_field_without_default_rejects_the_contact() {
        let f = Fill::compile(&json!({"body": ["{{attributes.order_id}}"]}))
            .unwrap_or_else(|e| panic!("{e}"));
        let attrs = json!({"order_id": "  "})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let err = f.render(&contact(&attrs, None)).err();
        assert_eq!(
            err,
            Some((
                MISSING_VARIABLE,
                "attributes.order_id is empty for this contact".into()
            ))
        );
    }

    #[test]
    fn bad_mappings_are_refused() {
        for bad in [
            json!({"body": ["{{contact.nickname}}"]}),
            json!({"body": ["{{attributes.}}"]}),
            json!({"body": ["{{contact.name"]}),
            json!({"bodyy": ["x"]}),
            json!({"body": 5}),
        ] {
            assert!(Fill::compile(&bad).is_err(), "{bad}");
        }
    }
}
