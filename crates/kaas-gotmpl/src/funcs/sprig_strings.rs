//! Sprig's string functions.

use super::{Functions, arity, arity_min, int_arg, string_arg, strslice, strval};
use crate::fmt::go_quote;
use crate::value::{Map, Value};

fn s(v: String) -> Result<Value, crate::error::FnError> {
    Ok(Value::String(v))
}

pub(super) fn register(f: &mut Functions) {
    f.builtin("upper", |_, a| {
        arity("upper", a, 1)?;
        s(string_arg(&a[0]).to_uppercase())
    });
    f.builtin("lower", |_, a| {
        arity("lower", a, 1)?;
        s(string_arg(&a[0]).to_lowercase())
    });
    f.builtin("title", |_, a| {
        arity("title", a, 1)?;
        s(title(&string_arg(&a[0])))
    });
    f.builtin("untitle", |_, a| {
        arity("untitle", a, 1)?;
        s(untitle(&string_arg(&a[0])))
    });
    f.builtin("trim", |_, a| {
        arity("trim", a, 1)?;
        s(string_arg(&a[0]).trim().to_owned())
    });
    f.builtin("trimAll", |_, a| {
        arity("trimAll", a, 2)?;
        let cut: Vec<char> = string_arg(&a[0]).chars().collect();
        s(string_arg(&a[1]).trim_matches(cut.as_slice()).to_owned())
    });
    f.builtin("trimPrefix", |_, a| {
        arity("trimPrefix", a, 2)?;
        let (p, v) = (string_arg(&a[0]), string_arg(&a[1]));
        s(v.strip_prefix(p.as_str()).unwrap_or(&v).to_owned())
    });
    f.builtin("trimSuffix", |_, a| {
        arity("trimSuffix", a, 2)?;
        let (p, v) = (string_arg(&a[0]), string_arg(&a[1]));
        s(v.strip_suffix(p.as_str()).unwrap_or(&v).to_owned())
    });
    f.builtin("trunc", |_, a| {
        arity("trunc", a, 2)?;
        s(trunc(int_arg(&a[0]), &string_arg(&a[1])))
    });
    f.builtin("abbrev", |_, a| {
        arity("abbrev", a, 2)?;
        let (w, v) = (int_arg(&a[0]), string_arg(&a[1]));
        if w < 4 || v.len() as i64 <= w {
            return s(v);
        }
        s(format!("{}...", byte_prefix(&v, (w - 3) as usize)))
    });
    f.builtin("abbrevboth", |_, a| {
        arity("abbrevboth", a, 3)?;
        let (left, right, v) = (int_arg(&a[0]), int_arg(&a[1]), string_arg(&a[2]));
        s(abbrev_both(&v, left, right))
    });
    f.builtin("substr", |_, a| {
        arity("substr", a, 3)?;
        let (start, end, v) = (int_arg(&a[0]), int_arg(&a[1]), string_arg(&a[2]));
        s(substr(start, end, &v))
    });
    f.builtin("replace", |_, a| {
        arity("replace", a, 3)?;
        let (old, new, src) = (string_arg(&a[0]), string_arg(&a[1]), string_arg(&a[2]));
        s(go_replace(&src, &old, &new))
    });
    f.builtin("repeat", |_, a| {
        arity("repeat", a, 2)?;
        s(string_arg(&a[1]).repeat(int_arg(&a[0]).max(0) as usize))
    });
    f.builtin("nospace", |_, a| {
        arity("nospace", a, 1)?;
        s(string_arg(&a[0])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect())
    });
    f.builtin("contains", |_, a| {
        arity("contains", a, 2)?;
        Ok(Value::Bool(string_arg(&a[1]).contains(&string_arg(&a[0]))))
    });
    f.builtin("hasPrefix", |_, a| {
        arity("hasPrefix", a, 2)?;
        Ok(Value::Bool(
            string_arg(&a[1]).starts_with(&string_arg(&a[0])),
        ))
    });
    f.builtin("hasSuffix", |_, a| {
        arity("hasSuffix", a, 2)?;
        Ok(Value::Bool(string_arg(&a[1]).ends_with(&string_arg(&a[0]))))
    });
    f.builtin("indent", |_, a| {
        arity("indent", a, 2)?;
        s(indent(int_arg(&a[0]), &string_arg(&a[1])))
    });
    f.builtin("nindent", |_, a| {
        arity("nindent", a, 2)?;
        s(format!("\n{}", indent(int_arg(&a[0]), &string_arg(&a[1]))))
    });
    f.builtin("wrap", |_, a| {
        arity("wrap", a, 2)?;
        s(wrap(&string_arg(&a[1]), int_arg(&a[0]), "\n", false))
    });
    f.builtin("wrapWith", |_, a| {
        arity("wrapWith", a, 3)?;
        s(wrap(
            &string_arg(&a[2]),
            int_arg(&a[0]),
            &string_arg(&a[1]),
            true,
        ))
    });
    f.builtin("camelcase", |_, a| {
        arity("camelcase", a, 1)?;
        s(camel_case(&string_arg(&a[0])))
    });
    f.builtin("snakecase", |_, a| {
        arity("snakecase", a, 1)?;
        s(words(&string_arg(&a[0])).join("_"))
    });
    f.builtin("kebabcase", |_, a| {
        arity("kebabcase", a, 1)?;
        s(words(&string_arg(&a[0])).join("-"))
    });
    f.builtin("swapcase", |_, a| {
        arity("swapcase", a, 1)?;
        s(string_arg(&a[0])
            .chars()
            .flat_map(|c| {
                if c.is_uppercase() {
                    c.to_lowercase().collect::<Vec<_>>()
                } else {
                    c.to_uppercase().collect::<Vec<_>>()
                }
            })
            .collect())
    });
    f.builtin("initials", |_, a| {
        arity("initials", a, 1)?;
        s(string_arg(&a[0])
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect())
    });
    f.builtin("plural", |_, a| {
        arity("plural", a, 3)?;
        let n = int_arg(&a[2]);
        s(if n == 1 {
            string_arg(&a[0])
        } else {
            string_arg(&a[1])
        })
    });
    f.builtin("quote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| go_quote(&strval(v)))
            .collect();
        s(parts.join(" "))
    });
    f.builtin("squote", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        s(parts.join(" "))
    });
    f.builtin("cat", |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(crate::fmt::format_v)
            .collect();
        s(parts.join(" "))
    });
    f.builtin("split", |_, a| {
        arity("split", a, 2)?;
        let (sep, v) = (string_arg(&a[0]), string_arg(&a[1]));
        Ok(numbered(go_split(&v, &sep, -1)))
    });
    f.builtin("splitn", |_, a| {
        arity("splitn", a, 3)?;
        let (sep, n, v) = (string_arg(&a[0]), int_arg(&a[1]), string_arg(&a[2]));
        Ok(numbered(go_split(&v, &sep, n)))
    });
    f.builtin("splitList", |_, a| {
        arity("splitList", a, 2)?;
        let (sep, v) = (string_arg(&a[0]), string_arg(&a[1]));
        Ok(Value::list(
            go_split(&v, &sep, -1)
                .into_iter()
                .map(Value::String)
                .collect(),
        ))
    });
    f.builtin("join", |_, a| {
        arity("join", a, 2)?;
        s(strslice(&a[1]).join(&string_arg(&a[0])))
    });
    f.builtin("toString", |_, a| {
        arity("toString", a, 1)?;
        s(strval(&a[0]))
    });
    f.builtin("toStrings", |_, a| {
        arity("toStrings", a, 1)?;
        Ok(Value::list(
            strslice(&a[0]).into_iter().map(Value::String).collect(),
        ))
    });
    f.builtin("sortAlpha", |_, a| {
        arity("sortAlpha", a, 1)?;
        let mut items = strslice(&a[0]);
        items.sort();
        Ok(Value::list(items.into_iter().map(Value::String).collect()))
    });
    f.builtin("shuffle", |_, a| {
        arity("shuffle", a, 1)?;
        use rand::seq::SliceRandom;
        let mut chars: Vec<char> = string_arg(&a[0]).chars().collect();
        chars.shuffle(&mut rand::rng());
        s(chars.into_iter().collect())
    });
    f.builtin("tuple", |_, a| Ok(Value::list(a.to_vec())));
    let _ = arity_min;
}

