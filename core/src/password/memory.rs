//! Verifying in caller-owned memory, so that a fixed number of areas bounds what password checks hold.

use std::fmt;

use argon2::Argon2;

use super::{Params, PasswordHash};

/// An argon2 working area, allocated once and reused by [`PasswordHash::verify_in`]: a service that keeps a fixed
/// number of these bounds the memory its password checks hold by design, whatever the allocator does with freed
/// blocks (glibc kept gigabytes after a flood of checks that each allocated their own).
#[derive(Default)]
pub struct Memory(Vec<argon2::Block>);

impl Memory {
    /// An empty area: it grows to what the first hash verified in it needs.
    pub fn new() -> Self {
        Memory(Vec::new())
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.0.len() * argon2::Block::SIZE
    }

    /// The argon2 blocks (1 KiB each) verifying against `hash` needs: its memory cost, rounded down to a multiple of
    /// 4 × lanes as argon2 does. A pool of areas can size itself from this before any check runs.
    pub fn blocks_for(hash: &PasswordHash) -> usize {
        Params::try_from(&hash.parsed()).expect("checked by parse").block_count()
    }

    /// [`blocks_for`](Self::blocks_for) in bytes: what [`bytes`](Self::bytes) is after verifying against `hash` in an
    /// area that held less.
    pub fn bytes_for(hash: &PasswordHash) -> usize {
        Self::blocks_for(hash) * argon2::Block::SIZE
    }

    /// The first `blocks` blocks, growing the area to exactly that many if it holds fewer (never shrinking it).
    fn blocks(&mut self, blocks: usize) -> &mut [argon2::Block] {
        if self.0.len() < blocks {
            // Exactly: `resize` alone may reserve more than asked, which would be held for as long as the area is.
            self.0.reserve_exact(blocks - self.0.len());
            self.0.resize(blocks, argon2::Block::default());
        }
        &mut self.0[..blocks]
    }
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Memory({} KiB)", self.bytes() / 1024)
    }
}

impl PasswordHash {
    /// As [`verify`](Self::verify), and agreeing with it for every hash, but computing argon2 in `memory` (grown to
    /// [`Memory::blocks_for`] this hash when it holds fewer, never shrunk) rather than in a fresh allocation. The
    /// algorithm, version (0x13 when absent), parameters, associated data, salt and output length are the stored
    /// hash's, decoded as argon2's own verification decodes them; the outputs are compared in constant time. Costs
    /// what [`verify`](Self::verify) costs: call it off async threads.
    pub fn verify_in(&self, password: &str, memory: &mut Memory) -> bool {
        let parsed = self.parsed();
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
        let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else { return false };
        let version = parsed.version.map_or(Ok(argon2::Version::default()), argon2::Version::try_from);
        let (Ok(version), Ok(params)) = (version, Params::try_from(&parsed)) else { return false };
        let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
        let blocks = memory.blocks(params.block_count());
        // The stored hash's length, as `Params::try_from` also says: argon2's output depends on its length.
        let mut out = vec![0u8; expected.len()];
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            blocks,
        );
        // `Output`'s equality is constant-time.
        hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::SaltString;
    use argon2::PasswordHasher;

    use super::super::{cheap_hash, DUMMY_PASSWORD};
    use super::*;

    /// A PHC hash made with argon2 itself, not through this module, so both verifications are tested against it.
    fn argon2_hash(
        password: &str,
        algorithm: argon2::Algorithm,
        version: argon2::Version,
        params: Params,
    ) -> PasswordHash {
        let phc = Argon2::new(algorithm, version, params)
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        PasswordHash::parse(&phc).unwrap()
    }

