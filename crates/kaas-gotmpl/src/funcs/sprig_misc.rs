//! Sprig's defaults, reflection, encodings, hashes, regexes, versions, dates, random
//! values, paths and URLs; and the functions kaas refuses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rand::Rng;
use regex::Regex;

use super::sprig_lists::deep_equal;
use super::{Functions, REFUSED, arity, arity_min, cast_int, is_empty, string_arg};
use crate::error::FnError;
use crate::semver::{Version, semver_compare};
use crate::value::{Map, Object, Value};

type R = Result<Value, FnError>;

fn s(v: String) -> R {
    Ok(Value::String(v))
}

pub(super) fn register(f: &mut Functions) {
    f.builtin("default", |_, a| {
        arity_min("default", a, 1)?;
        match a.get(1) {
            Some(given) if !is_empty(given) => Ok(given.clone()),
            _ => Ok(a[0].clone()),
        }
    });
    f.builtin("empty", |_, a| {
        arity("empty", a, 1)?;
        Ok(Value::Bool(is_empty(&a[0])))
    });
    f.builtin("coalesce", |_, a| {
        Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or_default())
    });
    f.builtin("all", |_, a| {
        Ok(Value::Bool(a.iter().all(|v| !is_empty(v))))
    });
    f.builtin("any", |_, a| {
        Ok(Value::Bool(a.iter().any(|v| !is_empty(v))))
    });
    f.builtin("ternary", |_, a| {
        arity("ternary", a, 3)?;
        Ok(if a[2].is_truthy() {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });
    f.builtin("kindOf", |_, a| {
        arity("kindOf", a, 1)?;
        s(a[0].kind().to_owned())
    });
    f.builtin("kindIs", |_, a| {
        arity("kindIs", a, 2)?;
        Ok(Value::Bool(string_arg(&a[0]) == a[1].kind()))
    });
    f.builtin("typeOf", |_, a| {
        arity("typeOf", a, 1)?;
        s(a[0].type_name())
    });
    f.builtin("typeIs", |_, a| {
        arity("typeIs", a, 2)?;
        Ok(Value::Bool(string_arg(&a[0]) == a[1].type_name()))
    });
    f.builtin("typeIsLike", |_, a| {
        arity("typeIsLike", a, 2)?;
        let (want, t) = (string_arg(&a[0]), a[1].type_name());
        Ok(Value::Bool(want == t || format!("*{want}") == t))
    });
    f.builtin("deepEqual", |_, a| {
        arity("deepEqual", a, 2)?;
        Ok(Value::Bool(deep_equal(&a[0], &a[1])))
    });

    // Encodings and hashes.
    f.builtin("b64enc", |_, a| {
        arity("b64enc", a, 1)?;
        s(STANDARD.encode(string_arg(&a[0])))
    });
    f.builtin("b64dec", |_, a| {
        arity("b64dec", a, 1)?;
        match STANDARD.decode(string_arg(&a[0])) {
            Ok(bytes) => s(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => s(e.to_string()),
        }
    });
    f.builtin("b32enc", |_, a| {
        arity("b32enc", a, 1)?;
        s(base32_encode(string_arg(&a[0]).as_bytes()))
    });
    f.builtin("b32dec", |_, a| {
        arity("b32dec", a, 1)?;
        match base32_decode(&string_arg(&a[0])) {
            Some(bytes) => s(String::from_utf8_lossy(&bytes).into_owned()),
            None => s("illegal base32 data".to_owned()),
        }
    });
    f.builtin("sha256sum", |_, a| {
        arity("sha256sum", a, 1)?;
        s(digest_hex(&ring::digest::SHA256, &string_arg(&a[0])))
    });
    f.builtin("sha1sum", |_, a| {
        arity("sha1sum", a, 1)?;
        s(digest_hex(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &string_arg(&a[0]),
        ))
    });
    f.builtin("sha512sum", |_, a| {
        arity("sha512sum", a, 1)?;
        s(digest_hex(&ring::digest::SHA512, &string_arg(&a[0])))
    });
    f.builtin("adler32sum", |_, a| {
        arity("adler32sum", a, 1)?;
        s(adler32(string_arg(&a[0]).as_bytes()).to_string())
    });

    // Regular expressions (RE2 syntax, as Go's regexp).
    for (name, must) in [("regexMatch", false), ("mustRegexMatch", true)] {
        let f_ = if must { regex_match_must } else { regex_match };
        f.builtin(name, f_);
    }
    f.builtin("regexFind", |_, a| regex_find(a, false));
    f.builtin("mustRegexFind", |_, a| regex_find(a, true));
    f.builtin("regexFindAll", |_, a| regex_find_all(a, false));
    f.builtin("mustRegexFindAll", |_, a| regex_find_all(a, true));
    f.builtin("regexReplaceAll", |_, a| regex_replace(a, false, false));
    f.builtin("mustRegexReplaceAll", |_, a| regex_replace(a, false, true));
    f.builtin("regexReplaceAllLiteral", |_, a| {
        regex_replace(a, true, false)
    });
    f.builtin("mustRegexReplaceAllLiteral", |_, a| {
        regex_replace(a, true, true)
    });
    f.builtin("regexSplit", |_, a| regex_split(a, false));
    f.builtin("mustRegexSplit", |_, a| regex_split(a, true));
    f.builtin("regexQuoteMeta", |_, a| {
        arity("regexQuoteMeta", a, 1)?;
        s(regex::escape(&string_arg(&a[0])))
    });

    // Versions.
    f.builtin("semver", |_, a| {
        arity("semver", a, 1)?;
        let v = Version::parse(&string_arg(&a[0]))?;
        Ok(Value::object(v))
    });
    f.builtin("semverCompare", |_, a| {
        arity("semverCompare", a, 2)?;
        let version = match &a[1] {
            Value::Object(o) => o.to_text(),
            other => string_arg(other),
        };
        Ok(Value::Bool(semver_compare(&string_arg(&a[0]), &version)?))
    });

    // Dates. Go formats in the local zone; kaas uses UTC.
    f.builtin("now", |_, _| {
        Ok(Value::object(GoTime(Utc::now().fixed_offset())))
    });
    f.builtin("date", |_, a| {
        arity("date", a, 2)?;
        s(go_format(&time_arg(&a[1]), &string_arg(&a[0])))
    });
    f.builtin("dateInZone", |_, a| {
        arity("dateInZone", a, 3)?;
        let t = in_zone(&time_arg(&a[1]), &string_arg(&a[2]));
        s(go_format(&t, &string_arg(&a[0])))
    });
    f.builtin("htmlDate", |_, a| {
        arity("htmlDate", a, 1)?;
        s(go_format(&time_arg(&a[0]), "2006-01-02"))
    });
    f.builtin("htmlDateInZone", |_, a| {
        arity("htmlDateInZone", a, 2)?;
        let t = in_zone(&time_arg(&a[0]), &string_arg(&a[1]));
        s(go_format(&t, "2006-01-02"))
    });
    for (name, must) in [("toDate", false), ("mustToDate", true)] {
        let f_ = if must { to_date_must } else { to_date };
        f.builtin(name, f_);
    }
    f.builtin("unixEpoch", |_, a| {
        arity("unixEpoch", a, 1)?;
        s(time_arg(&a[0]).timestamp().to_string())
    });
    f.builtin("dateModify", |_, a| date_modify(a, false));
    f.builtin("mustDateModify", |_, a| date_modify(a, true));
    f.builtin("duration", |_, a| {
        arity("duration", a, 1)?;
        s(go_duration(cast_int(&a[0]) as f64))
    });
    f.builtin("durationRound", |_, a| {
        arity("durationRound", a, 1)?;
        let secs = match &a[0] {
            Value::String(d) => parse_go_duration(d).unwrap_or(0.0),
            other => cast_int(other) as f64 / 1e9,
        };
        s(duration_round(secs))
    });
    f.builtin("ago", |_, a| {
        arity("ago", a, 1)?;
        let secs = (Utc::now().fixed_offset() - time_arg(&a[0])).num_seconds();
        s(go_duration(secs as f64))
    });

    // Random values and identifiers.
    f.builtin("uuidv4", |_, _| s(uuid::Uuid::new_v4().to_string()));
    f.builtin("randAlphaNum", |_, a| {
        rand_from(
            a,
            "randAlphaNum",
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        )
    });
    f.builtin("randAlpha", |_, a| {
        rand_from(
            a,
            "randAlpha",
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        )
    });
    f.builtin("randNumeric", |_, a| {
        rand_from(a, "randNumeric", b"0123456789")
    });
    f.builtin("randAscii", |_, a| {
        let printable: Vec<u8> = (32u8..127).collect();
        rand_from(a, "randAscii", &printable)
    });
    f.builtin("randBytes", |_, a| {
        arity("randBytes", a, 1)?;
        let mut bytes = vec![0u8; cast_int(&a[0]).max(0) as usize];
        rand::rng().fill(bytes.as_mut_slice());
        s(STANDARD.encode(bytes))
    });

    // Paths (slash-separated, as Go's path package; the os* forms alike on Linux).
    for name in ["base", "osBase"] {
        f.builtin(name, |_, a| {
            arity("base", a, 1)?;
            s(path_base(&string_arg(&a[0])))
        });
    }
    for name in ["dir", "osDir"] {
        f.builtin(name, |_, a| {
            arity("dir", a, 1)?;
            s(path_dir(&string_arg(&a[0])))
        });
    }
    for name in ["ext", "osExt"] {
        f.builtin(name, |_, a| {
            arity("ext", a, 1)?;
            let p = string_arg(&a[0]);
            let last = p.rsplit('/').next().unwrap_or("");
            s(last
                .rfind('.')
                .map_or(String::new(), |i| last[i..].to_owned()))
        });
    }
    for name in ["clean", "osClean"] {
        f.builtin(name, |_, a| {
            arity("clean", a, 1)?;
            s(path_clean(&string_arg(&a[0])))
        });
    }
    for name in ["isAbs", "osIsAbs"] {
        f.builtin(name, |_, a| {
            arity("isAbs", a, 1)?;
            Ok(Value::Bool(string_arg(&a[0]).starts_with('/')))
        });
    }
    f.builtin("urlParse", |_, a| {
        arity("urlParse", a, 1)?;
        Ok(url_parse(&string_arg(&a[0])))
    });
    f.builtin("urlJoin", |_, a| {
        arity("urlJoin", a, 1)?;
        Ok(url_join(&a[0]))
    });

    for (name, _) in REFUSED {
        f.builtin(name, refused);
    }
}

fn refused(_: &mut crate::exec::Exec<'_>, _: &[Value]) -> R {
    // The executor reports which function failed; the table has the reason.
    Err(FnError::new(super::REFUSED_MARKER))
}

fn digest_hex(alg: &'static ring::digest::Algorithm, s: &str) -> String {
    ring::digest::digest(alg, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(char::from(B32[((bits >> (35 - i * 5)) & 31) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut bits = 0u64;
    let mut n = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = B32.iter().position(|&x| x == c)? as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

fn compile(re: &str) -> Result<Regex, FnError> {
    Regex::new(re).map_err(|e| FnError::new(format!("error parsing regexp: {e}")))
}

fn regex_match(_: &mut crate::exec::Exec<'_>, a: &[Value]) -> R {
    arity("regexMatch", a, 2)?;
    Ok(Value::Bool(
        compile(&string_arg(&a[0])).is_ok_and(|re| re.is_match(&string_arg(&a[1]))),
    ))
}

fn regex_match_must(_: &mut crate::exec::Exec<'_>, a: &[Value]) -> R {
    arity("mustRegexMatch", a, 2)?;
    Ok(Value::Bool(
        compile(&string_arg(&a[0]))?.is_match(&string_arg(&a[1])),
    ))
}

fn regex_find(a: &[Value], must: bool) -> R {
    arity("regexFind", a, 2)?;
    let re = match compile(&string_arg(&a[0])) {
        Ok(re) => re,
        Err(e) if must => return Err(e),
        Err(_) => return s(String::new()),
    };
    s(re.find(&string_arg(&a[1]))
        .map_or(String::new(), |m| m.as_str().to_owned()))
}

fn regex_find_all(a: &[Value], must: bool) -> R {
    arity("regexFindAll", a, 3)?;
    let re = match compile(&string_arg(&a[0])) {
        Ok(re) => re,
        Err(e) if must => return Err(e),
        Err(_) => return Ok(Value::list(Vec::new())),
    };
    let n = cast_int(&a[2]);
    let text = string_arg(&a[1]);
    let limit = if n < 0 { usize::MAX } else { n as usize };
    Ok(Value::list(
        re.find_iter(&text)
            .take(limit)
            .map(|m| Value::String(m.as_str().to_owned()))
            .collect(),
    ))
}

fn regex_replace(a: &[Value], literal: bool, must: bool) -> R {
    arity("regexReplaceAll", a, 3)?;
    let re = match compile(&string_arg(&a[0])) {
        Ok(re) => re,
        Err(e) if must => return Err(e),
        Err(_) => return s(string_arg(&a[1])),
    };
    let (text, repl) = (string_arg(&a[1]), string_arg(&a[2]));
    if literal {
        s(re.replace_all(&text, regex::NoExpand(&repl)).into_owned())
    } else {
        s(re.replace_all(&text, repl.as_str()).into_owned())
    }
}

fn regex_split(a: &[Value], must: bool) -> R {
    arity("regexSplit", a, 3)?;
    let re = match compile(&string_arg(&a[0])) {
        Ok(re) => re,
        Err(e) if must => return Err(e),
        Err(_) => return Ok(Value::list(Vec::new())),
    };
    let (text, n) = (string_arg(&a[1]), cast_int(&a[2]));
    let parts: Vec<Value> = if n == 0 {
        Vec::new()
    } else if n < 0 {
        re.split(&text)
            .map(|p| Value::String(p.to_owned()))
            .collect()
    } else {
        re.splitn(&text, n as usize)
            .map(|p| Value::String(p.to_owned()))
            .collect()
    };
    Ok(Value::list(parts))
}

fn rand_from(a: &[Value], name: &str, alphabet: &[u8]) -> R {
    arity(name, a, 1)?;
    let n = cast_int(&a[0]).max(0) as usize;
    let mut rng = rand::rng();
    s((0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect())
}

/// A Go `time.Time`, as `now` and `toDate` return it.
#[derive(Debug, Clone)]
pub(crate) struct GoTime(pub DateTime<FixedOffset>);

impl Object for GoTime {
    fn type_name(&self) -> String {
        "time.Time".into()
    }

    fn comparable_key(&self) -> Option<String> {
        Some(self.0.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false))
    }

    fn member(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let t = &self.0;
        use chrono::{Datelike, Timelike};
        let v = match name {
            "Unix" => Value::Int(t.timestamp()),
            "UnixNano" => Value::Int(t.timestamp_nanos_opt().unwrap_or(0)),
            "Year" => Value::Int(i64::from(t.year())),
            "YearDay" => Value::Int(i64::from(t.ordinal())),
            "Day" => Value::Int(i64::from(t.day())),
            "Hour" => Value::Int(i64::from(t.hour())),
            "Minute" => Value::Int(i64::from(t.minute())),
            "Second" => Value::Int(i64::from(t.second())),
            "UTC" => Value::object(GoTime(t.with_timezone(&Utc).fixed_offset())),
            "Format" => match args.first() {
                Some(Value::String(layout)) => Value::String(go_format(t, layout)),
                _ => return Some(Err("Format needs a layout".into())),
            },
            "String" => Value::String(self.to_text()),
            _ => return None,
        };
        Some(Ok(v))
    }

    fn to_text(&self) -> String {
        let zone = if self.0.offset().local_minus_utc() == 0 {
            "UTC".to_owned()
        } else {
            go_format(&self.0, "-0700")
        };
        format!(
            "{} {zone}",
            go_format(&self.0, "2006-01-02 15:04:05.999999999 -0700")
        )
    }
}

/// Sprig's date argument: a time, or Unix seconds; anything else is now.
fn time_arg(v: &Value) -> DateTime<FixedOffset> {
    match v {
        Value::Object(o) => {
            if let Some(Ok(Value::Int(ns))) = o.member("UnixNano", &[]) {
                return Utc.timestamp_nanos(ns).fixed_offset();
            }
            Utc::now().fixed_offset()
        }
        Value::Int(secs) => Utc
            .timestamp_opt(*secs, 0)
            .single()
            .unwrap_or_else(Utc::now)
            .fixed_offset(),
        _ => Utc::now().fixed_offset(),
    }
}

fn in_zone(t: &DateTime<FixedOffset>, zone: &str) -> DateTime<FixedOffset> {
    // Only UTC (and Go's "Local", which is UTC here) are known without a zone database.
    let _ = zone;
    t.with_timezone(&Utc).fixed_offset()
}

fn to_date(_: &mut crate::exec::Exec<'_>, a: &[Value]) -> R {
    arity("toDate", a, 2)?;
    Ok(parse_date(&string_arg(&a[0]), &string_arg(&a[1]))
        .map(|t| Value::object(GoTime(t)))
        .unwrap_or_else(|_| Value::object(GoTime(Utc.timestamp_nanos(0).fixed_offset()))))
}

fn to_date_must(_: &mut crate::exec::Exec<'_>, a: &[Value]) -> R {
    arity("mustToDate", a, 2)?;
    Ok(Value::object(GoTime(parse_date(
        &string_arg(&a[0]),
        &string_arg(&a[1]),
    )?)))
}

fn parse_date(layout: &str, text: &str) -> Result<DateTime<FixedOffset>, String> {
    let fmt = go_layout_to_strftime(layout);
    if let Ok(t) = DateTime::parse_from_str(text, &fmt) {
        return Ok(t);
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, &fmt) {
        return Ok(t.and_utc().fixed_offset());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, &fmt) {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .fixed_offset());
    }
    Err(format!("parsing time {text:?} as {layout:?}: cannot parse"))
}

fn date_modify(a: &[Value], must: bool) -> R {
    arity("dateModify", a, 2)?;
    let t = time_arg(&a[1]);
    match parse_go_duration(&string_arg(&a[0])) {
        Some(secs) => {
            let d = chrono::Duration::nanoseconds((secs * 1e9) as i64);
            Ok(Value::object(GoTime(t + d)))
        }
        None if must => Err(format!("time: invalid duration {:?}", string_arg(&a[0])).into()),
        None => Ok(Value::object(GoTime(t))),
    }
}

/// Go's `time.ParseDuration`, in seconds.
fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(if neg { -total } else { total })
}

/// Go's `Duration.String()` for a number of seconds.
fn go_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".into();
    }
    let neg = secs < 0.0;
    let total = secs.abs();
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let sec = total - h * 3600.0 - m * 60.0;
    let sec_text = crate::fmt::format_float_g(sec);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if h > 0.0 {
        out.push_str(&format!("{h}h{m}m{sec_text}s"));
    } else if m > 0.0 {
        out.push_str(&format!("{m}m{sec_text}s"));
    } else {
        out.push_str(&format!("{sec_text}s"));
    }
    out
}

/// Sprig's `durationRound`: the largest unit only (`2h`, `3d`, `1y`).
fn duration_round(secs: f64) -> String {
    let u = secs.abs() as u64;
    let (year, month, day, hour, minute) = (31_536_000, 2_592_000, 86_400, 3_600, 60);
    match u {
        u if u > year => format!("{}y", u / year),
        u if u > month => format!("{}mo", u / month),
        u if u > day => format!("{}d", u / day),
        u if u > hour => format!("{}h", u / hour),
        u if u > minute => format!("{}m", u / minute),
        u if u > 0 => format!("{u}s"),
        _ => "0s".into(),
    }
}

/// Go layout tokens, longest first where they share a prefix.
const LAYOUT_TOKENS: &[(&str, &str)] = &[
    ("January", "%B"),
    ("Jan", "%b"),
    ("Monday", "%A"),
    ("Mon", "%a"),
    ("MST", "%Z"),
    ("2006", "%Y"),
    ("-07:00", "%:z"),
    ("-0700", "%z"),
    ("Z07:00", "%:z"),
    ("Z0700", "%z"),
    ("002", "%j"),
    ("01", "%m"),
    ("02", "%d"),
    ("03", "%I"),
    ("04", "%M"),
    ("05", "%S"),
    ("06", "%y"),
    ("15", "%H"),
    ("_2", "%e"),
    ("PM", "%p"),
    ("pm", "%P"),
    (".000000000", "%.9f"),
    (".999999999", "%.f"),
    (".000000", "%.6f"),
    (".000", "%.3f"),
    ("1", "%-m"),
    ("2", "%-d"),
    ("3", "%-I"),
    ("4", "%-M"),
    ("5", "%-S"),
];

fn go_layout_to_strftime(layout: &str) -> String {
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (go, strf) in LAYOUT_TOKENS {
            if let Some(r) = rest.strip_prefix(go) {
                out.push_str(strf);
                rest = r;
                continue 'outer;
            }
        }
        let Some(c) = rest.chars().next() else { break };
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Formats a time with a Go layout (`2006-01-02T15:04:05Z07:00`).
pub(crate) fn go_format(t: &DateTime<FixedOffset>, layout: &str) -> String {
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Go's `Z07:00` prints `Z` for UTC.
        for z in ["Z07:00", "Z0700"] {
            if let Some(r) = rest.strip_prefix(z) {
                if t.offset().local_minus_utc() == 0 {
                    out.push('Z');
                } else {
                    let f = if z == "Z07:00" { "%:z" } else { "%z" };
                    out.push_str(&t.format(f).to_string());
                }
                rest = r;
                continue 'outer;
            }
        }
        if let Some(r) = rest.strip_prefix(".999999999") {
            let nanos = t.timestamp_subsec_nanos();
            if nanos > 0 {
                let frac = format!("{nanos:09}");
                out.push('.');
                out.push_str(frac.trim_end_matches('0'));
            }
            rest = r;
            continue;
        }
        for (go, strf) in LAYOUT_TOKENS {
            if let Some(r) = rest.strip_prefix(go) {
                let text = match *go {
                    "MST" if t.offset().local_minus_utc() == 0 => "UTC".to_owned(),
                    "MST" => t.format("%z").to_string(),
                    _ => t.format(strf).to_string(),
                };
                out.push_str(&text);
                rest = r;
                continue 'outer;
            }
        }
        let Some(c) = rest.chars().next() else { break };
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

fn url_parse(u: &str) -> Value {
    let m = Map::new();
    let (rest, fragment) = u.split_once('#').unwrap_or((u, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once("://") {
        Some((s, r)) => (s, Some(r)),
        None => ("", None),
    };
    let (userinfo, host, path, opaque) = match rest {
        Some(r) => {
            let (authority, path) = match r.find('/') {
                Some(i) => (&r[..i], &r[i..]),
                None => (r, ""),
            };
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((u, h)) => (u, h),
                None => ("", authority),
            };
            (userinfo, host, path, "")
        }
        None => match u.split_once(':') {
            Some((s, o)) if !s.contains('/') && !o.starts_with('/') => {
                m.insert("scheme", Value::string(s));
                ("", "", "", o)
            }
            _ => (
                "",
                "",
                rest.unwrap_or(u.split(['?', '#']).next().unwrap_or("")),
                "",
            ),
        },
    };
    let hostname = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h));
    if !m.contains_key("scheme") {
        m.insert("scheme", Value::string(scheme));
    }
    m.insert("host", Value::string(host));
    m.insert("hostname", Value::string(hostname));
    m.insert("path", Value::string(path));
    m.insert("query", Value::string(query));
    m.insert("opaque", Value::string(opaque));
    m.insert("fragment", Value::string(fragment));
    m.insert("userinfo", Value::string(userinfo));
    Value::Map(m)
}

fn url_join(v: &Value) -> Value {
    let Value::Map(m) = v.data() else {
        return Value::String(String::new());
    };
    let get = |k: &str| m.get(k).map(|v| string_arg(&v)).unwrap_or_default();
    let mut out = String::new();
    if !get("scheme").is_empty() {
        out.push_str(&get("scheme"));
        out.push(':');
    }
    if !get("opaque").is_empty() {
        out.push_str(&get("opaque"));
    } else {
        if !get("host").is_empty() || !get("scheme").is_empty() {
            out.push_str("//");
        }
        if !get("userinfo").is_empty() {
            out.push_str(&get("userinfo"));
            out.push('@');
        }
        out.push_str(&get("host"));
        out.push_str(&get("path"));
    }
    if !get("query").is_empty() {
        out.push('?');
        out.push_str(&get("query"));
    }
    if !get("fragment").is_empty() {
        out.push('#');
        out.push_str(&get("fragment"));
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_go_path() {
        assert_eq!(path_base("/a/b.yaml"), "b.yaml");
        assert_eq!(path_dir("/a/b.yaml"), "/a");
        assert_eq!(path_dir("b.yaml"), ".");
        assert_eq!(path_clean("a/../b/./c/"), "b/c");
    }

    #[test]
    fn go_layouts() {
        let t = Utc
            .with_ymd_and_hms(2024, 3, 5, 7, 8, 9)
            .single()
            .map(|t| t.fixed_offset());
        let Some(t) = t else { panic!("test time") };
        assert_eq!(
            go_format(&t, "2006-01-02T15:04:05Z07:00"),
            "2024-03-05T07:08:09Z"
        );
        assert_eq!(go_format(&t, "Jan 2, 2006"), "Mar 5, 2024");
    }

    #[test]
    fn encodings() {
        assert_eq!(base32_encode(b"hello"), "NBSWY3DP");
        assert_eq!(base32_decode("NBSWY3DP").as_deref(), Some(&b"hello"[..]));
        assert_eq!(adler32(b"Wikipedia"), 300_286_872);
        assert_eq!(go_duration(90.0), "1m30s");
        assert_eq!(go_duration(3600.0), "1h0m0s");
    }
}
