//! `check-config FILE [--json]`, the same for every binary: it runs the checks the binary's start runs on a config
//! before it binds anything (the caller passes that very function), and answers in one shape.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

use crate::exit;

/// Runs `check` on `file` and reports the verdict for `program` (e.g. `simpul-gateway`); returns the exit code.
///
/// Text: `FILE: valid` on standard output, or `PROGRAM: ERROR` on standard error. JSON: one object on standard
/// output, `{"file": FILE, "valid": true}` or `{"file": FILE, "valid": false, "error": ERROR, "exit": 2}` (the
/// `{"error", "exit"}` every failing command answers with under `--json`).
pub fn check<E: Display>(program: &str, file: &Path, json: bool, check: impl FnOnce(&Path) -> Result<(), E>) -> u8 {
    let verdict = verdict(program, file, json, check(file));
    // A reader that went away (`| head`) does not change the verdict.
    if let Some(text) = verdict.stdout {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
    if let Some(text) = verdict.stderr {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    verdict.exit
}

#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    stdout: Option<String>,
    stderr: Option<String>,
    exit: u8,
}

fn verdict<E: Display>(program: &str, file: &Path, json: bool, result: Result<(), E>) -> Verdict {
    let exit = if result.is_ok() { exit::OK } else { exit::INVALID };
    let (stdout, stderr) = match (json, result) {
        (true, Ok(())) => (Some(serde_json::json!({ "file": file, "valid": true })), None),
        (true, Err(e)) => {
            let value = serde_json::json!({ "file": file, "valid": false, "error": e.to_string(), "exit": exit });
            (Some(value), None)
        }
        (false, Ok(())) => return Verdict { stdout: Some(format!("{}: valid\n", file.display())), stderr: None, exit },
        (false, Err(e)) => return Verdict { stdout: None, stderr: Some(format!("{program}: {e}\n")), exit },
    };
    Verdict { stdout: stdout.map(|value| format!("{value}\n")), stderr, exit }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn every_binary_answers_in_one_shape() {
        let file = Path::new("/etc/simpul/x.toml");
        let bad: Result<(), &str> = Err("upstream: reading ca /nope.pem: No such file or directory (os error 2)");
        assert_eq!(
            verdict("simpul-x", file, false, Ok::<(), &str>(())),
            Verdict { stdout: Some("/etc/simpul/x.toml: valid\n".into()), stderr: None, exit: 0 }
        );
        assert_eq!(
            verdict("simpul-x", file, false, bad),
            Verdict {
                stdout: None,
                stderr: Some(
                    "simpul-x: upstream: reading ca /nope.pem: No such file or directory (os error 2)\n".into()
                ),
                exit: 2
            }
        );
        let parsed = |v: Verdict| -> (Value, u8) {
            assert_eq!(v.stderr, None);
            let text = v.stdout.unwrap();
            assert!(text.ends_with('\n') && text.lines().count() == 1, "one line: {text}");
            (serde_json::from_str(&text).unwrap(), v.exit)
        };
        assert_eq!(
            parsed(verdict("simpul-x", file, true, Ok::<(), &str>(()))),
            (json!({ "file": "/etc/simpul/x.toml", "valid": true }), 0)
        );
        assert_eq!(
            parsed(verdict("simpul-x", file, true, bad)),
            (
                json!({ "file": "/etc/simpul/x.toml", "valid": false,
                        "error": "upstream: reading ca /nope.pem: No such file or directory (os error 2)", "exit": 2 }),
                2
            )
        );
    }
}
