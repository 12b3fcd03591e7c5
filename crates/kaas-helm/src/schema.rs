//! `values.schema.json`: the JSON Schema (draft-07) keywords charts use, checked
//! against a chart's final values. Each violation names the value's path.
//!
//! Supported: `type` (a name or a list), `enum`, `const`, `properties`, `required`,
//! `additionalProperties` (bool or schema), `patternProperties`, `propertyNames`,
//! `minProperties`/`maxProperties`, `items` (a schema or a tuple, with
//! `additionalItems`), `contains`, `minItems`/`maxItems`, `uniqueItems`, `minimum`/
//! `maximum`/`exclusiveMinimum`/`exclusiveMaximum` (numbers, or draft-04 booleans),
//! `multipleOf`, `minLength`/`maxLength`, `pattern`, `allOf`/`anyOf`/`oneOf`/`not`,
//! `if`/`then`/`else`, `$ref` to `#`, `#/definitions/...` and `#/$defs/...` (other
//! keywords beside a `$ref` are ignored, as in draft-07). `format` is an annotation
//! only. References to other documents cannot be resolved and are a violation.

use serde_json::{Map, Value};

use crate::error::SchemaViolation;

/// How deeply `$ref`s may nest before the schema is taken to loop.
const MAX_REF_DEPTH: usize = 64;

/// The violations of `schema` by `instance`, in document order; empty when it holds.
pub(crate) fn validate(schema: &Value, instance: &Value) -> Vec<SchemaViolation> {
    let mut out = Vec::new();
    Validator { root: schema }.check(schema, instance, "", 0, &mut out);
    out
}

struct Validator<'s> {
    root: &'s Value,
}

