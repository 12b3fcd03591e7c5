//! Charts rendered end to end: the test charts under `tests/charts/` use each feature
//! the way upstream charts do, and each case pins what Helm renders for it.

use std::path::{Path, PathBuf};

use kaas_helm::{Chart, ChartError, RenderOptions, Rendered, package, render, values};
use serde_json::{Value, json};

fn chart_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/charts")
        .join(name)
}

fn webapp() -> Chart {
    match Chart::from_dir(chart_dir("webapp")) {
        Ok(c) => c,
        Err(e) => panic!("webapp does not load: {e}"),
    }
}

fn opts(values: Vec<Value>) -> RenderOptions {
    RenderOptions {
        release_name: "shop".into(),
        namespace: "apps".into(),
        kube_version: "v1.33.2".into(),
        api_versions: vec![],
        values,
        include_crds: true,
    }
}

#[track_caller]
fn must(result: Result<Rendered, ChartError>) -> Rendered {
    match result {
        Ok(r) => r,
        Err(e) => panic!("render failed: {e}"),
    }
}

#[track_caller]
fn must_err(result: Result<Rendered, ChartError>) -> ChartError {
    match result {
        Ok(r) => panic!("rendered, wanted an error: {r:?}"),
        Err(e) => e,
    }
}

fn render_webapp(values: Vec<Value>) -> Rendered {
    must(render(&webapp(), &opts(values)))
}

/// `kind/name` of each object, in order.
fn names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

fn find<'r>(r: &'r Rendered, kind: &str, name: &str) -> Option<&'r Value> {
    r.objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// Every document of a render as YAML, for snapshots.
fn to_text(r: &Rendered) -> String {
    let mut out = String::new();
    let mut doc = |title: String, v: &Value| {
        out.push_str(&format!("--- # {title}\n"));
        out.push_str(&serde_saphyr::to_string(v).unwrap_or_else(|e| e.to_string()));
    };
    for c in &r.crds {
        doc("crd".into(), c);
    }
    for o in &r.objects {
        doc("object".into(), o);
    }
    for h in &r.hooks {
        doc(
            format!(
                "hook {} weight {} from {}",
                h.events.join(","),
                h.weight,
                h.template
            ),
            &h.object,
        );
    }
    out
}

#[test]
fn default_render_is_pinned() {
    insta::assert_snapshot!(to_text(&render_webapp(vec![])));
}

#[test]
fn objects_come_in_install_order_with_crds_first() {
    let r = render_webapp(vec![]);
    assert_eq!(
        names(&r.crds),
        [
            "CustomResourceDefinition/widgets.example.com",
            "CustomResourceDefinition/gauges.metrics.example.com"
        ]
    );
    assert_eq!(
        names(&r.objects),
        [
            "PodDisruptionBudget/shop-webapp",
            "ConfigMap/shop-webapp-config",
            "ConfigMap/shop-webapp-dashboards",
            "Service/shop-metrics",
            "Service/shop-webapp",
            "Deployment/shop-webapp",
            "Widget/shop-webapp",
        ]
    );
    let without = must(render(
        &webapp(),
        &RenderOptions {
            include_crds: false,
            ..opts(vec![])
        },
    ));
    assert!(without.crds.is_empty());
}

#[test]
fn hooks_are_set_apart_in_run_order_and_tests_dropped() {
    let r = render_webapp(vec![]);
    let hooks: Vec<(String, Vec<String>, i64, Vec<String>)> = r
        .hooks
        .iter()
        .map(|h| {
            (
                names(std::slice::from_ref(&h.object)).join(""),
                h.events.clone(),
                h.weight,
                h.delete_policies.clone(),
            )
        })
        .collect();
    assert_eq!(
        hooks,
        [
            (
                "ServiceAccount/shop-webapp-migrate".into(),
                vec!["pre-install".into()],
                -10,
                vec![]
            ),
            (
                "Job/shop-webapp-migrate".into(),
                vec!["pre-install".into(), "pre-upgrade".into()],
                -5,
                vec!["before-hook-creation".into(), "hook-succeeded".into()]
            ),
        ]
    );
    assert!(
        !names(&r.objects)
            .iter()
            .any(|n| n.contains("test-connection"))
    );
    let r = render_webapp(vec![json!({"hooks": {"migrate": false}})]);
    assert!(r.hooks.is_empty());
}

