//! The template language: each case pins what Go's text/template (as Helm runs it)
//! renders.

use kaas_gotmpl::helm::Capabilities;
use kaas_gotmpl::{Error, TemplateSet, Value};
use serde_json::json;

/// Renders `tpl` as the file `t.yaml` with `data` (JSON, numbers as Helm's float64).
fn render(tpl: &str, data: serde_json::Value) -> Result<String, Error> {
    let mut set = TemplateSet::new();
    set.add("t.yaml", tpl)?;
    set.render("t.yaml", &Value::from_go_json(data))
}

#[track_caller]
fn check(tpl: &str, data: serde_json::Value, want: &str) {
    match render(tpl, data) {
        Ok(got) => assert_eq!(got, want, "template: {tpl}"),
        Err(e) => panic!("template {tpl:?} failed: {e}"),
    }
}

#[track_caller]
fn check_err(tpl: &str, data: serde_json::Value, want: &str) {
    match render(tpl, data) {
        Ok(got) => panic!("template {tpl:?} rendered {got:?}, wanted error {want:?}"),
        Err(e) => assert_eq!(e.to_string(), want, "template: {tpl}"),
    }
}

#[test]
fn text_and_trim_markers() {
    check("a  {{- \"b\" -}}  c", json!({}), "abc");
    check("a\n  {{- \"b\" }}\n  c", json!({}), "ab\n  c");
    check("a {{/* comment */}} b", json!({}), "a  b");
    check("a\n{{- /* comment */ -}}\nb", json!({}), "ab");
    check("{{- 3 -}}", json!({}), "3");
    check("{{ -3 }}", json!({}), "-3");
    check("x{{\"}}\"}}y", json!({}), "x}}y");
}

#[test]
fn values_print_as_go_prints_them() {
    check(
        "{{ .Values.replicas }}",
        json!({"Values": {"replicas": 3}}),
        "3",
    );
    check(
        "{{ .Values.big }}",
        json!({"Values": {"big": 1000000}}),
        "1e+06",
    );
    check("{{ .Values.f }}", json!({"Values": {"f": 0.5}}), "0.5");
    check("{{ .Values.b }}", json!({"Values": {"b": true}}), "true");
    check(
        "{{ .Values.l }}",
        json!({"Values": {"l": ["a", 1, null]}}),
        "[a 1 <nil>]",
    );
    check(
        "{{ .Values.m }}",
        json!({"Values": {"m": {"b": 2, "a": "x"}}}),
        "map[a:x b:2]",
    );
    // Missing keys print as <no value>, which Helm then strips.
    check("[{{ .Values.missing }}]", json!({"Values": {}}), "[]");
    check("{{ len .Values.l }}", json!({"Values": {"l": [1, 2]}}), "2");
    check(
        "{{ 1.5 }} {{ 0x10 }} {{ 'a' }} {{ 1e3 }}",
        json!({}),
        "1.5 16 97 1000",
    );
    check("{{ \"a\\tb\" }}|{{ `raw\\n` }}", json!({}), "a\tb|raw\\n");
    check("{{ print nil }}", json!({}), "<nil>");
    check_err(
        "{{ nil | print }}",
        json!({}),
        "template: t.yaml:1: nil is not a command",
    );
}

#[test]
fn nil_in_a_field_chain_is_an_error() {
    check_err(
        "{{ .Values.a.b }}",
        json!({"Values": {}}),
        "template: t.yaml:1:10: executing \"t.yaml\" at <.Values.a.b>: nil pointer evaluating interface {}.b",
    );
    check_err(
        "x\n  {{ .Values.s.x }}",
        json!({"Values": {"s": "str"}}),
        "template: t.yaml:2:12: executing \"t.yaml\" at <.Values.s.x>: can't evaluate field x in type string",
    );
}

#[test]
fn conditionals_follow_go_truth() {
    let t = "{{ if .v }}yes{{ else }}no{{ end }}";
    for (v, want) in [
        (json!(0), "no"),
        (json!(1), "yes"),
        (json!(""), "no"),
        (json!("x"), "yes"),
        (json!([]), "no"),
        (json!({}), "no"),
        (json!({"a": 1}), "yes"),
        (json!(false), "no"),
        (json!(null), "no"),
    ] {
        check(t, json!({"v": v}), want);
    }
    check(
        "{{ if eq .a 1.0 }}one{{ else if eq .a 2.0 }}two{{ else }}many{{ end }}",
        json!({"a": 2}),
        "two",
    );
    check(
        "{{ with .a }}{{ . }}{{ else with .b }}b={{ . }}{{ else }}none{{ end }}",
        json!({"b": 5}),
        "b=5",
    );
    check(
        "{{ with .a }}{{ . }}{{ else }}none{{ end }}",
        json!({}),
        "none",
    );
    check(
        "{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 \"x\" }}",
        json!({}),
        "0 2  x",
    );
    // `and` stops at the first false value, so the failing call is never made.
    check(
        "{{ if and .missing (fail \"not reached\") }}x{{ end }}ok",
        json!({}),
        "ok",
    );
    check("{{ not 0 }} {{ not \"a\" }}", json!({}), "true false");
}

