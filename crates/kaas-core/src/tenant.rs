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
