//! Lists that page: `limit` and `continue` as Kubernetes takes them, and the list
//! answer, whose `metadata.continue` is where the next page starts.
//!
//! Without `limit` a list answers every item (as it always has); with it, at most that
//! many, and a continue token while more follow. A token is opaque to clients: the
//! key of the last item and a fingerprint of the listing (its path, tenant and
//! filters), so that a token used with other filters is refused (400) rather than
//! skipping items. Objects added or removed between pages do not disturb the others:
//! each object there all along is returned exactly once.

use axum::Json;
use kaas_core::ValidationErrors;
use kaas_core::list::{ContinueToken, filter_fingerprint};
use kaas_core::meta::{API_VERSION, Object};
use kaas_store::{ListFilter, ListPosition, StoreExt};

use crate::{ApiError, AppState};

/// A query parameter's value refused, naming the parameter (400 Invalid).
pub(crate) fn invalid_param(name: &str, reason: impl Into<String>) -> ApiError {
    ApiError::invalid(ValidationErrors::single(name, reason.into()))
}

/// One page of the objects `filter` selects, after the place `continue_token` names
/// (none or empty: from the start), at most `limit` (none: all). `listing` describes
/// the listing (path, tenant, filters) for the token's fingerprint. Returns the
/// objects and the token of the next page, if more follow.
pub(crate) async fn page<T: Object>(
    state: &AppState,
    mut filter: ListFilter,
    limit: Option<u32>,
    continue_token: Option<&str>,
    listing: &[&str],
) -> Result<(Vec<T>, Option<String>), ApiError> {
    if limit == Some(0) {
        return Err(invalid_param(
            "limit",
            "must be at least 1 (leave it out to list every item)",
        ));
    }
    let filters = filter_fingerprint(listing);
    if let Some(text) = continue_token.filter(|t| !t.is_empty()) {
        let token = ContinueToken::for_filters(text, &filters)
            .map_err(|reason| invalid_param("continue", reason))?;
        filter.after = Some(ListPosition {
            tenant: token.tenant,
            name: token.name,
        });
    }
    let page = state.store.list_page::<T>(&filter, limit).await?;
    let next = page.next.map(|last| {
        ContinueToken {
            tenant: last.tenant,
            name: last.name,
            filters,
        }
        .encode()
    });
    Ok((page.items, next))
}

/// A list answer: `{apiVersion, kind: <kind>List, metadata: {continue?}, items}`.
/// Serialized straight from the items, without a JSON tree in between: a page of
/// clusters is hundreds of kilobytes.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAnswer<T> {
    api_version: &'static str,
    kind: String,
    metadata: ListMetadata,
    items: Vec<T>,
}

#[derive(Debug, serde::Serialize)]
struct ListMetadata {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// The answer listing `items`, with the token of the next page if more follow.
pub(crate) fn answer<T: serde::Serialize>(
    kind: &str,
    items: Vec<T>,
    next: Option<String>,
) -> Json<ListAnswer<T>> {
    Json(ListAnswer {
        api_version: API_VERSION,
        kind: format!("{kind}List"),
        metadata: ListMetadata { next },
        items,
    })
}
