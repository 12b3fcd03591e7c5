//! Validation of what clients send: every error names the field and the reason.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterSpec};
use crate::stack::{Feature, StackCatalog};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON path in camelCase, e.g. `spec.nodePools[1].replicas`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// All problems found in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl ValidationErrors {
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    pub fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

pub const MAX_NAME_LEN: usize = 63;
pub const MAX_POOL_REPLICAS: u32 = 1000;

/// Checks a DNS-1123 label: lower-case alphanumerics and '-', starting and ending with
/// an alphanumeric, at most 63 characters.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (got {})",
            name.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !name.chars().all(ok_char) || !name.starts_with(alnum) || !name.ends_with(alnum) {
        return Err(format!(
            "{name:?} is not a valid DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// The longest e-mail address SMTP carries (RFC 5321: a 256-octet path less its `<>`).
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks an e-mail address as ACME servers take it: `local@domain`, ASCII only, the
/// local part a dot-atom of RFC 5322 (no quoted strings, no spaces) and the domain a
/// host name of at least two labels. The reason never repeats a long value.
pub fn check_email(addr: &str) -> Result<(), String> {
    if addr.len() > MAX_EMAIL_LEN {
        return Err(format!(
            "is not an e-mail address: longer than {MAX_EMAIL_LEN} characters (got {})",
            addr.len()
        ));
    }
    let bad = |why: &str| Err(format!("{addr:?} is not an e-mail address: {why}"));
    if !addr.is_ascii() {
        return bad("only ASCII characters are allowed");
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return bad("it has no '@'");
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local.is_empty() || local.len() > 64 {
        return bad("the part before '@' must have 1 to 64 characters");
    }
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atext))
    {
        return bad(
            "the part before '@' may hold letters, digits, dots between them and !#$%&'*+-/=?^_`{|}~, no quotes, spaces or control characters",
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return bad("the part after '@' must be a domain name such as example.org");
    }
    Ok(())
}

/// Parses a duration such as `90s`, `10m`, `1h30m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 30s, 10m or 1h30m");
    if text.is_empty() {
        return Err(bad());
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Parses `maxUnhealthy`: a count (`2`) or a percentage (`40%`).
pub fn check_int_or_percent(text: &str) -> Result<(), String> {
    let number = text.strip_suffix('%').unwrap_or(text);
    match number.parse::<u32>() {
        Ok(p) if text.ends_with('%') && p > 100 => Err(format!("{text:?} is more than 100%")),
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{text:?} is neither a count (2) nor a percentage (40%)"
        )),
    }
}

/// Validates a whole Cluster as it arrives from a client.
pub fn validate_cluster(cluster: &Cluster, stacks: &StackCatalog) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if cluster.api_version != crate::meta::API_VERSION {
        errs.push(
            "apiVersion",
            format!(
                "must be {:?} (got {:?})",
                crate::meta::API_VERSION,
                cluster.api_version
            ),
        );
    }
    if cluster.kind != "Cluster" {
        errs.push(
            "kind",
            format!("must be \"Cluster\" (got {:?})", cluster.kind),
        );
    }
    if let Err(reason) = check_dns_label(&cluster.metadata.name) {
        errs.push("metadata.name", reason);
    }
    validate_spec(&cluster.spec, stacks, &mut errs);
    errs.into_result()
}

fn validate_spec(spec: &ClusterSpec, stacks: &StackCatalog, errs: &mut ValidationErrors) {
    crate::registry::validate_mirrors(&spec.registry.mirrors, "spec.registry.mirrors", errs);
    if let Some(stack) = stacks.find(&spec.stack) {
        // An optional part the cluster asks for must be one its stack offers.
        let asked = [
            (
                "spec.addons.ingress",
                spec.addons.ingress.is_some(),
                Feature::Ingress,
            ),
            (
                "spec.addons.gateway",
                spec.addons.gateway.is_some(),
                Feature::Gateway,
            ),
            (
                "spec.addons.certManager",
                spec.addons.cert_manager.is_some(),
                Feature::CertManager,
            ),
            (
                "spec.addons.registry",
                spec.addons.registry,
                Feature::Registry,
            ),
        ];
        for (field, on, feature) in asked {
            if on
                && !stack
                    .spec
                    .addons
                    .iter()
                    .any(|a| a.feature() == Some(feature))
            {
                errs.push(
                    field,
                    format!("stack {} offers no such addon", stack.name()),
                );
            }
        }
    } else {
        let known = stacks.names();
        errs.push(
            "spec.stack",
            format!(
                "unknown cluster stack {:?}; known: {}",
                spec.stack,
                known.join(", ")
            ),
        );
    }
    let cp = &spec.control_plane;
    if ![1, 3, 5].contains(&cp.replicas) {
        errs.push(
            "spec.controlPlane.replicas",
            format!(
                "must be 1, 3 or 5 so that etcd keeps a quorum (got {})",
                cp.replicas
            ),
        );
    }
    if cp.flavor.trim().is_empty() {
        errs.push("spec.controlPlane.flavor", "must not be empty");
    }
    match cp.max_surge {
        1 => {}
        0 if cp.replicas >= 3 => {}
        0 => errs.push(
            "spec.controlPlane.maxSurge",
            format!(
                "0 needs 3 or 5 replicas: removing the only control plane first would lose etcd (got {} replica)",
                cp.replicas
            ),
        ),
        n => errs.push(
            "spec.controlPlane.maxSurge",
            format!("must be 0 or 1: control planes are replaced one at a time (got {n})"),
        ),
    }
    let mut names = BTreeSet::new();
    for (i, pool) in spec.node_pools.iter().enumerate() {
        let at = |f: &str| format!("spec.nodePools[{i}].{f}");
        if let Err(reason) = check_dns_label(&pool.name) {
            errs.push(at("name"), reason);
        } else if pool.name == crate::machine::CONTROL_PLANE_POOL {
            errs.push(
                at("name"),
                "\"control-plane\" is reserved for the control plane",
            );
        } else if !names.insert(pool.name.as_str()) {
            errs.push(
                at("name"),
                format!("duplicate node pool name {:?}", pool.name),
            );
        }
        if pool.replicas > MAX_POOL_REPLICAS {
            errs.push(
                at("replicas"),
                format!(
                    "must be between 0 and {MAX_POOL_REPLICAS} (got {})",
                    pool.replicas
                ),
            );
        }
        if pool.flavor.trim().is_empty() {
            errs.push(at("flavor"), "must not be empty");
        }
        for (j, taint) in pool.taints.iter().enumerate() {
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&taint.effect.as_str()) {
                errs.push(
                    format!("spec.nodePools[{i}].taints[{j}].effect"),
                    format!(
                        "must be NoSchedule, PreferNoSchedule or NoExecute (got {:?})",
                        taint.effect
                    ),
                );
            }
        }
        if let Some(auto) = &pool.autoscale {
            if auto.min > auto.max {
                errs.push(
                    at("autoscale"),
                    format!("min ({}) is greater than max ({})", auto.min, auto.max),
                );
            }
            if auto.max > MAX_POOL_REPLICAS {
                errs.push(
                    at("autoscale.max"),
                    format!("must be at most {MAX_POOL_REPLICAS}"),
                );
            }
        }
    }
    validate_network(spec, errs);
    for (i, cidr) in spec.api_access.allowed_cidrs.iter().enumerate() {
        if let Err(e) = cidr.parse::<IpNet>() {
            errs.push(
                format!("spec.apiAccess.allowedCidrs[{i}]"),
                format!("{cidr:?} is not a CIDR: {e}"),
            );
        }
    }
    if let Some(cm) = &spec.addons.cert_manager {
        if let Err(reason) = check_email(&cm.acme_email) {
            errs.push("spec.addons.certManager.acmeEmail", reason);
        }
        if !["letsencrypt-staging", "letsencrypt-production"].contains(&cm.issuer.as_str()) {
            errs.push(
                "spec.addons.certManager.issuer",
                format!(
                    "must be letsencrypt-staging or letsencrypt-production (got {:?})",
                    cm.issuer
                ),
            );
        }
    }
    for (field, value) in [
        ("spec.rollout.drainTimeout", &spec.rollout.drain_timeout),
        (
            "spec.health.nodeStartupTimeout",
            &spec.health.node_startup_timeout,
        ),
        (
            "spec.health.unhealthyTimeout",
            &spec.health.unhealthy_timeout,
        ),
    ] {
        if let Err(reason) = parse_duration(value) {
            errs.push(field, reason);
        }
    }
    if let Err(reason) = check_int_or_percent(&spec.health.max_unhealthy) {
        errs.push("spec.health.maxUnhealthy", reason);
    }
    if spec.rollout.max_surge == 0 && spec.rollout.max_unavailable == 0 {
        errs.push(
            "spec.rollout",
            "maxSurge and maxUnavailable must not both be 0: no rollout could make progress",
        );
    }
}

