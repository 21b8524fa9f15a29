//! Signed checkpoints: C2SP `tlog-checkpoint` bodies wrapped in C2SP `signed-note` envelopes, signed with Ed25519.
//!
//! A checkpoint commits the gateway to the first `size` records of its log by their Merkle root. The wire form is the
//! one the transparency-log ecosystem (Go's `golang.org/x/mod/sumdb/note`, Sigsum, witnesses) already reads, so an
//! auditor can use off-the-shelf tools instead of trusting ours:
//!
//! ```text
//! simpul.gateway/DISKOMINFO-3374
//! 42
//! <base64 root hash>
//!
//! — simpul.gateway/DISKOMINFO-3374 <base64(key hash || Ed25519 signature)>
//! ```
//!
//! # Witness co-signing
//!
//! A signature by the gateway alone proves only that the gateway said it; it could show different auditors different
//! trees (a split view). A witness closes that gap by remembering the last checkpoint it accepted for an origin and
//! refusing to sign one that is not an extension of it. The relay will play that role:
//!
//! 1. it receives the new signed note and a consistency proof from the size it last saw to the new size;
//! 2. it [`open`]s the note with the gateway's [`Verifier`] (pinned out of band, never taken from the note);
//! 3. it checks the consistency proof (see `super::merkle`) between its stored root and the new root, and that the
//!    size did not shrink; an equal size must come with an equal root;
//! 4. only then it calls [`cosign`], which appends its own signature line, stores the new checkpoint as its last
//!    seen, and returns the note to the gateway, which serves the co-signed note from then on.
//!
//! Auditors that pin both keys open the note once per key. [`cosign`] itself checks only the note's shape: the
//! verification above is the witness's job because only it holds the state that gives the signature meaning.
//!
//! The co-signature is a plain Ed25519 note signature (algorithm 0x01) over the checkpoint body. C2SP's
//! `tlog-cosignature` (algorithm 0x04) additionally binds a timestamp; it needs the time passed in and can be added
//! next to this without changing the note format.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Notes are read from the network; anything this large is not a checkpoint and is refused before any work.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The same cap as Go's `sumdb/note`, so a note one side accepts the other does not refuse for its length.
pub const MAX_SIGNATURES: usize = 100;

/// The signed-note algorithm identifier for Ed25519, the byte hashed into key IDs and prefixed to public keys.
const ALG_ED25519: u8 = 0x01;

/// The signature-line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("note is longer than {MAX_NOTE_BYTES} bytes")]
    TooLong,
    #[error("note contains a control character other than newline")]
    ControlCharacter,
    #[error("text does not end with a newline")]
    MissingNewline,
    #[error("note has no blank line between body and signatures")]
    MissingBlankLine,
    #[error("note has no signature lines")]
    NoSignatures,
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("malformed signature line")]
    MalformedSignature,
    #[error("the same key signed the note twice")]
    DuplicateSignature,
    #[error("checkpoint body has fewer than three lines")]
    MissingLine,
    #[error("checkpoint body contains an empty line")]
    EmptyLine,
    #[error("origin is empty")]
    EmptyOrigin,
    #[error("tree size is not a canonical decimal u64")]
    BadSize,
    #[error("root hash is not 32 bytes of standard base64")]
    BadRoot,
    #[error("key name is empty or contains whitespace or '+'")]
    BadKeyName,
    #[error("malformed verifier key")]
    BadVkey,
    #[error("verifier key hash does not match its name and key")]
    KeyHashMismatch,
    #[error("no signature by the expected key")]
    UnverifiedNote,
    #[error("signature by the expected key is invalid")]
    BadSignature,
}