    #[test]
    fn verify_in_reused_memory_agrees_with_verify() {
        let mut hashes = vec![cheap_hash("pw"), PasswordHash::hash("pw")];
        let with_data = argon2::ParamsBuilder::new()
            .m_cost(64)
            .t_cost(1)
            .p_cost(1)
            .data(argon2::AssociatedData::new(b"simpul").unwrap())
            .build()
            .unwrap();
        // (m KiB, t, p, output length): the smallest memory argon2 takes, several lanes, a memory cost that is not a
        // multiple of 4 × lanes, short, default and long outputs.
        let params = [(8, 1, 1, None), (64, 2, 1, Some(16)), (100, 1, 4, Some(12)), (512, 3, 2, Some(64))];
        for algorithm in [argon2::Algorithm::Argon2id, argon2::Algorithm::Argon2i, argon2::Algorithm::Argon2d] {
            for version in [argon2::Version::V0x10, argon2::Version::V0x13] {
                for (m, t, p, len) in params {
                    hashes.push(argon2_hash("pw", algorithm, version, Params::new(m, t, p, len).unwrap()));
                }
                hashes.push(argon2_hash("pw", algorithm, version, with_data.clone()));
            }
        }
        // Without `v=`, both verifications take version 0x13, as argon2 does.
        let v13 = argon2_hash(
            "pw",
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let v10 =
            argon2_hash("pw", argon2::Algorithm::Argon2i, argon2::Version::V0x10, Params::new(64, 1, 1, None).unwrap());
        let unversioned = |hash: &PasswordHash, v: &str| PasswordHash::parse(&hash.as_phc().replace(v, "")).unwrap();
        let (v13_unversioned, v10_unversioned) = (unversioned(&v13, "v=19$"), unversioned(&v10, "v=16$"));
        assert!(v13_unversioned.verify("pw") && !v10_unversioned.verify("pw"), "a 0x10 hash read as 0x13 differs");
        hashes.extend([v13_unversioned, v10_unversioned]);
        assert!(hashes.iter().any(|h| h.as_phc().contains(",data=")), "associated data is in the PHC string");

        // One area for all of them, big hashes and small in turn, as a pool hands them out.
        let mut memory = Memory::new();
        assert_eq!((memory.bytes(), format!("{memory:?}")), (0, "Memory(0 KiB)".to_owned()));
        let mut agreed = 0;
        for hash in hashes.iter().chain(hashes.iter().rev()) {
            for password in ["pw", "pw ", "", "PW", "p", "pwpw", "kata sandi 🔑"] {
                let want = hash.verify(password);
                assert_eq!(hash.verify_in(password, &mut memory), want, "{} {password:?}", hash.as_phc());
                agreed += usize::from(want);
            }
        }
        // Every hash but the 0x10 one read as 0x13 verified its password, twice (forward and back).
        assert_eq!(agreed, 2 * (hashes.len() - 1));
        // It grew to the largest and stayed there: for the default parameters 19 MiB, exactly their memory cost.
        let default = &hashes[1];
        assert_eq!(Memory::blocks_for(default), 19_456);
        assert_eq!(Memory::bytes_for(default), 19_456 * 1024);
        assert_eq!(hashes.iter().map(Memory::bytes_for).max(), Some(memory.bytes()));
        assert_eq!(memory.bytes(), 19_456 * 1024);
        assert_eq!(format!("{memory:?}"), "Memory(19456 KiB)");
        let dummy = default.dummy_like();
        assert!(dummy.verify_in(DUMMY_PASSWORD, &mut memory) && !dummy.verify_in("pw", &mut memory));
        assert_eq!(memory.bytes(), 19_456 * 1024, "never shrunk");
    }

    #[test]
    fn memory_grows_to_exactly_what_a_hash_needs() {
        let hash = |m, p| {
            argon2_hash("pw", argon2::Algorithm::Argon2id, argon2::Version::V0x13, Params::new(m, 1, p, None).unwrap())
        };
        // argon2 uses the memory cost rounded down to a multiple of 4 × lanes.
        let table = [(8, 1, 8), (64, 1, 64), (100, 4, 96), (33, 2, 32), (19_456, 1, 19_456)];
        for (m, p, blocks) in table {
            let hash = hash(m, p);
            assert_eq!(Memory::blocks_for(&hash), blocks, "m={m} p={p}");
            assert_eq!(Memory::bytes_for(&hash), blocks * 1024, "m={m} p={p}");
            let mut memory = Memory::new();
            assert!(hash.verify_in("pw", &mut memory));
            assert_eq!(memory.bytes(), Memory::bytes_for(&hash), "m={m} p={p}");
            assert_eq!(memory.0.capacity(), blocks, "nothing reserved beyond it");
        }
        // Growing from a smaller area reserves exactly too.
        let mut memory = Memory::new();
        assert!(hash(64, 1).verify_in("pw", &mut memory) && hash(1000, 1).verify_in("pw", &mut memory));
        assert_eq!((memory.bytes(), memory.0.capacity()), (1000 * 1024, 1000));
        assert!(hash(64, 1).verify_in("pw", &mut memory));
        assert_eq!(memory.bytes(), 1000 * 1024, "a smaller hash uses the front of the area");
    }
}
