//! Sprig's functions as charts use them, with outputs pinned to Sprig's behaviour.

use kaas_gotmpl::{Error, TemplateSet, Value};
use serde_json::json;

fn render(tpl: &str, data: serde_json::Value) -> Result<String, Error> {
    let mut set = TemplateSet::new();
    set.add("t.yaml", tpl)?;
    set.render("t.yaml", &Value::from_go_json(data))
}

/// Each case is a template and its output, rendered with `data`.
#[track_caller]
fn table(data: serde_json::Value, cases: &[(&str, &str)]) {
    for (tpl, want) in cases {
        match render(tpl, data.clone()) {
            Ok(got) => assert_eq!(&got, want, "template: {tpl}"),
            Err(e) => panic!("template {tpl:?} failed: {e}"),
        }
    }
}

#[test]
fn times_compare_by_value_as_gos_eq_compares_them() {
    // Cilium's `hasDuration`: a string is a duration when adding it changes the time.
    table(
        json!({}),
        &[
            ("{{ $now := now }}{{ eq $now $now }}", "true"),
            (
                "{{ $now := now }}{{ ne $now ($now | dateModify \"5m\") }}",
                "true",
            ),
            (
                "{{ $now := now }}{{ ne $now ($now | dateModify \"0s\") }}",
                "false",
            ),
            (
                "{{ $now := now }}{{ ne $now ($now | dateModify \"soon\") }}",
                "false",
            ),
            (
                "{{ $t := toDate \"2006-01-02\" \"2024-05-06\" }}{{ eq $t (toDate \"2006-01-02\" \"2024-05-06\") }}",
                "true",
            ),
        ],
    );
    // A time and a string are not comparable, as in Go.
    assert!(render("{{ eq now \"x\" }}", json!({})).is_err());
}

#[test]
fn defaults_and_emptiness() {
    table(
        json!({"Values": {"zero": 0, "f": false, "e": "", "l": [], "m": {}, "s": "set", "n": 5}}),
        &[
            ("{{ .Values.zero | default 3 }}", "3"),
            ("{{ .Values.f | default true }}", "true"),
            ("{{ .Values.e | default \"d\" }}", "d"),
            ("{{ .Values.missing | default \"d\" }}", "d"),
            ("{{ .Values.l | default (list 1) }}", "[1]"),
            ("{{ .Values.s | default \"d\" }}", "set"),
            ("{{ .Values.n | default 1 }}", "5"),
            ("{{ default \"d\" }}", "d"),
            (
                "{{ empty .Values.m }} {{ empty .Values.s }} {{ empty .Values.missing }}",
                "true false true",
            ),
            ("{{ coalesce .Values.e .Values.zero \"c\" }}", "c"),
            (
                "{{ ternary \"a\" \"b\" true }} {{ ternary \"a\" \"b\" false }}",
                "a b",
            ),
            ("{{ true | ternary \"yes\" \"no\" }}", "yes"),
            (
                "{{ all 1 \"a\" }} {{ all 1 \"\" }} {{ any 0 \"\" \"x\" }}",
                "true false true",
            ),
        ],
    );
}