/// A tree head: the first `size` leaves of the log named `origin` hash to `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    /// Opaque further lines; they are signed with the rest but this crate gives them no meaning.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The `tlog-checkpoint` text: the exact bytes that are signed.
    pub fn body(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for line in &self.extensions {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        check_text(text)?;
        let mut lines = text[..text.len() - 1].split('\n');
        let mut next = || lines.next().ok_or(CheckpointError::MissingLine);
        let origin = next()?;
        let size = next()?;
        let root = next()?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::EmptyLine);
        }
        Ok(Checkpoint { origin: origin.to_owned(), size: parse_size(size)?, root: parse_root(root)?, extensions })
    }

    /// Refuses fields that would not survive `body` → `parse_body`, so nothing is signed that cannot be read back.
    fn checked_body(&self) -> Result<String, CheckpointError> {
        let body = self.body();
        if Checkpoint::parse_body(&body)? != *self {
            // A newline inside a field splits it, so the parse succeeds with different fields.
            return Err(CheckpointError::EmptyLine);
        }
        Ok(body)
    }
}

/// Canonical form only: one tree size has one encoding, so a signed body has one meaning.
fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(CheckpointError::BadSize);
    }
    text.parse().map_err(|_| CheckpointError::BadSize)
}

fn parse_root(text: &str) -> Result<[u8; 32], CheckpointError> {
    let bytes = BASE64.decode(text).map_err(|_| CheckpointError::BadRoot)?;
    let root: [u8; 32] = bytes.try_into().map_err(|_| CheckpointError::BadRoot)?;
    // The decoder accepts non-zero trailing bits; re-encoding makes the text canonical too.
    if BASE64.encode(root) != text {
        return Err(CheckpointError::BadRoot);
    }
    Ok(root)
}

fn check_text(text: &str) -> Result<(), CheckpointError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::TooLong);
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CheckpointError::ControlCharacter);
    }
    if !text.ends_with('\n') {
        return Err(CheckpointError::MissingNewline);
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(CheckpointError::BadKeyName);
    }
    Ok(())
}

fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// One `— name base64` line. Signatures by keys nobody asked about are kept verbatim, so a note can be passed on
/// with its witnesses' co-signatures intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_hash: [u8; 4],
    /// The signature bytes after the key hash; their format depends on the key's algorithm.
    pub signature: Vec<u8>,
}

impl SignatureLine {
    fn parse(line: &str) -> Result<Self, CheckpointError> {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(CheckpointError::MalformedSignature)?;
        let (name, encoded) = rest.split_once(' ').ok_or(CheckpointError::MalformedSignature)?;
        check_name(name).map_err(|_| CheckpointError::MalformedSignature)?;
        let bytes = BASE64.decode(encoded).map_err(|_| CheckpointError::MalformedSignature)?;
        if bytes.len() < 5 || BASE64.encode(&bytes) != encoded {
            return Err(CheckpointError::MalformedSignature);
        }
        let key_hash = [bytes[0], bytes[1], bytes[2], bytes[3]];
        Ok(SignatureLine { name: name.to_owned(), key_hash, signature: bytes[4..].to_vec() })
    }

    /// The line as it appears in the note, with its trailing newline.
    pub fn line(&self) -> String {
        let mut bytes = self.key_hash.to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, BASE64.encode(bytes))
    }
}

/// Holds a log's or witness's signing key.
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("name", &self.name).field("key", &"<secret>").finish()
    }
}

