//! The tip: how many records the log has acknowledged, their root, and the newest checkpoint it signed, kept
//! outside the database it protects (`audit.tip` beside it, 0600).
//!
//! # Why outside
//!
//! sled treats a damaged message in the part of its log written since its last start as a torn write: on the next
//! open it silently ends the log there, dropping that record, every later one and the checkpoints that covered
//! them, and reports success. A log checked only against itself would then verify, and the next request would get a
//! sequence number an earlier answer already carried. The tip is written, and synced, after every batch's flush and
//! before any of its records is acknowledged; so the database must always hold at least the tip's size and
//! reproduce its root there, and anything less is damage, refused at start and named by `audit verify`.
//!
//! # Format
//!
//! Two slots of [`SLOT`] bytes, written alternately, so a torn write spoils at most the slot being written and the
//! other still holds the previous tip (never more than the database holds). A slot is UTF-8 text padded with NUL
//! bytes, readable with `cat`:
//!
//! ```text
//! simpul-audit-tip v1
//! generation 1042
//! size 5161
//! root <base64 root of the first `size` records>
//!
//! <the newest signed checkpoint note, verbatim, or nothing before the first>
//! sha256 <hex of every byte above, newlines included>
//! ```
//!
//! The `sha256` line, last, covers everything above it, note included, so a slot torn anywhere is invalid. A reader
//! takes the valid slot with the higher generation.
//!
//! After the two slots, from byte [`LEAVES`] on, the leaf hash of every acknowledged record, 32 bytes each in
//! sequence order, written with the slot and covered by the same sync. They let `audit verify` name the damaged
//! record even when sled refuses to open its files: it finds the first record whose leaf no copy in the raw files
//! hashes to (see `queries::verify_stopped`). Their root must be the slot's root before anything trusts them; the
//! newest ones are rewritten from the database at every open, since a crash may leave the slot durable before them.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use simpul_core::audit::merkle::{self, Hash};
use simpul_files::FileError;

/// Bytes per slot: the header lines and a checkpoint note (a few hundred bytes, more with witness co-signatures).
pub const SLOT: usize = 4096;
/// Where the leaf hashes begin.
pub const LEAVES: u64 = 2 * SLOT as u64;
const MAGIC: &str = "simpul-audit-tip v1";

#[derive(Debug, thiserror::Error)]
pub enum TipError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: neither slot holds a valid tip (damaged or not a tip file)")]
    Unreadable { path: PathBuf },
    #[error("the checkpoint note is {0} bytes, more than a tip slot holds")]
    TooLong(usize),
}

/// What the tip says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipState {
    /// Records acknowledged: the database must hold at least these.
    pub size: u64,
    /// The root of the first `size` records.
    pub root: Hash,
    /// The newest signed checkpoint note, if one was signed since the tip began.
    pub checkpoint: Option<String>,
}

impl TipState {
    pub fn empty() -> Self {
        TipState { size: 0, root: merkle::empty_root(), checkpoint: None }
    }
}

#[derive(Debug)]
struct Inner {
    file: File,
    generation: u64,
    state: TipState,
}

/// The open tip file; every write replaces a whole slot and syncs before returning.
#[derive(Debug)]
pub struct Tip {
    path: PathBuf,
    inner: Mutex<Inner>,
}

fn encode(generation: u64, state: &TipState) -> Result<Vec<u8>, TipError> {
    let mut text = format!(
        "{MAGIC}\ngeneration {generation}\nsize {}\nroot {}\n\n{}",
        state.size,
        BASE64.encode(state.root),
        state.checkpoint.as_deref().unwrap_or("")
    );
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    text.push_str(&format!("sha256 {}\n", hex(&digest)));
    let mut bytes = text.into_bytes();
    if bytes.len() > SLOT {
        return Err(TipError::TooLong(state.checkpoint.as_deref().map_or(0, str::len)));
    }
    bytes.resize(SLOT, 0);
    Ok(bytes)
}

