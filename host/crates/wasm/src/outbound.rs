//! Outbound requests under the operator's control: which URIs a plugin
//! install or a data import may fetch.
//!
//! - the scheme must be listed (`file`, `http`, `https` by default);
//! - `file://` paths must lie under an allowed directory (the data dir and the
//!   operator's list), checked on the text first and then on the real path
//!   (symlinks resolved), so a path outside is refused without revealing
//!   whether it exists;
//! - `http(s)://` hosts may be anything public; internal addresses (loopback,
//!   private, link-local such as the cloud metadata service 169.254.169.254,
//!   unique-local, ...) are refused unless the host, address or network is
//!   listed. Names are checked on the addresses they resolve to, at connect
//!   time (no window for DNS rebinding), and every redirect is checked again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oort_core::paths::AllowedDirs;

/// A host the operator allows even when it is internal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    /// A host name (lower case), matched exactly.
    Name(String),
    /// An address or a network (`10.0.0.0/8`, `::1`).
    Net(ipnet::IpNet),
}

#[derive(Debug, Default)]
struct Rules {
    /// `None`: no restriction at all (see [`OutboundPolicy::unrestricted`]).
    schemes: Option<Vec<String>>,
    hosts: Vec<HostRule>,
    /// `None`: any file.
    files: Option<AllowedDirs>,
}

/// The operator's allow list for outbound requests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    rules: Arc<Rules>,
}

/// What a URI resolved to after the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The real path of a `file://` URI.
    File(PathBuf),
    /// An `http(s)://` URL (its host is checked again when connecting).
    Http(reqwest::Url),
}

impl Default for OutboundPolicy {
    /// No restriction: for embedding the plugin host in tests and tools. The
    /// server builds its policy from its configuration ([`OutboundPolicy::new`]).
    fn default() -> Self {
        Self::unrestricted()
    }
}

impl OutboundPolicy {
    /// Any scheme this host fetches, any host, any file.
    pub fn unrestricted() -> Self {
        OutboundPolicy {
            rules: Arc::new(Rules::default()),
        }
    }

    /// `schemes`: allowed URI schemes; `allowed_hosts`: host names, addresses
    /// or networks (CIDR) allowed even when internal; `file_dirs`: where
    /// `file://` URIs may point (give the data dir too).
    pub fn new(
        schemes: &[String],
        allowed_hosts: &[String],
        file_dirs: impl IntoIterator<Item = PathBuf>,
    ) -> Result<Self, String> {
        let mut s = Vec::new();
        for x in schemes {
            let x = x.trim().to_ascii_lowercase();
            if !matches!(x.as_str(), "file" | "http" | "https") {
                return Err(format!(
                    "outbound.schemes: unknown scheme {x:?} (expected file, http or https)"
                ));
            }
            s.push(x);
        }
        let mut hosts = Vec::new();
        for h in allowed_hosts {
            let h = h.trim().trim_start_matches('[').trim_end_matches(']');
            if h.is_empty() {
                return Err("outbound.allowed_hosts: empty entry".into());
            }
            let rule = if let Ok(net) = h.parse::<ipnet::IpNet>() {
                HostRule::Net(net)
            } else if let Ok(ip) = h.parse::<IpAddr>() {
                HostRule::Net(ipnet::IpNet::from(ip))
            } else if h.contains('/') {
                return Err(format!("outbound.allowed_hosts: invalid network {h:?}"));
            } else {
                HostRule::Name(h.to_ascii_lowercase())
            };
            hosts.push(rule);
        }
        Ok(OutboundPolicy {
            rules: Arc::new(Rules {
                schemes: Some(s),
                hosts,
                files: Some(AllowedDirs::new(file_dirs)),
            }),
        })
    }

