//! Payload compression as eKuiper names it (`zlib`, `gzip`, `flate`,
//! `zstd`): the sinks' `compression` stage and the HTTP sources' response
//! decompression share it. Decompression is bounded: a small body cannot
//! expand past the limit it is given.

use std::io::{Read, Write};

use crate::connector::ConnectorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zlib,
    Gzip,
    Flate,
    Zstd,
}

impl Compression {
    /// `None` for an empty name; a config error naming the property otherwise.
    pub fn parse(s: &str) -> Result<Option<Compression>, ConnectorError> {
        Ok(Some(match s.trim().to_ascii_lowercase().as_str() {
            "" => return Ok(None),
            "zlib" => Compression::Zlib,
            "gzip" => Compression::Gzip,
            "flate" => Compression::Flate,
            "zstd" => Compression::Zstd,
            other => {
                return Err(ConnectorError::Config(format!(
                    "invalid property compression: {other:?} is not one of zlib, gzip, flate, zstd"
                )))
            }
        }))
    }

    /// The HTTP `Content-Encoding` of this compression, if HTTP has one.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::Zlib => Some("deflate"),
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            // Raw deflate has no HTTP content coding.
            Compression::Flate => None,
        }
    }

    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
        let level = flate2::Compression::default();
        let out = Vec::with_capacity(data.len() / 2 + 16);
        match self {
            Compression::Zlib => {
                let mut e = ZlibEncoder::new(out, level);
                e.write_all(data)?;
                e.finish()
            }
            Compression::Gzip => {
                let mut e = GzEncoder::new(out, level);
                e.write_all(data)?;
                e.finish()
            }
            Compression::Flate => {
                let mut e = DeflateEncoder::new(out, level);
                e.write_all(data)?;
                e.finish()
            }
            Compression::Zstd => zstd::bulk::compress(data, zstd::DEFAULT_COMPRESSION_LEVEL),
        }
    }

    /// Decompresses `data`; an error when it is not valid or would exceed
    /// `limit` bytes.
    pub fn decompress(self, data: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let cap = limit as u64 + 1;
        match self {
            Compression::Zlib => flate2::read::ZlibDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out),
            Compression::Gzip => flate2::read::GzDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out),
            Compression::Flate => flate2::read::DeflateDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out),
            Compression::Zstd => zstd::stream::read::Decoder::new(data)?
                .take(cap)
                .read_to_end(&mut out),
        }?;
        if out.len() > limit {
            return Err(std::io::Error::other(format!(
                "decompressed data exceeds {limit} bytes"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let data =
            br#"{"id":1,"t":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#.repeat(20);
        for c in [
            Compression::Zlib,
            Compression::Gzip,
            Compression::Flate,
            Compression::Zstd,
        ] {
            let z = c.compress(&data).unwrap();
            assert!(z.len() < data.len() / 4, "{c:?}");
            assert_eq!(c.decompress(&z, data.len()).unwrap(), data, "{c:?}");
            assert!(c.decompress(&z, data.len() - 1).is_err(), "{c:?} bound");
            assert!(
                c.decompress(b"not compressed", 1000).is_err(),
                "{c:?} garbage"
            );
        }
        assert_eq!(Compression::parse("GZIP").unwrap(), Some(Compression::Gzip));
        assert_eq!(Compression::parse("").unwrap(), None);
        assert!(Compression::parse("lz4").is_err());
    }
}
