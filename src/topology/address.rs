//! `provider.local.address`: the address a local operator's nodes listen on and advertise.
//! Only an address of this machine works, and the kernel is the judge: binding a socket to
//! it succeeds exactly when it is one of ours (all of 127.0.0.0/8 is on Linux).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// Parses `text` and checks that it is a unicast address of this machine (not a wildcard,
/// multicast or broadcast address: the kernel lets a UDP socket bind those too).
pub fn check_local_address(text: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("address {text:?} is not an IP address"))?;
    if ip.is_unspecified() {
        return Err(format!(
            "address {ip} listens on every interface; name one address of this machine"
        ));
    }
    let not_unicast = match ip {
        IpAddr::V4(v4) => {
            if v4.is_multicast() {
                Some("a multicast address (224.0.0.0/4)")
            } else if v4.is_broadcast() {
                Some("the broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => v6
            .is_multicast()
            .then_some("a multicast address (ff00::/8)"),
    };
    if let Some(what) = not_unicast {
        return Err(format!(
            "address {ip} is {what}; a node listens on and advertises one unicast address of this machine"
        ));
    }
    UdpSocket::bind(SocketAddr::new(ip, 0))
        .map(|_| ip)
        .map_err(|e| format!("address {ip} is not an address of this machine ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_range_is_local_and_foreign_addresses_are_not() {
        assert_eq!(
            check_local_address("127.0.0.2").unwrap().to_string(),
            "127.0.0.2"
        );
        assert!(check_local_address("127.0.0.1").is_ok());
        let e = check_local_address("192.0.2.10").unwrap_err();
        assert!(e.contains("not an address of this machine"), "{e}");
        let e = check_local_address("0.0.0.0").unwrap_err();
        assert!(e.contains("every interface"), "{e}");
        // Issue 20 item 14: the kernel binds UDP to these, but no node can listen there.
        for bad in ["224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1"] {
            let e = check_local_address(bad).unwrap_err();
            assert!(e.contains("unicast"), "{bad}: {e}");
        }
        let e = check_local_address("localhost").unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
    }
}