/// The two slots of the file at `path` (not the leaf hashes after them); `None` when there is no file.
fn read_slots(path: &Path) -> Result<Option<Vec<u8>>, TipError> {
    use std::io::Read;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TipError::File(FileError::Io(path.to_owned(), e))),
    };
    simpul_files::check_mode(path, 0o600)?;
    let mut bytes = Vec::new();
    file.take(LEAVES).read_to_end(&mut bytes).map_err(|e| TipError::File(FileError::Io(path.to_owned(), e)))?;
    Ok(Some(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(slot: &[u8]) -> Option<(u64, TipState)> {
    let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
    let text = std::str::from_utf8(&slot[..end]).ok()?.strip_suffix('\n')?;
    let (content, sum) = text.rsplit_once('\n')?;
    let content = format!("{content}\n");
    let digest: [u8; 32] = Sha256::digest(content.as_bytes()).into();
    if sum.strip_prefix("sha256 ")? != hex(&digest) {
        return None;
    }
    let (fields, note) = content.split_once("\n\n")?;
    let mut lines = fields.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut value = |key: &str| lines.next()?.strip_prefix(key)?.strip_prefix(' ').map(str::to_owned);
    let generation = value("generation")?.parse().ok()?;
    let size = value("size")?.parse().ok()?;
    let root = BASE64.decode(value("root")?).ok()?.try_into().ok()?;
    let checkpoint = (!note.is_empty()).then(|| note.to_owned());
    Some((generation, TipState { size, root, checkpoint }))
}

impl Tip {
    /// Whether a tip file with anything in it is at `path` (an empty one is what a crash while making it leaves).
    pub fn exists(path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
    }

    /// Reads the tip at `path`: `None` when there is no file (a log that never had one).
    pub fn read(path: &Path) -> Result<Option<TipState>, TipError> {
        let Some(bytes) = read_slots(path)? else {
            return Ok(None);
        };
        Self::newest(path, &bytes).map(|(_, state)| Some(state))
    }

    /// The leaf hashes of records `0..count` kept after the slots; fewer when the file is shorter.
    pub fn read_leaves(path: &Path, count: u64) -> Result<Vec<Hash>, TipError> {
        Self::read_leaves_from(path, 0, count)
    }

    /// The leaf hashes of records `first..first + count`; fewer when the file is shorter.
    pub fn read_leaves_from(path: &Path, first: u64, count: u64) -> Result<Vec<Hash>, TipError> {
        use std::io::{Read, Seek, SeekFrom};
        let io = |e| TipError::File(FileError::Io(path.to_owned(), e));
        let mut file = File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(LEAVES + first.saturating_mul(32))).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(count.saturating_mul(32)).read_to_end(&mut bytes).map_err(io)?;
        Ok(bytes.chunks_exact(32).map(|c| c.try_into().expect("32 bytes")).collect())
    }

    fn newest(path: &Path, bytes: &[u8]) -> Result<(u64, TipState), TipError> {
        let slots = bytes.chunks(SLOT).take(2).filter_map(decode);
        slots.max_by_key(|(generation, _)| *generation).ok_or_else(|| TipError::Unreadable { path: path.to_owned() })
    }

    /// Opens the tip at `path`, creating it with `initial` when it does not exist; returns it with what it said
    /// (`None` for a new file).
    pub fn open(path: &Path, initial: &TipState) -> Result<(Tip, Option<TipState>), TipError> {
        let existing = read_slots(path)?;
        let file = simpul_files::open_private(path)?;
        let (tip, found) = match existing.filter(|bytes| !bytes.is_empty()) {
            Some(bytes) => {
                let (generation, state) = Self::newest(path, &bytes)?;
                let inner = Inner { file, generation, state: state.clone() };
                (Tip { path: path.to_owned(), inner: Mutex::new(inner) }, Some(state))
            }
            None => {
                let inner = Inner { file, generation: 0, state: initial.clone() };
                let tip = Tip { path: path.to_owned(), inner: Mutex::new(inner) };
                tip.write(|state| *state = initial.clone())?;
                if let Some(dir) = path.parent() {
                    simpul_files::sync_dir(dir)?;
                }
                (tip, None)
            }
        };
        Ok((tip, found))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the tip says now.
    pub fn state(&self) -> TipState {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).state.clone()
    }

    /// Changes the tip and writes it durably into the slot not holding the current one. On failure the tip in
    /// memory is left as it was.
    pub fn write(&self, change: impl FnOnce(&mut TipState)) -> Result<(), TipError> {
        self.append(0, &[], change)
    }

    /// Writes the leaf hashes of records `first..` into their place; durable with the next [`Tip::write`] or
    /// [`Tip::append`].
    pub fn write_leaves(&self, first: u64, leaves: &[Hash]) -> Result<(), TipError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.put_leaves(&inner.file, first, leaves)
    }

    fn put_leaves(&self, file: &File, first: u64, leaves: &[Hash]) -> Result<(), TipError> {
        if leaves.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = leaves.concat();
        let io = |e| TipError::File(FileError::Io(self.path.clone(), e));
        file.write_all_at(&bytes, LEAVES + first * 32).map_err(io)
    }

    /// [`Tip::write`] that also records the leaf hashes of records `first..`, covered by the same sync.
    pub fn append(&self, first: u64, leaves: &[Hash], change: impl FnOnce(&mut TipState)) -> Result<(), TipError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.put_leaves(&inner.file, first, leaves)?;
        let mut state = inner.state.clone();
        change(&mut state);
        let generation = inner.generation + 1;
        let bytes = encode(generation, &state)?;
        let offset = (generation % 2) * SLOT as u64;
        let io = |e| TipError::File(FileError::Io(self.path.clone(), e));
        inner.file.write_all_at(&bytes, offset).map_err(io)?;
        inner.file.sync_data().map_err(io)?;
        inner.generation = generation;
        inner.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: u64, note: Option<&str>) -> TipState {
        TipState { size, root: [size as u8; 32], checkpoint: note.map(str::to_owned) }
    }

    #[test]
    fn the_newest_write_is_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.tip");
        assert_eq!(Tip::read(&path).unwrap(), None);
        let (tip, found) = Tip::open(&path, &TipState::empty()).unwrap();
        assert_eq!(found, None);
        assert_eq!(Tip::read(&path).unwrap(), Some(TipState::empty()));
        for size in 1..=5u64 {
            tip.write(|s| *s = state(size, (size % 2 == 0).then_some("origin\n4\nroot=\n\n— origin sig\n"))).unwrap();
            assert_eq!(Tip::read(&path).unwrap(), Some(tip.state()));
        }
        drop(tip);
        let (_tip, found) = Tip::open(&path, &TipState::empty()).unwrap();
        assert_eq!(found, Some(state(5, None)));
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(text.contains("size 5\n"), "{text}");
    }

    #[test]
    fn a_torn_or_flipped_slot_falls_back_to_the_other_and_two_bad_slots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.tip");
        let (tip, _) = Tip::open(&path, &TipState::empty()).unwrap();
        tip.write(|s| *s = state(7, None)).unwrap();
        tip.write(|s| *s = state(9, None)).unwrap();
        drop(tip);
        let mut bytes = std::fs::read(&path).unwrap();
        // Generations 1 (the empty tip), 2 and 3 went to slots 1, 0, 1: spoil slot 1, as a torn write of
        // generation 3 would, and generation 2 is what remains.
        bytes[SLOT + 30] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Tip::read(&path).unwrap(), Some(state(7, None)));
        bytes[40] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(Tip::read(&path), Err(TipError::Unreadable { .. })));
    }

    #[test]
    fn leaf_hashes_follow_the_slots_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.tip");
        let (tip, _) = Tip::open(&path, &TipState::empty()).unwrap();
        let leaves: Vec<Hash> = (0..5u8).map(|i| [i; 32]).collect();
        tip.append(0, &leaves[..3], |s| s.size = 3).unwrap();
        tip.append(3, &leaves[3..], |s| s.size = 5).unwrap();
        assert_eq!(Tip::read_leaves(&path, 5).unwrap(), leaves);
        assert_eq!(Tip::read_leaves(&path, 9).unwrap(), leaves, "no more than were written");
        assert_eq!(Tip::read_leaves_from(&path, 3, 9).unwrap(), leaves[3..], "from the fourth on");
        assert_eq!(Tip::read(&path).unwrap().unwrap().size, 5, "the slots are read apart from the leaves");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), LEAVES + 5 * 32);
    }

    #[test]
    fn a_slot_torn_in_its_checkpoint_note_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.tip");
        let (tip, _) = Tip::open(&path, &TipState::empty()).unwrap();
        let note = "origin\n7\nroot=\n\n— origin signature\n";
        tip.write(|s| *s = state(7, Some(note))).unwrap();
        tip.write(|s| *s = state(9, Some(note))).unwrap();
        drop(tip);
        // Generation 3 (size 9) is in slot 1: spoil a byte of its note, past the header lines.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = SLOT + bytes[SLOT..].windows(9).position(|w| w == b"signature").unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Tip::read(&path).unwrap(), Some(state(7, Some(note))));
    }

    #[test]
    fn a_note_too_long_for_a_slot_is_refused_and_the_tip_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.tip");
        let (tip, _) = Tip::open(&path, &TipState::empty()).unwrap();
        let long = "x".repeat(SLOT);
        assert!(matches!(tip.write(|s| s.checkpoint = Some(long)), Err(TipError::TooLong(_))));
        assert_eq!(tip.state(), TipState::empty());
    }
}
