//! Who may do what: roles within a tenant, API tokens, and the tenant's quotas.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cluster::ClusterSpec;
use crate::meta::{API_VERSION, Object, ObjectMeta};
use crate::tenant::Quotas;

/// What a caller may do within its tenant. Each role may do what the ones before it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads clusters, their machines, events and the stacks.
    Viewer,
    /// Also creates, changes and deletes clusters and fetches their kubeconfigs.
    Editor,
    /// Also manages the tenant's API tokens and reads its audit log and machines' user
    /// data.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API token of a tenant. The token itself (`kaas_<id>_<secret>`) is shown once when
/// it is made; only its secret's SHA-256 is stored, under the name `<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiToken {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "token_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ApiTokenSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenSpec {
    pub role: Role,
    /// What the token is for, as its creator said.
    #[serde(default)]
    pub description: String,
    /// Who made it.
    #[serde(default)]
    pub created_by: String,
    /// After this the token is refused; `None`: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the token's secret part.
    #[serde(default)]
    pub secret_sha256: String,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}
fn token_kind() -> String {
    ApiToken::KIND.to_owned()
}

impl Object for ApiToken {
    const KIND: &'static str = "ApiToken";
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl ApiToken {
    pub fn new(id: &str, spec: ApiTokenSpec) -> Self {
        Self {
            api_version: api_version(),
            kind: token_kind(),
            metadata: ObjectMeta::named(id),
            spec,
        }
    }

    /// Whether the token is past its expiry at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.spec.expires_at.is_some_and(|at| at <= now)
    }
}

/// The vCPUs of a flavor known by its name: OpenStack's classic `m1.*` flavors and
/// flavors named by the SCS flavor naming standard (`SCS-4V-16`, `SCS-2V-8-20s`,
/// `SCS-16C-64`: the number before the CPU type `L`, `V`, `T` or `C`). `None` for any
/// other name. What the cloud says of its flavors comes first; this counts the machines
/// of a flavor the cloud no longer offers.
pub fn flavor_vcpus(flavor: &str) -> Option<u32> {
    match flavor {
        "m1.tiny" | "m1.small" => return Some(1),
        "m1.medium" => return Some(2),
        "m1.large" => return Some(4),
        "m1.xlarge" => return Some(8),
        _ => {}
    }
    let rest = flavor.strip_prefix("SCS-")?;
    let count = rest.split('-').next()?;
    let digits = count.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &count[digits.len()..];
    if !matches!(suffix.chars().next(), Some('L' | 'V' | 'T' | 'C')) {
        return None;
    }
    digits.parse().ok()
}

/// What clusters take from a tenant's quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub clusters: u32,
    pub machines: u32,
    pub vcpus: u32,
}

impl Usage {
    /// What one cluster with `spec` takes (its desired machines; a rollout's surge
    /// machines are not counted), given the vCPUs of each flavor.
    pub fn of(spec: &ClusterSpec, vcpus_of: impl Fn(&str) -> u32) -> Usage {
        let parts = std::iter::once((spec.control_plane.replicas, &spec.control_plane.flavor))
            .chain(spec.node_pools.iter().map(|p| (p.replicas, &p.flavor)));
        let mut usage = Usage {
            clusters: 1,
            ..Usage::default()
        };
        for (replicas, flavor) in parts {
            usage.machines = usage.machines.saturating_add(replicas);
            let vcpus = vcpus_of(flavor);
            usage.vcpus = usage.vcpus.saturating_add(replicas.saturating_mul(vcpus));
        }
        usage
    }

    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            clusters: self.clusters.saturating_add(other.clusters),
            machines: self.machines.saturating_add(other.machines),
            vcpus: self.vcpus.saturating_add(other.vcpus),
        }
    }
}

