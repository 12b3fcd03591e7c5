//! `meta.k8s.io/v1` Tables: what `kubectl get` asks for (`Accept: …;as=Table`) and
//! prints, with the columns the real API server has for the common kinds.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::object::{self, condition_true};
use crate::resources::ResourceType;

/// What each row's `object` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    Object,
    None,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("Object") => Self::Object,
            Some("None") => Self::None,
            _ => Self::Metadata,
        }
    }
}

type Cell = fn(&Value, DateTime<Utc>) -> Value;

struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    cell: Cell,
}

const fn column(name: &'static str, cell: Cell) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority: 0,
        cell,
    }
}

const fn wide(name: &'static str, cell: Cell) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        priority: 1,
        cell,
    }
}

fn name_cell(o: &Value, _: DateTime<Utc>) -> Value {
    json!(object::name(o))
}

fn age_cell(o: &Value, now: DateTime<Utc>) -> Value {
    json!(age(o, now))
}

fn text(o: &Value, pointer: &str) -> String {
    match o.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn int(o: &Value, pointer: &str) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// How long ago `metadata.creationTimestamp` was, as kubectl shows it (`45s`, `5m10s`,
/// `3h`, `12d`).
pub fn age(o: &Value, now: DateTime<Utc>) -> String {
    let Some(created) =
        object::meta_str(o, "creationTimestamp").and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    else {
        return "<unknown>".to_owned();
    };
    human_duration((now - created.with_timezone(&Utc)).num_seconds())
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

fn node_status(o: &Value, _: DateTime<Utc>) -> Value {
    let mut status = if condition_true(o, "Ready") {
        "Ready"
    } else {
        "NotReady"
    }
    .to_owned();
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn node_roles(o: &Value, _: DateTime<Utc>) -> Value {
    let roles: Vec<&str> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    json!(if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    })
}

fn node_version(o: &Value, _: DateTime<Utc>) -> Value {
    json!(text(o, "/status/nodeInfo/kubeletVersion"))
}

fn node_internal_ip(o: &Value, _: DateTime<Utc>) -> Value {
    let ip = o
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|a| a.get("address"))
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    json!(ip)
}

fn pod_ready(o: &Value, _: DateTime<Utc>) -> Value {
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(0, |cs| {
            cs.iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        });
    json!(format!("{ready}/{total}"))
}

fn pod_status(o: &Value, _: DateTime<Utc>) -> Value {
    if object::is_deleting(o) {
        return json!("Terminating");
    }
    let phase = text(o, "/status/phase");
    json!(if phase.is_empty() {
        "Pending".to_owned()
    } else {
        phase
    })
}

fn pod_restarts(_: &Value, _: DateTime<Utc>) -> Value {
    json!(0)
}

fn pod_ip(o: &Value, _: DateTime<Utc>) -> Value {
    let ip = text(o, "/status/podIP");
    json!(if ip.is_empty() {
        "<none>".to_owned()
    } else {
        ip
    })
}

fn pod_node(o: &Value, _: DateTime<Utc>) -> Value {
    let node = text(o, "/spec/nodeName");
    json!(if node.is_empty() {
        "<none>".to_owned()
    } else {
        node
    })
}

fn deploy_ready(o: &Value, _: DateTime<Utc>) -> Value {
    json!(format!(
        "{}/{}",
        int(o, "/status/readyReplicas"),
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    ))
}

fn deploy_updated(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/updatedReplicas"))
}

fn deploy_available(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/availableReplicas"))
}

fn ds_desired(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/desiredNumberScheduled"))
}

fn ds_current(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/currentNumberScheduled"))
}

fn ds_ready(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/numberReady"))
}

fn ds_updated(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/updatedNumberScheduled"))
}

fn ds_available(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/numberAvailable"))
}

fn ds_node_selector(o: &Value, _: DateTime<Utc>) -> Value {
    let selector: Vec<String> = o
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    json!(if selector.is_empty() {
        "<none>".to_owned()
    } else {
        selector.join(",")
    })
}

fn rs_desired(o: &Value, _: DateTime<Utc>) -> Value {
    json!(
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    )
}

fn rs_current(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/replicas"))
}

fn rs_ready(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/readyReplicas"))
}

fn sc_name(o: &Value, _: DateTime<Utc>) -> Value {
    let default = o
        .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
        .and_then(Value::as_str)
        == Some("true");
    if default {
        json!(format!("{} (default)", object::name(o)))
    } else {
        json!(object::name(o))
    }
}

fn sc_provisioner(o: &Value, _: DateTime<Utc>) -> Value {
    json!(text(o, "/provisioner"))
}

fn sc_reclaim(o: &Value, _: DateTime<Utc>) -> Value {
    let policy = text(o, "/reclaimPolicy");
    json!(if policy.is_empty() {
        "Delete".to_owned()
    } else {
        policy
    })
}

fn sc_binding(o: &Value, _: DateTime<Utc>) -> Value {
    let mode = text(o, "/volumeBindingMode");
    json!(if mode.is_empty() {
        "Immediate".to_owned()
    } else {
        mode
    })
}

fn sc_expansion(o: &Value, _: DateTime<Utc>) -> Value {
    json!(
        o.get("allowVolumeExpansion")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    )
}

fn ns_status(o: &Value, _: DateTime<Utc>) -> Value {
    let phase = text(o, "/status/phase");
    json!(if phase.is_empty() {
        "Active".to_owned()
    } else {
        phase
    })
}

fn crd_created(o: &Value, _: DateTime<Utc>) -> Value {
    json!(object::meta_str(o, "creationTimestamp").unwrap_or(""))
}

fn pdb_min(o: &Value, _: DateTime<Utc>) -> Value {
    json!(o.pointer("/spec/minAvailable").map_or_else(
        || "N/A".to_owned(),
        |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    ))
}

fn pdb_max(o: &Value, _: DateTime<Utc>) -> Value {
    json!(o.pointer("/spec/maxUnavailable").map_or_else(
        || "N/A".to_owned(),
        |v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    ))
}

fn pdb_allowed(o: &Value, _: DateTime<Utc>) -> Value {
    json!(int(o, "/status/disruptionsAllowed"))
}

fn svc_type(o: &Value, _: DateTime<Utc>) -> Value {
    json!(text(o, "/spec/type"))
}

fn svc_cluster_ip(o: &Value, _: DateTime<Utc>) -> Value {
    json!(text(o, "/spec/clusterIP"))
}

fn svc_ports(o: &Value, _: DateTime<Utc>) -> Value {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p.get("port").and_then(Value::as_i64).unwrap_or(0),
                        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!(if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    })
}

