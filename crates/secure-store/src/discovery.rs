//! Finding the Store Server on the local link: DNS-based service discovery
//! (RFC 6763) over multicast DNS (RFC 6762), service type
//! `_secure-store._tcp.local`.
//!
//! - The server (`secure-store server --mdns`) runs a [`Responder`]: it
//!   answers queries for `_secure-store._tcp.local` with a PTR to its
//!   instance, the instance's SRV (port = the bound TLS port, target = the
//!   name in its certificate), TXT (`path=/`, `v=1`) and the target's A
//!   records; it announces itself at start (twice, a second apart, RFC 6762
//!   §8.3) and sends goodbye packets (TTL 0, §10.1) when it stops.
//! - The client (`secure-store run` without a server URL, or `--discover`)
//!   calls [`browse`]: a one-shot query (§5.1) from an ephemeral port sent
//!   on every multicast-capable IPv4 interface, collecting answers for a
//!   bounded time. Responders answer such queries by unicast to the
//!   querier (§6.7), so the client needs neither port 5353 nor a group
//!   membership and coexists with avahi or systemd-resolved.
//!
//! Why our own and not a crate: we need one service type, IPv4, a handful
//! of record types and no cache; that is a few hundred lines of plain
//! `std` sockets (plus `socket2`, already built for tokio, for
//! `SO_REUSEADDR` and `IP_MULTICAST_IF`) and DNS wire format, with no
//! `unsafe` and no new crate in the build. A general crate such as
//! `mdns-sd` runs a daemon thread with a record cache and a channel API,
//! more than a one-shot client and a one-service responder need. Not done:
//! probing and conflict resolution (§8.1, §9) — the instance name is the
//! certificate's name, unique within a fleet — IPv6 (AAAA, ff02::fb),
//! known-answer suppression and the continuous querying of §5.2.
//!
//! Trust: a discovered server is only an address. The client still checks
//! the server certificate against the fleet CA and the SRV target name,
//! and the server still checks the client certificate (mutual TLS).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The DNS-SD service name we advertise and browse.
pub const SERVICE: &str = "_secure-store._tcp.local";
/// The mDNS IPv4 group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The mDNS port.
pub const PORT: u16 = 5353;
/// TTL of our records (seconds): the RFC 6762 §10 recommendations
/// (120 s for records with host names, 4500 s for others) are for caches;
/// we use the shorter one for all, a server that moved is found sooner.
pub const TTL: u32 = 120;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const TYPE_SRV: u16 = 33;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
/// The cache-flush bit on unique records (RFC 6762 §10.2).
const CACHE_FLUSH: u16 = 0x8000;

/// Errors of the discovery layer.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mDNS socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no IPv4 interface with multicast is up (mDNS needs one)")]
    NoInterface,
    #[error("cannot join the mDNS group on any interface: {0}")]
    Join(String),
}

/// What a server advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// The instance label (`NAME._secure-store._tcp.local`).
    pub instance: String,
    /// The SRV target: the host name clients check in the certificate.
    pub host: String,
    /// The TLS port.
    pub port: u16,
    /// TXT strings (`key=value`).
    pub txt: Vec<String>,
    /// The listener's address when bound to one; `None` = all interfaces.
    pub bound: Option<Ipv4Addr>,
}

impl Advertisement {
    fn instance_name(&self) -> Vec<String> {
        let mut labels = vec![truncate_label(&self.instance)];
        labels.extend(SERVICE.split('.').map(str::to_owned));
        labels
    }
}

/// A server found by [`browse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The instance label.
    pub instance: String,
    /// The SRV target (TLS server name), without a trailing dot.
    pub host: String,
    pub port: u16,
    /// TXT `path=` (default `/`).
    pub path: String,
    /// The target's A records from the same answer.
    pub addrs: Vec<Ipv4Addr>,
}

impl Found {
    /// The https base URL, as `--server` takes it.
    pub fn url(&self) -> String {
        let path = self.path.trim_end_matches('/');
        format!("https://{}:{}{}", self.host, self.port, path)
    }

    /// Where to connect (the A records with the SRV port).
    pub fn socket_addrs(&self) -> Vec<SocketAddr> {
        self.addrs
            .iter()
            .map(|a| SocketAddr::new(IpAddr::V4(*a), self.port))
            .collect()
    }
}

// ---- wire format ------------------------------------------------------------

