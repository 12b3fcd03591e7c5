//! The flavors every simulated cloud offers: OpenStack's classic `m1` set and the
//! flavors the SCS flavor standard (scs-0103) makes mandatory. Each flavor's id is its
//! name.

/// Name, vCPUs, RAM in MiB.
const FLAVORS: &[(&str, u32, u32)] = &[
    ("m1.tiny", 1, 512),
    ("m1.small", 1, 2048),
    ("m1.medium", 2, 4096),
    ("m1.large", 4, 8192),
    ("m1.xlarge", 8, 16384),
    ("SCS-1L-1", 1, 1024),
    ("SCS-1V-2", 1, 2048),
    ("SCS-1V-4", 1, 4096),
    ("SCS-1V-8", 1, 8192),
    ("SCS-2V-4", 2, 4096),
    ("SCS-2V-4-20s", 2, 4096),
    ("SCS-2V-8", 2, 8192),
    ("SCS-2V-16", 2, 16384),
    ("SCS-4V-8", 4, 8192),
    ("SCS-4V-16", 4, 16384),
    ("SCS-4V-16-100s", 4, 16384),
    ("SCS-4V-32", 4, 32768),
    ("SCS-8V-16", 8, 16384),
    ("SCS-8V-32", 8, 32768),
    ("SCS-16V-32", 16, 32768),
];

/// The vCPUs of the flavor `name`, if the cloud offers it.
pub fn vcpus(name: &str) -> Option<u32> {
    FLAVORS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, vcpus, _)| *vcpus)
}

/// Nova's words for a flavor it does not have.
pub fn not_found(name: &str) -> String {
    format!("Flavor {name} could not be found.")
}
