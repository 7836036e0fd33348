//! Capability grants: the outbound `scheme://host:port` pattern grammar, the
//! declared ∩ granted intersection, and the per-address socket check that
//! enforces it (every denial is logged).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::config::Grants;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Proto {
    Any,
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPat {
    Any,
    Ip(IpAddr),
    Cidr(Ipv4Addr, u8),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PortPat {
    lo: u16,
    hi: u16,
}

/// One parsed outbound pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    text: String,
    scheme: String,
    proto: Proto,
    host: HostPat,
    port: PortPat,
}

impl Outbound {
    /// Parses `scheme://host:port`. Errors name the problem.
    pub fn parse(s: &str) -> Result<Outbound, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("outbound pattern {s:?} must look like scheme://host:port"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty() {
            return Err(format!("outbound pattern {s:?} has an empty scheme"));
        }
        let proto = match scheme.as_str() {
            "*" => Proto::Any,
            "udp" => Proto::Udp,
            _ => Proto::Tcp,
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r
                .split_once("]:")
                .ok_or_else(|| format!("outbound pattern {s:?}: IPv6 host needs [addr]:port"))?;
            (h, p)
        } else {
            rest.rsplit_once(':').ok_or_else(|| {
                format!("outbound pattern {s:?} needs a port (a number, a..b or *)")
            })?
        };
        let host = if host == "*" {
            HostPat::Any
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPat::Ip(ip)
        } else if let Some((ip, bits)) = host.split_once('/') {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("outbound pattern {s:?}: bad CIDR"))?;
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= 32)
                .ok_or_else(|| format!("outbound pattern {s:?}: bad CIDR prefix"))?;
            HostPat::Cidr(ip, bits)
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            HostPat::Name(host.to_ascii_lowercase())
        } else {
            return Err(format!(
                "outbound pattern {s:?}: host must be a name, an IP, a CIDR or *"
            ));
        };
        let port = if port == "*" {
            PortPat {
                lo: 0,
                hi: u16::MAX,
            }
        } else if let Some((a, b)) = port.split_once("..") {
            let lo: u16 = a
                .parse()
                .map_err(|_| format!("outbound pattern {s:?}: bad port range"))?;
            let hi: u16 = b
                .parse()
                .map_err(|_| format!("outbound pattern {s:?}: bad port range"))?;
            if lo > hi {
                return Err(format!("outbound pattern {s:?}: empty port range"));
            }
            PortPat { lo, hi }
        } else {
            let p: u16 = port
                .parse()
                .map_err(|_| format!("outbound pattern {s:?}: bad port {port:?}"))?;
            PortPat { lo: p, hi: p }
        };
        Ok(Outbound {
            text: s.to_string(),
            scheme,
            proto,
            host,
            port,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when every address `other` allows is also allowed by `self`.
    fn covers(&self, other: &Outbound) -> bool {
        let scheme_ok = self.scheme == "*" || self.scheme == other.scheme;
        let port_ok = self.port.lo <= other.port.lo && other.port.hi <= self.port.hi;
        let host_ok = match (&self.host, &other.host) {
            (HostPat::Any, _) => true,
            (_, HostPat::Any) => false,
            (HostPat::Ip(a), HostPat::Ip(b)) => a == b,
            (HostPat::Name(a), HostPat::Name(b)) => a == b,
            (HostPat::Cidr(net, bits), HostPat::Ip(IpAddr::V4(ip))) => in_cidr(*ip, *net, *bits),
            (HostPat::Cidr(n1, b1), HostPat::Cidr(n2, b2)) => b1 <= b2 && in_cidr(*n2, *n1, *b1),
            _ => false,
        };
        scheme_ok && port_ok && host_ok
    }

    fn needs_dns(&self) -> bool {
        matches!(self.host, HostPat::Name(_))
    }

    /// An IP or CIDR pattern (or `*`) that holds `ip`; a name pattern never does.
    fn host_has_ip(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPat::Any => true,
            HostPat::Ip(p) => *p == ip,
            HostPat::Cidr(net, bits) => match ip {
                IpAddr::V4(v4) => in_cidr(v4, *net, *bits),
                IpAddr::V6(_) => false,
            },
            HostPat::Name(_) => false,
        }
    }

    fn proto_allows(&self, udp: bool) -> bool {
        match self.proto {
            Proto::Any => true,
            Proto::Udp => udp,
            Proto::Tcp => !udp,
        }
    }
}

