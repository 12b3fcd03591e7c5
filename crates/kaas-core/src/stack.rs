//! The cluster stacks kaas knows. A stack pins the Kubernetes version and node image of
//! a cluster. (Stacks as data folders, with addons and upgrade paths, replace this table.)

/// The stack a cluster gets when its spec names none.
pub const DEFAULT_STACK: &str = "scs-1.33";

/// A known cluster stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    pub name: &'static str,
    pub kubernetes_version: &'static str,
    pub image: &'static str,
}

pub const BUILTIN_STACKS: &[Stack] = &[
    Stack {
        name: "scs-1.32",
        kubernetes_version: "v1.32.9",
        image: "ubuntu-capi-image-v1.32.9",
    },
    Stack {
        name: "scs-1.33",
        kubernetes_version: "v1.33.5",
        image: "ubuntu-capi-image-v1.33.5",
    },
    Stack {
        name: "scs-1.34",
        kubernetes_version: "v1.34.1",
        image: "ubuntu-capi-image-v1.34.1",
    },
];

pub fn find_stack(name: &str) -> Option<&'static Stack> {
    BUILTIN_STACKS.iter().find(|s| s.name == name)
}

/// The stack whose Kubernetes version is `version`.
pub fn stack_for_version(version: &str) -> Option<&'static Stack> {
    BUILTIN_STACKS
        .iter()
        .find(|s| s.kubernetes_version == version)
}

/// `(major, minor)` of a version such as `v1.33.5`.
pub fn minor_of(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether a cluster running `from` may move to `to` in one step: the same minor
/// (a patch update) or the next one. Kubernetes supports nothing else.
pub fn check_upgrade(from: &str, to: &str) -> Result<(), String> {
    let (Some(a), Some(b)) = (minor_of(from), minor_of(to)) else {
        return Err(format!(
            "cannot compare Kubernetes versions {from:?} and {to:?}"
        ));
    };
    if b < a {
        return Err(format!(
            "downgrading Kubernetes from {}.{} to {}.{} is not supported",
            a.0, a.1, b.0, b.1
        ));
    }
    if b.0 != a.0 || b.1 > a.1 + 1 {
        return Err(format!(
            "upgrading Kubernetes from {}.{} to {}.{} skips a minor version; upgrade one minor version at a time (to {}.{} first)",
            a.0,
            a.1,
            b.0,
            b.1,
            a.0,
            a.1 + 1
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_move_one_minor_at_a_time() {
        assert!(check_upgrade("v1.32.9", "v1.32.10").is_ok());
        assert!(check_upgrade("v1.32.9", "v1.33.5").is_ok());
        let skip = check_upgrade("v1.32.9", "v1.34.1").unwrap_err();
        assert!(
            skip.contains("skips a minor version") && skip.contains("1.33 first"),
            "{skip}"
        );
        assert!(
            check_upgrade("v1.33.5", "v1.32.9")
                .unwrap_err()
                .contains("downgrading")
        );
        assert!(check_upgrade("v1.33.5", "v2.0.0").is_err());
        assert!(check_upgrade("x", "v1.33.5").is_err());
    }

    #[test]
    fn builtin_stacks_cover_consecutive_minors() {
        let minors: Vec<u32> = BUILTIN_STACKS
            .iter()
            .filter_map(|s| minor_of(s.kubernetes_version))
            .map(|m| m.1)
            .collect();
        assert!(minors.windows(2).all(|w| w[1] == w[0] + 1), "{minors:?}");
        assert!(find_stack(DEFAULT_STACK).is_some());
    }
}
