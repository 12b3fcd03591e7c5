//! Glance: the simulated cloud boots any image by name, as its in-process form does,
//! so every name is an active public image whose id is its name. A listing without a
//! name shows the images the servers were made from.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use kaas_cloud::{ResourceKind, ResourceSpec};
use serde_json::{Value, json};

use super::{ApiResult, Fault, Query, Service, Shared, query_value, reply};
use crate::state::Key;

const SERVICE: Service = Service::Image;

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/image", get(versions))
        .route("/image/", get(versions))
        .route("/image/v2/images", get(list))
        .route("/image/v2/images/{id}", get(show))
}

async fn versions(State(api): State<Shared>) -> Response {
    reply(
        StatusCode::MULTIPLE_CHOICES,
        json!({ "versions": [{
            "id": "v2.9",
            "status": "CURRENT",
            "links": [{ "rel": "self", "href": format!("{}/image/v2/", api.base_url) }],
        }]}),
    )
}

fn image(api: &super::Api, name: &str) -> Value {
    json!({
        "id": name,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": false,
        "os_hidden": false,
        "disk_format": "qcow2",
        "container_format": "bare",
        "min_disk": 0,
        "min_ram": 0,
        "size": null,
        "checksum": null,
        "tags": [],
        "owner": api.project_id(),
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "self": format!("/v2/images/{name}"),
        "file": format!("/v2/images/{name}/file"),
        "schema": "/v2/schemas/image",
    })
}

async fn list(State(api): State<Shared>, UrlQuery(query): UrlQuery<Query>) -> Response {
    let names: BTreeSet<String> = match query_value(&query, "name") {
        Some(name) if !name.trim().is_empty() => [name.to_owned()].into(),
        Some(_) => BTreeSet::new(),
        None => api.sim.read(|state, now| {
            state
                .indexed(&Key::Kind(ResourceKind::Server), now)
                .filter_map(|r| match &r.spec {
                    ResourceSpec::Server { image, .. } => Some(image.clone()),
                    _ => None,
                })
                .collect()
        }),
    };
    let images: Vec<Value> = names.iter().map(|n| image(&api, n)).collect();
    reply(
        StatusCode::OK,
        json!({ "images": images, "schema": "/v2/schemas/images", "first": "/v2/images" }),
    )
}

async fn show(State(api): State<Shared>, Path(id): Path<String>) -> ApiResult {
    if id.trim().is_empty() {
        return Err(Fault::not_found(
            SERVICE,
            "NotFound",
            "No image found with ID ''",
        ));
    }
    Ok(reply(StatusCode::OK, image(&api, &id)))
}
