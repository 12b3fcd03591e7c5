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
];

pub fn find_stack(name: &str) -> Option<&'static Stack> {
    BUILTIN_STACKS.iter().find(|s| s.name == name)
}
