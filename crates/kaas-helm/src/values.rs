//! Values as Helm computes them (`pkg/chartutil/coalesce.go`, `dependencies.go`): the
//! caller's layers merged, subcharts enabled by `condition` and `tags`, then each
//! chart's defaults coalesced under the caller's values, with `global` passed down.

use serde_json::{Map, Value};

use crate::chart::{Chart, json_kind};
use crate::error::ChartError;

pub(crate) type Vals = Map<String, Value>;

const GLOBAL: &str = "global";

/// A chart as it takes part in a render: its name (the alias when it has one) and the
/// subcharts that are enabled.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub chart: &'a Chart,
    pub name: String,
    pub children: Vec<Node<'a>>,
}

impl<'a> Node<'a> {
    /// The chart with all its subcharts, as loaded.
    pub(crate) fn whole(chart: &'a Chart, name: String) -> Self {
        Node {
            chart,
            name,
            children: chart
                .subcharts
                .iter()
                .map(|c| Node::whole(c, c.name().to_owned()))
                .collect(),
        }
    }
}

/// Helm's merge of `-f` files: later layers win, maps merge, anything else replaces
/// (a `null` replaces too, and later removes the chart's default).
pub(crate) fn merge_layers(layers: &[Value]) -> Result<Vals, ChartError> {
    let mut out = Vals::new();
    for (i, layer) in layers.iter().enumerate() {
        match layer {
            Value::Null => {}
            Value::Object(m) => merge_maps(&mut out, m),
            other => {
                return Err(ChartError::Options(format!(
                    "values layer {i} must be a map, not {}",
                    json_kind(other)
                )));
            }
        }
    }
    Ok(out)
}

fn merge_maps(out: &mut Vals, layer: &Vals) {
    for (k, v) in layer {
        if let (Value::Object(new), Some(Value::Object(old))) = (v, out.get_mut(k)) {
            merge_maps(old, new);
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
}

/// Helm's `CheckDependencies`: every dependency of the top chart must be in `charts/`.
pub(crate) fn check_dependencies(chart: &Chart) -> Result<(), ChartError> {
    let missing: Vec<String> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|d| !chart.subcharts.iter().any(|s| s.name() == d.name))
        .map(|d| d.name.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ChartError::MissingDependencies {
            chart: chart.name().to_owned(),
            names: missing,
        })
    }
}

/// Helm's `processDependencyEnabled`: picks the subcharts that take part, under their
/// aliases, by the tags and conditions in the values. `top` is the values coalesced
/// so far (the caller's at the top), `path` the subchart path (`sub.`) that condition
/// paths are read under.
pub(crate) fn enable<'a>(node: &mut Node<'a>, top: &Vals, path: &str) -> Result<(), ChartError> {
    let chart = node.chart;
    if chart.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let mut children: Vec<Node<'a>> = Vec::new();
    // Subcharts that no dependency entry describes are always kept.
    for sub in &chart.subcharts {
        let listed = chart
            .metadata
            .dependencies
            .iter()
            .any(|d| d.name == sub.name() && compatible(&d.version, &sub.metadata.version));
        if !listed {
            children.push(Node::whole(sub, sub.name().to_owned()));
        }
    }
    let mut reqs: Vec<(String, bool, &crate::chart::Dependency)> = Vec::new();
    for dep in &chart.metadata.dependencies {
        let name = if dep.alias.is_empty() {
            dep.name.clone()
        } else {
            dep.alias.clone()
        };
        if let Some(sub) = chart
            .subcharts
            .iter()
            .find(|s| s.name() == dep.name && compatible(&dep.version, &s.metadata.version))
        {
            children.push(Node::whole(sub, name.clone()));
        }
        reqs.push((name, true, dep));
    }
    node.children = children;
    let cvals = coalesce_values(node, top)?;
    // Tags: a dependency is off when one of its tags is false and none is true.
    if let Some(Value::Object(tags)) = cvals.get("tags") {
        for (_, enabled, dep) in &mut reqs {
            let (mut has_true, mut has_false) = (false, false);
            for tag in &dep.tags {
                match tags.get(tag) {
                    Some(Value::Bool(true)) => has_true = true,
                    Some(Value::Bool(false)) => has_false = true,
                    _ => {}
                }
            }
            *enabled = has_true || !has_false;
        }
    }
    // Conditions: the first path that holds a bool decides.
    for (_, enabled, dep) in &mut reqs {
        for cond in dep.condition.trim().split(',') {
            if cond.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(&cvals, &format!("{path}{cond}")) {
                *enabled = *b;
                break;
            }
        }
    }
    let off: Vec<&str> = reqs
        .iter()
        .filter(|(_, enabled, _)| !enabled)
        .map(|(name, _, _)| name.as_str())
        .collect();
    node.children.retain(|c| !off.contains(&c.name.as_str()));
    for (name, enabled, dep) in &reqs {
        if *enabled && !dep.import_values.is_empty() {
            return Err(ChartError::Unsupported {
                chart: node.name.clone(),
                feature: format!("import-values (dependency {name})"),
            });
        }
    }
    for child in &mut node.children {
        let sub = format!("{path}{}.", child.name);
        enable(child, &cvals, &sub)?;
    }
    Ok(())
}

