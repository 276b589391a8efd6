//! Where outbound webhooks may go. payhub posts events to URLs that integrators (`WebhookURL`) and admins
//! (webhook endpoints) give it, so a URL naming loopback, the private network or a cloud metadata service would
//! make payhub a proxy into places its callers cannot reach. Only public targets are taken unless the
//! installation allows private ones ([`WebhookTargets::AnyHost`], the sandbox's and the tests' setting).
//!
//! The classification here is pure: the host as the URL parser normalised it (so `2130706433`, `0x7f.1` and
//! `0177.0.0.1` arrive as `127.0.0.1`), and addresses. Resolving names and connecting only to the addresses
//! checked is the delivery's part (`processing::outbox::deliver`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Which webhook targets are taken, at input and at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookTargets {
    /// Only hosts on the public internet (the default).
    PublicOnly,
    /// Any host, also loopback and private networks (`allow_private_webhook_targets`).
    AnyHost,
}

impl WebhookTargets {
    /// The rule for the `allow_private_webhook_targets` setting.
    pub fn allowing_private(allow: bool) -> Self {
        if allow {
            Self::AnyHost
        } else {
            Self::PublicOnly
        }
    }

    /// Whether a URL's host may be a target, judged without resolving it: an address literal by its range, a
    /// name by its form (a public-looking name is checked again, resolved, when an event is sent).
    pub fn check_url(self, url: &Url) -> Result<(), RefusedTarget> {
        match (self, url.host()) {
            (Self::AnyHost, _) => Ok(()),
            (Self::PublicOnly, None) => {
                Err(RefusedTarget { host: String::new(), reason: NotPublic::LocalName, resolved: None })
            }
            (Self::PublicOnly, Some(host)) => classify_host(&host).map_err(|reason| RefusedTarget {
                host: url.host_str().unwrap_or_default().to_owned(),
                reason,
                resolved: None,
            }),
        }
    }

    /// At send time, before any name is resolved: a host that is an address literal, judged by its range (a
    /// name passes here; [`WebhookTargets::check_resolved`] judges what it resolves to).
    pub fn check_literal(self, url: &Url) -> Result<(), RefusedTarget> {
        match url.host() {
            Some(Host::Domain(_)) => Ok(()),
            _ => self.check_url(url),
        }
    }

    /// Whether `host` may be reached at `addresses`, what it resolved to: every one of them must be public.
    pub fn check_resolved(self, host: &str, addresses: &[IpAddr]) -> Result<(), RefusedTarget> {
        if self == Self::AnyHost {
            return Ok(());
        }
        for address in addresses {
            classify_ip(*address).map_err(|reason| RefusedTarget {
                host: host.to_owned(),
                reason,
                resolved: Some(*address),
            })?;
        }
        Ok(())
    }
}

/// A target refused because it is not public; its message names the host (and the address it resolved to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RefusedTarget {
    /// The URL's host as written (normalised by the URL parser).
    pub host: String,
    /// Why it is not public.
    pub reason: NotPublic,
    /// The address the name resolved to that is not public, when the refusal came after resolving.
    pub resolved: Option<IpAddr>,
}

impl fmt::Display for RefusedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resolved {
            Some(address) => write!(f, "{} resolves to {address}, {}", self.host, self.reason),
            None if self.host.is_empty() => write!(f, "the URL has no host"),
            None => write!(f, "{} is {}", self.host, self.reason),
        }
    }
}

/// Why a host or address is not on the public internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotPublic {
    /// `0.0.0.0`, `::` (and the rest of 0.0.0.0/8).
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// Shared address space (carrier-grade NAT), 100.64.0.0/10.
    Shared,
    /// 169.254.0.0/16 (where cloud metadata services answer), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// Any other range not routed on the internet (benchmarking, protocol assignments, 240/4, IPv6 outside
    /// 2000::/3, IPv4-compatible IPv6, Teredo and the other 2001::/23 assignments).
    Reserved,
    /// `localhost`, `*.localhost` and the other names that only mean something locally (`.local`, `.internal`,
    /// `.home.arpa`, `.localdomain`).
    LocalName,
    /// A name without a dot, which the resolver completes from the machine's search domains.
    SingleLabel,
}

impl fmt::Display for NotPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "the unspecified address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private network address",
            Self::Shared => "a shared (carrier-grade NAT) address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique-local address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Reserved => "a reserved address",
            Self::LocalName => "a local name",
            Self::SingleLabel => "a name without a dot",
        })
    }
}

