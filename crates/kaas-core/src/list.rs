//! Lists that scale: Kubernetes label selectors and the opaque continue tokens of paged
//! lists.
//!
//! A label selector is parsed here, once, into [`Requirement`]s that the store turns
//! into its query; [`LabelSelector::matches`] is the same meaning on plain labels. A
//! continue token ([`ContinueToken`]) carries the key of the last object of a page and
//! a fingerprint of the listing's filters, so that a token is refused when it is used
//! with other filters than those of the listing that issued it.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The longest selector taken, in bytes.
pub const MAX_SELECTOR_LEN: usize = 4096;
/// The most requirements a selector may have.
pub const MAX_REQUIREMENTS: usize = 32;
/// The most values of one `in`/`notin` set.
pub const MAX_SET_VALUES: usize = 64;

/// What one requirement asks of a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k=v`, `k==v`: the label is there with this value.
    Equals(String),
    /// `k!=v`: the label is not there, or has another value.
    NotEquals(String),
    /// `k in (a,b)`: the label is there with one of the values.
    In(Vec<String>),
    /// `k notin (a,b)`: the label is not there, or has none of the values.
    NotIn(Vec<String>),
    /// `k`: the label is there.
    Exists,
    /// `!k`: the label is not there.
    DoesNotExist,
}

/// One requirement of a selector: a label key and what it asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::Equals(v) => value == Some(v),
            Operator::NotEquals(v) => value != Some(v),
            Operator::In(set) => value.is_some_and(|v| set.contains(v)),
            Operator::NotIn(set) => !value.is_some_and(|v| set.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = &self.key;
        match &self.operator {
            Operator::Equals(v) => write!(f, "{key}={v}"),
            Operator::NotEquals(v) => write!(f, "{key}!={v}"),
            Operator::In(set) => write!(f, "{key} in ({})", set.join(",")),
            Operator::NotIn(set) => write!(f, "{key} notin ({})", set.join(",")),
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

/// Requirements that must all hold (Kubernetes' equality- and set-based label
/// selectors). The empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// The selector in one spelling: requirements sorted, sets sorted and without
/// duplicates, so that two spellings of the same selector have the same text.
impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        parts.sort();
        parts.dedup();
        f.write_str(&parts.join(","))
    }
}

/// The tokens of a selector's text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A key, a value, `in` or `notin`.
    Word(String),
    Comma,
    Open,
    Close,
    Not,
    /// `=` or `==`.
    Equals,
    NotEquals,
    /// `<`, `>`: Kubernetes' numeric comparisons, not taken here.
    Compare(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Comma => "','".to_owned(),
            Token::Open => "'('".to_owned(),
            Token::Close => "')'".to_owned(),
            Token::Not => "'!'".to_owned(),
            Token::Equals => "'='".to_owned(),
            Token::NotEquals => "'!='".to_owned(),
            Token::Compare(c) => format!("'{c}'"),
        }
    }
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ',' | '(' | ')' | '!' | '=' | '<' | '>')
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '!' if chars.peek().is_some_and(|(_, n)| *n == '=') => {
                chars.next();
                Token::NotEquals
            }
            '!' => Token::Not,
            '=' => {
                if chars.peek().is_some_and(|(_, n)| *n == '=') {
                    chars.next();
                }
                Token::Equals
            }
            '<' | '>' => Token::Compare(c),
            c if c.is_control() => {
                return Err(format!("control character at byte {start}"));
            }
            _ => {
                let mut end = start + c.len_utf8();
                while let Some((i, n)) = chars.peek().copied() {
                    if !is_word_char(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    chars.next();
                }
                Token::Word(text[start..end].to_owned())
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// A label name: at most 63 characters, alphanumerics with `-`, `_` and `.` inside.
fn check_name_part(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("must be at most 63 characters: letters, digits, and '-', '_' or '.' inside".into())
    }
}

/// Checks a label key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let subdomain = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !subdomain {
            return Err(format!(
                "label key {key:?}: the prefix before '/' must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
            ));
        }
    }
    check_name_part(name).map_err(|reason| format!("label key {key:?}: the name {reason}"))
}

/// Checks a label value: empty, or as a label name.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_part(value).map_err(|reason| format!("label value {value:?} {reason}"))
}

