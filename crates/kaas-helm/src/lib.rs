//! Helm charts loaded and rendered as `helm template` renders them, so kaas can install
//! each cluster's addons from upstream charts. No I/O besides what the caller hands in
//! ([`Chart::from_dir`] and [`package`] read the folder they are given); the templates
//! run on [`kaas_gotmpl`].
//!
//! # Using it
//!
//! ```no_run
//! use kaas_helm::{Chart, RenderOptions, render};
//!
//! # fn main() -> Result<(), kaas_helm::ChartError> {
//! # let archive: Vec<u8> = Vec::new();
//! let chart = Chart::from_archive(&archive)?;
//! let mut out = render(&chart, &RenderOptions {
//!     release_name: "cert-manager".into(),
//!     namespace: "cert-manager".into(),
//!     kube_version: "v1.33.2".into(),
//!     api_versions: vec![],
//!     values: vec![serde_json::json!({"crds": {"enabled": true}})],
//!     include_crds: true,
//! })?;
//! out.set_default_namespace("cert-manager");
//! for object in out.crds.iter().chain(&out.objects) { /* apply */ }
//! # Ok(()) }
//! ```
//!
//! * Loading: [`Chart::from_archive`] (a `.tgz` as `helm package` makes it),
//!   [`Chart::from_dir`] and [`Chart::from_files`] (both honour `.helmignore`).
//!   [`package`] makes a deterministic `.tgz` of a chart folder.
//! * Rendering: [`render`] with [`RenderOptions`] gives [`Rendered`]: `crds`,
//!   `objects` (sorted in Helm's install order, [`INSTALL_ORDER`]) and `hooks`
//!   ([`Hook`]: events, weight, delete policies). [`values`] gives the final values
//!   alone. [`Rendered::set_default_namespace`] (or [`set_default_namespace`] with a
//!   predicate of one's own, [`ClusterScope`] being the default) fills in
//!   `metadata.namespace` on namespaced objects; `render` itself leaves objects as
//!   Helm writes them.
//! * Errors: [`ChartError`] names the chart and the file, value path or template;
//!   [`ChartError::failure`] is the message of a `fail` or `required`.
//!
//! # What is supported
//!
//! * `Chart.yaml` apiVersion v2, and v1 (dependencies from `requirements.yaml`);
//!   name, version (semver), appVersion, kubeVersion (checked against the target
//!   version, for the top chart as Helm does), type application or library (a library
//!   chart renders nothing itself; its `define`s serve the others), dependencies with
//!   name, version (the subchart must satisfy it, else it counts as not listed),
//!   repository, condition, tags, alias.
//! * `values.yaml`, `values.schema.json` (draft-07 keywords charts use; see
//!   `schema` below), `templates/` (`_*` files are partials; `NOTES.txt` is
//!   rendered, so its errors count, but is not part of the output),
//!   `crds/` (not templated), `charts/` (folders and `.tgz`s; entries starting with
//!   `_` or `.` skipped), every other file through `.Files`.
//! * Values as Helm coalesces them: the caller's layers merged (maps deeply, lists
//!   and scalars replaced, a `null` replacing too), then laid over `values.yaml`; a
//!   `null` removes a default; subcharts get `<alias or name>:` over their own
//!   defaults and the parent's `global:` merged over theirs. Subcharts are enabled by
//!   `tags` (off when a tag is false and none true) and `condition` (the first of the
//!   comma-separated paths holding a bool decides), as Helm's
//!   `processDependencyEnabled` does; subcharts in `charts/` that `Chart.yaml` does
//!   not list are always rendered.
//! * Schema keywords: `type` (also lists), `enum`, `const`, `properties`, `required`,
//!   `additionalProperties`, `patternProperties`, `propertyNames`, `items` (schema or
//!   tuple), `additionalItems`, `contains`, `min/maxItems`, `uniqueItems`,
//!   `min/maxProperties`, `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`,
//!   `multipleOf`, `min/maxLength`, `pattern`, `allOf`/`anyOf`/`oneOf`/`not`,
//!   `if`/`then`/`else`, `$ref` to `#`, `#/definitions/…`, `#/$defs/…`.
//! * The render context: `.Values`, `.Release` (IsInstall true, Revision 1),
//!   `.Chart` (Helm's field names, `IsRoot`), `.Capabilities` (Helm's default API
//!   list, [`DEFAULT_API_VERSIONS`], the `group/version/Kind` forms of the stable
//!   built-in kinds, and the caller's), `.Files`, `.Template` (`Name`, `BasePath`)
//!   and `.Subcharts`. All templates of the chart and its enabled subcharts share one
//!   template set, added in Helm's parse order.
//! * Output: each file's text split into documents on `---` lines as Helm's
//!   `SplitManifests` does; documents of comments only dropped; `test` hooks dropped.
//!
//! # What is refused
//!
//! * `import-values` on an enabled dependency (and so the `exports` convention):
//!   [`ChartError::Unsupported`].
//! * Functions kaas-gotmpl refuses (`lookup`, certificate generation, ...): the
//!   template error names the chart and the template.
//! * A rendered document that is not a Kubernetes object (no `apiVersion` or
//!   `kind`); Helm would pass it on to the cluster.
//! * Archives with links, absolute paths, paths leaving the chart, files over
//!   [`MAX_FILE_BYTES`] or more than [`MAX_UNPACKED_BYTES`] in all; folders likewise
//!   limited.
//!
//! # Known differences from Helm
//!
//! * `.Capabilities.APIVersions` also holds `group/version/Kind` for the stable
//!   built-in kinds, as when Helm installs into a live cluster; `helm template`
//!   without a cluster has only group/versions.
//! * Helm lets a subchart's nested `global` defaults leak into its parent's values;
//!   here the parent's values stay as they were.
//! * `.Chart.Type` is `application` when `Chart.yaml` leaves it out (Helm: empty).
//! * `package` writes the files of the folder as they are (Helm rewrites
//!   `Chart.yaml` and turns `.tgz` subcharts into folders).

mod archive;
mod capabilities;
mod chart;
mod error;
mod ignore;
mod manifest;
mod render;
mod schema;
mod values;

use std::path::Path;

pub use archive::{MAX_FILE_BYTES, MAX_UNPACKED_BYTES, PACKAGE_MTIME};
pub use capabilities::{DEFAULT_API_KINDS, DEFAULT_API_VERSIONS, api_versions};
pub use chart::{Chart, ChartFile, ChartType, Dependency, Maintainer, Metadata};
pub use error::{ChartError, SchemaViolation};
pub use manifest::{
    CLUSTER_SCOPED_KINDS, ClusterScope, Hook, INSTALL_ORDER, set_default_namespace, split_manifests,
};
pub use render::{RenderOptions, Rendered, render, values};

/// Packages the chart folder `dir` as a `.tgz` under a top directory named after the
/// chart, leaving out what `.helmignore` names: entries sorted, owned by root, mode
/// 0644, modified at [`PACKAGE_MTIME`], so the same folder always gives the same
/// bytes. The chart is loaded first, so a broken chart is refused.
pub fn package(dir: impl AsRef<Path>) -> Result<Vec<u8>, ChartError> {
    let dir = dir.as_ref();
    let origin = dir.display().to_string();
    let files = chart::apply_helmignore(chart::read_dir_files(dir)?, &origin)?;
    let loaded = Chart::from_files(files.clone())?;
    archive::pack(loaded.name(), &files)
        .map_err(|e| ChartError::load(loaded.name(), "(archive)", format!("cannot write: {e}")))
}
