//! The deployment files (Dockerfile, docker-compose.yml, balena.yml, the
//! systemd unit and its credentials script) checked against the real CLI:
//! no Docker engine runs here, so every `secure-store` command, flag and
//! environment variable they name must exist in this binary's `--help`,
//! the YAML must parse with the structure the demo needs, and the unit must
//! carry its hardening and pass `systemd-analyze verify`. The PostgreSQL
//! replica path (compose override, systemd drop-in, balena device variables)
//! must pass the Tang key-encryption key (KEK) the way the server reads it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::{ok, run, ss, tool_in, Run};

/// The repository root (the deployment files live there).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The files that start or configure `secure-store`, and the page that documents them.
const DEPLOY_FILES: &[&str] = &[
    "Dockerfile",
    "docker-compose.yml",
    "docker-compose.postgres.yml",
    "balena.yml",
    "deploy/systemd/secure-store-server.service",
    "deploy/systemd/secure-store-server.service.d/postgres.conf",
    "deploy/systemd/secure-store-server-credentials",
    "docs/DEPLOY.md",
];

/// The systemd drop-in that turns the unit into a PostgreSQL replica.
const PG_DROPIN: &str = "deploy/systemd/secure-store-server.service.d/postgres.conf";

/// The visible subcommands of `secure-store PATH...`, from its `--help`.
pub fn subcommands(path: &[&str]) -> Vec<String> {
    let help = ok(&mut ss(path.iter().chain(&["--help"])));
    let mut out = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            // "  name  description"; the section ends at a line not indented by two.
            let Some(rest) = line.strip_prefix("  ") else {
                break;
            };
            if let Some(name) = rest.split_whitespace().next() {
                if !rest.starts_with(' ') && name != "help" {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out
}

/// Every `secure-store ...` invocation in `text`: the subcommand path and the
/// long flags given to it (up to a shell operator or `--`).
fn invocations(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("secure-store") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "secure-store".len()..];
            rest = after;
            let starts_command = before.is_none_or(|c| " \t\"'(/=".contains(c));
            let ends_word = after.starts_with([' ', '"']);
            // `/var/lib/secure-store "`: a path, not the program.
            let is_program = before != Some('/')
                || line[..line.len() - after.len()].ends_with("bin/secure-store");
            if !(starts_command && ends_word && is_program) {
                continue;
            }
            // Prose ("builds secure-store for ...") and paths are not invocations:
            // an invocation names a subcommand first.
            let first = after
                .split(|c: char| c.is_whitespace() || "\"',[]".contains(c))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            if !subcommands(&[]).iter().any(|s| s == first) {
                continue;
            }
            let mut path: Vec<String> = Vec::new();
            let mut flags = Vec::new();
            let tokens = after
                .split(|c: char| c.is_whitespace() || "\"',[]".contains(c))
                .filter(|t| !t.is_empty());
            for tok in tokens {
                if ["|", ">", ">>", "&&", ";", ")", "--", "\\", "#"].contains(&tok)
                    || tok.starts_with(')')
                    || tok.starts_with('#')
                {
                    break;
                }
                if let Some(flag) = tok.strip_prefix("--") {
                    flags.push(format!("--{}", flag.split('=').next().unwrap_or(flag)));
                    continue;
                }
                let parent: Vec<&str> = path.iter().map(String::as_str).collect();
                if flags.is_empty() && subcommands(&parent).iter().any(|s| s == tok) {
                    path.push(tok.to_owned());
                }
            }
            found.push((path, flags));
        }
    }
    found
}

/// Every environment variable name a deployment file sets or reads for us.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let ours = ["SECURE_STORE_", "MTLS_", "STORE_"]
            .iter()
            .any(|p| word.starts_with(p));
        if ours
            && !word.ends_with('_')
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            names.insert(word.to_owned());
        }
    }
    names
}

/// The `--help` text of every visible command, concatenated.
fn all_help() -> String {
    fn walk(path: &mut Vec<String>, out: &mut String) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        out.push_str(&ok(&mut ss(p.iter().chain(&["--help"]))));
        for sub in subcommands(&p) {
            path.push(sub);
            walk(path, out);
            path.pop();
        }
    }
    let mut out = String::new();
    walk(&mut Vec::new(), &mut out);
    out
}

