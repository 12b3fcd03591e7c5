//! Label selectors (`app=web,tier!=db,env in (a,b),!legacy`) and field selectors
//! (`metadata.name=web,spec.nodeName!=n1`), parsed from query strings and from
//! `LabelSelector` objects, and matched against objects.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::ApiError;

/// One requirement on labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelRequirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            LabelRequirement::Equals(k, v) => labels.get(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => labels.get(k) != Some(v),
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// All requirements must hold; an empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

/// Splits at commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn value_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn bad_label_selector(s: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid label selector: {s:?}"
    ))
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelRequirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelRequirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                let values = value_set(rest).ok_or_else(|| bad_label_selector(part))?;
                LabelRequirement::NotIn(k.trim().to_owned(), values)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                let values = value_set(rest).ok_or_else(|| bad_label_selector(part))?;
                LabelRequirement::In(k.trim().to_owned(), values)
            } else if part.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                return Err(bad_label_selector(part));
            } else {
                LabelRequirement::Exists(part.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`). `None` for
    /// a malformed one.
    pub fn from_object(selector: &Value) -> Option<Self> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                requirements.push(LabelRequirement::Equals(k.clone(), v.as_str()?.to_owned()));
            }
        }
        if let Some(expressions) = selector.get("matchExpressions").and_then(Value::as_array) {
            for e in expressions {
                let key = e.get("key")?.as_str()?.to_owned();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                requirements.push(match e.get("operator")?.as_str()? {
                    "In" => LabelRequirement::In(key, values),
                    "NotIn" => LabelRequirement::NotIn(key, values),
                    "Exists" => LabelRequirement::Exists(key),
                    "DoesNotExist" => LabelRequirement::DoesNotExist(key),
                    _ => return None,
                });
            }
        }
        Some(Self { requirements })
    }

    /// The selector in query-string form: `app=web,tier in (a,b)`.
    pub fn to_query(&self) -> String {
        self.requirements
            .iter()
            .map(|r| match r {
                LabelRequirement::Equals(k, v) => format!("{k}={v}"),
                LabelRequirement::NotEquals(k, v) => format!("{k}!={v}"),
                LabelRequirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelRequirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelRequirement::Exists(k) => k.clone(),
                LabelRequirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.is_empty() || self.matches_labels(&labels(object))
    }
}

/// An object's `metadata.labels`.
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// One requirement on a field: its dotted path, whether it must equal, and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub path: String,
    pub equal: bool,
    pub value: String,
}

/// A field selector. Any dotted path is accepted (the real API server allows only a few
/// per kind); a missing field reads as `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, equal, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: {part:?}: expected key=value or key!=value"
                )));
            };
            requirements.push(FieldRequirement {
                path: path.trim().to_owned(),
                equal,
                value: value.trim().to_owned(),
            });
        }
        Ok(Self { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field(object, &r.path);
            (actual == r.value) == r.equal
        })
    }
}

/// The value at a dotted path as a field selector compares it: strings as they are,
/// numbers and booleans printed, anything missing as `""`.
pub fn field(object: &Value, path: &str) -> String {
    let mut current = object;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    fn check(selector: &str, labels: Value, expected: bool) {
        let s = LabelSelector::parse(selector).unwrap();
        assert_eq!(
            s.matches(&pod(labels.clone())),
            expected,
            "{selector} on {labels}"
        );
    }

    #[test]
    fn label_selectors() {
        check("", json!({}), true);
        check("app=web", json!({"app": "web"}), true);
        check("app==web", json!({"app": "web"}), true);
        check("app=web", json!({"app": "db"}), false);
        check("app=web,tier=front", json!({"app": "web"}), false);
        check("app!=web", json!({}), true);
        check("app!=web", json!({"app": "web"}), false);
        check("env in (a, b)", json!({"env": "b"}), true);
        check("env in (a,b),app=x", json!({"env": "b", "app": "x"}), true);
        check("env notin (a,b)", json!({"env": "c"}), true);
        check("env notin (a,b)", json!({}), true);
        check("env notin (a,b)", json!({"env": "a"}), false);
        check("legacy", json!({"legacy": ""}), true);
        check("!legacy", json!({"legacy": ""}), false);
        check("!legacy", json!({}), true);
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        assert_eq!(LabelSelector::parse("env in a").unwrap_err().code(), 400);
    }

    #[test]
    fn label_selector_objects() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}],
        }))
        .unwrap();
        assert!(s.matches(&pod(json!({"app": "web", "tier": "a"}))));
        assert!(!s.matches(&pod(json!({"app": "web"}))));
        assert!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "k", "operator": "Near"}]})
            )
            .is_none()
        );
        assert_eq!(s.to_query(), "app=web,tier in (a)");
        assert_eq!(LabelSelector::parse(&s.to_query()).unwrap(), s);
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let check = |s: &str| FieldSelector::parse(s).unwrap().matches(&p);
        assert!(check("metadata.name=p"));
        assert!(check("metadata.name==p,metadata.namespace=ns"));
        assert!(!check("metadata.name=q"));
        assert!(check("spec.nodeName=n1"));
        assert!(check("spec.nodeName!=n2"));
        assert!(!check("status.phase!=Running"));
        assert!(check("spec.missing="));
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err().code(),
            400
        );
    }
}
