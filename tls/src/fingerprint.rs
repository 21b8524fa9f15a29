//! The SHA-256 of a certificate's DER: what a server prints for its own certificate, what a client pins a server to,
//! and what a server pins a client certificate to.

use std::fmt;
use std::str::FromStr;

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A certificate's SHA-256 fingerprint.
///
/// Printed one way only: 32 upper-case hex bytes separated by `:` (`AA:BB:…:FF`), as `openssl x509 -fingerprint
/// -sha256` prints it after its `sha256 Fingerprint=`.
///
/// Read in two spellings, in any case, with white space around (not inside) ignored:
/// - 32 two-digit hex bytes separated by `:` (`AA:BB:…`, what is printed, and what openssl prints);
/// - 64 hex digits without separators (`aabb…`, what `sha256sum` of the DER prints).
///
/// Anything else is refused: a byte of one digit, a missing or extra byte, another separator, separators only in
/// places, signs, white space inside.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(cert: &CertificateDer<'_>) -> Fingerprint {
        Fingerprint(Sha256::digest(cert.as_ref()).into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `cert` has this fingerprint. In constant time: a fingerprint is not secret, but a comparison that
    /// stops at the first difference would tell a peer how much of a forged certificate's hash matched.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let seen = Fingerprint::of(cert);
        seen.0.iter().zip(&self.0).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A text that is not a fingerprint in either accepted spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a SHA-256 fingerprint: write 32 hex bytes separated by ':' (AA:BB:…, as it is printed) or 64 hex \
     digits"
)]
pub struct FingerprintError(pub String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FingerprintError(s.to_owned());
        let text = s.trim().as_bytes();
        // Either every byte is followed by a ':' but the last, or none is.
        let stride = match text.len() {
            95 => 3,
            64 => 2,
            _ => return Err(bad()),
        };
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let at = i * stride;
            if stride == 3 && i < 31 && text[at + 2] != b':' {
                return Err(bad());
            }
            // Digit by digit: u8::from_str_radix would take a sign ("+A").
            let (high, low) = (hex_digit(text[at]).ok_or_else(bad)?, hex_digit(text[at + 1]).ok_or_else(bad)?);
            *byte = high << 4 | low;
        }
        Ok(Fingerprint(bytes))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 32] = {
        let mut b = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            b[i] = (i as u8).wrapping_mul(8).wrapping_add(0x0A);
            i += 1;
        }
        b
    };

    fn printed() -> String {
        BYTES.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }

    #[test]
    fn printed_as_colon_separated_upper_case_hex() {
        let text = Fingerprint::from_bytes(BYTES).to_string();
        assert_eq!(text, printed());
        assert!(text.starts_with("0A:12:1A:22:") && text.ends_with(":F2:FA:02"), "{text}");
        assert_eq!(text.len(), 95);
        assert!(!text.chars().any(|c| c.is_ascii_lowercase()));
    }

    #[test]
    fn the_accepted_spellings() {
        let colons = printed();
        let bare = colons.replace(':', "");
        let accepted = [
            ("printed", colons.clone()),
            ("lower case", colons.to_lowercase()),
            ("mixed case", colons.replacen("0A", "0a", 1)),
            ("64 digits", bare.clone()),
            ("64 lower-case digits", bare.to_lowercase()),
            ("white space around", format!(" \t{colons}\n")),
            ("white space around 64 digits", format!("  {bare}  ")),
        ];
        for (what, text) in accepted {
            assert_eq!(text.parse::<Fingerprint>(), Ok(Fingerprint::from_bytes(BYTES)), "{what}: {text:?}");
        }
    }

    #[test]
    fn the_refused_spellings() {
        let colons = printed();
        let bare = colons.replace(':', "");
        let refused = [
            ("empty", String::new()),
            ("one byte", "AB".to_owned()),
            ("31 bytes", colons[..colons.len() - 3].to_owned()),
            ("33 bytes", format!("{colons}:00")),
            ("63 digits", bare[1..].to_owned()),
            ("65 digits", format!("{bare}0")),
            ("a trailing colon", format!("{colons}:")),
            ("one colon missing", colons.replacen(':', "", 1)),
            ("a colon out of place", format!("0:A{}", &colons[3..])),
            ("dashes", colons.replace(':', "-")),
            ("spaces", colons.replace(':', " ")),
            ("white space inside", format!("{} {}", &bare[..32], &bare[32..])),
            ("a non-hex digit", colons.replacen('A', "G", 1)),
            ("a sign", format!("+A{}", &colons[2..])),
            ("a sign in 64 digits", format!("+{}", &bare[1..])),
            ("a base prefix", format!("0x{}", &bare[2..])),
            ("one-digit bytes", "A:".repeat(31) + "A"),
            ("SHA-1 length", colons[..59].to_owned()),
            ("non-ASCII", format!("Ä{}", &bare[2..])),
        ];
        for (what, text) in refused {
            let error = text.parse::<Fingerprint>().expect_err(what);
            assert_eq!(error, FingerprintError(text.clone()), "{what}");
            assert!(error.to_string().contains("AA:BB:…"), "{what}: {error}");
        }
    }

    #[test]
    fn of_a_certificate_and_back_through_serde() {
        let cert = CertificateDer::from(b"not really DER, but hashed all the same".to_vec());
        let fingerprint = Fingerprint::of(&cert);
        assert_eq!(fingerprint.as_bytes(), &<[u8; 32]>::from(Sha256::digest(cert.as_ref())));
        assert!(fingerprint.matches(&cert));
        assert!(!fingerprint.matches(&CertificateDer::from(b"another".to_vec())));
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Config {
            pin: Fingerprint,
        }
        let text = format!(r#"{{"pin":"{fingerprint}"}}"#);
        let parsed: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, Config { pin: fingerprint });
        assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
        let error = serde_json::from_str::<Config>(r#"{"pin":"AB:CD"}"#).unwrap_err().to_string();
        assert!(error.contains("not a SHA-256 fingerprint"), "{error}");
    }
}
