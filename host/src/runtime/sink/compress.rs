//! After encoding: `compression` (zlib, gzip, flate, zstd), then
//! `encryption` (aes), on every payload, as eKuiper's compress and encrypt
//! nodes do (`internal/topo/node/compress_op.go`, `encrypt_op.go`).
//!
//! AES follows eKuiper's `modules/encryptor/aes`: the key is the server's
//! `basic.aesKey` (base64 of 16, 24 or 32 bytes; Oort: `sink.aesKey` in the
//! config file or `OORT__SINK__AESKEY`). `encProps.mode` is `gcm` (the
//! default: eKuiper builds sink encryptors through its decryptor constructor,
//! whose default mode is gcm) or `cfb`. GCM output: 12-byte nonce, then the
//! ciphertext and the 16-byte tag (Go's `Seal(nonce, nonce, data, nil)`).
//! CFB output: 16-byte IV, then the ciphertext (CFB-128, Go's
//! `cipher.NewCFBEncrypter`). The nonce/IV is random per message unless
//! `encProps.iv` (base64) fixes it, in which case it is still written first
//! for gcm and omitted for cfb, as eKuiper does. `aad` and `tagsize` are
//! refused (not supported).

use std::sync::OnceLock;

use aes_gcm::aead::Aead;
use aes_gcm::KeyInit;
use base64::Engine;
use bytes::Bytes;
use cipher::{AsyncStreamCipher, KeyIvInit};
use oort_core::{ConnectorError, Props};

static AES_KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Sets the server's AES key (base64) once at start-up.
pub fn set_aes_key(b64: &str) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("sink.aesKey is not base64: {e}"))?;
    if ![16, 24, 32].contains(&key.len()) {
        return Err(format!(
            "sink.aesKey must decode to 16, 24 or 32 bytes, got {}",
            key.len()
        ));
    }
    let _ = AES_KEY.set(key);
    Ok(())
}

pub use oort_core::compression::Compression;

enum Aes {
    Gcm128(Box<aes_gcm::Aes128Gcm>),
    Gcm192(Box<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>),
    Gcm256(Box<aes_gcm::Aes256Gcm>),
    Cfb(Vec<u8>),
}

pub struct Encryptor {
    aes: Aes,
    iv: Option<Vec<u8>>,
}

impl Encryptor {
    fn new(name: &str, props: Option<&Props>) -> Result<Option<Encryptor>, ConnectorError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" => return Ok(None),
            "aes" => {}
            other => {
                return Err(ConnectorError::Config(format!(
                    "invalid property encryption: {other:?} is not supported (only aes)"
                )))
            }
        }
        let key = AES_KEY.get().ok_or_else(|| {
            ConnectorError::config(
                "invalid property encryption: AES Key is not defined (set sink.aesKey in the config file or OORT__SINK__AESKEY)",
            )
        })?;
        Encryptor::with_key(key, props).map(Some)
    }

    fn with_key(key: &[u8], props: Option<&Props>) -> Result<Encryptor, ConnectorError> {
        let bad = |k: &str, m: &str| {
            ConnectorError::Config(format!("invalid property encProps.{k}: {m}"))
        };
        let mut mode = "gcm".to_string();
        let mut iv = None;
        for (k, v) in props.into_iter().flatten() {
            let s = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            match k.to_ascii_lowercase().as_str() {
                "mode" => mode = s.to_ascii_lowercase(),
                "iv" => {
                    iv = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(s.trim())
                            .map_err(|_| bad(k, "not base64"))?,
                    )
                }
                "aad" | "tagsize" => return Err(bad(k, "not supported by Oort")),
                _ => return Err(bad(k, "unknown (known: mode, iv)")),
            }
        }
        let aes = match mode.as_str() {
            "gcm" => {
                if iv.as_ref().is_some_and(|v| v.len() != 12) {
                    return Err(bad("iv", "a gcm nonce is 12 bytes"));
                }
                match key.len() {
                    16 => Aes::Gcm128(Box::new(
                        aes_gcm::Aes128Gcm::new_from_slice(key)
                            .map_err(|e| bad("key", &e.to_string()))?,
                    )),
                    24 => Aes::Gcm192(Box::new(
                        aes_gcm::AesGcm::new_from_slice(key)
                            .map_err(|e| bad("key", &e.to_string()))?,
                    )),
                    _ => Aes::Gcm256(Box::new(
                        aes_gcm::Aes256Gcm::new_from_slice(key)
                            .map_err(|e| bad("key", &e.to_string()))?,
                    )),
                }
            }
            "cfb" => {
                if iv.as_ref().is_some_and(|v| v.len() != 16) {
                    return Err(bad("iv", "a cfb IV is 16 bytes"));
                }
                Aes::Cfb(key.to_vec())
            }
            other => return Err(bad("mode", &format!("{other:?} is not gcm or cfb"))),
        };
        Ok(Encryptor { aes, iv })
    }

    pub fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        use rand::RngCore;
        let err = |e: aes_gcm::Error| format!("aes-gcm: {e}");
        match &self.aes {
            Aes::Cfb(key) => {
                let mut iv = [0u8; 16];
                match &self.iv {
                    Some(v) => iv.copy_from_slice(v),
                    None => rand::thread_rng().fill_bytes(&mut iv),
                }
                let mut out = Vec::with_capacity(16 + data.len());
                if self.iv.is_none() {
                    out.extend_from_slice(&iv);
                }
                let at = out.len();
                out.extend_from_slice(data);
                let buf = &mut out[at..];
                let r = match key.len() {
                    16 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
                        .map(|c| c.encrypt(buf)),
                    24 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
                        .map(|c| c.encrypt(buf)),
                    _ => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
                        .map(|c| c.encrypt(buf)),
                };
                r.map_err(|e| format!("aes-cfb: {e}"))?;
                Ok(out)
            }
            gcm => {
                let mut nonce = [0u8; 12];
                match &self.iv {
                    Some(v) => nonce.copy_from_slice(v),
                    None => rand::thread_rng().fill_bytes(&mut nonce),
                }
                let n = aes_gcm::Nonce::from_slice(&nonce);
                let sealed = match gcm {
                    Aes::Gcm128(c) => c.encrypt(n, data).map_err(err)?,
                    Aes::Gcm192(c) => c.encrypt(n, data).map_err(err)?,
                    Aes::Gcm256(c) => c.encrypt(n, data).map_err(err)?,
                    Aes::Cfb(_) => unreachable!("handled above"),
                };
                let mut out = Vec::with_capacity(12 + sealed.len());
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }
}

