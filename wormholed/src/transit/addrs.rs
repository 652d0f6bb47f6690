//! The local addresses advertised as direct hints when none are configured.
//!
//! Like the reference's `ipaddrs.find_addresses` filtered by `Common._build_listener`: every
//! address of every interface except loopback, unless loopback is all there is. IPv6 link-local
//! addresses are left out: without a scope id a peer cannot dial them.

use std::net::{IpAddr, Ipv4Addr};

/// Every non-loopback address of this host, or `127.0.0.1` if there is none.
pub(crate) fn local_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .iter()
            .map(if_addrs::Interface::ip)
            .filter(|ip| usable(*ip))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not list local addresses for transit hints");
            Vec::new()
        }
    };
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    out
}

fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_loopback_and_link_local() {
        assert!(!usable("127.0.0.1".parse().expect("ip")));
        assert!(!usable("::1".parse().expect("ip")));
        assert!(!usable("fe80::1".parse().expect("ip")));
        assert!(usable("10.1.2.3".parse().expect("ip")));
        assert!(usable("2001:db8::1".parse().expect("ip")));
        let found = local_addresses();
        assert!(!found.is_empty());
        assert!(found.iter().all(|ip| usable(*ip) || ip.is_loopback()));
    }
}
