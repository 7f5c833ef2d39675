//! The Store Server's per-request policy: may this device, from this
//! address, use this store now?
//!
//! [`check`] is a pure function of the request, the [`PolicyInputs`] read
//! from the state store for it, and a [`RateLimiter`]; the server calls it
//! on every request after the client certificate is verified. The checks
//! run in the order issue 3 fixes, and the first failing one is the reason
//! (docs/POLICY.md lists them with their HTTP status):
//!
//! 1. the certificate is revoked, by device id or serial → [`Reason::Revoked`];
//! 2. the device is disabled → [`Reason::Disabled`];
//! 3. the source address is not allowed by the network rules →
//!    [`Reason::AddressNotAllowed`] (see [`address_allowed`]);
//! 4. the device or its address is over its rate → [`Reason::RateLimited`];
//! 5. the store is granted to groups the device is not in →
//!    [`Reason::StoreNotAllowed`] (see [`store_allowed`]).
//!
//! A request refused at steps 1–3 takes no token from the rate limiter.
//! A check walks the rules once and allocates nothing (the rate limiter
//! allocates only when it meets a new device): `benches/policy.rs` measures
//! about 2 µs with 100 rules and 100,000 devices in the limiter.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use crate::api::Reason;
use crate::state::schema::{canonical_addr, canonical_net};
use crate::state::{Decision, DeviceStatus, PolicyInputs, Rule, RuleAction, RuleSpec};

/// One request as policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The device id from the verified client certificate.
    pub device_id: &'a str,
    /// The device's groups from its certificate.
    pub groups: &'a [String],
    /// The TCP peer address (an IPv4-mapped IPv6 address counts as IPv4).
    pub address: IpAddr,
    /// The store asked for: a Tang exchange key id (`POST /rec/{kid}`) or
    /// `legacy` (`GET /key`); `None` for requests that open no store
    /// (`GET /adv`).
    pub store: Option<&'a str>,
}

/// Decides one request: `Ok(())` to serve it, or the first [`Reason`] to
/// refuse it, in the order of the module documentation. Takes one token
/// from `limiter` for the device and one for the address when the request
/// gets as far as the rate check and both have one.
pub fn check(
    req: &Request<'_>,
    inputs: &PolicyInputs,
    limiter: &RateLimiter,
    now: Instant,
) -> Result<(), Reason> {
    if inputs.revoked {
        return Err(Reason::Revoked);
    }
    if inputs.status == Some(DeviceStatus::Disabled) {
        return Err(Reason::Disabled);
    }
    if !address_allowed(req.address, req.groups, &inputs.rules) {
        return Err(Reason::AddressNotAllowed);
    }
    if !limiter.check(req.device_id, req.address, now) {
        return Err(Reason::RateLimited);
    }
    if let Some(store) = req.store {
        if !store_allowed(store, req.groups, &inputs.rules) {
            return Err(Reason::StoreNotAllowed);
        }
    }
    Ok(())
}

/// Whether a network rule for `group` (`None`: every device) applies to a
/// device in `groups`.
fn applies(group: Option<&str>, groups: &[String]) -> bool {
    match group {
        None => true,
        Some(g) => groups.iter().any(|mine| mine == g),
    }
}

/// The audit fields of a decision: `(Allowed, "ok")` or `(Refused, code)`.
pub fn audit_outcome(result: Result<(), Reason>) -> (Decision, &'static str) {
    match result {
        Ok(()) => (Decision::Allowed, "ok"),
        Err(reason) => (Decision::Refused, reason.code()),
    }
}

