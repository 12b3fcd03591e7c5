//! The OpenAPI 3.1 document: paths written here, schemas derived from the resource
//! model (JSON Schema 2020-12, as OpenAPI 3.1 uses), so they cannot drift apart. What
//! a handler builds by hand (lists, a tenant's status, a new token, audit entries) is
//! described by hand beside it.
//!
//! Every status a handler can answer is listed with its schema; schemathesis checks
//! the running server against this document (`crates/kaas/tests/fuzz.rs`).

use kaas_core::access::ApiToken;
use kaas_core::meta::API_VERSION;
use kaas_core::stack::{ClusterStack, PolicyFinding};
use kaas_core::tenant::Tenant;
use kaas_core::{Cluster, Event, Machine};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::access::MAX_KUBECONFIG_TTL;
use crate::{MAX_ARTIFACT_BYTES, MAX_BODY_BYTES};

/// A `$ref` to a schema of this document.
fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON response with `schema`.
fn json_body(what: &str, schema: Value) -> Value {
    json!({"description": what, "content": {"application/json": {"schema": schema}}})
}

/// An error response: the Error schema.
fn error(what: &str) -> Value {
    json_body(what, r("Error"))
}

/// A response without a body.
fn empty(what: &str) -> Value {
    json!({"description": what})
}

/// `{apiVersion, kind: <Kind>List, metadata, items}`; `metadata.continue` is set on a
/// page that more items follow (lists that page, see [`paging_params`]).
fn list_schema(item: Value, kind: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "items"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": format!("{kind}List")},
            "metadata": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "continue": {"type": "string", "minLength": 1, "description": "Set when more items follow: pass it as the `continue` parameter, with the same other parameters, for the next page"}
                }
            },
            "items": {"type": "array", "items": item},
        }
    })
}

/// `limit` and `continue` of the lists that page.
fn paging_params() -> [Value; 2] {
    [
        query_param(
            "limit",
            "At most this many items; when more follow, metadata.continue is set. Without it every item is answered in one page (kaas' own CLI asks for 500 at a time)",
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": u32::MAX}),
        ),
        query_param(
            "continue",
            "The metadata.continue of the page before, to get the next one; with other filters than that page's it is refused (400). Empty: from the start",
            json!({"type": "string"}),
        ),
    ]
}

/// The answer to a bad `limit` or `continue` (or `what` else).
fn bad_paging(what: &str) -> Value {
    error(&format!(
        "BadRequest: limit is not a number or a query parameter is unknown; or Invalid (the details name the parameter): limit is 0, continue is not a token of this listing{what}"
    ))
}

/// `response` with links to `operations`, each given `parameter` from `expression`.
fn linked(mut response: Value, parameter: &str, expression: &str, operations: &[&str]) -> Value {
    let links: Map<String, Value> = operations
        .iter()
        .map(|op| {
            (
                (*op).to_owned(),
                json!({"operationId": op, "parameters": {parameter: expression}}),
            )
        })
        .collect();
    response["links"] = Value::Object(links);
    response
}

/// A path parameter.
fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": schema, "description": description})
}

/// A query parameter.
fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// A JSON request body.
fn request_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// A DNS-1123 label, as names of clusters and tenants are.
fn dns_label() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"})
}

/// A duration such as `30s`, `10m`, `1h30m`, `7d`.
fn duration() -> Value {
    json!({"type": "string", "pattern": "^([0-9]+[smhd])+$"})
}

/// `since` and `limit` of the logs (events, audit).
fn log_params() -> [Value; 2] {
    [
        query_param(
            "since",
            "Only entries with a greater seq",
            json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}),
        ),
        query_param(
            "limit",
            "At most this many (default 500; taken as 1 to 5000)",
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": u32::MAX}),
        ),
    ]
}

/// A `/v1` operation: `op` (operationId, summary, parameters, requestBody) with the
/// `Kaas-Tenant` header and `responses` plus what the authentication may answer with.
/// A 404 of `responses` is also the answer to an unknown tenant in the header.
fn v1(mut op: Value, responses: Vec<(&str, Value)>) -> Value {
    let tenant_header = json!({"$ref": "#/components/parameters/KaasTenant"});
    match op["parameters"].as_array_mut() {
        Some(params) => params.push(tenant_header),
        None => op["parameters"] = json!([tenant_header]),
    }
    let mut all = Map::new();
    for (code, response) in responses {
        all.insert(code.to_owned(), response);
    }
    let common = [
        (
            "401",
            json!({
                "description": "No token, or one that is unknown, revoked, expired or malformed",
                "headers": {"WWW-Authenticate": {"required": true, "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": r("Error")}}
            }),
        ),
        (
            "403",
            error(
                "Forbidden: the caller's role is too low, or its Keystone project is bound to no tenant",
            ),
        ),
        (
            "404",
            error("The tenant the Kaas-Tenant header names does not exist"),
        ),
        ("503", error("Keystone cannot validate the token now")),
    ];
    for (code, response) in common {
        all.entry(code.to_owned()).or_insert(response);
    }
    op["responses"] = Value::Object(all);
    op
}