impl Signer {
    /// `secret` is the 32-byte Ed25519 seed; where it is kept is the caller's business.
    pub fn new(name: impl Into<String>, secret: [u8; 32]) -> Result<Self, CheckpointError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Signer { name, key: SigningKey::from_bytes(&secret) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Verifier {
        Verifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    fn signature_line(&self, body: &str) -> SignatureLine {
        let signature = self.key.sign(body.as_bytes());
        SignatureLine {
            name: self.name.clone(),
            key_hash: key_hash(&self.name, &self.key.verifying_key()),
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// The whole signed note. Fails only for a checkpoint whose fields would not parse back (an empty origin, a
    /// newline inside a field, an empty extension line), so a signature never covers text that means something else.
    pub fn sign(&self, checkpoint: &Checkpoint) -> Result<String, CheckpointError> {
        let body = checkpoint.checked_body()?;
        let line = self.signature_line(&body).line();
        Ok(format!("{body}\n{line}"))
    }
}

/// A public key that checkpoints are checked against; pinned by configuration, never learned from a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key: VerifyingKey,
}

impl Verifier {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `name+hexhash+base64(0x01 || key)` form that Go's `note.NewVerifier` and witness configs read.
    pub fn vkey(&self) -> String {
        let hash = self.key_hash();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex, BASE64.encode(key))
    }

    pub fn from_vkey(text: &str) -> Result<Self, CheckpointError> {
        // Names never hold '+', but standard base64 does: only the first two separate fields.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hex), Some(encoded)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadVkey);
        };
        check_name(name)?;
        let hash = parse_hex4(hex).ok_or(CheckpointError::BadVkey)?;
        let bytes = BASE64.decode(encoded).map_err(|_| CheckpointError::BadVkey)?;
        let [alg, key @ ..]: [u8; 33] = bytes.try_into().map_err(|_| CheckpointError::BadVkey)?;
        if alg != ALG_ED25519 {
            return Err(CheckpointError::BadVkey);
        }
        let key = VerifyingKey::from_bytes(&key).map_err(|_| CheckpointError::BadVkey)?;
        let verifier = Verifier { name: name.to_owned(), key };
        // The hash is redundant by design: a mismatch means the text was corrupted or spliced from two keys.
        if verifier.key_hash() != hash {
            return Err(CheckpointError::KeyHashMismatch);
        }
        Ok(verifier)
    }

    pub fn key_hash(&self) -> [u8; 4] {
        key_hash(&self.name, &self.key)
    }

    fn verify(&self, body: &str, line: &SignatureLine) -> Result<(), CheckpointError> {
        let signature = Signature::from_slice(&line.signature).map_err(|_| CheckpointError::BadSignature)?;
        self.key.verify_strict(body.as_bytes(), &signature).map_err(|_| CheckpointError::BadSignature)
    }
}

fn parse_hex4(text: &str) -> Option<[u8; 4]> {
    // Lowercase only, as Go writes it; `from_str_radix` alone would also take a sign and uppercase.
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(u32::from_str_radix(text, 16).ok()?.to_be_bytes())
}

/// Splits a note into its body (with its final newline) and signature lines, checking only the envelope.
fn split_note(note: &str) -> Result<(&str, Vec<SignatureLine>), CheckpointError> {
    check_text(note)?;
    // The last blank line: signature lines are never empty, so everything before it is the signed text.
    let split = note.rfind("\n\n").ok_or(CheckpointError::MissingBlankLine)?;
    let body = &note[..split + 1];
    let signatures = &note[split + 2..];
    if signatures.is_empty() {
        return Err(CheckpointError::NoSignatures);
    }
    let mut lines = Vec::new();
    for text in signatures[..signatures.len() - 1].split('\n') {
        if lines.len() == MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures);
        }
        let line = SignatureLine::parse(text)?;
        // One key, one signature: otherwise a verifier could be shown a valid copy while a bad one sits beside it.
        if lines.iter().any(|l: &SignatureLine| l.name == line.name && l.key_hash == line.key_hash) {
            return Err(CheckpointError::DuplicateSignature);
        }
        lines.push(line);
    }
    Ok((body, lines))
}

/// Parses a signed note and checks that a signature by `verifier` is present and valid; other signatures (witness
/// co-signatures) are kept and ignored unless a verifier for them is given.
pub fn open(note: &str, verifier: &Verifier) -> Result<(Checkpoint, Vec<SignatureLine>), CheckpointError> {
    let (body, lines) = split_note(note)?;
    let checkpoint = Checkpoint::parse_body(body)?;
    let hash = verifier.key_hash();
    let ours = lines.iter().find(|l| l.name == verifier.name && l.key_hash == hash);
    verifier.verify(body, ours.ok_or(CheckpointError::UnverifiedNote)?)?;
    Ok((checkpoint, lines))
}