/// The network rules' verdict for a device in `groups` at `address`.
///
/// Only the rules that apply to the device count: global ones and those of
/// its groups. Then:
/// - a deny rule containing the address refuses it, whatever allow rules say;
/// - with no applying allow rule, every other address is allowed;
/// - with some, the address must be in one of them.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and networks are treated
/// as the IPv4 ones they carry; an IPv4 rule never matches a native IPv6
/// address and the other way round.
pub fn address_allowed(address: IpAddr, groups: &[String], rules: &[Rule]) -> bool {
    let address = canonical_addr(address);
    let mut some_allow = false;
    let mut allowed = false;
    for rule in rules {
        let RuleSpec::Network {
            action,
            cidr,
            group,
        } = &rule.spec
        else {
            continue;
        };
        if !applies(group.as_deref(), groups) {
            continue;
        }
        let hit = canonical_net(*cidr).contains(&address);
        match action {
            RuleAction::Deny if hit => return false,
            RuleAction::Deny => {}
            RuleAction::Allow => {
                some_allow = true;
                allowed |= hit;
            }
        }
    }
    !some_allow || allowed
}

/// The store grants' verdict: a store no grant names is open to every
/// device; a store with grants only to devices in one of the granted groups.
pub fn store_allowed(store: &str, groups: &[String], rules: &[Rule]) -> bool {
    let mut granted = false;
    for rule in rules {
        if let RuleSpec::Store { store: s, group } = &rule.spec {
            if s == store {
                if groups.iter().any(|g| g == group) {
                    return true;
                }
                granted = true;
            }
        }
    }
    !granted
}

/// One token bucket's shape: `burst` requests at once, refilled at
/// `per_second` (a rate that is not a positive finite number counts as 0:
/// the burst, then nothing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// Seconds for an empty bucket to fill up: after that long idle an
    /// entry is the same as no entry, and may be forgotten.
    fn refill_nanos(&self) -> u64 {
        let secs = f64::from(self.burst.max(1)) / self.per_second.max(1e-9);
        (secs * 1e9).clamp(1e9, 1e9 * 86_400.0 * 365.0) as u64
    }
}

/// The rate limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Per device id; `None`: no per-device limit.
    pub device: Option<RateLimit>,
    /// Per source address (IPv6: per prefix of `ipv6_prefix` bits);
    /// `None`: no per-address limit.
    pub address: Option<RateLimit>,
    /// At most this many entries per table (devices, addresses).
    pub max_entries: usize,
    /// IPv6 addresses are limited per prefix of this length (64: one LAN),
    /// so a host cannot escape its limit by hopping addresses in its /64.
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    /// A device: bursts of 10, 1 per second after. An address (many devices
    /// may share one behind NAT): bursts of 200, 20 per second. 100,000
    /// entries per table (a few MB).
    fn default() -> Self {
        RateLimitConfig {
            device: Some(RateLimit {
                per_second: 1.0,
                burst: 10,
            }),
            address: Some(RateLimit {
                per_second: 20.0,
                burst: 200,
            }),
            max_entries: 100_000,
            ipv6_prefix: 64,
        }
    }
}

/// Tokens left and when they were last counted (ns since the limiter's
/// epoch).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: u64,
}

impl Bucket {
    fn refilled(self, limit: &RateLimit, now: u64) -> Bucket {
        let elapsed = now.saturating_sub(self.at) as f64 / 1e9;
        Bucket {
            tokens: (self.tokens + elapsed * limit.per_second).min(f64::from(limit.burst)),
            at: now.max(self.at),
        }
    }
}

/// A bounded map of buckets in two generations. Lookups look in `current`,
/// then `previous` (moving the entry up); new entries go to `current`.
/// When `current` is half the cap, or older than the time a bucket takes
/// to refill, it becomes `previous` and the old `previous` is dropped. So
/// memory stays under the cap, each check is O(1) (amortised), and an
/// entry dropped for age was full anyway: forgetting it changes nothing.
/// Only a flood of more than half the cap of new keys within one refill
/// time can make the limiter forget a busy key early (it then starts
/// again from a full bucket).
#[derive(Debug)]
struct Generations<K> {
    current: HashMap<K, Bucket>,
    previous: HashMap<K, Bucket>,
    started: u64,
}

