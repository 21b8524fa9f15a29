//! Identities kept in files: the self-signed one made once and kept while it names what it must, private keys 0600
//! (a loose one refused, never silently used), and configured PEM files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use simpul_tls::{Identity, TlsError};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_generated_identity_is_kept_private_and_reused_while_it_names_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("state/tls/cert.pem"), dir.path().join("state/tls/key.pem"));
    let first = Identity::load_or_generate(&cert, &key, &names(&["dwh.example"])).unwrap();
    assert_eq!((mode(&cert), mode(&key), mode(cert.parent().unwrap())), (0o600, 0o600, 0o700));
    assert_eq!(fs::read_to_string(&cert).unwrap(), first.cert_pem());
    for name in ["localhost", "127.0.0.1", "::1", "dwh.example"] {
        assert!(first.covers(name), "{name}");
    }
    assert!(!first.covers("198.51.100.1") && !first.covers("other.example"));

    // The same names, or fewer: the same certificate, so a pinned fingerprint stays valid.
    for kept in [names(&["dwh.example"]), names(&[]), names(&["127.0.0.1"])] {
        let again = Identity::load_or_generate(&cert, &key, &kept).unwrap();
        assert_eq!(again.fingerprint(), first.fingerprint(), "{kept:?}");
    }

    // A name the certificate lacks (the address a server now listens on): a new certificate that names it and the
    // earlier ones, kept from then on.
    let wider = names(&["dwh.example", "198.51.100.1"]);
    let second = Identity::load_or_generate(&cert, &key, &wider).unwrap();
    assert_ne!(second.fingerprint(), first.fingerprint());
    assert!(second.covers("198.51.100.1") && second.covers("dwh.example") && second.covers("localhost"));
    assert_eq!(Identity::load_or_generate(&cert, &key, &wider).unwrap().fingerprint(), second.fingerprint());
    assert_eq!(Identity::from_pem_files(&cert, &key).unwrap().fingerprint(), second.fingerprint());
    assert_eq!((mode(&cert), mode(&key)), (0o600, 0o600));

    // A name no certificate can carry is refused rather than making a new certificate at every start.
    let error = Identity::load_or_generate(&cert, &key, &names(&["not a name!"])).unwrap_err();
    assert!(matches!(&error, TlsError::Name(n) if n == "not a name!") && error.is_invalid(), "{error}");
}

#[test]
fn a_key_others_may_read_is_refused_with_the_fix_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
    let generated = Identity::load_or_generate(&cert, &key, &[]).unwrap();
    let key_pem = fs::read(&key).unwrap();
    for loose in [0o640, 0o604, 0o644] {
        fs::set_permissions(&key, fs::Permissions::from_mode(loose)).unwrap();
        for error in [
            Identity::load_or_generate(&cert, &key, &[]).unwrap_err(),
            // Even when a new certificate would be due: the admin should know the key may have leaked.
            Identity::load_or_generate(&cert, &key, &names(&["dwh.example"])).unwrap_err(),
            Identity::from_pem_files(&cert, &key).unwrap_err(),
        ] {
            assert!(error.is_invalid(), "{error}");
            let message = error.to_string();
            assert!(message.contains(&format!("{loose:04o}")), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", key.display())), "{message}");
        }
        assert_eq!(fs::read(&key).unwrap(), key_pem, "left as it was");
        assert_eq!(mode(&key), loose);
    }
    // The certificate is public; only the key's mode matters.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(Identity::from_pem_files(&cert, &key).unwrap().fingerprint(), generated.fingerprint());
}

#[test]
fn files_replaced_by_a_new_identity_are_private_whatever_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
    // A certificate left with a loose mode and no key (an interrupted first start, or a copy by hand), and a stale
    // temporary key file others could read.
    simpul_files::prepare_dir(cert.parent().unwrap()).unwrap();
    fs::write(&cert, "left over").unwrap();
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o666)).unwrap();
    let stale = dir.path().join("tls/.key.pem.tmp");
    fs::write(&stale, "left over").unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
    let identity = Identity::load_or_generate(&cert, &key, &[]).unwrap();
    assert_eq!((mode(&cert), mode(&key)), (0o600, 0o600));
    assert!(!stale.exists());
    assert_eq!(Identity::from_pem_files(&cert, &key).unwrap().fingerprint(), identity.fingerprint());

    // A key that is not the certificate's (a crash between the two writes): made again.
    let other = dir.path().join("other");
    let foreign = Identity::load_or_generate(&other.join("cert.pem"), &other.join("key.pem"), &[]).unwrap();
    fs::copy(other.join("key.pem"), &key).unwrap();
    let error = Identity::from_pem_files(&cert, &key).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }) && error.is_invalid(), "{error}");
    let remade = Identity::load_or_generate(&cert, &key, &[]).unwrap();
    assert_ne!(remade.fingerprint(), identity.fingerprint());
    assert_ne!(remade.fingerprint(), foreign.fingerprint());
    assert_eq!(Identity::from_pem_files(&cert, &key).unwrap().fingerprint(), remade.fingerprint());
}

#[test]
fn files_that_are_not_pem_and_a_directory_others_may_enter_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    simpul_files::create_private(&junk, b"not pem").unwrap();
    let loose_dir = dir.path().join("shared");
    fs::create_dir(&loose_dir).unwrap();
    fs::set_permissions(&loose_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let error = Identity::load_or_generate(&loose_dir.join("cert.pem"), &loose_dir.join("key.pem"), &[]).unwrap_err();
    assert!(
        error.is_invalid() && error.to_string().contains("chmod 700"),
        "a key is not made where others may look: {error}"
    );
    let error = Identity::from_pem_files(&junk, &junk).unwrap_err();
    assert!(matches!(&error, TlsError::Pem(path, "certificate") if *path == junk), "{error}");
    let (cert, key) = (dir.path().join("tls/cert.pem"), dir.path().join("tls/key.pem"));
    Identity::load_or_generate(&cert, &key, &[]).unwrap();
    let error = Identity::from_pem_files(&cert, &junk).unwrap_err();
    assert!(matches!(&error, TlsError::Pem(path, "private key") if *path == junk), "{error}");
    let error = Identity::from_pem_files(&dir.path().join("absent.pem"), &key).unwrap_err();
    assert!(matches!(error, TlsError::Read(..)) && !error.is_invalid(), "{error}");
}