/// Adds `witness`'s co-signature line to an existing note. The caller must first have opened the note with the
/// log's verifier and checked consistency with its last seen checkpoint (see the module docs); this function only
/// checks that the note is a well-formed checkpoint and that the witness has not signed it already.
pub fn cosign(note: &str, witness: &Signer) -> Result<String, CheckpointError> {
    let (body, lines) = split_note(note)?;
    Checkpoint::parse_body(body)?;
    let line = witness.signature_line(body);
    if lines.iter().any(|l| l.name == line.name && l.key_hash == line.key_hash) {
        return Err(CheckpointError::DuplicateSignature);
    }
    if lines.len() == MAX_SIGNATURES {
        return Err(CheckpointError::TooManySignatures);
    }
    let out = format!("{note}{}", line.line());
    if out.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::TooLong);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "simpul.gateway/DISKOMINFO-3374";

    fn checkpoint() -> Checkpoint {
        Checkpoint { origin: ORIGIN.to_owned(), size: 42, root: [7; 32], extensions: vec![] }
    }

    fn signer(seed: u8) -> Signer {
        Signer::new(ORIGIN, [seed; 32]).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = signer(1);
        let mut cp = checkpoint();
        cp.extensions = vec!["ext one".to_owned(), "ext-two".to_owned()];
        let note = s.sign(&cp).unwrap();
        let (opened, lines) = open(&note, &s.verifier()).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, ORIGIN);
        assert_eq!(lines[0].key_hash, s.verifier().key_hash());
        assert_eq!(lines[0].signature.len(), 64);
    }

    #[test]
    fn body_format() {
        let cp = Checkpoint { origin: "o".to_owned(), size: 0, root: [0; 32], extensions: vec!["x".to_owned()] };
        assert_eq!(cp.body(), "o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nx\n");
        let note = signer(1).sign(&cp).unwrap();
        assert!(note.starts_with(&format!("{}\n\u{2014} {ORIGIN} ", cp.body())));
        assert!(note.ends_with('\n'));
    }

    #[test]
    fn known_answer_key_hash_and_vkey() {
        // Independent computation: SHA-256("simpul.gateway/DISKOMINFO-3374\n\x01" || pk)[..4] for seed [1; 32].
        let v = signer(1).verifier();
        let pk = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mut pre = format!("{ORIGIN}\n").into_bytes();
        pre.push(1);
        pre.extend_from_slice(pk.as_bytes());
        let d = Sha256::digest(&pre);
        assert_eq!(v.key_hash(), [d[0], d[1], d[2], d[3]]);
        let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
        let mut key = vec![1];
        key.extend_from_slice(pk.as_bytes());
        assert_eq!(v.vkey(), format!("{ORIGIN}+{hex}+{}", BASE64.encode(key)));
        assert_eq!(Verifier::from_vkey(&v.vkey()).unwrap(), v);
        // RFC 8032 test 1 secret key, so the public key below is fixed by the standard, not by this code.
        let seed: [u8; 32] = decode_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let v = Signer::new("rfc8032", seed).unwrap().verifier();
        let pk: [u8; 32] = decode_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(v.key.as_bytes(), &pk);
        let mut key = vec![1];
        key.extend_from_slice(&pk);
        assert!(v.vkey().starts_with("rfc8032+") && v.vkey().ends_with(&format!("+{}", BASE64.encode(key))));
    }

    fn decode_hex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    /// The example in the documentation of golang.org/x/mod/sumdb/note: written and signed by Go's implementation.
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    /// The brief for this module quoted `yPd3GADG…` here; Go's docs and `note_test.go` say `x08go/…` (whose first
    /// four bytes are the key hash c74f20a3), and only that one verifies.
    const GO_SIG: &str =
        "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    /// Go's example private key: `PRIVATE+KEY+name+hash+base64(0x01 || seed)`.
    const GO_SKEY_SEED: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

    #[test]
    fn interop_with_go_sumdb_note() {
        let v = Verifier::from_vkey(GO_VKEY).unwrap();
        assert_eq!(v.key_hash(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(v.vkey(), GO_VKEY);
        // Not a checkpoint, so `open` refuses the body; the envelope and signature are what is shared with Go.
        let note = format!("{GO_TEXT}\n{GO_SIG}");
        let (body, lines) = split_note(&note).unwrap();
        assert_eq!(body, GO_TEXT);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].line(), GO_SIG);
        v.verify(body, &lines[0]).unwrap();
        assert_eq!(v.verify("If you think", &lines[0]), Err(CheckpointError::BadSignature));
        assert_eq!(open(&note, &v), Err(CheckpointError::MissingLine));
        // Ed25519 is deterministic, so Go's private key must reproduce Go's signature line byte for byte.
        let [alg, seed @ ..]: [u8; 33] = BASE64.decode(GO_SKEY_SEED).unwrap().try_into().unwrap();
        assert_eq!(alg, 1);
        let s = Signer::new("PeterNeumann", seed).unwrap();
        assert_eq!(s.verifier(), v);
        assert_eq!(s.signature_line(GO_TEXT).line(), GO_SIG);
    }

    #[test]
    fn every_changed_byte_is_rejected() {
        let s = signer(1);
        let v = s.verifier();
        let note = s.sign(&checkpoint()).unwrap();
        let bytes = note.as_bytes();
        let mut tried = 0;
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x20] {
                let mut changed = bytes.to_vec();
                changed[i] ^= flip;
                let Ok(text) = String::from_utf8(changed) else { continue };
                tried += 1;
                assert!(open(&text, &v).is_err(), "byte {i} ^ {flip:#x} accepted:\n{text}");
            }
        }
        assert!(tried > note.len());
    }

    #[test]
    fn body_changed_after_signing() {
        let s = signer(1);
        let note = s.sign(&checkpoint()).unwrap();
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(open(&forged, &s.verifier()), Err(CheckpointError::BadSignature));
        let forged =
            note.replacen(&format!("{}\n\n", BASE64.encode([7; 32])), &format!("{}\nx\n\n", BASE64.encode([7; 32])), 1);
        assert_eq!(open(&forged, &s.verifier()), Err(CheckpointError::BadSignature));
    }

    #[test]
    fn other_key_same_name_is_rejected() {
        let note = signer(2).sign(&checkpoint()).unwrap();
        assert_eq!(open(&note, &signer(1).verifier()), Err(CheckpointError::UnverifiedNote));
        // Even if the impostor copies the real key hash, the signature itself fails.
        let real = signer(1).verifier().key_hash();
        let (body, mut lines) = split_note(&note).unwrap();
        lines[0].key_hash = real;
        let spliced = format!("{body}\n{}", lines[0].line());
        assert_eq!(open(&spliced, &signer(1).verifier()), Err(CheckpointError::BadSignature));
    }

    #[test]
    fn cosigned_note_opens_with_either_key() {
        let log = signer(1);
        let witness = Signer::new("witness.relay/jabar", [9; 32]).unwrap();
        let note = log.sign(&checkpoint()).unwrap();
        let cosigned = cosign(&note, &witness).unwrap();
        assert!(cosigned.starts_with(&note));
        let (a, lines) = open(&cosigned, &log.verifier()).unwrap();
        let (b, _) = open(&cosigned, &witness.verifier()).unwrap();
        assert_eq!(a, b);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].name, "witness.relay/jabar");
        assert_eq!(cosign(&cosigned, &witness), Err(CheckpointError::DuplicateSignature));
        assert_eq!(open(&note, &witness.verifier()), Err(CheckpointError::UnverifiedNote));
        // An unrelated signature by an unknown key does not stop the log's own from verifying.
        let other = Signer::new("someone", [3; 32]).unwrap();
        let with_unknown = cosign(&note, &other).unwrap();
        open(&with_unknown, &log.verifier()).unwrap();
    }

    fn err(note: &str) -> CheckpointError {
        open(note, &signer(1).verifier()).unwrap_err()
    }

    /// A correctly signed note over an arbitrary body, so each parse error is reached for its own reason.
    fn signed_body(body: &str) -> String {
        let s = signer(1);
        format!("{body}\n{}", s.signature_line(body).line())
    }

    #[test]
    fn malformed_bodies() {
        let root = BASE64.encode([7; 32]);
        open(&signed_body(&format!("{ORIGIN}\n42\n{root}\n")), &signer(1).verifier()).unwrap();
        let cases = [
            (format!("{ORIGIN}\n42\n"), CheckpointError::MissingLine),
            (format!("\n42\n{root}\n"), CheckpointError::EmptyOrigin),
            (format!("{ORIGIN}\n042\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n00\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n+42\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n-1\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n4 2\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n18446744073709551616\n{root}\n"), CheckpointError::BadSize),
            (format!("{ORIGIN}\n42\n{}\n", BASE64.encode([7; 31])), CheckpointError::BadRoot),
            (format!("{ORIGIN}\n42\n{}\n", BASE64.encode([7; 33])), CheckpointError::BadRoot),
            (format!("{ORIGIN}\n42\n{}\n", root.trim_end_matches('=')), CheckpointError::BadRoot),
            (
                format!("{ORIGIN}\n42\n{}\n", base64::engine::general_purpose::URL_SAFE.encode([0xfb; 32])),
                CheckpointError::BadRoot,
            ),
            (format!("{ORIGIN}\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=\n"), CheckpointError::BadRoot),
            (format!("{ORIGIN}\r\n42\n{root}\n"), CheckpointError::ControlCharacter),
        ];
        for (body, want) in cases {
            assert_eq!(err(&signed_body(&body)), want, "{body:?}");
        }
        assert_eq!(Checkpoint::parse_body(&format!("{ORIGIN}\n42\n{root}")), Err(CheckpointError::MissingNewline));
        assert_eq!(Checkpoint::parse_body(&format!("{ORIGIN}\n42\n{root}\n\nx\n")), Err(CheckpointError::EmptyLine));
        assert_eq!(Checkpoint::parse_body(&format!("\n42\n{root}\n")), Err(CheckpointError::EmptyOrigin));
        assert_eq!(Checkpoint::parse_body(&format!("{ORIGIN}\n0\n{root}\n")).unwrap().size, 0);
        assert_eq!(Checkpoint::parse_body(&format!("{ORIGIN}\n{}\n{root}\n", u64::MAX)).unwrap().size, u64::MAX);
    }

    #[test]
    fn malformed_envelopes() {
        let note = signer(1).sign(&checkpoint()).unwrap();
        let body = checkpoint().body();
        let sig = &note[body.len() + 1..];
        assert_eq!(err(&format!("{body}{sig}")), CheckpointError::MissingBlankLine);
        assert_eq!(err(&note[..note.len() - 1]), CheckpointError::MissingNewline);
        assert_eq!(err(&format!("{body}\n")), CheckpointError::NoSignatures);
        assert_eq!(err(&format!("{body}\n{sig}\n")), CheckpointError::NoSignatures);
        assert_eq!(err(&format!("{body}\n{sig}{sig}")), CheckpointError::DuplicateSignature);
        assert_eq!(err(&format!("{body}\n{}", sig.replacen('\u{2014}', "-", 1))), CheckpointError::MalformedSignature);
        assert_eq!(err(&format!("{body}\n{}", sig.replacen(' ', "  ", 1))), CheckpointError::MalformedSignature);
        assert_eq!(err(&format!("{body}\n{}", sig.replacen(ORIGIN, "a+b", 1))), CheckpointError::MalformedSignature);
        assert_eq!(err(&format!("{body}\n\u{2014} {ORIGIN} AAAA\n")), CheckpointError::MalformedSignature);
        assert_eq!(err(&format!("{body}\n\u{2014} {ORIGIN} !!!!\n")), CheckpointError::MalformedSignature);
        assert_eq!(err(&format!("{body}\n{}", sig.replacen(ORIGIN, "other", 1))), CheckpointError::UnverifiedNote);
        // A well-formed line with the right key hash but a truncated signature.
        let (_, lines) = split_note(&note).unwrap();
        let mut short = lines[0].clone();
        short.signature.truncate(63);
        assert_eq!(err(&format!("{body}\n{}", short.line())), CheckpointError::BadSignature);
        let mut long = format!("{body}\n{sig}");
        long.push_str(&"x".repeat(MAX_NOTE_BYTES));
        assert_eq!(err(&long), CheckpointError::TooLong);
        let mut many = format!("{body}\n{sig}");
        for i in 0..MAX_SIGNATURES {
            many.push_str(&Signer::new(format!("w{i}"), [i as u8; 32]).unwrap().signature_line(&body).line());
        }
        assert_eq!(err(&many), CheckpointError::TooManySignatures);
        let ninety_nine = many.lines().take(4 + MAX_SIGNATURES).collect::<Vec<_>>().join("\n") + "\n";
        open(&ninety_nine, &signer(1).verifier()).unwrap();
        let w = Signer::new("late", [200; 32]).unwrap();
        assert_eq!(cosign(&ninety_nine, &w), Err(CheckpointError::TooManySignatures));
    }

    #[test]
    fn names_and_vkeys() {
        for bad in ["", "a b", "a+b", "a\tb", "a\u{a0}b"] {
            assert_eq!(Signer::new(bad, [1; 32]).unwrap_err(), CheckpointError::BadKeyName, "{bad:?}");
        }
        assert!(format!("{:?}", signer(1)).contains("<secret>"));
        assert!(!format!("{:?}", signer(1)).contains("[1, 1"));
        let vkey = signer(1).verifier().vkey();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (hash, key) = rest.split_once('+').unwrap();
        let mut wrong_hash = hash.to_owned();
        wrong_hash.replace_range(0..1, if hash.starts_with('0') { "1" } else { "0" });
        assert_eq!(Verifier::from_vkey(&format!("{name}+{wrong_hash}+{key}")), Err(CheckpointError::KeyHashMismatch));
        assert_eq!(Verifier::from_vkey(&format!("other+{hash}+{key}")), Err(CheckpointError::KeyHashMismatch));
        let mut alg2 = BASE64.decode(key).unwrap();
        alg2[0] = 2;
        for bad in [
            format!("{name}+{hash}"),
            format!("{name}+{hash}+{key}+x"),
            format!("{name}+{}+{key}", hash.to_uppercase()),
            format!("{name}+{}+{key}", &hash[..6]),
            format!("{name}+{hash}+{}", BASE64.encode(alg2)),
            format!("{name}+{hash}+{}", &key[..key.len() - 4]),
            format!("{name}+{hash}+not base64"),
        ] {
            assert!(Verifier::from_vkey(&bad).is_err(), "{bad}");
        }
        assert_eq!(Verifier::from_vkey(&format!("+{hash}+{key}")), Err(CheckpointError::BadKeyName));
        // Standard base64 uses '+': keys whose encoding holds one must round-trip too.
        let with_plus: Vec<Verifier> =
            (0..=255u8).map(|b| signer(b).verifier()).filter(|v| v.vkey().matches('+').count() > 2).collect();
        assert!(!with_plus.is_empty());
        for verifier in with_plus {
            assert_eq!(Verifier::from_vkey(&verifier.vkey()), Ok(verifier));
        }
    }

    #[test]
    fn sign_refuses_unreadable_checkpoints() {
        let s = signer(1);
        for cp in [
            Checkpoint { origin: String::new(), ..checkpoint() },
            Checkpoint { origin: "a\nb".to_owned(), ..checkpoint() },
            Checkpoint { extensions: vec![String::new()], ..checkpoint() },
            Checkpoint { extensions: vec!["a\nb".to_owned()], ..checkpoint() },
            Checkpoint { extensions: vec!["a\rb".to_owned()], ..checkpoint() },
        ] {
            assert!(s.sign(&cp).is_err(), "{cp:?}");
        }
    }
}
