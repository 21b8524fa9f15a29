//! Sealing personal data at rest: the database values that hold an operator's NIK and NIP (users, and the admin
//! changes waiting in the outbox) are ChaCha20-Poly1305 ciphertexts under `store.key` (0600, beside the database),
//! so neither a copy of the database nor a grep of the state directory finds them. The value's place (tree and key)
//! is the associated data, so a sealed value moved to another key does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

/// The first bytes of every sealed value (and the version of this layout).
const MAGIC: &[u8; 2] = b"S1";
const NONCE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealed value does not open under this key (damaged, moved, or sealed under another key)")]
pub struct Unsealable;

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

fn aad(tree: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tree.len() + 1 + key.len());
    aad.extend_from_slice(tree.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key);
    aad
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Sealer { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    /// `MAGIC || nonce || ciphertext+tag` of `plain`, bound to `(tree, key)`.
    pub fn seal(&self, tree: &str, key: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = aad(tree, key);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &aad })
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let rest = value.strip_prefix(MAGIC.as_slice()).ok_or(Unsealable)?;
        if rest.len() < NONCE {
            return Err(Unsealable);
        }
        let (nonce, sealed) = rest.split_at(NONCE);
        let aad = aad(tree, key);
        self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad }).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_under_its_key() {
        let sealer = Sealer::new([7; 32]);
        let nik = b"{\"nik\":\"3374041003870006\"}";
        let sealed = sealer.seal("users", b"budi", nik);
        assert!(!sealed.windows(16).any(|w| w == b"3374041003870006"), "the NIK is not in the sealed bytes");
        assert_eq!(sealer.open("users", b"budi", &sealed).unwrap(), nik);
        assert_ne!(sealer.seal("users", b"budi", nik), sealed, "a fresh nonce each time");
        assert_eq!(sealer.open("users", b"siti", &sealed), Err(Unsealable));
        assert_eq!(sealer.open("admin_log", b"budi", &sealed), Err(Unsealable));
        assert_eq!(Sealer::new([8; 32]).open("users", b"budi", &sealed), Err(Unsealable));
        for at in [0, 5, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 1;
            assert_eq!(sealer.open("users", b"budi", &flipped), Err(Unsealable), "byte {at}");
        }
        assert_eq!(sealer.open("users", b"budi", nik), Err(Unsealable));
    }
}
