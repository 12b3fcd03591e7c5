//! Helm's engine functions: `include`, `tpl`, `required`, `fail` and the YAML and JSON
//! converters.

use super::{Functions, arity, string_arg};
use crate::error::FnError;
use crate::json::{from_json, to_json};
use crate::value::{Map, Value};
use crate::yaml::{from_yaml, to_yaml};

pub(super) fn register(f: &mut Functions) {
    f.builtin("include", |exec, a| {
        arity("include", a, 2)?;
        let out = exec.execute_named(&string_arg(&a[0]), a[1].clone())?;
        Ok(Value::String(out))
    });
    f.builtin("tpl", |exec, a| {
        arity("tpl", a, 2)?;
        let out = exec.execute_text(&string_arg(&a[0]), a[1].clone())?;
        Ok(Value::String(out))
    });
    f.builtin("required", |_, a| {
        arity("required", a, 2)?;
        match &a[1] {
            Value::Nil => Err(FnError::failure(string_arg(&a[0]))),
            Value::String(s) if s.is_empty() => Err(FnError::failure(string_arg(&a[0]))),
            v => Ok(v.clone()),
        }
    });
    // Helm without --enable-dns answers every name with "".
    f.builtin("getHostByName", |_, a| {
        arity("getHostByName", a, 1)?;
        Ok(Value::String(String::new()))
    });
    f.builtin("fail", |_, a| {
        arity("fail", a, 1)?;
        Err(FnError::failure(string_arg(&a[0])))
    });
    for name in ["toYaml", "mustToYaml"] {
        f.builtin(name, |_, a| {
            arity("toYaml", a, 1)?;
            Ok(Value::String(to_yaml(&a[0])))
        });
    }
    f.builtin("fromYaml", |_, a| {
        arity("fromYaml", a, 1)?;
        Ok(match from_yaml(&string_arg(&a[0])) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(Value::Nil) => Value::Map(Map::new()),
            Ok(other) => error_map(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )),
            Err(e) => error_map(e),
        })
    });
    f.builtin("fromYamlArray", |_, a| {
        arity("fromYamlArray", a, 1)?;
        Ok(match from_yaml(&string_arg(&a[0])) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(Value::Nil) => Value::list(Vec::new()),
            Ok(other) => Value::list(vec![Value::String(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
                json_kind(&other)
            ))]),
            Err(e) => Value::list(vec![Value::String(e)]),
        })
    });
    for name in ["toJson", "mustToJson"] {
        f.builtin(name, |_, a| {
            arity("toJson", a, 1)?;
            Ok(Value::String(to_json(&a[0], false, true)))
        });
    }
    for name in ["toPrettyJson", "mustToPrettyJson"] {
        f.builtin(name, |_, a| {
            arity("toPrettyJson", a, 1)?;
            Ok(Value::String(to_json(&a[0], true, true)))
        });
    }
    for name in ["toRawJson", "mustToRawJson"] {
        f.builtin(name, |_, a| {
            arity("toRawJson", a, 1)?;
            Ok(Value::String(to_json(&a[0], false, false)))
        });
    }
    f.builtin("fromJson", |_, a| {
        arity("fromJson", a, 1)?;
        Ok(match from_json(&string_arg(&a[0])) {
            Ok(Value::Map(m)) => Value::Map(m),
            Ok(other) => error_map(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )),
            Err(e) => error_map(e),
        })
    });
    f.builtin("fromJsonArray", |_, a| {
        arity("fromJsonArray", a, 1)?;
        Ok(match from_json(&string_arg(&a[0])) {
            Ok(Value::List(l)) => Value::List(l),
            Ok(other) => Value::list(vec![Value::String(format!(
                "json: cannot unmarshal {} into Go value of type []interface {{}}",
                json_kind(&other)
            ))]),
            Err(e) => Value::list(vec![Value::String(e)]),
        })
    });
}

/// Helm's tolerant readers put the error in the result instead of failing.
fn error_map(message: String) -> Value {
    Value::map([("Error", Value::String(message))])
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "null",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Float(_) => "number",
        Value::String(_) => "string",
        Value::List(_) => "array",
        Value::Map(_) | Value::Object(_) => "object",
    }
}
