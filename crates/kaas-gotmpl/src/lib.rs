//! Go's `text/template` with Helm's and Sprig's functions, so kaas can render upstream
//! Helm charts (cert-manager, ingress-nginx, NGINX Gateway Fabric, Cilium,
//! metrics-server, the OpenStack cloud provider and Cinder CSI) as `helm template` does.
//!
//! This crate is the template engine only. The chart layer above it reads `Chart.yaml`,
//! merges values, walks subcharts and `crds/`, builds the render context
//! (`.Values`, `.Release`, `.Chart`, `.Capabilities`, `.Files`, `.Template`) and splits
//! the output into documents.
//!
//! # Using it
//!
//! ```
//! use kaas_gotmpl::{TemplateSet, Value};
//!
//! let mut set = TemplateSet::new();
//! set.add("mychart/templates/_helpers.tpl",
//!     r#"{{- define "mychart.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end }}"#)?;
//! set.add("mychart/templates/cm.yaml",
//!     "name: {{ include \"mychart.name\" . }}\nreplicas: {{ .Values.replicas }}\n")?;
//! let root = Value::from_go_json(serde_json::json!({
//!     "Chart": {"Name": "mychart"},
//!     "Values": {"replicas": 3},
//! }));
//! assert_eq!(set.render("mychart/templates/cm.yaml", &root)?, "name: mychart\nreplicas: 3\n");
//! # Ok::<(), kaas_gotmpl::Error>(())
//! ```
//!
//! * [`TemplateSet`] holds every file of a chart and its subcharts in one namespace, as
//!   Helm parses them into one Go template: `define`s are shared across files, and a
//!   later [`TemplateSet::add`] overrides earlier definitions of the same name. Add files
//!   in [`helm_parse_order`] to resolve clashes as Helm does (the parent chart wins).
//!   [`TemplateSet::execute`] returns Go's output; [`TemplateSet::render`] also strips
//!   `<no value>` as Helm does after rendering each file.
//! * [`Value`] is the data model: nil, bool, int, float, string, list, shared mutable
//!   map ([`Map`]) and [`Object`] (a Go object with fields and methods). Build `.Values`
//!   with [`Value::from_go_json`]: Helm's values are JSON-decoded, so every number is a
//!   `float64` (`1000000` prints as `1e+06`, as in Helm).
//! * [`helm::Files`] and [`helm::Capabilities`] are Helm's `.Files` and `.Capabilities`.
//! * [`Functions`] is the function table; [`Functions::helm`] is what charts get, and
//!   [`Functions::insert`] adds more.
//! * [`Error`] reports Go's positions (`template: x.yaml:12:5: executing "x.yaml" at
//!   <...>: ...`); [`Error::failure`] is the message of a `fail` or `required`.
//!
//! # What is supported
//!
//! The whole `text/template` language: text and actions with `{{-`/`-}}` trimming,
//! comments, pipelines, parenthesised pipelines, variables (`:=`, `=`, `$`), `if`/`else
//! if`, `with`/`else with`, `range` over lists, maps (sorted keys) and integers with
//! `break` and `continue`, `define`, `template`, `block`, field chains on maps and
//! objects, method calls with arguments, string (interpreted and raw), character,
//! number, bool and nil constants. Go's builtins `and`, `or` (short-circuit), `not`,
//! `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `print`, `printf`, `println`,
//! `html`, `js`, `urlquery`. Sprig's functions that charts use (see
//! [`Functions::names`]) and Helm's `include`, `tpl`, `required`, `fail`, `toYaml`,
//! `fromYaml`, `fromYamlArray`, `toJson`, `fromJson`, `fromJsonArray`, `toPrettyJson`,
//! `toRawJson`. Nesting of `include`, `template` and `tpl` is limited (1000, Helm's
//! limit), and exceeding it is an error.
//!
//! # What is refused
//!
//! The functions in [`REFUSED`] parse (so charts that mention them in branches not
//! taken still render) but fail when called: `lookup` (kaas renders without a live
//! cluster), certificate and key generation (`genCA`, `genSelfSignedCert`,
//! `genSignedCert`, `genPrivateKey` and their `WithKey` forms, `buildCustomCert`),
//! `derivePassword`, `encryptAES`, `decryptAES`, `htpasswd`, `bcrypt`, TOML
//! (`toToml`, `fromToml`) and Go's `call`. `getHostByName` returns `""`, as Helm does
//! without `--enable-dns`. `env` and `expandenv` are
//! unknown, as in Helm.
//!
//! # Where it is lenient
//!
//! Go rejects some argument types that kaas converts instead (a float where an `int`
//! parameter is declared, a nil or number where a `string` is; `eq` between an int and a
//! float). A chart that renders under Helm never depends on those errors, so output is
//! the same; only charts that fail under Helm may render here.

mod error;
mod exec;
mod fmt;
mod funcs;
pub mod helm;
mod json;
mod lex;
mod parse;
pub mod semver;
mod set;
mod value;
mod yaml;

pub use error::{Error, ExecError};
pub use fmt::{format_float_g, format_v};
pub use funcs::{CustomFn, Functions, REFUSED};
pub use json::{from_json, to_json};
pub use set::{DEFAULT_MAX_DEPTH, TemplateSet, helm_parse_order};
pub use value::{Map, Object, Value};
pub use yaml::{from_yaml, to_yaml};

/// Strips Go's `<no value>` markers as Helm does after rendering a file.
pub fn strip_no_value(rendered: &str) -> String {
    rendered.replace("<no value>", "")
}
