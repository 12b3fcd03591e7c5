//! The controllers' source of upstream addon artifacts: kaas's cache in the store,
//! filled on first use from the operator's mirrors or from upstream. Every artifact is
//! checked against the digest its stack pins on the way in (the fetcher) and on the
//! way out (the store).

use std::sync::Arc;

use async_trait::async_trait;
use kaas_artifacts::{Artifact, Fetcher};
use kaas_controller::cluster::addons::AddonArtifacts;
use kaas_core::stack::StackAddon;
use kaas_store::Store;
use tracing::info;

pub struct CachedArtifacts {
    pub store: Arc<dyn Store>,
    pub fetcher: Arc<Fetcher>,
}

#[async_trait]
impl AddonArtifacts for CachedArtifacts {
    async fn artifact(&self, addon: &StackAddon) -> Result<Arc<Vec<u8>>, String> {
        let artifact = Artifact::of_addon(addon)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("addon {} names no upstream artifact", addon.name))?;
        let digest = artifact.digest.as_str();
        if let Some(bytes) = self
            .store
            .get_artifact(digest)
            .await
            .map_err(|e| format!("addon {}: the artifact cache: {e}", addon.name))?
        {
            return Ok(Arc::new(bytes));
        }
        let fetched = self
            .fetcher
            .fetch(&artifact)
            .await
            .map_err(|e| e.to_string())?;
        let content = fetched
            .content()
            .ok_or_else(|| format!("addon {}: the fetched artifact has no content", addon.name))?;
        self.store
            .put_artifact(
                digest,
                content.kind.as_str(),
                &artifact.reference(),
                &content.bytes,
            )
            .await
            .map_err(|e| format!("addon {}: the artifact cache: {e}", addon.name))?;
        info!(addon = %addon.name, source = %fetched.source, %digest, "cached an upstream artifact");
        Ok(Arc::new(content.bytes.clone()))
    }
}
