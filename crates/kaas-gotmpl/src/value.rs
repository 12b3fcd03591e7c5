//! The values templates compute with: Go's dynamic `interface{}` values as a Rust enum.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A value a template works on, shaped like the Go values Helm hands to `text/template`.
///
/// Integers and floats stay apart because Go prints them differently: values that come
/// from YAML are `float64` in Helm (`1000000` prints as `1e+06`), while results of `len`,
/// `int` or `add` are integers. Maps are shared and mutable, as Go maps are: Sprig's
/// `set` and `unset` change a dict in place and every holder of it sees the change.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's `nil`: a missing key, a YAML `null`, an unset argument.
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Arc<Vec<Value>>),
    Map(Map),
    /// A Go object with fields and methods, such as `.Files` or `.Capabilities`.
    Object(Arc<dyn Object>),
}

/// A Go object reached from templates by field and method names.
///
/// Helm exposes some values as Go structs and types with methods (`.Files.Get "x"`,
/// `.Capabilities.APIVersions.Has "apps/v1"`); an `Object` is how the chart layer
/// provides them.
pub trait Object: Send + Sync + fmt::Debug {
    /// The Go type name, for `typeOf` and error messages (e.g. `engine.files`).
    fn type_name(&self) -> String;

    /// The field or method `name`, called with `args` (empty for fields and methods
    /// without parameters). `None` when the object has no such member; `Some(Err(_))`
    /// when the call failed.
    fn member(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>>;

    /// The object as plain data, for `range`, `len`, `index`, `toYaml` and `toJson`
    /// (Helm's `Files` is a map of names to contents). `None` when it has no such view.
    fn as_data(&self) -> Option<Value> {
        None
    }

    /// The text `{{ . }}` prints for it (Go's `String()` method or `%v`).
    fn to_text(&self) -> String;

    /// What Go's `==` compares for a value of a comparable struct type (a
    /// `time.Time`: its instant and zone); `None` for pointer types, which `eq`
    /// compares by identity.
    fn comparable_key(&self) -> Option<String> {
        None
    }
}

/// A shared, mutable string-keyed map: Go's `map[string]interface{}`.
///
/// Clones share the same entries; use [`Map::deep_copy`] for an independent copy.
#[derive(Clone, Default)]
pub struct Map(Arc<Mutex<BTreeMap<String, Value>>>);

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Value>> {
        // A panic while holding the lock cannot leave a BTreeMap half-updated in a way
        // that matters here, so a poisoned lock is used as it is.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: impl Into<String>, value: Value) {
        self.lock().insert(key.into(), value);
    }

    pub fn remove(&self, key: &str) -> Option<Value> {
        self.lock().remove(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The keys in sorted order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// A snapshot of the entries in key order; changes made while iterating over it
    /// do not disturb the iteration.
    pub fn entries(&self) -> Vec<(String, Value)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether both handles share the same entries.
    pub fn ptr_eq(&self, other: &Map) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// An independent copy, nested maps included.
    pub fn deep_copy(&self) -> Map {
        let out = Map::new();
        for (k, v) in self.entries() {
            out.insert(k, v.deep_copy());
        }
        out
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Map(Arc::new(Mutex::new(iter.into_iter().collect())))
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

impl Value {
    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    /// A map value from entries.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// An object value.
    pub fn object(o: impl Object + 'static) -> Value {
        Value::Object(Arc::new(o))
    }

    /// Converts JSON as Go's `encoding/json` decodes it into `interface{}`: every number
    /// becomes a `float64`. This is how Helm's values (read from YAML through JSON)
    /// reach templates, so `.Values` should be built with this.
    pub fn from_go_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::Array(items) => {
                Value::list(items.into_iter().map(Value::from_go_json).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (k, Value::from_go_json(v)))
                    .collect(),
            ),
            other => Value::from(other),
        }
    }

    /// Converts to JSON. Objects become their data view, or their text when they have none.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(m) => serde_json::Value::Object(
                m.entries()
                    .into_iter()
                    .map(|(k, v)| (k, v.to_json()))
                    .collect(),
            ),
            Value::Object(o) => match o.as_data() {
                Some(v) => v.to_json(),
                None => serde_json::Value::String(o.to_text()),
            },
        }
    }

    /// Go's truth: `false`, `0`, `nil` and empty strings, lists and maps are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Object(_) => true,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `reflect.Kind` name, as Sprig's `kindOf` reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(_) => "ptr",
        }
    }

    /// Go's type name, as `%T` and Sprig's `typeOf` print it.
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::String(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::Object(o) => o.type_name(),
        }
    }

    /// An independent copy: maps are copied, not shared.
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::List(items) => Value::list(items.iter().map(Value::deep_copy).collect()),
            Value::Map(m) => Value::Map(m.deep_copy()),
            other => other.clone(),
        }
    }

    /// The object's data view, or the value itself.
    pub(crate) fn data(&self) -> Value {
        match self {
            Value::Object(o) => o.as_data().unwrap_or_else(|| self.clone()),
            other => other.clone(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a.ptr_eq(b) || a.entries() == b.entries(),
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => m.fmt(f),
            Value::Object(o) => o.fmt(f),
        }
    }
}

impl From<serde_json::Value> for Value {
    /// Keeps JSON integers as integers; see [`Value::from_go_json`] for Helm's values.
    fn from(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::list(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => {
                Value::Map(map.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::list(items)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Map(m)
    }
}
