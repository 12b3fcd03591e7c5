//! `kaas completion SHELL`: the scripts name the CLI's real commands and flags, and
//! bash's is valid and completes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const KAAS: &str = env!("CARGO_BIN_EXE_kaas");

fn completion(shell: &str) -> String {
    let out = Command::new(KAAS)
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kaas completion {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `script` in bash; its output, or a panic with what bash said.
fn bash(script: &str) -> String {
    let out: Output = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", script])
        .env("KAAS", KAAS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shell_gets_a_script_naming_the_real_commands() {
    // Fish names long flags without their dashes.
    for (shell, flag) in [
        ("bash", "--all-tenants"),
        ("zsh", "--all-tenants"),
        ("fish", "-l all-tenants"),
    ] {
        let script = completion(shell);
        for word in [
            "cluster",
            "kubeconfig",
            "machine",
            "tenant",
            "completion",
            flag,
        ] {
            assert!(script.contains(word), "{shell}: {word:?} missing");
        }
    }
    assert!(completion("zsh").starts_with("#compdef kaas"));
    assert!(completion("fish").contains("complete -c kaas"));
}

#[test]
fn an_unknown_shell_is_refused_naming_the_choices() {
    let out = Command::new(KAAS)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("tcsh") && said.contains("bash") && said.contains("zsh"),
        "{said}"
    );
}

#[test]
fn the_bash_script_is_valid_and_completes_commands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kaas.bash");
    std::fs::write(&file, completion("bash")).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Completes as bash would on TAB: the words so far, the one under the cursor.
    let complete = |words: &[&str]| -> Vec<String> {
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(\"$KAAS\" completion bash)\n\
             COMP_WORDS=({})\nCOMP_CWORD={cword}\n\
             _kaas kaas '{}' '{}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words[cword],
            words[cword - 1],
        );
        let mut got: Vec<String> = bash(&script).lines().map(str::to_owned).collect();
        got.sort();
        got
    };
    assert_eq!(complete(&["kaas", "clu"]), ["cluster"]);
    let c = complete(&["kaas", "c"]);
    for word in ["cluster", "completion", "context"] {
        assert!(c.iter().any(|w| w == word), "{word} not in {c:?}");
    }
    assert!(complete(&["kaas", "cluster", "l"]).contains(&"list".to_owned()));
    assert!(complete(&["kaas", "cluster", "list", "--all"]).contains(&"--all-tenants".to_owned()));
    assert!(complete(&["kaas", "completion", "z"]).contains(&"zsh".to_owned()));
}

/// A reader that stops early (`| head -n 1`) is no error: no panic, exit status 0.
#[test]
fn a_reader_that_stops_early_is_no_error() {
    // kaas's errors go where bash's output is read; its script into a `head` that
    // stops after a line (the script is far larger than a pipe's buffer).
    let out = bash(
        r#"exec 3>&1; "$KAAS" completion zsh 2>&3 | head -n 1 >/dev/null; echo "status ${PIPESTATUS[0]}""#,
    );
    assert!(out.contains("status 0"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