#[test]
fn range_over_lists_maps_and_ints() {
    check(
        "{{ range .l }}[{{ . }}]{{ end }}",
        json!({"l": ["a", "b"]}),
        "[a][b]",
    );
    check(
        "{{ range $i, $v := .l }}{{ $i }}={{ $v }};{{ end }}",
        json!({"l": ["a", "b"]}),
        "0=a;1=b;",
    );
    check(
        "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}",
        json!({"m": {"z": 1, "a": 2, "m": 3}}),
        "a=2;m=3;z=1;",
    );
    check("{{ range 3 }}{{ . }}{{ end }}", json!({}), "012");
    check("{{ range $i := 3 }}{{ $i }}{{ end }}", json!({}), "012");
    check(
        "{{ range .l }}x{{ else }}empty{{ end }}",
        json!({"l": []}),
        "empty",
    );
    check(
        "{{ range .missing }}x{{ else }}empty{{ end }}",
        json!({}),
        "empty",
    );
    check(
        "{{ range .l }}{{ if eq . 3.0 }}{{ break }}{{ end }}{{ if eq . 1.0 }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        json!({"l": [0, 1, 2, 3, 4]}),
        "02",
    );
    check(
        "{{ range .l }}{{ $.top }}{{ end }}",
        json!({"l": [1, 2], "top": "T"}),
        "TT",
    );
}

#[test]
fn variables_and_scoping() {
    check("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}", json!({}), "12");
    // Assignment inside range changes the outer variable; a declaration shadows it.
    check(
        "{{ $x := \"out\" }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}",
        json!({"l": ["a", "b"]}),
        "b",
    );
    check(
        "{{ $x := \"out\" }}{{ range .l }}{{ $x := . }}{{ $x }}{{ end }}{{ $x }}",
        json!({"l": ["a", "b"]}),
        "about",
    );
    check("{{ if $v := .a }}{{ $v }}{{ end }}", json!({"a": "x"}), "x");
    check("{{ (.m).k }}", json!({"m": {"k": "v"}}), "v");
    check("{{ $m := .m }}{{ $m.k }}", json!({"m": {"k": "v"}}), "v");
    check("{{ (dict \"a\" (dict \"b\" 1)).a.b }}", json!({}), "1");
    check_err(
        "{{ $y }}",
        json!({}),
        "template: t.yaml:1: undefined variable \"$y\"",
    );
    check_err(
        "{{ range .l }}{{ $i := 1 }}{{ end }}{{ $i }}",
        json!({"l": [1]}),
        "template: t.yaml:1: undefined variable \"$i\"",
    );
}

#[test]
fn defines_templates_and_dollar() {
    check(
        "{{ define \"x\" }}[{{ .a }}|{{ $.a }}]{{ end }}{{ template \"x\" .sub }}{{ template \"x\" . }}",
        json!({"a": "top", "sub": {"a": "sub"}}),
        "[sub|sub][top|top]",
    );
    check(
        "{{ block \"b\" . }}default {{ .n }}{{ end }}",
        json!({"n": 1}),
        "default 1",
    );
    check(
        "{{ define \"n\" }}{{ . }}{{ end }}{{ include \"n\" 5 | printf \"<%s>\" }}",
        json!({}),
        "<5>",
    );
}