/// A URL host: an address by its range, a name by its form.
pub fn classify_host(host: &Host<&str>) -> Result<(), NotPublic> {
    match host {
        Host::Ipv4(ip) => classify_v4(*ip),
        Host::Ipv6(ip) => classify_v6(*ip),
        Host::Domain(name) => classify_name(name),
    }
}

/// A domain name (lower case, as the URL parser gives it): refused when it only means something locally.
pub fn classify_name(name: &str) -> Result<(), NotPublic> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    const LOCAL: [&str; 5] = ["localhost", "local", "internal", "home.arpa", "localdomain"];
    if LOCAL.iter().any(|suffix| name == *suffix || name.ends_with(&format!(".{suffix}"))) {
        return Err(NotPublic::LocalName);
    }
    if !name.contains('.') {
        return Err(NotPublic::SingleLabel);
    }
    Ok(())
}

/// An address: `Ok` only when it is routed on the public internet.
pub fn classify_ip(ip: IpAddr) -> Result<(), NotPublic> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), NotPublic> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        _ if ip.is_unspecified() => NotPublic::Unspecified,
        (0, _, _) => NotPublic::Reserved,
        (127, _, _) => NotPublic::Loopback,
        (10, _, _) | (192, 168, _) => NotPublic::Private,
        (172, 16..=31, _) => NotPublic::Private,
        (100, 64..=127, _) => NotPublic::Shared,
        (169, 254, _) => NotPublic::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => NotPublic::Documentation,
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => NotPublic::Reserved,
        _ if ip.is_broadcast() => NotPublic::Broadcast,
        (224..=239, _, _) => NotPublic::Multicast,
        (240..=255, _, _) => NotPublic::Reserved,
        _ => return Ok(()),
    };
    Err(reason)
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), NotPublic> {
    // An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) reaches that IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    let reason = match s {
        _ if ip.is_unspecified() => NotPublic::Unspecified,
        _ if ip.is_loopback() => NotPublic::Loopback,
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that a gateway reaches.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return classify_v4(embedded_v4(high, low)),
        [0x2002, high, low, ..] => return classify_v4(embedded_v4(high, low)),
        [0, 0, 0, 0, 0, 0, _, _] => NotPublic::Reserved,
        [first, ..] if first & 0xfe00 == 0xfc00 => NotPublic::UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => NotPublic::LinkLocal,
        [first, ..] if first & 0xff00 == 0xff00 => NotPublic::Multicast,
        [0x2001, 0x0db8, ..] => NotPublic::Documentation,
        [first, ..] if first & 0xfff0 == 0x3ff0 => NotPublic::Documentation,
        [0x2001, second, ..] if second < 0x0200 => NotPublic::Reserved,
        [first, ..] if first & 0xe000 != 0x2000 => NotPublic::Reserved,
        _ => return Ok(()),
    };
    Err(reason)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn host_of(url: &str) -> Result<(), NotPublic> {
        classify_host(&Url::parse(url).unwrap().host().unwrap())
    }

    fn ip(text: &str) -> Result<(), NotPublic> {
        classify_ip(text.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges_off_the_internet_are_refused_with_their_reason() {
        for (address, reason) in [
            ("0.0.0.0", NotPublic::Unspecified),
            ("0.1.2.3", NotPublic::Reserved),
            ("127.0.0.1", NotPublic::Loopback),
            ("127.255.0.9", NotPublic::Loopback),
            ("10.0.0.5", NotPublic::Private),
            ("172.16.0.1", NotPublic::Private),
            ("172.31.255.255", NotPublic::Private),
            ("192.168.1.10", NotPublic::Private),
            ("100.64.0.1", NotPublic::Shared),
            ("100.127.255.255", NotPublic::Shared),
            ("169.254.169.254", NotPublic::LinkLocal),
            ("192.0.2.1", NotPublic::Documentation),
            ("198.51.100.7", NotPublic::Documentation),
            ("203.0.113.200", NotPublic::Documentation),
            ("192.0.0.8", NotPublic::Reserved),
            ("198.18.0.1", NotPublic::Reserved),
            ("224.0.0.1", NotPublic::Multicast),
            ("239.255.255.250", NotPublic::Multicast),
            ("240.0.0.1", NotPublic::Reserved),
            ("255.255.255.255", NotPublic::Broadcast),
        ] {
            assert_eq!(ip(address), Err(reason), "{address}");
        }
    }

    #[test]
    fn public_ipv4_addresses_next_to_those_ranges_are_taken() {
        for address in
            ["8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0", "169.253.1.1"]
        {
            assert_eq!(ip(address), Ok(()), "{address}");
        }
    }

    #[test]
    fn ipv6_is_public_only_in_global_unicast_and_mapped_addresses_are_judged_as_ipv4() {
        for (address, reason) in [
            ("::", NotPublic::Unspecified),
            ("::1", NotPublic::Loopback),
            ("::ffff:127.0.0.1", NotPublic::Loopback),
            ("::ffff:169.254.169.254", NotPublic::LinkLocal),
            ("::ffff:10.1.2.3", NotPublic::Private),
            ("::127.0.0.1", NotPublic::Reserved),
            ("64:ff9b::a9fe:a9fe", NotPublic::LinkLocal),
            ("2002:7f00:1::", NotPublic::Loopback),
            ("fc00::1", NotPublic::UniqueLocal),
            ("fd12:3456::1", NotPublic::UniqueLocal),
            ("fe80::1", NotPublic::LinkLocal),
            ("ff02::1", NotPublic::Multicast),
            ("2001:db8::1", NotPublic::Documentation),
            ("3fff::1", NotPublic::Documentation),
            ("2001::1", NotPublic::Reserved),
            ("100::1", NotPublic::Reserved),
            ("fec0::1", NotPublic::Reserved),
        ] {
            assert_eq!(ip(address), Err(reason), "{address}");
        }
        for address in ["2a00:1450:4010:c05::64", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            assert_eq!(ip(address), Ok(()), "{address}");
        }
    }

    #[test]
    fn odd_ipv4_spellings_are_normalised_by_the_url_parser_and_then_refused() {
        for url in ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/", "http://127.0.0.1./"]
        {
            assert_eq!(host_of(url), Err(NotPublic::Loopback), "{url}");
        }
        assert_eq!(host_of("http://[::ffff:7f00:1]/"), Err(NotPublic::Loopback));
        assert_eq!(host_of("http://0xa9fea9fe/"), Err(NotPublic::LinkLocal));
    }

    #[test]
    fn local_and_dotless_names_are_refused_and_public_names_taken_unresolved() {
        for name in ["localhost", "LOCALHOST.", "api.localhost", "printer.local", "db.internal", "nas.home.arpa"] {
            assert_eq!(classify_name(name), Err(NotPublic::LocalName), "{name}");
        }
        for name in ["intranet", "metadata", "vm."] {
            assert_eq!(classify_name(name), Err(NotPublic::SingleLabel), "{name}");
        }
        for name in ["hooks.example.org", "example.org.", "localhost.example.org", "internal.example.com"] {
            assert_eq!(classify_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn the_rule_says_which_host_and_address_it_refused() {
        let rule = WebhookTargets::PublicOnly;
        let refused = rule.check_url(&Url::parse("http://169.254.169.254/latest/meta-data").unwrap()).unwrap_err();
        assert_eq!(refused.to_string(), "169.254.169.254 is a link-local address");
        assert_eq!(
            rule.check_url(&Url::parse("http://[::1]:8080/").unwrap()).unwrap_err().to_string(),
            "[::1] is a loopback address"
        );
        assert!(rule.check_url(&Url::parse("https://hooks.example.org/x").unwrap()).is_ok());
        let named = Url::parse("http://localhost:8080/").unwrap();
        assert!(rule.check_url(&named).is_err());
        assert!(rule.check_literal(&named).is_ok(), "a name is judged at send time by what it resolves to");
        assert!(rule.check_literal(&Url::parse("http://10.0.0.5/").unwrap()).is_err());

        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(rule.check_resolved("hooks.example.org", &[public]).is_ok());
        let refused = rule.check_resolved("rebind.example.org", &[public, loopback]).unwrap_err();
        assert_eq!(refused.to_string(), "rebind.example.org resolves to 127.0.0.1, a loopback address");
    }

    #[test]
    fn allowing_private_targets_takes_every_host() {
        let rule = WebhookTargets::allowing_private(true);
        assert_eq!(rule, WebhookTargets::AnyHost);
        assert!(rule.check_url(&Url::parse("http://localhost:9/").unwrap()).is_ok());
        assert!(rule.check_resolved("localhost", &["127.0.0.1".parse().unwrap()]).is_ok());
        assert_eq!(WebhookTargets::allowing_private(false), WebhookTargets::PublicOnly);
    }
}
