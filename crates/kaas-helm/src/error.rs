//! What can go wrong loading and rendering a chart; each error names the chart and,
//! where there is one, the file or value path.

/// A chart that could not be loaded, its values not merged or validated, or its
/// templates not rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A file of the chart (or the archive holding it) is missing, malformed or unsafe.
    #[error("chart {chart}: {file}: {reason}")]
    Load {
        /// The chart's name, or where it came from when the name is not known yet.
        chart: String,
        file: String,
        reason: String,
    },
    /// `Chart.yaml` lists dependencies that are not in `charts/`.
    #[error(
        "chart {chart}: found in Chart.yaml, but missing in charts/ directory: {}",
        names.join(", ")
    )]
    MissingDependencies { chart: String, names: Vec<String> },
    /// The chart's `kubeVersion` constraint excludes the target Kubernetes version.
    #[error(
        "chart {chart} requires kubeVersion: {constraint} which is incompatible with Kubernetes {version}"
    )]
    KubeVersion {
        chart: String,
        constraint: String,
        version: String,
    },
    /// The values cannot be merged (a subchart's key is not a map).
    #[error("chart {chart}: values: {path}: {reason}")]
    Values {
        chart: String,
        path: String,
        reason: String,
    },
    /// The final values break the chart's `values.schema.json`.
    #[error(
        "chart {chart}: values don't meet the specifications of the schema: {}",
        format_violations(violations)
    )]
    Schema {
        chart: String,
        violations: Vec<SchemaViolation>,
    },
    /// A template failed to parse or to execute (including `fail`, `required` and
    /// refused functions such as `lookup`).
    #[error("chart {chart}: {source}")]
    Template {
        chart: String,
        template: String,
        #[source]
        source: kaas_gotmpl::Error,
    },
    /// A rendered document is not YAML or not a Kubernetes object.
    #[error("chart {chart}: {template}: {reason}")]
    Manifest {
        chart: String,
        template: String,
        reason: String,
    },
    /// A chart feature kaas does not implement.
    #[error("chart {chart}: {feature} is not supported")]
    Unsupported { chart: String, feature: String },
    /// The render options are unusable (an invalid Kubernetes version).
    #[error("render options: {0}")]
    Options(String),
}

impl ChartError {
    /// The message of a `fail` or `required` that stopped rendering: what Helm shows.
    pub fn failure(&self) -> Option<&str> {
        match self {
            ChartError::Template { source, .. } => source.failure(),
            _ => None,
        }
    }

    pub(crate) fn load(chart: &str, file: &str, reason: impl Into<String>) -> Self {
        ChartError::Load {
            chart: chart.to_owned(),
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One way the values break a schema: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// The value's path, `controller.replicaCount` or `args[2]`; empty for the root.
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.reason)
    }
}

fn format_violations(violations: &[SchemaViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