/// The schemas: derived from the resource model, then what handlers add by hand.
fn schemas() -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let cluster = generator.subschema_for::<Cluster>().to_value();
    let machine = generator.subschema_for::<Machine>().to_value();
    let event = generator.subschema_for::<Event>().to_value();
    let stack = generator.subschema_for::<ClusterStack>().to_value();
    let finding = generator.subschema_for::<PolicyFinding>().to_value();
    let tenant_spec = generator
        .subschema_for::<kaas_core::tenant::TenantSpec>()
        .to_value();
    generator.subschema_for::<Tenant>();
    let token = generator.subschema_for::<ApiToken>().to_value();
    let role = generator
        .subschema_for::<kaas_core::access::Role>()
        .to_value();
    let credential = generator
        .subschema_for::<kaas_core::registry::RegistryCredential>()
        .to_value();
    generator.subschema_for::<kaas_core::registry::RegistryRepository>();
    let access = generator
        .subschema_for::<kaas_core::registry::RegistryAccess>()
        .to_value();
    let mut schemas = generator.take_definitions(true);
    // What clients send is refused unless it says what it is.
    for kind in ["Cluster", "Tenant"] {
        if let Some(schema) = schemas.get_mut(kind) {
            schema["properties"]["apiVersion"]["const"] = json!(API_VERSION);
            schema["properties"]["kind"]["const"] = json!(kind);
        }
    }

    schemas.insert("ClusterList".into(), list_schema(cluster, "Cluster"));
    schemas.insert("MachineList".into(), list_schema(machine, "Machine"));
    schemas.insert("EventList".into(), list_schema(event, "Event"));

    // A stack as served: with what the SCS version policy says about it today.
    schemas.insert(
        "StackStatus".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["default", "policy"],
            "properties": {
            "default": {"type": "boolean", "description": "Whether clusters whose spec names no stack get this one (the server's --default-stack)"},
            "policy": {
                "type": "object",
                "additionalProperties": false,
                "required": ["compliant", "findings", "checkedOn", "releaseData"],
                "properties": {
                    "compliant": {"type": "boolean"},
                    "findings": {"type": "array", "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["finding", "message"],
                        "properties": {"finding": finding, "message": {"type": "string"}}
                    }},
                    "checkedOn": {"type": "string", "format": "date"},
                    "releaseData": {
                        "type": "object",
                        "additionalProperties": false,
                        "description": "The Kubernetes release data the verdict rests on: where it was taken from and on which day (both absent for data that does not say)",
                        "properties": {
                            "source": {"type": "string"},
                            "takenOn": {"type": "string", "format": "date"}
                        }
                    }
                }
            }}
        }),
    );
    // A spec without a stack gets the server's default, which is not a constant.
    if let Some(spec) = schemas.get_mut("ClusterSpec")
        && let Some(stack) = spec["properties"]["stack"].as_object_mut()
    {
        stack.remove("default");
        stack.insert(
                "description".into(),
                json!("The cluster stack (Kubernetes version, node image, addons), e.g. scs-1.36; by default the server's default stack (status.default in /v1/stacks)"),
            );
    }
    if let Some(stack) = schemas.get_mut("ClusterStack") {
        stack["properties"]["status"] = r("StackStatus");
        if let Some(required) = stack["required"].as_array_mut() {
            required.push(json!("status"));
        }
    }
    schemas.insert(
        "ClusterStackList".into(),
        list_schema(stack, "ClusterStack"),
    );

    // Tenants: `Tenant` is what clients send; the credentials are never returned, and
    // what is returned has a status.
    if let Some(spec) = schemas.get_mut("TenantSpec") {
        spec["properties"]["credentials"]["writeOnly"] = json!(true);
    }
    schemas.insert(
        "TenantWithStatus".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["apiVersion", "kind", "metadata", "spec", "status"],
            "properties": {
                "apiVersion": {"const": API_VERSION},
                "kind": {"const": "Tenant"},
                "metadata": r("ObjectMeta"),
                "spec": tenant_spec,
                "status": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["credentialsStored", "clusters"],
                    "properties": {
                        "credentialsStored": {"type": "boolean", "description": "Whether an application credential is stored for the tenant"},
                        "clusters": {"type": "integer", "minimum": 0, "description": "How many clusters the tenant has"}
                    }
                }
            }
        }),
    );
    schemas.insert(
        "TenantList".into(),
        list_schema(r("TenantWithStatus"), "Tenant"),
    );

    // Tokens: the hash of the secret is never shown; the token itself only once.
    if let Some(spec) = schemas.get_mut("ApiTokenSpec")
        && let Some(properties) = spec["properties"].as_object_mut()
    {
        properties.remove("secretSha256");
    }
    let mut created = schemas.get("ApiToken").cloned().unwrap_or_default();
    created["properties"]["token"] = json!({
        "type": "string",
        "pattern": "^kaas_[a-z0-9-]+_[a-z0-9]+_[A-Za-z0-9_-]+$",
        "description": "The token (`kaas_<tenant>_<id>_<secret>`): shown only in this answer"
    });
    if let Some(required) = created["required"].as_array_mut() {
        required.push(json!("token"));
    }
    schemas.insert("ApiTokenCreated".into(), created);
    schemas.insert("ApiTokenList".into(), list_schema(token, "ApiToken"));
    schemas.insert(
        "TokenRequest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["role"],
            "properties": {
                "tenant": {"type": ["string", "null"], "description": "The tenant (default: the caller's); another tenant's only for the operator"},
                "role": role,
                "description": {"type": "string", "maxLength": 256},
                "ttl": {"anyOf": [duration(), {"type": "null"}], "description": "How long the token is valid, 1m to 366d; default: until revoked"}
            }
        }),
    );

    registry_schemas(&mut schemas, credential, access);

    schemas.insert(
        "AuditEntryList".into(),
        list_schema(
            json!({
                "type": "object",
                "required": ["seq", "at", "who", "tenant", "method", "path", "status", "result"],
                "properties": {
                    "seq": {"type": "integer", "description": "Position in the audit log; increases over time"},
                    "at": {"type": "string", "format": "date-time"},
                    "who": {"type": "string", "description": "admin, token:<id>, keystone:<user>, or anonymous"},
                    "tenant": {"type": "string", "description": "Empty for an anonymous caller"},
                    "method": {"type": "string"},
                    "path": {"type": "string"},
                    "status": {"type": "integer"},
                    "result": {"enum": ["success", "unauthenticated", "forbidden", "refused", "error"]}
                }
            }),
            "AuditEntry",
        ),
    );

    let named = |entry: &str, properties: Value| {
        let keys: Vec<&String> = properties
            .as_object()
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        json!({"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["name", entry],
            "properties": {"name": {"type": "string"}, entry: {"type": "object", "required": keys, "properties": properties}}
        }})
    };
    let text = json!({"type": "string", "minLength": 1});
    schemas.insert(
        "Kubeconfig".into(),
        json!({
            "type": "object",
            "description": "A kubeconfig (YAML) with one cluster, one user with a client certificate, and one context",
            "required": ["apiVersion", "kind", "clusters", "users", "contexts", "current-context"],
            "properties": {
                "apiVersion": {"const": "v1"},
                "kind": {"const": "Config"},
                "clusters": named("cluster", json!({"server": text, "certificate-authority-data": text})),
                "users": named("user", json!({"client-certificate-data": text, "client-key-data": text})),
                "contexts": named("context", json!({"cluster": text, "user": text})),
                "current-context": text
            }
        }),
    );

    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "Invalid, BadRequest, Unauthorized, Forbidden, QuotaExceeded, NotFound, MethodNotAllowed, Conflict, AlreadyExists, PayloadTooLarge, DigestMismatch, ArtifactUnacceptable, ArtifactUnavailable, Unavailable, Internal"},
                "message": {"type": "string"},
                "details": {"description": "For Invalid: the fields and reasons; for ArtifactUnacceptable and ArtifactUnavailable: each artifact (its reference as the field) and why", "type": ["array", "null"], "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["field", "reason"],
                    "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}
                }}
            }
        }),
    );
    let rate = json!({"type": "number", "minimum": 0.0, "maximum": 1.0});
    schemas.insert(
        "SimFaults".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "Probabilities of injected faults in the simulated cloud; an omitted one is 0",
            "properties": {
                "apiErrors": rate, "timeouts": rate, "quotaErrors": rate,
                "serverErrors": rate, "stuckLoadBalancers": rate
            }
        }),
    );
    let maybe_bool = json!({"type": ["boolean", "null"]});
    schemas.insert(
        "SimNodeChange".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "What to change; an omitted or null field stays as it is",
            "properties": {"ready": maybe_bool, "drainBlocked": maybe_bool}
        }),
    );
    schemas.insert(
        "SimNode".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "ready", "drainBlocked"],
            "properties": {"name": {"type": "string"}, "ready": maybe_bool, "drainBlocked": maybe_bool}
        }),
    );
    let flavor = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "name", "vcpus", "ramMiB", "diskGiB"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "vcpus": {"type": "integer", "minimum": 0},
            "ramMiB": {"type": "integer", "minimum": 0},
            "diskGiB": {"type": "integer", "minimum": 0, "description": "The root disk; 0: the server boots from a volume"}
        }
    });
    schemas.insert("FlavorList".into(), list_schema(flavor, "Flavor"));
    let artifact_digest = json!({"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"});
    let stored_artifact = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["digest", "kind", "reference", "size", "createdAt"],
        "properties": {
            "digest": artifact_digest,
            "kind": {"enum": ["oci-manifest", "oci-config", "chart", "manifest"]},
            "reference": {"type": "string", "description": "Where it came from, for people"},
            "size": {"type": "integer", "minimum": 0},
            "createdAt": {"type": "string", "format": "date-time"}
        }
    });
    schemas.insert("StoredArtifact".into(), stored_artifact);
    schemas.insert(
        "ArtifactList".into(),
        list_schema(r("StoredArtifact"), "Artifact"),
    );
    schemas.insert(
        "StackPull".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["apiVersion", "kind", "stack", "items"],
            "properties": {
                "apiVersion": {"const": API_VERSION},
                "kind": {"const": "StackPull"},
                "stack": {"type": "string"},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["addon", "kind", "reference", "digest", "status"],
                    "properties": {
                        "addon": {"type": "string"},
                        "kind": {"enum": ["chart-oci", "chart-repo", "manifest"]},
                        "reference": {"type": "string"},
                        "digest": artifact_digest,
                        "status": {"enum": ["cached", "fetched"], "description": "cached: the store had it; fetched: got now"},
                        "source": {"type": "string", "description": "Where it was got: a mirror or upstream"}
                    }
                }}
            }
        }),
    );
    schemas.insert(
        "Info".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["version", "cloud", "simulated"],
            "properties": {"version": {"type": "string"}, "cloud": {"enum": ["sim", "openstack"]}, "simulated": {"type": "boolean"}}
        }),
    );
    schemas.insert(
        "Inventory".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["kind", "id", "name", "tags", "status"],
                "properties": {
                    "kind": {"type": "string"},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "status": {"enum": ["PENDING", "ACTIVE", "DELETING", "ERROR"]},
                    "address": {"type": "string", "description": "A server's fixed IP, a load balancer's VIP, a floating IP's address"}
                }
            }}}
        }),
    );
    schemas
}

