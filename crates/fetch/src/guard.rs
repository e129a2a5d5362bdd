use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lennonnet_http::AddressPolicy;

/// Why `ip` is not a public internet address, or `None` if it is.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation")
            } else if seg[0] == 0x64
                && seg[1] == 0xff9b
                && v6_embedded_v4(v6).is_some_and(|v4| v4_reason(v4).is_some())
            {
                Some("NAT64 of a non-public address")
            } else {
                None
            }
        }
    }
}

fn v6_embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

fn v4_reason(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("loopback")
    } else if v4.is_private() {
        Some("private")
    } else if v4.is_link_local() {
        Some("link-local")
    } else if v4.is_multicast() {
        Some("multicast")
    } else if v4.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if v4.is_broadcast() {
        Some("broadcast")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared address space (carrier-grade NAT)")
    } else if o[0] >= 240 {
        Some("reserved")
    } else if v4.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

/// The address guard: refuses non-public addresses unless allowed. Plugged into the HTTP
/// client's resolver, it sees every address a host name resolves to, on every redirect hop; the
/// downloader checks IP-literal hosts (which never reach a resolver) itself.
#[derive(Debug, Clone, Copy)]
pub struct AddressGuard {
    pub allow_private: bool,
}

impl AddressGuard {
    /// `Err(reason)` if connecting to `ip` is refused.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        match forbidden_reason(ip) {
            None => Ok(()),
            Some(kind) => Err(format!(
                "{ip} is a {kind} address; set [http] allow_private_addresses = true to allow it"
            )),
        }
    }
}

impl AddressPolicy for AddressGuard {
    fn check(&self, _host: &str, addr: IpAddr) -> Result<(), String> {
        self.check_ip(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_named() {
        let check = |ip: &str, expected: Option<&str>| {
            assert_eq!(forbidden_reason(ip.parse().unwrap()), expected, "{ip}");
        };
        check("127.0.0.1", Some("loopback"));
        check("10.1.2.3", Some("private"));
        check("172.16.0.1", Some("private"));
        check("192.168.1.1", Some("private"));
        check("169.254.169.254", Some("link-local"));
        check("224.0.0.1", Some("multicast"));
        check("0.0.0.0", Some("unspecified"));
        check("255.255.255.255", Some("broadcast"));
        check(
            "100.64.0.1",
            Some("shared address space (carrier-grade NAT)"),
        );
        check("::1", Some("loopback"));
        check("::", Some("unspecified"));
        check("fd00::1", Some("private (unique local)"));
        check("fe80::1", Some("link-local"));
        check("ff02::1", Some("multicast"));
        check("::ffff:127.0.0.1", Some("loopback"));
        check("::ffff:10.0.0.1", Some("private"));
        check("64:ff9b::a00:1", Some("NAT64 of a non-public address"));
        check("8.8.8.8", None);
        check("2606:4700::1111", None);
        check("100.128.0.1", None);
    }

    #[test]
    fn the_guard_obeys_the_setting() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            AddressGuard {
                allow_private: false
            }
            .check_ip(ip)
            .unwrap_err()
            .contains("allow_private_addresses")
        );
        assert!(
            AddressGuard {
                allow_private: true
            }
            .check_ip(ip)
            .is_ok()
        );
    }
}
