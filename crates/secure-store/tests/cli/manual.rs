//! `secure-store completions SHELL` and `secure-store man`: generated from
//! the CLI definitions, so they must list every visible subcommand; the bash
//! script is run in a real bash to complete a command line.

use std::process::Command;

use super::deploy::subcommands;
use super::harness::{ok, ss};

#[test]
fn bash_completion_completes_subcommands_in_a_real_bash() {
    let script = ok(&mut ss(["completions", "bash"]));
    for sub in subcommands(&[]) {
        assert!(
            script.contains(&format!("secure__store,{sub})")),
            "no {sub} in the bash script"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secure-store.bash");
    std::fs::write(&file, &script).unwrap();
    // What bash does on TAB: COMP_WORDS/COMP_CWORD, then the function with (cmd, cur, prev).
    let complete = |words: &[&str]| -> String {
        let cword = words.len() - 1;
        let program = format!(
            "source {file}; COMP_WORDS=({w}); COMP_CWORD={cword}; \
             _secure__store secure-store {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file = file.display(),
            w = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cur = format_args!("'{}'", words[cword]),
            prev = format_args!("'{}'", words[cword - 1]),
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(complete(&["secure-store", "fle"]).trim(), "fleet");
    assert_eq!(complete(&["secure-store", "fleet", "enr"]).trim(), "enroll");
    let flags = complete(&["secure-store", "fleet", "enroll", "--"]);
    for flag in ["--group", "--env", "--days"] {
        assert!(
            flags.lines().any(|l| l == flag),
            "{flag} not offered: {flags}"
        );
    }
}

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(&mut ss(["completions", shell]));
        for sub in subcommands(&[]) {
            assert!(script.contains(&sub), "{shell}: no {sub}");
        }
    }
    // An unknown shell is a usage error that names the ones there are.
    let r = super::harness::run(&mut ss(["completions", "tcsh"]));
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("bash") && r.stderr.contains("zsh"),
        "{}",
        r.stderr
    );
}

#[test]
fn man_page_has_the_sections_and_lists_every_subcommand() {
    let page = ok(&mut ss(["man"]));
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect(".TH header");
    assert!(th.starts_with(".TH secure-store 1 "), "{th}");
    assert!(th.contains(env!("CARGO_PKG_VERSION")), "{th}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "SUBCOMMANDS",
        "VERSION",
    ] {
        assert!(
            page.lines().any(|l| l == format!(".SH {section}")),
            "no {section}"
        );
    }
    for sub in subcommands(&[]) {
        let roff = sub.replace('-', "\\-");
        assert!(
            page.contains(&format!("secure\\-store\\-{roff}(1)")),
            "the page does not list {sub}"
        );
    }
    assert!(!page.contains("bench"), "hidden command in the man page");
}

#[test]
fn man_out_writes_one_page_per_subcommand_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let listed = ok(&mut ss(["man", "--out", dir.path().to_str().unwrap()]));
    // One page per visible command at every depth: secure-store-fleet-enroll.1.
    fn pages(path: &mut Vec<String>, out: &mut Vec<String>) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut name = vec!["secure-store"];
        name.extend(&p);
        out.push(format!("{}.1", name.join("-")));
        for sub in subcommands(&p) {
            path.push(sub);
            pages(path, out);
            path.pop();
        }
    }
    let mut expected = Vec::new();
    pages(&mut Vec::new(), &mut expected);
    for name in &expected {
        let path = dir.path().join(name);
        assert!(path.is_file(), "{name} missing");
        assert!(
            listed.lines().any(|l| l == path.to_str().unwrap()),
            "{name} not printed"
        );
    }
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");

    let Some(man) = which("man") else {
        let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "man is not installed and is required: apt-get install man-db"
        );
        eprintln!("SKIPPED: rendering with man -l (apt-get install man-db)");
        return;
    };
    let out = Command::new(man)
        .args(["-l", "-P", "cat"])
        .arg(dir.path().join("secure-store-fleet-enroll.1"))
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("secure-store-fleet-enroll - Issue a client certificate"),
        "{text}"
    );
    for part in ["SYNOPSIS", "OPTIONS", "--group <GROUP>", "<FLEET>", "--env"] {
        assert!(text.contains(part), "rendered page lacks {part}:\n{text}");
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|p| p.join(name))
        .find(|p| p.is_file())
}