/// Parses a label selector as Kubernetes writes them: requirements separated by
/// commas, each `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` or `!k`.
/// The error says what is wrong and where; callers put the parameter's name before it.
pub fn parse_label_selector(text: &str) -> Result<LabelSelector, String> {
    if text.len() > MAX_SELECTOR_LEN {
        return Err(format!("must be at most {MAX_SELECTOR_LEN} bytes"));
    }
    let tokens = tokenize(text)?;
    let mut requirements = Vec::new();
    let mut rest = tokens.as_slice();
    if rest.is_empty() {
        return Ok(LabelSelector::default());
    }
    loop {
        let (requirement, after) = requirement(rest)?;
        requirements.push(requirement);
        match after {
            [] => break,
            [Token::Comma, more @ ..] if !more.is_empty() => rest = more,
            [Token::Comma] => return Err("a requirement must follow the last ','".into()),
            [other, ..] => {
                return Err(format!(
                    "expected ',' after requirement {:?}, found {}",
                    requirements
                        .last()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    other.describe()
                ));
            }
        }
    }
    if requirements.len() > MAX_REQUIREMENTS {
        return Err(format!(
            "has {} requirements; at most {MAX_REQUIREMENTS} are taken",
            requirements.len()
        ));
    }
    Ok(LabelSelector { requirements })
}

/// One requirement at the start of `tokens`, and the tokens after it.
fn requirement(tokens: &[Token]) -> Result<(Requirement, &[Token]), String> {
    if let [Token::Not, rest @ ..] = tokens {
        let [Token::Word(key), rest @ ..] = rest else {
            return Err("'!' must be followed by a label key".into());
        };
        check_label_key(key)?;
        return Ok((
            Requirement {
                key: key.clone(),
                operator: Operator::DoesNotExist,
            },
            rest,
        ));
    }
    let [Token::Word(key), rest @ ..] = tokens else {
        let found = tokens.first().map_or("the end".to_owned(), Token::describe);
        return Err(format!("expected a label key, found {found}"));
    };
    check_label_key(key)?;
    let done = |operator, rest| {
        Ok((
            Requirement {
                key: key.clone(),
                operator,
            },
            rest,
        ))
    };
    match rest {
        [] | [Token::Comma, ..] => done(Operator::Exists, rest),
        [Token::Equals | Token::NotEquals, after @ ..] => {
            let (value, after) = match after {
                [Token::Word(v), after @ ..] => (v.clone(), after),
                // `k=` selects the empty value.
                [] | [Token::Comma, ..] => (String::new(), after),
                [other, ..] => {
                    return Err(format!(
                        "expected a value after {key:?}{}, found {}",
                        rest[0].describe().trim_matches('\''),
                        other.describe()
                    ));
                }
            };
            check_label_value(&value)?;
            let operator = if rest[0] == Token::Equals {
                Operator::Equals(value)
            } else {
                Operator::NotEquals(value)
            };
            done(operator, after)
        }
        [Token::Word(op), after @ ..] if op == "in" || op == "notin" => {
            let (values, after) = set(key, op, after)?;
            let operator = if op == "in" {
                Operator::In(values)
            } else {
                Operator::NotIn(values)
            };
            done(operator, after)
        }
        [Token::Compare(c), ..] => Err(format!(
            "the operator '{c}' of {key:?} is not supported: use =, ==, !=, in, notin, KEY or !KEY"
        )),
        [other, ..] => Err(format!(
            "expected an operator (=, ==, !=, in, notin) or ',' after {key:?}, found {}",
            other.describe()
        )),
    }
}

/// The `(a,b)` of `in`/`notin`, sorted and without duplicates.
fn set<'t>(key: &str, op: &str, tokens: &'t [Token]) -> Result<(Vec<String>, &'t [Token]), String> {
    let [Token::Open, after_open @ ..] = tokens else {
        return Err(format!("expected '(' after {key:?} {op}"));
    };
    let mut rest: &[Token] = after_open;
    let mut values = Vec::new();
    loop {
        match rest {
            [Token::Word(v), after @ ..] => {
                check_label_value(v)?;
                values.push(v.clone());
                rest = after;
            }
            [Token::Comma, ..] | [Token::Close, ..] => values.push(String::new()),
            _ => return Err(format!("the values of {key:?} {op} lack a closing ')'")),
        }
        match rest {
            [Token::Comma, after @ ..] => rest = after,
            [Token::Close, after @ ..] => {
                rest = after;
                break;
            }
            _ => return Err(format!("the values of {key:?} {op} lack a closing ')'")),
        }
    }
    values.sort();
    values.dedup();
    if values == [String::new()] && matches!(tokens, [Token::Open, Token::Close, ..]) {
        return Err(format!("the values of {key:?} {op} must not be empty"));
    }
    if values.len() > MAX_SET_VALUES {
        return Err(format!(
            "{key:?} {op} has {} values; at most {MAX_SET_VALUES} are taken",
            values.len()
        ));
    }
    Ok((values, rest))
}