/// A byte-length prefix that does not split a character.
fn byte_prefix(s: &str, n: usize) -> &str {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

fn byte_suffix_from(s: &str, n: usize) -> &str {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n += 1;
    }
    &s[n..]
}

/// Sprig's `trunc`: the first `c` bytes, or for negative `c` the last `-c`.
pub(crate) fn trunc(c: i64, v: &str) -> String {
    let len = v.len() as i64;
    if c < 0 && len + c > 0 {
        return byte_suffix_from(v, (len + c) as usize).to_owned();
    }
    if c >= 0 && len > c {
        return byte_prefix(v, c as usize).to_owned();
    }
    v.to_owned()
}

fn substr(start: i64, end: i64, v: &str) -> String {
    let len = v.len() as i64;
    if start < 0 {
        return byte_prefix(v, end.clamp(0, len) as usize).to_owned();
    }
    let start = start.min(len) as usize;
    if end < 0 || end > len {
        return byte_suffix_from(v, start).to_owned();
    }
    let end = (end as usize).max(start);
    byte_prefix(byte_suffix_from(v, start), end - start).to_owned()
}

fn abbrev_both(v: &str, left: i64, right: i64) -> String {
    if right < 4 || left > 0 && right < 7 {
        return v.to_owned();
    }
    let len = v.len() as i64;
    if len <= right {
        return v.to_owned();
    }
    let mut offset = left.max(0);
    if offset > len {
        offset = len;
    }
    if len - offset < right - 3 {
        offset = len - (right - 3);
    }
    if offset <= 4 {
        return format!("{}...", byte_prefix(v, (right - 3) as usize));
    }
    if offset + right - 3 < len {
        let rest = byte_suffix_from(v, offset as usize);
        return format!("...{}", abbrev_plain(rest, right - 3));
    }
    format!("...{}", byte_suffix_from(v, (len - (right - 3)) as usize))
}