#[test]
fn deploy_files_use_only_commands_flags_and_env_vars_that_exist() {
    let mut checked = BTreeSet::new();
    for file in DEPLOY_FILES {
        for (path, flags) in invocations(&read(file)) {
            let args: Vec<&str> = path.iter().map(String::as_str).chain(["--help"]).collect();
            let help = ok(&mut ss(&args));
            for flag in flags {
                let listed = help
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .any(|w| w == flag);
                assert!(
                    listed,
                    "{file}: `secure-store {}` has no {flag}",
                    path.join(" ")
                );
            }
            checked.insert(path.join(" "));
        }
    }
    // The commands the files are about were found (the parser works).
    for want in [
        "server",
        "run",
        "fleet init",
        "fleet enroll",
        "seal",
        "keygen",
        "store init",
        "server import-keys",
    ] {
        assert!(
            checked.contains(want),
            "no `secure-store {want}` found in {checked:?}"
        );
    }

    let help = all_help();
    for file in DEPLOY_FILES {
        for name in env_names(&read(file)) {
            let known = help
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == name);
            assert!(
                known,
                "{file}: {name} is not an environment variable secure-store knows"
            );
        }
    }
}

/// `FROM image AS name` lines of a Dockerfile: (image, stage name).
fn stages(dockerfile: &str) -> Vec<(String, String)> {
    dockerfile
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                ["FROM", image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    Some((image.to_string(), name.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// The instructions of one stage (from its FROM to the next).
fn stage_body<'a>(dockerfile: &'a str, name: &str) -> Vec<&'a str> {
    let mut body = Vec::new();
    let mut inside = false;
    for line in dockerfile.lines() {
        if line.starts_with("FROM ") {
            inside = line.split_whitespace().last() == Some(name);
            continue;
        }
        if inside && !line.trim_start().starts_with('#') && !line.trim().is_empty() {
            body.push(line);
        }
    }
    body
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_in_slim_server_and_client_stages() {
    let df = read("Dockerfile");
    let stages = stages(&df);
    let names: Vec<&str> = stages.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        names,
        ["build", "runtime", "server", "client"],
        "{stages:?}"
    );
    assert!(stages[0].0.starts_with("rust:"), "builder: {}", stages[0].0);
    assert!(
        stages[1].0.starts_with("debian:") && stages[1].0.ends_with("-slim"),
        "runtime base: {}",
        stages[1].0
    );
    assert_eq!(stages[2].0, "runtime");
    assert_eq!(stages[3].0, "runtime");
    // Every ARG used in a FROM is declared before the first FROM.
    let head = &df[..df.find("\nFROM ").unwrap()];
    for arg in ["RUST_VERSION", "DEBIAN_RELEASE"] {
        assert!(
            head.contains(&format!("ARG {arg}=")),
            "ARG {arg} with a default"
        );
    }
    // The build stage knows its target platform and takes code generation flags.
    let build = stage_body(&df, "build").join("\n");
    assert!(build.contains("ARG TARGETPLATFORM") && build.contains("ARG RUSTFLAGS"));
    assert!(build.contains("cargo build --release --locked"));

    // The runtime installs exactly fuse3 and ca-certificates, without recommends.
    let runtime = stage_body(&df, "runtime").join("\n");
    let install = runtime
        .split("&&")
        .find(|c| c.contains("apt-get install"))
        .expect("an apt-get install");
    let packages: Vec<&str> = install
        .split_whitespace()
        .skip_while(|w| *w != "install")
        .skip(1)
        .filter(|w| !w.starts_with('-') && *w != "\\")
        .collect();
    assert_eq!(packages, ["fuse3", "ca-certificates"]);
    assert!(install.contains("--no-install-recommends"));
    assert!(runtime.contains("rm -rf /var/lib/apt/lists/*"));
    for line in df.lines().filter(|l| l.starts_with("COPY --from=")) {
        let from = line["COPY --from=".len()..]
            .split_whitespace()
            .next()
            .unwrap();
        assert!(names.contains(&from), "COPY from unknown stage {from}");
    }

    // The server drops root; the client stays root (FUSE mount) and is the default target.
    let server = stage_body(&df, "server");
    let user = server
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the server stage");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    assert!(server
        .iter()
        .any(|l| l.contains(r#"ENTRYPOINT ["/usr/local/bin/secure-store", "server"]"#)));
    let client = stage_body(&df, "client");
    assert!(!client.iter().any(|l| l.starts_with("USER ")));
    assert!(client
        .iter()
        .any(|l| l.contains(r#"ENTRYPOINT ["/usr/local/bin/secure-store", "run", "--"]"#)));
    assert!(client.iter().any(|l| l.starts_with("CMD [")));

    // The build context leaves keys and build output out.
    let ignore = read(".dockerignore");
    for pattern in ["target", "**/*.key", ".git"] {
        assert!(
            ignore.lines().any(|l| l == pattern),
            ".dockerignore lacks {pattern}"
        );
    }
}

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_has_a_server_and_a_fuse_client_with_balena_compatible_volumes() {
    let c = yaml("docker-compose.yml");
    assert_eq!(
        c["version"].as_str(),
        Some("2.4"),
        "balena reads format 2.4"
    );
    let services = c["services"].as_mapping().expect("services");
    assert_eq!(services.len(), 2);
    let server = &c["services"]["secure-store-server"];
    let client = &c["services"]["secure-store-client"];
    let df_stages: Vec<String> = stages(&read("Dockerfile"))
        .into_iter()
        .map(|s| s.1)
        .collect();
    for (svc, target) in [(server, "server"), (client, "client")] {
        assert_eq!(svc["build"]["target"].as_str(), Some(target));
        assert_eq!(svc["build"]["context"].as_str(), Some("."));
        assert!(df_stages.iter().any(|s| s == target));
    }
    // Like the original's demo: the client gets /dev/fuse and SYS_ADMIN, the server nothing.
    assert_eq!(strings(&client["devices"]), ["/dev/fuse"]);
    assert_eq!(strings(&client["cap_add"]), ["SYS_ADMIN"]);
    assert_eq!(strings(&client["depends_on"]), ["secure-store-server"]);
    assert!(server["cap_add"].is_null() && server["privileged"].is_null());
    assert_eq!(strings(&server["cap_drop"]), ["ALL"]);
    assert_eq!(server["read_only"].as_bool(), Some(true));

    // The client reaches the server by its service name; the fleet's certificate must name it.
    let env = &client["environment"];
    assert_eq!(
        env["SECURE_STORE_SERVER"].as_str(),
        Some("https://secure-store-server:8443")
    );
    for name in ["MTLS_CERT", "MTLS_KEY", "MTLS_CA", "SECURE_STORE_ENVELOPE"] {
        assert_eq!(env[name].as_str(), Some(format!("${{{name}}}").as_str()));
    }
    assert_eq!(
        server["environment"]["SECURE_STORE_LISTEN"].as_str(),
        Some("0.0.0.0:8443")
    );
    assert_eq!(strings(&server["ports"]), ["8443:8443"]);

    // Named volumes only (balena has no bind mounts), each declared.
    let declared = c["volumes"].as_mapping().expect("volumes");
    for svc in [server, client] {
        for vol in strings(&svc["volumes"]) {
            let source = vol.split(':').next().unwrap();
            assert!(
                declared.contains_key(source),
                "{vol}: not a declared named volume"
            );
        }
    }
}

#[test]
fn compose_postgres_override_passes_the_kek_as_a_secret_and_points_the_server_at_the_database() {
    let base = yaml("docker-compose.yml");
    let o = yaml("docker-compose.postgres.yml");
    let server = &o["services"]["secure-store-server"];
    let db = &o["services"]["secure-store-db"];
    // An override of the base file's server: same service name, nothing rebuilt,
    // none of the base file's hardening loosened.
    assert!(base["services"]["secure-store-server"].is_mapping());
    for key in [
        "build",
        "image",
        "user",
        "read_only",
        "cap_add",
        "cap_drop",
        "privileged",
        "security_opt",
    ] {
        assert!(server[key].is_null(), "the override sets {key}");
    }

    // The KEK: a secret from a file, mounted where SECURE_STORE_TANG_KEK_FILE points.
    assert_eq!(strings(&server["secrets"]), ["tang_kek"]);
    assert_eq!(
        o["secrets"]["tang_kek"]["file"].as_str(),
        Some("./tang.kek")
    );
    let env = &server["environment"];
    assert_eq!(
        env["SECURE_STORE_TANG_KEK_FILE"].as_str(),
        Some("/run/secrets/tang_kek")
    );
    // Never the key itself in the environment (`docker inspect` shows it).
    assert!(env["SECURE_STORE_TANG_KEK"].is_null());

    // The database: a service of this file, waited for until healthy, named in the URL.
    assert!(db["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("postgres:")));
    assert!(db["healthcheck"]["test"].is_sequence());
    assert_eq!(
        server["depends_on"]["secure-store-db"]["condition"].as_str(),
        Some("service_healthy")
    );
    let url = env["SECURE_STORE_DATABASE_URL"]
        .as_str()
        .expect("SECURE_STORE_DATABASE_URL");
    let user = db["environment"]["POSTGRES_USER"].as_str().unwrap();
    let name = db["environment"]["POSTGRES_DB"].as_str().unwrap();
    assert!(url.starts_with(&format!("postgres://{user}:${{POSTGRES_PASSWORD")));
    assert!(
        url.ends_with(&format!("@secure-store-db:5432/{name}")),
        "{url}"
    );
    // One password, from .env, for both sides; none written in the file.
    assert!(db["environment"]["POSTGRES_PASSWORD"]
        .as_str()
        .is_some_and(|p| p.starts_with("${POSTGRES_PASSWORD:?")));

    // Named volumes only, declared (as in the base file).
    let declared = o["volumes"].as_mapping().expect("volumes");
    for vol in strings(&db["volumes"]) {
        let source = vol.split(':').next().unwrap();
        assert!(declared.contains_key(source), "{vol}: not declared");
    }

    // The one-time import the header documents exists with these flags
    // (its env values come from the service: both flags have env names).
    let help = ok(&mut ss(["server", "import-keys", "--help"]));
    for env_name in ["SECURE_STORE_DATABASE_URL", "SECURE_STORE_TANG_KEK_FILE"] {
        assert!(
            help.contains(env_name),
            "import-keys --help lacks {env_name}"
        );
    }
    assert!(read("docker-compose.postgres.yml").contains("secure-store-server import-keys"));
}

#[test]
fn balena_yml_lists_the_dashboard_variables_the_client_reads() {
    let b = yaml("balena.yml");
    assert_eq!(b["type"].as_str(), Some("sw.application"));
    assert!(b["name"].as_str().is_some_and(|n| !n.is_empty()));
    let vars: Vec<String> = b["data"]["applicationEnvironmentVariables"]
        .as_sequence()
        .expect("applicationEnvironmentVariables")
        .iter()
        .flat_map(|m| m.as_mapping().into_iter().flat_map(|m| m.keys()))
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        vars,
        [
            "SECURE_STORE_SERVER",
            "SECURE_STORE_ENVELOPE",
            "MTLS_CERT",
            "MTLS_KEY",
            "MTLS_CA"
        ]
    );
    let run_help = ok(&mut ss(["run", "--help"]));
    for v in &vars {
        assert!(
            run_help.contains(v.as_str()),
            "`run --help` does not mention {v}"
        );
    }
    // The server's secrets are never fleet-wide variables (every device would
    // get them); the file says where they go instead: device variables of the
    // server service, the KEK itself in SECURE_STORE_TANG_KEK.
    let text = read("balena.yml");
    for secret in ["SECURE_STORE_TANG_KEK", "SECURE_STORE_DATABASE_URL"] {
        assert!(!vars.iter().any(|v| v == secret), "{secret} is fleet-wide");
        assert!(
            text.contains(secret),
            "balena.yml does not say where {secret} goes"
        );
    }
    assert!(
        text.contains("balena env add SECURE_STORE_TANG_KEK")
            && text.contains("--device UUID --service secure-store-server"),
        "the KEK as a device service variable"
    );
    let server_help = ok(&mut ss(["server", "--help"]));
    assert!(server_help.contains("SECURE_STORE_TANG_KEK may hold the key itself"));
    let types = strings(&b["data"]["supportedDeviceTypes"]);
    let default = b["data"]["defaultDeviceType"]
        .as_str()
        .expect("defaultDeviceType");
    assert!(types.iter().any(|t| t == default));
}

/// `Key=value` lines of a unit's `[Service]` section.
fn service_keys(unit: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[Service]";
        } else if inside && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    out
}

/// The `[Service]` settings of a unit with its drop-ins applied in order; an
/// empty assignment resets the setting's list, as systemd does.
fn with_dropins(unit: &str, dropins: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for text in std::iter::once(unit).chain(dropins.iter().copied()) {
        for (key, value) in service_keys(text) {
            if value.is_empty() {
                out.retain(|(k, _)| *k != key);
            } else {
                out.push((key, value));
            }
        }
    }
    out
}

#[test]
fn systemd_unit_is_hardened_and_loads_the_keys_as_credentials() {
    let unit = read("deploy/systemd/secure-store-server.service");
    let keys = service_keys(&unit);
    let get = |k: &str| -> Vec<&str> {
        keys.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DynamicUser", "yes"),
        ("StateDirectory", "secure-store"),
        ("RuntimeDirectory", "secure-store"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("UMask", "0077"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    assert!(get("SystemCallFilter").contains(&"@system-service"));
    let creds: Vec<&str> = get("LoadCredential")
        .iter()
        .map(|v| v.split(':').next().unwrap())
        .collect();
    assert_eq!(creds, ["ca.crt", "server.crt", "server.key", "tang"]);
    for v in get("LoadCredential") {
        assert!(v.contains(":/etc/secure-store/server/"), "{v}");
    }
    assert_eq!(get("ExecStart"), ["/usr/local/bin/secure-store server"]);
    // Where the credentials script puts the server directory is where --fleet points.
    assert!(get("Environment").contains(&"SECURE_STORE_FLEET=%t/secure-store/server"));
    assert!(get("Environment").contains(&"SECURE_STORE_DATA_DIR=%S/secure-store"));
}

#[test]
fn systemd_postgres_dropin_loads_the_kek_as_a_credential_and_the_server_reads_it_there() {
    let unit = read("deploy/systemd/secure-store-server.service");
    let dropin = read(PG_DROPIN);
    let keys = with_dropins(&unit, &[&dropin]);
    let get = |k: &str| -> Vec<&str> {
        keys.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // The TLS files again, the KEK, and no Tang key directory (the keys are
    // in the database; a replica need not hold them in clear).
    let creds: Vec<(&str, &str)> = get("LoadCredential")
        .iter()
        .map(|v| v.split_once(':').unwrap())
        .collect();
    assert_eq!(
        creds,
        [
            ("ca.crt", "/etc/secure-store/server/ca.crt"),
            ("server.crt", "/etc/secure-store/server/server.crt"),
            ("server.key", "/etc/secure-store/server/server.key"),
            ("tang.kek", "/etc/secure-store/tang.kek"),
        ]
    );
    // The server reads the KEK from systemd's copy (%d = $CREDENTIALS_DIRECTORY) ...
    assert!(get("Environment").contains(&"SECURE_STORE_TANG_KEK_FILE=%d/tang.kek"));
    // ... the database URL, password included, from a root-only file, never argv.
    assert_eq!(get("EnvironmentFile"), ["/etc/secure-store/database.env"]);
    assert_eq!(get("ExecStart"), ["/usr/local/bin/secure-store server"]);
    assert!(!dropin.contains("ExecStart"));
    // The credentials script knows that credential name: no key directory then.
    let script = read("deploy/systemd/secure-store-server-credentials");
    assert!(script.contains(r#"[ -f "$CREDENTIALS_DIRECTORY/tang.kek" ]"#));
    // The drop-in changes no hardening setting of the main unit.
    let own: Vec<String> = service_keys(&dropin).into_iter().map(|(k, _)| k).collect();
    for key in &own {
        assert!(
            ["EnvironmentFile", "LoadCredential", "Environment"].contains(&key.as_str()),
            "the drop-in sets {key}"
        );
    }
}

/// `systemd-analyze verify` with the binaries pointed at this build and the
/// man page the unit documents generated from the CLI, alone and with the
/// PostgreSQL drop-in in `secure-store-server.service.d/` beside it.
#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = tool_in("systemd-analyze", "systemd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("deploy/systemd/secure-store-server-credentials");
    let unit = read("deploy/systemd/secure-store-server.service")
        .replace(
            "/usr/local/bin/secure-store",
            env!("CARGO_BIN_EXE_secure-store"),
        )
        .replace(
            "/usr/local/libexec/secure-store-server-credentials",
            script.to_str().unwrap(),
        );
    let man1 = dir.path().join("man/man1");
    ok(&mut ss(["man", "--out", man1.to_str().unwrap()]));
    for with_dropin in [false, true] {
        let units = dir.path().join(format!("units-{with_dropin}"));
        fs::create_dir_all(&units).unwrap();
        let path = units.join("secure-store-server.service");
        fs::write(&path, &unit).unwrap();
        if with_dropin {
            let d = units.join("secure-store-server.service.d");
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("postgres.conf"), read(PG_DROPIN)).unwrap();
        }
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(&path)
            .env("MANPATH", dir.path().join("man"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Only lines about our unit count (the host's own units may have
        // warnings); the drop-in's own lines name secure-store-server.service.d/.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("secure-store-server.service"))
            .collect();
        assert!(
            out.status.success() && ours.is_empty(),
            "systemd-analyze verify (drop-in: {with_dropin}):\n{stderr}"
        );
    }
}

/// What systemd does for `LoadCredential=ID:PATH`: a file becomes `ID`, a
/// directory's files become `ID_<name>` (read-only copies). `etc` stands for
/// `/etc/secure-store`.
fn load_credentials(settings: &[(String, String)], etc: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for (key, value) in settings {
        if key != "LoadCredential" {
            continue;
        }
        let (id, path) = value.split_once(':').unwrap();
        let src = etc.join(
            path.strip_prefix("/etc/secure-store")
                .unwrap()
                .trim_start_matches('/'),
        );
        if src.is_dir() {
            for entry in fs::read_dir(&src).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                fs::copy(entry.path(), to.join(format!("{id}_{name}"))).unwrap();
            }
        } else {
            fs::copy(&src, to.join(id)).unwrap();
        }
    }
}

#[test]
fn credentials_script_lays_out_the_server_directory_the_server_starts_from() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    ok(&mut ss([
        "fleet",
        "init",
        fleet.to_str().unwrap(),
        "--server-name",
        "localhost",
    ]));
    let unit = read("deploy/systemd/secure-store-server.service");
    let creds = dir.path().join("credentials");
    // FLEET/server is /etc/secure-store/server.
    load_credentials(&service_keys(&unit), &fleet, &creds);
    let runtime = dir.path().join("run");
    fs::create_dir_all(&runtime).unwrap();
    let script = root().join("deploy/systemd/secure-store-server-credentials");

    // Outside systemd it refuses, naming what is missing.
    let r = run(Command::new(&script).env_clear());
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("CREDENTIALS_DIRECTORY"), "{}", r.stderr);

    for _ in 0..2 {
        // Twice: a restart finds the previous layout and replaces it.
        let r = run_credentials_script(&creds, &runtime);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let server = runtime.join("server");
    let original = fleet.join("server");
    for name in ["ca.crt", "server.crt", "server.key"] {
        let link = fs::read_link(server.join(name)).unwrap();
        assert!(link.starts_with(&creds), "{name} -> {}", link.display());
        assert_eq!(
            fs::read(server.join(name)).unwrap(),
            fs::read(original.join(name)).unwrap()
        );
    }
    let mut tang: Vec<String> = fs::read_dir(server.join("tang"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = fs::read_dir(original.join("tang"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tang.sort();
    want.sort();
    assert_eq!(tang, want);
    assert!(tang.iter().all(|n| n.ends_with(".jwk")) && tang.len() >= 2);

    // The real server starts from it (env as the unit sets it) and announces its port.
    let state = dir.path().join("state");
    let log = start_server_as_the_unit(&server, &state, &[]);
    assert!(log.contains(r#"tang_keys="directory""#), "{log}");
    assert!(state.join("state.db").is_file());
}

/// Runs the credentials script as the unit does: only PATH and the two systemd folders.
fn run_credentials_script(creds: &Path, runtime: &Path) -> Run {
    run(
        Command::new(root().join("deploy/systemd/secure-store-server-credentials"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("CREDENTIALS_DIRECTORY", creds)
            .env("RUNTIME_DIRECTORY", runtime),
    )
}

/// Starts `secure-store server` with the environment the unit gives it (and
/// `extra`), waits for its "listening" line, stops it; returns its log.
fn start_server_as_the_unit(server: &Path, state: &Path, extra: &[(&str, &Path)]) -> String {
    let mut cmd = ss(["server"]);
    cmd.env("SECURE_STORE_FLEET", server)
        .env("SECURE_STORE_DATA_DIR", state)
        .env("SECURE_STORE_LISTEN", "127.0.0.1:0");
    for (name, value) in extra {
        cmd.env(name, value);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    // The startup log line (which key source) follows the stdout line: read
    // up to it before stopping the server.
    let mut log = String::new();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    for l in std::io::BufRead::lines(stderr).map_while(Result::ok) {
        log.push_str(&l);
        log.push('\n');
        if l.contains("tang_keys=") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("secure-store server listening on https://127.0.0.1:"),
        "server did not start from the credentials layout: {line:?}\n{log}"
    );
    log
}

/// The PostgreSQL drop-in's credentials (KEK, no key directory) laid out by
/// the script; the server starts on the sealed keys, reading the KEK where
/// `%d/tang.kek` points. SQLite stands in for the database: the KEK mode is
/// the same (docs/STATE.md), and `cli::server_replicas` covers PostgreSQL.
#[test]
fn credentials_script_with_the_kek_lays_out_no_key_directory_and_the_server_uses_database_keys() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc"); // /etc/secure-store
    ok(&mut ss([
        "fleet",
        "init",
        etc.to_str().unwrap(),
        "--server-name",
        "localhost",
    ]));
    // The operator's steps (docs/DEPLOY.md): a KEK, the keys imported, sealed.
    let kek = etc.join("tang.kek");
    ok(&mut ss(["keygen", "--out", kek.to_str().unwrap()]));
    let state = dir.path().join("state");
    ok(&mut ss([
        "server",
        "import-keys",
        "--fleet",
        etc.to_str().unwrap(),
        "--data-dir",
        state.to_str().unwrap(),
        "--tang-kek-file",
        kek.to_str().unwrap(),
    ]));
    // The replica holds no key in clear: the drop-in does not load the directory.
    fs::remove_dir_all(etc.join("server/tang")).unwrap();

    let settings = with_dropins(
        &read("deploy/systemd/secure-store-server.service"),
        &[&read(PG_DROPIN)],
    );
    let creds = dir.path().join("credentials");
    load_credentials(&settings, &etc, &creds);
    let runtime = dir.path().join("run");
    fs::create_dir_all(&runtime).unwrap();
    let r = run_credentials_script(&creds, &runtime);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let server = runtime.join("server");
    for name in ["ca.crt", "server.crt", "server.key"] {
        assert!(fs::read_link(server.join(name)).is_ok(), "{name}");
    }
    assert!(!server.join("tang").exists());

    // The same credentials without the KEK: no keys at all, refused by name.
    fs::remove_file(creds.join("tang.kek")).unwrap();
    let r = run_credentials_script(&creds, &runtime);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("tang.kek"), "{}", r.stderr);
    fs::copy(&kek, creds.join("tang.kek")).unwrap();

    // SECURE_STORE_TANG_KEK_FILE=%d/tang.kek, as the drop-in sets it.
    let kek_env = settings
        .iter()
        .find_map(|(k, v)| {
            (k == "Environment")
                .then(|| v.strip_prefix("SECURE_STORE_TANG_KEK_FILE=%d/"))
                .flatten()
        })
        .expect("SECURE_STORE_TANG_KEK_FILE in the drop-in");
    let log = start_server_as_the_unit(
        &server,
        &state,
        &[("SECURE_STORE_TANG_KEK_FILE", &creds.join(kek_env))],
    );
    assert!(log.contains(r#"tang_keys="database""#), "{log}");
}