/// Where a paged list goes on: after the object with this key, in the list's order
/// (tenant, then name), among objects the same filters select.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    /// The tenant of the last object returned.
    #[serde(rename = "t")]
    pub tenant: String,
    /// The name of the last object returned.
    #[serde(rename = "n")]
    pub name: String,
    /// [`filter_fingerprint`] of the listing's filters.
    #[serde(rename = "f")]
    pub filters: String,
}

impl ContinueToken {
    /// The opaque text handed to clients: base64url (no padding) of the token's JSON.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A token from its text; the error says why it is none.
    pub fn decode(text: &str) -> Result<Self, String> {
        let refused = "is not a continue token of this server: pass the metadata.continue of the previous page unchanged";
        if text.len() > 2048 {
            return Err(format!("{refused} (it is too long)"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| refused.to_owned())?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|_| refused.to_owned())?;
        if token.name.is_empty() || token.tenant.is_empty() {
            return Err(refused.to_owned());
        }
        Ok(token)
    }

    /// The token, if it was issued for a listing with `filters` (a
    /// [`filter_fingerprint`]); else why it is refused.
    pub fn for_filters(text: &str, filters: &str) -> Result<Self, String> {
        let token = Self::decode(text)?;
        if token.filters != filters {
            return Err("was issued for a listing with other filters (labelSelector, phase, allTenants, or another tenant or cluster): start again without it".into());
        }
        Ok(token)
    }
}

/// A short, stable fingerprint of a listing's filters (the words that describe the
/// listing, e.g. the path, the tenant and each filter's canonical text): FNV-1a, 64
/// bits, in hex. It tells listings apart; it is no secret and no signature.
pub fn filter_fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // The length first, so that ["ab", "c"] and ["a", "bc"] differ.
        for byte in (part.len() as u64)
            .to_le_bytes()
            .iter()
            .chain(part.as_bytes())
        {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn req(key: &str, operator: Operator) -> Requirement {
        Requirement {
            key: key.to_owned(),
            operator,
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn every_operator_parses() {
        let selector = parse_label_selector(
            "env=prod, tier==web,team!=ops,zone in (b, a,a),size notin (xl),kaas.dev/owned,!legacy",
        )
        .unwrap();
        assert_eq!(
            selector.requirements,
            vec![
                req("env", Operator::Equals("prod".into())),
                req("tier", Operator::Equals("web".into())),
                req("team", Operator::NotEquals("ops".into())),
                req("zone", Operator::In(strings(&["a", "b"]))),
                req("size", Operator::NotIn(strings(&["xl"]))),
                req("kaas.dev/owned", Operator::Exists),
                req("legacy", Operator::DoesNotExist),
            ]
        );
        assert_eq!(
            selector.to_string(),
            "!legacy,env=prod,kaas.dev/owned,size notin (xl),team!=ops,tier=web,zone in (a,b)"
        );
    }

    #[test]
    fn the_empty_selector_selects_everything() {
        for text in ["", "  "] {
            let selector = parse_label_selector(text).unwrap();
            assert!(selector.is_empty());
            assert!(selector.matches(&labels(&[("a", "b")])));
        }
    }

    #[test]
    fn empty_values_are_values() {
        let selector = parse_label_selector("a=,b in (,x)").unwrap();
        assert_eq!(
            selector.requirements,
            vec![
                req("a", Operator::Equals(String::new())),
                req("b", Operator::In(strings(&["", "x"]))),
            ]
        );
        assert!(selector.matches(&labels(&[("a", ""), ("b", "")])));
        assert!(!selector.matches(&labels(&[("b", "")])));
    }

    #[test]
    fn matching_follows_kubernetes() {
        let l = labels(&[("env", "prod"), ("zone", "a")]);
        let matches = |text: &str| parse_label_selector(text).unwrap().matches(&l);
        assert!(matches("env=prod"));
        assert!(!matches("env=dev"));
        assert!(matches("env!=dev"));
        // A missing label is "not equal" and "not in".
        assert!(matches("team!=ops"));
        assert!(matches("team notin (ops)"));
        assert!(!matches("team in (ops)"));
        assert!(matches("zone in (a,b)"));
        assert!(!matches("zone notin (a)"));
        assert!(matches("env"));
        assert!(!matches("!env"));
        assert!(matches("!team"));
        assert!(!matches("env=prod,zone=b"));
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("env=prod,", "a requirement must follow the last ','"),
            ("zone in (a,b", "lack a closing ')'"),
            ("zone in a", "expected '(' after \"zone\" in"),
            ("zone in ()", "must not be empty"),
            ("a b", "expected an operator (=, ==, !=, in, notin) or ','"),
            (
                "replicas>3",
                "the operator '>' of \"replicas\" is not supported",
            ),
            ("!", "'!' must be followed by a label key"),
            ("=x", "expected a label key, found '='"),
            ("-bad=x", "label key \"-bad\""),
            (
                "Kaas.Dev/x=y",
                "the prefix before '/' must be a DNS subdomain",
            ),
            ("a=b=c", "expected ',' after requirement \"a=b\", found '='"),
            ("a=-x", "label value \"-x\""),
            ("a=\u{7}", "control character at byte 2"),
            ("a==(", "expected a value after \"a\"=, found '('"),
        ];
        for (text, expected) in cases {
            let err = parse_label_selector(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let long = "a=b,".repeat(MAX_REQUIREMENTS) + "c=d";
        assert!(
            parse_label_selector(&long)
                .unwrap_err()
                .contains("at most 32")
        );
        let huge = "a".repeat(MAX_SELECTOR_LEN + 1);
        assert!(
            parse_label_selector(&huge)
                .unwrap_err()
                .contains("at most 4096 bytes")
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("a").is_ok());
        assert!(check_label_key(&"a".repeat(64)).is_err());
        assert!(check_label_key("/x").is_err());
        assert!(check_label_key("x/").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3-a").is_ok());
        assert!(check_label_value("a b").is_err());
    }

    #[test]
    fn continue_tokens_round_trip_and_are_opaque() {
        let filters = filter_fingerprint(&["clusters", "acme", "env=prod", ""]);
        let token = ContinueToken {
            tenant: "acme".into(),
            name: "c-0042".into(),
            filters: filters.clone(),
        };
        let text = token.encode();
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert!(!text.contains("c-0042"));
        assert_eq!(ContinueToken::decode(&text).unwrap(), token);
        assert_eq!(ContinueToken::for_filters(&text, &filters).unwrap(), token);
    }

    #[test]
    fn continue_tokens_of_other_filters_or_made_up_are_refused() {
        let token = ContinueToken {
            tenant: "acme".into(),
            name: "a".into(),
            filters: filter_fingerprint(&["clusters", "acme", "env=prod"]),
        }
        .encode();
        let other = filter_fingerprint(&["clusters", "acme", "env=dev"]);
        let err = ContinueToken::for_filters(&token, &other).unwrap_err();
        assert!(err.contains("other filters"), "{err}");
        for bad in [
            "not base64!",
            "e30", // {}
            &URL_SAFE_NO_PAD.encode("{\"t\":\"\",\"n\":\"\",\"f\":\"x\"}"),
            &"A".repeat(3000),
        ] {
            let err = ContinueToken::decode(bad).unwrap_err();
            assert!(err.contains("is not a continue token"), "{bad}: {err}");
        }
    }

    #[test]
    fn fingerprints_tell_filters_apart() {
        assert_eq!(
            filter_fingerprint(&["a", "b"]),
            filter_fingerprint(&["a", "b"])
        );
        assert_ne!(
            filter_fingerprint(&["ab", "c"]),
            filter_fingerprint(&["a", "bc"])
        );
        assert_ne!(filter_fingerprint(&["a", ""]), filter_fingerprint(&["a"]));
        assert_eq!(filter_fingerprint(&[]).len(), 16);
    }
}
