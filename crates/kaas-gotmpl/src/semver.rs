//! Semantic versions and constraints with the rules of Masterminds/semver v3, which
//! Sprig's `semver` and `semverCompare` use (and so every chart's
//! `semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version`).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

use crate::value::{Object, Value};

/// A parsed version: `v1.33.2`, `1.2`, `1.30.0-rc.1+build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    pub original: String,
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-(?:[0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?(\+(?:[0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

#[allow(clippy::expect_used)] // constant patterns, covered by tests
static VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(?:-([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?(?:\+([0-9A-Za-z\-]+(?:\.[0-9A-Za-z\-]+)*))?$")
        .expect("version pattern")
});
#[allow(clippy::expect_used)]
static CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^\s*({OPS})\s*({CV})\s*$")).expect("constraint pattern")
});
#[allow(clippy::expect_used)]
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS})\s*({CV})")).expect("find pattern"));
#[allow(clippy::expect_used)]
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
    .expect("valid pattern")
});
#[allow(clippy::expect_used)]
static RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\s*({CV})\s+-\s+({CV})\s*")).expect("range pattern"));

impl Version {
    /// Parses leniently as Masterminds' `NewVersion`: `v` prefix, missing minor and
    /// patch allowed.
    pub fn parse(s: &str) -> Result<Version, String> {
        let caps = VERSION
            .captures(s)
            .ok_or_else(|| "Invalid Semantic Version".to_owned())?;
        let num = |i: usize| -> Result<u64, String> {
            match caps.get(i) {
                None => Ok(0),
                Some(m) => m
                    .as_str()
                    .trim_start_matches('.')
                    .parse()
                    .map_err(|_| "Invalid Semantic Version".to_owned()),
            }
        };
        Ok(Version {
            major: num(1)?,
            minor: num(2)?,
            patch: num(3)?,
            pre: caps.get(4).map_or("", |m| m.as_str()).to_owned(),
            metadata: caps.get(5).map_or("", |m| m.as_str()).to_owned(),
            original: s.to_owned(),
        })
    }