fn validate_network(spec: &ClusterSpec, errs: &mut ValidationErrors) {
    let net = &spec.network;
    let mut parsed: Vec<(&str, IpNet)> = Vec::new();
    for (field, text) in [
        ("spec.network.nodeCidr", &net.node_cidr),
        ("spec.network.podCidr", &net.pod_cidr),
        ("spec.network.serviceCidr", &net.service_cidr),
    ] {
        match text.parse::<IpNet>() {
            Ok(cidr) if cidr.trunc() != cidr => errs.push(
                field,
                format!("{text:?} has host bits set; did you mean {}?", cidr.trunc()),
            ),
            Ok(cidr) => parsed.push((field, cidr)),
            Err(e) => errs.push(field, format!("{text:?} is not a CIDR: {e}")),
        }
    }
    for (i, (field_a, a)) in parsed.iter().enumerate() {
        for (field_b, b) in &parsed[i + 1..] {
            if a.contains(b) || b.contains(a) {
                errs.push(*field_b, format!("{b} overlaps {field_a} ({a})"));
            }
        }
    }
    if let Some((_, node)) = parsed.iter().find(|(f, _)| *f == "spec.network.nodeCidr") {
        // Room for the router, the load balancer and 3 + 5 × 1000 machines is not
        // needed, but a node subnet must fit at least the control plane and some workers.
        if node.prefix_len() > node.max_prefix_len().saturating_sub(4) {
            errs.push(
                "spec.network.nodeCidr",
                format!("{node} is too small: use a /28 or larger"),
            );
        }
    }
    for (i, dns) in net.dns_servers.iter().enumerate() {
        if dns.parse::<std::net::IpAddr>().is_err() {
            errs.push(
                format!("spec.network.dnsServers[{i}]"),
                format!("{dns:?} is not an IP address"),
            );
        }
    }
    if net.external_network.trim().is_empty() {
        errs.push("spec.network.externalNetwork", "must not be empty");
    }
    if let Some(mtu) = net.mtu
        && !(1280..=9000).contains(&mtu)
    {
        errs.push(
            "spec.network.mtu",
            format!("must be between 1280 and 9000 (got {mtu})"),
        );
    }
}

