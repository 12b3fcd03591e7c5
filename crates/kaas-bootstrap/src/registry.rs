//! The integrated registry's material: the token service's signing key and
//! certificates, its tokens (the Docker registry token protocol: ES256 JWTs whose `x5c`
//! chains to the CA the registry trusts), the `dockerconfigjson` a cluster pulls with,
//! and containerd's `hosts.toml` for a cluster's mirrors.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use kaas_core::registry::{MirrorCapability, RegistryMirror};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::BootstrapError;
use crate::pki::{CertAndKey, generate_ca, issue_leaf, set_validity, with_certificate};

/// Common name of the CA the registry trusts for tokens (its `rootcertbundle`).
pub const TOKEN_CA_CN: &str = "kaas registry token CA";
/// Common name of the certificate of the key that signs tokens.
pub const TOKEN_SIGNER_CN: &str = "kaas registry token signer";
/// How long the signing certificate is valid; the CA is valid for ten years.
const SIGNER_VALIDITY_DAYS: i64 = 3650 - 1;

/// The token service's keys: a CA (whose certificate the registry trusts) and the
/// signing key with its certificate from that CA. (`CertAndKey` redacts its key from
/// `Debug`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenPki {
    pub ca: CertAndKey,
    pub signer: CertAndKey,
}

