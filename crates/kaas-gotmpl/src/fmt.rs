//! Go's `fmt` as templates use it: `%v` printing of values and `printf`'s verbs.

use crate::value::Value;

/// What `{{ x }}` prints: `%v`, with `<no value>` for nil as `text/template` prints it.
pub(crate) fn print_value(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".to_owned(),
        other => format_v(other),
    }
}

/// Go's `%v` (and `fmt.Sprint` of one operand).
pub fn format_v(v: &Value) -> String {
    let mut out = String::new();
    write_v(&mut out, v);
    out
}

fn write_v(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_g(*f)),
        Value::String(s) => out.push_str(s),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.entries().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, item);
            }
            out.push(']');
        }
        Value::Object(o) => out.push_str(&o.to_text()),
    }
}

/// The shortest decimal digits of `f` and its decimal exponent (value = 0.d1d2... ×
/// 10^(exp+1), i.e. d1.d2... × 10^exp).
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_owned(), exp.parse().unwrap_or(0))
}

fn special_float(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is also `%v`: the shortest digits
/// that round-trip, in exponent form when the decimal exponent is below -4 or at least 6
/// (so `1000000.0` prints as `1e+06`).
pub fn format_float_g(f: f64) -> String {
    if let Some(s) = special_float(f) {
        return s;
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        format!("{sign}{}", exp_form(&digits, exp))
    } else {
        format!("{sign}{}", plain_form(&digits, exp))
    }
}

/// `d.ddde±XX`.
fn exp_form(digits: &str, exp: i32) -> String {
    let mut s = String::new();
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    s
}

/// Digits placed around the decimal point without an exponent.
fn plain_form(digits: &str, exp: i32) -> String {
    if exp < 0 {
        let zeros = (-exp - 1) as usize;
        format!("0.{}{}", "0".repeat(zeros), digits)
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{}{}", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// Go's `encoding/json` float format: plain between 1e-6 and 1e21, exponent otherwise
/// (with `e-7`, not `e-07`).
pub(crate) fn format_float_json(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let (digits, exp) = shortest_digits(f);
    let sign = if f < 0.0 { "-" } else { "" };
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let mut s = exp_form(&digits, exp);
        // Go trims e-07 to e-7.
        if let Some(i) = s.find("e-0") {
            s.replace_range(i..i + 3, "e-");
        }
        if let Some(i) = s.find("e+0") {
            s.replace_range(i..i + 3, "e+");
        }
        format!("{sign}{s}")
    } else {
        format!("{sign}{}", plain_form(&digits, exp))
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{ad}' | '\u{feff}'))
}

/// Go's `fmt.Sprint`: operands joined, with a space between two operands when neither
/// is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::String(_)) && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        out.push_str(&format_v(a));
    }
    out
}

/// Go's `fmt.Sprintln`: operands always separated by spaces, then a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(format_v).collect();
    format!("{}\n", parts.join(" "))
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs charts use: `%s %d %v %q %x %X %o %b %f %F %e %E
/// %g %G %t %c %T %%`, with flags, width and precision. Mismatches print as Go does
/// (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`).
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        if chars.peek() == Some(&'*') {
            chars.next();
            if let Some(Value::Int(w)) = args.get(next_arg) {
                spec.width = Some(w.unsigned_abs() as usize);
                spec.minus |= *w < 0;
            }
            next_arg += 1;
        } else {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                w.push(d);
                chars.next();
            }
            if !w.is_empty() {
                spec.width = w.parse().ok();
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                if let Some(Value::Int(p)) = args.get(next_arg) {
                    spec.prec = Some((*p).max(0) as usize);
                }
                next_arg += 1;
            } else {
                let mut p = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    p.push(d);
                    chars.next();
                }
                spec.prec = Some(p.parse().unwrap_or(0));
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next_arg += 1;
        out.push_str(&format_one(verb, spec, arg));
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".to_owned(),
                a => format!("{}={}", a.type_name(), format_v(a)),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn bad_verb(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", a.type_name(), format_v(a)),
    }
}

