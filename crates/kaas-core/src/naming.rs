//! Deterministic names and tags of the cloud resources of a cluster, so that a retry
//! finds what an interrupted attempt created.

/// The tag every cloud resource of a cluster carries.
pub fn cluster_tag(cluster_uid: &str) -> String {
    format!("kaas-cluster={cluster_uid}")
}

/// The tag a machine's server carries.
pub fn machine_tag(machine_uid: &str) -> String {
    format!("kaas-machine={machine_uid}")
}

/// The prefix of every resource name of a cluster: `kaas-NAME-UID8`. The uid part keeps
/// a recreated cluster of the same name apart from the remains of an older one.
pub fn resource_prefix(cluster_name: &str, cluster_uid: &str) -> String {
    let short: String = cluster_uid.chars().filter(|c| *c != '-').take(8).collect();
    format!("kaas-{cluster_name}-{short}")
}

/// The Secret holding a tenant's OpenStack application credential.
pub const TENANT_CREDENTIALS_SECRET: &str = "openstack-credentials";

/// The Secret holding a cluster's CAs and service-account key.
pub fn pki_secret(cluster_name: &str) -> String {
    format!("{cluster_name}-pki")
}

/// The Secret holding a machine's bootstrap token and user data.
pub fn bootstrap_secret(machine_name: &str) -> String {
    format!("{machine_name}-bootstrap")
}

/// A machine name `CLUSTER-POOL-SUFFIX`, shortened to fit a DNS-1123 label (63).
pub fn machine_name(cluster: &str, pool: &str, suffix: &str) -> String {
    let budget = 63usize.saturating_sub(suffix.len() + 1);
    let mut prefix = format!("{cluster}-{pool}");
    if prefix.len() > budget {
        prefix.truncate(budget);
    }
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::check_dns_label;

    #[test]
    fn machine_names_are_labels() {
        let long = "a".repeat(63);
        let n = machine_name(&long, "workers", "x7k2p");
        assert!(check_dns_label(&n).is_ok(), "{n}");
        assert!(n.ends_with("-x7k2p"));
        assert_eq!(
            machine_name("demo", "workers", "abcde"),
            "demo-workers-abcde"
        );
        let n = machine_name(&format!("{}-b", "a".repeat(55)), "w", "abcde");
        assert!(check_dns_label(&n).is_ok(), "{n}");
    }

    #[test]
    fn prefix_uses_uid() {
        assert_eq!(
            resource_prefix("demo", "1a2b3c4d-5e6f-0000"),
            "kaas-demo-1a2b3c4d"
        );
    }
}