/// The artifact operations (kept apart: one `json!` for the whole document would be too
/// deep for the macro).
/// The registry's schemas: credentials as shown (never a hash; the secret only when
/// made or rotated), requests, repositories, and the token endpoint's answers.
fn registry_schemas(schemas: &mut Map<String, Value>, credential: Value, access: Value) {
    for name in ["RegistryCredentialSpec", "PreviousSecret"] {
        if let Some(spec) = schemas.get_mut(name) {
            if let Some(properties) = spec["properties"].as_object_mut() {
                properties.remove("secretSha256");
            }
            if let Some(required) = spec["required"].as_array_mut() {
                required.retain(|r| r != "secretSha256");
            }
        }
    }
    if let Some(c) = schemas.get_mut("RegistryCredential") {
        c["properties"]["username"] = json!({"type": "string", "description": "The user name clients log in with: <tenant>+<name>"});
        if let Some(required) = c["required"].as_array_mut() {
            required.push(json!("username"));
        }
    }
    let mut with_secret = schemas
        .get("RegistryCredential")
        .cloned()
        .unwrap_or_default();
    with_secret["properties"]["secret"] = json!({"type": "string", "description": "The secret (the password): shown only in this answer"});
    if let Some(required) = with_secret["required"].as_array_mut() {
        required.push(json!("secret"));
    }
    schemas.insert("RegistryCredentialWithSecret".into(), with_secret);
    schemas.insert(
        "RegistryCredentialList".into(),
        list_schema(credential, "RegistryCredential"),
    );
    schemas.insert(
        "RegistryCredentialRequest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "access"],
            "properties": {
                "name": dns_label(),
                "access": access,
                "description": {"type": "string", "maxLength": 256},
                "ttl": {"anyOf": [duration(), {"type": "null"}], "description": "How long it is valid, 1m to 1098d; default: until revoked"}
            }
        }),
    );
    schemas.insert(
        "RotateRequest".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "overlap": {"anyOf": [duration(), {"type": "null"}], "description": "How long the secret before still works (default 24h, at most 30d)"}
            }
        }),
    );
    schemas.insert(
        "RegistryRepositoryList".into(),
        list_schema(
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "tags", "public"],
                "properties": {
                    "name": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "public": {"type": "boolean"}
                }
            }),
            "RegistryRepository",
        ),
    );
    schemas.insert(
        "RegistryRepositoryTags".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["apiVersion", "kind", "name", "public", "tags"],
            "properties": {
                "apiVersion": {"const": API_VERSION},
                "kind": {"const": "RegistryRepositoryTags"},
                "name": {"type": "string"},
                "public": {"type": "boolean"},
                "tags": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["tag", "digest", "mediaType", "size"],
                    "properties": {
                        "tag": {"type": "string"},
                        "digest": {"type": "string"},
                        "mediaType": {"type": "string"},
                        "size": {"type": "integer", "minimum": 0, "description": "Bytes of the manifest, its config and layers"}
                    }
                }}
            }
        }),
    );
    schemas.insert(
        "RegistryToken".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["token", "access_token", "expires_in", "issued_at"],
            "properties": {
                "token": {"type": "string", "description": "An ES256 JWT whose x5c chains to the token CA the registry trusts"},
                "access_token": {"type": "string"},
                "expires_in": {"type": "integer", "minimum": 1},
                "issued_at": {"type": "string", "format": "date-time"}
            }
        }),
    );
    let mut refusal = schemas.get("Error").cloned().unwrap_or_default();
    refusal["properties"]["errors"] = json!({"type": "array", "items": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}
    }});
    schemas.insert("RegistryTokenError".into(), refusal);
}