fn abbrev_plain(v: &str, w: i64) -> String {
    if w < 4 || v.len() as i64 <= w {
        return v.to_owned();
    }
    format!("{}...", byte_prefix(v, (w - 3) as usize))
}

/// Go's `strings.Replace(src, old, new, -1)`, including an empty `old`, which inserts
/// `new` around every character.
fn go_replace(src: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in src.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    src.replace(old, new)
}

/// Sprig's `indent`: every line, the first included, prefixed with `n` spaces.
pub(crate) fn indent(n: i64, v: &str) -> String {
    let pad = " ".repeat(n.max(0) as usize);
    format!("{pad}{}", v.replace('\n', &format!("\n{pad}")))
}

/// Go's `strings.SplitN` (`n < 0`: all parts).
fn go_split(v: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = v.chars().map(String::from).collect();
        if n > 0 && chars.len() > n as usize {
            let mut head: Vec<String> = chars[..n as usize - 1].to_vec();
            head.push(chars[n as usize - 1..].concat());
            return head;
        }
        return chars;
    }
    if n < 0 {
        v.split(sep).map(str::to_owned).collect()
    } else {
        v.splitn(n as usize, sep).map(str::to_owned).collect()
    }
}

/// Sprig's `split` result: a dict with keys `_0`, `_1`, ...
fn numbered(parts: Vec<String>) -> Value {
    let m = Map::new();
    for (i, p) in parts.into_iter().enumerate() {
        m.insert(format!("_{i}"), Value::String(p));
    }
    Value::Map(m)
}