/// Whether a chart version meets a dependency's constraint; an unparsable constraint
/// or version never does (Helm's `IsCompatibleRange`).
pub(crate) fn compatible(constraint: &str, version: &str) -> bool {
    let Ok(c) = kaas_gotmpl::semver::Constraints::parse(constraint) else {
        return false;
    };
    let Ok(v) = kaas_gotmpl::semver::Version::parse(version) else {
        return false;
    };
    c.check(&v)
}

/// Helm's `PathValue`: the non-map value at a dotted path.
pub(crate) fn path_value<'v>(vals: &'v Vals, path: &str) -> Option<&'v Value> {
    let parts: Vec<&str> = path.split('.').collect();
    let (key, tables) = parts.split_last()?;
    let mut table = vals;
    for t in tables {
        match table.get(*t) {
            Some(Value::Object(m)) => table = m,
            _ => return None,
        }
    }
    match table.get(*key) {
        Some(Value::Object(_)) | None => None,
        Some(v) => Some(v),
    }
}

/// Helm's `CoalesceValues`: the chart's defaults (and its subcharts', under their
/// names, with globals passed down) beneath `user`.
pub(crate) fn coalesce_values(node: &Node<'_>, user: &Vals) -> Result<Vals, ChartError> {
    let mut dest = user.clone();
    coalesce(node, &mut dest)?;
    Ok(dest)
}

fn coalesce(node: &Node<'_>, dest: &mut Vals) -> Result<(), ChartError> {
    coalesce_chart_values(node, dest);
    coalesce_deps(node, dest)
}

fn coalesce_deps(node: &Node<'_>, dest: &mut Vals) -> Result<(), ChartError> {
    for child in &node.children {
        let mut sub = match dest.remove(&child.name) {
            None => Vals::new(),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(ChartError::Values {
                    chart: node.name.clone(),
                    path: child.name.clone(),
                    reason: format!(
                        "type mismatch: subchart values must be a map, not {}",
                        json_kind(&other)
                    ),
                });
            }
        };
        coalesce_globals(&mut sub, dest);
        coalesce(child, &mut sub)?;
        dest.insert(child.name.clone(), Value::Object(sub));
    }
    Ok(())
}

/// Passes the parent's `global` down: the parent's globals win, maps merge.
fn coalesce_globals(dest: &mut Vals, src: &Vals) {
    let mut dg = match dest.get(GLOBAL) {
        None => Vals::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return,
    };
    let sg = match src.get(GLOBAL) {
        None => Vals::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return,
    };
    for (key, val) in sg {
        match val {
            Value::Object(mut vv) => match dg.get(&key) {
                None => {
                    dg.insert(key, Value::Object(vv));
                }
                Some(Value::Object(existing)) => {
                    coalesce_tables(&mut vv, existing.clone(), true);
                    dg.insert(key, Value::Object(vv));
                }
                // A map cannot go over a non-map: Helm skips it.
                Some(_) => {}
            },
            other => {
                if !matches!(dg.get(&key), Some(Value::Object(_))) {
                    dg.insert(key, other);
                }
            }
        }
    }
    dest.insert(GLOBAL.to_owned(), Value::Object(dg));
}

/// The chart's own `values.yaml` beneath `v`: a `null` in `v` removes the default;
/// maps merge (keeping nulls for subcharts, which are resolved one level down).
fn coalesce_chart_values(node: &Node<'_>, v: &mut Vals) {
    for (key, default) in &node.chart.values {
        match v.get_mut(key) {
            None => {
                v.insert(key.clone(), default.clone());
            }
            Some(Value::Null) => {
                v.remove(key);
            }
            Some(Value::Object(dest)) => {
                if let Value::Object(src) = default {
                    let merge = node.children.iter().any(|c| &c.name == key);
                    coalesce_tables(dest, src.clone(), merge);
                }
            }
            Some(_) => {}
        }
    }
}

/// Helm's `coalesceTablesFullKey`: `src` beneath `dst`, `dst` winning.
fn coalesce_tables(dst: &mut Vals, mut src: Vals, merge: bool) {
    for (k, v) in dst.iter() {
        if v.is_null() {
            src.insert(k.clone(), Value::Null);
        }
    }
    for (key, val) in src {
        match dst.get_mut(&key) {
            Some(Value::Null) if !merge => {
                dst.remove(&key);
            }
            None => {
                dst.insert(key, val);
            }
            Some(Value::Object(dv)) => {
                if let Value::Object(sv) = val {
                    coalesce_tables(dv, sv, merge);
                }
            }
            Some(_) => {}
        }
    }
}

/// The values of `child` within its parent's final values.
pub(crate) fn child_values<'v>(vals: &'v Vals, child: &str) -> Option<&'v Vals> {
    match vals.get(child) {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}
