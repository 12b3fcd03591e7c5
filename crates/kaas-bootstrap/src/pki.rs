//! The cluster PKI: three CAs and the service-account key pair, generated once per
//! cluster, and the leaf certificates issued from the Kubernetes CA.
//!
//! All keys are ECDSA P-256 (kubeadm accepts ECDSA CAs; ring cannot generate RSA). All
//! validity periods are set explicitly from the `now` the caller passes in; X.509 keeps
//! whole seconds, so sub-second parts of `now` are dropped.
//!
//! Private keys are PKCS#8 PEM (`PRIVATE KEY`), which kubeadm and the Kubernetes
//! components read. The types holding them redact them from `Debug`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Duration, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::time::ASN1Time;

use crate::BootstrapError;

/// Common name of the Kubernetes CA (kubeadm's `ca.crt`).
pub const KUBERNETES_CA_CN: &str = "kubernetes";
/// Common name of the etcd CA (kubeadm's `etcd/ca.crt`).
pub const ETCD_CA_CN: &str = "etcd-ca";
/// Common name of the front-proxy CA (kubeadm's `front-proxy-ca.crt`).
pub const FRONT_PROXY_CA_CN: &str = "front-proxy-ca";
/// Organization of admin client certificates: kubeadm (1.29+) binds this group to
/// `cluster-admin`, and, unlike `system:masters`, the binding can be revoked.
pub const CLUSTER_ADMINS_GROUP: &str = "kubeadm:cluster-admins";

/// How long a CA is valid: ten years, as kubeadm does.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long the API server's serving certificate is valid: one year, as kubeadm does.
const APISERVER_VALIDITY_DAYS: i64 = 365;
/// CAs and serving certificates start an hour early, for clocks that lag.
const BACKDATE_HOURS: i64 = 1;
/// Admin client certificates start five minutes early, for clocks that lag.
const CLIENT_BACKDATE_MINUTES: i64 = 5;

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertAndKey {
    /// The certificate, PEM `CERTIFICATE`.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM `PRIVATE KEY`. Secret.
    pub key_pem: String,
}

impl fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A bare key pair, both PEM (the service-account signing key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPairPem {
    /// The private key, PKCS#8 PEM `PRIVATE KEY`. Secret.
    pub key_pem: String,
    /// The public key, PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub public_pem: String,
}

impl fmt::Debug for KeyPairPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPairPem")
            .field("key_pem", &"<redacted>")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

/// Everything a cluster's control plane needs to trust and be trusted, made once per
/// cluster. Serializable so that it can be stored (encrypted) by the caller.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPki {
    /// Signs the API server, kubelet client and admin certificates (`ca.crt`).
    pub kubernetes_ca: CertAndKey,
    /// Signs etcd's server and peer certificates (`etcd/ca.crt`).
    pub etcd_ca: CertAndKey,
    /// Signs the aggregation layer's client certificate (`front-proxy-ca.crt`).
    pub front_proxy_ca: CertAndKey,
    /// Signs and verifies service-account tokens (`sa.key`, `sa.pub`).
    pub service_account: KeyPairPem,
}

impl fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The field types redact their private keys.
        f.debug_struct("ClusterPki")
            .field("kubernetes_ca", &self.kubernetes_ca)
            .field("etcd_ca", &self.etcd_ca)
            .field("front_proxy_ca", &self.front_proxy_ca)
            .field("service_account", &self.service_account)
            .finish()
    }
}