/// Go's `strings.Title`: the first letter of every word upper-cased.
pub(crate) fn title(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_sep = true;
    for c in v.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = is_separator(c);
    }
    out
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        !(c.is_ascii_alphanumeric() || c == '_')
    } else if c.is_alphanumeric() {
        false
    } else {
        c.is_whitespace()
    }
}

fn untitle(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_space = true;
    for c in v.chars() {
        if prev_space {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

/// goutils' `WrapCustom`.
fn wrap(v: &str, width: i64, newline: &str, wrap_long: bool) -> String {
    if v.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline };
    let width = width.max(1) as usize;
    let bytes = v.as_bytes();
    let len = v.len();
    let mut offset = 0usize;
    let mut out = String::new();
    while len - offset > width {
        if bytes[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(len);
        match v[offset..end].rfind(' ') {
            Some(i) => {
                out.push_str(&v[offset..offset + i]);
                out.push_str(newline);
                offset += i + 1;
            }
            None if wrap_long => {
                let end = byte_prefix(v, width + offset).len();
                out.push_str(&v[offset..end]);
                out.push_str(newline);
                offset = end.max(offset + 1);
            }
            None => {
                let end = width + offset;
                match v[end..].find(' ') {
                    None => {
                        out.push_str(&v[offset..]);
                        offset = len;
                    }
                    Some(i) => {
                        out.push_str(&v[offset..end + i]);
                        out.push_str(newline);
                        offset = end + i + 1;
                    }
                }
            }
        }
    }
    out.push_str(&v[offset..]);
    out
}

/// Splits an identifier into lower-case words, as xstrings' snake and kebab case do:
/// at separators, before an upper-case letter that follows a lower-case one or starts
/// a capitalised word after an acronym, and between letters and digits.
fn words(v: &str) -> Vec<String> {
    let chars: Vec<char> = v.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c.is_whitespace() || c == '.' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if let Some(&p) = i.checked_sub(1).and_then(|j| chars.get(j)) {
            let next = chars.get(i + 1).copied();
            let boundary = (c.is_uppercase() && (p.is_lowercase() || p.is_ascii_digit()))
                || (c.is_uppercase() && p.is_uppercase() && next.is_some_and(char::is_lowercase))
                || (c.is_ascii_digit() && p.is_alphabetic());
            if boundary && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// xstrings' `ToCamelCase`: words (split at `_`, `-` and spaces) with their first
/// letter upper-cased, the rest kept.
fn camel_case(v: &str) -> String {
    let mut out = String::new();
    let mut upper_next = true;
    for c in v.chars() {
        if c == '_' || c == '-' || c.is_whitespace() {
            upper_next = true;
            continue;
        }
        if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunc_and_substr_count_bytes() {
        assert_eq!(trunc(5, "hello world"), "hello");
        assert_eq!(trunc(-5, "hello world"), "world");
        assert_eq!(trunc(63, "short"), "short");
        assert_eq!(substr(0, 5, "hello world"), "hello");
        assert_eq!(substr(6, 100, "hello world"), "world");
    }

    #[test]
    fn wrap_breaks_at_spaces() {
        assert_eq!(wrap("hello world foo", 5, "\n", false), "hello\nworld\nfoo");
        assert_eq!(wrap("abcdefghij", 3, "\n", false), "abcdefghij");
        assert_eq!(wrap("abcdefghij", 3, "\n", true), "abc\ndef\nghi\nj");
    }

    #[test]
    fn case_conversions() {
        assert_eq!(words("FirstName").join("_"), "first_name");
        assert_eq!(words("HTTPServer").join("_"), "http_server");
        assert_eq!(camel_case("http_server"), "HttpServer");
        assert_eq!(title("hello world-foo"), "Hello World-Foo");
    }
}