#[test]
fn strings() {
    table(
        json!({}),
        &[
            (
                "{{ \"Hello\" | upper }} {{ \"Hello\" | lower }}",
                "HELLO hello",
            ),
            (
                "{{ title \"hello world\" }} {{ untitle \"Hello World\" }}",
                "Hello World hello world",
            ),
            ("[{{ trim \"  a b  \" }}]", "[a b]"),
            ("{{ trimAll \"$\" \"$5.00$\" }}", "5.00"),
            (
                "{{ trimPrefix \"v\" \"v1.2\" }} {{ trimSuffix \"-\" \"name-\" }}",
                "1.2 name",
            ),
            (
                "{{ trunc 5 \"hello world\" }} {{ trunc -5 \"hello world\" }}",
                "hello world",
            ),
            ("{{ abbrev 5 \"hello world\" }}", "he..."),
            ("{{ substr 0 5 \"hello world\" }}", "hello"),
            ("{{ replace \"+\" \"_\" \"1.0.0+build\" }}", "1.0.0_build"),
            ("{{ repeat 3 \"ab\" }}", "ababab"),
            ("{{ nospace \"a b\\tc\" }}", "abc"),
            (
                "{{ contains \"ell\" \"hello\" }} {{ hasPrefix \"he\" \"hello\" }} {{ hasSuffix \"lo\" \"hello\" }}",
                "true true true",
            ),
            ("{{ indent 2 \"a\\nb\" }}", "  a\n  b"),
            ("{{ nindent 2 \"a\\nb\" }}", "\n  a\n  b"),
            ("{{ quote \"a\" 1 .missing }}", "\"a\" \"1\""),
            ("{{ squote \"a\" }}", "'a'"),
            ("{{ .missing | quote }}", ""),
            ("{{ cat \"a\" 1 \"b\" }}", "a 1 b"),
            ("{{ \"a,b,c\" | splitList \",\" }}", "[a b c]"),
            ("{{ (split \"$\" \"foo$bar\")._1 }}", "bar"),
            ("{{ (splitn \"$\" 2 \"a$b$c\")._1 }}", "b$c"),
            ("{{ list \"a\" 1 | join \"-\" }}", "a-1"),
            (
                "{{ toString 3 }} {{ toString 1.5 }} {{ toString true }}",
                "3 1.5 true",
            ),
            ("{{ toStrings (list 1 \"a\") }}", "[1 a]"),
            (
                "{{ camelcase \"http_server\" }} {{ snakecase \"FirstName\" }} {{ kebabcase \"FirstName\" }}",
                "HttpServer first_name first-name",
            ),
            ("{{ wrap 5 \"hello world foo\" }}", "hello\nworld\nfoo"),
            ("{{ sortAlpha (list \"b\" \"a\" \"C\") }}", "[C a b]"),
            ("{{ plural \"one\" \"many\" 2 }}", "many"),
            ("{{ initials \"First Try\" }}", "FT"),
        ],
    );
}

#[test]
fn numbers() {
    table(
        json!({"Values": {"r": 3, "s": "42"}}),
        &[
            (
                "{{ add 1 2 3 }} {{ add1 .Values.r }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }}",
                "6 4 3 6 3 1",
            ),
            ("{{ add .Values.r 1 }}", "4"),
            ("{{ max 1 5 3 }} {{ min 4 2 8 }}", "5 2"),
            (
                "{{ int .Values.r }} {{ int64 \"7\" }} {{ atoi .Values.s }} {{ float64 \"1.5\" }}",
                "3 7 42 1.5",
            ),
            ("{{ int 3.9 }} {{ int \"0x10\" }}", "3 16"),
            (
                "{{ addf 0.1 0.2 }} {{ mulf 1.1 3 }} {{ divf 10 4 }} {{ subf 1 0.5 }}",
                "0.3 3.3 2.5 0.5",
            ),
            (
                "{{ floor 1.7 }} {{ ceil 1.2 }} {{ round 1.2345 2 }}",
                "1 2 1.23",
            ),
            ("{{ until 3 }} {{ untilStep 0 10 4 }}", "[0 1 2] [0 4 8]"),
            (
                "{{ seq 3 }}|{{ seq 2 4 }}|{{ seq 0 2 6 }}",
                "1 2 3|2 3 4|0 2 4 6",
            ),
            ("{{ len (until 4) }}", "4"),
        ],
    );
}

