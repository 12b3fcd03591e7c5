//! `toYaml` pinned to what Helm (sigs.k8s.io/yaml over go-yaml v2) prints.

use kaas_gotmpl::{TemplateSet, Value, to_yaml};
use serde_json::json;

#[track_caller]
fn check(v: serde_json::Value, want: &str) {
    assert_eq!(to_yaml(&Value::from_go_json(v)), want);
}

#[track_caller]
fn check_str(s: &str, want: &str) {
    assert_eq!(
        to_yaml(&Value::map([("k", Value::string(s))])),
        want,
        "{s:?}"
    );
}

#[test]
fn maps_and_lists() {
    // `y` is a YAML 1.1 bool, so go-yaml v2 quotes it even as a key.
    check(
        json!({"b": 1, "a": {"y": [1, 2], "x": "s"}, "c": []}),
        "a:\n  x: s\n  \"y\":\n  - 1\n  - 2\nb: 1\nc: []",
    );
    check(
        json!({"l": [{"a": 1, "b": 2}, {"c": 3}]}),
        "l:\n- a: 1\n  b: 2\n- c: 3",
    );
    check(json!([[1, 2], [3]]), "- - 1\n  - 2\n- - 3");
    check(
        json!({"e": {}, "n": null, "t": true}),
        "e: {}\n\"n\": null\nt: true",
    );
    check(json!([]), "[]");
    check(json!({}), "{}");
    check(json!(null), "null");
    check(json!("plain"), "plain");
    check(json!([{"a": [{"b": 1}]}]), "- a:\n  - b: 1");
}

#[test]
fn numbers_go_through_json() {
    check(
        json!({"i": 3, "f": 3.0, "h": 1.5, "big": 1000000, "tiny": 0.000001}),
        "big: 1000000\nf: 3\nh: 1.5\ni: 3\ntiny: 1e-06",
    );
    check(json!({"x": 1e21}), "x: 1e+21");
    check(json!({"x": 123456789.5}), "x: 1.234567895e+08");
}

#[test]
fn keys_sort_naturally() {
    // Non-letters before letters, digit runs by value.
    check(
        json!({"a10": 1, "a9": 2, "b": 3, "A": 4, "_x": 5}),
        "_x: 5\nA: 4\na9: 2\na10: 1\nb: 3",
    );
    check(
        json!({"key-b": 1, "key.a": 2, "key_c": 3}),
        "key-b: 1\nkey.a: 2\nkey_c: 3",
    );
}

#[test]
fn strings_quoted_only_when_needed() {
    let cases = [
        ("hello world", "k: hello world"),
        ("", "k: \"\""),
        ("true", "k: \"true\""),
        ("yes", "k: \"yes\""),
        ("on", "k: \"on\""),
        ("null", "k: \"null\""),
        ("~", "k: \"~\""),
        ("1", "k: \"1\""),
        ("1.5", "k: \"1.5\""),
        ("1e3", "k: \"1e3\""),
        ("0x1F", "k: \"0x1F\""),
        ("012", "k: \"012\""),
        ("1_000", "k: \"1_000\""),
        ("2024-01-02", "k: \"2024-01-02\""),
        ("12:30", "k: \"12:30\""),
        ("1.2.3", "k: 1.2.3"),
        ("v1.2", "k: v1.2"),
        ("a: b", "k: 'a: b'"),
        ("a:b", "k: a:b"),
        ("- x", "k: '- x'"),
        ("-x", "k: -x"),
        ("*", "k: '*'"),
        ("&a", "k: '&a'"),
        ("#c", "k: '#c'"),
        ("a #c", "k: 'a #c'"),
        ("a#c", "k: a#c"),
        (" lead", "k: ' lead'"),
        ("trail ", "k: 'trail '"),
        ("it's", "k: it's"),
        ("'q'", "k: '''q'''"),
        ("{x}", "k: '{x}'"),
        ("@x", "k: '@x'"),
        ("%x", "k: '%x'"),
        ("a\tb", "k: \"a\\tb\""),
        ("caf\u{e9}", "k: caf\u{e9}"),
        ("---", "k: '---'"),
        ("/path/to", "k: /path/to"),
        ("http://x.y/z", "k: http://x.y/z"),
        ("?x", "k: ?x"),
        ("? x", "k: '? x'"),
        ("=", "k: ="),
        ("<<", "k: \"<<\""),
        (".5", "k: \".5\""),
        (".x", "k: .x"),
        ("+1", "k: \"+1\""),
        ("-", "k: '-'"),
    ];
    for (s, want) in cases {
        check_str(s, want);
    }
}

