//! Discovery documents (legacy, unaggregated): `/api` (APIVersions), `/apis`
//! (APIGroupList), `/apis/{group}` (APIGroup), `/api/v1` and `/apis/{group}/{version}`
//! (APIResourceList), and `/version`.
//!
//! Clients that ask for aggregated discovery (`as=APIGroupDiscoveryList`) get these as
//! `application/json` and fall back to them, as they do with older servers.

use serde_json::{Value, json};

use crate::http::ApiPath;
use crate::resources::{Catalog, api_version};

/// `/version` for `git_version` (`v1.33.0`).
pub fn version(git_version: &str) -> Value {
    let numbers: Vec<&str> = git_version.trim_start_matches('v').split('.').collect();
    json!({
        "major": numbers.first().copied().unwrap_or("1"),
        "minor": numbers.get(1).copied().unwrap_or("0"),
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": api_version(name, v), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// The document at a discovery path; `None` for groups and versions not served.
pub fn answer(catalog: &Catalog, path: &ApiPath, host: &str) -> Option<Value> {
    match path {
        ApiPath::CoreVersions => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        })),
        ApiPath::Groups => {
            let groups: Vec<Value> = catalog
                .groups()
                .iter()
                .map(|(name, versions)| group_entry(name, versions))
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ApiPath::Group(group) => {
            let groups = catalog.groups();
            let (name, versions) = groups.iter().find(|(g, _)| g == group)?;
            let mut entry = group_entry(name, versions);
            entry["kind"] = json!("APIGroup");
            entry["apiVersion"] = json!("v1");
            Some(entry)
        }
        ApiPath::Resources { group, version } => {
            let resources: Vec<Value> = catalog
                .in_group_version(group, version)
                .flat_map(|t| t.discovery_entries())
                .collect();
            if resources.is_empty() {
                return None;
            }
            Some(json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": api_version(group, version),
                "resources": resources,
            }))
        }
        ApiPath::Resource(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_core_group_lists_pods_with_their_eviction_subresource() {
        let catalog = Catalog::new([]);
        let path = ApiPath::Resources {
            group: String::new(),
            version: "v1".to_owned(),
        };
        let list = answer(&catalog, &path, "h").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for expected in [
            "namespaces",
            "nodes",
            "pods",
            "pods/eviction",
            "services",
            "configmaps",
            "secrets",
            "serviceaccounts",
            "events",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert_eq!(list["groupVersion"], "v1");
    }

    #[test]
    fn groups_and_unknown_versions() {
        let catalog = Catalog::new([]);
        let groups = answer(&catalog, &ApiPath::Groups, "h").unwrap();
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["name"] == "storage.k8s.io")
        );
        let apps = answer(&catalog, &ApiPath::Group("apps".to_owned()), "h").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        let missing = ApiPath::Resources {
            group: "apps".to_owned(),
            version: "v9".to_owned(),
        };
        assert!(answer(&catalog, &missing, "h").is_none());
    }

    #[test]
    fn version_splits_the_git_version() {
        let v = version("v1.32.4");
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
    }
}