impl TokenPki {
    /// A new CA and signing key, valid from `now`.
    pub fn generate(now: DateTime<Utc>) -> Result<TokenPki, BootstrapError> {
        let ca = generate_ca("registry token CA", TOKEN_CA_CN, "kaas", now)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, TOKEN_SIGNER_CN);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(
            &mut params,
            "registry token signer",
            now - Duration::hours(1),
            now + Duration::days(SIGNER_VALIDITY_DAYS),
        )?;
        let signer = issue_leaf("registry token signer", params, &ca)?;
        Ok(TokenPki { ca, signer })
    }

    /// A signer of tokens for the registry `service`, issued by `issuer`.
    pub fn signer(&self, issuer: &str, service: &str) -> Result<TokenSigner, BootstrapError> {
        let what = "registry token signer";
        let pkcs8 = KeyPair::from_pem(&self.signer.key_pem)
            .map_err(|source| BootstrapError::LoadKey { what, source })?
            .serialize_der();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| BootstrapError::ParseCertificate {
            what,
            reason: format!("the key is not a P-256 key: {e}"),
        })?;
        let leaf = with_certificate(what, &self.signer.cert_pem, |cert| {
            Ok(cert.as_raw().to_vec())
        })?;
        Ok(TokenSigner {
            key,
            x5c: vec![STANDARD.encode(leaf)],
            issuer: issuer.to_owned(),
            service: service.to_owned(),
        })
    }
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAccess {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Signs registry tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    /// The signing certificate, standard base64 DER, as `x5c` carries it.
    x5c: Vec<String>,
    issuer: String,
    service: String,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// The registry's service name, the tokens' `aud`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// A token for `subject` granting `access`, valid from `now` for `ttl`.
    pub fn sign(
        &self,
        subject: &str,
        access: &[TokenAccess],
        now: DateTime<Utc>,
        ttl: Duration,
        jti: &str,
    ) -> Result<String, BootstrapError> {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": self.x5c});
        let claims = json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": (now + ttl).timestamp(),
            "nbf": now.timestamp(),
            "iat": now.timestamp(),
            "jti": jti,
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| BootstrapError::Random {
                what: "a registry token's signature",
            })?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// A `kubernetes.io/dockerconfigjson` document for `registry` (`host[:port]`).
pub fn docker_config_json(registry: &str, username: &str, password: &str) -> Value {
    let auth = STANDARD.encode(format!("{username}:{password}"));
    json!({"auths": {registry: {"username": username, "password": password, "auth": auth}}})
}

/// Where containerd reads the mirrors of `registry`: its hosts directory
/// (`/etc/containerd/certs.d`, the CRI plugin's `config_path`) and the registry's name.
pub const CONTAINERD_HOSTS_DIR: &str = "/etc/containerd/certs.d";

/// The path of `registry`'s `hosts.toml` under [`CONTAINERD_HOSTS_DIR`]. containerd
/// looks a `host:port` up in a folder named so, too.
pub fn hosts_toml_path(registry: &str) -> String {
    format!("{CONTAINERD_HOSTS_DIR}/{registry}/hosts.toml")
}

/// The upstream server of a registry, as containerd defaults it.
fn upstream_server(registry: &str) -> String {
    match registry {
        "docker.io" => "https://registry-1.docker.io".to_owned(),
        other => format!("https://{other}"),
    }
}

/// A TOML basic string: quoted, with `"`, `\` and control characters escaped.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// containerd's `hosts.toml` for one mirrored registry: every mirror as a `[host]`,
/// tried in the file's order. With `fallback`, the registry itself is the `server`,
/// tried last; without it, the last mirror is, so nothing is pulled from upstream.
/// (containerd 1.6 refuses a file without a `[host]` table, so there always is one.)
pub fn render_hosts_toml(mirror: &RegistryMirror) -> String {
    let mut out = format!(
        "# Written by kaas: the mirrors of {}, tried in order.\n",
        mirror.registry
    );
    match (mirror.fallback, mirror.endpoints.last()) {
        (false, Some(last)) => {
            out.push_str(&format!("server = {}\n", toml_string(&last.url)));
            out.push_str(&format!(
                "capabilities = [{}]\n",
                capabilities(&last.capabilities)
            ));
            if last.override_path {
                out.push_str("override_path = true\n");
            }
        }
        _ => out.push_str(&format!(
            "server = {}\n",
            toml_string(&upstream_server(&mirror.registry))
        )),
    }
    for endpoint in &mirror.endpoints {
        out.push_str(&format!("\n[host.{}]\n", toml_string(&endpoint.url)));
        out.push_str(&format!(
            "  capabilities = [{}]\n",
            capabilities(&endpoint.capabilities)
        ));
        if endpoint.override_path {
            out.push_str("  override_path = true\n");
        }
    }
    out
}

fn capabilities(list: &[MirrorCapability]) -> String {
    list.iter()
        .map(|c| toml_string(c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kaas_core::registry::MirrorEndpoint;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn tokens_are_es256_with_the_signer_in_x5c() {
        let now = Utc::now();
        let pki = TokenPki::generate(now).unwrap();
        let signer = pki.signer("kaas", "registry").unwrap();
        let access = [TokenAccess {
            resource_type: "repository".into(),
            name: "alpha/app".into(),
            actions: vec!["pull".into()],
        }];
        let token = signer
            .sign("alpha+ci", &access, now, Duration::minutes(5), "j1")
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["aud"], "registry");
        assert_eq!(claims["iss"], "kaas");
        assert_eq!(claims["sub"], "alpha+ci");
        assert_eq!(claims["exp"], (now + Duration::minutes(5)).timestamp());
        assert_eq!(claims["access"][0]["actions"][0], "pull");
        // The x5c certificate's key verifies the signature (raw r||s, 64 bytes).
        let der = STANDARD.decode(header["x5c"][0].as_str().unwrap()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 64);
        let key = UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_FIXED,
            cert.public_key().subject_public_key.data.to_vec(),
        );
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        // And it was issued by the CA the registry trusts.
        with_certificate("ca", &pki.ca.cert_pem, |ca| {
            assert_eq!(cert.issuer(), ca.subject());
            let ca_key = UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_ASN1,
                ca.public_key().subject_public_key.data.to_vec(),
            );
            ca_key
                .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
                .unwrap();
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn docker_config_holds_user_and_password() {
        let config = docker_config_json("registry.example:5000", "alpha+c1", "s3cret");
        let entry = &config["auths"]["registry.example:5000"];
        assert_eq!(entry["username"], "alpha+c1");
        assert_eq!(
            STANDARD.decode(entry["auth"].as_str().unwrap()).unwrap(),
            b"alpha+c1:s3cret"
        );
    }

    fn endpoint(url: &str, override_path: bool) -> MirrorEndpoint {
        MirrorEndpoint {
            url: url.into(),
            capabilities: vec![MirrorCapability::Pull, MirrorCapability::Resolve],
            override_path,
        }
    }

    #[test]
    fn hosts_toml_with_and_without_fallback() {
        let mut mirror = RegistryMirror {
            registry: "docker.io".into(),
            endpoints: vec![
                endpoint("https://a.example", false),
                endpoint("https://b.example/mirror/v2", true),
            ],
            fallback: true,
        };
        insta::assert_snapshot!(render_hosts_toml(&mirror), @r#"
        # Written by kaas: the mirrors of docker.io, tried in order.
        server = "https://registry-1.docker.io"

        [host."https://a.example"]
          capabilities = ["pull", "resolve"]

        [host."https://b.example/mirror/v2"]
          capabilities = ["pull", "resolve"]
          override_path = true
        "#);
        mirror.fallback = false;
        insta::assert_snapshot!(render_hosts_toml(&mirror), @r#"
        # Written by kaas: the mirrors of docker.io, tried in order.
        server = "https://b.example/mirror/v2"
        capabilities = ["pull", "resolve"]
        override_path = true

        [host."https://a.example"]
          capabilities = ["pull", "resolve"]

        [host."https://b.example/mirror/v2"]
          capabilities = ["pull", "resolve"]
          override_path = true
        "#);
        assert_eq!(
            hosts_toml_path("127.0.0.1:5100"),
            "/etc/containerd/certs.d/127.0.0.1:5100/hosts.toml"
        );
    }

    #[test]
    fn toml_strings_escape_what_would_break_out() {
        assert_eq!(toml_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
