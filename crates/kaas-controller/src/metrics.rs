//! Prometheus metrics of the controllers, registered in a registry passed in (no globals).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    pub provider: String,
    pub operation: String,
    pub result: String,
}

/// A step of a reconcile that failed: which step, and the failure's category (the
/// same word as the event's reason, e.g. `QuotaExceeded`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepFailureLabels {
    pub controller: String,
    pub step: String,
    pub category: String,
}

/// Handles to every metric the controllers update.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_seconds: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub queue_depth: Family<ControllerLabels, Gauge>,
    pub cloud_calls: Family<CloudCallLabels, Counter>,
    pub step_failures: Family<StepFailureLabels, Counter>,
    /// Renderings of a cluster's addons (their charts with its values): CPU that a
    /// settled cluster should not cost.
    pub addon_renders: Counter,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(reconcile_histogram),
            queue_depth: Family::default(),
            cloud_calls: Family::default(),
            step_failures: Family::default(),
            addon_renders: Counter::default(),
        };
        registry.register(
            "kaas_reconciles",
            "Reconciles by controller and result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "kaas_reconcile_duration_seconds",
            "Time one reconcile took",
            metrics.reconcile_seconds.clone(),
        );
        registry.register(
            "kaas_queue_depth",
            "Keys waiting in a controller's work queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "kaas_cloud_api_calls",
            "Cloud API calls by provider, operation and result",
            metrics.cloud_calls.clone(),
        );
        registry.register(
            "kaas_reconcile_step_failures",
            "Failed reconcile steps by controller, step and category",
            metrics.step_failures.clone(),
        );
        registry.register(
            "kaas_addon_renders",
            "Renderings of a cluster's addons from their charts",
            metrics.addon_renders.clone(),
        );
        metrics
    }
}
