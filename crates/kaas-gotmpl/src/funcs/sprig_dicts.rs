//! Sprig's dict functions. Dicts are shared: `set`, `unset` and `merge` change them in
//! place, as in Go.

use super::{Functions, arity, arity_min, is_empty, string_arg, strval};
use crate::error::FnError;
use crate::value::{Map, Value};

fn dict_arg(_name: &str, v: &Value) -> Result<Map, FnError> {
    match v.data() {
        Value::Map(m) => Ok(m),
        Value::Nil => Ok(Map::new()),
        other => Err(FnError::new(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            other.type_name()
        ))),
    }
}

pub(super) fn register(f: &mut Functions) {
    f.builtin("dict", |_, a| {
        let m = Map::new();
        for pair in a.chunks(2) {
            let key = strval(&pair[0]);
            let value = pair
                .get(1)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()));
            m.insert(key, value);
        }
        Ok(Value::Map(m))
    });
    f.builtin("get", |_, a| {
        arity("get", a, 2)?;
        let m = dict_arg("get", &a[0])?;
        Ok(m.get(&string_arg(&a[1]))
            .unwrap_or_else(|| Value::String(String::new())))
    });
    f.builtin("set", |_, a| {
        arity("set", a, 3)?;
        let m = dict_arg("set", &a[0])?;
        m.insert(string_arg(&a[1]), a[2].clone());
        Ok(Value::Map(m))
    });
    f.builtin("unset", |_, a| {
        arity("unset", a, 2)?;
        let m = dict_arg("unset", &a[0])?;
        m.remove(&string_arg(&a[1]));
        Ok(Value::Map(m))
    });
    f.builtin("hasKey", |_, a| {
        arity("hasKey", a, 2)?;
        let m = dict_arg("hasKey", &a[0])?;
        Ok(Value::Bool(m.contains_key(&string_arg(&a[1]))))
    });
    f.builtin("keys", |_, a| {
        let mut out = Vec::new();
        for d in a {
            out.extend(dict_arg("keys", d)?.keys().into_iter().map(Value::String));
        }
        Ok(Value::list(out))
    });
    f.builtin("values", |_, a| {
        arity("values", a, 1)?;
        let m = dict_arg("values", &a[0])?;
        Ok(Value::list(
            m.entries().into_iter().map(|(_, v)| v).collect(),
        ))
    });
    f.builtin("pluck", |_, a| {
        arity_min("pluck", a, 1)?;
        let key = string_arg(&a[0]);
        let mut out = Vec::new();
        for d in &a[1..] {
            if let Some(v) = dict_arg("pluck", d)?.get(&key) {
                out.push(v);
            }
        }
        Ok(Value::list(out))
    });
    f.builtin("pick", |_, a| {
        arity_min("pick", a, 1)?;
        let m = dict_arg("pick", &a[0])?;
        let out = Map::new();
        for k in &a[1..] {
            let k = string_arg(k);
            if let Some(v) = m.get(&k) {
                out.insert(k, v);
            }
        }
        Ok(Value::Map(out))
    });
    f.builtin("omit", |_, a| {
        arity_min("omit", a, 1)?;
        let m = dict_arg("omit", &a[0])?;
        let omit: Vec<String> = a[1..].iter().map(string_arg).collect();
        let out: Map = m
            .entries()
            .into_iter()
            .filter(|(k, _)| !omit.contains(k))
            .collect();
        Ok(Value::Map(out))
    });
    for name in ["merge", "mustMerge"] {
        f.builtin(name, |_, a| {
            arity_min("merge", a, 1)?;
            let dst = dict_arg("merge", &a[0])?;
            for src in &a[1..] {
                merge_into(&dst, &dict_arg("merge", src)?, false);
            }
            Ok(Value::Map(dst))
        });
    }
    for name in ["mergeOverwrite", "mustMergeOverwrite"] {
        f.builtin(name, |_, a| {
            arity_min("mergeOverwrite", a, 1)?;
            let dst = dict_arg("mergeOverwrite", &a[0])?;
            for src in &a[1..] {
                merge_into(&dst, &dict_arg("mergeOverwrite", src)?, true);
            }
            Ok(Value::Map(dst))
        });
    }
    for name in ["deepCopy", "mustDeepCopy"] {
        f.builtin(name, |_, a| {
            arity("deepCopy", a, 1)?;
            Ok(a[0].deep_copy())
        });
    }
    f.builtin("dig", |_, a| {
        if a.len() < 3 {
            return Err("dig needs at least three arguments".into());
        }
        let dict = dict_arg("dig", &a[a.len() - 1])?;
        let default = a[a.len() - 2].clone();
        let keys: Vec<String> = a[..a.len() - 2].iter().map(string_arg).collect();
        let mut cur = dict;
        for (i, k) in keys.iter().enumerate() {
            let Some(step) = cur.get(k) else {
                return Ok(default);
            };
            if i == keys.len() - 1 {
                return Ok(step);
            }
            cur = match step.data() {
                Value::Map(m) => m,
                other => {
                    return Err(format!(
                        "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                        other.type_name()
                    )
                    .into());
                }
            };
        }
        Ok(default)
    });
}

/// mergo's map merge as Sprig's `merge` (`overwrite` false) and `mergeOverwrite` use it:
/// nested dicts merge recursively; otherwise a source entry is taken when the
/// destination lacks the key or holds an empty value, or always when overwriting
/// (empty values included; a nil source entry only when overwriting). A non-empty
/// destination entry is never replaced by a source dict or list unless both are dicts.
pub(crate) fn merge_into(dst: &Map, src: &Map, overwrite: bool) {
    for (k, sv) in src.entries() {
        let dv = dst.get(&k);
        if sv.is_nil() {
            if overwrite {
                dst.insert(k, Value::Nil);
            }
            continue;
        }
        if let (Value::Map(sm), Some(Value::Map(dm))) = (&sv, &dv)
            && !dm.ptr_eq(sm)
        {
            merge_into(dm, sm, overwrite);
        }
        let dst_filled = dv.as_ref().is_some_and(|d| !is_empty(d));
        if dst_filled && matches!(sv, Value::Map(_) | Value::List(_)) {
            continue;
        }
        if overwrite || !dst_filled {
            dst.insert(k, sv);
        }
    }
}
