//! Who the client is: the socket's peer address, or — only when that peer is a trusted
//! reverse proxy (`server.trusted_proxies`) — the right-most untrusted address of
//! `X-Forwarded-For`. A client can never pick its own key by sending the header directly.

use std::net::IpAddr;

use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses IPs (`10.0.0.1`) and CIDR ranges (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer` with these `X-Forwarded-For`
    /// header values (in order).
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // Garbage in the chain: stop at the last address we could trust.
                Err(_) => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as plain IPv4, so one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).unwrap();
        let cases: &[(&TrustedProxies, &str, &[&str], &str)] = &[
            // Untrusted peer: its own address, whatever it claims.
            (&none, "203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            (&proxies, "203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            // Trusted proxy: the right-most untrusted hop.
            (&proxies, "127.0.0.1", &["1.2.3.4"], "1.2.3.4"),
            (
                &proxies,
                "127.0.0.1",
                &["6.6.6.6, 1.2.3.4, 10.1.2.3"],
                "1.2.3.4",
            ),
            (&proxies, "127.0.0.1", &["6.6.6.6", "1.2.3.4"], "1.2.3.4"),
            // Trusted proxy without the header, or only proxies in it.
            (&proxies, "127.0.0.1", &[], "127.0.0.1"),
            (&proxies, "127.0.0.1", &["10.9.9.9"], "10.9.9.9"),
            // Garbage hops end the walk at the last trusted address.
            (&proxies, "127.0.0.1", &["1.2.3.4, nonsense"], "127.0.0.1"),
            // IPv4-mapped IPv6 peers are their IPv4 address.
            (&proxies, "::ffff:127.0.0.1", &["1.2.3.4"], "1.2.3.4"),
            (&none, "::ffff:198.51.100.7", &[], "198.51.100.7"),
        ];
        for (trusted, peer, header, want) in cases {
            let got = trusted.client_ip(ip(peer), header.iter().copied());
            assert_eq!(got, ip(want), "peer {peer} header {header:?}");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.lan".into()]).unwrap_err();
        assert!(err.contains("proxy.lan"), "{err}");
    }
}