    /// Precedence: numbers, then a release above its prereleases; metadata ignored.
    pub fn compare(&self, other: &Version) -> Ordering {
        self.major
            .cmp(&other.major)
            .then(self.minor.cmp(&other.minor))
            .then(self.patch.cmp(&other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }

    fn text(&self) -> String {
        let mut s = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            s.push('-');
            s.push_str(&self.pre);
        }
        if !self.metadata.is_empty() {
            s.push('+');
            s.push_str(&self.metadata);
        }
        s
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The object `semver` returns: fields and methods as Masterminds' `*Version`.
impl Object for Version {
    fn type_name(&self) -> String {
        "*semver.Version".into()
    }

    fn member(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let v = match name {
            "Major" => Value::Int(self.major as i64),
            "Minor" => Value::Int(self.minor as i64),
            "Patch" => Value::Int(self.patch as i64),
            "Prerelease" => Value::String(self.pre.clone()),
            "Metadata" => Value::String(self.metadata.clone()),
            "Original" => Value::String(self.original.clone()),
            "String" => Value::String(self.text()),
            "Compare" | "LessThan" | "GreaterThan" | "Equal" => {
                let other = match args.first() {
                    Some(Value::Object(o)) => Version::parse(&o.to_text()),
                    Some(Value::String(s)) => Version::parse(s),
                    _ => Err("wrong number of args".into()),
                };
                let other = match other {
                    Ok(o) => o,
                    Err(e) => return Some(Err(e)),
                };
                let ord = self.compare(&other);
                match name {
                    "Compare" => Value::Int(match ord {
                        Ordering::Less => -1,
                        Ordering::Equal => 0,
                        Ordering::Greater => 1,
                    }),
                    "LessThan" => Value::Bool(ord == Ordering::Less),
                    "GreaterThan" => Value::Bool(ord == Ordering::Greater),
                    _ => Value::Bool(ord == Ordering::Equal),
                }
            }
            _ => return None,
        };
        Some(Ok(v))
    }

    fn to_text(&self) -> String {
        self.text()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug)]
struct Constraint {
    op: Op,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

/// A constraint such as `>=1.21-0`, `^1.2 || ~2.0`, `1.2.x`, `>= 1.2, < 2`.
#[derive(Debug)]
pub struct Constraints {
    groups: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

impl Constraints {
    pub fn parse(s: &str) -> Result<Constraints, String> {
        let rewritten = RANGE.replace_all(s, ">= ${1}, <= ${7}").into_owned();
        let mut groups = Vec::new();
        for part in rewritten.split("||") {
            if !VALID.is_match(part) {
                return Err(format!("improper constraint: {part}"));
            }
            let mut found: Vec<String> = FIND
                .find_iter(part)
                .map(|m| m.as_str().to_owned())
                .collect();
            if found.is_empty() {
                found.push(part.to_owned());
            }
            let mut cs = Vec::new();
            let mut has_pre = false;
            for c in found {
                let c = parse_constraint(&c)?;
                has_pre |= !c.con.pre.is_empty();
                cs.push(c);
            }
            groups.push((cs, has_pre));
        }
        Ok(Constraints { groups })
    }

    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(cs, has_pre)| cs.iter().all(|c| c.check(v, *has_pre)))
    }
}

fn parse_constraint(s: &str) -> Result<Constraint, String> {
    let caps = CONSTRAINT
        .captures(s)
        .ok_or_else(|| format!("improper constraint: {s}"))?;
    let op = match caps.get(1).map_or("", |m| m.as_str()) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        _ => Op::Caret,
    };
    let g = |i: usize| caps.get(i).map_or("", |m| m.as_str());
    let (m3, m4, m5) = (g(3), g(4), g(5));
    let suffix = format!("{}{}", g(6), g(7));
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let ver = if is_x(m3) || m3.is_empty() {
        dirty = true;
        format!("0.0.0{suffix}")
    } else if is_x(m4.trim_start_matches('.')) || m4.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{m3}.0.0{suffix}")
    } else if is_x(m5.trim_start_matches('.')) || m5.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{m3}{m4}.0{suffix}")
    } else {
        g(2).to_owned()
    };
    let con = Version::parse(&ver).map_err(|_| "constraint parser error".to_owned())?;
    Ok(Constraint {
        op,
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::TildeOrEqual => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_pre(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v.compare(c) == Ordering::Greater
            }
            Op::Less => v.compare(c) == Ordering::Less,
            Op::GreaterEqual => v.compare(c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// Sprig's `semverCompare CONSTRAINT VERSION`.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(c: &str, v: &str, want: bool) {
        assert_eq!(semver_compare(c, v), Ok(want), "{c} against {v}");
    }

    #[test]
    fn constraints_match_masterminds() {
        check(">=1.21-0", "v1.33.2", true);
        check(">=1.21-0", "v1.33.2-gke.100", true);
        check(">=1.21", "v1.33.2-gke.100", false);
        check("<1.25", "v1.33.2", false);
        check(">=1.19-0 <1.34-0", "1.33.2", true);
        check("^1.2", "1.9.0", true);
        check("^1.2", "2.0.0", false);
        check("^0.2.3", "0.2.9", true);
        check("^0.2.3", "0.3.0", false);
        check("~1.2", "1.2.9", true);
        check("~1.2", "1.3.0", false);
        check("1.2.x", "1.2.7", true);
        check("1.2.x", "1.3.0", false);
        check("<1.16-0 || >=1.33", "1.33.0", true);
        check(">= 1.2, < 2", "1.5.0", true);
        check("1.2 - 1.4.5", "1.4.5", true);
        check("1.2 - 1.4.5", "1.4.6", false);
        check("*", "1.0.0", true);
        check("!=1.2.3", "1.2.3", false);
        check(">1.2", "1.2.5", false);
        check(">1.2", "1.3.0", true);
        check("<=1.2", "1.2.9", true);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(semver_compare("nonsense", "1.0.0").is_err());
        assert!(semver_compare(">=1.0", "not-a-version").is_err());
    }
}