fn in_cidr(ip: Ipv4Addr, net: Ipv4Addr, bits: u8) -> bool {
    if bits == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - u32::from(bits));
    (u32::from(ip) & mask) == (u32::from(net) & mask)
}

/// Checks every pattern of a grant set; returns the first error.
pub fn validate(g: &Grants) -> Result<(), String> {
    for o in &g.outbound {
        Outbound::parse(o)?;
    }
    for d in &g.dirs {
        if !d.starts_with('/') {
            return Err(format!("directory {d:?} must be an absolute path"));
        }
    }
    for e in &g.env {
        if e.is_empty() || e.contains('=') {
            return Err(format!("environment variable name {e:?} is invalid"));
        }
    }
    Ok(())
}

/// The effective set: for each declared entry covered by a grant the declared
/// one, for each grant narrower than a declaration the grant. Also returns
/// what was declared and not granted (logged as denials by the caller).
pub fn intersect(declared: &Grants, granted: &Grants) -> (Grants, Vec<String>) {
    let mut eff = Grants::default();
    let mut denied = Vec::new();
    let gs: Vec<Outbound> = granted
        .outbound
        .iter()
        .filter_map(|g| Outbound::parse(g).ok())
        .collect();
    for d in &declared.outbound {
        let Ok(dp) = Outbound::parse(d) else {
            denied.push(format!("outbound {d} (unparsable)"));
            continue;
        };
        let mut hit = false;
        for g in &gs {
            let pick = if g.covers(&dp) {
                Some(dp.text.clone())
            } else if dp.covers(g) {
                Some(g.text.clone())
            } else {
                None
            };
            if let Some(p) = pick {
                hit = true;
                if !eff.outbound.contains(&p) {
                    eff.outbound.push(p);
                }
            }
        }
        if !hit {
            denied.push(format!("outbound {d}"));
        }
    }
    for d in &declared.dirs {
        match resolve_within(d, &granted.dirs) {
            Ok(real) => {
                if !eff.dirs.contains(&real) {
                    eff.dirs.push(real);
                }
            }
            Err(why) => {
                // Grants inside a broader declaration (a plugin that reads
                // files the user names, such as certificates, declares "/"):
                // exactly those granted directories.
                let narrower: Vec<String> = granted
                    .dirs
                    .iter()
                    .filter_map(|g| resolve_within(g, std::slice::from_ref(d)).ok())
                    .collect();
                if granted.dirs.is_empty() {
                    denied.push(format!("dir {d}"));
                } else if narrower.is_empty() {
                    denied.push(format!("dir {d} ({why})"));
                }
                for real in narrower {
                    if !eff.dirs.contains(&real) {
                        eff.dirs.push(real);
                    }
                }
            }
        }
    }
    for e in &declared.env {
        if granted.env.contains(e) {
            eff.env.push(e.clone());
        } else {
            denied.push(format!("env {e}"));
        }
    }
    (eff, denied)
}

/// Resolves a requested directory (`..` and every symlink, with the real
/// file system) and checks the result lies inside one of the operator's
/// granted directories, resolved the same way. Paths are compared by
/// components, never as text. Returns the resolved path.
pub fn resolve_within(requested: &str, granted: &[String]) -> Result<String, String> {
    let real = std::fs::canonicalize(requested).map_err(|e| format!("cannot be resolved: {e}"))?;
    if !real.is_dir() {
        return Err(format!("{} is not a directory", real.display()));
    }
    let inside = granted.iter().any(|g| {
        std::fs::canonicalize(g)
            .map(|root| real.starts_with(&root))
            .unwrap_or(false)
    });
    let text = real
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", real.display()))?
        .to_string();
    if inside {
        Ok(text)
    } else {
        Err(format!(
            "resolves to {text}, outside every granted directory"
        ))
    }
}

