//! JSON as Go's `encoding/json` writes it: sorted keys, `<`, `>` and `&` escaped unless
//! raw, Go's float format.

use crate::fmt::format_float_json;
use crate::value::Value;

/// Writes `v` as JSON. `indent`: Sprig's `toPrettyJson` (two spaces); `escape_html`:
/// `json.Marshal`'s default, off for `toRawJson`.
pub fn to_json(v: &Value, indent: bool, escape_html: bool) -> String {
    let mut out = String::new();
    write(&mut out, v, indent, escape_html, 0);
    out
}

fn newline(out: &mut String, indent: bool, depth: usize) {
    if indent {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    }
}

fn write(out: &mut String, v: &Value, indent: bool, escape_html: bool, depth: usize) {
    match v.data() {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) if f.is_finite() => out.push_str(&format_float_json(f)),
        Value::Float(_) => out.push_str("null"),
        Value::String(s) => write_string(out, &s, escape_html),
        Value::Object(o) => write_string(out, &o.to_text(), escape_html),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write(out, item, indent, escape_html, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Map(m) => {
            let entries = m.entries();
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_string(out, k, escape_html);
                out.push(':');
                if indent {
                    out.push(' ');
                }
                write(out, item, indent, escape_html, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `fromJson`: JSON into values, numbers as Go decodes them into `interface{}`
/// (all `float64`).
pub fn from_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(Value::from_go_json)
        .map_err(|e| e.to_string())
}