/// Checks a change of spec against the rules of what may change after creation.
/// `running` is the Kubernetes version the control plane runs now, if known.
pub fn validate_cluster_update(
    old: &ClusterSpec,
    new: &ClusterSpec,
    running: Option<&str>,
    stacks: &StackCatalog,
) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if old.stack != new.stack
        && let (Some(from), Some(to)) = (stacks.find(&old.stack), stacks.find(&new.stack))
    {
        // From the older of what the spec says and what runs: a rollout still under
        // way must finish before the next minor.
        if let Err(reason) = stacks.check_change(from, to, running) {
            errs.push(
                "spec.stack",
                format!("{} → {}: {reason}", old.stack, new.stack),
            );
        }
    }
    if old.network != new.network {
        for (field, a, b) in [
            (
                "spec.network.nodeCidr",
                &old.network.node_cidr,
                &new.network.node_cidr,
            ),
            (
                "spec.network.podCidr",
                &old.network.pod_cidr,
                &new.network.pod_cidr,
            ),
            (
                "spec.network.serviceCidr",
                &old.network.service_cidr,
                &new.network.service_cidr,
            ),
            (
                "spec.network.externalNetwork",
                &old.network.external_network,
                &new.network.external_network,
            ),
        ] {
            if a != b {
                errs.push(field, format!("is immutable after creation (was {a:?})"));
            }
        }
        if old.network.mtu != new.network.mtu {
            errs.push("spec.network.mtu", "is immutable after creation");
        }
    }
    errs.into_result()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cluster::NodePool;

    fn stacks() -> StackCatalog {
        StackCatalog::builtin().unwrap()
    }

    fn fields(cluster: &Cluster) -> Vec<String> {
        match validate_cluster(cluster, &stacks()) {
            Ok(()) => Vec::new(),
            Err(e) => e.0.into_iter().map(|f| f.field).collect(),
        }
    }

    fn cluster() -> Cluster {
        Cluster::new("demo", ClusterSpec::default())
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(fields(&cluster()), Vec::<String>::new());
    }

    #[test]
    fn optional_addons_must_be_offered_by_the_stack() {
        let mut c = cluster();
        c.spec.addons.ingress = Some(crate::cluster::IngressAddon {
            proxy_protocol: true,
        });
        assert!(fields(&c).is_empty());
        // The built-in stacks have no Gateway API implementation pinned (yet) and no
        // registry.
        c.spec.addons.gateway = Some(crate::cluster::GatewayAddon {
            proxy_protocol: true,
        });
        c.spec.addons.registry = true;
        assert_eq!(fields(&c), ["spec.addons.gateway", "spec.addons.registry"]);
    }

    #[test]
    fn names() {
        for bad in ["Bad_Name", "", "-a", "a-", "UPPER", &"a".repeat(64), "a.b"] {
            let mut c = cluster();
            c.metadata.name = bad.to_owned();
            assert_eq!(fields(&c), ["metadata.name"], "{bad:?}");
        }
        for good in ["a", "a-b", "x1", &"a".repeat(63)] {
            let mut c = cluster();
            c.metadata.name = good.to_owned();
            assert!(fields(&c).is_empty(), "{good:?}");
        }
    }

    #[test]
    fn acme_emails_are_addresses_and_nothing_else() {
        let with_email = |email: &str| {
            let mut c = cluster();
            c.spec.addons.cert_manager = Some(crate::cluster::CertManagerAddon {
                acme_email: email.to_owned(),
                issuer: "letsencrypt-staging".to_owned(),
            });
            fields(&c)
        };
        for good in [
            "ops@example.org",
            "first.last+tag@sub.example.co.uk",
            "o'neil@example.org",
            "x@a-b.example",
        ] {
            assert!(with_email(good).is_empty(), "{good:?}");
        }
        let long = format!("{}@example.org", "a".repeat(300));
        for bad in [
            "",
            "x\"@y.z",
            "no-at-sign",
            "@example.org",
            "a@",
            "a@localhost",
            "a b@example.org",
            "a@exa mple.org",
            "a..b@example.org",
            ".a@example.org",
            "a@-example.org",
            "a@example.org\n[Global]",
            "jos\u{e9}@example.org",
            "\"a\"@example.org",
            &long,
        ] {
            assert_eq!(
                with_email(bad),
                ["spec.addons.certManager.acmeEmail"],
                "{bad:?}"
            );
        }
        let reason = check_email(&long).unwrap_err();
        assert!(reason.len() < 120, "a long value is not repeated: {reason}");
    }

    #[test]
    fn control_plane_replicas() {
        for (n, ok) in [
            (0, false),
            (1, true),
            (2, false),
            (3, true),
            (4, false),
            (5, true),
            (7, false),
        ] {
            let mut c = cluster();
            c.spec.control_plane.replicas = n;
            assert_eq!(fields(&c).is_empty(), ok, "{n}");
        }
        let mut c = cluster();
        c.spec.control_plane.replicas = 2;
        let err = validate_cluster(&c, &stacks()).unwrap_err();
        assert_eq!(err.0[0].field, "spec.controlPlane.replicas");
        assert!(err.0[0].reason.contains("1, 3 or 5"), "{}", err.0[0].reason);
    }

    #[test]
    fn control_plane_max_surge() {
        for (replicas, surge, ok) in [
            (1, 1, true),
            (1, 0, false),
            (3, 0, true),
            (5, 0, true),
            (3, 1, true),
            (3, 2, false),
        ] {
            let mut c = cluster();
            c.spec.control_plane.replicas = replicas;
            c.spec.control_plane.max_surge = surge;
            let errs = fields(&c);
            assert_eq!(errs.is_empty(), ok, "{replicas} replicas, maxSurge {surge}");
            if !ok {
                assert_eq!(errs, ["spec.controlPlane.maxSurge"], "{replicas}/{surge}");
            }
        }
    }

    #[test]
    fn pools() {
        let mut c = cluster();
        c.spec.node_pools = vec![NodePool::new("a", 1000), NodePool::new("b", 0)];
        assert!(fields(&c).is_empty());
        c.spec.node_pools = vec![
            NodePool::new("a", 1001),
            NodePool::new("a", 1),
            NodePool::new("control-plane", 1),
        ];
        assert_eq!(
            fields(&c),
            [
                "spec.nodePools[0].replicas",
                "spec.nodePools[1].name",
                "spec.nodePools[2].name"
            ]
        );
    }

    #[test]
    fn cidrs_parse_and_do_not_overlap() {
        let mut c = cluster();
        c.spec.network.pod_cidr = "10.0.0.0/16".to_owned(); // contains the node CIDR
        assert_eq!(fields(&c), ["spec.network.podCidr"]);
        let mut c = cluster();
        c.spec.network.service_cidr = "10.96.0.0/33".to_owned();
        assert_eq!(fields(&c), ["spec.network.serviceCidr"]);
        let mut c = cluster();
        c.spec.network.node_cidr = "10.0.0.1/24".to_owned();
        assert_eq!(fields(&c), ["spec.network.nodeCidr"]);
        let mut c = cluster();
        c.spec.network.node_cidr = "10.0.0.0/30".to_owned();
        assert_eq!(fields(&c), ["spec.network.nodeCidr"]);
        let mut c = cluster();
        c.spec.network.pod_cidr = "10.96.128.0/17".to_owned(); // inside the service CIDR
        let err = validate_cluster(&c, &stacks()).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert!(err.0[0].reason.contains("overlaps"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "10", "m", "10x", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(check_int_or_percent("40%").is_ok());
        assert!(check_int_or_percent("2").is_ok());
        assert!(check_int_or_percent("101%").is_err());
        assert!(check_int_or_percent("x").is_err());
    }

    #[test]
    fn network_is_immutable() {
        let old = ClusterSpec::default();
        let mut new = old.clone();
        new.network.pod_cidr = "10.200.0.0/16".to_owned();
        let err = validate_cluster_update(&old, &new, None, &stacks()).unwrap_err();
        assert_eq!(err.0[0].field, "spec.network.podCidr");
        let mut new = old.clone();
        new.control_plane.replicas = 5;
        assert!(validate_cluster_update(&old, &new, None, &stacks()).is_ok());
    }

    #[test]
    fn stack_changes_move_one_minor_at_a_time() {
        let spec = |stack: &str| ClusterSpec {
            stack: stack.to_owned(),
            ..ClusterSpec::default()
        };
        assert!(
            validate_cluster_update(
                &spec("scs-1.35"),
                &spec("scs-1.36"),
                Some("v1.35.9"),
                &stacks()
            )
            .is_ok()
        );
        let err = validate_cluster_update(&spec("scs-1.35"), &spec("scs-1.37"), None, &stacks())
            .unwrap_err();
        assert_eq!(err.0[0].field, "spec.stack");
        assert!(err.0[0].reason.contains("skips a minor version"), "{err}");
        // The spec says 1.36 but the control plane still runs 1.35: 1.37 must wait.
        let err = validate_cluster_update(
            &spec("scs-1.36"),
            &spec("scs-1.37"),
            Some("v1.35.9"),
            &stacks(),
        )
        .unwrap_err();
        assert!(err.0[0].reason.contains("1.35"), "{err}");
        assert!(
            validate_cluster_update(&spec("scs-1.36"), &spec("scs-1.35"), None, &stacks()).is_err()
        );
    }
}
