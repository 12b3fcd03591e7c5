//! OpenAPI v3 documents, one per group-version, at `/openapi/v3/{api/v1 | apis/G/V}`
//! and their index at `/openapi/v3`.
//!
//! kubectl needs them to validate what it applies: it looks up the `PATCH` operation of
//! each object's kind (by its `x-kubernetes-group-version-kind`) and, when that takes a
//! `fieldValidation` query parameter, leaves validation to the server instead of
//! validating against schemas itself (without OpenAPI, `kubectl apply` refuses to run
//! unless given `--validate=false`). So every resource gets its paths with that
//! parameter; schemas are minimal (any fields are accepted: `x-kubernetes-preserve-
//! unknown-fields`) except for custom resources, whose CRD schema is served.
//!
//! OpenAPI v2 (`/openapi/v2`) is an empty document: kubectl falls back to it for kinds
//! the v3 documents do not have yet (a custom resource whose CRD is in the same file) and
//! does not validate kinds it does not find there.

use serde_json::{Map, Value, json};

use crate::object::short_hash;
use crate::resources::{Catalog, ResourceType, api_version};

/// The media type of OpenAPI v2 in protobuf.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// An empty OpenAPI v2 document.
pub fn v2(git_version: &str) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": {},
        "definitions": {},
    })
}

/// `api/v1` or `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group-versions served, the core one first.
fn group_versions(catalog: &Catalog) -> Vec<(String, String)> {
    let mut gvs = vec![(String::new(), "v1".to_owned())];
    for (group, versions) in catalog.groups() {
        for version in versions {
            gvs.push((group.clone(), version));
        }
    }
    gvs
}

/// `/openapi/v3`: each group-version's document, with a hash of its content so clients
/// can cache it until it changes.
pub fn index(catalog: &Catalog, git_version: &str) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(catalog) {
        let path = gv_path(&group, &version);
        let document = group_version_document(catalog, &group, &version, git_version);
        let hash = short_hash(&document);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The document at `/openapi/v3/{path}`, if a group-version is served there.
pub fn document(catalog: &Catalog, path: &str, git_version: &str) -> Option<Value> {
    group_versions(catalog)
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)
        .map(|(g, v)| group_version_document(catalog, &g, &v, git_version))
}

/// The schema name of a kind: `io.k8s.api.core.v1.Pod`, `com.example.v1.Widget`.
fn schema_name(rt: &ResourceType, version: &str) -> String {
    let prefix = if rt.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else if !rt.custom {
        format!("io.k8s.api.{}", rt.group.split('.').next().unwrap_or(""))
    } else {
        rt.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{prefix}.{version}.{}", rt.kind)
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn path_parameter(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": name, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(action: &str, id: String, gvk: &Value, schema: &str, parameters: Vec<Value>) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
    let mut op = json!({
        "operationId": id,
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if matches!(action, "post" | "put" | "patch") {
        // No strategic merge patch: kubectl would look for its merge keys in the
        // (minimal) schemas; without it, kubectl computes strategic merge patches of
        // built-in kinds from its compiled-in types, and merge patches of custom ones.
        let types: &[&str] = if action == "patch" {
            &[
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
            ]
        } else {
            &["application/json"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({"schema": reference})))
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

fn write_parameters(patch: bool) -> Vec<Value> {
    let mut parameters = vec![
        query("dryRun", "When present, modifications are not persisted."),
        query(
            "fieldManager",
            "The name of the actor or entity making these changes.",
        ),
        query(
            "fieldValidation",
            "How the server treats unknown or duplicate fields: Ignore, Warn or Strict.",
        ),
    ];
    if patch {
        parameters.push(query(
            "force",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    parameters
}

/// The paths and schema of one resource type at one version.
fn resource_paths(
    rt: &ResourceType,
    version: &str,
    paths: &mut Map<String, Value>,
    schemas: &mut Map<String, Value>,
) {
    let gvk = json!({"group": rt.group, "version": version, "kind": rt.kind});
    let schema = schema_name(rt, version);
    let prefix = format!("/{}", gv_path(&rt.group, version));
    let collection = if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{prefix}/{}", rt.plural)
    };
    let scope = if rt.namespaced { "Namespaced" } else { "" };
    let id = |verb: &str, suffix: &str| format!("{verb}{scope}{}{suffix}", rt.kind);
    let mut common = vec![];
    if rt.namespaced {
        common.push(path_parameter("namespace"));
    }
    let mut collection_ops = json!({
        "get": operation("list", id("list", ""), &gvk, &schema, vec![query("labelSelector", "A selector on labels."), query("fieldSelector", "A selector on fields."), query("watch", "Watch for changes.")]),
        "post": operation("post", id("create", ""), &gvk, &schema, write_parameters(false)),
        "parameters": common.clone(),
    });
    let mut item_parameters = common.clone();
    item_parameters.insert(0, path_parameter("name"));
    let mut item_ops = json!({
        "get": operation("get", id("read", ""), &gvk, &schema, vec![]),
        "put": operation("put", id("replace", ""), &gvk, &schema, write_parameters(false)),
        "patch": operation("patch", id("patch", ""), &gvk, &schema, write_parameters(true)),
        "delete": operation("delete", id("delete", ""), &gvk, &schema, vec![query("dryRun", "When present, modifications are not persisted.")]),
        "parameters": item_parameters.clone(),
    });
    if rt.plural == "namespaces" && rt.is_core() {
        // Namespaces are cluster-scoped: no namespace parameter.
        collection_ops["parameters"] = json!([]);
        item_ops["parameters"] = json!([path_parameter("name")]);
    }
    paths.insert(collection.clone(), collection_ops);
    paths.insert(format!("{collection}/{{name}}"), item_ops);
    if rt.status_subresource {
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "get": operation("get", id("read", "Status"), &gvk, &schema, vec![]),
                "put": operation("put", id("replace", "Status"), &gvk, &schema, write_parameters(false)),
                "patch": operation("patch", id("patch", "Status"), &gvk, &schema, write_parameters(true)),
                "parameters": item_parameters,
            }),
        );
    }
    let mut body =
        rt.schemas.get(version).cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
    if let Some(map) = body.as_object_mut() {
        map.insert("x-kubernetes-group-version-kind".to_owned(), json!([gvk]));
        map.entry("description").or_insert_with(|| {
            json!(format!(
                "{} ({}), as the simulated API server keeps it.",
                rt.kind,
                api_version(&rt.group, version)
            ))
        });
    }
    schemas.insert(schema, body);
}

fn group_version_document(
    catalog: &Catalog,
    group: &str,
    version: &str,
    git_version: &str,
) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in catalog.in_group_version(group, version) {
        resource_paths(rt, version, &mut paths, &mut schemas);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": git_version},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_index_lists_every_group_version_with_a_hash() {
        let catalog = Catalog::new([]);
        let index = index(&catalog, "v1.33.0");
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(index["paths"]["api/v1"].is_object());
    }

    #[test]
    fn patch_operations_take_field_validation() {
        let catalog = Catalog::new([]);
        let doc = document(&catalog, "api/v1", "v1.33.0").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "ConfigMap"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(doc["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
        assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"].is_object());
        assert!(document(&catalog, "apis/apps/v2", "v1.33.0").is_none());
    }
}
