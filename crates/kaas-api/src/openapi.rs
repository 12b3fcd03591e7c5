//! The OpenAPI 3.1 document: paths written here, schemas derived from the resource
//! model (JSON Schema 2020-12, as OpenAPI 3.1 uses), so they cannot drift apart.

use kaas_core::{Cluster, Event, Machine};
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let cluster = generator.subschema_for::<Cluster>().to_value();
    let machine = generator.subschema_for::<Machine>().to_value();
    let event = generator.subschema_for::<Event>().to_value();
    let stack = generator
        .subschema_for::<kaas_core::stack::ClusterStack>()
        .to_value();
    let mut schemas = generator.take_definitions(true);
    let list = |item: &Value, kind: &str| {
        json!({
            "type": "object",
            "required": ["apiVersion", "kind", "items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"const": format!("{kind}List")},
                "items": {"type": "array", "items": item},
            }
        })
    };
    schemas.insert("ClusterList".into(), list(&cluster, "Cluster"));
    schemas.insert("MachineList".into(), list(&machine, "Machine"));
    schemas.insert("EventList".into(), list(&event, "Event"));
    schemas.insert("ClusterStackList".into(), list(&stack, "ClusterStack"));
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "Invalid, BadRequest, NotFound, Conflict, AlreadyExists, Unauthorized, MethodNotAllowed, Internal"},
                "message": {"type": "string"},
                "details": {"description": "For Invalid: the fields and reasons", "type": ["array", "null"], "items": {
                    "type": "object",
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
            "description": "Probabilities of injected faults in the simulated cloud",
            "properties": {
                "apiErrors": rate, "timeouts": rate, "quotaErrors": rate,
                "serverErrors": rate, "stuckLoadBalancers": rate
            }
        }),
    );
    schemas.insert(
        "SimNode".into(),
        json!({"type": "object", "properties": {
            "name": {"type": "string"}, "ready": {"type": ["boolean", "null"]}, "drainBlocked": {"type": ["boolean", "null"]}
        }}),
    );
    schemas.insert(
        "Info".into(),
        json!({
            "type": "object",
            "required": ["version", "cloud", "simulated"],
            "properties": {"version": {"type": "string"}, "cloud": {"type": "string"}, "simulated": {"type": "boolean"}}
        }),
    );
    schemas.insert(
        "Inventory".into(),
        json!({
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {
                "type": "object",
                "required": ["kind", "id", "name", "tags", "status"],
                "properties": {
                    "kind": {"type": "string"},
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "status": {"type": "string"}
                }
            }}}
        }),
    );

    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let error = |what: &str| json!({"description": what, "content": {"application/json": {"schema": r("Error")}}});
    let name_param = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The cluster's name"});
    let common = |mut responses: serde_json::Map<String, Value>| {
        responses.insert("401".into(), error("Missing or invalid bearer token"));
        Value::Object(responses)
    };
    let ok = |code: &str, what: &str, schema: &str| {
        let mut m = serde_json::Map::new();
        m.insert(
            code.into(),
            json!({"description": what, "content": {"application/json": {"schema": r(schema)}}}),
        );
        m
    };
    let with = |mut m: serde_json::Map<String, Value>, code: &str, what: &str| {
        m.insert(code.into(), error(what));
        m
    };

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kaas",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Kubernetes-as-a-Service for OpenStack clouds. Every /v1 call needs `Authorization: Bearer TOKEN`. Errors are `{code, message, details}`."
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/info": {"get": {
                "operationId": "getInfo", "summary": "What this server runs on",
                "responses": common(ok("200", "Server information", "Info"))
            }},
            "/v1/clusters": {
                "get": {
                    "operationId": "listClusters", "summary": "List clusters",
                    "responses": common(ok("200", "The clusters", "ClusterList"))
                },
                "post": {
                    "operationId": "createCluster", "summary": "Create a cluster",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": r("Cluster")}}},
                    "responses": common(with(with(with(ok("201", "Created; kaas provisions it from now on", "Cluster"),
                        "400", "Invalid: the details name each field and reason"),
                        "409", "A cluster of that name exists"),
                        "413", "The body is larger than 1 MiB"))
                }
            },
            "/v1/clusters/{name}": {
                "parameters": [name_param],
                "get": {
                    "operationId": "getCluster", "summary": "Get a cluster with its status",
                    "responses": common(with(ok("200", "The cluster", "Cluster"), "404", "No such cluster"))
                },
                "put": {
                    "operationId": "replaceCluster",
                    "summary": "Replace a cluster's spec and labels (status and other metadata are ignored); a non-empty metadata.resourceVersion must be current",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": r("Cluster")}}},
                    "responses": common(with(with(with(with(ok("200", "Updated", "Cluster"),
                        "400", "Invalid"), "404", "No such cluster"),
                        "409", "Stale resourceVersion, or the cluster is being deleted"),
                        "413", "The body is larger than 1 MiB"))
                },
                "delete": {
                    "operationId": "deleteCluster", "summary": "Delete a cluster and every cloud resource it has",
                    "responses": common(with({
                        let mut m = ok("202", "Deletion started; the cluster is returned as it is now", "Cluster");
                        m.insert("204".into(), json!({"description": "Deleted"}));
                        m
                    }, "404", "No such cluster"))
                }
            },
            "/v1/clusters/{name}/events": {
                "parameters": [name_param],
                "get": {
                    "operationId": "listClusterEvents", "summary": "The cluster's events, oldest first",
                    "parameters": [
                        {"name": "since", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}, "description": "Only events with a greater seq"},
                        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": 4294967295_u64}, "description": "At most this many (1..5000)"}
                    ],
                    "responses": common(with(with(ok("200", "Events", "EventList"), "400", "Bad query"), "404", "No such cluster"))
                }
            },
            "/v1/clusters/{name}/machines": {
                "parameters": [name_param],
                "get": {
                    "operationId": "listClusterMachines", "summary": "The cluster's machines",
                    "responses": common(with(ok("200", "Machines", "MachineList"), "404", "No such cluster"))
                }
            },
                        "/v1/clusters/{name}/kubeconfig": {
                "parameters": [name_param],
                "get": {
                    "operationId": "getClusterKubeconfig",
                    "summary": "An admin kubeconfig with a short-lived client certificate (group kubeadm:cluster-admins) signed by the cluster's CA",
                    "parameters": [{"name": "ttl", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Validity of the client certificate: 1m to 7d, e.g. 24h (default)"}],
                    "responses": common(with(with(with({
                        let mut m = serde_json::Map::new();
                        m.insert("200".into(), json!({"description": "The kubeconfig", "content": {"application/yaml": {"schema": {"type": "string"}}}}));
                        m
                    }, "400", "Invalid ttl"), "404", "No such cluster"), "409", "The cluster has no API endpoint or CA yet"))
                }
            },
            "/v1/clusters/{name}/machines/{machine}/user-data": {
                "parameters": [name_param, {"name": "machine", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "getMachineUserData",
                    "summary": "The user data the machine's server was created with (what cloud-init reads; gzip when it had to be compressed). Administrators only: it holds keys.",
                    "responses": common(with({
                        let mut m = serde_json::Map::new();
                        m.insert("200".into(), json!({"description": "The user data", "content": {
                            "text/cloud-config": {"schema": {"type": "string"}},
                            "application/gzip": {"schema": {"type": "string", "format": "binary"}}
                        }}));
                        m
                    }, "404", "No such cluster or machine, or no user data yet"))
                }
            },
                        "/v1/stacks": {"get": {
                "operationId": "listStacks",
                "summary": "The cluster stacks, each with status.policy: what the SCS version policy says about it today",
                "responses": common(ok("200", "Stacks", "ClusterStackList"))
            }},
            "/v1/stacks/{name}": {
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "getStack", "summary": "One cluster stack",
                    "responses": common(with(ok("200", "The stack", "ClusterStack"), "404", "No such stack"))
                }
            },
            "/v1/sim/inventory": {"get": {
                "operationId": "getSimInventory", "summary": "Every resource of the simulated cloud (a simulation, not a real cloud)",
                "responses": common(with(ok("200", "Resources", "Inventory"), "404", "The server does not run the simulated cloud"))
            }},
            "/v1/sim/faults": {
                "get": {
                    "operationId": "getSimFaults", "summary": "The simulated cloud's fault rates",
                    "responses": common(with(ok("200", "Rates", "SimFaults"), "404", "The server does not run the simulated cloud"))
                },
                "put": {
                    "operationId": "setSimFaults", "summary": "Set the simulated cloud's fault rates (each 0..1)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": r("SimFaults")}}},
                    "responses": common(with(with(ok("200", "The rates now", "SimFaults"), "400", "Invalid rate"), "404", "The server does not run the simulated cloud"))
                }
            },
            "/v1/sim/nodes/{name}": {
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "A node of a simulated workload cluster"}],
                "put": {
                    "operationId": "setSimNode", "summary": "Make a simulated node Ready or NotReady, or block its drain",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": false,
                        "properties": {"ready": {"type": "boolean"}, "drainBlocked": {"type": "boolean"}}
                    }}}},
                    "responses": common(with(with(ok("200", "Done", "SimNode"), "400", "Bad body"), "404", "No such node, or not the simulated cloud"))
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "security": [], "responses": {"200": {"description": "The process runs"}}}},
            "/readyz": {"get": {"operationId": "readyz", "security": [], "responses": {"200": {"description": "Ready"}, "503": {"description": "The store does not answer"}}}},
            "/metrics": {"get": {"operationId": "metrics", "security": [], "responses": {"200": {"description": "Prometheus metrics"}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "security": [], "responses": {"200": {"description": "This document"}}}}
        }
    })
}