/// Checks that a cluster going from `before` (zero for a new one) to `after` keeps the
/// tenant within `quotas`, given what its `others` clusters take. Only what grows is
/// checked, so a change that asks for no more is never refused, even over a lowered
/// quota. The error says which quota, how much is in use and how much more was asked.
pub fn check_quota(
    tenant: &str,
    quotas: &Quotas,
    others: Usage,
    before: Usage,
    after: Usage,
) -> Result<(), String> {
    let over: Vec<String> = [
        (
            "clusters",
            quotas.clusters,
            others.clusters,
            before.clusters,
            after.clusters,
        ),
        (
            "machines",
            quotas.machines,
            others.machines,
            before.machines,
            after.machines,
        ),
        (
            "vCPUs",
            quotas.vcpus,
            others.vcpus,
            before.vcpus,
            after.vcpus,
        ),
    ]
    .into_iter()
    .filter(|(_, limit, others, before, after)| {
        after > before && others.saturating_add(*after) > *limit
    })
    .map(|(what, limit, others, before, after)| {
        format!(
            "{what}: {} in use + {} requested > quota {limit}",
            others.saturating_add(before),
            after - before
        )
    })
    .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "tenant {tenant:?} would exceed its quota: {}",
            over.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::{ControlPlane, NodePool};

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("owner"), None);
        assert_eq!(serde_json::to_value(Role::Editor).unwrap(), "editor");
    }

    fn by_name(flavor: &str) -> u32 {
        flavor_vcpus(flavor).unwrap_or(0)
    }

    #[test]
    fn flavor_vcpus_from_names() {
        for (name, vcpus) in [
            ("m1.small", Some(1)),
            ("m1.medium", Some(2)),
            ("m1.xlarge", Some(8)),
            ("SCS-4V-16", Some(4)),
            ("SCS-2V-8-20s", Some(2)),
            ("SCS-16L-64", Some(16)),
            ("SCS-8T-32", Some(8)),
            ("SCS-16C-64:100", Some(16)),
            ("SCS-4X-16", None),
            ("SCS-V-8", None),
            ("c5.large", None),
        ] {
            assert_eq!(flavor_vcpus(name), vcpus, "{name}");
        }
    }

    fn spec(cp: u32, workers: u32, flavor: &str) -> ClusterSpec {
        let mut pool = NodePool::new("workers", workers);
        pool.flavor = flavor.to_owned();
        ClusterSpec {
            control_plane: ControlPlane {
                replicas: cp,
                flavor: "m1.medium".to_owned(),
                ..ControlPlane::default()
            },
            node_pools: vec![pool],
            ..ClusterSpec::default()
        }
    }

    #[test]
    fn usage_counts_machines_and_known_vcpus() {
        let usage = Usage::of(&spec(3, 4, "SCS-4V-16"), by_name);
        assert_eq!(
            usage,
            Usage {
                clusters: 1,
                machines: 7,
                vcpus: 3 * 2 + 4 * 4
            }
        );
        assert_eq!(Usage::of(&spec(1, 2, "custom"), by_name).vcpus, 2);
    }

    #[test]
    fn quota_errors_name_what_is_exceeded() {
        let quotas = Quotas {
            clusters: 2,
            machines: 10,
            vcpus: 100,
        };
        let none = Usage::default();
        let one = Usage::of(&spec(3, 3, "m1.large"), by_name);
        assert_eq!(check_quota("acme", &quotas, none, none, one), Ok(()));
        let err = check_quota("acme", &quotas, one, none, one).unwrap_err();
        assert_eq!(
            err,
            "tenant \"acme\" would exceed its quota: machines: 6 in use + 6 requested > quota 10"
        );
        let small = Usage::of(&spec(1, 0, "m1.small"), by_name);
        let err = check_quota("acme", &quotas, one.plus(one), none, small).unwrap_err();
        assert!(
            err.contains("clusters: 2 in use + 1 requested > quota 2"),
            "{err}"
        );
        // Scaling one cluster up counts only the growth.
        let bigger = Usage::of(&spec(3, 5, "m1.large"), by_name);
        assert_eq!(check_quota("acme", &quotas, small, one, bigger), Ok(()));
        let err = check_quota("acme", &quotas, one, one, bigger).unwrap_err();
        assert!(
            err.contains("machines: 12 in use + 2 requested > quota 10"),
            "{err}"
        );
        // A change that asks for no more is never refused, even over quota.
        assert_eq!(
            check_quota("acme", &quotas, one.plus(one), one, small),
            Ok(())
        );
    }
}
