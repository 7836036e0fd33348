//! Authentication of REST requests: a static bearer token (`rest.token`)
//! and/or eKuiper's JWT scheme (`rest.jwt`): RS256 tokens whose `iss` names a
//! public key file in `<data_dir>/etc/mgmt`, whose `aud` contains `eKuiper`,
//! and which carry an `exp` in the future.

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The key directory under the data dir, as eKuiper's `etc/mgmt`.
pub const KEY_DIR: &str = "etc/mgmt";
/// The audience every token must name.
pub const AUDIENCE: &str = "eKuiper";
/// Largest public key file read.
const MAX_KEY_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// SHA-256 of the static token (compared digest to digest, so the
    /// comparison time says nothing about the token).
    token: Option<[u8; 32]>,
    /// The JWT key directory when JWT is on.
    jwt_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
}

impl Auth {
    pub fn new(token: &str, jwt: bool, data_dir: &Path) -> Auth {
        let token = token.trim();
        Auth {
            token: (!token.is_empty()).then(|| digest(token)),
            jwt_dir: jwt.then(|| data_dir.join(KEY_DIR)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.jwt_dir.is_some()
    }

    pub fn jwt_dir(&self) -> Option<&Path> {
        self.jwt_dir.as_deref()
    }

    /// Checks the `Authorization` header: `Bearer <token>` or the bare token
    /// (as eKuiper's clients send it).
    pub fn check(&self, authorization: Option<&str>) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let raw = authorization
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or("missing_token: send Authorization: Bearer <token>")?;
        let token = match raw.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => raw,
        };
        if let Some(want) = &self.token {
            if digest(token) == *want {
                return Ok(());
            }
        }
        match &self.jwt_dir {
            Some(dir) => check_jwt(dir, token),
            None => Err("invalid token".into()),
        }
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn check_jwt(dir: &Path, token: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("invalid token: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!(
            "invalid token: algorithm {:?}, expected RS256",
            header.alg
        ));
    }
    // The issuer is read unverified only to pick the key that verifies it.
    let mut peek = Validation::new(Algorithm::RS256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    peek.required_spec_claims.clear();
    let unverified = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &peek)
        .map_err(|e| format!("invalid token: {e}"))?;
    let iss = unverified
        .claims
        .iss
        .filter(|s| !s.is_empty())
        .ok_or("invalid token: issuer field (iss) missing: it names the public key file")?;
    let pem = read_key(dir, &iss)?;
    let key = DecodingKey::from_rsa_pem(&pem)
        .map_err(|e| format!("public key {iss} is not an RSA PEM key: {e}"))?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[AUDIENCE]);
    v.set_issuer(&[iss.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    jsonwebtoken::decode::<Claims>(token, &key, &v)
        .map(|_| ())
        .map_err(|e| format!("invalid token: {e}"))
}

/// The key file named `iss` in `dir` (case-insensitive, as eKuiper). Names
/// are compared with the directory's entries, so `iss` cannot point elsewhere.
fn read_key(dir: &Path, iss: &str) -> Result<Vec<u8>, String> {
    let missing = || format!("invalid token: no public key {iss} in {KEY_DIR} of the data dir");
    let rd = std::fs::read_dir(dir).map_err(|_| missing())?;
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().eq_ignore_ascii_case(iss) {
            continue;
        }
        let md = e.metadata().map_err(|_| missing())?;
        if !md.is_file() || md.len() > MAX_KEY_BYTES {
            return Err(missing());
        }
        return std::fs::read(e.path()).map_err(|_| missing());
    }
    Err(missing())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_token() {
        let a = Auth::new("s3cret", false, Path::new("/nonexistent"));
        assert!(a.enabled());
        assert!(a.check(Some("Bearer s3cret")).is_ok());
        assert!(a.check(Some("bearer  s3cret ")).is_ok());
        assert!(a.check(Some("s3cret")).is_ok());
        assert!(a.check(Some("Bearer wrong")).is_err());
        assert!(a.check(None).unwrap_err().contains("missing_token"));
        let off = Auth::new("  ", false, Path::new("/x"));
        assert!(!off.enabled() && off.check(None).is_ok());
    }

    #[test]
    fn jwt_needs_a_known_issuer() {
        let d = tempfile::tempdir().unwrap();
        let a = Auth::new("", true, d.path());
        assert!(a.check(Some("not.a.jwt")).is_err());
        // HS256 with any secret is refused before any key lookup.
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"iss": "k.pub", "aud": "eKuiper", "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert!(a.check(Some(&t)).unwrap_err().contains("RS256"));
    }
}
