//! A Tenant: one customer, bound to one OpenStack project, with quotas.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{API_VERSION, Object, ObjectMeta};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "tenant_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: TenantSpec,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}
fn tenant_kind() -> String {
    Tenant::KIND.to_owned()
}

impl Object for Tenant {
    const KIND: &'static str = "Tenant";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Tenant {
    pub fn new(name: &str, spec: TenantSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: tenant_kind(),
            metadata: ObjectMeta::named(name),
            spec,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    #[serde(default)]
    pub display_name: String,
    /// The OpenStack project the tenant's clusters are built in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default)]
    pub quotas: Quotas,
    /// Write-only: the application credential kaas uses in the tenant's project. Sealed
    /// in the store when given, never stored in the tenant nor returned.
    #[serde(default, skip_serializing)]
    pub credentials: Option<TenantCredentials>,
}

/// An OpenStack application credential of a tenant's project.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantCredentials {
    pub application_credential_id: String,
    pub application_credential_secret: String,
}

impl std::fmt::Debug for TenantCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCredentials")
            .field("application_credential_id", &self.application_credential_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    pub clusters: u32,
    pub machines: u32,
    pub vcpus: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            clusters: 20,
            machines: 500,
            vcpus: 2000,
        }
    }
}

/// The most of anything a quota may allow.
pub const MAX_QUOTA: u32 = 1_000_000;

/// Quotas to set, each `None` left as it is: what `clusters=N,machines=N,vcpus=N`
/// says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaChange {
    pub clusters: Option<u32>,
    pub machines: Option<u32>,
    pub vcpus: Option<u32>,
}

impl QuotaChange {
    /// `quotas` with the values this change sets.
    pub fn applied_to(&self, quotas: &Quotas) -> Quotas {
        Quotas {
            clusters: self.clusters.unwrap_or(quotas.clusters),
            machines: self.machines.unwrap_or(quotas.machines),
            vcpus: self.vcpus.unwrap_or(quotas.vcpus),
        }
    }
}

/// Parses `clusters=N,machines=N,vcpus=N` (any of them, in any order). The error
/// names the key and the reason.
pub fn parse_quota_change(text: &str) -> Result<QuotaChange, String> {
    let mut change = QuotaChange::default();
    let mut any = false;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected KEY=NUMBER (clusters, machines, vcpus)"))?;
        let key = key.trim();
        let slot = match key {
            "clusters" => &mut change.clusters,
            "machines" => &mut change.machines,
            "vcpus" => &mut change.vcpus,
            other => {
                return Err(format!(
                    "{other:?}: unknown quota; the keys are clusters, machines and vcpus"
                ));
            }
        };
        if slot.is_some() {
            return Err(format!("{key}: given twice"));
        }
        let value = value.trim();
        let n: u32 = value
            .parse()
            .map_err(|_| format!("{key}: {value:?} is not a whole number from 0 to {MAX_QUOTA}"))?;
        if n > MAX_QUOTA {
            return Err(format!(
                "{key}: {n} is more than the most a quota allows ({MAX_QUOTA})"
            ));
        }
        *slot = Some(n);
        any = true;
    }
    if !any {
        return Err("no quota given: expected clusters=N,machines=N,vcpus=N (any of them)".into());
    }
    Ok(change)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quota_changes_parse_and_apply() {
        let change = parse_quota_change("clusters=100, vcpus=4000").unwrap();
        assert_eq!(
            change,
            QuotaChange {
                clusters: Some(100),
                machines: None,
                vcpus: Some(4000)
            }
        );
        let quotas = change.applied_to(&Quotas::default());
        assert_eq!(quotas.clusters, 100);
        assert_eq!(quotas.machines, Quotas::default().machines);
        assert_eq!(quotas.vcpus, 4000);
        assert_eq!(parse_quota_change("machines=0").unwrap().machines, Some(0));
    }

    #[test]
    fn bad_quota_changes_name_the_key_and_the_reason() {
        let cases = [
            ("", "no quota given"),
            ("clusters", "\"clusters\": expected KEY=NUMBER"),
            (
                "cpus=4",
                "\"cpus\": unknown quota; the keys are clusters, machines and vcpus",
            ),
            ("clusters=-1", "clusters: \"-1\" is not a whole number"),
            ("vcpus=lots", "vcpus: \"lots\" is not a whole number"),
            (
                "machines=2000000",
                "machines: 2000000 is more than the most a quota allows",
            ),
            ("clusters=1,clusters=2", "clusters: given twice"),
        ];
        for (text, expected) in cases {
            let err = parse_quota_change(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
