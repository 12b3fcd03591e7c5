//! Address arithmetic for the simulated IPAM.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The first host offset handed out in a subnet (`.10`), when the subnet is big enough.
const FIRST_HOST: u128 = 10;
/// The first offset in subnets too small for [`FIRST_HOST`] (`.1` is the gateway).
const FIRST_HOST_SMALL: u128 = 2;

/// The pools floating IPs come from, in order: a documentation range (RFC 5737), then,
/// for clouds of thousands of clusters, the range set aside for benchmarks (RFC 2544).
pub(crate) const FLOATING_POOLS: &[&str] = &["203.0.113.0/24", "198.18.0.0/15"];

/// The `(first, last)` host offsets that may be allocated in `net`.
fn usable_offsets(net: &IpNet) -> Option<(u128, u128)> {
    let (size, last) = match net {
        IpNet::V4(n) => {
            let size = 1u128 << (32 - u32::from(n.prefix_len()));
            // No network and broadcast addresses.
            (size, size.checked_sub(2)?)
        }
        IpNet::V6(n) => {
            let bits = 128 - u32::from(n.prefix_len());
            let size = if bits >= 128 {
                u128::MAX
            } else {
                1u128 << bits
            };
            (size, size.checked_sub(1)?)
        }
    };
    if size < 4 {
        return None;
    }
    let first = if FIRST_HOST <= last {
        FIRST_HOST
    } else {
        FIRST_HOST_SMALL
    };
    (first <= last).then_some((first, last))
}

/// The address at `offset` from the start of `net`.
fn nth(net: &IpNet, offset: u128) -> Option<IpAddr> {
    match net {
        IpNet::V4(n) => {
            let base = u128::from(u32::from(n.network()));
            let value = u32::try_from(base.checked_add(offset)?).ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(value)))
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            Some(IpAddr::V6(Ipv6Addr::from(base.checked_add(offset)?)))
        }
    }
}

/// The next free address in `net` at or after `cursor` (wrapping around), and the
/// cursor to continue from. `None` when the subnet is full.
pub(crate) fn allocate(net: &IpNet, used: &HashSet<IpAddr>, cursor: u64) -> Option<(IpAddr, u64)> {
    let (first, last) = usable_offsets(net)?;
    let span = last - first + 1;
    let cursor = u128::from(cursor);
    let start = if (first..=last).contains(&cursor) {
        cursor
    } else {
        first
    };
    // Among used.len() + 1 distinct candidates at least one is free.
    let tries = span.min(
        u128::try_from(used.len())
            .unwrap_or(u128::MAX)
            .saturating_add(1),
    );
    for i in 0..tries {
        let offset = first + (start - first + i) % span;
        let address = nth(net, offset)?;
        if !used.contains(&address) {
            let next = u64::try_from(offset + 1).unwrap_or(0);
            return Some((address, next));
        }
    }
    None
}

/// Whether two networks share any address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_from_ten_sequentially_and_skips_used() {
        let n = net("10.0.0.0/24");
        let mut used = HashSet::new();
        let (a, c) = allocate(&n, &used, 0).unwrap();
        assert_eq!(a.to_string(), "10.0.0.10");
        used.insert(a);
        let (b, c) = allocate(&n, &used, c).unwrap();
        assert_eq!(b.to_string(), "10.0.0.11");
        used.insert(b);
        // A stale cursor pointing at a used address moves on.
        let (d, _) = allocate(&n, &used, 10).unwrap();
        assert_eq!(d.to_string(), "10.0.0.12");
        assert_eq!(c, 12);
    }

    #[test]
    fn wraps_around_and_reports_a_full_subnet() {
        let n = net("192.168.1.0/29"); // hosts .1-.6, allocatable .2-.6
        let mut used = HashSet::new();
        let mut cursor = 0;
        for expected in 2..=6 {
            let (a, c) = allocate(&n, &used, cursor).unwrap();
            assert_eq!(a.to_string(), format!("192.168.1.{expected}"));
            used.insert(a);
            cursor = c;
        }
        assert!(allocate(&n, &used, cursor).is_none());
        used.remove(&"192.168.1.3".parse::<IpAddr>().unwrap());
        let (a, _) = allocate(&n, &used, cursor).unwrap();
        assert_eq!(a.to_string(), "192.168.1.3");
        assert!(allocate(&net("10.0.0.0/31"), &HashSet::new(), 0).is_none());
    }

    #[test]
    fn ipv6_and_overlap() {
        let (a, _) = allocate(&net("fd00::/64"), &HashSet::new(), 0).unwrap();
        assert_eq!(a.to_string(), "fd00::a");
        assert!(overlaps(&net("10.0.0.0/16"), &net("10.0.5.0/24")));
        assert!(overlaps(&net("10.0.5.0/24"), &net("10.0.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
    }
}
