//! `kaas cluster kubeconfig --merge`: add a cluster's entries to the user's kubeconfig,
//! as `kubectl config` would, replacing earlier entries of the same names.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// `$KUBECONFIG`'s first path, or `~/.kube/config`.
fn target() -> Result<PathBuf> {
    if let Some(paths) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&paths).next()
        && !first.as_os_str().is_empty()
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("neither KUBECONFIG nor HOME is set")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

/// Replaces (by name) or adds every entry of `new`'s clusters, users and contexts in
/// `existing`; keeps the current context unless there was none.
pub fn merge_into(existing: Value, new: &Value) -> Result<Value> {
    let mut merged = if existing.is_null() {
        json!({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [], "preferences": {}})
    } else {
        existing
    };
    if !merged.is_object() {
        bail!("the existing kubeconfig is not a mapping");
    }
    for list in ["clusters", "users", "contexts"] {
        let incoming = new[list].as_array().cloned().unwrap_or_default();
        if !merged[list].is_array() {
            merged[list] = json!([]);
        }
        if let Some(entries) = merged[list].as_array_mut() {
            for entry in incoming {
                entries.retain(|e| e["name"] != entry["name"]);
                entries.push(entry);
            }
        }
    }
    let current = merged["current-context"].as_str().unwrap_or("");
    if current.is_empty() {
        merged["current-context"] = new["current-context"].clone();
    }
    Ok(merged)
}

/// Merges the kubeconfig text into the user's kubeconfig file (mode 0600); returns its
/// path.
pub fn merge(text: &str) -> Result<PathBuf> {
    let path = target()?;
    let new: Value = serde_saphyr::from_str(text).context("the server's kubeconfig is not YAML")?;
    let existing: Value = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => serde_saphyr::from_str(&s)
            .with_context(|| format!("{} is not a kubeconfig", path.display()))?,
        Ok(_) => Value::Null,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let merged = merge_into(existing, &new)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let yaml = serde_saphyr::to_string(&merged)?;
    crate::server::write_private(&path, &yaml)?;
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(name: &str, server: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": server}}],
            "users": [{"name": format!("{name}-admin"), "user": {}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": format!("{name}-admin")}}],
            "current-context": name
        })
    }

    #[test]
    fn merging_replaces_by_name_and_keeps_the_current_context() {
        let merged = merge_into(
            config("other", "https://a"),
            &config("kaas-demo", "https://b"),
        )
        .unwrap();
        assert_eq!(merged["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(merged["current-context"], "other");
        let again = merge_into(merged, &config("kaas-demo", "https://c")).unwrap();
        let clusters = again["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        assert_eq!(clusters[1]["cluster"]["server"], "https://c");
        let fresh = merge_into(Value::Null, &config("kaas-demo", "https://b")).unwrap();
        assert_eq!(fresh["current-context"], "kaas-demo");
    }
}