fn pad(s: String, spec: Spec, numeric: bool) -> String {
    let Some(width) = spec.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        let (sign, digits) = match s.strip_prefix(['-', '+']) {
            Some(rest) => (&s[..1], rest),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else if spec.zero && !numeric {
        format!("{}{s}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn sign_prefix(neg: bool, spec: Spec) -> &'static str {
    if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_one(verb: char, spec: Spec, arg: &Value) -> String {
    // Lists and maps apply the verb to their elements, as Go's fmt does.
    match arg {
        Value::List(items) if verb != 'T' && verb != 'v' => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| format_one(verb, Spec::default(), i))
                .collect();
            return pad(format!("[{}]", parts.join(" ")), spec, false);
        }
        Value::Map(m) if verb != 'T' && verb != 'v' => {
            let parts: Vec<String> = m
                .entries()
                .iter()
                .map(|(k, v)| format!("{}:{}", k, format_one(verb, Spec::default(), v)))
                .collect();
            return pad(format!("map[{}]", parts.join(" ")), spec, false);
        }
        _ => {}
    }
    match verb {
        'v' => match arg {
            Value::Int(_) | Value::Float(_) => format_one(
                if matches!(arg, Value::Int(_)) {
                    'd'
                } else {
                    'g'
                },
                spec,
                arg,
            ),
            Value::String(s) if spec.sharp => pad(go_quote(s), spec, false),
            _ => pad(format_v(arg), spec, false),
        },
        'T' => pad(arg.type_name(), spec, false),
        's' => match arg {
            Value::String(s) => {
                let s = match spec.prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                };
                pad(s, spec, false)
            }
            Value::Object(o) => pad(o.to_text(), spec, false),
            a => bad_verb(verb, a),
        },
        'q' => match arg {
            Value::String(s) => pad(go_quote(s), spec, false),
            Value::Int(i) => match char::from_u32(*i as u32) {
                Some(c) => pad(format!("'{}'", c), spec, false),
                None => bad_verb(verb, arg),
            },
            a => bad_verb(verb, a),
        },
        't' => match arg {
            Value::Bool(b) => pad(b.to_string(), spec, false),
            a => bad_verb(verb, a),
        },
        'd' | 'b' | 'o' | 'x' | 'X' | 'c' | 'U' => match arg {
            Value::Int(i) => {
                let abs = i.unsigned_abs();
                let body = match verb {
                    'd' => abs.to_string(),
                    'b' => format!("{abs:b}"),
                    'o' => {
                        if spec.sharp {
                            format!("0{abs:o}")
                        } else {
                            format!("{abs:o}")
                        }
                    }
                    'x' => {
                        if spec.sharp {
                            format!("0x{abs:x}")
                        } else {
                            format!("{abs:x}")
                        }
                    }
                    'X' => {
                        if spec.sharp {
                            format!("0X{abs:X}")
                        } else {
                            format!("{abs:X}")
                        }
                    }
                    'c' => {
                        return pad(
                            char::from_u32(*i as u32)
                                .map(String::from)
                                .unwrap_or_default(),
                            spec,
                            false,
                        );
                    }
                    _ => format!("U+{abs:04X}"),
                };
                let body = match spec.prec {
                    Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
                    _ => body,
                };
                pad(
                    format!("{}{body}", sign_prefix(*i < 0, spec)),
                    spec,
                    spec.prec.is_none(),
                )
            }
            Value::String(s) if matches!(verb, 'x' | 'X') => {
                let hex: String = s
                    .bytes()
                    .map(|b| {
                        if verb == 'x' {
                            format!("{b:02x}")
                        } else {
                            format!("{b:02X}")
                        }
                    })
                    .collect();
                pad(hex, spec, false)
            }
            Value::Float(f) if matches!(verb, 'x' | 'X' | 'b') => bad_verb(verb, &Value::Float(*f)),
            a => bad_verb(verb, a),
        },
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => match arg {
            Value::Float(f) => format_float(verb, spec, *f),
            a => bad_verb(verb, a),
        },
        _ => bad_verb(verb, arg),
    }
}

fn format_float(verb: char, spec: Spec, f: f64) -> String {
    if let Some(s) = special_float(f) {
        let s = if s == "+Inf" && !spec.plus {
            "+Inf".to_owned()
        } else {
            s
        };
        return pad(
            s,
            Spec {
                zero: false,
                ..spec
            },
            false,
        );
    }
    let neg = f.is_sign_negative() && f != 0.0 || (f == 0.0 && f.is_sign_negative());
    let abs = f.abs();
    let body = match verb {
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), abs),
        'e' | 'E' => {
            let s = format!("{:.*e}", spec.prec.unwrap_or(6), abs);
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let sign = if e < 0 { '-' } else { '+' };
            let body = format!("{m}e{sign}{:02}", e.unsigned_abs());
            if verb == 'E' {
                body.to_uppercase()
            } else {
                body
            }
        }
        _ => {
            let body = match spec.prec {
                None => format_float_g(abs),
                Some(p) => {
                    let p = p.max(1);
                    let s = format!("{:.*e}", p - 1, abs);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    if e < -4 || e >= p as i32 {
                        let m = if m.contains('.') {
                            m.trim_end_matches('0').trim_end_matches('.')
                        } else {
                            m
                        };
                        let sign = if e < 0 { '-' } else { '+' };
                        format!("{m}e{sign}{:02}", e.unsigned_abs())
                    } else {
                        let decimals = (p as i32 - 1 - e).max(0) as usize;
                        let s = format!("{:.*}", decimals, abs);
                        if s.contains('.') {
                            s.trim_end_matches('0').trim_end_matches('.').to_owned()
                        } else {
                            s
                        }
                    }
                }
            };
            if verb == 'G' {
                body.to_uppercase()
            } else {
                body
            }
        }
    };
    pad(format!("{}{body}", sign_prefix(neg, spec)), spec, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        let cases = [
            (3.0, "3"),
            (1000000.0, "1e+06"),
            (100000.0, "100000"),
            (0.5, "0.5"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1234567.5, "1.2345675e+06"),
            (-2.25, "-2.25"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_g(f), want, "{f}");
        }
    }

    #[test]
    fn json_floats_follow_encoding_json() {
        assert_eq!(format_float_json(1000000.0), "1000000");
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(1e-7), "1e-7");
        assert_eq!(format_float_json(0.5), "0.5");
    }

    #[test]
    fn printf_verbs() {
        let s = |f: &str, a: Vec<Value>| sprintf(f, &a);
        assert_eq!(s("%s-%s", vec!["a".into(), "b".into()]), "a-b");
        assert_eq!(s("%d", vec![Value::Int(5)]), "5");
        assert_eq!(s("%05d", vec![Value::Int(42)]), "00042");
        assert_eq!(s("%d", vec![Value::Float(5.0)]), "%!d(float64=5)");
        assert_eq!(s("%.2f", vec![Value::Float(1.23456)]), "1.23");
        assert_eq!(s("%q", vec!["a\"b".into()]), "\"a\\\"b\"");
        assert_eq!(s("%v", vec![Value::Float(1e6)]), "1e+06");
        assert_eq!(s("%x", vec![Value::Int(255)]), "ff");
        assert_eq!(s("%t", vec![Value::Bool(true)]), "true");
        assert_eq!(s("%s", vec![]), "%!s(MISSING)");
        assert_eq!(s("%s", vec![Value::Nil]), "%!s(<nil>)");
        assert_eq!(s("a", vec![Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(s("%-5s|", vec!["ab".into()]), "ab   |");
        assert_eq!(s("%5s|", vec!["ab".into()]), "   ab|");
        assert_eq!(s("%g", vec![Value::Float(0.5)]), "0.5");
        assert_eq!(
            s("%s", vec![Value::list(vec!["a".into(), "b".into()])]),
            "[a b]"
        );
    }
}
