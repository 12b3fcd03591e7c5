//! Sprig's list functions. The `must*` forms return errors where the plain forms would
/// make Go panic; here both fail the template with the same message.
use super::{Functions, arity, arity_min, cast_int, is_empty, list_items};
use crate::error::FnError;
use crate::exec::Exec;
use crate::value::Value;

type R = Result<Value, FnError>;

pub(super) fn register(f: &mut Functions) {
    f.builtin("list", |_, a| Ok(Value::list(a.to_vec())));
    for name in ["append", "push", "mustAppend", "mustPush"] {
        f.builtin(name, append);
    }
    for name in ["prepend", "mustPrepend"] {
        f.builtin(name, prepend);
    }
    f.builtin("concat", |_, a| {
        let mut out = Vec::new();
        for l in a {
            out.extend(list_items("concat", l)?.iter().cloned());
        }
        Ok(Value::list(out))
    });
    for name in ["first", "mustFirst"] {
        f.builtin(name, |_, a| {
            arity("first", a, 1)?;
            Ok(list_items("find first", &a[0])?
                .first()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["last", "mustLast"] {
        f.builtin(name, |_, a| {
            arity("last", a, 1)?;
            Ok(list_items("find last", &a[0])?
                .last()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["rest", "mustRest"] {
        f.builtin(name, |_, a| {
            arity("rest", a, 1)?;
            let items = list_items("find rest", &a[0])?;
            if items.is_empty() {
                return Ok(Value::Nil);
            }
            Ok(Value::list(items[1..].to_vec()))
        });
    }
    for name in ["initial", "mustInitial"] {
        f.builtin(name, |_, a| {
            arity("initial", a, 1)?;
            let items = list_items("find initial", &a[0])?;
            if items.is_empty() {
                return Ok(Value::Nil);
            }
            Ok(Value::list(items[..items.len() - 1].to_vec()))
        });
    }
    for name in ["uniq", "mustUniq"] {
        f.builtin(name, |_, a| {
            arity("uniq", a, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in list_items("uniq", &a[0])?.iter() {
                if !out.iter().any(|o| deep_equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        });
    }
    for name in ["without", "mustWithout"] {
        f.builtin(name, |_, a| {
            arity_min("without", a, 1)?;
            let omit = &a[1..];
            let out: Vec<Value> = list_items("without", &a[0])?
                .iter()
                .filter(|v| !omit.iter().any(|o| deep_equal(o, v)))
                .cloned()
                .collect();
            Ok(Value::list(out))
        });
    }
    for name in ["has", "mustHas"] {
        f.builtin(name, |_, a| {
            arity("has", a, 2)?;
            if a[1].is_nil() {
                return Ok(Value::Bool(false));
            }
            let items = list_items("find has", &a[1])?;
            Ok(Value::Bool(items.iter().any(|v| deep_equal(v, &a[0]))))
        });
    }
    for name in ["compact", "mustCompact"] {
        f.builtin(name, |_, a| {
            arity("compact", a, 1)?;
            let out: Vec<Value> = list_items("compact", &a[0])?
                .iter()
                .filter(|v| !is_empty(v))
                .cloned()
                .collect();
            Ok(Value::list(out))
        });
    }
    for name in ["reverse", "mustReverse"] {
        f.builtin(name, |_, a| {
            arity("reverse", a, 1)?;
            let mut out = list_items("reverse", &a[0])?.to_vec();
            out.reverse();
            Ok(Value::list(out))
        });
    }
    for name in ["chunk", "mustChunk"] {
        f.builtin(name, |_, a| {
            arity("chunk", a, 2)?;
            let size = cast_int(&a[0]).max(1) as usize;
            let items = list_items("chunk", &a[1])?;
            Ok(Value::list(
                items
                    .chunks(size)
                    .map(|c| Value::list(c.to_vec()))
                    .collect(),
            ))
        });
    }
    f.builtin("until", |_, a| {
        arity("until", a, 1)?;
        let n = cast_int(&a[0]);
        let step = if n < 0 { -1 } else { 1 };
        Ok(ints(until_step(0, n, step)))
    });
    f.builtin("untilStep", |_, a| {
        arity("untilStep", a, 3)?;
        Ok(ints(until_step(
            cast_int(&a[0]),
            cast_int(&a[1]),
            cast_int(&a[2]),
        )))
    });
    f.builtin("seq", seq);
}

fn ints(v: Vec<i64>) -> Value {
    Value::list(v.into_iter().map(Value::Int).collect())
}

fn append(_: &mut Exec<'_>, a: &[Value]) -> R {
    arity("append", a, 2)?;
    let mut out = list_items("append", &a[0])?.to_vec();
    out.push(a[1].clone());
    Ok(Value::list(out))
}

fn prepend(_: &mut Exec<'_>, a: &[Value]) -> R {
    arity("prepend", a, 2)?;
    let mut out = vec![a[1].clone()];
    out.extend(list_items("prepend", &a[0])?.iter().cloned());
    Ok(Value::list(out))
}

/// Sprig's `untilStep`.
fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut v = Vec::new();
    if stop < start {
        if step >= 0 {
            return v;
        }
        let mut i = start;
        while i > stop {
            v.push(i);
            i += step;
        }
        return v;
    }
    if step <= 0 {
        return v;
    }
    let mut i = start;
    while i < stop {
        v.push(i);
        i += step;
    }
    v
}

/// Sprig's `seq`, which mimics the Unix command: `seq END`, `seq START END`,
/// `seq START STEP END`, as a space-separated string.
fn seq(_: &mut Exec<'_>, a: &[Value]) -> R {
    let p: Vec<i64> = a.iter().map(cast_int).collect();
    let nums = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            until_step(1, end + inc, inc)
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(*start, end + step, step)
        }
        [start, step, end] => {
            let mut inc = 1;
            if end < start {
                inc = -1;
                if *step > 0 {
                    return Ok(Value::String(String::new()));
                }
            }
            until_step(*start, end + inc, *step)
        }
        _ => Vec::new(),
    };
    let parts: Vec<String> = nums.iter().map(i64::to_string).collect();
    Ok(Value::String(parts.join(" ")))
}

/// Go's `reflect.DeepEqual` on template values: an int never equals a float.
pub(crate) fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            let (ex, ey) = (x.entries(), y.entries());
            ex.len() == ey.len()
                && ex
                    .iter()
                    .zip(ey.iter())
                    .all(|((kx, vx), (ky, vy))| kx == ky && deep_equal(vx, vy))
        }
        _ => a == b,
    }
}
