//! Which peer a connection or a failed login counts against.
//!
//! Budgets keyed by the raw address are trivially escaped over IPv6: one host routinely owns a
//! whole /64 and can pick a fresh /128 per socket. So IPv6 peers are keyed by their /64 prefix,
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4
//! clients) by their IPv4 address, and IPv4 peers by their address.
use std::net::{IpAddr, Ipv6Addr};

/// The key a peer's connection and failed-auth budgets are counted under.
pub(crate) fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_peers_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(other));
        assert_eq!(peer_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv4_and_mapped_ipv4_are_the_same_peer() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(peer_key(mapped), v4);
        assert_eq!(peer_key(v4), v4);
        assert_ne!(peer_key("192.0.2.8".parse().unwrap()), v4);
    }

    #[test]
    fn the_key_of_ipv6_loopback_is_not_loopback() {
        // ::1 masked to /64 is `::`, which is not loopback; callers that exempt or reserve
        // loopback must test the original address, never the key.
        assert!(!peer_key(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_loopback());
    }
}