impl<K: Hash + Eq> Generations<K> {
    fn new() -> Self {
        Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            started: 0,
        }
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    fn rotate(&mut self, now: u64) {
        self.previous = std::mem::take(&mut self.current);
        self.started = now;
    }

    fn age_out(&mut self, now: u64, ttl: u64) {
        let age = now.saturating_sub(self.started);
        if age >= ttl.saturating_mul(2) {
            self.current.clear();
            self.previous.clear();
            self.started = now;
        } else if age >= ttl {
            self.rotate(now);
        }
    }

    /// The bucket for `key`, refilled to `now` (a full one if unknown).
    fn peek<Q>(&self, key: &Q, limit: &RateLimit, now: u64) -> Bucket
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.current.get(key).or_else(|| self.previous.get(key)) {
            Some(b) => b.refilled(limit, now),
            None => Bucket {
                tokens: f64::from(limit.burst),
                at: now,
            },
        }
    }

    fn store<Q>(
        &mut self,
        key: &Q,
        owned: impl FnOnce() -> K,
        bucket: Bucket,
        half_cap: usize,
        now: u64,
    ) where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(b) = self.current.get_mut(key) {
            *b = bucket;
            return;
        }
        self.previous.remove(key);
        if self.current.len() >= half_cap {
            self.rotate(now);
        }
        self.current.insert(owned(), bucket);
    }
}

#[derive(Debug)]
struct Tables {
    devices: Generations<Box<str>>,
    addresses: Generations<IpAddr>,
}

/// Token buckets per device and per source address, in memory, bounded
/// (see [`RateLimitConfig::max_entries`]). One per server process: with
/// several replicas each limits what it serves. Time is passed in, so
/// tests drive it.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    epoch: Instant,
    tables: Mutex<Tables>,
}

