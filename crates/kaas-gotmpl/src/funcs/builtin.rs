//! Go's `text/template` builtins.

use std::cmp::Ordering;

use super::{Functions, arity, arity_min, cast_int, string_arg};
use crate::error::FnError;
use crate::exec::Exec;
use crate::fmt::{sprint, sprintf, sprintln};
use crate::value::Value;

pub(super) fn register(f: &mut Functions) {
    // `and` and `or` are evaluated lazily by the executor; these entries make the names
    // known and serve calls through other paths.
    f.builtin("and", |_, a| {
        arity_min("and", a, 1)?;
        Ok(a.iter()
            .find(|v| !v.is_truthy())
            .unwrap_or(&a[a.len() - 1])
            .clone())
    });
    f.builtin("or", |_, a| {
        arity_min("or", a, 1)?;
        Ok(a.iter()
            .find(|v| v.is_truthy())
            .unwrap_or(&a[a.len() - 1])
            .clone())
    });
    f.builtin("not", |_, a| {
        arity("not", a, 1)?;
        Ok(Value::Bool(!a[0].is_truthy()))
    });
    f.builtin("eq", |_, a| {
        arity_min("eq", a, 1)?;
        if a.len() < 2 {
            return Err("missing argument for comparison".into());
        }
        for b in &a[1..] {
            if equal(&a[0], b)? {
                return Ok(Value::Bool(true));
            }
        }
        Ok(Value::Bool(false))
    });
    f.builtin("ne", |_, a| {
        arity("ne", a, 2)?;
        Ok(Value::Bool(!equal(&a[0], &a[1])?))
    });
    f.builtin("lt", |_, a| {
        arity("lt", a, 2)?;
        Ok(Value::Bool(compare(&a[0], &a[1])? == Ordering::Less))
    });
    f.builtin("le", |_, a| {
        arity("le", a, 2)?;
        Ok(Value::Bool(compare(&a[0], &a[1])? != Ordering::Greater))
    });
    f.builtin("gt", |_, a| {
        arity("gt", a, 2)?;
        Ok(Value::Bool(compare(&a[0], &a[1])? == Ordering::Greater))
    });
    f.builtin("ge", |_, a| {
        arity("ge", a, 2)?;
        Ok(Value::Bool(compare(&a[0], &a[1])? != Ordering::Less))
    });
    f.builtin("len", |_, a| {
        arity("len", a, 1)?;
        match a[0].data() {
            Value::String(s) => Ok(Value::Int(s.len() as i64)),
            Value::List(l) => Ok(Value::Int(l.len() as i64)),
            Value::Map(m) => Ok(Value::Int(m.len() as i64)),
            Value::Nil => Err("len of nil pointer".into()),
            other => Err(format!("len of type {}", other.type_name()).into()),
        }
    });
    f.builtin("index", index);
    f.builtin("print", |_, a| Ok(Value::String(sprint(a))));
    f.builtin("println", |_, a| Ok(Value::String(sprintln(a))));
    f.builtin("printf", |_, a| {
        arity_min("printf", a, 1)?;
        Ok(Value::String(sprintf(&string_arg(&a[0]), &a[1..])))
    });
    f.builtin("html", |_, a| Ok(Value::String(html_escape(&sprint(a)))));
    f.builtin("js", |_, a| Ok(Value::String(js_escape(&sprint(a)))));
    f.builtin("urlquery", |_, a| {
        Ok(Value::String(query_escape(&sprint(a))))
    });
    f.builtin("slice", slice);
    f.builtin("call", |_, _| {
        Err("call is not supported: templates here have no function values".into())
    });
}