fn cm_data(o: &Value, _: DateTime<Utc>) -> Value {
    let n = |k: &str| o.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
    json!(n("data") + n("binaryData"))
}

fn secret_type(o: &Value, _: DateTime<Utc>) -> Value {
    json!(text(o, "/type"))
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    let name = Column {
        name: "Name",
        kind: "string",
        format: "name",
        priority: 0,
        cell: name_cell,
    };
    let age = column("Age", age_cell);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "nodes") => vec![
            name,
            column("Status", node_status),
            column("Roles", node_roles),
            age,
            column("Version", node_version),
            wide("Internal-IP", node_internal_ip),
        ],
        ("", "pods") => vec![
            name,
            column("Ready", pod_ready),
            column("Status", pod_status),
            Column {
                kind: "integer",
                ..column("Restarts", pod_restarts)
            },
            age,
            wide("IP", pod_ip),
            wide("Node", pod_node),
        ],
        ("", "namespaces") => vec![name, column("Status", ns_status), age],
        ("", "services") => vec![
            name,
            column("Type", svc_type),
            column("Cluster-IP", svc_cluster_ip),
            column("Port(s)", svc_ports),
            age,
        ],
        ("", "configmaps") => vec![
            name,
            Column {
                kind: "integer",
                ..column("Data", cm_data)
            },
            age,
        ],
        ("", "secrets") => vec![
            name,
            column("Type", secret_type),
            Column {
                kind: "integer",
                ..column("Data", cm_data)
            },
            age,
        ],
        ("apps", "deployments") => vec![
            name,
            column("Ready", deploy_ready),
            Column {
                kind: "integer",
                ..column("Up-to-date", deploy_updated)
            },
            Column {
                kind: "integer",
                ..column("Available", deploy_available)
            },
            age,
        ],
        ("apps", "daemonsets") => vec![
            name,
            Column {
                kind: "integer",
                ..column("Desired", ds_desired)
            },
            Column {
                kind: "integer",
                ..column("Current", ds_current)
            },
            Column {
                kind: "integer",
                ..column("Ready", ds_ready)
            },
            Column {
                kind: "integer",
                ..column("Up-to-date", ds_updated)
            },
            Column {
                kind: "integer",
                ..column("Available", ds_available)
            },
            column("Node Selector", ds_node_selector),
            age,
        ],
        ("apps", "replicasets") => vec![
            name,
            Column {
                kind: "integer",
                ..column("Desired", rs_desired)
            },
            Column {
                kind: "integer",
                ..column("Current", rs_current)
            },
            Column {
                kind: "integer",
                ..column("Ready", rs_ready)
            },
            age,
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            Column {
                cell: sc_name,
                ..name
            },
            column("Provisioner", sc_provisioner),
            column("ReclaimPolicy", sc_reclaim),
            column("VolumeBindingMode", sc_binding),
            Column {
                kind: "boolean",
                ..column("AllowVolumeExpansion", sc_expansion)
            },
            age,
        ],
        ("policy", "poddisruptionbudgets") => vec![
            name,
            column("Min Available", pdb_min),
            column("Max Unavailable", pdb_max),
            Column {
                kind: "integer",
                ..column("Allowed Disruptions", pdb_allowed)
            },
            age,
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![
                name,
                Column {
                    format: "date",
                    ..column("Created At", crd_created)
                },
            ]
        }
        _ => vec![name, age],
    }
}

