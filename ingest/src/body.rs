//! Content decoding with a limit on the decoded size, so that a small gzip
//! body cannot expand into gigabytes (a "gzip bomb").

use std::io::Read;

use flate2::read::MultiGzDecoder;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("unsupported content encoding {0:?}: send identity or gzip")]
    UnsupportedEncoding(String),
    #[error("body is not valid gzip: {0}")]
    InvalidGzip(String),
    #[error("decoded body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
}

/// Decodes a body sent with `Content-Encoding: encoding` (none, `identity` or
/// `gzip`), refusing one whose decoded size passes `limit` bytes.
pub fn decode(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let encoding = encoding.map(str::trim).unwrap_or("").to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            Ok(body.to_vec())
        }
        "gzip" | "x-gzip" => gunzip(body, limit),
        other => Err(BodyError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Decompresses gzip (several members allowed, as `cat a.gz b.gz` makes),
/// reading at most `limit` bytes of output.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut reader = MultiGzDecoder::new(body).take(limit as u64 + 1);
    #[allow(clippy::disallowed_methods, reason = "the reader is bounded by take(limit + 1) above")]
    reader.read_to_end(&mut decoded).map_err(|err| BodyError::InvalidGzip(err.to_string()))?;
    if decoded.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(decoded)
}

/// Whether bytes start with the gzip magic number.
pub fn looks_gzipped(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_round_trips() {
        let body = gzip(b"{\"a\":1}\n");
        assert!(looks_gzipped(&body));
        assert_eq!(decode(Some("gzip"), &body, 100).unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        let body = gzip(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(body.len() < 20 * 1024);
        assert_eq!(decode(Some("gzip"), &body, 1024 * 1024), Err(BodyError::TooLarge { limit: 1024 * 1024 }));
    }

    #[test]
    fn plain_bodies_are_limited_too() {
        assert_eq!(decode(None, b"12345", 4), Err(BodyError::TooLarge { limit: 4 }));
        assert!(decode(Some("identity"), b"1234", 4).is_ok());
    }

    #[test]
    fn broken_gzip_and_unknown_encodings_say_what_is_wrong() {
        let error = decode(Some("gzip"), b"\x1f\x8bnot really", 100).unwrap_err();
        assert!(matches!(error, BodyError::InvalidGzip(_)));
        assert_eq!(decode(Some("br"), b"x", 100), Err(BodyError::UnsupportedEncoding("br".into())));
    }
}