impl ClusterPki {
    /// Generates the three CAs (valid from `now` − 1 h to `now` + 3650 days) and the
    /// service-account key pair. `cluster_name` is recorded as each CA's
    /// organizational unit so that CAs of different clusters are told apart by a human;
    /// the common names are kubeadm's.
    pub fn generate(cluster_name: &str, now: DateTime<Utc>) -> Result<ClusterPki, BootstrapError> {
        let kubernetes_ca = generate_ca("Kubernetes CA", KUBERNETES_CA_CN, cluster_name, now)?;
        let etcd_ca = generate_ca("etcd CA", ETCD_CA_CN, cluster_name, now)?;
        let front_proxy_ca = generate_ca("front-proxy CA", FRONT_PROXY_CA_CN, cluster_name, now)?;
        let sa = generate_key("service-account")?;
        Ok(ClusterPki {
            kubernetes_ca,
            etcd_ca,
            front_proxy_ca,
            service_account: KeyPairPem {
                key_pem: sa.serialize_pem(),
                public_pem: sa.public_key_pem(),
            },
        })
    }
}

/// kubeadm's discovery hash of a CA certificate: `sha256:` and the lowercase hex
/// SHA-256 of the certificate's DER SubjectPublicKeyInfo (what `kubeadm join
/// --discovery-token-ca-cert-hash` and `caCertHashes` expect).
pub fn ca_cert_hash(ca_cert_pem: &str) -> Result<String, BootstrapError> {
    with_certificate("CA", ca_cert_pem, |cert| {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("sha256:{hex}"))
    })
}

/// The names the API server's serving certificate is valid for, beyond the fixed
/// in-cluster DNS names and `127.0.0.1`.
///
/// kubeadm refuses an `apiserver.crt` found on disk unless it covers every name kubeadm
/// would put in it itself, which includes the node's name and its advertise address:
/// when the certificate is issued ahead of the machine, put both into `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiServerSans {
    /// The service CIDR (e.g. `10.96.0.0/12`, or a comma-separated dual-stack pair); the
    /// first host of each network is the `kubernetes` service's IP.
    pub service_cidr: String,
    /// The API load balancer's address (VIP), an IP or a DNS name.
    pub load_balancer_address: String,
    /// The floating IP in front of the load balancer, if any.
    pub floating_ip: Option<String>,
    /// Further names or IPs (node name, node address, a public DNS name).
    pub extra: Vec<String>,
}

impl ApiServerSans {
    /// The names to list as `certSANs` in kubeadm's ClusterConfiguration: the load
    /// balancer, the floating IP and the extras (kubeadm adds the in-cluster names itself).
    pub fn cert_sans(&self) -> Vec<String> {
        let mut sans = vec![self.load_balancer_address.clone()];
        sans.extend(self.floating_ip.iter().cloned());
        sans.extend(self.extra.iter().cloned());
        dedup_keep_order(sans)
    }
}

/// Issues the API server's serving certificate from the Kubernetes CA: CN
/// `kube-apiserver`, EKU serverAuth, valid from `now` − 1 h to `now` + 365 days, for the
/// in-cluster DNS names, `localhost`, the service IP(s), `127.0.0.1` and `sans`.
pub fn issue_apiserver_cert(
    pki: &ClusterPki,
    sans: &ApiServerSans,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    const WHAT: &str = "API server";
    let mut names: Vec<String> = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for ip in service_ips(&sans.service_cidr)? {
        names.push(ip.to_string());
    }
    names.push(Ipv4Addr::LOCALHOST.to_string());
    names.extend(sans.cert_sans());
    let names = dedup_keep_order(names);

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[(DnType::CommonName, "kube-apiserver")]);
    params.subject_alt_names = names
        .iter()
        .map(|name| san(WHAT, name))
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(
        &mut params,
        WHAT,
        now - Duration::hours(BACKDATE_HOURS),
        now + Duration::days(APISERVER_VALIDITY_DAYS),
    )?;
    issue_leaf(WHAT, params, &pki.kubernetes_ca)
}

/// Issues a short-lived admin client certificate from the Kubernetes CA: CN `user`,
/// O `kubeadm:cluster-admins`, EKU clientAuth, valid from `now` − 5 min to `now` + `ttl`.
pub fn issue_admin_client_cert(
    pki: &ClusterPki,
    user: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    issue_client_cert(pki, "admin client", user, CLUSTER_ADMINS_GROUP, ttl, now)
}