/// The registry's paths: the token endpoint (outside `/v1`, as registry clients call
/// it) and `/v1/registry/…`.
fn registry_paths() -> Value {
    let too_large = error(&format!("The body is larger than {MAX_BODY_BYTES} bytes"));
    let no_registry = "this kaas has no registry";
    let repository = path_param(
        "repository",
        "A repository of the tenant, <tenant>/<name>, its '/' escaped as %2F",
        json!({"type": "string"}),
    );
    json!({
        "/v2/token": {"get": {
            "operationId": "registryToken",
            "summary": "A token for the registry (the Docker registry token protocol): Basic credentials of a robot credential (<tenant>+<name>) or any user name with a kaas token as password, or none (anonymous); each scope is granted what the caller may do of it",
            "security": [],
            "parameters": [
                query_param("service", "The registry's service name", json!({"type": "string"})),
                {"name": "scope", "in": "query", "required": false, "description": "repository:<name>:<actions> or registry:catalog:*; repeatable",
                 "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": true},
                query_param("account", "The user name (ignored: the credentials say)", json!({"type": "string"}))
            ],
            "responses": {
                "200": json_body("The token", r("RegistryToken")),
                "400": error("BadRequest: another registry's service, or too many scopes"),
                "401": {
                    "description": "The credentials are not valid (unknown, revoked, expired, wrong secret, or their cluster is deleted)",
                    "headers": {"WWW-Authenticate": {"required": true, "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": r("RegistryTokenError")}}
                },
                "403": error("Forbidden: the Keystone project is bound to no tenant"),
                "404": error(no_registry),
                "503": error("Keystone cannot validate the token now")
            }
        }},
        "/v1/registry/credentials": {
            "get": v1(
                json!({"operationId": "listRegistryCredentials", "summary": "The tenant's registry credentials, without their secrets, by name",
                       "parameters": paging_params()}),
                vec![("200", json_body("Credentials", r("RegistryCredentialList"))), ("400", bad_paging(""))]
            ),
            "post": v1(
                json!({"operationId": "createRegistryCredential",
                       "summary": "Make a robot credential (editor); the answer is the only place its secret is shown",
                       "requestBody": request_body(r("RegistryCredentialRequest"))}),
                vec![
                    ("201", linked(json_body("Created", r("RegistryCredentialWithSecret")), "name", "$response.body#/metadata/name", &["revokeRegistryCredential", "rotateRegistryCredential"])),
                    ("400", error("Invalid: the details name the field and reason")),
                    ("409", error("AlreadyExists: a credential of that name")),
                    ("413", too_large.clone()),
                ]
            )
        },
        "/v1/registry/credentials/{name}": {
            "parameters": [path_param("name", "The credential's name", json!({"type": "string"}))],
            "delete": v1(
                json!({"operationId": "revokeRegistryCredential", "summary": "Revoke a credential (editor): refused from now on"}),
                vec![
                    ("204", empty("Revoked")),
                    ("400", error("The path is not valid")),
                    ("404", error("No such credential in the tenant")),
                    ("409", error("Conflict: a cluster's own credential (kaas renews it)")),
                ]
            )
        },
        "/v1/registry/credentials/{name}/rotate": {
            "parameters": [path_param("name", "The credential's name", json!({"type": "string"}))],
            "post": v1(
                json!({"operationId": "rotateRegistryCredential",
                       "summary": "A new secret (editor); the one before still works for the overlap",
                       "requestBody": {"required": false, "content": {"application/json": {"schema": r("RotateRequest")}}}}),
                vec![
                    ("200", json_body("Rotated", r("RegistryCredentialWithSecret"))),
                    ("400", error("Invalid: the overlap")),
                    ("404", error("No such credential in the tenant")),
                    ("409", error("Conflict: a cluster's own credential, an expired one, or changed meanwhile")),
                    ("413", too_large.clone()),
                ]
            )
        },
        "/v1/registry/repositories": {"get": v1(
            json!({"operationId": "listRegistryRepositories", "summary": "The tenant's repositories with their tags"}),
            vec![
                ("200", json_body("Repositories", r("RegistryRepositoryList"))),
                ("404", error(no_registry)),
                ("502", error("RegistryUnavailable: the registry cannot be reached or refused, with its own message")),
            ]
        )},
        "/v1/registry/repositories/{repository}": {
            "parameters": [repository.clone()],
            "get": v1(
                json!({"operationId": "getRegistryRepository", "summary": "A repository's tags with digests and sizes"}),
                vec![
                    ("200", json_body("Tags", r("RegistryRepositoryTags"))),
                    ("400", error("Invalid: not a repository name")),
                    ("404", error("Not a repository of the tenant, or no registry")),
                    ("502", error("RegistryUnavailable: the registry cannot be reached or refused, with its own message")),
                ]
            ),
            "put": v1(
                json!({"operationId": "setRegistryRepository", "summary": "Make a repository public (anyone pulls it) or private (editor)",
                       "requestBody": request_body(r("RegistryRepositorySpec"))}),
                vec![
                    ("200", json_body("The repository's settings", r("RegistryRepository"))),
                    ("400", error("Invalid: not a repository name, or the body")),
                    ("404", error("Not a repository of the tenant, or no registry")),
                    ("409", error("Conflict: changed meanwhile")),
                    ("413", too_large),
                ]
            )
        },
        "/v1/registry/repositories/{repository}/tags/{tag}": {
            "parameters": [repository, path_param("tag", "The tag", json!({"type": "string"}))],
            "delete": v1(
                json!({"operationId": "deleteRegistryTag", "summary": "Delete a tag's manifest, and so every tag pointing at it (editor)"}),
                vec![
                    ("204", empty("Deleted")),
                    ("400", error("Invalid: not a repository name or tag")),
                    ("404", error("No such tag, not a repository of the tenant, or no registry")),
                    ("502", error("RegistryUnavailable: the registry cannot be reached or refused, with its own message")),
                ]
            )
        }
    })
}

