//! Decoding client input with errors that name the field: `spec.controlPlane.foo:
//! unknown field`.

use serde::de::DeserializeOwned;

use crate::validation::{FieldError, ValidationErrors};

/// Decodes JSON into `T`, turning serde's error into a [`FieldError`] with the path.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationErrors> {
    // serde takes a struct from an array of its fields in order, which no client means.
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ValidationErrors::single(
            "body",
            "must be a JSON object, not an array",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        ValidationErrors(vec![FieldError {
            field,
            reason: clean_reason(&inner.to_string()),
        }])
    })?;
    de.end()
        .map_err(|e| ValidationErrors::single("body", clean_reason(&e.to_string())))?;
    Ok(value)
}

/// Decodes an already parsed JSON value (for YAML read by the CLI).
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        ValidationErrors(vec![FieldError {
            field,
            reason: clean_reason(&e.into_inner().to_string()),
        }])
    })
}

/// serde_json appends " at line 1 column 42"; the field path says it better.
fn clean_reason(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cluster::Cluster;

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let body =
            br#"{"metadata":{"name":"a"},"spec":{"controlPlane":{"replicas":3,"colour":"red"}}}"#;
        let err = decode_json::<Cluster>(body).unwrap_err();
        assert_eq!(err.0[0].field, "spec.controlPlane.colour");
        assert!(
            err.0[0].reason.contains("unknown field `colour`"),
            "{}",
            err.0[0].reason
        );
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let body =
            br#"{"metadata":{"name":"a"},"spec":{"nodePools":[{"name":"w","replicas":"many"}]}}"#;
        let err = decode_json::<Cluster>(body).unwrap_err();
        assert_eq!(err.0[0].field, "spec.nodePools[0].replicas");
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let c: Cluster = decode_json(br#"{"metadata":{"name":"a"},"spec":{}}"#).unwrap();
        assert_eq!(c.spec.control_plane.replicas, 3);
        assert_eq!(c.spec.node_pools[0].name, "workers");
        assert_eq!(c.api_version, crate::meta::API_VERSION);
    }

    #[test]
    fn an_array_is_not_taken_for_an_object() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Change {
            ready: Option<bool>,
        }
        let err = decode_json::<Change>(b" [null]").unwrap_err();
        assert_eq!(err.0[0].field, "body");
        assert!(err.0[0].reason.contains("JSON object"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(decode_json::<Cluster>(br#"{"metadata":{"name":"a"},"spec":{}} x"#).is_err());
    }
}