/// Issues a kubelet's client certificate from the Kubernetes CA, as the kubelet's TLS
/// bootstrap would get it: CN `system:node:<node>`, O `system:nodes`, EKU clientAuth,
/// valid from `now` − 5 min to `now` + `ttl`.
pub fn issue_kubelet_client_cert(
    pki: &ClusterPki,
    node: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    let user = format!("system:node:{node}");
    issue_client_cert(pki, "kubelet client", &user, "system:nodes", ttl, now)
}

/// Issues a short-lived client certificate for etcd from the cluster's etcd CA, as
/// kubeadm issues the API server's (`apiserver-etcd-client`): CN `user`, EKU clientAuth,
/// valid from `now` − 5 min to `now` + `ttl`. kaas reads etcd's membership with it.
pub fn issue_etcd_client_cert(
    pki: &ClusterPki,
    user: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    issue_client_cert_from(
        &pki.etcd_ca,
        "etcd client",
        user,
        CLUSTER_ADMINS_GROUP,
        ttl,
        now,
    )
}

/// Issues an etcd member's serving certificate from the etcd CA, as kubeadm's
/// `etcd/server.crt`: CN `node`, EKU serverAuth and clientAuth, for `node`, `localhost`,
/// `127.0.0.1`, `::1` and `addresses`, valid from `now` − 1 h to `now` + 365 days.
pub fn issue_etcd_server_cert(
    pki: &ClusterPki,
    node: &str,
    addresses: &[String],
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    const WHAT: &str = "etcd server";
    let mut names = vec![node.to_owned(), "localhost".to_owned()];
    names.push(Ipv4Addr::LOCALHOST.to_string());
    names.push(std::net::Ipv6Addr::LOCALHOST.to_string());
    names.extend(addresses.iter().cloned());
    let names = dedup_keep_order(names);
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[(DnType::CommonName, node)]);
    params.subject_alt_names = names
        .iter()
        .map(|name| san(WHAT, name))
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    set_validity(
        &mut params,
        WHAT,
        now - Duration::hours(BACKDATE_HOURS),
        now + Duration::days(APISERVER_VALIDITY_DAYS),
    )?;
    issue_leaf(WHAT, params, &pki.etcd_ca)
}

fn issue_client_cert(
    pki: &ClusterPki,
    what: &'static str,
    user: &str,
    group: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    issue_client_cert_from(&pki.kubernetes_ca, what, user, group, ttl, now)
}

fn issue_client_cert_from(
    ca: &CertAndKey,
    what: &'static str,
    user: &str,
    group: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    let ttl = Duration::from_std(ttl).map_err(|_| BootstrapError::InvalidValidity {
        what,
        reason: "TTL out of range".to_string(),
    })?;
    if ttl <= Duration::zero() {
        return Err(BootstrapError::InvalidValidity {
            what,
            reason: "TTL must be positive".to_string(),
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[
        (DnType::OrganizationName, group),
        (DnType::CommonName, user),
    ]);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(
        &mut params,
        what,
        now - Duration::minutes(CLIENT_BACKDATE_MINUTES),
        now + ttl,
    )?;
    issue_leaf(what, params, ca)
}

/// The `kubernetes` service's IP for each network of a (comma-separated) service CIDR:
/// the network's first address plus one, as kubeadm and the API server compute it.
pub(crate) fn service_ips(service_cidr: &str) -> Result<Vec<IpAddr>, BootstrapError> {
    service_cidr
        .split(',')
        .map(|cidr| first_host(cidr.trim()))
        .collect()
}

fn first_host(cidr: &str) -> Result<IpAddr, BootstrapError> {
    let invalid = |reason| BootstrapError::InvalidCidr {
        cidr: cidr.to_string(),
        reason,
    };
    let (address, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| invalid("expected ADDRESS/PREFIX"))?;
    let address: IpAddr = address.parse().map_err(|_| invalid("not an IP address"))?;
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| invalid("prefix is not a number"))?;
    match address {
        IpAddr::V4(v4) => {
            if prefix > 31 {
                return Err(invalid("prefix leaves no host addresses"));
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let network = u32::from(v4) & mask;
            Ok(IpAddr::V4(Ipv4Addr::from(network + 1)))
        }
        IpAddr::V6(v6) => {
            if prefix > 127 {
                return Err(invalid("prefix leaves no host addresses"));
            }
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let network = u128::from(v6) & mask;
            Ok(IpAddr::V6(Ipv6Addr::from(network + 1)))
        }
    }
}

fn dedup_keep_order(names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| !n.is_empty() && seen.insert(n.clone()))
        .collect()
}

fn san(what: &'static str, name: &str) -> Result<SanType, BootstrapError> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => name
            .to_string()
            .try_into()
            .map(SanType::DnsName)
            .map_err(|source| BootstrapError::IssueCertificate { what, source }),
    }
}