fn violation(out: &mut Vec<SchemaViolation>, path: &str, reason: impl Into<String>) {
    out.push(SchemaViolation {
        path: path.to_owned(),
        reason: reason.into(),
    });
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "number" => v.is_number(),
        "integer" => matches!(v, Value::Number(n) if is_integer(n)),
        other => type_of(v) == other,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

fn count(v: Option<&Value>) -> Option<usize> {
    v.and_then(Value::as_u64)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

fn fmt_num(f: f64) -> String {
    serde_json::Number::from_f64(f).map_or_else(
        || f.to_string(),
        |n| {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else {
                n.to_string()
            }
        },
    )
}

impl<'s> Validator<'s> {
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        let decoded: String = pointer
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join("/");
        self.root.pointer(&decoded)
    }

    /// Whether `instance` holds against `schema`, without collecting reasons.
    fn holds(&self, schema: &Value, instance: &Value, path: &str, depth: usize) -> bool {
        let mut out = Vec::new();
        self.check(schema, instance, path, depth, &mut out);
        out.is_empty()
    }

    fn check(
        &self,
        schema: &Value,
        instance: &Value,
        path: &str,
        depth: usize,
        out: &mut Vec<SchemaViolation>,
    ) {
        let s = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return violation(out, path, "no value is allowed here"),
            Value::Object(s) => s,
            _ => return,
        };
        if let Some(Value::String(reference)) = s.get("$ref") {
            if depth >= MAX_REF_DEPTH {
                return violation(out, path, format!("$ref {reference} nests too deeply"));
            }
            match self.resolve(reference) {
                Some(target) => self.check(target, instance, path, depth + 1, out),
                // Another document (F5's chart points at Kubernetes' schemas on
                // GitHub): kaas renders offline and fetches nothing while rendering, so
                // what it describes is left unchecked, as a schema without it would.
                None if !reference.starts_with('#') => {}
                None => violation(out, path, format!("cannot resolve $ref {reference}")),
            }
            return;
        }
        self.check_type(s, instance, path, out);
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.iter().any(|o| json_eq(o, instance))
        {
            let shown: Vec<String> = options.iter().map(Value::to_string).collect();
            violation(out, path, format!("must be one of [{}]", shown.join(", ")));
        }
        if let Some(c) = s.get("const")
            && !json_eq(c, instance)
        {
            violation(out, path, format!("must be {c}"));
        }
        match instance {
            Value::Number(n) => self.check_number(s, n.as_f64().unwrap_or(0.0), path, out),
            Value::String(text) => self.check_string(s, text, path, out),
            Value::Array(items) => self.check_array(s, items, path, depth, out),
            Value::Object(map) => self.check_object(s, map, path, depth, out),
            _ => {}
        }
        self.check_combinators(s, instance, path, depth, out);
    }

    fn check_type(
        &self,
        s: &Map<String, Value>,
        instance: &Value,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        let wanted: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        if !wanted.iter().any(|t| has_type(instance, t)) {
            violation(
                out,
                path,
                format!(
                    "expected {}, but got {}",
                    wanted.join(" or "),
                    type_of(instance)
                ),
            );
        }
    }

    fn check_number(
        &self,
        s: &Map<String, Value>,
        n: f64,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        let excl = |key: &str| matches!(s.get(key), Some(Value::Bool(true)));
        if let Some(min) = num(s.get("minimum")) {
            if excl("exclusiveMinimum") {
                if n <= min {
                    violation(
                        out,
                        path,
                        format!("must be > {} but found {}", fmt_num(min), fmt_num(n)),
                    );
                }
            } else if n < min {
                violation(
                    out,
                    path,
                    format!("must be >= {} but found {}", fmt_num(min), fmt_num(n)),
                );
            }
        }
        if let Some(max) = num(s.get("maximum")) {
            if excl("exclusiveMaximum") {
                if n >= max {
                    violation(
                        out,
                        path,
                        format!("must be < {} but found {}", fmt_num(max), fmt_num(n)),
                    );
                }
            } else if n > max {
                violation(
                    out,
                    path,
                    format!("must be <= {} but found {}", fmt_num(max), fmt_num(n)),
                );
            }
        }
        if let Some(min) = num(s.get("exclusiveMinimum"))
            && n <= min
        {
            violation(
                out,
                path,
                format!("must be > {} but found {}", fmt_num(min), fmt_num(n)),
            );
        }
        if let Some(max) = num(s.get("exclusiveMaximum"))
            && n >= max
        {
            violation(
                out,
                path,
                format!("must be < {} but found {}", fmt_num(max), fmt_num(n)),
            );
        }
        if let Some(m) = num(s.get("multipleOf"))
            && m > 0.0
        {
            let q = n / m;
            if (q - q.round()).abs() > 1e-9 {
                violation(out, path, format!("must be a multiple of {}", fmt_num(m)));
            }
        }
    }

    fn check_string(
        &self,
        s: &Map<String, Value>,
        text: &str,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        let len = text.chars().count();
        if let Some(min) = count(s.get("minLength"))
            && len < min
        {
            violation(
                out,
                path,
                format!("length must be >= {min} but found {len}"),
            );
        }
        if let Some(max) = count(s.get("maxLength"))
            && len > max
        {
            violation(
                out,
                path,
                format!("length must be <= {max} but found {len}"),
            );
        }
        if let Some(Value::String(pattern)) = s.get("pattern") {
            match regex::Regex::new(pattern) {
                Ok(re) if !re.is_match(text) => {
                    violation(
                        out,
                        path,
                        format!("{text:?} does not match pattern {pattern:?}"),
                    );
                }
                Ok(_) => {}
                Err(_) => violation(
                    out,
                    path,
                    format!("the schema's pattern {pattern:?} is not a valid regular expression"),
                ),
            }
        }
    }

    fn check_array(
        &self,
        s: &Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
        out: &mut Vec<SchemaViolation>,
    ) {
        let at = |i: usize| format!("{path}[{i}]");
        match s.get("items") {
            Some(Value::Array(tuple)) => {
                for (i, item) in items.iter().enumerate() {
                    match tuple.get(i) {
                        Some(schema) => self.check(schema, item, &at(i), depth, out),
                        None => {
                            if let Some(extra) = s.get("additionalItems") {
                                self.check(extra, item, &at(i), depth, out);
                            }
                        }
                    }
                }
            }
            Some(schema) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(schema, item, &at(i), depth, out);
                }
            }
            None => {}
        }
        if let Some(min) = count(s.get("minItems"))
            && items.len() < min
        {
            violation(
                out,
                path,
                format!("must have at least {min} items but found {}", items.len()),
            );
        }
        if let Some(max) = count(s.get("maxItems"))
            && items.len() > max
        {
            violation(
                out,
                path,
                format!("must have at most {max} items but found {}", items.len()),
            );
        }
        if matches!(s.get("uniqueItems"), Some(Value::Bool(true))) {
            for i in 0..items.len() {
                if let Some(j) = (i + 1..items.len()).find(|&j| json_eq(&items[i], &items[j])) {
                    violation(out, path, format!("items at {i} and {j} are equal"));
                    break;
                }
            }
        }
        if let Some(contains) = s.get("contains")
            && !items
                .iter()
                .enumerate()
                .any(|(i, item)| self.holds(contains, item, &at(i), depth))
        {
            violation(out, path, "no item matches the schema in contains");
        }
    }

    fn check_object(
        &self,
        s: &Map<String, Value>,
        map: &Map<String, Value>,
        path: &str,
        depth: usize,
        out: &mut Vec<SchemaViolation>,
    ) {
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    violation(out, &join(path, name), "is required");
                }
            }
        }
        let props = match s.get("properties") {
            Some(Value::Object(p)) => Some(p),
            _ => None,
        };
        let patterns: Vec<(regex::Regex, &Value)> = match s.get("patternProperties") {
            Some(Value::Object(p)) => p
                .iter()
                .filter_map(|(k, v)| regex::Regex::new(k).ok().map(|re| (re, v)))
                .collect(),
            _ => Vec::new(),
        };
        for (key, value) in map {
            let here = join(path, key);
            let mut matched = false;
            if let Some(schema) = props.and_then(|p| p.get(key)) {
                matched = true;
                self.check(schema, value, &here, depth, out);
            }
            for (re, schema) in &patterns {
                if re.is_match(key) {
                    matched = true;
                    self.check(schema, value, &here, depth, out);
                }
            }
            if !matched {
                match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        violation(out, &here, "additional property is not allowed");
                    }
                    Some(schema) => self.check(schema, value, &here, depth, out),
                    None => {}
                }
            }
            if let Some(names) = s.get("propertyNames")
                && !self.holds(names, &Value::String(key.clone()), &here, depth)
            {
                violation(
                    out,
                    &here,
                    "property name does not match the schema in propertyNames",
                );
            }
        }
        if let Some(min) = count(s.get("minProperties"))
            && map.len() < min
        {
            violation(
                out,
                path,
                format!(
                    "must have at least {min} properties but found {}",
                    map.len()
                ),
            );
        }
        if let Some(max) = count(s.get("maxProperties"))
            && map.len() > max
        {
            violation(
                out,
                path,
                format!("must have at most {max} properties but found {}", map.len()),
            );
        }
    }

    fn check_combinators(
        &self,
        s: &Map<String, Value>,
        instance: &Value,
        path: &str,
        depth: usize,
        out: &mut Vec<SchemaViolation>,
    ) {
        if let Some(Value::Array(all)) = s.get("allOf") {
            for schema in all {
                self.check(schema, instance, path, depth, out);
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf")
            && !any
                .iter()
                .any(|schema| self.holds(schema, instance, path, depth))
        {
            violation(out, path, "does not match any of the schemas in anyOf");
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one
                .iter()
                .filter(|schema| self.holds(schema, instance, path, depth))
                .count();
            if n != 1 {
                violation(
                    out,
                    path,
                    format!("matches {n} of the schemas in oneOf, want exactly 1"),
                );
            }
        }
        if let Some(not) = s.get("not")
            && self.holds(not, instance, path, depth)
        {
            violation(out, path, "must not match the schema in not");
        }
        if let Some(cond) = s.get("if") {
            let branch = if self.holds(cond, instance, path, depth) {
                s.get("then")
            } else {
                s.get("else")
            };
            if let Some(branch) = branch {
                self.check(branch, instance, path, depth, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(schema: Value, instance: Value, want: &[&str]) {
        let got: Vec<String> = validate(&schema, &instance)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, want, "schema {schema} against {instance}");
    }

    #[test]
    fn keywords() {
        let obj = |props: Value| json!({"type": "object", "properties": props});
        check(obj(json!({"n": {"type": "integer"}})), json!({"n": 3}), &[]);
        check(
            obj(json!({"n": {"type": "integer"}})),
            json!({"n": 3.0}),
            &[],
        );
        check(
            obj(json!({"n": {"type": "integer"}})),
            json!({"n": 3.5}),
            &["n: expected integer, but got number"],
        );
        check(
            obj(json!({"n": {"type": ["string", "null"]}})),
            json!({"n": null}),
            &[],
        );
        check(
            obj(json!({"n": {"type": ["string", "null"]}})),
            json!({"n": true}),
            &["n: expected string or null, but got boolean"],
        );
        check(
            obj(json!({"n": {"enum": ["a", "b"]}})),
            json!({"n": "c"}),
            &["n: must be one of [\"a\", \"b\"]"],
        );
        check(obj(json!({"n": {"const": 1}})), json!({"n": 1.0}), &[]);
        check(
            obj(json!({"n": {"minimum": 1, "maximum": 5}})),
            json!({"n": 0}),
            &["n: must be >= 1 but found 0"],
        );
        check(
            obj(json!({"n": {"exclusiveMaximum": 5}})),
            json!({"n": 5}),
            &["n: must be < 5 but found 5"],
        );
        check(
            obj(json!({"n": {"minimum": 1, "exclusiveMinimum": true}})),
            json!({"n": 1}),
            &["n: must be > 1 but found 1"],
        );
        check(
            obj(json!({"s": {"minLength": 2, "maxLength": 3}})),
            json!({"s": "abcd"}),
            &["s: length must be <= 3 but found 4"],
        );
        check(
            obj(json!({"s": {"pattern": "^[a-z]+$"}})),
            json!({"s": "A"}),
            &["s: \"A\" does not match pattern \"^[a-z]+$\""],
        );
        check(json!({"required": ["a"]}), json!({}), &["a: is required"]);
        check(
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            json!({"a": 1, "b": 2}),
            &["b: additional property is not allowed"],
        );
        check(
            json!({"additionalProperties": {"type": "string"}}),
            json!({"b": 2}),
            &["b: expected string, but got integer"],
        );
        check(
            json!({"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": false}),
            json!({"x-a": "s", "y": 1}),
            &["y: additional property is not allowed"],
        );
        check(
            json!({"properties": {"l": {"items": {"type": "string"}, "minItems": 3}}}),
            json!({"l": ["a", 1]}),
            &[
                "l[1]: expected string, but got integer",
                "l: must have at least 3 items but found 2",
            ],
        );
        check(
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!(true),
            &["(root): does not match any of the schemas in anyOf"],
        );
        check(
            json!({"oneOf": [{"minimum": 1}, {"minimum": 2}]}),
            json!(3),
            &["(root): matches 2 of the schemas in oneOf, want exactly 1"],
        );
        check(
            json!({"allOf": [{"minimum": 1}, {"maximum": 2}]}),
            json!(3),
            &["(root): must be <= 2 but found 3"],
        );
        check(
            json!({"not": {"type": "null"}}),
            json!(null),
            &["(root): must not match the schema in not"],
        );
    }

    #[test]
    fn references() {
        let schema = json!({
            "definitions": {"port": {"type": "integer", "maximum": 65535}},
            "$defs": {"name": {"type": "string"}},
            "properties": {
                "port": {"$ref": "#/definitions/port"},
                "name": {"$ref": "#/$defs/name"},
                "other": {"$ref": "#/definitions/missing"},
                "self": {"$ref": "#"},
                "remote": {"$ref": "https://schemas.example/k8s.json#/definitions/Affinity"},
                "either": {"anyOf": [
                    {"type": "null"},
                    {"$ref": "https://schemas.example/k8s.json#/definitions/Port"}
                ]}
            }
        });
        // Another document's definitions are not fetched: what they describe passes.
        check(
            schema.clone(),
            json!({"remote": {"anything": true}, "either": 80}),
            &[],
        );
        check(
            schema.clone(),
            json!({"port": 70000, "name": 1}),
            &[
                "name: expected string, but got integer",
                "port: must be <= 65535 but found 70000",
            ],
        );
        check(
            schema.clone(),
            json!({"other": 1}),
            &["other: cannot resolve $ref #/definitions/missing"],
        );
        check(
            schema,
            json!({"self": {"self": {"port": "x"}}}),
            &["self.self.port: expected integer, but got string"],
        );
    }
}
