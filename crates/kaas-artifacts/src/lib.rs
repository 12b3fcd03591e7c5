//! How kaas gets the upstream artifacts its cluster stacks name: Helm charts in OCI
//! registries and chart repositories, and plain manifests, each pinned by a sha256
//! digest in the stack (`kaas_core::stack::{ChartRef, ManifestRef}`).
//!
//! - [`Artifact`]: what an addon names (kind, location, name, version, digest).
//! - [`Fetcher`]: gets an artifact over HTTP. Mirrors ([`Mirror`]) are tried first, in
//!   order, then upstream; the first source whose bytes match the pinned digest wins:
//!   - an **OCI chart** (`oci://HOST/PATH`): its manifest
//!     (`GET /v2/PATH/NAME/manifests/<version>`), whose layer of Helm's chart media
//!     type must be the pinned digest, then that layer, checked again. A chart is
//!     pinned by its `.tgz` wherever it is published (the digest chart repositories'
//!     `index.yaml` records; the same archive is pushed to their OCI registries), so
//!     one pin holds for a repository, a registry and any mirror;
//!   - a **repository chart**: `index.yaml`, the entry of that name and version (its
//!     own `digest`, when listed, must be the pinned one), its first URL resolved
//!     against the repository, the `.tgz`, whose sha256 must be the pinned digest; in
//!     an OCI mirror, `PATH/NAME:VERSION` whose chart layer is the pinned digest;
//!   - a **manifest**: the file, whose sha256 must be the pinned digest.
//!
//!   An HTTP mirror serves every blob by digest at `BASE/blobs/sha256/<hex>`.
//!   Registries are asked anonymously, or with credentials; a 401 with a `Bearer`
//!   challenge is answered with a token from its realm. Every answer is read with a
//!   size cap ([`Limits`]), every request has timeouts and a bounded number of
//!   redirects.
//! - [`Fetcher::push_chart`] and [`Fetcher::mirror_to`]: charts into an operator's
//!   registry, the way `helm push` lays them out (monolithic blob uploads).
//! - [`bundle`]: a stack's artifacts in one tar file, for clouds without internet.
//! - [`chart`]: a chart's `Chart.yaml` from its `.tgz`; a folder packaged as a `.tgz`.
//!
//! **Architecture invariant:** nothing leaves this crate unverified: every blob it
//! returns has been hashed and compared with the digest that names it.

mod artifact;
pub mod bundle;
pub mod chart;
mod digest;
mod error;
mod fetcher;
mod http;
mod oci;

pub use artifact::{Artifact, ArtifactKind, Blob, BlobKind, Fetched, Mirror, OciLocation, oci_tag};
pub use digest::Digest;
pub use error::{ArtifactError, FailureKind};
pub use fetcher::{ArtifactSource, Fetcher, Pushed};
pub use http::Limits;
pub use oci::{
    Challenge, Credentials, Descriptor, HELM_CHART_LAYER, HELM_CONFIG, ImageManifest, OCI_MANIFEST,
    parse_challenge, parse_manifest,
};