fn distinguished_name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in parts {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn generate_key(what: &'static str) -> Result<KeyPair, BootstrapError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| BootstrapError::GenerateKey { what, source })
}

fn random_serial(what: &'static str) -> Result<SerialNumber, BootstrapError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BootstrapError::Random { what })?;
    // Positive and always 16 bytes long.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn asn1_time(what: &'static str, t: DateTime<Utc>) -> Result<ASN1Time, BootstrapError> {
    ASN1Time::from_timestamp(t.timestamp()).map_err(|e| BootstrapError::InvalidValidity {
        what,
        reason: e.to_string(),
    })
}

pub(crate) fn set_validity(
    params: &mut CertificateParams,
    what: &'static str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(), BootstrapError> {
    params.not_before = asn1_time(what, not_before)?.to_datetime();
    params.not_after = asn1_time(what, not_after)?.to_datetime();
    Ok(())
}

pub(crate) fn generate_ca(
    what: &'static str,
    common_name: &str,
    cluster_name: &str,
    now: DateTime<Utc>,
) -> Result<CertAndKey, BootstrapError> {
    let key = generate_key(what)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[
        (DnType::OrganizationalUnitName, cluster_name),
        (DnType::CommonName, common_name),
    ]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.serial_number = Some(random_serial(what)?);
    set_validity(
        &mut params,
        what,
        now - Duration::hours(BACKDATE_HOURS),
        now + Duration::days(CA_VALIDITY_DAYS),
    )?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| BootstrapError::IssueCertificate { what, source })?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Signs `params` with a fresh key, issued by `ca`. The issuer's name is read from the
/// CA certificate, and the CA key is checked against it.
pub(crate) fn issue_leaf(
    what: &'static str,
    mut params: CertificateParams,
    ca: &CertAndKey,
) -> Result<CertAndKey, BootstrapError> {
    const CA: &str = "Kubernetes CA";
    let ca_key = KeyPair::from_pem(&ca.key_pem)
        .map_err(|source| BootstrapError::LoadKey { what: CA, source })?;
    let ca_name = with_certificate(CA, &ca.cert_pem, |cert| {
        if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&ca_key) {
            return Err(BootstrapError::CaKeyMismatch { what: CA });
        }
        subject_of(CA, cert)
    })?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = ca_name;
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = Issuer::new(ca_params, ca_key);

    let key = generate_key(what)?;
    params.serial_number = Some(random_serial(what)?);
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| BootstrapError::IssueCertificate { what, source })?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The subject of a parsed certificate, as rcgen wants it for an issuer.
fn subject_of(
    what: &'static str,
    cert: &X509Certificate<'_>,
) -> Result<DistinguishedName, BootstrapError> {
    let mut dn = DistinguishedName::new();
    for attribute in cert.subject().iter_attributes() {
        let oid: Vec<u64> = attribute
            .attr_type()
            .iter()
            .map(|arcs| arcs.collect())
            .ok_or_else(|| BootstrapError::ParseCertificate {
                what,
                reason: "subject attribute with an oversized OID".to_string(),
            })?;
        let value = attribute
            .as_str()
            .map_err(|e| BootstrapError::ParseCertificate {
                what,
                reason: e.to_string(),
            })?;
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// Parses one PEM certificate and hands it to `f`.
pub(crate) fn with_certificate<T>(
    what: &'static str,
    pem: &str,
    f: impl FnOnce(&X509Certificate<'_>) -> Result<T, BootstrapError>,
) -> Result<T, BootstrapError> {
    let parse_error = |reason: String| BootstrapError::ParseCertificate { what, reason };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| parse_error(e.to_string()))?;
    if pem.label != "CERTIFICATE" {
        return Err(parse_error(format!("PEM block is {:?}", pem.label)));
    }
    let cert = pem.parse_x509().map_err(|e| parse_error(e.to_string()))?;
    f(&cert)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, 15, 9, 26).unwrap()
    }

    fn parse(pem: &str) -> (i64, i64, Vec<String>, String, String) {
        with_certificate("test", pem, |cert| {
            let sans = cert
                .subject_alternative_name()
                .unwrap()
                .map(|ext| {
                    ext.value
                        .general_names
                        .iter()
                        .map(|n| match n {
                            GeneralName::DNSName(d) => format!("DNS:{d}"),
                            GeneralName::IPAddress(b) if b.len() == 4 => {
                                let b: [u8; 4] = (*b).try_into().unwrap();
                                format!("IP:{}", Ipv4Addr::from(b))
                            }
                            other => format!("{other:?}"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((
                cert.validity().not_before.timestamp(),
                cert.validity().not_after.timestamp(),
                sans,
                cert.subject().to_string(),
                cert.issuer().to_string(),
            ))
        })
        .unwrap()
    }

    #[test]
    fn cas_are_valid_ten_years_backdated_one_hour() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        for (ca, cn) in [
            (&pki.kubernetes_ca, "kubernetes"),
            (&pki.etcd_ca, "etcd-ca"),
            (&pki.front_proxy_ca, "front-proxy-ca"),
        ] {
            let (not_before, not_after, _, subject, issuer) = parse(&ca.cert_pem);
            assert_eq!(not_before, now().timestamp() - 3600);
            assert_eq!(not_after, now().timestamp() + 3650 * 86400);
            assert_eq!(not_after - not_before, 3650 * 86400 + 3600);
            assert!(subject.contains(&format!("CN={cn}")), "{subject}");
            assert_eq!(subject, issuer, "self-signed");
            with_certificate("ca", &ca.cert_pem, |cert| {
                let bc = cert.basic_constraints().unwrap().unwrap();
                assert!(bc.value.ca);
                let ku = cert.key_usage().unwrap().unwrap().value;
                assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
                Ok(())
            })
            .unwrap();
            assert!(ca.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        }
        assert!(
            pki.service_account
                .public_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        assert!(
            pki.service_account
                .key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn debug_redacts_private_keys() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let debug = format!("{pki:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert!(debug.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn pki_round_trips_through_serde() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let json = serde_json::to_string(&pki).unwrap();
        let back: ClusterPki = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pki);
    }

    #[test]
    fn ca_cert_hash_is_sha256_of_spki() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let hash = ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap();
        let hex = hash.strip_prefix("sha256:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        // Same key, same hash; another CA, another hash.
        assert_eq!(ca_cert_hash(&pki.kubernetes_ca.cert_pem).unwrap(), hash);
        assert_ne!(ca_cert_hash(&pki.etcd_ca.cert_pem).unwrap(), hash);
        assert!(matches!(
            ca_cert_hash("not a certificate"),
            Err(BootstrapError::ParseCertificate { .. })
        ));
    }

    #[test]
    fn service_ip_is_first_host_of_service_cidr() {
        let ip = |cidr| service_ips(cidr).unwrap();
        assert_eq!(
            ip("10.96.0.0/12"),
            vec!["10.96.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            ip("172.20.0.0/16"),
            vec!["172.20.0.1".parse::<IpAddr>().unwrap()]
        );
        // Host bits are masked off.
        assert_eq!(
            ip("10.100.7.9/12"),
            vec!["10.96.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            ip("10.96.0.0/12, fd00:10:96::/108"),
            vec![
                "10.96.0.1".parse::<IpAddr>().unwrap(),
                "fd00:10:96::1".parse::<IpAddr>().unwrap()
            ]
        );
        for bad in ["10.96.0.0", "10.96.0.0/32", "10.96.0.0/x", "banana/12", ""] {
            assert!(
                matches!(service_ips(bad), Err(BootstrapError::InvalidCidr { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn apiserver_cert_covers_in_cluster_names_and_addresses() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let sans = ApiServerSans {
            service_cidr: "10.96.0.0/12".to_string(),
            load_balancer_address: "192.0.2.10".to_string(),
            floating_ip: Some("203.0.113.7".to_string()),
            extra: vec!["api.demo.example".to_string(), "192.0.2.10".to_string()],
        };
        let cert = issue_apiserver_cert(&pki, &sans, now()).unwrap();
        let (not_before, not_after, names, subject, issuer) = parse(&cert.cert_pem);
        assert_eq!(not_before, now().timestamp() - 3600);
        assert_eq!(not_after, now().timestamp() + 365 * 86400);
        assert_eq!(subject, "CN=kube-apiserver");
        assert_eq!(issuer, parse(&pki.kubernetes_ca.cert_pem).3);
        assert_eq!(
            names,
            [
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:localhost",
                "IP:10.96.0.1",
                "IP:127.0.0.1",
                "IP:192.0.2.10",
                "IP:203.0.113.7",
                "DNS:api.demo.example",
            ]
        );
        with_certificate("apiserver", &cert.cert_pem, |c| {
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth);
            assert!(!c.basic_constraints().unwrap().unwrap().value.ca);
            let has_aki = c.extensions().iter().any(|e| {
                matches!(
                    e.parsed_extension(),
                    ParsedExtension::AuthorityKeyIdentifier(_)
                )
            });
            assert!(has_aki);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn admin_cert_is_short_lived_cluster_admin() {
        let pki = ClusterPki::generate("demo", now()).unwrap();
        let ttl = std::time::Duration::from_secs(8 * 3600);
        let cert = issue_admin_client_cert(&pki, "alice@example.com", ttl, now()).unwrap();
        let (not_before, not_after, names, subject, _) = parse(&cert.cert_pem);
        assert_eq!(not_before, now().timestamp() - 300);
        assert_eq!(not_after, now().timestamp() + 8 * 3600);
        assert!(names.is_empty());
        assert_eq!(subject, "O=kubeadm:cluster-admins, CN=alice@example.com");
        with_certificate("admin", &cert.cert_pem, |c| {
            let eku = c.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            Ok(())
        })
        .unwrap();
        assert!(matches!(
            issue_admin_client_cert(&pki, "alice", std::time::Duration::ZERO, now()),
            Err(BootstrapError::InvalidValidity { .. })
        ));
    }

    #[test]
    fn issuing_refuses_a_ca_key_that_is_not_the_cas() {
        let mut pki = ClusterPki::generate("demo", now()).unwrap();
        pki.kubernetes_ca.key_pem = pki.etcd_ca.key_pem.clone();
        let ttl = std::time::Duration::from_secs(3600);
        assert!(matches!(
            issue_admin_client_cert(&pki, "alice", ttl, now()),
            Err(BootstrapError::CaKeyMismatch { .. })
        ));
    }
}