/// The check made again when an instance is created: each effective
/// directory (resolved at install or load, so free of `..` and symlinks,
/// and then inside an operator grant) must still resolve to itself. A path
/// component replaced by a symlink since (the granted directory itself
/// included) makes it resolve elsewhere, and the instance is refused.
pub fn recheck_dirs(effective: &[String]) -> Result<(), String> {
    for d in effective {
        match std::fs::canonicalize(d) {
            Ok(real) if real.as_os_str() == d.as_str() && real.is_dir() => {}
            Ok(real) => {
                return Err(format!(
                    "granted directory {d} now resolves to {}; not opened",
                    real.display()
                ))
            }
            Err(e) => return Err(format!("granted directory {d} cannot be resolved: {e}")),
        }
    }
    Ok(())
}

type DnsCache = Arc<Mutex<HashMap<(String, u16), Vec<IpAddr>>>>;

/// Enforces an effective outbound set on resolved socket addresses.
#[derive(Clone)]
pub struct SocketPolicy {
    plugin: Arc<str>,
    rules: Arc<Vec<Outbound>>,
    dns: DnsCache,
}

impl SocketPolicy {
    pub fn new(plugin: Arc<str>, effective: &Grants) -> Self {
        SocketPolicy {
            plugin,
            rules: Arc::new(
                effective
                    .outbound
                    .iter()
                    .filter_map(|o| Outbound::parse(o).ok())
                    .collect(),
            ),
            dns: Arc::default(),
        }
    }

    pub fn needs_dns(&self) -> bool {
        self.rules.iter().any(Outbound::needs_dns)
    }

    async fn resolve(&self, name: &str, port: u16) -> Vec<IpAddr> {
        let key = (name.to_string(), port);
        if let Some(v) = self.dns.lock().get(&key) {
            return v.clone();
        }
        let ips: Vec<IpAddr> = match tokio::net::lookup_host((name, port)).await {
            Ok(it) => it.map(|a| a.ip()).collect(),
            Err(_) => Vec::new(),
        };
        self.dns.lock().insert(key, ips.clone());
        ips
    }

    async fn matches(&self, addr: SocketAddr, udp: bool) -> bool {
        for r in self.rules.iter() {
            if !r.proto_allows(udp) || addr.port() < r.port.lo || addr.port() > r.port.hi {
                continue;
            }
            let ok = match &r.host {
                HostPat::Name(n) => self.resolve(n, addr.port()).await.contains(&addr.ip()),
                _ => r.host_has_ip(addr.ip()),
            };
            if ok {
                return true;
            }
        }
        false
    }

    /// Decides one outbound HTTP request to `scheme://host:port` (the URI as
    /// the plugin wrote it): allowed when a granted pattern whose scheme is
    /// the request's, `tcp` or `*` covers the port and the host (a name
    /// pattern: the same name; an IP or CIDR pattern: the literal address, or
    /// every address a name resolves to). Logs denials.
    pub async fn check_http(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_l = host.to_ascii_lowercase();
        let literal: Option<IpAddr> = host_l.parse().ok();
        let mut allowed = false;
        for r in self.rules.iter() {
            let scheme_ok = r.scheme == "*" || r.scheme == "tcp" || r.scheme == scheme;
            if !scheme_ok || port < r.port.lo || port > r.port.hi {
                continue;
            }
            allowed = match (&r.host, literal) {
                (HostPat::Any, _) => true,
                (HostPat::Name(n), _) => *n == host_l,
                (_, Some(ip)) => r.host_has_ip(ip),
                (_, None) => {
                    let ips = self.resolve(&host_l, port).await;
                    !ips.is_empty() && ips.into_iter().all(|ip| r.host_has_ip(ip))
                }
            };
            if allowed {
                break;
            }
        }
        if !allowed {
            tracing::warn!(plugin = %self.plugin, url = %format!("{scheme}://{host}:{port}"), "wasm plugin: HTTP request denied (not granted)");
        }
        allowed
    }

