//! Curve25519 keys in WireGuard's base64 text form.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519;

/// A peer's (or the gateway's) static public key: the identity the tunnel authenticates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether the key is a low-order point (the all-zero key among them): Diffie-Hellman with it yields no secret, so
    /// no handshake with it can succeed, and a peer offering one is a mistake or an attack.
    pub fn is_weak(&self) -> bool {
        let probe = x25519::StaticSecret::from(rand::random::<[u8; 32]>());
        !probe.diffie_hellman(&self.to_x25519()).was_contributory()
    }

    pub(crate) fn to_x25519(self) -> x25519::PublicKey {
        x25519::PublicKey::from(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(Self)
    }
}

/// A static private key. It prints as `***` so that it never reaches a log.
#[derive(Clone)]
pub struct PrivateKey(x25519::StaticSecret);

impl PrivateKey {
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519::StaticSecret::from(bytes))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0).to_bytes())
    }

    /// The base64 form that `wg` and wg-quick files use; handle it as a secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    pub(crate) fn secret(&self) -> &x25519::StaticSecret {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(Self::from_bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a key is 32 bytes in base64 (44 characters)")]
    Malformed,
}

fn decode_key(s: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(s.trim()).map_err(|_| KeyError::Malformed)?;
    bytes.try_into().map_err(|_| KeyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64() {
        let private = PrivateKey::generate();
        let public = private.public_key();
        assert_eq!(public.to_string().len(), 44);
        assert_eq!(public.to_string().parse::<PublicKey>(), Ok(public));
        assert_eq!(private.to_base64().parse::<PrivateKey>().map(|k| k.public_key()), Ok(public));
    }

    #[test]
    fn rejects_keys_of_the_wrong_length() {
        assert_eq!("AAAA".parse::<PublicKey>(), Err(KeyError::Malformed));
        assert_eq!("not base64!".parse::<PublicKey>(), Err(KeyError::Malformed));
    }

    #[test]
    fn low_order_points_are_weak() {
        assert!(PublicKey::from_bytes([0; 32]).is_weak());
        let mut one = [0; 32];
        one[0] = 1;
        assert!(PublicKey::from_bytes(one).is_weak(), "the point of order 1");
        assert!(!PrivateKey::generate().public_key().is_weak());
    }

    #[test]
    fn private_key_does_not_print() {
        assert_eq!(format!("{:?}", PrivateKey::generate()), "PrivateKey(***)");
    }

    #[test]
    fn matches_a_known_wg_pubkey() {
        // `echo <private> | wg pubkey` computed with wireguard-tools.
        let private: PrivateKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=".parse().unwrap();
        assert_eq!(private.public_key().to_string(), "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
    }
}