fn truncate_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > 63 {
            break;
        }
        out.push(c);
    }
    out
}

fn put_name(out: &mut Vec<u8>, labels: &[String]) {
    for l in labels {
        let l = l.as_bytes();
        let len = l.len().min(63);
        out.push(len as u8);
        out.extend_from_slice(&l[..len]);
    }
    out.push(0);
}

fn dotted(name: &str) -> Vec<String> {
    name.trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn put_rr(out: &mut Vec<u8>, name: &[String], rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    put_name(out, name);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// A one-shot PTR query for [`SERVICE`] (QU bit set: unicast answers preferred).
pub fn encode_query(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut out, &dotted(SERVICE));
    out.extend_from_slice(&TYPE_PTR.to_be_bytes());
    out.extend_from_slice(&(CLASS_IN | 0x8000).to_be_bytes());
    out
}

/// A response with PTR, SRV, TXT and A records. `question` repeats the
/// service question (legacy unicast answers, RFC 6762 §6.7); `ttl` 0 makes
/// it a goodbye.
pub fn encode_response(
    ad: &Advertisement,
    addrs: &[Ipv4Addr],
    id: u16,
    ttl: u32,
    question: bool,
) -> Vec<u8> {
    let service = dotted(SERVICE);
    let instance = ad.instance_name();
    let host = dotted(&ad.host);
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x8400u16.to_be_bytes()); // response, authoritative
    out.extend_from_slice(&(question as u16).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // answer: the PTR
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(2 + addrs.len() as u16).to_be_bytes());
    if question {
        put_name(&mut out, &service);
        out.extend_from_slice(&TYPE_PTR.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
    }
    // Unicast answers to legacy queriers must not set the cache-flush bit.
    let unique = if question {
        CLASS_IN
    } else {
        CLASS_IN | CACHE_FLUSH
    };
    let mut rdata = Vec::new();
    put_name(&mut rdata, &instance);
    put_rr(&mut out, &service, TYPE_PTR, CLASS_IN, ttl, &rdata);
    rdata.clear();
    rdata.extend_from_slice(&0u16.to_be_bytes()); // priority
    rdata.extend_from_slice(&0u16.to_be_bytes()); // weight
    rdata.extend_from_slice(&ad.port.to_be_bytes());
    put_name(&mut rdata, &host);
    put_rr(&mut out, &instance, TYPE_SRV, unique, ttl, &rdata);
    rdata.clear();
    for s in &ad.txt {
        let b = s.as_bytes();
        let len = b.len().min(255);
        rdata.push(len as u8);
        rdata.extend_from_slice(&b[..len]);
    }
    if rdata.is_empty() {
        rdata.push(0);
    }
    put_rr(&mut out, &instance, TYPE_TXT, unique, ttl, &rdata);
    for a in addrs {
        put_rr(&mut out, &host, TYPE_A, unique, ttl, &a.octets());
    }
    out
}

/// A bounds-checked reader over one DNS message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.msg.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(((self.u16()? as u32) << 16) | self.u16()? as u32)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.msg.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    /// A name, following compression pointers (at most 32 jumps).
    fn name(&mut self) -> Option<Vec<String>> {
        let mut labels = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut jumps = 0;
        loop {
            let len = *self.msg.get(pos)? as usize;
            if len & 0xC0 == 0xC0 {
                let lo = *self.msg.get(pos + 1)? as usize;
                if !jumped {
                    self.pos = pos + 2;
                }
                jumped = true;
                jumps += 1;
                if jumps > 32 {
                    return None;
                }
                pos = ((len & 0x3F) << 8) | lo;
                continue;
            }
            if len & 0xC0 != 0 {
                return None;
            }
            pos += 1;
            if len == 0 {
                break;
            }
            let label = self.msg.get(pos..pos + len)?;
            labels.push(String::from_utf8_lossy(label).into_owned());
            pos += len;
            if labels.len() > 128 {
                return None;
            }
        }
        if !jumped {
            self.pos = pos;
        }
        Some(labels)
    }
}

fn same_name(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// One question of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Question {
    name: Vec<String>,
    qtype: u16,
}

fn parse_questions(msg: &[u8]) -> Option<(u16, u16, Vec<Question>, Reader<'_>)> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    r.bytes(6)?;
    let mut qs = Vec::new();
    for _ in 0..qd.min(64) {
        let name = r.name()?;
        let qtype = r.u16()?;
        r.u16()?;
        qs.push(Question { name, qtype });
    }
    Some((id, flags, qs, r))
}