    /// Checks a URI before anything is read or sent.
    pub fn check(&self, uri: &str) -> Result<Target, String> {
        let r = &self.rules;
        let scheme = uri
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        if !matches!(scheme.as_str(), "file" | "http" | "https") {
            return Err(format!(
                "unsupported URI {uri:?}: use file://, http:// or https://"
            ));
        }
        if let Some(allowed) = &r.schemes {
            if !allowed.contains(&scheme) {
                return Err(format!(
                    "URI {uri:?} is not allowed: the scheme {scheme} is not in outbound.schemes of the server config"
                ));
            }
        }
        if scheme == "file" {
            // Parsed as a URI: percent-escapes (`%20`) decode and
            // `file://localhost/...` is the local host, as RFC 8089 says.
            let path = url::Url::parse(uri)
                .ok()
                .filter(|u| u.host_str().is_none_or(|h| h.eq_ignore_ascii_case("localhost")))
                .and_then(|mut u| {
                    let _ = u.set_host(None);
                    u.to_file_path().ok()
                })
                .ok_or_else(|| {
                    format!(
                        "file URI {uri:?} must hold an absolute local path (file:///path or file://localhost/path)"
                    )
                })?;
            let p = path.as_path();
            return match &r.files {
                None => Ok(Target::File(p.to_path_buf())),
                Some(dirs) => dirs.check(p).map(Target::File).map_err(|_| {
                    format!(
                        "file URI {uri:?} is not allowed: only files under the data dir and outbound.file_dirs of the server config may be read"
                    )
                }),
            };
        }
        let url = reqwest::Url::parse(uri).map_err(|e| format!("invalid URI {uri:?}: {e}"))?;
        r.check_url(&url)?;
        Ok(Target::Http(url))
    }

    /// An HTTP client that enforces the policy on every address it connects
    /// to and on every redirect.
    pub fn http_client(&self, connect_timeout: Duration) -> Result<reqwest::Client, String> {
        let rules = self.rules.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("too many redirects");
            }
            let url = attempt.url().clone();
            match rules.check_url(&url) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(format!("redirect refused: {e}")),
            }
        });
        let mut b = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(redirect);
        if self.rules.schemes.is_some() {
            // A proxy would connect on our behalf to addresses we never see.
            b = b.no_proxy().dns_resolver(Arc::new(GuardedResolver {
                rules: self.rules.clone(),
            }));
        }
        b.build().map_err(|e| format!("http client: {e}"))
    }
}

impl Rules {
    fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let Some(allowed) = &self.schemes else {
            return Ok(());
        };
        let scheme = url.scheme();
        if !matches!(scheme, "http" | "https") || !allowed.iter().any(|s| s == scheme) {
            return Err(format!(
                "URL {url} is not allowed: the scheme {scheme} is not in outbound.schemes of the server config"
            ));
        }
        let ip = match url.host() {
            None => return Err(format!("URL {url} has no host")),
            Some(url::Host::Domain(_)) => return Ok(()), // checked on its addresses
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        };
        if self.ip_allowed(ip) {
            Ok(())
        } else {
            Err(internal_refusal(url.as_str(), ip))
        }
    }

    fn name_listed(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.hosts
            .iter()
            .any(|h| matches!(h, HostRule::Name(n) if *n == name))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip)
            || self
                .hosts
                .iter()
                .any(|h| matches!(h, HostRule::Net(n) if n.contains(&ip)))
    }
}

fn internal_refusal(what: &str, ip: IpAddr) -> String {
    format!(
        "{what} is not allowed: {ip} is an internal address (loopback, private or link-local); list the host or network in outbound.allowed_hosts of the server config to allow it"
    )
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves names and refuses internal addresses unless listed.
struct GuardedResolver {
    rules: Arc<Rules>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.rules.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?
                .collect();
            if !rules.name_listed(&host) {
                if let Some(bad) = addrs.iter().find(|a| !rules.ip_allowed(a.ip())) {
                    let msg = internal_refusal(&format!("host {host}"), bad.ip());
                    return Err::<reqwest::dns::Addrs, BoxError>(msg.into());
                }
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// An address reachable on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast, reserved, ...).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(a)
        }
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
        || o[0] >= 240) // reserved
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 (embeds an IPv4 address)
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
}

/// Reads a checked URI: a file (at most `max` bytes) or a download (at most
/// `max` bytes within `timeout`). Error messages never give the size or the
/// content of a file.
pub async fn fetch(
    policy: &OutboundPolicy,
    uri: &str,
    max: u64,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    match policy.check(uri)? {
        Target::File(path) => {
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|e| format!("cannot read {uri}: {e}"))?;
            if !meta.is_file() {
                return Err(format!("cannot read {uri}: not a regular file"));
            }
            if meta.len() > max {
                return Err(format!("{uri} is too large (more than {max} bytes)"));
            }
            tokio::fs::read(&path)
                .await
                .map_err(|e| format!("cannot read {uri}: {e}"))
        }
        Target::Http(url) => {
            let client = policy.http_client(Duration::from_secs(10).min(timeout))?;
            match tokio::time::timeout(timeout, download(&client, url, uri, max)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "download of {uri} took longer than {} s and was abandoned",
                    timeout.as_secs_f64()
                )),
            }
        }
    }
}

