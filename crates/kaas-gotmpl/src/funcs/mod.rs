//! The function table: Go's builtins, Sprig's functions and Helm's engine functions.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::FnError;
use crate::exec::Exec;
use crate::fmt::format_v;
use crate::value::Value;

mod builtin;
mod helm;
mod sprig_dicts;
mod sprig_lists;
mod sprig_math;
mod sprig_misc;
mod sprig_strings;

pub(crate) type Builtin = fn(&mut Exec<'_>, &[Value]) -> Result<Value, FnError>;

/// A function a user of the crate adds: arguments in, a value or an error message out.
pub type CustomFn = dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync;

#[derive(Clone)]
pub(crate) enum Func {
    Builtin(Builtin),
    Custom(Arc<CustomFn>),
}

/// The functions templates may call, by name. Names are checked when a template is
/// parsed, as Go does: calling an unknown function is a parse error.
#[derive(Clone, Default)]
pub struct Functions {
    map: HashMap<String, Func>,
}

impl Functions {
    /// Go's builtins only (`and`, `or`, `not`, `eq`, `len`, `index`, `printf`, ...).
    pub fn go() -> Self {
        let mut f = Functions::default();
        builtin::register(&mut f);
        f
    }

    /// What Helm gives chart templates: Go's builtins, Sprig's functions (without `env`
    /// and `expandenv`, which Helm removes) and Helm's `include`, `tpl`, `required`,
    /// `toYaml` and friends. Functions that kaas refuses (`lookup`, certificate and key
    /// generation, ...) are present and fail when called, so charts that only mention
    /// them in branches not taken still render.
    pub fn helm() -> Self {
        let mut f = Self::go();
        sprig_strings::register(&mut f);
        sprig_lists::register(&mut f);
        sprig_dicts::register(&mut f);
        sprig_math::register(&mut f);
        sprig_misc::register(&mut f);
        helm::register(&mut f);
        f
    }

    /// Adds or replaces a function.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.map.insert(name.into(), Func::Custom(Arc::new(f)));
    }

    /// Removes a function, so templates calling it no longer parse.
    pub fn remove(&mut self, name: &str) {
        self.map.remove(name);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// All function names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.map.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Func> {
        self.map.get(name).cloned()
    }

    pub(crate) fn builtin(&mut self, name: &str, f: Builtin) {
        self.map.insert(name.to_owned(), Func::Builtin(f));
    }
}

/// What refused functions return; the executor puts the reason from [`REFUSED`] in.
pub(crate) const REFUSED_MARKER: &str = "not supported by kaas";

/// Names of functions kaas refuses, with why. They parse, and fail when called.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "lookup",
        "lookup is not supported: kaas renders charts without a live cluster",
    ),
    (
        "genCA",
        "genCA is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genCAWithKey",
        "genCAWithKey is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genSelfSignedCert",
        "genSelfSignedCert is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genSelfSignedCertWithKey",
        "genSelfSignedCertWithKey is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genSignedCert",
        "genSignedCert is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genSignedCertWithKey",
        "genSignedCertWithKey is not supported: kaas does not generate certificates in templates",
    ),
    (
        "genPrivateKey",
        "genPrivateKey is not supported: kaas does not generate keys in templates",
    ),
    ("buildCustomCert", "buildCustomCert is not supported"),
    ("derivePassword", "derivePassword is not supported"),
    ("encryptAES", "encryptAES is not supported"),
    ("decryptAES", "decryptAES is not supported"),
    ("htpasswd", "htpasswd is not supported"),
    ("bcrypt", "bcrypt is not supported"),
    ("toToml", "toToml is not supported"),
    ("mustToToml", "mustToToml is not supported"),
    ("fromToml", "fromToml is not supported"),
];

// ---- argument helpers shared by the function modules ----

/// Checks an exact argument count, with Go's message.
pub(crate) fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FnError> {
    if args.len() != n {
        return Err(FnError::bare(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Checks a minimum argument count (variadic functions).
pub(crate) fn arity_min(name: &str, args: &[Value], n: usize) -> Result<(), FnError> {
    if args.len() < n {
        return Err(FnError::bare(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        )));
    }
    Ok(())
}

/// Sprig's `strval`/`toString`: strings as they are, nil as `<nil>`, else `%v`.
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => format_v(other),
    }
}

/// A `string` parameter. Go rejects non-strings here; kaas is lenient and converts
/// (nil becomes empty), which changes nothing for charts that render under Helm.
pub(crate) fn string_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil => String::new(),
        other => format_v(other),
    }
}

/// An `int` parameter (Go rejects floats here; kaas truncates them).
pub(crate) fn int_arg(v: &Value) -> i64 {
    cast_int(v)
}

/// spf13/cast's `ToInt64`, as Sprig's arithmetic uses it: floats truncate, strings
/// parse (with Go's base prefixes), anything else is 0.
pub(crate) fn cast_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(s).unwrap_or(0),
        _ => 0,
    }
}

/// spf13/cast's `ToFloat64`.
pub(crate) fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// `strconv.ParseInt(s, 0, 64)` after cast's trimming of a `.0` suffix.
pub(crate) fn parse_go_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = match s.split_once('.') {
        Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int,
        _ => s,
    };
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse().ok()
    }?;
    Some(if neg { -v } else { v })
}

/// Sprig's `empty`: nil, false, 0, and empty strings, lists and maps.
pub(crate) fn is_empty(v: &Value) -> bool {
    !v.data().is_truthy()
}

/// The items of a list argument (objects through their data view).
pub(crate) fn list_items(name: &str, v: &Value) -> Result<Arc<Vec<Value>>, FnError> {
    match v.data() {
        Value::List(items) => Ok(items),
        Value::Nil => Ok(Arc::new(Vec::new())),
        other => Err(FnError::new(format!(
            "Cannot {name} on type {}",
            other.type_name()
        ))),
    }
}

/// Sprig's `strslice`: a list as strings (nil elements dropped), a string as itself.
pub(crate) fn strslice(v: &Value) -> Vec<String> {
    match v.data() {
        Value::List(items) => items.iter().filter(|i| !i.is_nil()).map(strval).collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(&other)],
    }
}

/// Whether Go's `strconv.ParseInt(s, 0, 64)` or `ParseUint(s, 0, 64)` accepts `s`.
pub(crate) fn parse_go_int_strict(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    !digits.is_empty() && u64::from_str_radix(digits, radix).is_ok()
}