#[test]
fn defines_are_shared_across_files_and_later_files_win() {
    let mut set = TemplateSet::new();
    set.add(
        "chart/charts/sub/templates/_h.tpl",
        "{{ define \"name\" }}sub{{ end }}{{ define \"only-sub\" }}o{{ end }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    set.add(
        "chart/templates/_h.tpl",
        "{{ define \"name\" }}parent{{ end }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    set.add(
        "chart/templates/a.yaml",
        "{{ include \"name\" . }}-{{ include \"only-sub\" . }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // An empty redefinition does not replace a real one.
    set.add("chart/templates/z.tpl", "{{ define \"name\" }}  {{ end }}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.render("chart/templates/a.yaml", &Value::Nil)
            .ok()
            .as_deref(),
        Some("parent-o")
    );
    assert_eq!(
        kaas_gotmpl::helm_parse_order(&[
            "c/templates/b.yaml",
            "c/charts/s/templates/a.yaml",
            "c/templates/a.yaml",
        ]),
        vec![
            "c/charts/s/templates/a.yaml",
            "c/templates/b.yaml",
            "c/templates/a.yaml"
        ]
    );
}

#[test]
fn include_and_tpl() {
    check(
        "{{- define \"labels\" -}}\napp: {{ .name }}\ntier: web\n{{- end -}}\nmetadata:\n  labels:\n    {{- include \"labels\" . | nindent 4 }}\n",
        json!({"name": "demo"}),
        "metadata:\n  labels:\n    app: demo\n    tier: web\n",
    );
    check(
        "{{ tpl .Values.t . }}",
        json!({"Values": {"t": "{{ .Values.n }}-x"}, }),
        "-x",
    );
    check(
        "{{ tpl .Values.t . }}",
        json!({"Values": {"t": "name={{ .Values.name | upper }}", "name": "abc"}}),
        "name=ABC",
    );
    // tpl sees the set's defines and may define its own.
    check(
        "{{ define \"d\" }}D{{ end }}{{ tpl \"{{ include \\\"d\\\" . }}{{ define \\\"e\\\" }}E{{ end }}{{ include \\\"e\\\" . }}\" . }}",
        json!({}),
        "DE",
    );
}

#[test]
fn recursion_is_limited() {
    let err = render(
        "{{ define \"r\" }}{{ include \"r\" . }}{{ end }}{{ include \"r\" . }}",
        json!({}),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains(
            "rendering template has a nested reference name: r: unable to execute template"
        ),
        "{err}"
    );
}

#[test]
fn errors_name_the_position() {
    check_err(
        "ok\n{{ nosuchfunc 1 }}",
        json!({}),
        "template: t.yaml:2: function \"nosuchfunc\" not defined",
    );
    check_err(
        "{{ if .a }}",
        json!({}),
        "template: t.yaml:1: unexpected EOF in if",
    );
    check_err(
        "a: 1\nb: {{ lookup \"v1\" \"Secret\" \"ns\" \"name\" }}",
        json!({}),
        "template: t.yaml:2:6: executing \"t.yaml\" at <lookup \"v1\" \"Secret\" \"ns\" \"name\">: error calling lookup: lookup is not supported: kaas renders charts without a live cluster",
    );
    let err = render(
        "x: {{ required \"x is required\" .Values.x }}",
        json!({"Values": {}}),
    )
    .err();
    assert_eq!(
        err.as_ref().map(ToString::to_string).as_deref(),
        Some(
            "template: t.yaml:1:6: executing \"t.yaml\" at <required \"x is required\" .Values.x>: error calling required: x is required"
        )
    );
    assert_eq!(err.as_ref().and_then(Error::failure), Some("x is required"));
    // A failure inside an include keeps the user's message.
    let err = render(
        "{{ define \"f\" }}{{ fail \"boom\" }}{{ end }}{{ include \"f\" . }}",
        json!({}),
    )
    .err();
    assert_eq!(err.as_ref().and_then(Error::failure), Some("boom"));
    check_err(
        "{{ template \"nope\" }}",
        json!({}),
        "template: t.yaml:1:3: executing \"t.yaml\" at <{{template \"nope\"}}>: template \"nope\" not defined",
    );
    check_err(
        "{{ include \"nope\" . }}",
        json!({}),
        "template: t.yaml:1:3: executing \"t.yaml\" at <include \"nope\" .>: error calling include: template: no template \"nope\" associated with template \"gotpl\"",
    );
}

#[test]
fn capabilities_and_semver() {
    let caps = Capabilities::new(
        "v1.33.2",
        vec!["apps/v1".into(), "policy/v1/PodDisruptionBudget".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let root = Value::map([("Capabilities", Value::object(caps))]);
    let mut set = TemplateSet::new();
    set.add(
        "t.yaml",
        concat!(
            "{{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}\n",
            "{{ if semverCompare \">=1.21-0\" .Capabilities.KubeVersion.Version }}new{{ else }}old{{ end }}\n",
            "{{ if semverCompare \"<1.25-0\" .Capabilities.KubeVersion.GitVersion }}psp{{ else }}no-psp{{ end }}\n",
            "{{ .Capabilities.APIVersions.Has \"apps/v1\" }} {{ .Capabilities.APIVersions.Has \"batch/v1beta1\" }}\n",
            "{{ if .Capabilities.APIVersions.Has \"policy/v1/PodDisruptionBudget\" }}policy/v1{{ end }}\n",
            "{{ .Capabilities.KubeVersion }}",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.render("t.yaml", &root)
            .unwrap_or_else(|e| panic!("{e}")),
        "v1.33.2 1.33\nnew\nno-psp\ntrue false\npolicy/v1\nv1.33.2"
    );
}

#[test]
fn files_object() {
    let files = kaas_gotmpl::helm::Files::new([
        ("files/a.conf".to_owned(), "A=1\n".to_owned()),
        ("files/b.conf".to_owned(), "B=2".to_owned()),
        ("other.txt".to_owned(), "x".to_owned()),
    ]);
    let root = Value::map([("Files", Value::object(files))]);
    let mut set = TemplateSet::new();
    set.add(
        "t.yaml",
        "{{ .Files.Get \"other.txt\" }}|{{ range $p, $_ := .Files.Glob \"files/*.conf\" }}{{ $p }};{{ end }}\n{{ (.Files.Glob \"files/*\").AsConfig }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.render("t.yaml", &root)
            .unwrap_or_else(|e| panic!("{e}")),
        "x|files/a.conf;files/b.conf;\na.conf: |\n  A=1\nb.conf: B=2"
    );
}

#[test]
fn printf_and_print() {
    check(
        "{{ printf \"%s-%d-%v-%q\" \"a\" 3 .f \"q\" }}",
        json!({"f": 1.5}),
        "a-3-1.5-\"q\"",
    );
    check(
        "{{ printf \"%05d|%x|%.2f|%t\" 42 255 3.14159 true }}",
        json!({}),
        "00042|ff|3.14|true",
    );
    check("{{ printf \"%d\" .n }}", json!({"n": 3}), "%!d(float64=3)");
    check("{{ printf \"%d\" (int .n) }}", json!({"n": 3}), "3");
    check("{{ print 1 2 \"a\" \"b\" 3 }}", json!({}), "1 2ab3");
    check("{{ println \"a\" 1 }}", json!({}), "a 1\n");
    check(
        "{{ html \"<a href='x'>\" }}",
        json!({}),
        "&lt;a href=&#39;x&#39;&gt;",
    );
    check("{{ urlquery \"a b&c\" }}", json!({}), "a+b%26c");
}

#[test]
fn comparisons() {
    check(
        "{{ eq 1 1 }} {{ eq \"a\" \"b\" \"a\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge 2 2 }} {{ gt \"b\" \"a\" }}",
        json!({}),
        "true true true true true true",
    );
    check("{{ eq .n 3 }}", json!({"n": 3}), "true");
    check("{{ eq .missing \"x\" }}", json!({}), "false");
    check_err(
        "{{ eq \"a\" 1 }}",
        json!({}),
        "template: t.yaml:1:3: executing \"t.yaml\" at <eq \"a\" 1>: error calling eq: incompatible types for comparison",
    );
}

#[test]
fn index_and_slice() {
    check("{{ index .m \"a-b\" }}", json!({"m": {"a-b": "v"}}), "v");
    check("{{ index .l 1 }}", json!({"l": ["x", "y"]}), "y");
    check(
        "{{ index .m \"l\" 0 \"k\" }}",
        json!({"m": {"l": [{"k": "deep"}]}}),
        "deep",
    );
    check("[{{ index .m \"nope\" }}]", json!({"m": {}}), "[]");
    check("{{ slice .l 1 }}", json!({"l": [1, 2, 3]}), "[2 3]");
    check_err(
        "{{ index .l 5 }}",
        json!({"l": [1]}),
        "template: t.yaml:1:3: executing \"t.yaml\" at <index .l 5>: error calling index: index out of range: 5",
    );
}

#[test]
fn objects_reject_unknown_members() {
    let caps = Capabilities::new("1.30.0", vec![]).unwrap_or_else(|e| panic!("{e}"));
    let mut set = TemplateSet::new();
    set.add("t.yaml", "{{ .C.Nope }}")
        .unwrap_or_else(|e| panic!("{e}"));
    let err = set
        .render("t.yaml", &Value::map([("C", Value::object(caps))]))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "template: t.yaml:1:5: executing \"t.yaml\" at <.C.Nope>: can't evaluate field Nope in type *common.Capabilities"
        )
    );
}

#[test]
fn execute_keeps_no_value_render_strips_it() {
    let mut set = TemplateSet::new();
    set.add("t", "[{{ .x }}]").unwrap_or_else(|e| panic!("{e}"));
    let root = Value::map([("y", Value::Int(1))]);
    assert_eq!(
        set.execute("t", &root).ok().as_deref(),
        Some("[<no value>]")
    );
    assert_eq!(set.render("t", &root).ok().as_deref(), Some("[]"));
    // include returns Go's raw text; Helm strips only the final output.
    set.add(
        "u",
        "{{ define \"v\" }}{{ .x }}{{ end }}{{ include \"v\" . | len }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.render("u", &root).ok().as_deref(), Some("10"));
}