/// One value set and where its effect shows in the render.
struct ValueCase {
    layers: Vec<Value>,
    kind: &'static str,
    name: &'static str,
    pointer: &'static str,
    want: Value,
}

#[test]
fn values_reach_templates_as_helm_merges_them() {
    let cases = [
        // A layer overrides values.yaml.
        ValueCase {
            layers: vec![json!({"replicaCount": 3})],
            kind: "Deployment",
            name: "shop-webapp",
            pointer: "/spec/replicas",
            want: json!(3),
        },
        // Later layers win.
        ValueCase {
            layers: vec![json!({"replicaCount": 3}), json!({"replicaCount": 5})],
            kind: "Deployment",
            name: "shop-webapp",
            pointer: "/spec/replicas",
            want: json!(5),
        },
        // Maps merge deeply: the tag set beside the default pull policy.
        ValueCase {
            layers: vec![json!({"image": {"tag": "2.1.0"}})],
            kind: "Deployment",
            name: "shop-webapp",
            pointer: "/spec/template/spec/containers/0/image",
            want: json!("registry.example.com/example/webapp:2.1.0"),
        },
        // An empty tag falls back to the chart's appVersion.
        ValueCase {
            layers: vec![],
            kind: "Deployment",
            name: "shop-webapp",
            pointer: "/spec/template/spec/containers/0/image",
            want: json!("registry.example.com/example/webapp:2.0.0"),
        },
        // A null removes the default: the template prints nothing.
        ValueCase {
            layers: vec![json!({"podDisruptionBudget": {"minAvailable": null}})],
            kind: "PodDisruptionBudget",
            name: "shop-webapp",
            pointer: "/spec/minAvailable",
            want: Value::Null,
        },
        // A null in a later layer removes what an earlier layer set, too.
        ValueCase {
            layers: vec![
                json!({"podAnnotations": {"a": "1", "b": "2"}}),
                json!({"podAnnotations": {"a": null}}),
            ],
            kind: "Deployment",
            name: "shop-webapp",
            pointer: "/spec/template/metadata/annotations/b",
            want: json!("2"),
        },
        // fullname helpers: an override, and a release name holding the chart name.
        ValueCase {
            layers: vec![json!({"fullnameOverride": "web"})],
            kind: "Service",
            name: "web",
            pointer: "/spec/ports/0/port",
            want: json!(80),
        },
        // tpl on a value, with the release in scope.
        ValueCase {
            layers: vec![],
            kind: "ConfigMap",
            name: "shop-webapp-config",
            pointer: "/data/greeting",
            want: json!("hello from shop in apps"),
        },
        // Parent values reach the subchart under its name.
        ValueCase {
            layers: vec![json!({"metrics": {"port": 9443}})],
            kind: "Service",
            name: "shop-metrics",
            pointer: "/spec/ports/0/port",
            want: json!(9443),
        },
        // global goes down to subcharts and wins over their own global defaults ...
        ValueCase {
            layers: vec![],
            kind: "Service",
            name: "shop-metrics",
            pointer: "/metadata/annotations/registry",
            want: json!("registry.example.com"),
        },
        // ... which stay where the parent says nothing ...
        ValueCase {
            layers: vec![],
            kind: "Service",
            name: "shop-metrics",
            pointer: "/metadata/annotations/pull-policy",
            want: json!("IfNotPresent"),
        },
        // ... and nested global maps merge.
        ValueCase {
            layers: vec![],
            kind: "Service",
            name: "shop-metrics",
            pointer: "/metadata/labels",
            want: json!({"component": "metrics", "team": "platform"}),
        },
        ValueCase {
            layers: vec![json!({"global": {"imageRegistry": "mirror.local"}})],
            kind: "Service",
            name: "shop-metrics",
            pointer: "/metadata/annotations/registry",
            want: json!("mirror.local"),
        },
        // A library chart's define, fed with the caller's values.
        ValueCase {
            layers: vec![json!({"global": {"labels": {"tier": "web"}}})],
            kind: "Service",
            name: "shop-webapp",
            pointer: "/metadata/labels/tier",
            want: json!("web"),
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let r = render_webapp(case.layers.clone());
        let Some(object) = find(&r, case.kind, case.name) else {
            panic!(
                "case {i}: no {}/{} in {:?}",
                case.kind,
                case.name,
                names(&r.objects)
            );
        };
        assert_eq!(
            object.pointer(case.pointer).cloned().unwrap_or(Value::Null),
            case.want,
            "case {i}: {:?} at {}",
            case.layers,
            case.pointer
        );
    }
}

#[test]
fn final_values_are_coalesced_as_helm() {
    let got = match values(
        &webapp(),
        &[
            json!({"metrics": {"args": ["--a", "--b"]}}),
            json!({"metrics": {"args": ["--c"]}}),
        ],
    ) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    // Lists replace; the subchart's own defaults fill in under its name, with the
    // parent's globals merged over its own.
    assert_eq!(
        got["metrics"],
        json!({
            "enabled": true,
            "port": 9090,
            "args": ["--c"],
            "global": {
                "imageRegistry": "registry.example.com",
                "pullPolicy": "IfNotPresent",
                "labels": {"team": "platform", "component": "metrics"}
            }
        })
    );
    // A subchart that is not enabled gets no values.
    assert!(got.get("extras").is_none());
}

#[test]
fn subcharts_are_enabled_by_condition_and_tags() {
    let cases: &[(Value, bool, bool)] = &[
        // (values, metrics rendered, extras rendered)
        (json!({}), true, false),
        (json!({"metrics": {"enabled": false}}), false, false),
        // The first path that holds a bool decides: with metrics.enabled removed,
        // the second path does; with neither, the dependency stays enabled.
        (
            json!({"metrics": {"enabled": null}, "global": {"metrics": {"enabled": false}}}),
            false,
            false,
        ),
        (json!({"metrics": {"enabled": null}}), true, false),
        (json!({"tags": {"extras": true}}), true, true),
        (json!({"tags": {"extras": null}}), true, true),
    ];
    for (values, metrics, extras) in cases {
        let r = render_webapp(vec![values.clone()]);
        assert_eq!(
            find(&r, "Service", "shop-metrics").is_some(),
            *metrics,
            "metrics with {values}"
        );
        assert_eq!(
            r.crds
                .iter()
                .any(|c| c["metadata"]["name"] == "gauges.metrics.example.com"),
            *metrics,
            "metrics CRDs with {values}"
        );
        assert_eq!(
            find(&r, "ConfigMap", "shop-extras").is_some(),
            *extras,
            "extras with {values}"
        );
    }
    let r = render_webapp(vec![json!({"tags": {"extras": true}})]);
    assert_eq!(
        find(&r, "ConfigMap", "shop-extras").map(|c| c["data"].clone()),
        Some(json!({"message": "extra", "registry": "registry.example.com"}))
    );
}

#[test]
fn capabilities_follow_the_target_cluster() {
    let probe = |version: &str| {
        let r = must(render(
            &webapp(),
            &RenderOptions {
                kube_version: version.into(),
                ..opts(vec![])
            },
        ));
        find(&r, "Deployment", "shop-webapp")
            .and_then(|d| d.pointer("/spec/template/spec/containers/0/startupProbe"))
            .is_some()
    };
    assert!(!probe("v1.29.4"));
    assert!(probe("v1.30.0"));
    assert!(probe("1.33.2-gke.1"));
    let r = render_webapp(vec![]);
    assert_eq!(
        find(&r, "PodDisruptionBudget", "shop-webapp").map(|p| p["apiVersion"].clone()),
        Some(json!("policy/v1"))
    );
}

#[test]
fn files_are_served_without_ignored_ones() {
    let r = render_webapp(vec![]);
    let config = find(&r, "ConfigMap", "shop-webapp-config").map(|c| c["data"].clone());
    assert_eq!(
        config,
        Some(json!({
            "greeting": "hello from shop in apps",
            "app.conf": "listen = 8080\nlog_level = info\n",
            "secret-present": "false",
            "template": "webapp/templates/configmap.yaml"
        }))
    );
    let dashboards = find(&r, "ConfigMap", "shop-webapp-dashboards").map(|c| c["data"].clone());
    assert_eq!(
        dashboards,
        Some(json!({"a.json": "{\"title\": \"A\"}\n", "b.json": "{\"title\": \"B\"}\n"}))
    );
    let chart = webapp();
    let files: Vec<&str> = chart.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        files,
        [
            ".helmignore",
            "crds/widgets.yaml",
            "files/app.conf",
            "files/dashboards/a.json",
            "files/dashboards/b.json",
        ]
    );
}

