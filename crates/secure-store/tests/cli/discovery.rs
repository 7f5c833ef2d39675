//! mDNS discovery with real multicast: `secure-store server --mdns`
//! advertises `_secure-store._tcp.local`; `secure-store run --discover`
//! (or with no URL) finds it, and mutual TLS still decides; on SIGTERM the
//! server sends goodbye packets.
//!
//! Multicast needs an IPv4 interface with the MULTICAST flag (the kernel
//! loops our own packets back to local members; `lo` has the flag off by
//! default, `ip link set lo multicast on` gives it). Without any such
//! interface the tests skip. With one, a probe exchange in this process
//! must work: if it gets no answer the tests skip with the reason, and
//! FAIL when `SECURE_STORE_REQUIRE_INTEROP=1`.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secure_store::discovery::{self, Advertisement, Responder};

use super::harness::*;
use super::run::{enroll_env, fleet_with_device, seal_offline};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Whether multicast works here: a responder and a browse in this process.
/// `Err` says why not.
fn multicast_works() -> Result<(), String> {
    let name = unique("probe");
    let responder = Responder::start(Advertisement {
        instance: name.clone(),
        host: "probe.invalid".into(),
        port: 9,
        txt: vec!["v=1".into()],
        bound: Some(Ipv4Addr::LOCALHOST),
    })
    .map_err(|e| format!("cannot start a responder: {e}"))?;
    let mut ok = false;
    for _ in 0..3 {
        let found = discovery::browse(Duration::from_secs(1)).map_err(|e| e.to_string())?;
        if found.iter().any(|f| f.instance == name) {
            ok = true;
            break;
        }
    }
    responder.stop();
    if ok {
        Ok(())
    } else {
        Err("a multicast query got no answer from a responder in this process".into())
    }
}

/// Runs the test body only where multicast works (see the module docs).
/// Without any multicast interface the environment cannot do it at all:
/// skip, even under `SECURE_STORE_REQUIRE_INTEROP=1`. With one, a failed
/// probe is a real failure there.
fn needs_multicast() -> bool {
    if !discovery::interfaces().iter().any(|i| i.multicast) {
        eprintln!(
            "skipping: no IPv4 interface with the MULTICAST flag is up \
             (as root: `ip link set lo multicast on`)"
        );
        return false;
    }
    match multicast_works() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").as_deref() == Ok("1");
            assert!(!required, "mDNS needs multicast: {why}");
            eprintln!("skipping: mDNS needs multicast: {why}");
            false
        }
    }
}

/// The first line `child` writes to its (piped) stdout.
fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    line
}

/// `secure-store server --mdns --mdns-name NAME`, on 127.0.0.1.
fn start_server(
    fleet: &std::path::Path,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Child, String) {
    let mut child = ss([
        "server",
        "--listen",
        "127.0.0.1:0",
        "--mdns",
        "--mdns-name",
        name,
    ])
    .arg("--fleet")
    .arg(fleet)
    .args(args)
    .envs(envs.iter().copied())
    .env("RUST_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let line = first_line(&mut child);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .map(str::to_owned);
    let Some(url) = url else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not start: {line:?}");
    };
    (child, url)
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn run_finds_the_server_by_mdns_and_mutual_tls_still_decides() {
    if !needs_multicast() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    // The certificate names keys.mdns.test only: no resolver knows it, so
    // the client must use the SRV target as the TLS name and the A record
    // from the answer as the address.
    ok(ss(["fleet", "init", "--server-name", "keys.mdns.test"]).arg(&fleet));
    let mtls = enroll_env(&fleet, "cam-m");
    let name = unique("ss-test");
    let (mut server, _url) = start_server(&fleet, &name, &[], &[]);

    // A second fleet's server advertised on the same link: found too, but
    // its certificate is not from our CA, so it is skipped.
    let tmp2 = tempfile::tempdir().unwrap();
    let (other_fleet, _) = fleet_with_device(tmp2.path(), "cam-x");
    let (mut other, _) = start_server(&other_fleet, &unique("ss-other"), &[], &[]);

    // The envelope names a dead URL; --discover adds mDNS after it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("https://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    let envelope = seal_offline(&fleet, &dead_url);
    let r = run(ss([
        "run",
        "--discover",
        "--retry-base",
        "200ms",
        "--deadline",
        "60s",
        "--",
        "sh",
        "-c",
        "echo started",
    ])
    .envs(mtls.iter().map(|(k, v)| (k, v)))
    .env("SECURE_STORE_ENVELOPE", &envelope)
    .env("RUST_LOG", "info"));
    let log = super::run::plain(&r.stderr);
    assert_eq!(r.code, Some(0), "{log}");
    assert_eq!(r.stdout, "started\n", "{log}");
    assert!(log.contains("mDNS: found a server"), "{log}");
    assert!(log.contains("https://keys.mdns.test:"), "{log}");

    // `unseal --discover` goes the same way.
    let key = ok(ss(["unseal", "--discover"])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &envelope));
    assert_eq!(key.trim(), KEY);

    stop(&mut other);
    stop(&mut server);
}

