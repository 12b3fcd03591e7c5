//! The flavors every simulated cloud offers: OpenStack's classic `m1` set and the
//! flavors the SCS flavor standard (scs-0103) makes mandatory. Each flavor's id is its
//! name.

use kaas_cloud::Flavor;

/// Name, vCPUs, RAM in MiB, root disk in GiB (0: boots from a volume).
const FLAVORS: &[(&str, u32, u64, u64)] = &[
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
    ("SCS-1L-1", 1, 1024, 0),
    ("SCS-1V-2", 1, 2048, 0),
    ("SCS-1V-4", 1, 4096, 0),
    ("SCS-1V-8", 1, 8192, 0),
    ("SCS-2V-4", 2, 4096, 0),
    ("SCS-2V-4-20s", 2, 4096, 20),
    ("SCS-2V-8", 2, 8192, 0),
    ("SCS-2V-16", 2, 16384, 0),
    ("SCS-4V-8", 4, 8192, 0),
    ("SCS-4V-16", 4, 16384, 0),
    ("SCS-4V-16-100s", 4, 16384, 100),
    ("SCS-4V-32", 4, 32768, 0),
    ("SCS-8V-16", 8, 16384, 0),
    ("SCS-8V-32", 8, 32768, 0),
    ("SCS-16V-32", 16, 32768, 0),
];

/// Every flavor the cloud offers.
pub fn all() -> Vec<Flavor> {
    FLAVORS
        .iter()
        .map(|&(name, vcpus, ram_mib, disk_gib)| Flavor {
            id: name.to_owned(),
            name: name.to_owned(),
            vcpus,
            ram_mib,
            disk_gib,
        })
        .collect()
}

/// Whether the cloud offers the flavor `name` (by name or id, which are the same).
pub fn offered(name: &str) -> bool {
    FLAVORS.iter().any(|(n, ..)| *n == name)
}

/// Nova's words for a flavor it does not have.
pub fn not_found(name: &str) -> String {
    format!("Flavor {name} could not be found.")
}
