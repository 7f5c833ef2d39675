//! `secure-store demo`: the whole product on loopback in one command.
//!
//! The demo drives this very binary as separate processes, exactly as an
//! operator and a device would: `fleet init`, `fleet enroll`, `keygen`,
//! `store init/encrypt`, `env encrypt`, `seal`, `server`, `run -- APP`,
//! `admin revoke`, and `run` once more to show the refusal. Nothing is
//! simulated and no external service is needed; everything lives in a
//! temporary folder that is removed at the end (unless `--keep`).
//!
//! The decrypted folder is a FUSE mount when `/dev/fuse` and `fusermount3`
//! are usable, otherwise a materialized copy on tmpfs (`/dev/shm`).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Exit code of `run` when the server refuses the device for good.
const EXIT_REVOKED: i32 = 78;

#[allow(missing_debug_implementations)]
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- demo\n  secure-store demo --keep   # look around in the demo folder afterwards"
)]
pub struct DemoArgs {
    /// Keep the demo folder (fleet, store, server state) instead of removing it.
    #[arg(long, env = "SECURE_STORE_DEMO_KEEP")]
    keep: bool,
    /// Never mount with FUSE; materialize the decrypted folder on tmpfs instead.
    #[arg(long, env = "SECURE_STORE_DEMO_NO_MOUNT")]
    no_mount: bool,
}

/// The sample folder the operator encrypts (path, content).
const SAMPLE: &[(&str, &str)] = &[
    (
        "app.toml",
        "# settings of the demo app\nmqtt_host = \"broker.example\"\nupload_every = \"5m\"\n",
    ),
    (
        "certs/device-ca.pem",
        "-----BEGIN CERTIFICATE-----\n(an example certificate the app needs)\n-----END CERTIFICATE-----\n",
    ),
    (
        "models/readme.txt",
        "Models and other large files stream through the mount block by block.\n",
    ),
];
const API_KEY: &str = "sk-demo-4f7c1e09b2a8";
const DEVICE: &str = "pi-kitchen";

pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let root = tempdir()?;
    let demo = Demo {
        exe,
        root: root.clone(),
    };
    let result = demo.play(&args);
    if args.keep {
        println!("\nThe demo folder is kept: {}", root.display());
    } else if let Err(e) = std::fs::remove_dir_all(&root) {
        eprintln!("warning: could not remove {}: {e}", root.display());
    }
    result.map(|()| ExitCode::SUCCESS)
}

struct Demo {
    exe: PathBuf,
    root: PathBuf,
}

