//! Rendering a chart as `helm template` does (`pkg/engine`, `pkg/action`): values,
//! schema, the render context of each chart, one template set, then documents.

use std::collections::BTreeMap;

use kaas_gotmpl::helm::{Capabilities, Files};
use kaas_gotmpl::{Map as GoMap, TemplateSet, Value as GoValue, helm_parse_order};
use serde_json::Value;

use crate::capabilities::api_versions;
use crate::chart::{Chart, Metadata};
use crate::error::ChartError;
use crate::manifest::{
    ClusterScope, Hook, hook_of, kind_of, set_default_namespace, sort_by_kind, sort_hooks,
    split_manifests,
};
use crate::schema;
use crate::values::{
    Node, Vals, check_dependencies, child_values, coalesce_values, compatible, enable, merge_layers,
};

/// What to render a chart for.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// `.Release.Name`.
    pub release_name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
    /// The target cluster's version (`v1.33.2`): `.Capabilities.KubeVersion`, and what
    /// the chart's `kubeVersion` constraint is checked against.
    pub kube_version: String,
    /// Group/versions (`monitoring.coreos.com/v1`) and `group/version/Kind`s the
    /// cluster serves besides Helm's default list.
    pub api_versions: Vec<String>,
    /// Value layers over the chart's `values.yaml`, each a JSON map; later wins.
    pub values: Vec<Value>,
    /// Whether to return the documents of `crds/` in [`Rendered::crds`].
    pub include_crds: bool,
}

/// A rendered chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// The documents of `crds/` of the chart and its enabled subcharts (when asked
    /// for), to be applied first, as Helm does.
    pub crds: Vec<Value>,
    /// The templates' objects in Helm's install order.
    pub objects: Vec<Value>,
    /// Objects with a `helm.sh/hook` annotation (`test` hooks left out), in the
    /// order Helm runs the hooks of one event.
    pub hooks: Vec<Hook>,
}

impl Rendered {
    /// Which kinds are cluster-scoped: the built-in list and the CRDs of this render.
    pub fn cluster_scope(&self) -> ClusterScope {
        ClusterScope::from_objects(self.crds.iter().chain(&self.objects))
    }

    /// Sets `metadata.namespace` on the namespaced objects and hooks that have none,
    /// using [`Rendered::cluster_scope`].
    pub fn set_default_namespace(&mut self, namespace: &str) {
        let scope = self.cluster_scope();
        let is_cluster = |a: &str, k: &str| scope.is_cluster_scoped(a, k);
        set_default_namespace(&mut self.objects, namespace, is_cluster);
        for hook in &mut self.hooks {
            set_default_namespace(
                std::slice::from_mut(&mut hook.object),
                namespace,
                is_cluster,
            );
        }
    }
}

/// The values each chart would render with: the caller's layers over `values.yaml`,
/// subcharts' under their names, checked against every `values.schema.json`.
pub fn values(chart: &Chart, layers: &[Value]) -> Result<Value, ChartError> {
    let (_, vals) = prepare(chart, layers)?;
    Ok(Value::Object(vals))
}

fn prepare<'a>(chart: &'a Chart, layers: &[Value]) -> Result<(Node<'a>, Vals), ChartError> {
    check_dependencies(chart)?;
    let user = merge_layers(layers)?;
    let mut root = Node::whole(chart, chart.name().to_owned());
    enable(&mut root, &user, "")?;
    let vals = coalesce_values(&root, &user)?;
    validate(&root, &vals)?;
    Ok((root, vals))
}

/// Helm's `ValidateAgainstSchema`, each chart with its own part of the values.
fn validate(node: &Node<'_>, vals: &Vals) -> Result<(), ChartError> {
    if let Some(schema) = &node.chart.schema {
        let violations = schema::validate(schema, &Value::Object(vals.clone()));
        if !violations.is_empty() {
            return Err(ChartError::Schema {
                chart: node.name.clone(),
                violations,
            });
        }
    }
    let empty = Vals::new();
    for child in &node.children {
        validate(child, child_values(vals, &child.name).unwrap_or(&empty))?;
    }
    Ok(())
}

/// A template to render: its text, the chart it belongs to and that chart's context.
struct Renderable {
    text: String,
    chart: String,
    context: GoMap,
    base_path: String,
}

