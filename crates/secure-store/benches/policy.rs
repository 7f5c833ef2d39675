//! Per-request policy cost: `policy::check` over 100 rules, and
//! `SqliteStore::policy_inputs` (the state read every request makes) with
//! 100 rules and 1,000 or 10,000 devices and revocations, to show the read
//! stays flat as the fleet grows.
//!
//! `cargo bench -p secure-store --bench policy`; numbers go in
//! docs/BENCHMARKS.md.

use std::net::IpAddr;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use secure_store::policy::{self, RateLimitConfig, RateLimiter, Request};
use secure_store::state::sqlite::SqliteStore;
use secure_store::state::{
    PolicyInputs, RevocationTarget, Rule, RuleAction, RuleSpec, Sighting, Store,
};

fn hundred_rules() -> Vec<RuleSpec> {
    let mut specs = Vec::new();
    for n in 0..90u32 {
        specs.push(RuleSpec::Network {
            action: if n % 10 == 0 {
                RuleAction::Deny
            } else {
                RuleAction::Allow
            },
            cidr: format!("10.{n}.0.0/16").parse().unwrap(),
            group: Some(format!("g{}", n % 9)),
        });
    }
    for n in 0..10u32 {
        specs.push(RuleSpec::Store {
            store: format!("kid-{n}"),
            group: format!("g{n}"),
        });
    }
    specs
}

fn check(c: &mut Criterion) {
    let rules: Vec<Rule> = hundred_rules()
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Rule {
            id: i as i64,
            spec,
            created: 0,
        })
        .collect();
    let inputs = PolicyInputs {
        revoked: false,
        status: None,
        rules,
    };
    let groups = vec!["g3".to_owned(), "g5".to_owned()];
    let limiter = RateLimiter::new(RateLimitConfig {
        max_entries: 2_000_000,
        ..RateLimitConfig::default()
    });
    let mut n = 0u32;
    c.bench_function("policy-check-100-rules", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let device = format!("dev-{}", n % 100_000);
            let req = Request {
                device_id: &device,
                groups: &groups,
                address: IpAddr::from([10, 3, (n >> 8) as u8, n as u8]),
                store: Some("kid-3"),
            };
            black_box(policy::check(&req, &inputs, &limiter, Instant::now()))
        })
    });
}

fn state_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("sqlite-policy-inputs");
    group.sample_size(30);
    for devices in [1_000u32, 10_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        for spec in hundred_rules() {
            store.add_rule(&spec, 0).unwrap();
        }
        let groups = vec!["g1".to_owned()];
        for d in 0..devices {
            let id = format!("dev-{d}");
            store
                .record_sighting(&Sighting {
                    device_id: &id,
                    groups: &groups,
                    serial: &format!("{d:x}"),
                    address: IpAddr::from([10, 1, 0, 1]),
                    at: 0,
                })
                .unwrap();
            if d % 2 == 0 {
                store
                    .revoke(&RevocationTarget::Serial(format!("{:x}", d + devices)), 0)
                    .unwrap();
            }
        }
        let mut n = 0u32;
        group.bench_with_input(
            BenchmarkId::from_parameter(devices),
            &devices,
            |b, &devices| {
                b.iter(|| {
                    n = n.wrapping_add(1) % devices;
                    black_box(
                        store
                            .policy_inputs(&format!("dev-{n}"), &format!("{n:x}"))
                            .unwrap(),
                    )
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, check, state_read);
criterion_main!(benches);