#[test]
fn subchart_templates_are_named_as_helm_names_them() {
    let r = render_webapp(vec![]);
    let annotations =
        find(&r, "Service", "shop-metrics").map(|s| s["metadata"]["annotations"].clone());
    assert_eq!(
        annotations,
        Some(json!({
            "template": "webapp/charts/metrics/templates/service.yaml",
            "base-path": "webapp/charts/metrics/templates",
            "registry": "registry.example.com",
            "pull-policy": "IfNotPresent",
            "is-root": "false"
        }))
    );
}

#[test]
fn namespaces_are_filled_in_for_namespaced_kinds() {
    let mut r = render_webapp(vec![]);
    r.set_default_namespace("apps");
    let ns: Vec<(String, Option<&str>)> = names(&r.objects)
        .into_iter()
        .zip(
            r.objects
                .iter()
                .map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str)),
        )
        .collect();
    assert!(
        ns.iter().all(|(n, ns)| if n.starts_with("Widget/") {
            ns.is_none()
        } else {
            *ns == Some("apps")
        }),
        "{ns:?}"
    );
    assert!(
        r.hooks
            .iter()
            .all(|h| h.object.pointer("/metadata/namespace") == Some(&json!("apps")))
    );
}

#[test]
fn packaged_charts_load_back_and_package_deterministically() {
    let dir = chart_dir("webapp");
    let (a, b) = match (package(&dir), package(&dir)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => panic!("package: {e}"),
    };
    assert_eq!(a, b, "packaging twice gives the same bytes");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
    let entries: Vec<String> = match archive.entries() {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.path().ok().map(|p| p.display().to_string()))
            .collect(),
        Err(e) => panic!("{e}"),
    };
    assert!(
        entries.iter().all(|e| e.starts_with("webapp/")),
        "{entries:?}"
    );
    assert!(entries.contains(&"webapp/charts/metrics/Chart.yaml".to_owned()));
    assert!(
        !entries
            .iter()
            .any(|e| e.ends_with(".swp") || e.ends_with("secret.txt"))
    );
    let mut sorted = entries.clone();
    sorted.sort();
    assert_eq!(entries, sorted);
    let from_archive = match Chart::from_archive(&a) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        must(render(&from_archive, &opts(vec![]))),
        render_webapp(vec![])
    );
}

