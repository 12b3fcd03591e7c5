//! Bundles: a stack's artifacts in one tar file, for clouds without internet. The
//! layout is an HTTP mirror's (`blobs/sha256/<hex>`) plus `index.json`, which says
//! what each blob is; unpacked and served as files, a bundle is a mirror.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactKind, Blob, BlobKind, Fetched};
use crate::digest::Digest;

/// The index's name in the archive.
pub const INDEX: &str = "index.json";
const KIND: &str = "ArtifactBundle";
/// The most bytes of an index read.
const MAX_INDEX: u64 = 16 << 20;

/// What a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleIndex {
    pub api_version: String,
    pub kind: String,
    /// The stack the artifacts are of.
    pub stack: String,
    /// Each artifact of the stack, as pinned.
    pub artifacts: Vec<BundledArtifact>,
    /// Each blob by digest.
    pub blobs: BTreeMap<Digest, BundledBlob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundledArtifact {
    pub addon: String,
    pub kind: ArtifactKind,
    pub reference: String,
    /// The pinned digest.
    pub digest: Digest,
    /// Where it was got.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundledBlob {
    pub kind: BlobKind,
    pub reference: String,
    pub size: u64,
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Writes `fetched` of stack `stack` as a bundle.
pub fn write(out: impl Write, stack: &str, fetched: &[Fetched]) -> std::io::Result<()> {
    let mut blobs: BTreeMap<Digest, &Blob> = BTreeMap::new();
    for f in fetched {
        for blob in &f.blobs {
            blobs.entry(blob.digest.clone()).or_insert(blob);
        }
    }
    let index = BundleIndex {
        api_version: kaas_core::meta::API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        stack: stack.to_owned(),
        artifacts: fetched
            .iter()
            .map(|f| BundledArtifact {
                addon: f.artifact.addon.clone(),
                kind: f.artifact.kind,
                reference: f.artifact.reference(),
                digest: f.artifact.digest.clone(),
                source: f.source.clone(),
            })
            .collect(),
        blobs: blobs
            .iter()
            .map(|(d, b)| {
                (
                    d.clone(),
                    BundledBlob {
                        kind: b.kind,
                        reference: b.reference.clone(),
                        size: b.bytes.len() as u64,
                    },
                )
            })
            .collect(),
    };
    let index = serde_json::to_vec_pretty(&index).map_err(std::io::Error::other)?;
    let mut builder = tar::Builder::new(out);
    append(&mut builder, INDEX, &index)?;
    for (digest, blob) in &blobs {
        append(&mut builder, &blob_path(digest), &blob.bytes)?;
    }
    builder.into_inner()?.flush()
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, bytes)
}

/// Reads a bundle: its index and every blob it lists, each checked against its digest
/// and at most `max_blob` bytes. A blob the index does not list, or one it lists that
/// is missing, is an error.
pub fn read(input: impl Read, max_blob: u64) -> Result<(BundleIndex, Vec<Blob>), String> {
    let mut archive = tar::Archive::new(input);
    let mut index: Option<BundleIndex> = None;
    let mut contents: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("not a tar archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("an entry's path cannot be read: {e}"))?
            .to_string_lossy()
            .into_owned();
        if path == INDEX {
            let mut text = Vec::new();
            entry
                .take(MAX_INDEX)
                .read_to_end(&mut text)
                .map_err(|e| format!("{INDEX}: {e}"))?;
            let parsed: BundleIndex =
                serde_json::from_slice(&text).map_err(|e| format!("{INDEX}: {e}"))?;
            if parsed.kind != KIND {
                return Err(format!("{INDEX}: kind {:?} is not {KIND}", parsed.kind));
            }
            index = Some(parsed);
            continue;
        }
        let Some(hex) = path.strip_prefix("blobs/sha256/") else {
            return Err(format!("{path}: not part of a bundle"));
        };
        let digest = Digest::parse(&format!("sha256:{hex}")).map_err(|e| format!("{path}: {e}"))?;
        if entry.size() > max_blob {
            return Err(format!("{path}: larger than the limit of {max_blob} bytes"));
        }
        let mut bytes = Vec::new();
        entry
            .take(max_blob)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{path}: {e}"))?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(format!(
                "{path}: the bytes have digest {actual}, not {digest}"
            ));
        }
        contents.insert(digest, bytes);
    }
    let index = index.ok_or_else(|| format!("the archive has no {INDEX}: not a bundle"))?;
    let mut blobs = Vec::new();
    for (digest, listed) in &index.blobs {
        let bytes = contents
            .remove(digest)
            .ok_or_else(|| format!("{INDEX} lists {digest}, which the archive lacks"))?;
        blobs.push(Blob {
            digest: digest.clone(),
            kind: listed.kind,
            reference: listed.reference.clone(),
            bytes,
        });
    }
    if let Some(extra) = contents.keys().next() {
        return Err(format!(
            "the archive holds {extra}, which {INDEX} does not list"
        ));
    }
    Ok((index, blobs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::artifact::Artifact;

    fn fetched(text: &str) -> Fetched {
        let digest = Digest::of(text.as_bytes());
        Fetched {
            artifact: Artifact {
                addon: "a".to_owned(),
                kind: ArtifactKind::Manifest,
                location: "https://example.org/a.yaml".to_owned(),
                name: "a".to_owned(),
                version: "v1".to_owned(),
                digest: digest.clone(),
            },
            source: "https://example.org/a.yaml".to_owned(),
            blobs: vec![Blob {
                digest,
                kind: BlobKind::Manifest,
                reference: "https://example.org/a.yaml".to_owned(),
                bytes: text.as_bytes().to_vec(),
            }],
        }
    }

    #[test]
    fn a_bundle_reads_back_what_was_written() {
        let mut out = Vec::new();
        write(
            &mut out,
            "scs-1.36",
            &[fetched("kind: A\n"), fetched("kind: A\n")],
        )
        .unwrap();
        let (index, blobs) = read(out.as_slice(), 1 << 20).unwrap();
        assert_eq!(index.stack, "scs-1.36");
        assert_eq!(index.artifacts.len(), 2);
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].bytes, b"kind: A\n");
        assert_eq!(blobs[0].kind, BlobKind::Manifest);
        assert!(read(out.as_slice(), 4).unwrap_err().contains("limit"));
    }

    #[test]
    fn a_tampered_bundle_is_refused() {
        let mut out = Vec::new();
        write(&mut out, "s", &[fetched("kind: A\n")]).unwrap();
        // Same length, other bytes: the blob's digest no longer matches its name.
        let at = out.windows(8).position(|w| w == b"kind: A\n").unwrap();
        out[at + 6] = b'B';
        let e = read(out.as_slice(), 1 << 20).unwrap_err();
        assert!(e.contains("not sha256:"), "{e}");
        assert!(read(&b"garbage"[..], 10).is_err());
    }
}