/// The value at a CRD printer column's `jsonPath` (simple dotted paths only).
fn json_path_cell(o: &Value, path: &str) -> Value {
    let mut current = o;
    for segment in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        match current.get(segment) {
            Some(next) => current = next,
            None => return Value::Null,
        }
    }
    current.clone()
}

fn row_object(o: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::Object => o.clone(),
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => {
            let mut metadata = o.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = metadata.as_object_mut() {
                m.remove("managedFields");
            }
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
        }
    }
}

/// A Table of `objects` of type `rt`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: Option<&str>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut definitions: Vec<Value> = Vec::new();
    let mut rows: Vec<Vec<Value>> = vec![Vec::new(); objects.len()];
    if rt.printer_columns.is_empty() {
        for c in columns(rt) {
            definitions.push(json!({
                "name": c.name, "type": c.kind, "format": c.format,
                "description": "", "priority": c.priority,
            }));
            for (row, o) in rows.iter_mut().zip(objects) {
                row.push((c.cell)(o, now));
            }
        }
    } else {
        definitions.push(json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}));
        for (row, o) in rows.iter_mut().zip(objects) {
            row.push(name_cell(o, now));
        }
        for c in &rt.printer_columns {
            let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
            let kind = c.get("type").and_then(Value::as_str).unwrap_or("string");
            definitions.push(json!({
                "name": c.get("name").cloned().unwrap_or_else(|| json!(path)),
                "type": if kind == "date" { "string" } else { kind },
                "format": if kind == "date" { "date" } else { c.get("format").and_then(Value::as_str).unwrap_or("") },
                "description": c.get("description").cloned().unwrap_or_else(|| json!("")),
                "priority": c.get("priority").cloned().unwrap_or_else(|| json!(0)),
            }));
            for (row, o) in rows.iter_mut().zip(objects) {
                let value = json_path_cell(o, path);
                row.push(if kind == "date" {
                    value
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map_or(value.clone(), |t| {
                            json!(human_duration((now - t.with_timezone(&Utc)).num_seconds()))
                        })
                } else {
                    value
                });
            }
        }
        definitions.push(json!({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}));
        for (row, o) in rows.iter_mut().zip(objects) {
            row.push(age_cell(o, now));
        }
    }
    let rows: Vec<Value> = rows
        .into_iter()
        .zip(objects)
        .map(|(cells, o)| json!({"cells": cells, "object": row_object(o, include)}))
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::resources::Catalog;

    #[test]
    fn human_durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(130), "2m10s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(100 * 86400), "100d");
    }

    #[test]
    fn storage_class_tables_mark_the_default() {
        let catalog = Catalog::new([]);
        let rt = catalog
            .by_resource("storage.k8s.io", "v1", "storageclasses")
            .unwrap();
        let sc = json!({"metadata": {"name": "csi", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "cinder.csi.openstack.org"});
        let t = table(rt, &[sc], Some("5"), IncludeObject::Metadata, Utc::now());
        assert_eq!(t["rows"][0]["cells"][0], "csi (default)");
        assert_eq!(t["rows"][0]["cells"][1], "cinder.csi.openstack.org");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn node_tables_show_status_and_roles() {
        let catalog = Catalog::new([]);
        let rt = catalog.by_resource("", "v1", "nodes").unwrap();
        let node = json!({"metadata": {"name": "cp-0", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                          "spec": {"unschedulable": true},
                          "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.1"}}});
        let t = table(rt, &[node], None, IncludeObject::None, Utc::now());
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "Ready,SchedulingDisabled");
        assert_eq!(cells[2], "control-plane");
        assert_eq!(cells[3], "<unknown>");
        assert_eq!(cells[4], "v1.33.1");
    }
}