/// Renders `chart` as `helm template` would for `options`.
pub fn render(chart: &Chart, options: &RenderOptions) -> Result<Rendered, ChartError> {
    let (root, vals) = prepare(chart, &options.values)?;
    let caps = Capabilities::new(&options.kube_version, api_versions(&options.api_versions))
        .map_err(ChartError::Options)?;
    let constraint = &chart.metadata.kube_version;
    if !constraint.is_empty() && !compatible(constraint, &caps.kube_version.version) {
        return Err(ChartError::KubeVersion {
            chart: chart.name().to_owned(),
            constraint: constraint.clone(),
            version: caps.kube_version.version.clone(),
        });
    }
    let release = GoValue::map([
        ("Name", GoValue::string(options.release_name.clone())),
        ("Namespace", GoValue::string(options.namespace.clone())),
        ("IsUpgrade", GoValue::Bool(false)),
        ("IsInstall", GoValue::Bool(true)),
        ("Revision", GoValue::Int(1)),
        ("Service", GoValue::string("Helm")),
    ]);
    let top_values = GoValue::from_go_json(Value::Object(vals));
    let mut templates = BTreeMap::new();
    let shared = Shared {
        release,
        capabilities: GoValue::object(caps),
    };
    contexts(&root, None, &top_values, &shared, &mut templates);

    let names: Vec<&String> = templates.keys().collect();
    let order = helm_parse_order(&names);
    let mut set = TemplateSet::new();
    for name in &order {
        let Some(t) = templates.get(name) else {
            continue;
        };
        set.add(name, &t.text)
            .map_err(|source| ChartError::Template {
                chart: t.chart.clone(),
                template: name.clone(),
                source,
            })?;
    }
    let mut outputs = BTreeMap::new();
    for name in &order {
        let Some(t) = templates.get(name) else {
            continue;
        };
        if base_name(name).starts_with('_') {
            continue;
        }
        t.context.insert(
            "Template",
            GoValue::map([
                ("Name", GoValue::string(name.clone())),
                ("BasePath", GoValue::string(t.base_path.clone())),
            ]),
        );
        let out = set
            .render(name, &GoValue::Map(t.context.clone()))
            .map_err(|source| ChartError::Template {
                chart: t.chart.clone(),
                template: name.clone(),
                source,
            })?;
        outputs.insert(name.clone(), (t.chart.clone(), out));
    }

    let mut rendered = Rendered::default();
    for (name, (chart_name, text)) in &outputs {
        // NOTES.txt is rendered (its errors count) but is not a manifest.
        if name.ends_with("NOTES.txt") || text.trim().is_empty() {
            continue;
        }
        for doc in split_manifests(text) {
            let Some(object) = parse_object(&doc, chart_name, name)? else {
                continue;
            };
            match hook_of(&object, name) {
                Some(hook) if hook.events.iter().any(|e| e.starts_with("test")) => {}
                Some(hook) => rendered.hooks.push(hook),
                None => rendered.objects.push(object),
            }
        }
    }
    sort_by_kind(&mut rendered.objects, |o| kind_of(o));
    sort_hooks(&mut rendered.hooks);
    if options.include_crds {
        crds(&root, &mut rendered.crds)?;
    }
    Ok(rendered)
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One rendered document as an object; `None` for a document of comments only.
fn parse_object(doc: &str, chart: &str, template: &str) -> Result<Option<Value>, ChartError> {
    let bad = |reason: String| ChartError::Manifest {
        chart: chart.to_owned(),
        template: template.to_owned(),
        reason,
    };
    let value: Value =
        serde_saphyr::from_str(doc).map_err(|e| bad(format!("YAML parse error: {e}")))?;
    match &value {
        Value::Null => Ok(None),
        Value::Object(m) => {
            let has = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if !has("apiVersion") || !has("kind") {
                let head: String = doc.lines().next().unwrap_or("").chars().take(60).collect();
                return Err(bad(format!(
                    "a document is not a Kubernetes object (no apiVersion or kind): {head:?}"
                )));
            }
            Ok(Some(value))
        }
        other => Err(bad(format!(
            "a document is not a Kubernetes object but {}",
            crate::chart::json_kind(other)
        ))),
    }
}

/// The documents of `crds/` (`.yaml`, `.yml`, `.json`), the chart's first, then its
/// enabled subcharts' in order.
fn crds(node: &Node<'_>, out: &mut Vec<Value>) -> Result<(), ChartError> {
    for f in &node.chart.files {
        let is_manifest = [".yaml", ".yml", ".json"]
            .iter()
            .any(|e| f.name.ends_with(e));
        if !f.name.starts_with("crds/") || !is_manifest {
            continue;
        }
        let text = String::from_utf8_lossy(&f.data);
        for doc in split_manifests(&text) {
            if let Some(o) = parse_object(&doc, &node.name, &f.name)? {
                out.push(o);
            }
        }
    }
    for child in &node.children {
        crds(child, out)?;
    }
    Ok(())
}

struct Shared {
    release: GoValue,
    capabilities: GoValue,
}

/// Builds the render context of `node` (and of its subcharts, which it lists under
/// `.Subcharts`) and records its templates. `parent` is the parent's full path.
fn contexts(
    node: &Node<'_>,
    parent: Option<&str>,
    parent_values: &GoValue,
    shared: &Shared,
    templates: &mut BTreeMap<String, Renderable>,
) -> GoMap {
    let chart = node.chart;
    let values = match parent {
        None => parent_values.clone(),
        Some(_) => match parent_values {
            GoValue::Map(m) => match m.get(&node.name) {
                Some(GoValue::Map(v)) => GoValue::Map(v),
                _ => GoValue::Map(GoMap::new()),
            },
            _ => GoValue::Map(GoMap::new()),
        },
    };
    let full_path = match parent {
        None => node.name.clone(),
        Some(p) => format!("{p}/charts/{}", node.name),
    };
    let subcharts = GoMap::new();
    let files = Files::new(chart.files.iter().map(|f| {
        (
            f.name.clone(),
            String::from_utf8_lossy(&f.data).into_owned(),
        )
    }));
    let context = GoMap::new();
    context.insert(
        "Chart",
        chart_value(&chart.metadata, node, parent.is_none()),
    );
    context.insert("Files", GoValue::object(files));
    context.insert("Release", shared.release.clone());
    context.insert("Capabilities", shared.capabilities.clone());
    context.insert("Values", values.clone());
    context.insert("Subcharts", GoValue::Map(subcharts.clone()));
    for child in &node.children {
        let sub = contexts(child, Some(&full_path), &values, shared, templates);
        subcharts.insert(child.name.clone(), GoValue::Map(sub));
    }
    for t in &chart.templates {
        if chart.is_library() && !base_name(&t.name).starts_with('_') {
            continue;
        }
        templates.insert(
            format!("{full_path}/{}", t.name),
            Renderable {
                text: String::from_utf8_lossy(&t.data).into_owned(),
                chart: node.name.clone(),
                context: context.clone(),
                base_path: format!("{full_path}/templates"),
            },
        );
    }
    context
}

/// `.Chart`: Helm's `Metadata` with its Go field names, and `IsRoot`.
fn chart_value(md: &Metadata, node: &Node<'_>, is_root: bool) -> GoValue {
    let s = |v: &str| GoValue::string(v.to_owned());
    let list = |v: &[String]| GoValue::list(v.iter().map(|x| s(x)).collect());
    let dependencies = md
        .dependencies
        .iter()
        .map(|d| {
            let name = if d.alias.is_empty() {
                &d.name
            } else {
                &d.alias
            };
            GoValue::map([
                ("Name", s(name)),
                ("Version", s(&d.version)),
                ("Repository", s(&d.repository)),
                ("Condition", s(&d.condition)),
                ("Tags", list(&d.tags)),
                (
                    "Enabled",
                    GoValue::Bool(node.children.iter().any(|c| &c.name == name)),
                ),
                ("ImportValues", GoValue::list(Vec::new())),
                ("Alias", s(&d.alias)),
            ])
        })
        .collect();
    GoValue::map([
        ("Name", s(&node.name)),
        ("Home", s(&md.home)),
        ("Sources", list(&md.sources)),
        ("Version", s(&md.version)),
        ("Description", s(&md.description)),
        ("Keywords", list(&md.keywords)),
        (
            "Maintainers",
            GoValue::list(
                md.maintainers
                    .iter()
                    .map(|m| {
                        GoValue::map([
                            ("Name", s(&m.name)),
                            ("Email", s(&m.email)),
                            ("URL", s(&m.url)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("Icon", s(&md.icon)),
        ("APIVersion", s(&md.api_version)),
        ("Condition", s(&md.condition)),
        ("Tags", s(&md.tags)),
        ("AppVersion", s(&md.app_version)),
        ("Deprecated", GoValue::Bool(md.deprecated)),
        (
            "Annotations",
            GoValue::map(md.annotations.iter().map(|(k, v)| (k.clone(), s(v)))),
        ),
        ("KubeVersion", s(&md.kube_version)),
        ("Dependencies", GoValue::list(dependencies)),
        ("Type", s(md.chart_type.as_str())),
        ("IsRoot", GoValue::Bool(is_root)),
    ])
}
