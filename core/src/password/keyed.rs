//! Keyed digests: what the tables remember instead of the text a client sent.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A digest under a key made for one process (or, for the warehouse cache, kept in a key file): it matches only what
/// was remembered under the same key, and a memory dump gives an offline guesser nothing to test passwords against
/// without the key too. The key is never printed or copied out (no Debug, no Clone).
pub(crate) struct Keyed([u8; 32]);

impl Keyed {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Keyed(key)
    }

    /// Under a key kept outside the process (a key file), for digests that must match across restarts.
    pub(crate) fn with_key(key: [u8; 32]) -> Self {
        Keyed(key)
    }

    /// HMAC-SHA256 over the parts, each length-prefixed so that ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn digest(&self, parts: &[&str]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_keyed_per_process_value() {
        let (one, two) = (Keyed::new(), Keyed::new());
        assert_eq!(one.digest(&["u", "pw"]), one.digest(&["u", "pw"]));
        assert_ne!(one.digest(&["u", "pw"]), two.digest(&["u", "pw"]), "another key, another digest");
        // Length prefixes: no two part lists give the same input, however bytes move between parts.
        let lists: [&[&str]; 8] = [&[], &[""], &["", ""], &["a", ""], &["", "a"], &["ab", "c"], &["a", "bc"], &["abc"]];
        for (i, a) in lists.iter().enumerate() {
            for b in &lists[i + 1..] {
                assert_ne!(one.digest(a), one.digest(b), "{a:?} {b:?}");
            }
        }
    }
}