/// The server process, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Demo {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Runs `secure-store ARGS` quietly; its stdout on success, its stderr in the error.
    fn cmd<I, S>(&self, args: I, envs: &[(&str, &str)]) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = Command::new(&self.exe)
            .arg("-q")
            .args(&args)
            .env_remove("STORE_PASSWORD")
            .env_remove("STORE_KEY_FILE")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        if !out.status.success() {
            bail!(
                "`secure-store {}` failed: {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn play(&self, args: &DemoArgs) -> Result<()> {
        let fleet = self.path("fleet");
        let store = self.path("store");
        let key_file = self.path("store.key");
        let p = |p: &Path| p.display().to_string();
        println!(
            "Secure Store demo: an operator, a Store Server and one device, all on this machine."
        );
        println!("Working folder: {}\n", self.root.display());

        println!("== Operator (laptop or CI)");
        self.cmd(
            [
                "fleet",
                "init",
                &p(&fleet),
                "--server-name",
                "localhost",
                "--server-ip",
                "127.0.0.1",
            ],
            &[],
        )?;
        println!(
            "  fleet init    CA, server certificate, admin certificate and Tang keys in fleet/"
        );
        self.cmd(
            ["fleet", "enroll", &p(&fleet), DEVICE, "--group", "kitchen"],
            &[],
        )?;
        println!("  fleet enroll  device \"{DEVICE}\" gets its own client certificate (fleet/devices/{DEVICE}/)");
        self.cmd(["keygen", "--out", &p(&key_file)], &[])?;
        let key_env = [("STORE_KEY_FILE", key_file.to_str().unwrap_or_default())];
        let sample = self.path("sample");
        for (rel, text) in SAMPLE {
            let file = sample.join(rel);
            std::fs::create_dir_all(file.parent().unwrap_or(&sample))?;
            std::fs::write(&file, text)?;
        }
        self.cmd(["store", "init", &p(&store)], &key_env)?;
        self.cmd(["store", "encrypt", &p(&sample), &p(&store)], &key_env)?;
        std::fs::remove_dir_all(&sample)?;
        let stored: Vec<String> = std::fs::read_dir(store.join("storage"))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        println!(
            "  store encrypt a folder of {} files becomes rclone-crypt ciphertext: store/storage/{{{}}}",
            SAMPLE.len(),
            stored.join(", ")
        );
        let env_line = self.cmd(["env", "encrypt", "API_KEY", API_KEY], &key_env)?;
        let encrypted_api_key = env_line
            .trim()
            .strip_prefix("ENCRYPTED_API_KEY=")
            .context("env encrypt printed no ENCRYPTED_API_KEY= line")?
            .to_owned();
        println!(
            "  env encrypt   ENCRYPTED_API_KEY={}…",
            shorten(&encrypted_api_key, 40)
        );

        // The server, on a free loopback port.
        let server = self.start_server(&fleet)?;
        let envelope_line = self.cmd(
            ["seal", "--url", &server.url, "--fleet", &p(&fleet)],
            &key_env,
        )?;
        let envelope = envelope_line
            .trim()
            .strip_prefix("SECURE_STORE_ENVELOPE=")
            .context("seal printed no SECURE_STORE_ENVELOPE= line")?
            .to_owned();
        std::fs::remove_file(&key_file)?;
        println!(
            "  seal          the store key, wrapped for the server's Tang key: SECURE_STORE_ENVELOPE ({} bytes);",
            envelope.len()
        );
        println!("                the key file itself is now deleted: only the server can help unwrap it");

        println!("\n== Store Server");
        println!(
            "  listening on {} (mutual TLS 1.3; Tang /adv and /rec; policy + audit)",
            server.url
        );

        println!("\n== Device \"{DEVICE}\": secure-store run -- app");
        let device = fleet.join("devices").join(DEVICE);
        let mount = self.path("decrypted");
        let use_mount = !args.no_mount && fuse_usable();
        let (content_flag, how) = if use_mount {
            ("--mount", "FUSE mount")
        } else {
            ("--materialize", "materialized on tmpfs")
        };
        let content_dir = if use_mount {
            mount.clone()
        } else {
            materialize_dir()?
        };
        let app = "echo \"  [app] API_KEY=$API_KEY\"; \
                   echo \"  [app] ENCRYPTED_API_KEY is ${ENCRYPTED_API_KEY:-gone from my environment}\"; \
                   cd \"$DEMO_DIR\" && find . -type f | sort | while read -r f; do \
                   echo \"  [app] --- $f\"; sed 's/^/  [app]     /' \"$f\"; done";
        let run_args = |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = vec![
                "run".into(),
                "--server".into(),
                server.url.clone(),
                "--cert".into(),
                p(&device.join("client.crt")),
                "--key".into(),
                p(&device.join("client.key")),
                "--ca".into(),
                p(&device.join("ca.crt")),
                "--store".into(),
                p(&store),
                content_flag.into(),
                p(&content_dir),
            ];
            v.extend(extra.iter().map(|s| s.to_string()));
            v.extend(["--", "sh", "-c", app].iter().map(|s| s.to_string()));
            v
        };
        let env = [
            ("SECURE_STORE_ENVELOPE", envelope.as_str()),
            ("ENCRYPTED_API_KEY", encrypted_api_key.as_str()),
            ("DEMO_DIR", content_dir.to_str().unwrap_or_default()),
        ];
        println!("  (unlock through the server, decrypt env values, decrypted folder: {how})");
        let status = self.device_run(&run_args(&["--deadline", "30s"]), &env)?;
        if status != 0 {
            bail!("the device run failed with exit code {status} (log above)");
        }
        println!("  app exited 0; the decrypted folder is gone again, the key zeroized.");

        println!("\n== Operator: the device is reported stolen");
        self.cmd(
            [
                "admin",
                "--fleet",
                &p(&fleet),
                "--server",
                &server.url,
                "revoke",
                DEVICE,
            ],
            &[],
        )?;
        println!("  admin revoke {DEVICE}");
        println!("\n== Device \"{DEVICE}\" (power cycled): secure-store run -- app");
        let status = self.device_run(&run_args(&["--deadline", "10s"]), &env)?;
        if status != EXIT_REVOKED {
            bail!("expected the revoked device to be refused (exit {EXIT_REVOKED}), got exit {status}");
        }
        println!("  refused: revoked (exit {EXIT_REVOKED}); the app never started, nothing was decrypted.");

        let admin = |extra: &[&str]| -> Result<String> {
            let mut v = vec!["admin", "--fleet", fleet.to_str().unwrap_or_default()];
            v.extend(["--server", server.url.as_str()]);
            v.extend(extra);
            self.cmd(v, &[])
        };
        println!("\n== Audit log (hash-chained; every decision, never a key)");
        for line in admin(&["audit"])?.lines().filter(|l| !l.trim().is_empty()) {
            println!("  {line}");
        }
        println!("  {}", admin(&["audit", "--verify"])?.trim());
        drop(server);
        println!("\nThat was all of it: secure-store fleet/store/env/seal/server/run/admin. See README.md.");
        Ok(())
    }

    fn start_server(&self, fleet: &Path) -> Result<Server> {
        let log = std::fs::File::create(self.path("server.log"))?;
        let mut child = Command::new(&self.exe)
            .args(["server", "--fleet"])
            .arg(fleet)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.path("server-data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = match lines.next() {
            Some(Ok(line)) => line
                .split_whitespace()
                .find(|w| w.starts_with("https://"))
                .map(str::to_owned),
            _ => None,
        };
        let Some(url) = url else {
            terminate(&mut child);
            let log = std::fs::read_to_string(self.path("server.log")).unwrap_or_default();
            bail!("the server did not start: {}", log.trim());
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, url })
    }

    /// Runs the device client with the app's output passed through; its own
    /// log goes to a file (shown when it fails unexpectedly).
    fn device_run(&self, args: &[String], env: &[(&str, &str)]) -> Result<i32> {
        let log_path = self.path("device.log");
        let log = std::fs::File::create(&log_path)?;
        let status = Command::new(&self.exe)
            .args(args)
            .envs(env.iter().copied())
            .env("SECURE_STORE_RETRY_BASE", "200ms")
            .stdin(Stdio::null())
            .stderr(log)
            .status()
            .context("cannot start the device client")?;
        let code = status.code().unwrap_or(1);
        if code != 0 && code != EXIT_REVOKED {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        Ok(code)
    }
}

/// A private temporary folder for the demo (0700).
fn tempdir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let dir = base.join(format!(
            "secure-store-demo.{}",
            hex::encode(crate::rng::bytes::<6>())
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!("cannot create a demo folder in {}", base.display())
}

/// A not-yet-existing path on tmpfs for `run --materialize`.
fn materialize_dir() -> Result<PathBuf> {
    let base = Path::new("/dev/shm");
    if !base.is_dir() {
        bail!("no FUSE and no /dev/shm: the demo needs one of them for the decrypted folder");
    }
    Ok(base.join(format!(
        "secure-store-demo.{}",
        hex::encode(crate::rng::bytes::<6>())
    )))
}

/// Whether a FUSE mount can work here: the device node and the helper.
fn fuse_usable() -> bool {
    let helper = ["/usr/bin/fusermount3", "/bin/fusermount3"]
        .iter()
        .any(|p| Path::new(p).exists());
    helper
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok()
}

fn shorten(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
