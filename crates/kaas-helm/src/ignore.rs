//! `.helmignore`: which files of a chart folder are left out, with Helm's rules
//! (`pkg/ignore`): one pattern a line, `#` comments, `!` negation, a trailing `/` for
//! directories only, a leading `/` or an inner `/` to match the whole path, otherwise
//! the base name; Go's `filepath.Match` syntax; `**` is refused.

/// The parsed rules of one `.helmignore`, plus Helm's default (`templates/.?*`).
#[derive(Debug, Clone, Default)]
pub(crate) struct IgnoreRules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    rule: String,
    negate: bool,
    must_dir: bool,
    whole_path: bool,
}

impl IgnoreRules {
    /// Helm's rules for a chart: its defaults then the lines of `.helmignore`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut rules = IgnoreRules::default();
        rules.add("templates/.?*")?;
        for line in text.lines() {
            rules.add(line)?;
        }
        Ok(rules)
    }

    fn add(&mut self, line: &str) -> Result<(), String> {
        let mut rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err(format!(
                "{rule:?}: double-star (**) syntax is not supported"
            ));
        }
        if go_match(rule, "abc").is_err() {
            return Err(format!("{rule:?}: syntax error in pattern"));
        }
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let must_dir = rule.ends_with('/');
        if must_dir {
            rule = rule.trim_end_matches('/');
        }
        let whole_path = rule.contains('/');
        self.patterns.push(Pattern {
            rule: rule.trim_start_matches('/').to_owned(),
            negate,
            must_dir,
            whole_path,
        });
        Ok(())
    }

    /// Whether `path` (relative to the chart root, `/`-separated) is ignored, checked
    /// as Helm checks what it walks: each parent directory, then the file.
    pub(crate) fn ignores_file(&self, path: &str) -> bool {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            if self.ignores(&path[..end], true) {
                return true;
            }
            end += 1;
        }
        self.ignores(path, false)
    }

    /// Helm's `Rules.Ignore` for one path, negation quirks included: a negated rule
    /// ignores everything it does *not* match.
    fn ignores(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        for p in &self.patterns {
            let name = if p.whole_path {
                path
            } else {
                path.rsplit('/').next().unwrap_or(path)
            };
            let matched = go_match(&p.rule, name).unwrap_or(false);
            if p.negate {
                if p.must_dir && !is_dir {
                    return true;
                }
                if !matched {
                    return true;
                }
                continue;
            }
            if p.must_dir && !is_dir {
                continue;
            }
            if matched {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match` with `/` as separator: `*` and `?` never match `/`, classes
/// `[a-z]` and `[^a-z]`, `\` escapes. An unbalanced class is an error.
pub(crate) fn go_match(pattern: &str, name: &str) -> Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n)
}

fn match_at(p: &[char], n: &[char]) -> Result<bool, ()> {
    let Some(&c) = p.first() else {
        return Ok(n.is_empty());
    };
    match c {
        '*' => {
            let rest = &p[1..];
            for i in 0..=n.len() {
                if match_at(rest, &n[i..])? {
                    return Ok(true);
                }
                if i < n.len() && n[i] == '/' {
                    break;
                }
            }
            // Go reports a bad pattern even when the name ran out.
            check_syntax(rest)?;
            Ok(false)
        }
        '?' => Ok(!n.is_empty() && n[0] != '/' && match_at(&p[1..], &n[1..])?),
        '[' => {
            let (matched, len) = class(&p[1..], n.first().copied())?;
            Ok(matched && match_at(&p[1 + len..], &n[1..])?)
        }
        '\\' => {
            let Some(&e) = p.get(1) else { return Err(()) };
            Ok(n.first() == Some(&e) && match_at(&p[2..], &n[1..])?)
        }
        _ => Ok(n.first() == Some(&c) && match_at(&p[1..], &n[1..])?),
    }
}

fn check_syntax(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => {
                let (_, len) = class(&p[i + 1..], None)?;
                i += 1 + len;
            }
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(());
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Matches `c` against the class starting after `[`; returns the result and how many
/// characters the class took, `]` included.
fn class(p: &[char], c: Option<char>) -> Result<(bool, usize), ()> {
    let mut i = 0;
    let negate = p.first() == Some(&'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let Some(&lo) = p.get(i) else { return Err(()) };
        if lo == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, step) = escaped(p, i)?;
        i += step;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1) != Some(&']') {
            let (h, step) = escaped(p, i + 1)?;
            hi = h;
            i += 1 + step;
        }
        if let Some(c) = c {
            hit |= lo <= c && c <= hi;
        }
    }
    let matched = match c {
        Some(c) => c != '/' && hit != negate,
        None => false,
    };
    Ok((matched, i))
}

fn escaped(p: &[char], i: usize) -> Result<(char, usize), ()> {
    match p.get(i) {
        Some('\\') => p.get(i + 1).map(|&c| (c, 2)).ok_or(()),
        Some(&c) => Ok((c, 1)),
        None => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_as_helm() {
        let rules = IgnoreRules::parse("# VCS\n.git/\n*.swp\n/ci/\nfiles/secret-*.txt\n")
            .unwrap_or_default();
        assert!(rules.ignores_file(".git/config"));
        assert!(rules.ignores_file("files/a.swp"));
        assert!(rules.ignores_file("ci/values.yaml"));
        assert!(rules.ignores_file("files/secret-1.txt"));
        assert!(rules.ignores_file("templates/.hidden.yaml"));
        assert!(!rules.ignores_file("files/public.txt"));
        assert!(!rules.ignores_file("templates/deployment.yaml"));
        assert!(!rules.ignores_file("sub/ci/values.yaml"));
    }

    #[test]
    fn double_star_is_refused() {
        assert!(IgnoreRules::parse("files/**/x").is_err());
    }

    #[test]
    fn go_match_classes() {
        assert_eq!(go_match("f[a-c]o", "fbo"), Ok(true));
        assert_eq!(go_match("f[^a-c]o", "fbo"), Ok(false));
        assert_eq!(go_match("*.yaml", "a/b.yaml"), Ok(false));
        assert_eq!(go_match("[", "a"), Err(()));
    }
}