/// Whether `msg` is a query a responder for `ad` must answer; gives its ID.
pub fn query_matches(msg: &[u8], ad: &Advertisement) -> Option<u16> {
    let (id, flags, qs, _) = parse_questions(msg)?;
    if flags & 0x8000 != 0 {
        return None; // a response
    }
    let service = dotted(SERVICE);
    let instance = ad.instance_name();
    qs.iter()
        .any(|q| {
            (same_name(&q.name, &service) && matches!(q.qtype, TYPE_PTR | TYPE_ANY))
                || (same_name(&q.name, &instance)
                    && matches!(q.qtype, TYPE_SRV | TYPE_TXT | TYPE_ANY))
        })
        .then_some(id)
}

/// The servers announced in a response (several instances may share one).
/// Records with TTL 0 (goodbyes) are ignored. Malformed input gives none.
pub fn parse_response(msg: &[u8]) -> Vec<Found> {
    parse_response_inner(msg)
        .map(|(f, _)| f)
        .unwrap_or_default()
}

/// The instance labels a response withdraws (PTR records with TTL 0).
pub fn parse_goodbyes(msg: &[u8]) -> Vec<String> {
    parse_response_inner(msg)
        .map(|(_, g)| g)
        .unwrap_or_default()
}

fn parse_response_inner(msg: &[u8]) -> Option<(Vec<Found>, Vec<String>)> {
    let (_, flags, _, mut r) = parse_questions(msg)?;
    if flags & 0x8000 == 0 {
        return None;
    }
    let header = msg.get(6..12)?;
    let count = u16::from_be_bytes([header[0], header[1]]) as usize
        + u16::from_be_bytes([header[2], header[3]]) as usize
        + u16::from_be_bytes([header[4], header[5]]) as usize;
    let service = dotted(SERVICE);
    let mut instances: Vec<Vec<String>> = Vec::new();
    let mut srv: Vec<(Vec<String>, u16, Vec<String>)> = Vec::new();
    let mut txt: Vec<(Vec<String>, String)> = Vec::new();
    let mut a: Vec<(Vec<String>, Ipv4Addr)> = Vec::new();
    let mut gone = Vec::new();
    for _ in 0..count.min(256) {
        let name = r.name()?;
        let rtype = r.u16()?;
        r.u16()?;
        let ttl = r.u32()?;
        let len = r.u16()? as usize;
        let start = r.pos;
        let rdata = r.bytes(len)?;
        if ttl == 0 {
            if rtype == TYPE_PTR && same_name(&name, &service) {
                let mut sub = Reader { msg, pos: start };
                if let Some(first) = sub.name()?.into_iter().next() {
                    gone.push(first);
                }
            }
            continue;
        }
        match rtype {
            TYPE_PTR if same_name(&name, &service) => {
                let mut sub = Reader { msg, pos: start };
                instances.push(sub.name()?);
            }
            TYPE_SRV if len >= 7 => {
                let mut sub = Reader {
                    msg,
                    pos: start + 4,
                };
                let port = sub.u16()?;
                srv.push((name, port, sub.name()?));
            }
            TYPE_TXT => {
                let mut i = 0;
                while i < rdata.len() {
                    let l = rdata[i] as usize;
                    let s = rdata.get(i + 1..i + 1 + l)?;
                    if let Some(p) = String::from_utf8_lossy(s).strip_prefix("path=") {
                        txt.push((name.clone(), p.to_owned()));
                    }
                    i += 1 + l;
                }
            }
            TYPE_A if len == 4 => {
                a.push((name, Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])));
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    for inst in &instances {
        let Some((_, port, target)) = srv.iter().find(|(n, _, _)| same_name(n, inst)) else {
            continue;
        };
        let path = txt
            .iter()
            .find(|(n, _)| same_name(n, inst))
            .map(|(_, p)| p.clone())
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| "/".into());
        found.push(Found {
            instance: inst.first().cloned().unwrap_or_default(),
            host: target.join("."),
            port: *port,
            path,
            addrs: a
                .iter()
                .filter(|(n, _)| same_name(n, target))
                .map(|(_, ip)| *ip)
                .collect(),
        });
    }
    Some((found, gone))
}

// ---- interfaces -------------------------------------------------------------