/// Go's `eq` for two values: numbers by value (ints and floats alike), strings, bools,
/// nil, two values of one comparable struct type (`time.Time`) by value and two of a
/// pointer type by identity; other mixes are errors as in Go.
pub(crate) fn equal(a: &Value, b: &Value) -> Result<bool, FnError> {
    Ok(match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.type_name() == y.type_name() => {
            match (x.comparable_key(), y.comparable_key()) {
                (Some(kx), Some(ky)) => kx == ky,
                _ => std::sync::Arc::ptr_eq(x, y),
            }
        }
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            as_f64(a) == as_f64(b)
        }
        (Value::List(_) | Value::Map(_) | Value::Object(_), _)
        | (_, Value::List(_) | Value::Map(_) | Value::Object(_)) => {
            return Err(format!(
                "non-comparable types {}: {}, {}: {}",
                crate::fmt::format_v(a),
                a.type_name(),
                b.type_name(),
                crate::fmt::format_v(b)
            )
            .into());
        }
        _ => return Err("incompatible types for comparison".into()),
    })
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

/// Go's ordering for `lt`, `le`, `gt`, `ge`: numbers and strings only.
pub(crate) fn compare(a: &Value, b: &Value) -> Result<Ordering, FnError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => as_f64(a)
            .partial_cmp(&as_f64(b))
            .ok_or_else(|| "invalid type for comparison".into()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Nil, _) | (_, Value::Nil) | (Value::Bool(_), Value::Bool(_)) => {
            Err("invalid type for comparison".into())
        }
        (x, y) if std::mem::discriminant(x) == std::mem::discriminant(y) => {
            Err("invalid type for comparison".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

fn index(_: &mut Exec<'_>, a: &[Value]) -> Result<Value, FnError> {
    arity_min("index", a, 1)?;
    let mut cur = a[0].clone();
    for key in &a[1..] {
        cur = match cur.data() {
            Value::Nil => return Err("index of untyped nil".into()),
            Value::List(items) => {
                let i = index_int(key)?;
                if i < 0 || i as usize >= items.len() {
                    return Err(format!("index out of range: {i}").into());
                }
                items[i as usize].clone()
            }
            Value::String(s) => {
                let i = index_int(key)?;
                if i < 0 || i as usize >= s.len() {
                    return Err(format!("index out of range: {i}").into());
                }
                Value::Int(i64::from(s.as_bytes()[i as usize]))
            }
            Value::Map(m) => match key {
                Value::String(k) => m.get(k).unwrap_or(Value::Nil),
                Value::Nil => return Err("value is nil; should be of type string".into()),
                other => {
                    return Err(
                        format!("value has type {}; should be string", other.type_name()).into(),
                    );
                }
            },
            other => {
                return Err(format!("can't index item of type {}", other.type_name()).into());
            }
        };
    }
    Ok(cur)
}

fn index_int(key: &Value) -> Result<i64, FnError> {
    match key {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        Value::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!("cannot index slice/array with type {}", other.type_name()).into()),
    }
}

/// Sprig's `slice`: `slice LIST [START [END]]`, which replaces Go's builtin in Helm.
fn slice(_: &mut Exec<'_>, a: &[Value]) -> Result<Value, FnError> {
    arity_min("slice", a, 1)?;
    let items = match a[0].data() {
        Value::List(items) => items,
        Value::String(s) => {
            let start = a.get(1).map_or(0, cast_int).max(0) as usize;
            let end = a.get(2).map_or(s.len() as i64, cast_int).max(0) as usize;
            if start > end
                || end > s.len()
                || !s.is_char_boundary(start)
                || !s.is_char_boundary(end)
            {
                return Err(format!("slice index out of range: [{start}:{end}]").into());
            }
            return Ok(Value::String(s[start..end].to_owned()));
        }
        other => return Err(format!("Cannot slice on type {}", other.type_name()).into()),
    };
    let start = a.get(1).map_or(0, cast_int).max(0) as usize;
    let end = a.get(2).map_or(items.len() as i64, cast_int).max(0) as usize;
    if start > end || end > items.len() {
        return Err(format!("slice bounds out of range [{start}:{end}]").into());
    }
    Ok(Value::list(items[start..end].to_vec()))
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