#[test]
fn lists() {
    table(
        json!({"Values": {"l": ["a", "b", "c"], "n": [1, 2, 2]}}),
        &[
            ("{{ list 1 \"a\" }}", "[1 a]"),
            (
                "{{ first .Values.l }} {{ last .Values.l }} {{ rest .Values.l }} {{ initial .Values.l }}",
                "a c [b c] [a b]",
            ),
            (
                "{{ append .Values.l \"d\" }} {{ prepend .Values.l \"z\" }}",
                "[a b c d] [z a b c]",
            ),
            ("{{ .Values.l }}", "[a b c]"),
            ("{{ concat .Values.l (list \"x\") }}", "[a b c x]"),
            (
                "{{ uniq .Values.n }} {{ without .Values.l \"b\" }}",
                "[1 2] [a c]",
            ),
            (
                "{{ has \"b\" .Values.l }} {{ has \"z\" .Values.l }}",
                "true false",
            ),
            // Values are float64: an int literal is a different type, as in Go.
            (
                "{{ has 1 .Values.n }} {{ has 1.0 .Values.n }}",
                "false true",
            ),
            ("{{ compact (list \"a\" \"\" 0 \"b\") }}", "[a b]"),
            ("{{ reverse .Values.l }}", "[c b a]"),
            ("{{ slice .Values.l 1 2 }}", "[b]"),
            ("{{ chunk 2 .Values.l }}", "[[a b] [c]]"),
            ("{{ first (list) }}", ""),
        ],
    );
}

#[test]
fn dicts() {
    table(
        json!({"Values": {"m": {"a": 1, "b": {"c": "deep"}}}}),
        &[
            (
                "{{ $d := dict \"k\" \"v\" \"n\" 1 }}{{ $d.k }} {{ $d.n }}",
                "v 1",
            ),
            (
                "{{ get .Values.m \"a\" }} [{{ get .Values.m \"zz\" }}]",
                "1 []",
            ),
            ("{{ $d := dict }}{{ $_ := set $d \"x\" 1 }}{{ $d.x }}", "1"),
            (
                "{{ $d := dict \"x\" 1 \"y\" 2 }}{{ $_ := unset $d \"x\" }}{{ keys $d }}",
                "[y]",
            ),
            (
                "{{ hasKey .Values.m \"a\" }} {{ hasKey .Values.m \"z\" }}",
                "true false",
            ),
            ("{{ keys .Values.m | sortAlpha }}", "[a b]"),
            ("{{ values (dict \"a\" 1 \"b\" 2) }}", "[1 2]"),
            (
                "{{ pluck \"a\" (dict \"a\" 1) (dict \"b\" 2) (dict \"a\" 3) }}",
                "[1 3]",
            ),
            (
                "{{ pick .Values.m \"a\" }} {{ omit .Values.m \"b\" }}",
                "map[a:1] map[a:1]",
            ),
            (
                "{{ dig \"b\" \"c\" \"def\" .Values.m }} {{ dig \"b\" \"z\" \"def\" .Values.m }}",
                "deep def",
            ),
            (
                "{{ $d := merge (dict \"a\" 1 \"n\" (dict \"x\" 1)) (dict \"a\" 2 \"b\" 3 \"n\" (dict \"x\" 2 \"y\" 2)) }}{{ toJson $d }}",
                "{\"a\":1,\"b\":3,\"n\":{\"x\":1,\"y\":2}}",
            ),
            (
                "{{ $d := mergeOverwrite (dict \"a\" 1 \"t\" true \"n\" (dict \"x\" 1)) (dict \"a\" 2 \"t\" false \"n\" (dict \"y\" 2)) }}{{ toJson $d }}",
                "{\"a\":2,\"n\":{\"x\":1,\"y\":2},\"t\":false}",
            ),
            // merge fills empty destination values.
            (
                "{{ toJson (merge (dict \"a\" \"\" \"f\" false) (dict \"a\" \"x\" \"f\" true)) }}",
                "{\"a\":\"x\",\"f\":true}",
            ),
            // set changes the dict every holder sees, as Go maps do.
            (
                "{{ $a := dict }}{{ $b := $a }}{{ $_ := set $b \"k\" \"v\" }}{{ $a.k }}",
                "v",
            ),
            (
                "{{ $c := deepCopy .Values.m }}{{ $_ := set $c.b \"c\" \"changed\" }}{{ .Values.m.b.c }}",
                "deep",
            ),
        ],
    );
}