#[test]
fn run_without_any_url_browses_and_a_stopped_server_says_goodbye() {
    if !needs_multicast() {
        return;
    }
    // The original's layout: one self-signed certificate (DNS localhost)
    // on both ends, GET /key; `run --legacy` with no --server has no URL
    // at all, so mDNS is its only way to the server.
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("legacy-fleet");
    ok(ss(["fleet", "init", "--legacy"]).arg(&fleet));
    let name = unique("ss-bye");

    // A member of the group on every multicast interface, to see the goodbye.
    let sock = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    sock.set_reuse_address(true).unwrap();
    sock.bind(&std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, discovery::PORT)).into())
        .unwrap();
    let sock: UdpSocket = sock.into();
    for i in discovery::interfaces().iter().filter(|i| i.multicast) {
        let _ = sock.join_multicast_v4(&discovery::GROUP, &i.addr);
    }

    let (mut server, _) = start_server(&fleet, &name, &["--legacy"], &[("STORE_PASSWORD", KEY)]);
    let secret = ok(
        ss(["env", "encrypt", "--format", "v0", "DB", "postgres://m"]).env("STORE_PASSWORD", KEY),
    );
    let secret = secret.trim().split_once('=').unwrap().1.to_owned();
    let r = run(ss(["run", "--legacy", "--deadline", "60s", "--cert"])
        .arg(fleet.join("legacy/cert.pem"))
        .arg("--key")
        .arg(fleet.join("legacy/key.pem"))
        .args(["--", "sh", "-c", "echo $DB"])
        .env("ENCRYPTED_DB", &secret)
        .env("RUST_LOG", "info"));
    let log = super::run::plain(&r.stderr);
    assert_eq!(r.code, Some(0), "{log}");
    assert_eq!(r.stdout, "postgres://m\n", "{log}");
    assert!(log.contains("no server URL given"), "{log}");

    stop(&mut server);
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 9000];
    let mut said_goodbye = false;
    while start.elapsed() < Duration::from_secs(10) && !said_goodbye {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            said_goodbye = discovery::parse_goodbyes(&buf[..n]).contains(&name);
        }
    }
    assert!(said_goodbye, "no goodbye packet for {name}");
    // And it is no longer found.
    let found = discovery::browse(Duration::from_millis(500)).unwrap();
    assert!(!found.iter().any(|f| f.instance == name), "{found:?}");
}

/// Two network namespaces joined by a veth pair, deleted on drop.
struct NetnsPair {
    names: [String; 2],
}

impl NetnsPair {
    /// `Err` when this cannot be done here (not root, no `ip`, no netns).
    fn create() -> Result<NetnsPair, String> {
        let tag = format!("{:x}", std::process::id() % 0xfffff);
        let names = [format!("ssmd{tag}a"), format!("ssmd{tag}b")];
        let pair = NetnsPair {
            names: names.clone(),
        };
        let (a, b) = (&names[0], &names[1]);
        let (va, vb) = (format!("vs{tag}a"), format!("vs{tag}b"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", a],
            vec!["netns", "add", b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", a],
            vec!["link", "set", &vb, "netns", b],
            vec!["-n", a, "addr", "add", "10.77.0.1/24", "dev", &va],
            vec!["-n", b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", a, "link", "set", &va, "up"],
            vec!["-n", b, "link", "set", &vb, "up"],
            vec!["-n", a, "link", "set", "lo", "up"],
            vec!["-n", b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let out = Command::new("ip")
                .args(&step)
                .output()
                .map_err(|e| format!("cannot run ip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip {}: {}",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(pair)
    }

    /// The binary inside namespace `i`.
    fn ss(&self, i: usize) -> Command {
        let mut cmd = Command::new("ip");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::null())
            .args(["netns", "exec", &self.names[i]])
            .arg(env!("CARGO_BIN_EXE_secure-store"));
        cmd
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for n in &self.names {
            // Deleting a namespace deletes its end of the veth pair too.
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

#[test]
fn run_finds_a_server_in_another_network_namespace_over_veth() {
    // Server and device on two hosts of one link: a real multicast query
    // crossing a (virtual) wire, a unicast answer, the server's address on
    // the device's subnet, and a server listening on 0.0.0.0.
    let pair = match NetnsPair::create() {
        Ok(p) => p,
        Err(why) => {
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
            let required = std::env::var("SECURE_STORE_REQUIRE_INTEROP").as_deref() == Ok("1");
            assert!(
                !(required && root),
                "cannot make a veth pair as root: {why}"
            );
            eprintln!("skipping: cannot make two network namespaces joined by veth: {why}");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    ok(ss(["fleet", "init", "--server-name", "keys.veth.test"]).arg(&fleet));
    let mtls = enroll_env(&fleet, "cam-v");
    let envelope = seal_offline(&fleet, "https://127.0.0.1:1");

    let mut server = pair
        .ss(0)
        .args(["server", "--listen", "0.0.0.0:8443", "--mdns", "--fleet"])
        .arg(&fleet)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = first_line(&mut server);
    assert!(
        line.contains("listening on https://0.0.0.0:8443"),
        "{line:?}"
    );

    let r = run(pair
        .ss(1)
        .args([
            "run",
            "--deadline",
            "60s",
            "--retry-base",
            "200ms",
            "--discover",
        ])
        .args(["--", "sh", "-c", "echo started"])
        .envs(mtls.iter().map(|(k, v)| (k, v)))
        .env("SECURE_STORE_ENVELOPE", &envelope)
        .env("RUST_LOG", "info"));
    stop(&mut server);
    let log = super::run::plain(&r.stderr);
    assert_eq!(r.code, Some(0), "{log}");
    assert_eq!(r.stdout, "started\n", "{log}");
    assert!(
        log.contains("url=https://keys.veth.test:8443 addrs=10.77.0.1:8443"),
        "{log}"
    );
    drop(pair);
}