/// The compress-then-encrypt stage of one sink node.
pub struct PayloadStage {
    compression: Option<Compression>,
    encryptor: Option<Encryptor>,
}

impl PayloadStage {
    pub fn new(
        compression: &str,
        compression_props: Option<&Props>,
        encryption: &str,
        enc_props: Option<&Props>,
    ) -> Result<PayloadStage, ConnectorError> {
        let compression = Compression::parse(compression)?;
        if let Some(k) = compression_props.and_then(|p| p.keys().next()) {
            return Err(ConnectorError::Config(format!(
                "invalid property compressionProps.{k}: not supported by Oort"
            )));
        }
        Ok(PayloadStage {
            compression,
            encryptor: Encryptor::new(encryption, enc_props)?,
        })
    }

    pub fn is_noop(&self) -> bool {
        self.compression.is_none() && self.encryptor.is_none()
    }

    pub fn apply(&self, payload: Bytes) -> Result<Bytes, String> {
        let mut p = payload;
        if let Some(c) = self.compression {
            p = Bytes::from(c.compress(&p).map_err(|e| format!("compression: {e}"))?);
        }
        if let Some(e) = &self.encryptor {
            p = Bytes::from(e.encrypt(&p)?);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_compression_round_trips() {
        let data =
            br#"{"id":1,"t":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#.repeat(20);
        for (name, c) in [
            ("zlib", Compression::Zlib),
            ("GZIP", Compression::Gzip),
            ("flate", Compression::Flate),
            ("zstd", Compression::Zstd),
        ] {
            assert_eq!(Compression::parse(name).unwrap(), Some(c));
            let stage = PayloadStage::new(name, None, "", None).unwrap();
            let z = stage.apply(Bytes::from(data.clone())).unwrap();
            assert!(z.len() < data.len() / 4, "{name}");
            let mut back = Vec::new();
            match c {
                Compression::Zlib => flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut back),
                Compression::Gzip => flate2::read::GzDecoder::new(&z[..]).read_to_end(&mut back),
                Compression::Flate => {
                    flate2::read::DeflateDecoder::new(&z[..]).read_to_end(&mut back)
                }
                Compression::Zstd => zstd::stream::read::Decoder::new(&z[..])
                    .and_then(|mut d| d.read_to_end(&mut back)),
            }
            .unwrap();
            assert_eq!(back, data, "{name}");
        }
        let e = PayloadStage::new("lz4", None, "", None).err().unwrap();
        assert!(e.to_string().contains("compression"), "{e}");
        let p = serde_json::json!({"windowSize": 1})
            .as_object()
            .cloned()
            .unwrap();
        let e = PayloadStage::new("zstd", Some(&p), "", None).err().unwrap();
        assert!(e.to_string().contains("compressionProps.windowSize"), "{e}");
    }

    fn props(v: serde_json::Value) -> Props {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn gcm_output_is_nonce_then_sealed_text() {
        let key = [7u8; 32];
        let enc = Encryptor::with_key(&key, None).unwrap();
        let out = enc.encrypt(b"hello oort").unwrap();
        assert_eq!(out.len(), 12 + 10 + 16);
        let c = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
        let plain = c
            .decrypt(aes_gcm::Nonce::from_slice(&out[..12]), &out[12..])
            .unwrap();
        assert_eq!(plain, b"hello oort");
        // A random nonce per message.
        assert_ne!(enc.encrypt(b"hello oort").unwrap(), out);
    }

    #[test]
    fn cfb_output_is_iv_then_cipher_text() {
        use cipher::AsyncStreamCipher;
        let key = [3u8; 16];
        let enc =
            Encryptor::with_key(&key, Some(&props(serde_json::json!({"mode": "cfb"})))).unwrap();
        let out = enc.encrypt(b"hello oort").unwrap();
        assert_eq!(out.len(), 16 + 10);
        let mut buf = out[16..].to_vec();
        cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(&key, &out[..16])
            .unwrap()
            .decrypt(&mut buf);
        assert_eq!(buf, b"hello oort");
        // A fixed IV (base64) is not written, as in eKuiper.
        let iv = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let enc = Encryptor::with_key(
            &key,
            Some(&props(serde_json::json!({"mode": "cfb", "iv": iv}))),
        )
        .unwrap();
        assert_eq!(enc.encrypt(b"hello oort").unwrap().len(), 10);
    }

    #[test]
    fn bad_encryption_settings_are_refused_by_name() {
        let key = [3u8; 16];
        for (p, name) in [
            (serde_json::json!({"mode": "ecb"}), "mode"),
            (serde_json::json!({"aad": "AAAA"}), "aad"),
            (serde_json::json!({"iv": "!!"}), "iv"),
            (serde_json::json!({"iv": "AAAA"}), "iv"),
        ] {
            let e = Encryptor::with_key(&key, Some(&props(p))).err().unwrap();
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = Encryptor::new("des", None).err().unwrap();
        assert!(e.to_string().contains("encryption"), "{e}");
    }
}