#[test]
fn multiline_strings_are_literal_blocks() {
    check_str("a\nb", "k: |-\n  a\n  b");
    check_str("a\nb\n", "k: |\n  a\n  b");
    check_str("a\n\nb\n\n", "k: |+\n  a\n\n  b\n");
    check_str(" indented\nx", "k: |2-\n   indented\n  x");
    // Trailing space on a line forbids the block style.
    check_str("a \nb", "k: \"a \\nb\"");
    check_str("tab\there\nx", "k: \"tab\\there\\nx\"");
    check(json!({"l": ["x\ny"]}), "l:\n- |-\n  x\n  y");
    check(json!({"m": {"s": "x\ny\n"}}), "m:\n  s: |\n    x\n    y");
}

#[test]
fn long_strings_fold_at_80_columns() {
    let long = "word ".repeat(20);
    let long = long.trim_end();
    check_str(
        long,
        "k: word word word word word word word word word word word word word word word word\n  word word word word",
    );
    // Without spaces there is nowhere to fold.
    let token = "x".repeat(100);
    check_str(&token, &format!("k: {token}"));
    let quoted = format!("'{}", "ab ".repeat(30).trim_end());
    check_str(
        &quoted,
        "k: '''ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab\n  ab ab ab ab'",
    );
}

#[test]
fn keys_are_quoted_like_values() {
    check(
        json!({"true": 1, "a b": 2, "": 3, "x: y": 4}),
        "\"\": 3\na b: 2\n\"true\": 1\n'x: y': 4",
    );
}

#[test]
fn chart_pipelines() {
    let mut set = TemplateSet::new();
    set.add(
        "d.yaml",
        concat!(
            "spec:\n",
            "  template:\n",
            "    spec:\n",
            "      {{- with .Values.nodeSelector }}\n",
            "      nodeSelector:\n",
            "        {{- toYaml . | nindent 8 }}\n",
            "      {{- end }}\n",
            "      {{- with .Values.tolerations }}\n",
            "      tolerations:\n",
            "        {{- toYaml . | nindent 8 }}\n",
            "      {{- end }}\n",
            "      containers:\n",
            "      - name: app\n",
            "        resources:\n",
            "          {{- toYaml .Values.resources | nindent 10 }}\n",
            "        args: {{ toJson .Values.args }}\n",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let values = Value::from_go_json(json!({
        "Values": {
            "nodeSelector": {"kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""},
            "tolerations": [],
            "resources": {"limits": {"cpu": "100m", "memory": "128Mi"}, "requests": {"cpu": 0.5}},
            "args": ["--v=2", "<x>"]
        }
    }));
    assert_eq!(
        set.render("d.yaml", &values)
            .unwrap_or_else(|e| panic!("{e}")),
        concat!(
            "spec:\n",
            "  template:\n",
            "    spec:\n",
            "      nodeSelector:\n",
            "        kubernetes.io/os: linux\n",
            "        node-role.kubernetes.io/control-plane: \"\"\n",
            "      containers:\n",
            "      - name: app\n",
            "        resources:\n",
            "          limits:\n",
            "            cpu: 100m\n",
            "            memory: 128Mi\n",
            "          requests:\n",
            "            cpu: 0.5\n",
            "        args: [\"--v=2\",\"\\u003cx\\u003e\"]\n",
        )
    );
}

#[test]
fn from_yaml_reads_numbers_as_floats() {
    let mut set = TemplateSet::new();
    set.add(
        "t",
        "{{ $d := fromYaml .s }}{{ $d.a }} {{ $d.b.c }} {{ $d.n }} {{ (fromYaml \"- x\").Error }}|{{ index (fromYamlArray \"- 1\\n- two\") 1 }}|{{ (fromJson \"{\\\"x\\\": 1000000}\").x }}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let root = Value::map([("s", Value::string("a: 1\nb:\n  c: [1, 2]\nn: 2000000\n"))]);
    assert_eq!(
        set.render("t", &root).unwrap_or_else(|e| panic!("{e}")),
        "1 [1 2] 2e+06 error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}|two|1e+06"
    );
}
