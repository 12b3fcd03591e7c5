//! Which resource serves a kind, from the API server's discovery documents, asked once per
//! group-version (or group) within one call and remembered for its rest.

use std::collections::HashMap;

use kube::Client;
use kube::core::gvk::GroupVersion;
use kube::discovery::{self, ApiCapabilities, ApiGroup, ApiResource};

use crate::error::api_code;

/// A served resource: its path and kind, and whether it is namespaced.
pub(crate) type Served = (ApiResource, ApiCapabilities);

/// Discovery as one call has seen it so far.
pub(crate) struct Discovered {
    client: Client,
    /// By `apiVersion`; `None`: not served.
    versions: HashMap<String, Option<ApiGroup>>,
    /// By group (all its versions); `None`: not served.
    groups: HashMap<String, Option<ApiGroup>>,
}

impl Discovered {
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            versions: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// The resource serving `kind` in `api_version`, if the server serves it.
    pub(crate) async fn kind(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Served>, kube::Error> {
        if !self.versions.contains_key(api_version) {
            let group = match api_version.parse::<GroupVersion>() {
                Ok(gv) => not_served_is_none(discovery::pinned_group(&self.client, &gv).await)?,
                Err(_) => None,
            };
            self.versions.insert(api_version.to_owned(), group);
        }
        Ok(self
            .versions
            .get(api_version)
            .and_then(Option::as_ref)
            .and_then(|g| g.recommended_kind(kind)))
    }

    /// Forgets what was seen of `api_version`, to ask again (after a CRD was applied).
    pub(crate) fn forget(&mut self, api_version: &str) {
        self.versions.remove(api_version);
    }

    /// The resource serving `kind` of `group` in the group's preferred version (or the
    /// most stable one that serves the kind), if the server serves it.
    pub(crate) async fn group_kind(
        &mut self,
        group: &str,
        kind: &str,
    ) -> Result<Option<Served>, kube::Error> {
        if !self.groups.contains_key(group) {
            let found = not_served_is_none(discovery::group(&self.client, group).await)?;
            self.groups.insert(group.to_owned(), found);
        }
        let Some(Some(group)) = self.groups.get(group) else {
            return Ok(None);
        };
        Ok(group.recommended_kind(kind).or_else(|| {
            group
                .resources_by_stability()
                .into_iter()
                .find(|(resource, _)| resource.kind == kind)
        }))
    }
}

fn not_served_is_none<T>(result: Result<T, kube::Error>) -> Result<Option<T>, kube::Error> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(kube::Error::Discovery(_)) => Ok(None),
        Err(e) if api_code(&e) == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}