#[test]
fn encodings_and_hashes() {
    table(
        json!({}),
        &[
            (
                "{{ b64enc \"hello\" }} {{ b64dec \"aGVsbG8=\" }}",
                "aGVsbG8= hello",
            ),
            (
                "{{ sha256sum \"hello\" }}",
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            ),
            (
                "{{ sha1sum \"hello\" }}",
                "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
            ),
            ("{{ adler32sum \"hello\" }}", "103547413"),
            ("{{ b32enc \"hi\" }}", "NBUQ===="),
            (
                "{{ toJson (dict \"a\" (list 1 \"x\") \"b\" nil) }}",
                "{\"a\":[1,\"x\"],\"b\":null}",
            ),
            ("{{ toPrettyJson (dict \"a\" 1) }}", "{\n  \"a\": 1\n}"),
            ("{{ toRawJson (dict \"a\" \"<b>\") }}", "{\"a\":\"<b>\"}"),
        ],
    );
}

#[test]
fn regexes() {
    table(
        json!({}),
        &[
            (
                "{{ regexMatch \"^[a-z]+$\" \"abc\" }} {{ regexMatch \"^[a-z]+$\" \"a1\" }}",
                "true false",
            ),
            ("{{ regexFind \"[0-9]+\" \"ab12cd34\" }}", "12"),
            ("{{ regexFindAll \"[0-9]+\" \"ab12cd34\" -1 }}", "[12 34]"),
            (
                "{{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }}",
                "-W-xxW-",
            ),
            (
                "{{ regexReplaceAllLiteral \"a(x*)b\" \"-ab-\" \"${1}\" }}",
                "-${1}-",
            ),
            ("{{ regexSplit \"z+\" \"pizza\" -1 }}", "[pi a]"),
            ("{{ regexMatch \"(\" \"x\" }}", "false"),
        ],
    );
}

#[test]
fn reflection() {
    table(
        json!({"Values": {"s": "x", "n": 1, "l": [], "m": {}}}),
        &[
            (
                "{{ kindOf .Values.s }} {{ kindOf .Values.n }} {{ kindOf .Values.l }} {{ kindOf .Values.m }} {{ kindOf .Values.missing }}",
                "string float64 slice map invalid",
            ),
            (
                "{{ kindIs \"map\" .Values.m }} {{ kindIs \"string\" .Values.n }}",
                "true false",
            ),
            (
                "{{ typeOf .Values.s }} {{ typeOf .Values.m }} {{ typeOf (len .Values.l) }}",
                "string map[string]interface {} int",
            ),
            (
                "{{ typeIs \"float64\" .Values.n }} {{ typeIsLike \"string\" .Values.s }}",
                "true true",
            ),
            (
                "{{ deepEqual (list 1 2) (list 1 2) }} {{ deepEqual .Values.n 1 }}",
                "true false",
            ),
        ],
    );
}

#[test]
fn versions() {
    table(
        json!({"Capabilities": {"KubeVersion": {"Version": "v1.33.2", "GitVersion": "v1.33.2-gke.1"}}}),
        &[
            (
                "{{ semverCompare \">=1.21-0\" .Capabilities.KubeVersion.Version }}",
                "true",
            ),
            (
                "{{ semverCompare \"<1.25.0\" .Capabilities.KubeVersion.Version }}",
                "false",
            ),
            (
                "{{ semverCompare \">=1.21\" .Capabilities.KubeVersion.GitVersion }}",
                "false",
            ),
            (
                "{{ semverCompare \">=1.21-0\" .Capabilities.KubeVersion.GitVersion }}",
                "true",
            ),
            (
                "{{ (semver \"v1.33.2-rc.1+b\").Minor }} {{ (semver \"1.2.3\").Prerelease }}|{{ semver \"1.2\" }}",
                "33 |1.2.0",
            ),
        ],
    );
    let err = render("{{ semverCompare \"x>\" \"1.0.0\" }}", json!({}))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "template: t.yaml:1:3: executing \"t.yaml\" at <semverCompare \"x>\" \"1.0.0\">: error calling semverCompare: improper constraint: x>"
        )
    );
}