/// An IPv4 interface address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub loopback: bool,
    pub multicast: bool,
}

impl Interface {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask);
        u32::from(self.addr) & m == u32::from(ip) & m
    }
}

/// The IPv4 addresses of the interfaces that are up.
pub fn interfaces() -> Vec<Interface> {
    use nix::net::if_::InterfaceFlags as F;
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ifa in addrs {
        if !ifa.flags.contains(F::IFF_UP) {
            continue;
        }
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let netmask = ifa
            .netmask
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|m| m.ip())
            .unwrap_or(Ipv4Addr::BROADCAST);
        out.push(Interface {
            addr: addr.ip(),
            netmask,
            loopback: ifa.flags.contains(F::IFF_LOOPBACK),
            multicast: ifa.flags.contains(F::IFF_MULTICAST),
        });
    }
    out
}

/// The A records to give a querier at `from`: the bound address if the
/// listener has one; 127.0.0.1 for a local querier; else the addresses on
/// the querier's subnet, or failing that every non-loopback address.
pub fn addresses_for(
    bound: Option<Ipv4Addr>,
    from: Option<Ipv4Addr>,
    ifaces: &[Interface],
) -> Vec<Ipv4Addr> {
    if let Some(b) = bound {
        return vec![b];
    }
    if let Some(from) = from {
        if from.is_loopback() || ifaces.iter().any(|i| i.addr == from) {
            if from.is_loopback() {
                return vec![Ipv4Addr::LOCALHOST];
            }
            return vec![from];
        }
        let near: Vec<_> = ifaces
            .iter()
            .filter(|i| !i.loopback && i.contains(from))
            .map(|i| i.addr)
            .collect();
        if !near.is_empty() {
            return near;
        }
    }
    ifaces
        .iter()
        .filter(|i| !i.loopback)
        .map(|i| i.addr)
        .collect()
}

/// The first DNS name (subjectAltName) of the first certificate in `pem`:
/// the name clients check, hence the SRV target we advertise.
pub fn first_dns_name(pem: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = block.parse_x509().ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) if !d.starts_with('*') => Some((*d).to_owned()),
        _ => None,
    })
}

/// This machine's host name (`/proc/sys/kernel/hostname`), `localhost` if unknown.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

// ---- the responder (server side) -------------------------------------------

/// Answers mDNS queries for one [`Advertisement`] on a background thread
/// until [`Responder::stop`] (or drop), which sends the goodbyes.
#[derive(Debug)]
pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn multicast_ifaces() -> Vec<Interface> {
    interfaces().into_iter().filter(|i| i.multicast).collect()
}