fn artifact_paths() -> Value {
    let bad_path = || error("The path is not valid (not UTF-8 once decoded)");
    json!({
            "/v1/stacks/{name}/pull": {
                "parameters": [path_param("name", "The stack's name, e.g. scs-1.35", json!({"type": "string"}))],
                "post": v1(
                    json!({"operationId": "pullStack",
                           "summary": "Have the server get every upstream artifact of the stack (the operator's mirrors first, then upstream), each checked against its pinned digest, and cache it; those cached already are not got again (the operator)"}),
                    vec![
                        ("200", json_body("Each artifact, cached or fetched", r("StackPull"))),
                        ("400", bad_path()),
                        ("403", error("Forbidden: only the operator")),
                        ("404", error("No such stack")),
                        ("422", error("ArtifactUnacceptable: an artifact was got but is not the pinned one (digest mismatch) or not valid; details name each artifact and why")),
                        ("502", error("ArtifactUnavailable: an artifact cannot be got from any source (not found, unreachable, refused, too large); details name each artifact and why")),
                    ]
                )
            },
            "/v1/artifacts": {"get": v1(
                json!({"operationId": "listArtifacts", "summary": "The cached artifacts, by digest, without their bytes (the operator)"}),
                vec![
                    ("200", json_body("Artifacts", r("ArtifactList"))),
                    ("403", error("Forbidden: only the operator")),
                ]
            )},
            "/v1/artifacts/{digest}": {
                "parameters": [path_param("digest", "The sha256 of the body", json!({"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}))],
                "get": v1(
                    json!({"operationId": "getArtifact",
                           "summary": "A cached artifact's bytes (a chart's .tgz, a manifest): public releases, for anyone signed in"}),
                    vec![
                        ("200", json!({"description": "The bytes", "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}})),
                        ("400", error("BadRequest: the digest is not sha256:<64 hex digits>")),
                        ("404", error("Not cached")),
                    ]
                ),
                "put": v1(
                    json!({"operationId": "putArtifact",
                           "summary": "Upload an artifact (a cloud without internet: `kaas stack import`); the server checks the body against the digest and keeps it (the operator)",
                           "parameters": [
                               {"name": "kind", "in": "query", "required": true, "description": "What the bytes are",
                                "schema": {"enum": ["oci-manifest", "oci-config", "chart", "manifest"]}},
                               query_param("reference", "Where the bytes came from, for people (at most 1024 characters, no control characters)", json!({"type": "string", "maxLength": 1024, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}))
                           ],
                           "requestBody": {"required": true, "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}}}),
                    vec![
                        ("200", json_body("Stored (or stored already)", r("StoredArtifact"))),
                        ("400", error("BadRequest: the digest is not sha256:<64 hex digits>, or kind or reference is not valid")),
                        ("403", error("Forbidden: only the operator")),
                        ("413", error(&format!("The body is larger than {MAX_ARTIFACT_BYTES} bytes"))),
                        ("422", error("DigestMismatch: the body's digest is not the one in the path; the message names both")),
                    ]
                )
            }
    })
}

pub fn document() -> Value {
    let schemas = schemas();
    let too_large = format!("The body is larger than {MAX_BODY_BYTES} bytes");
    let too_large = error(&too_large);
    let cluster_name = path_param("name", "The cluster's name", dns_label());
    let tenant_name = path_param("name", "The tenant's name", dns_label());
    let bad_path = || error("The path is not valid (not UTF-8 once decoded)");
    let max_ttl_days = MAX_KUBECONFIG_TTL.as_secs() / 86_400;
    let paging = paging_params();

    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kaas",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kubernetes-as-a-Service for OpenStack clouds. Every /v1 call needs a token: `Authorization: Bearer TOKEN` (the operator's bootstrap token, or an API token made with POST /v1/tokens), or on a server with Keystone a Keystone token (`X-Auth-Token`). The operator acts in the tenant the `Kaas-Tenant` header names. Errors are `{code, message, details}`."
        },
        "components": {
            "schemas": schemas,
            "parameters": {
                "KaasTenant": {
                    "name": "Kaas-Tenant", "in": "header", "required": false,
                    "schema": {"type": "string"},
                    "description": "The operator only: the tenant to act in (default `default`); one that does not exist is 404. Other callers act in their token's tenant, whatever this says."
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "The operator's bootstrap token (`<data-dir>/admin.token`) or an API token `kaas_<tenant>_<id>_<secret>`; on a server with Keystone also a Keystone token"},
                "keystone": {"type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "A Keystone token of a project bound to a tenant (servers with Keystone only); its roles give admin, editor (member) or viewer (reader)"}
            }
        },
        "security": [{"bearer": []}, {"keystone": []}],
        "paths": {
            "/v1/info": {"get": v1(
                json!({"operationId": "getInfo", "summary": "What this server runs on"}),
                vec![("200", json_body("Server information", r("Info")))]
            )},
            "/v1/clusters": {
                "get": v1(
                    json!({"operationId": "listClusters",
                           "summary": "The caller's tenant's clusters (viewer); the operator's, with allTenants, every tenant's",
                           "description": "Ordered by tenant, then name. Filtered by labelSelector and phase, and paged by limit and continue, in the store's query.",
                           "parameters": [query_param("allTenants",
                               "The operator only: list every tenant's clusters (ordered by tenant, then name; each names its tenant in metadata.tenant) instead of the tenant acted in; anyone else asking is refused with 403",
                               json!({"type": "boolean", "default": false})),
                               query_param("labelSelector",
                                   "Only clusters whose labels satisfy this Kubernetes label selector: requirements separated by commas, each k=v, k==v, k!=v (or without the label), k in (a,b), k notin (a,b) (or without the label), k (has it) or !k (has it not)",
                                   json!({"type": "string", "maxLength": 4096})),
                               query_param("phase", "Only clusters in this phase", r("ClusterPhase")),
                               paging[0].clone(), paging[1].clone()]}),
                    vec![
                        ("200", json_body("The clusters", r("ClusterList"))),
                        ("400", bad_paging(", labelSelector is not a selector, phase is not a phase; or allTenants is not true or false")),
                        ("403", error("Forbidden: the role is too low, or allTenants asked for by another than the operator")),
                    ]
                ),
                "post": v1(
                    json!({"operationId": "createCluster", "summary": "Create a cluster (editor); kaas provisions it from then on",
                           "requestBody": request_body(r("Cluster"))}),
                    vec![
                        ("201", linked(json_body("Created", r("Cluster")), "name", "$response.body#/metadata/name",
                            &["getCluster", "replaceCluster", "deleteCluster", "listClusterEvents", "listClusterMachines", "getClusterKubeconfig"])),
                        ("400", error("Invalid: the details name each field and reason")),
                        ("403", error("Forbidden (the role is too low), or QuotaExceeded: the message names the quota")),
                        ("503", error("Unavailable: Keystone cannot validate the token now, or the tenant's cloud cannot say which flavors it offers")),
                        ("409", error("AlreadyExists: a cluster of that name exists; or Conflict: the tenant's cloud refuses its setup (a project bound without a usable application credential)")),
                        ("413", too_large.clone()),
                    ]
                )
            },
            "/v1/clusters/{name}": {
                "parameters": [cluster_name],
                "get": v1(
                    json!({"operationId": "getCluster", "summary": "A cluster with its status (viewer)"}),
                    vec![
                        ("200", json_body("The cluster", r("Cluster"))),
                        ("400", bad_path()),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                    ]
                ),
                "put": v1(
                    json!({"operationId": "replaceCluster",
                           "summary": "Replace a cluster's spec and labels (editor); status and other metadata are ignored; a non-empty metadata.resourceVersion must be current",
                           "requestBody": request_body(r("Cluster"))}),
                    vec![
                        ("200", json_body("Updated", r("Cluster"))),
                        ("400", error("Invalid: the details name each field and reason")),
                        ("403", error("Forbidden (the role is too low), or QuotaExceeded: the message names the quota")),
                        ("503", error("Unavailable: Keystone cannot validate the token now, or the tenant's cloud cannot say which flavors it offers")),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                        ("409", error("Conflict: a stale resourceVersion, the cluster is being deleted, or the tenant's cloud refuses its setup")),
                        ("413", too_large.clone()),
                    ]
                ),
                "delete": v1(
                    json!({"operationId": "deleteCluster", "summary": "Delete a cluster and every cloud resource it has (editor)"}),
                    vec![
                        ("202", json_body("Deletion started; the cluster as it is now", r("Cluster"))),
                        ("204", empty("Deleted")),
                        ("400", bad_path()),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/clusters/{name}/events": {
                "parameters": [cluster_name],
                "get": v1(
                    json!({"operationId": "listClusterEvents", "summary": "The cluster's events, oldest first (viewer)",
                           "parameters": log_params()}),
                    vec![
                        ("200", json_body("Events", r("EventList"))),
                        ("400", error("BadRequest: a query parameter is not a number, or unknown; or the path is not valid")),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/clusters/{name}/machines": {
                "parameters": [cluster_name],
                "get": v1(
                    json!({"operationId": "listClusterMachines", "summary": "The cluster's machines, by name (viewer)",
                           "parameters": paging_params()}),
                    vec![
                        ("200", {
                            let mut machines = json_body("Machines", r("MachineList"));
                            machines["links"] = json!({"getMachineUserData": {"operationId": "getMachineUserData", "parameters": {
                                "name": "$request.path.name", "machine": "$response.body#/items/0/metadata/name"
                            }}});
                            machines
                        }),
                        ("400", bad_paging("; or the path is not valid")),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/clusters/{name}/kubeconfig": {
                "parameters": [cluster_name],
                "get": v1(
                    json!({"operationId": "getClusterKubeconfig",
                           "summary": "An admin kubeconfig with a short-lived client certificate (group kubeadm:cluster-admins) signed by the cluster's CA (editor)",
                           "parameters": [query_param("ttl", &format!("Validity of the client certificate: 1m to {max_ttl_days}d (default 24h)"), duration())]}),
                    vec![
                        ("200", json!({"description": "The kubeconfig", "content": {"application/yaml": {"schema": r("Kubeconfig")}}})),
                        ("400", error("Invalid ttl, an unknown query parameter, or a path that is not valid")),
                        ("404", error("No such cluster (or no such tenant in the Kaas-Tenant header)")),
                        ("409", error("The cluster has no API endpoint or certificate authority yet")),
                        ("503", error("Unavailable: Keystone cannot validate the token now, or the cluster's API cannot be reached now")),
                    ]
                )
            },
            "/v1/clusters/{name}/machines/{machine}/user-data": {
                "parameters": [cluster_name, path_param("machine", "The machine's name", json!({"type": "string"}))],
                "get": v1(
                    json!({"operationId": "getMachineUserData",
                           "summary": "The user data the machine's server was created with: what cloud-init reads, gzip when it had to be compressed (admin: it holds keys)"}),
                    vec![
                        ("200", json!({"description": "The user data", "content": {
                            "text/cloud-config": {"schema": {"type": "string"}},
                            "application/gzip": {"schema": {"type": "string", "contentMediaType": "application/gzip"}}
                        }})),
                        ("400", bad_path()),
                        ("404", error("No such cluster or machine, or no user data yet (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/flavors": {"get": v1(
                json!({"operationId": "listFlavors",
                       "summary": "The flavors the caller's tenant's cloud offers, smallest first (viewer): what machines are made of and vCPU quotas are counted in"}),
                vec![
                    ("200", json_body("Flavors", r("FlavorList"))),
                    ("409", error("Conflict: the tenant's cloud refuses its setup (a project bound without a usable application credential)")),
                    ("503", error("Unavailable: Keystone cannot validate the token now, or the tenant's cloud cannot say which flavors it offers")),
                ]
            )},
            "/v1/stacks": {"get": v1(
                json!({"operationId": "listStacks",
                       "summary": "The cluster stacks, each with status.policy: what the SCS version policy says about it today"}),
                vec![("200", json_body("Stacks", r("ClusterStackList")))]
            )},
            "/v1/stacks/{name}": {
                "parameters": [path_param("name", "The stack's name, e.g. scs-1.35", json!({"type": "string"}))],
                "get": v1(
                    json!({"operationId": "getStack", "summary": "One cluster stack"}),
                    vec![
                        ("200", json_body("The stack", r("ClusterStack"))),
                        ("400", bad_path()),
                        ("404", error("No such stack (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/tenants": {
                "get": v1(
                    json!({"operationId": "listTenants", "summary": "Every tenant (the operator), or the caller's own, by name",
                           "parameters": paging_params()}),
                    vec![("200", json_body("Tenants", r("TenantList"))), ("400", bad_paging(""))]
                ),
                "post": v1(
                    json!({"operationId": "createTenant",
                           "summary": "Create a tenant (the operator); its application credential, if given, is sealed and never returned",
                           "requestBody": request_body(r("Tenant"))}),
                    vec![
                        ("201", linked(json_body("Created", r("TenantWithStatus")), "name", "$response.body#/metadata/name",
                            &["getTenant", "replaceTenant", "deleteTenant"])),
                        ("400", error("Invalid: the details name each field and reason")),
                        ("403", error("Forbidden: only the operator manages tenants")),
                        ("409", error("AlreadyExists: a tenant of that name exists")),
                        ("413", too_large.clone()),
                    ]
                )
            },
            "/v1/tenants/{name}": {
                "parameters": [tenant_name],
                "get": v1(
                    json!({"operationId": "getTenant", "summary": "A tenant (the operator any, others their own)"}),
                    vec![
                        ("200", json_body("The tenant", r("TenantWithStatus"))),
                        ("400", bad_path()),
                        ("404", error("No such tenant (or not the caller's)")),
                    ]
                ),
                "put": v1(
                    json!({"operationId": "replaceTenant",
                           "summary": "Replace a tenant's spec (the operator); credentials given replace the stored ones",
                           "requestBody": request_body(r("Tenant"))}),
                    vec![
                        ("200", json_body("Updated", r("TenantWithStatus"))),
                        ("400", error("Invalid: the details name each field and reason")),
                        ("403", error("Forbidden: only the operator manages tenants")),
                        ("404", error("No such tenant")),
                        ("409", error("Conflict: changed by someone else meanwhile")),
                        ("413", too_large.clone()),
                    ]
                ),
                "delete": v1(
                    json!({"operationId": "deleteTenant",
                           "summary": "Delete a tenant with its tokens and secrets (the operator); it must have no clusters"}),
                    vec![
                        ("204", empty("Deleted")),
                        ("400", bad_path()),
                        ("403", error("Forbidden: only the operator manages tenants")),
                        ("404", error("No such tenant")),
                        ("409", error("Conflict: the default tenant, or one that still has clusters")),
                    ]
                )
            },
            "/v1/tokens": {
                "get": v1(
                    json!({"operationId": "listTokens", "summary": "The tenant's API tokens, without their secrets, by id (admin)",
                           "parameters": paging_params()}),
                    vec![("200", json_body("Tokens", r("ApiTokenList"))), ("400", bad_paging(""))]
                ),
                "post": v1(
                    json!({"operationId": "createToken",
                           "summary": "Make an API token (admin; never with a higher role than the caller's); the answer is the only place the token is shown",
                           "requestBody": request_body(r("TokenRequest"))}),
                    vec![
                        ("201", linked(json_body("Created", r("ApiTokenCreated")), "id", "$response.body#/metadata/name", &["revokeToken"])),
                        ("400", error("Invalid: the details name the field and reason (also: no such tenant)")),
                        ("403", error("Forbidden: the role is too low, or the token would have more rights than the caller")),
                        ("404", error("The tenant in the body is not the caller's (or no such tenant in the Kaas-Tenant header)")),
                        ("413", too_large.clone()),
                    ]
                )
            },
            "/v1/tokens/{id}": {
                "parameters": [path_param("id", "The token's id", json!({"type": "string"}))],
                "delete": v1(
                    json!({"operationId": "revokeToken", "summary": "Revoke an API token of the tenant (admin)"}),
                    vec![
                        ("204", empty("Revoked")),
                        ("400", bad_path()),
                        ("404", error("No such token in the tenant (or no such tenant in the Kaas-Tenant header)")),
                    ]
                )
            },
            "/v1/audit": {"get": v1(
                json!({"operationId": "listAudit",
                       "summary": "The audit log, oldest first: every mutating request (admin: the tenant's; the operator: every tenant's)",
                       "parameters": [
                           log_params()[0].clone(), log_params()[1].clone(),
                           query_param("tenant", "Only this tenant's entries (another tenant's only for the operator)", json!({"type": "string"}))
                       ]}),
                vec![
                    ("200", json_body("Audit entries", r("AuditEntryList"))),
                    ("400", error("BadRequest: a query parameter is not a number, or unknown")),
                    ("403", error("Forbidden: the role is too low, or another tenant's log")),
                ]
            )},
            "/v1/sim/inventory": {"get": v1(
                json!({"operationId": "getSimInventory", "summary": "Every resource of the simulated cloud (the operator)"}),
                vec![
                    ("200", json_body("Resources", r("Inventory"))),
                    ("403", error("Forbidden: only the operator")),
                    ("404", error("The server does not run the simulated cloud")),
                ]
            )},
            "/v1/sim/faults": {
                "get": v1(
                    json!({"operationId": "getSimFaults", "summary": "The simulated cloud's fault rates (the operator)"}),
                    vec![
                        ("200", json_body("Rates", r("SimFaults"))),
                        ("403", error("Forbidden: only the operator")),
                        ("404", error("The server does not run the simulated cloud")),
                    ]
                ),
                "put": v1(
                    json!({"operationId": "setSimFaults", "summary": "Set the simulated cloud's fault rates, each 0 to 1 (the operator)",
                           "requestBody": request_body(r("SimFaults"))}),
                    vec![
                        ("200", json_body("The rates now", r("SimFaults"))),
                        ("400", error("Invalid: the details name the rate")),
                        ("403", error("Forbidden: only the operator")),
                        ("404", error("The server does not run the simulated cloud")),
                        ("413", too_large.clone()),
                    ]
                )
            },
            "/v1/sim/nodes/{name}": {
                "parameters": [path_param("name", "A node of a simulated workload cluster", json!({"type": "string"}))],
                "put": v1(
                    json!({"operationId": "setSimNode", "summary": "Make a simulated node Ready or NotReady, or block its drain (the operator)",
                           "requestBody": request_body(r("SimNodeChange"))}),
                    vec![
                        ("200", json_body("Done", r("SimNode"))),
                        ("400", error("Invalid body, or a path that is not valid")),
                        ("403", error("Forbidden: only the operator")),
                        ("404", error("No such node, or not the simulated cloud")),
                        ("413", too_large),
                    ]
                )
            },
            "/healthz": {"get": {"operationId": "healthz", "security": [], "responses": {
                "200": {"description": "The process runs", "content": {"text/plain": {"schema": {"const": "ok"}}}}
            }}},
            "/readyz": {"get": {"operationId": "readyz", "security": [], "responses": {
                "200": {"description": "Ready", "content": {"text/plain": {"schema": {"const": "ok"}}}},
                "503": {"description": "The store does not answer", "content": {"text/plain": {"schema": {"type": "string"}}}}
            }}},
            "/metrics": {"get": {"operationId": "metrics", "security": [], "responses": {
                "200": {"description": "Prometheus metrics (OpenMetrics text)", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}
            }}},
            "/openapi.json": {"get": {"operationId": "openapi", "security": [], "responses": {
                "200": {"description": "This document", "content": {"application/json": {"schema": {"type": "object"}}}}
            }}}
        }
    });
    for more in [artifact_paths(), registry_paths()] {
        if let (Some(paths), Value::Object(more)) = (document["paths"].as_object_mut(), more) {
            paths.extend(more);
        }
    }
    document
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every `$ref` of the document points at something in it.
    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = &piece[..piece.find('"').unwrap()];
            assert!(
                doc.pointer(&format!("/{pointer}")).is_some(),
                "dangling $ref #/{pointer}"
            );
        }
    }

    /// Every operation says what its errors look like, and every `/v1` one what the
    /// authentication answers.
    #[test]
    fn every_operation_documents_its_errors() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path}: no success"
                );
                if path.starts_with("/v1/") {
                    for code in ["401", "403", "404", "503"] {
                        assert!(responses.contains_key(code), "{method} {path}: no {code}");
                    }
                    if op.get("requestBody").is_some() {
                        for code in ["400", "413"] {
                            assert!(responses.contains_key(code), "{method} {path}: no {code}");
                        }
                    }
                }
            }
        }
    }

    /// The operator's view across tenants is described where clients look for it.
    #[test]
    fn listing_clusters_describes_all_tenants() {
        let doc = document();
        let op = &doc["paths"]["/v1/clusters"]["get"];
        let param = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "allTenants")
            .unwrap_or_else(|| panic!("no allTenants parameter: {op}"));
        assert_eq!(param["in"], "query");
        assert_eq!(param["schema"]["type"], "boolean");
        assert!(op["responses"]["400"].is_object(), "{op}");
        assert!(
            op["responses"]["403"]["description"]
                .as_str()
                .unwrap()
                .contains("allTenants"),
            "{op}"
        );
    }

    /// Every list of stored objects pages, says so, and documents the refusal of a bad
    /// limit or continue token; each list schema has the continue field.
    #[test]
    fn lists_of_objects_page() {
        let doc = document();
        for (path, op) in [
            ("/v1/clusters", "listClusters"),
            ("/v1/clusters/{name}/machines", "listClusterMachines"),
            ("/v1/tenants", "listTenants"),
            ("/v1/tokens", "listTokens"),
            ("/v1/registry/credentials", "listRegistryCredentials"),
        ] {
            let get = &doc["paths"][path]["get"];
            assert_eq!(get["operationId"], op);
            let names: Vec<&str> = get["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(
                names.contains(&"limit") && names.contains(&"continue"),
                "{op}: {names:?}"
            );
            let refused = get["responses"]["400"]["description"].as_str().unwrap();
            assert!(
                refused.contains("limit") && refused.contains("continue"),
                "{op}"
            );
            let list = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let schema = &doc["components"]["schemas"][list];
            assert_eq!(
                schema["properties"]["metadata"]["properties"]["continue"]["type"], "string",
                "{list}"
            );
        }
        let clusters = doc["paths"]["/v1/clusters"]["get"]["parameters"].to_string();
        assert!(clusters.contains("labelSelector") && clusters.contains("\"phase\""));
    }

    #[test]
    fn artifact_operations_are_documented() {
        let doc = document();
        let put = &doc["paths"]["/v1/artifacts/{digest}"]["put"];
        assert_eq!(put["operationId"], "putArtifact");
        assert!(put["responses"]["422"].is_object(), "{put}");
        assert!(put["requestBody"]["content"]["application/octet-stream"].is_object());
        let pull = &doc["paths"]["/v1/stacks/{name}/pull"]["post"];
        for code in ["200", "422", "502"] {
            assert!(pull["responses"][code].is_object(), "{code}: {pull}");
        }
        assert!(doc["paths"]["/v1/artifacts"]["get"].is_object());
    }

    #[test]
    fn secrets_are_never_in_what_is_returned() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["ApiTokenSpec"]["properties"]["secretSha256"].is_null());
        assert_eq!(
            schemas["TenantSpec"]["properties"]["credentials"]["writeOnly"],
            true
        );
        assert!(
            schemas["ApiTokenCreated"]["required"]
                .as_array()
                .unwrap()
                .contains(&json!("token"))
        );
    }
}