/// The files of the folder `dir`, named relative to it.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let (Ok(rel), Ok(data)) = (path.strip_prefix(root), std::fs::read(&path)) {
                out.push((rel.display().to_string(), data));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn subcharts_load_from_archives_in_charts() {
    let dir = chart_dir("webapp");
    let metrics = match package(dir.join("charts/metrics")) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let mut files: Vec<(String, Vec<u8>)> = files_of(&dir)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("charts/metrics/"))
        .collect();
    files.push(("charts/metrics-0.1.4.tgz".into(), metrics));
    let chart = match Chart::from_files(files) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(must(render(&chart, &opts(vec![]))), render_webapp(vec![]));
}

#[test]
fn library_charts_render_nothing_of_their_own() {
    let r = render_webapp(vec![]);
    assert!(find(&r, "ConfigMap", "never-rendered").is_none());
}

/// A chart from (path, text) pairs.
fn chart_of(files: &[(&str, &str)]) -> Result<Chart, ChartError> {
    Chart::from_files(
        files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn helm_2_charts_take_dependencies_from_requirements() {
    let chart = chart_of(&[
        ("Chart.yaml", "name: old\nversion: 0.1.0\n"),
        (
            "requirements.yaml",
            "dependencies:\n  - name: sub\n    version: 1.x\n    alias: renamed\n    condition: renamed.on\n",
        ),
        ("values.yaml", "renamed:\n  on: true\n  colour: red\n"),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}\n",
        ),
        (
            "charts/sub/Chart.yaml",
            "apiVersion: v2\nname: sub\nversion: 1.2.0\n",
        ),
        (
            "charts/sub/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Chart.Name }}-{{ .Values.colour }}\n  annotations:\n    t: {{ .Template.Name }}\n",
        ),
    ]);
    let chart = match chart {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(chart.metadata.api_version, "v1");
    let r = must(render(&chart, &opts(vec![])));
    // Same kind: by template path, and `old/charts/...` sorts before `old/templates/...`.
    assert_eq!(
        names(&r.objects),
        ["ConfigMap/renamed-red", "ConfigMap/old"]
    );
    assert_eq!(
        r.objects[0]["metadata"]["annotations"]["t"],
        "old/charts/renamed/templates/cm.yaml"
    );
    let r = must(render(
        &chart,
        &opts(vec![json!({"renamed": {"on": false}})]),
    ));
    assert_eq!(names(&r.objects), ["ConfigMap/old"]);
}

#[test]
fn errors_name_the_chart_and_the_cause() {
    struct Case {
        values: Value,
        kube_version: &'static str,
        want: &'static str,
    }
    let cases = [
        Case {
            values: json!({"replicaCount": 0}),
            kube_version: "v1.33.2",
            want: "chart webapp: values don't meet the specifications of the schema: replicaCount: must be >= 1 but found 0",
        },
        Case {
            values: json!({"image": {"registry": "x"}, "service": {"port": 70000, "type": "Ingress"}}),
            kube_version: "v1.33.2",
            want: "chart webapp: values don't meet the specifications of the schema: image.registry: additional property is not allowed; service.port: must be <= 65535 but found 70000; service.type: must be one of [\"ClusterIP\", \"NodePort\", \"LoadBalancer\"]",
        },
        Case {
            values: json!({"podAnnotations": {"a": 1}, "metrics": {"enabled": "yes"}}),
            kube_version: "v1.33.2",
            want: "chart webapp: values don't meet the specifications of the schema: metrics.enabled: expected boolean, but got string; podAnnotations.a: expected string, but got integer",
        },
        Case {
            values: json!({"image": null}),
            kube_version: "v1.33.2",
            want: "chart webapp: values don't meet the specifications of the schema: image: is required",
        },
        Case {
            values: json!({}),
            kube_version: "v1.24.9",
            want: "chart webapp requires kubeVersion: >=1.25.0-0 which is incompatible with Kubernetes v1.24.9",
        },
        Case {
            values: json!({}),
            kube_version: "latest",
            want: "render options: invalid Kubernetes version \"latest\": Invalid Semantic Version",
        },
        Case {
            values: json!({"metrics": "on"}),
            kube_version: "v1.33.2",
            want: "chart webapp: values: metrics: type mismatch: subchart values must be a map, not a string",
        },
    ];
    for case in cases {
        let err = must_err(render(
            &webapp(),
            &RenderOptions {
                kube_version: case.kube_version.into(),
                ..opts(vec![case.values.clone()])
            },
        ));
        assert_eq!(err.to_string(), case.want, "values {}", case.values);
    }
}

#[test]
fn required_and_fail_messages_are_surfaced() {
    let err = must_err(render(
        &webapp(),
        &opts(vec![json!({"auth": {"enabled": true}})]),
    ));
    assert_eq!(
        err.failure(),
        Some("auth.password is required when auth.enabled is true")
    );
    assert!(
        err.to_string()
            .starts_with("chart webapp: template: webapp/templates/secret.yaml:8:"),
        "{err}"
    );
    let r = render_webapp(vec![
        json!({"auth": {"enabled": true, "password": "s3cret"}}),
    ]);
    assert_eq!(
        find(&r, "Secret", "shop-webapp-auth").map(|s| s["data"]["password"].clone()),
        Some(json!("czNjcmV0"))
    );
}

#[test]
fn lookup_is_refused_naming_chart_and_template() {
    let err = must_err(render(
        &webapp(),
        &opts(vec![json!({"lookupExisting": true})]),
    ));
    let text = err.to_string();
    assert!(
        text.starts_with("chart webapp: template: webapp/templates/existing.yaml:2:"),
        "{text}"
    );
    assert!(text.contains("lookup is not supported"), "{text}");
    assert!(
        matches!(err, ChartError::Template { ref template, .. } if template == "webapp/templates/existing.yaml")
    );
}

#[test]
fn broken_charts_are_refused() {
    let base = [("Chart.yaml", "apiVersion: v2\nname: bad\nversion: 0.1.0\n")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut files = base.to_vec();
        files.extend_from_slice(extra);
        chart_of(&files).and_then(|c| render(&c, &opts(vec![])))
    };
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("templates/x.yaml", "foo: bar\n")],
            "chart bad: bad/templates/x.yaml: a document is not a Kubernetes object (no apiVersion or kind): \"foo: bar\"",
        ),
        (
            &[("templates/x.yaml", "- a\n")],
            "chart bad: bad/templates/x.yaml: a document is not a Kubernetes object but a list",
        ),
        (
            &[("templates/x.yaml", "{{ .Values.x | nosuchfunc }}")],
            "chart bad: template: bad/templates/x.yaml:1: function \"nosuchfunc\" not defined",
        ),
        (
            &[("templates/x.yaml", "{{ fail \"stop here\" }}")],
            "chart bad: template: bad/templates/x.yaml:1:3: executing \"bad/templates/x.yaml\" at <fail \"stop here\">: error calling fail: stop here",
        ),
        (
            &[("values.yaml", "- not a map\n")],
            "chart bad: values.yaml: cannot load values.yaml: a map is needed, not a list",
        ),
        (
            &[("values.schema.json", "{not json")],
            "chart bad: values.schema.json: invalid JSON: key must be a string at line 1 column 2",
        ),
        (&[("templates/x.yaml", "# only a comment\n---\n")], ""),
    ];
    for (extra, want) in cases {
        match with(extra) {
            Ok(r) => assert!(
                want.is_empty() && r.objects.is_empty(),
                "{extra:?} rendered {r:?}"
            ),
            Err(e) => assert_eq!(e.to_string(), *want, "{extra:?}"),
        }
    }
    let err = |files: &[(&str, &str)]| match chart_of(files) {
        Ok(c) => match render(&c, &opts(vec![])) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    assert_eq!(
        err(&[("values.yaml", "a: 1\n")]),
        "chart (files): Chart.yaml: Chart.yaml file is missing"
    );
    assert_eq!(
        err(&[(
            "Chart.yaml",
            "apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies:\n  - name: gone\n    version: 1.0.0\n"
        )]),
        "chart a: found in Chart.yaml, but missing in charts/ directory: gone"
    );
    assert_eq!(
        err(&[
            (
                "Chart.yaml",
                "apiVersion: v2\nname: a\nversion: 1.0.0\ndependencies:\n  - name: sub\n    version: 1.0.0\n    import-values: [data]\n"
            ),
            (
                "charts/sub/Chart.yaml",
                "apiVersion: v2\nname: sub\nversion: 1.0.0\n"
            ),
        ]),
        "chart a: import-values (dependency sub) is not supported"
    );
    assert_eq!(
        err(&[
            ("Chart.yaml", "apiVersion: v2\nname: a\nversion: 1.0.0\n"),
            ("charts/sub/Chart.yaml", "apiVersion: v2\nversion: 1.0.0\n"),
        ]),
        "chart a: charts/sub/Chart.yaml: chart.metadata.name is required"
    );
}