impl RateLimiter {
    /// A limiter whose clock starts now (pass later instants to `check`).
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter::starting_at(config, Instant::now())
    }

    /// A limiter whose clock starts at `epoch`; instants before it count
    /// as `epoch`.
    pub fn starting_at(mut config: RateLimitConfig, epoch: Instant) -> RateLimiter {
        for limit in [&mut config.device, &mut config.address]
            .into_iter()
            .flatten()
        {
            if !(limit.per_second.is_finite() && limit.per_second > 0.0) {
                limit.per_second = 0.0;
            }
        }
        RateLimiter {
            config,
            epoch,
            tables: Mutex::new(Tables {
                devices: Generations::new(),
                addresses: Generations::new(),
            }),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The key an address is limited under: IPv4 (mapped ones too) as is,
    /// IPv6 cut to its `ipv6_prefix`.
    fn address_key(&self, address: IpAddr) -> IpAddr {
        match canonical_addr(address) {
            IpAddr::V6(v6) => {
                let bits = u32::from(self.config.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
            v4 => v4,
        }
    }

    /// Takes one token for `device` and one for `address` if both have
    /// one; otherwise takes none and returns false.
    pub fn check(&self, device: &str, address: IpAddr, now: Instant) -> bool {
        self.take(Some(device), address, now)
    }

    /// For requests without a device identity (the plain-HTTP Tang
    /// listener): takes one token for `address` only.
    pub fn check_address(&self, address: IpAddr, now: Instant) -> bool {
        self.take(None, address, now)
    }

    fn take(&self, device: Option<&str>, address: IpAddr, now: Instant) -> bool {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let addr = self.address_key(address);
        let half_cap = (self.config.max_entries / 2).max(1);
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let dev = match (self.config.device, device) {
            (Some(limit), Some(device)) => {
                t.devices.age_out(now, limit.refill_nanos());
                Some((device, t.devices.peek(device, &limit, now)))
            }
            _ => None,
        };
        let adr = self.config.address.map(|limit| {
            t.addresses.age_out(now, limit.refill_nanos());
            t.addresses.peek(&addr, &limit, now)
        });
        let ok = dev.is_none_or(|(_, b)| b.tokens >= 1.0) && adr.is_none_or(|b| b.tokens >= 1.0);
        let take = if ok { 1.0 } else { 0.0 };
        if let Some((device, mut b)) = dev {
            b.tokens -= take;
            t.devices.store(device, || device.into(), b, half_cap, now);
        }
        if let Some(mut b) = adr {
            b.tokens -= take;
            t.addresses.store(&addr, || addr, b, half_cap, now);
        }
        ok
    }

    /// Entries held (devices + addresses), for metrics and tests.
    pub fn entries(&self) -> usize {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.devices.len() + t.addresses.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(action: RuleAction, cidr: &str, group: Option<&str>) -> Rule {
        Rule {
            id: 0,
            spec: RuleSpec::Network {
                action,
                cidr: cidr.parse().unwrap(),
                group: group.map(str::to_owned),
            },
            created: 0,
        }
    }

    fn allow(cidr: &str, group: Option<&str>) -> Rule {
        net(RuleAction::Allow, cidr, group)
    }

    fn deny(cidr: &str, group: Option<&str>) -> Rule {
        net(RuleAction::Deny, cidr, group)
    }

    fn grant(store: &str, group: &str) -> Rule {
        Rule {
            id: 0,
            spec: RuleSpec::Store {
                store: store.into(),
                group: group.into(),
            },
            created: 0,
        }
    }

    fn groups(gs: &[&str]) -> Vec<String> {
        gs.iter().map(|g| g.to_string()).collect()
    }

    fn unlimited() -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            device: None,
            address: None,
            ..RateLimitConfig::default()
        })
    }

    fn limit(per_second: f64, burst: u32) -> Option<RateLimit> {
        Some(RateLimit { per_second, burst })
    }

    #[test]
    fn refusals_come_in_the_documented_order() {
        let g = groups(&["cam"]);
        let req = Request {
            device_id: "dev-1",
            groups: &g,
            address: ip("198.51.100.1"),
            store: Some("kid-secret"),
        };
        let rules = vec![allow("10.0.0.0/8", None), grant("kid-secret", "lab")];
        let limiter = RateLimiter::new(RateLimitConfig {
            device: limit(1.0, 1),
            address: None,
            ..RateLimitConfig::default()
        });
        let now = Instant::now();
        let mut inputs = PolicyInputs {
            revoked: true,
            status: Some(DeviceStatus::Disabled),
            rules,
        };
        assert_eq!(check(&req, &inputs, &limiter, now), Err(Reason::Revoked));
        inputs.revoked = false;
        assert_eq!(check(&req, &inputs, &limiter, now), Err(Reason::Disabled));
        inputs.status = Some(DeviceStatus::Enabled);
        assert_eq!(
            check(&req, &inputs, &limiter, now),
            Err(Reason::AddressNotAllowed)
        );
        // Refusals so far took no token: the first request reaching the
        // limiter gets the only one, then hits the store grant.
        let req = Request {
            address: ip("10.1.1.1"),
            ..req
        };
        assert_eq!(
            check(&req, &inputs, &limiter, now),
            Err(Reason::StoreNotAllowed)
        );
        assert_eq!(
            check(&req, &inputs, &limiter, now),
            Err(Reason::RateLimited)
        );
        let later = now + Duration::from_secs(1);
        let other_store = Request {
            store: Some("kid-open"),
            ..req
        };
        assert_eq!(check(&other_store, &inputs, &limiter, later), Ok(()));
    }

    #[test]
    fn never_seen_devices_and_empty_rules_are_allowed() {
        let req = Request {
            device_id: "new",
            groups: &[],
            address: ip("2001:db8::1"),
            store: Some("legacy"),
        };
        assert_eq!(
            check(&req, &PolicyInputs::default(), &unlimited(), Instant::now()),
            Ok(())
        );
    }

    #[test]
    fn global_allow_rules_restrict_addresses() {
        let rules = vec![allow("10.0.0.0/8", None), allow("2001:db8:1::/48", None)];
        assert!(address_allowed(ip("10.9.9.9"), &[], &rules));
        assert!(address_allowed(ip("2001:db8:1:2::3"), &[], &rules));
        assert!(!address_allowed(ip("11.0.0.1"), &[], &rules));
        assert!(!address_allowed(ip("2001:db8:2::3"), &[], &rules));
        // No allow rule: everything not denied.
        let rules = vec![deny("192.0.2.0/24", None)];
        assert!(address_allowed(ip("192.0.3.1"), &[], &rules));
        assert!(address_allowed(ip("::1"), &[], &rules));
        assert!(!address_allowed(ip("192.0.2.200"), &[], &rules));
    }

    #[test]
    fn deny_wins_over_allow() {
        let rules = vec![allow("10.0.0.0/8", None), deny("10.66.0.0/16", None)];
        assert!(address_allowed(ip("10.1.0.1"), &[], &rules));
        assert!(!address_allowed(ip("10.66.0.1"), &[], &rules));
        // Order of the rules does not matter, nor does specificity.
        let rules = vec![deny("10.0.0.0/8", None), allow("10.66.0.0/16", None)];
        assert!(!address_allowed(ip("10.66.0.1"), &[], &rules));
        let rules = vec![
            allow("2001:db8::/32", None),
            deny("2001:db8::bad/128", None),
        ];
        assert!(!address_allowed(ip("2001:db8::bad"), &[], &rules));
        assert!(address_allowed(ip("2001:db8::bae"), &[], &rules));
    }

    #[test]
    fn group_rules_apply_only_to_their_groups() {
        let rules = vec![
            allow("10.1.0.0/16", Some("lab")),
            deny("10.1.99.0/24", Some("cam")),
        ];
        let lab = groups(&["lab"]);
        let cam = groups(&["cam"]);
        let both = groups(&["cam", "lab"]);
        // Lab devices: only from 10.1/16.
        assert!(address_allowed(ip("10.1.2.3"), &lab, &rules));
        assert!(!address_allowed(ip("10.2.2.3"), &lab, &rules));
        assert!(address_allowed(ip("10.1.99.1"), &lab, &rules));
        // Cam devices: no allow rule applies, so anything but the denied /24.
        assert!(address_allowed(ip("203.0.113.5"), &cam, &rules));
        assert!(!address_allowed(ip("10.1.99.1"), &cam, &rules));
        // In both groups: both rules apply.
        assert!(address_allowed(ip("10.1.2.3"), &both, &rules));
        assert!(!address_allowed(ip("10.1.99.1"), &both, &rules));
        assert!(!address_allowed(ip("203.0.113.5"), &both, &rules));
        // No groups: nothing applies.
        assert!(address_allowed(ip("10.1.99.1"), &[], &rules));
        // A global allow plus a group allow: either matches.
        let rules = vec![
            allow("10.1.0.0/16", Some("lab")),
            allow("192.0.2.0/24", None),
        ];
        assert!(address_allowed(ip("192.0.2.1"), &lab, &rules));
        assert!(address_allowed(ip("10.1.0.1"), &lab, &rules));
        assert!(!address_allowed(ip("10.1.0.1"), &cam, &rules));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let rules = vec![allow("10.0.0.0/8", None)];
        assert!(address_allowed(ip("::ffff:10.2.3.4"), &[], &rules));
        assert!(!address_allowed(ip("::ffff:11.2.3.4"), &[], &rules));
        // A mapped rule (as an IPv6 CIDR) matches the IPv4 address too.
        let rules = vec![deny("::ffff:192.0.2.0/120", None)];
        assert!(!address_allowed(ip("192.0.2.9"), &[], &rules));
        assert!(!address_allowed(ip("::ffff:192.0.2.9"), &[], &rules));
        // IPv4 rules never match native IPv6 and the other way round.
        let rules = vec![allow("0.0.0.0/0", None)];
        assert!(!address_allowed(ip("2001:db8::1"), &[], &rules));
        let rules = vec![allow("::/0", None)];
        assert!(!address_allowed(ip("10.0.0.1"), &[], &rules));
        assert!(address_allowed(ip("::1"), &[], &rules));
    }

    #[test]
    fn outcomes_for_the_audit_log() {
        assert_eq!(audit_outcome(Ok(())), (Decision::Allowed, "ok"));
        assert_eq!(
            audit_outcome(Err(Reason::RateLimited)),
            (Decision::Refused, "rate_limited")
        );
    }

    #[test]
    fn bad_rates_mean_no_refill() {
        let t0 = Instant::now();
        for rate in [f64::NAN, -1.0, f64::INFINITY, 0.0] {
            let limiter = RateLimiter::starting_at(
                RateLimitConfig {
                    device: limit(rate, 2),
                    address: None,
                    ..RateLimitConfig::default()
                },
                t0,
            );
            assert!(limiter.check("d", ip("192.0.2.1"), t0));
            assert!(limiter.check("d", ip("192.0.2.1"), t0));
            assert!(!limiter.check("d", ip("192.0.2.1"), t0 + Duration::from_secs(3600)));
        }
    }

    #[test]
    fn store_grants() {
        let rules = vec![
            grant("kid-a", "lab"),
            grant("kid-a", "cam"),
            grant("legacy", "old"),
            allow("10.0.0.0/8", None),
        ];
        let lab = groups(&["lab"]);
        let other = groups(&["other"]);
        assert!(store_allowed("kid-a", &lab, &rules));
        assert!(store_allowed("kid-a", &groups(&["x", "cam"]), &rules));
        assert!(!store_allowed("kid-a", &other, &rules));
        assert!(!store_allowed("kid-a", &[], &rules));
        assert!(!store_allowed("legacy", &lab, &rules));
        assert!(store_allowed("legacy", &groups(&["old"]), &rules));
        // No grant names it: open to all.
        assert!(store_allowed("kid-b", &[], &rules));
        // A request naming no store skips the check.
        let req = Request {
            device_id: "d",
            groups: &other,
            address: ip("10.0.0.1"),
            store: None,
        };
        let inputs = PolicyInputs {
            rules,
            ..PolicyInputs::default()
        };
        assert_eq!(check(&req, &inputs, &unlimited(), Instant::now()), Ok(()));
    }

    #[test]
    fn rate_limiter_bursts_then_refills() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting_at(
            RateLimitConfig {
                device: limit(2.0, 3),
                address: None,
                ..RateLimitConfig::default()
            },
            t0,
        );
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limiter.check("d", a, t0));
        }
        assert!(!limiter.check("d", a, t0));
        // Another device has its own bucket.
        assert!(limiter.check("e", a, t0));
        // Half a second at 2/s: one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check("d", a, t1));
        assert!(!limiter.check("d", a, t1));
        // Refill stops at the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check("d", a, t2));
        }
        assert!(!limiter.check("d", a, t2));
    }

    #[test]
    fn rate_limiter_per_address_and_ipv6_prefix() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting_at(
            RateLimitConfig {
                device: limit(1.0, 5),
                address: limit(1.0, 2),
                ..RateLimitConfig::default()
            },
            t0,
        );
        assert!(limiter.check("a", ip("2001:db8:0:1::1"), t0));
        // Same /64, another device: the address bucket is shared.
        assert!(limiter.check("b", ip("2001:db8:0:1::ffff"), t0));
        assert!(!limiter.check("c", ip("2001:db8:0:1::2"), t0));
        // Another /64 is another bucket.
        assert!(limiter.check("c", ip("2001:db8:0:2::2"), t0));
        // Mapped and plain IPv4 share a bucket.
        assert!(limiter.check("d", ip("192.0.2.1"), t0));
        assert!(limiter.check("d", ip("::ffff:192.0.2.1"), t0));
        assert!(!limiter.check("e", ip("192.0.2.1"), t0));
        // A refusal by the address took no token from the device: "d" had
        // 5, used 2, and still has 3 from other addresses.
        for n in 0..3 {
            assert!(limiter.check("d", ip(&format!("198.51.100.{n}")), t0));
        }
        assert!(!limiter.check("d", ip("198.51.100.9"), t0));
        // Without a device identity only the address counts.
        assert!(limiter.check_address(ip("203.0.113.1"), t0));
        assert!(limiter.check_address(ip("203.0.113.1"), t0));
        assert!(!limiter.check_address(ip("203.0.113.1"), t0));
        assert!(!limiter.check_address(ip("192.0.2.1"), t0));
    }

    #[test]
    fn rate_limiter_forgets_idle_entries() {
        let t0 = Instant::now();
        // Both buckets take 1 s to refill completely.
        let limiter = RateLimiter::starting_at(
            RateLimitConfig {
                device: limit(10.0, 10),
                address: limit(100.0, 100),
                ..RateLimitConfig::default()
            },
            t0,
        );
        for n in 0..50 {
            assert!(limiter.check(&format!("dev-{n}"), ip("192.0.2.1"), t0));
        }
        assert_eq!(limiter.entries(), 51);
        // After two refill times idle, nothing is kept.
        let t1 = t0 + Duration::from_secs(2);
        assert!(limiter.check("dev-0", ip("192.0.2.1"), t1));
        assert_eq!(limiter.entries(), 2);
        // An entry emptied late in a generation is still counted after the
        // generation rotates (it is not full yet, so it must not be lost).
        let t2 = t1 + Duration::from_millis(900);
        for _ in 0..10 {
            assert!(limiter.check("dev-y", ip("192.0.2.2"), t2));
        }
        assert!(!limiter.check("dev-y", ip("192.0.2.2"), t2));
        let t3 = t1 + Duration::from_millis(1050);
        assert!(limiter.check("dev-y", ip("192.0.2.2"), t3));
        assert!(!limiter.check("dev-y", ip("192.0.2.2"), t3));
        assert!(limiter.entries() <= 4);
    }

    #[test]
    fn rate_limiter_memory_is_capped() {
        let t0 = Instant::now();
        let limiter = RateLimiter::starting_at(
            RateLimitConfig {
                device: limit(1.0, 1),
                address: limit(1.0, 1_000_000),
                max_entries: 100,
                ipv6_prefix: 64,
            },
            t0,
        );
        for n in 0..10_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            assert!(limiter.check(&format!("dev-{n}"), a, t0));
            assert!(limiter.entries() <= 200, "{}", limiter.entries());
        }
        // Recent keys are still limited.
        assert!(!limiter.check("dev-9999", ip("192.0.2.1"), t0));
    }

    #[test]
    fn hundred_group_rules_pick_the_right_verdict() {
        // Behavioural smoke test (no timing): many rules, right verdicts.
        let mut rules = Vec::new();
        for n in 0..100u32 {
            let g = format!("g{}", n % 7);
            rules.push(allow(&format!("10.{n}.0.0/16"), Some(&g)));
        }
        rules.push(grant("kid", "g3"));
        let g = groups(&["g3"]);
        let req = Request {
            device_id: "d",
            groups: &g,
            address: ip("10.3.1.1"),
            store: Some("kid"),
        };
        let inputs = PolicyInputs {
            rules,
            ..Default::default()
        };
        assert_eq!(check(&req, &inputs, &unlimited(), Instant::now()), Ok(()));
        let req = Request {
            address: ip("10.4.1.1"),
            ..req
        };
        assert_eq!(
            check(&req, &inputs, &unlimited(), Instant::now()),
            Err(Reason::AddressNotAllowed)
        );
    }

    /// (allow?, (network bits, prefix length, IPv4?), group).
    type ModelRule = (bool, (u128, u8, bool), Option<String>);

    /// A deliberately naive model of the rule semantics: bits compared one
    /// by one on 128-bit values.
    fn reference(addr: IpAddr, groups: &[String], rules: &[ModelRule]) -> bool {
        let to_bits = |a: IpAddr| -> (u128, bool) {
            match a {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)) << 96, true),
                    None => (u128::from(v6), false),
                },
            }
        };
        let (bits, v4) = to_bits(addr);
        let matches = |(nbits, len, nv4): (u128, u8, bool)| {
            nv4 == v4 && (0..len).all(|i| (bits >> (127 - i)) & 1 == (nbits >> (127 - i)) & 1)
        };
        let applying: Vec<_> = rules
            .iter()
            .filter(|(_, _, g)| g.as_ref().is_none_or(|g| groups.contains(g)))
            .collect();
        let denied = applying.iter().any(|(allow, n, _)| !allow && matches(*n));
        let allows: Vec<_> = applying.iter().filter(|(allow, _, _)| *allow).collect();
        !denied && (allows.is_empty() || allows.iter().any(|(_, n, _)| matches(*n)))
    }

    fn arb_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u8..4, any::<u8>(), any::<u16>()).prop_map(|(a, b, c)| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    10 + a,
                    b % 4,
                    (c >> 8) as u8,
                    c as u8,
                ))
            }),
            (0u8..4, any::<u8>(), any::<u16>()).prop_map(|(a, b, c)| {
                IpAddr::V6(
                    std::net::Ipv4Addr::new(10 + a, b % 4, (c >> 8) as u8, c as u8)
                        .to_ipv6_mapped(),
                )
            }),
            (0u16..4, any::<u16>(), any::<u64>()).prop_map(|(a, b, c)| {
                IpAddr::V6(Ipv6Addr::from(
                    (0x2001_0db8u128 << 96)
                        | (u128::from(a) << 80)
                        | (u128::from(b % 4) << 64)
                        | u128::from(c),
                ))
            }),
        ]
    }

    proptest! {
        #[test]
        fn cidr_semantics_match_the_reference(
            addr in arb_addr(),
            my_groups in proptest::collection::vec(0u8..3, 0..3),
            specs in proptest::collection::vec((any::<bool>(), arb_addr(), 0u8..=40, proptest::option::of(0u8..3)), 0..8),
        ) {
            let my_groups: Vec<String> = my_groups.iter().map(|g| format!("g{g}")).collect();
            let mut rules = Vec::new();
            let mut model = Vec::new();
            for (is_allow, base, len, group) in specs {
                let group = group.map(|g| format!("g{g}"));
                // Prefix lengths near the top of each family, mapped nets as IPv6.
                let (cidr, mbits) = match base {
                    IpAddr::V4(v4) => {
                        let len = len.min(32);
                        (ipnet::IpNet::new(base, len).unwrap(), (u128::from(u32::from(v4)) << 96, len, true))
                    }
                    IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                        Some(v4) => {
                            let len = len.min(32);
                            (ipnet::IpNet::new(base, 96 + len).unwrap(), (u128::from(u32::from(v4)) << 96, len, true))
                        }
                        None => {
                            let len = 32 + len;
                            (ipnet::IpNet::new(base, len).unwrap(), (u128::from(v6), len, false))
                        }
                    },
                };
                let action = if is_allow { RuleAction::Allow } else { RuleAction::Deny };
                rules.push(Rule { id: 0, spec: RuleSpec::Network { action, cidr, group: group.clone() }, created: 0 });
                model.push((is_allow, mbits, group));
            }
            prop_assert_eq!(address_allowed(addr, &my_groups, &rules), reference(addr, &my_groups, &model));
        }
    }
}