async fn download(
    client: &reqwest::Client,
    url: reqwest::Url,
    uri: &str,
    max: u64,
) -> Result<Vec<u8>, String> {
    let fail = |e: reqwest::Error| format!("cannot download {uri}: {}", chain(&e));
    let mut resp = client.get(url).send().await.map_err(fail)?;
    if !resp.status().is_success() {
        return Err(format!("cannot download {uri}: HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|l| l > max) {
        return Err(format!("{uri} is too large (more than {max} bytes)"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(fail)? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(format!("{uri} is too large (more than {max} bytes)"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its causes, `: `-separated (reqwest hides the cause, such as
/// our resolver's refusal, behind "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(hosts: &[&str], dirs: Vec<PathBuf>) -> OutboundPolicy {
        let schemes: Vec<String> = ["file", "http", "https"].map(String::from).to_vec();
        let hosts: Vec<String> = hosts.iter().map(|s| s.to_string()).collect();
        OutboundPolicy::new(&schemes, &hosts, dirs).unwrap()
    }

    #[test]
    fn internal_addresses_refused_unless_listed() {
        let p = strict(&[], vec![]);
        for u in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8765/x.zip",
            "http://[::1]/x",
            "http://10.1.2.3/x",
            "http://192.168.1.1/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
        ] {
            let e = p.check(u).unwrap_err();
            assert!(e.contains("outbound.allowed_hosts"), "{u}: {e}");
        }
        assert!(p.check("https://example.com/x.zip").is_ok());
        assert!(p.check("http://93.184.216.34/x").is_ok());
        let p = strict(&["127.0.0.1", "10.0.0.0/8"], vec![]);
        assert!(p.check("http://127.0.0.1:8765/x.zip").is_ok());
        assert!(p.check("http://10.9.9.9/x").is_ok());
        assert!(p.check("http://169.254.169.254/").is_err());
    }

    #[test]
    fn schemes_and_bad_entries() {
        let p = OutboundPolicy::new(&["https".into()], &[], Vec::<PathBuf>::new()).unwrap();
        assert!(p.check("http://example.com/x").is_err());
        assert!(p.check("https://example.com/x").is_ok());
        assert!(p.check("file:///tmp/x").is_err());
        assert!(p.check("ftp://example.com/x").is_err());
        assert!(OutboundPolicy::new(&["ftp".into()], &[], Vec::<PathBuf>::new()).is_err());
        assert!(OutboundPolicy::new(&[], &["10.0.0.0/99".into()], Vec::<PathBuf>::new()).is_err());
    }

    #[test]
    fn file_uris_are_parsed_as_uris() {
        let p = OutboundPolicy::unrestricted();
        let file = |u: &str| match p.check(u) {
            Ok(Target::File(f)) => f,
            other => panic!("{u}: {other:?}"),
        };
        assert_eq!(file("file:///tmp/a%20b.zip"), PathBuf::from("/tmp/a b.zip"));
        assert_eq!(
            file("file://localhost/tmp/x.zip"),
            PathBuf::from("/tmp/x.zip")
        );
        assert_eq!(file("file:///tmp/x.zip"), PathBuf::from("/tmp/x.zip"));
        for bad in ["file://otherhost/tmp/x", "file://relative/x"] {
            let e = p.check(bad).unwrap_err();
            assert!(e.contains("absolute local path"), "{bad}: {e}");
        }
    }

    #[test]
    fn file_uris_confined_without_revealing_existence() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("p.zip"), b"x").unwrap();
        let p = strict(&[], vec![d.path().to_path_buf()]);
        let ok = format!("file://{}/p.zip", d.path().display());
        assert!(matches!(p.check(&ok), Ok(Target::File(_))));
        let esc = format!("file://{}/../../etc/shadow", d.path().display());
        let e1 = p.check(&esc).unwrap_err();
        let e2 = p.check("file:///nonexistent/x").unwrap_err();
        assert!(e1.contains("is not allowed") && e2.contains("is not allowed"));
        assert!(!e1.contains("No such file") && !e2.contains("No such file"));
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_at_connect() {
        let p = strict(&[], vec![]);
        let e = fetch(&p, "http://localhost:9/x", 10, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.contains("internal address"), "{e}");
        // Listed by name: allowed through to the (closed) port.
        let p = strict(&["localhost"], vec![]);
        let e = fetch(&p, "http://localhost:9/x", 10, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(!e.contains("internal address"), "{e}");
    }
}