/// A gzipped tar of raw entries: (path, kind, data).
fn raw_archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if *kind == tar::EntryType::Symlink {
            let _ = header.set_link_name("/etc/passwd");
        }
        // Write the name bytes directly: set_path refuses `..` and absolute paths.
        let name = path.as_bytes();
        if let Some(gnu) = header.as_gnu_mut() {
            gnu.name[..name.len()].copy_from_slice(name);
        }
        header.set_cksum();
        if let Err(e) = builder.append(&header, *data) {
            panic!("{e}");
        }
    }
    match builder.into_inner().and_then(|gz| gz.finish()) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unsafe_archives_are_refused() {
    use tar::EntryType::{Regular, Symlink};
    let chart_yaml: &[u8] = b"apiVersion: v2\nname: a\nversion: 1.0.0\n";
    let big = vec![b'x'; (kaas_helm::MAX_FILE_BYTES + 1) as usize];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_archive(&[
                ("a/Chart.yaml", Regular, chart_yaml),
                ("a/../../etc/cron.d/x", Regular, b"x"),
            ]),
            "chart (archive): a/../../etc/cron.d/x: chart illegally references parent directory",
        ),
        (
            raw_archive(&[("/etc/passwd", Regular, b"x")]),
            "chart (archive): /etc/passwd: chart illegally contains absolute paths",
        ),
        (
            raw_archive(&[
                ("a/Chart.yaml", Regular, chart_yaml),
                ("a/templates/x.yaml", Symlink, b""),
            ]),
            "chart (archive): a/templates/x.yaml: links are not allowed in a chart archive",
        ),
        (
            raw_archive(&[("Chart.yaml", Regular, chart_yaml)]),
            "chart (archive): Chart.yaml: chart yaml not in base directory",
        ),
        (
            raw_archive(&[
                ("a/Chart.yaml", Regular, chart_yaml),
                ("a/files/big", Regular, &big),
            ]),
            "chart (archive): a/files/big: file is larger than the limit of 5242880 bytes",
        ),
        (
            b"not gzip at all".to_vec(),
            "chart (archive): (archive): not a gzipped tar archive: invalid gzip header",
        ),
        (
            raw_archive(&[]),
            "chart (archive): (archive): no files in chart archive",
        ),
    ];
    for (bytes, want) in cases {
        match Chart::from_archive(&bytes) {
            Ok(c) => panic!("loaded {}, wanted {want}", c.name()),
            Err(e) => assert_eq!(e.to_string(), want),
        }
    }
    // Many files, each under the file limit, add up past the archive limit.
    let chunk = vec![b'x'; (kaas_helm::MAX_FILE_BYTES - 1) as usize];
    let names: Vec<String> = (0..5).map(|i| format!("a/files/{i}")).collect();
    let mut entries: Vec<(&str, tar::EntryType, &[u8])> =
        vec![("a/Chart.yaml", Regular, chart_yaml)];
    entries.extend(
        names
            .iter()
            .map(|n| (n.as_str(), Regular, chunk.as_slice())),
    );
    match Chart::from_archive(&raw_archive(&entries)) {
        Ok(_) => panic!("loaded an archive over the limit"),
        Err(e) => assert_eq!(
            e.to_string(),
            "chart (archive): (archive): unpacks to more than the limit of 20971520 bytes"
        ),
    }
}