#[test]
fn paths_dates_and_random() {
    table(
        json!({}),
        &[
            (
                "{{ base \"a/b/c.yaml\" }} {{ dir \"a/b/c.yaml\" }} {{ ext \"c.tar.gz\" }} {{ clean \"a//b/../c\" }} {{ isAbs \"/x\" }}",
                "c.yaml a/b .gz a/c true",
            ),
            (
                "{{ (urlParse \"https://u@h.example:8443/p?q=1#f\").hostname }}",
                "h.example",
            ),
            (
                "{{ date \"2006-01-02\" 0 }} {{ htmlDate 86400 }}",
                "1970-01-01 1970-01-02",
            ),
            (
                "{{ toDate \"2006-01-02\" \"2024-03-05\" | date \"Jan 2, 2006\" }}",
                "Mar 5, 2024",
            ),
            (
                "{{ len (randAlphaNum 12) }} {{ len (uuidv4) }} {{ regexMatch \"^[0-9]+$\" (randNumeric 8) }}",
                "12 36 true",
            ),
            ("{{ duration 95 }}", "1m35s"),
            ("[{{ getHostByName \"example.com\" }}]", "[]"),
        ],
    );
}

#[test]
fn refused_functions_fail_when_called() {
    let err = render("{{ genCA \"ca\" 365 }}", json!({}))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "template: t.yaml:1:3: executing \"t.yaml\" at <genCA \"ca\" 365>: error calling genCA: genCA is not supported: kaas does not generate certificates in templates"
        )
    );
    // Not calling them is fine.
    assert_eq!(
        render("{{ if false }}{{ genCA \"ca\" 365 }}{{ end }}ok", json!({}))
            .ok()
            .as_deref(),
        Some("ok")
    );
    // Helm removes env and expandenv.
    assert_eq!(
        render("{{ env \"HOME\" }}", json!({}))
            .err()
            .map(|e| e.to_string())
            .as_deref(),
        Some("template: t.yaml:1: function \"env\" not defined")
    );
}

/// Shapes from upstream charts' `_helpers.tpl`.
#[test]
fn helpers_like_upstream_charts() {
    let helpers = r#"
{{- define "app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "app.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "app.labels" -}}
helm.sh/chart: {{ include "app.chart" . }}
{{ include "app.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}
"#;
    let deployment = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "app.fullname" . }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "app.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      {{- with .Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "app.serviceAccountName" . }}
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
          {{- with .Values.extraArgs }}
          args:
          {{- range $key, $value := . }}
            - --{{ $key }}={{ $value }}
          {{- end }}
          {{- end }}
"#;
    let mut set = TemplateSet::new();
    for name in kaas_gotmpl::helm_parse_order(&[
        "app/templates/deployment.yaml",
        "app/templates/_helpers.tpl",
    ]) {
        let text = if name.ends_with("_helpers.tpl") {
            helpers
        } else {
            deployment
        };
        set.add(&name, text).unwrap_or_else(|e| panic!("{e}"));
    }
    let root = Value::from_go_json(json!({
        "Chart": {"Name": "app", "Version": "1.2.3+meta", "AppVersion": "v2.0"},
        "Release": {"Name": "prod", "Service": "Helm"},
        "Values": {
            "replicaCount": 2,
            "autoscaling": {"enabled": false},
            "image": {"repository": "registry.example/app"},
            "podAnnotations": {"checksum/config": "abc", "prometheus.io/scrape": "true"},
            "serviceAccount": {"create": true},
            "extraArgs": {"v": 2, "metrics-port": 8080}
        },
        "Template": {"Name": "app/templates/deployment.yaml", "BasePath": "app/templates"}
    }));
    let got = set
        .render("app/templates/deployment.yaml", &root)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        got,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: prod-app
  labels:
    helm.sh/chart: app-1.2.3_meta
    app.kubernetes.io/name: app
    app.kubernetes.io/instance: prod
    app.kubernetes.io/version: "v2.0"
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: app
      app.kubernetes.io/instance: prod
  template:
    metadata:
      annotations:
        checksum/config: abc
        prometheus.io/scrape: "true"
    spec:
      serviceAccountName: prod-app
      containers:
        - name: app
          image: "registry.example/app:v2.0"
          args:
            - --metrics-port=8080
            - --v=2
"#
    );
}