impl Responder {
    /// Binds `0.0.0.0:5353` (shared with other responders, SO_REUSEADDR),
    /// joins the group on every multicast interface, announces `ad` and
    /// starts answering.
    pub fn start(ad: Advertisement) -> Result<Responder, DiscoveryError> {
        let ifaces = multicast_ifaces();
        if ifaces.is_empty() {
            return Err(DiscoveryError::NoInterface);
        }
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)).into())?;
        let socket: UdpSocket = socket.into();
        let mut joined = Vec::new();
        let mut errors = Vec::new();
        for i in &ifaces {
            match socket.join_multicast_v4(&GROUP, &i.addr) {
                Ok(()) => joined.push(*i),
                Err(e) => errors.push(format!("{}: {e}", i.addr)),
            }
        }
        if joined.is_empty() {
            return Err(DiscoveryError::Join(errors.join("; ")));
        }
        socket.set_multicast_ttl_v4(255)?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        tracing::info!(
            instance = %ad.instance, host = %ad.host, port = ad.port,
            interfaces = %joined.iter().map(|i| i.addr.to_string()).collect::<Vec<_>>().join(","),
            "mDNS: advertising {SERVICE}"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mdns".into())
            .spawn(move || respond_loop(socket, ad, joined, flag))?;
        Ok(Responder {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops answering and withdraws the service (goodbye packets).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Sends an unsolicited response on every joined interface.
fn announce(socket: &UdpSocket, ad: &Advertisement, ifaces: &[Interface], ttl: u32) {
    let group = SocketAddrV4::new(GROUP, PORT);
    for i in ifaces {
        let addrs = addresses_for(ad.bound, Some(i.addr), ifaces);
        let msg = encode_response(ad, &addrs, 0, ttl, false);
        if socket2::SockRef::from(&socket)
            .set_multicast_if_v4(&i.addr)
            .is_ok()
        {
            if let Err(e) = socket.send_to(&msg, group) {
                tracing::debug!(interface = %i.addr, "mDNS send failed: {e}");
            }
        }
    }
}

fn respond_loop(
    socket: UdpSocket,
    ad: Advertisement,
    ifaces: Vec<Interface>,
    stop: Arc<AtomicBool>,
) {
    announce(&socket, &ad, &ifaces, TTL);
    let mut second = Some(Instant::now() + Duration::from_secs(1));
    let mut last_multicast: Option<Instant> = None;
    let mut buf = [0u8; 9000];
    while !stop.load(Ordering::SeqCst) {
        if second.is_some_and(|t| Instant::now() >= t) {
            announce(&socket, &ad, &ifaces, TTL);
            second = None;
        }
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if read_timed_out(&e) => continue,
            Err(e) => {
                tracing::warn!("mDNS receive failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let Some(id) = query_matches(&buf[..n], &ad) else {
            continue;
        };
        let SocketAddr::V4(from) = from else {
            continue;
        };
        let all = interfaces();
        let addrs = addresses_for(ad.bound, Some(*from.ip()), &all);
        if from.port() != PORT {
            // A one-shot (legacy) querier: unicast answer, its ID, the question.
            let msg = encode_response(&ad, &addrs, id, TTL.min(10), true);
            tracing::debug!(to = %from, "mDNS: answering a one-shot query");
            if let Err(e) = socket.send_to(&msg, from) {
                tracing::debug!(to = %from, "mDNS unicast answer failed: {e}");
            }
        } else if last_multicast.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            // A full mDNS querier: multicast answer on every interface, at
            // most once a second (RFC 6762 §6).
            announce(&socket, &ad, &ifaces, TTL);
            last_multicast = Some(Instant::now());
        }
    }
    announce(&socket, &ad, &ifaces, 0);
    tracing::info!(instance = %ad.instance, "mDNS: withdrawn (goodbye sent)");
}

// ---- browsing (client side) -------------------------------------------------

/// Sends one query on every multicast interface and collects the servers
/// that answer within `wait` (returning 250 ms after the first answer).
/// Duplicates (the same URL and addresses) are merged.
pub fn browse(wait: Duration) -> Result<Vec<Found>, DiscoveryError> {
    let ifaces = multicast_ifaces();
    if ifaces.is_empty() {
        return Err(DiscoveryError::NoInterface);
    }
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_multicast_ttl_v4(255)?;
    let id = u16::from_be_bytes({
        let mut b = [0u8; 2];
        let _ = getrandom::getrandom(&mut b);
        b
    });
    let query = encode_query(id);
    let mut sent = 0;
    let mut last_error = None;
    for i in &ifaces {
        if let Err(e) = socket2::SockRef::from(&socket).set_multicast_if_v4(&i.addr) {
            last_error = Some(e);
            continue;
        }
        match socket.send_to(&query, SocketAddrV4::new(GROUP, PORT)) {
            Ok(_) => sent += 1,
            Err(e) => last_error = Some(e),
        }
    }
    if sent == 0 {
        return Err(last_error.map_or(DiscoveryError::NoInterface, DiscoveryError::Io));
    }
    let start = Instant::now();
    let mut end = start + wait;
    let mut found: Vec<Found> = Vec::new();
    let mut buf = [0u8; 9000];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        socket.set_read_timeout(Some((end - now).max(Duration::from_millis(1))))?;
        let (n, _) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if read_timed_out(&e) => break,
            Err(e) => return Err(e.into()),
        };
        for f in parse_response(&buf[..n]) {
            if !found.contains(&f) {
                found.push(f);
            }
        }
        if !found.is_empty() {
            end = end.min(Instant::now() + Duration::from_millis(250));
        }
    }
    Ok(found)
}

/// A socket read that ended because its timeout passed (the kind depends
/// on the platform), not because of an error.
fn read_timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad() -> Advertisement {
        Advertisement {
            instance: "keys.example".into(),
            host: "keys.example".into(),
            port: 8443,
            txt: vec!["path=/".into(), "v=1".into()],
            bound: None,
        }
    }

    #[test]
    fn a_response_parses_back_to_the_server() {
        let addrs = [Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(192, 168, 1, 2)];
        for question in [false, true] {
            let msg = encode_response(&ad(), &addrs, 7, TTL, question);
            let found = parse_response(&msg);
            assert_eq!(
                found,
                vec![Found {
                    instance: "keys.example".into(),
                    host: "keys.example".into(),
                    port: 8443,
                    path: "/".into(),
                    addrs: addrs.to_vec(),
                }]
            );
            assert_eq!(found[0].url(), "https://keys.example:8443");
            assert_eq!(found[0].socket_addrs()[0], "10.0.0.5:8443".parse().unwrap());
        }
    }

    #[test]
    fn goodbyes_announce_nothing() {
        let msg = encode_response(&ad(), &[Ipv4Addr::LOCALHOST], 0, 0, false);
        assert!(parse_response(&msg).is_empty());
        assert_eq!(parse_goodbyes(&msg), vec!["keys.example".to_owned()]);
        let live = encode_response(&ad(), &[Ipv4Addr::LOCALHOST], 0, TTL, false);
        assert!(parse_goodbyes(&live).is_empty());
    }

    #[test]
    fn our_query_is_answered_and_others_are_not() {
        let q = encode_query(0x1234);
        assert_eq!(query_matches(&q, &ad()), Some(0x1234));
        // Byte layout: header, then the name as length-prefixed labels, PTR, IN|QU.
        assert_eq!(&q[..6], &[0x12, 0x34, 0, 0, 0, 1]);
        assert_eq!(q[12], 13);
        assert_eq!(&q[13..26], b"_secure-store");
        assert_eq!(&q[q.len() - 4..], &[0, 12, 0x80, 1]);
        // A response is never a query; another service is not ours.
        let resp = encode_response(&ad(), &[], 0, TTL, false);
        assert_eq!(query_matches(&resp, &ad()), None);
        let mut other = q.clone();
        other[14] = b'x';
        assert_eq!(query_matches(&other, &ad()), None);
    }

    #[test]
    fn compressed_names_are_followed_and_loops_refused() {
        // A PTR whose rdata points back into the question name.
        let mut msg = vec![0, 0, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        put_name(&mut msg, &dotted(SERVICE));
        msg.extend_from_slice(&[0, 12, 0, 1]);
        msg.extend_from_slice(&[0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 12]);
        let mut r = Reader { msg: &msg, pos: 12 };
        assert_eq!(r.name().unwrap(), dotted(SERVICE));
        // A pointer to itself.
        let looped = [0u8, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12];
        assert!(parse_response(&looped).is_empty());
        // Truncations of a valid response never panic.
        let full = encode_response(&ad(), &[Ipv4Addr::LOCALHOST], 0, TTL, true);
        for n in 0..full.len() {
            let _ = parse_response(&full[..n]);
            let _ = query_matches(&full[..n], &ad());
        }
    }

    #[test]
    fn addresses_follow_the_querier() {
        let ifaces = [
            Interface {
                addr: Ipv4Addr::LOCALHOST,
                netmask: Ipv4Addr::new(255, 0, 0, 0),
                loopback: true,
                multicast: false,
            },
            Interface {
                addr: Ipv4Addr::new(10, 1, 0, 2),
                netmask: Ipv4Addr::new(255, 255, 0, 0),
                loopback: false,
                multicast: true,
            },
            Interface {
                addr: Ipv4Addr::new(192, 168, 5, 1),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                loopback: false,
                multicast: true,
            },
        ];
        let near = addresses_for(None, Some(Ipv4Addr::new(10, 1, 9, 9)), &ifaces);
        assert_eq!(near, vec![Ipv4Addr::new(10, 1, 0, 2)]);
        let local = addresses_for(None, Some(Ipv4Addr::LOCALHOST), &ifaces);
        assert_eq!(local, vec![Ipv4Addr::LOCALHOST]);
        let far = addresses_for(None, Some(Ipv4Addr::new(8, 8, 8, 8)), &ifaces);
        assert_eq!(far.len(), 2);
        let bound = Ipv4Addr::new(192, 168, 5, 1);
        assert_eq!(addresses_for(Some(bound), None, &ifaces), vec![bound]);
    }

    #[test]
    fn long_instance_names_are_cut_to_one_label() {
        let mut a = ad();
        a.instance = "x".repeat(100);
        let found = parse_response(&encode_response(&a, &[], 0, TTL, false));
        assert_eq!(found[0].instance.len(), 63);
    }
}