    /// Decides one socket use; logs denials with what was refused.
    pub async fn check(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        let allowed = match usage {
            // Implicit binds before connect/send use the wildcard address and
            // port 0. They are harmless (listening is never allowed) and
            // letting them through means the connect or send that follows is
            // checked, and logged with its real target, even for a plugin
            // that was granted no network at all.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                addr.ip().is_unspecified() && addr.port() == 0
            }
            SocketAddrUse::TcpConnect => self.matches(addr, false).await,
            SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => self.matches(addr, true).await,
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
        };
        if !allowed {
            tracing::warn!(plugin = %self.plugin, %addr, usage = ?usage, "wasm plugin: network access denied (not granted)");
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(outbound: &[&str]) -> Grants {
        Grants {
            outbound: outbound.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn parse_rejects_bad_patterns() {
        assert!(Outbound::parse("tcp://127.0.0.1:4222").is_ok());
        assert!(Outbound::parse("tcp://*:*").is_ok());
        assert!(Outbound::parse("udp://10.0.0.0/8:1000..2000").is_ok());
        assert!(Outbound::parse("127.0.0.1:4222")
            .unwrap_err()
            .contains("scheme://"));
        assert!(Outbound::parse("tcp://host").unwrap_err().contains("port"));
        assert!(Outbound::parse("tcp://h:9..1")
            .unwrap_err()
            .contains("empty"));
        assert!(Outbound::parse("tcp://a b:1").is_err());
    }

    #[test]
    fn intersection_keeps_the_narrower_side_and_reports_denials() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("in")).unwrap();
        let data = root.display().to_string();
        let declared = Grants {
            outbound: vec![
                "tcp://127.0.0.1:4222".into(),
                "tcp://example.com:443".into(),
            ],
            env: vec!["TOKEN".into()],
            dirs: vec![format!("{data}/in")],
        };
        let granted = Grants {
            outbound: vec!["tcp://127.0.0.1:*".into()],
            env: vec![],
            dirs: vec![data.clone()],
        };
        let (eff, denied) = intersect(&declared, &granted);
        assert_eq!(eff.outbound, vec!["tcp://127.0.0.1:4222".to_string()]);
        assert_eq!(eff.dirs, vec![format!("{data}/in")]);
        assert!(eff.env.is_empty());
        assert_eq!(
            denied,
            vec![
                "outbound tcp://example.com:443".to_string(),
                "env TOKEN".to_string()
            ]
        );
        // A wide declaration is narrowed to the grant.
        let (eff, _) = intersect(&g(&["tcp://*:*"]), &g(&["tcp://127.0.0.1:4222"]));
        assert_eq!(eff.outbound, vec!["tcp://127.0.0.1:4222".to_string()]);
        // Nothing declared: nothing effective, whatever is granted.
        let (eff, denied) = intersect(&Grants::default(), &g(&["tcp://*:*"]));
        assert!(eff.is_empty() && denied.is_empty());
    }

    fn dirs(v: &[String]) -> Grants {
        Grants {
            dirs: v.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn directories_are_compared_after_resolving_dot_dot_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let data = root.join("srv/data");
        let etc = root.join("etc");
        std::fs::create_dir_all(data.join("in")).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        std::os::unix::fs::symlink(&etc, data.join("link")).unwrap();
        let granted = vec![data.display().to_string()];
        let d = data.display();
        // `..` leaves the grant although the text starts with it.
        let (eff, denied) = intersect(&dirs(&[format!("{d}/../../etc")]), &dirs(&granted));
        assert!(eff.dirs.is_empty(), "{eff:?}");
        assert!(
            denied[0].contains("outside every granted directory"),
            "{denied:?}"
        );
        // A symlink inside the grant pointing out is resolved and refused.
        let (eff, denied) = intersect(&dirs(&[format!("{d}/link")]), &dirs(&granted));
        assert!(eff.dirs.is_empty(), "{eff:?}");
        assert!(denied[0].contains(&etc.display().to_string()), "{denied:?}");
        // `..` that stays inside is reduced to the resolved path.
        let (eff, denied) = intersect(&dirs(&[format!("{d}/in/../in")]), &dirs(&granted));
        assert_eq!(eff.dirs, vec![format!("{d}/in")]);
        assert!(denied.is_empty());
        // A prefix that is not a path component does not count.
        std::fs::create_dir_all(root.join("srv/database")).unwrap();
        let (eff, _) = intersect(
            &dirs(&[root.join("srv/database").display().to_string()]),
            &dirs(&granted),
        );
        assert!(eff.dirs.is_empty());
        // Missing directories are refused, not passed through.
        let (eff, denied) = intersect(&dirs(&[format!("{d}/nope")]), &dirs(&granted));
        assert!(eff.dirs.is_empty() && denied[0].contains("cannot be resolved"));
        // A broad declaration ("/": files the user names) gets exactly the
        // grants inside it, resolved; none granted, it is denied.
        let (eff, denied) = intersect(
            &dirs(&["/".to_string()]),
            &dirs(&[format!("{d}/in/.."), format!("{d}/link")]),
        );
        assert_eq!(eff.dirs, vec![d.to_string(), etc.display().to_string()]);
        assert!(denied.is_empty(), "{denied:?}");
        let (eff, denied) = intersect(&dirs(&["/".to_string()]), &Grants::default());
        assert!(eff.dirs.is_empty() && denied[0].starts_with("dir /"));
    }

    #[test]
    fn the_recheck_notices_a_directory_swapped_for_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let data = root.join("data");
        std::fs::create_dir_all(data.join("in")).unwrap();
        std::fs::create_dir_all(root.join("secret")).unwrap();
        let eff = vec![data.join("in").display().to_string()];
        recheck_dirs(&eff).unwrap();
        std::fs::remove_dir(data.join("in")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), data.join("in")).unwrap();
        let e = recheck_dirs(&eff).unwrap_err();
        assert!(e.contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn socket_policy_allows_only_granted_addresses() {
        let p = SocketPolicy::new(
            "t".into(),
            &g(&["tcp://127.0.0.1:4222", "tcp://10.1.0.0/16:80..90"]),
        );
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(
            p.check(a("127.0.0.1:4222"), SocketAddrUse::TcpConnect)
                .await
        );
        assert!(
            !p.check(a("127.0.0.1:4223"), SocketAddrUse::TcpConnect)
                .await
        );
        assert!(p.check(a("10.1.2.3:85"), SocketAddrUse::TcpConnect).await);
        assert!(!p.check(a("10.2.2.3:85"), SocketAddrUse::TcpConnect).await);
        assert!(p.check(a("0.0.0.0:0"), SocketAddrUse::TcpBind).await);
        assert!(!p.check(a("0.0.0.0:8080"), SocketAddrUse::TcpBind).await);
        assert!(!p.check(a("0.0.0.0:0"), SocketAddrUse::TcpListen).await);
        assert!(!p.check(a("127.0.0.1:4222"), SocketAddrUse::UdpSend).await);
        let none = SocketPolicy::new("t".into(), &Grants::default());
        assert!(
            !none
                .check(a("127.0.0.1:4222"), SocketAddrUse::TcpConnect)
                .await
        );
        // The implicit wildcard bind before a connect passes, so that the
        // connect itself is refused and logged with its target.
        assert!(none.check(a("0.0.0.0:0"), SocketAddrUse::TcpBind).await);
        assert!(!none.check(a("0.0.0.0:9000"), SocketAddrUse::TcpBind).await);
        assert!(!none.check(a("127.0.0.1:53"), SocketAddrUse::UdpSend).await);
        assert!(!none.check(a("0.0.0.0:0"), SocketAddrUse::TcpListen).await);
    }
}
