//! The behavioural test suite every [`Store`] backend must pass, with the
//! same assertions: `sqlite.rs` and `postgres` tests call these functions
//! on a fresh store (an in-memory SQLite database, a new PostgreSQL
//! database), so both backends are held to one contract.

use std::net::IpAddr;
use std::sync::Arc;

use super::chain::GENESIS_HASH;
use super::{
    AuditEvent, AuditFilter, AuditVerification, Decision, DeviceStatus, RevocationTarget,
    RuleAction, RuleSpec, Sighting, StateError, Store, TangKeyRow,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn event(n: i64, device: &str) -> AuditEvent {
    AuditEvent {
        time: 1_700_000_000 + n,
        decision: if n % 2 == 0 {
            Decision::Allowed
        } else {
            Decision::Refused
        },
        reason: if n % 2 == 0 {
            "ok".into()
        } else {
            "revoked".into()
        },
        device: Some(device.to_owned()),
        address: Some(ip("2001:db8::7")),
        endpoint: "POST /rec".into(),
        key_id: Some(format!("kid-{n}")),
    }
}

pub fn sighting<'a>(id: &'a str, groups: &'a [String], serial: &'a str, at: i64) -> Sighting<'a> {
    Sighting {
        device_id: id,
        groups,
        serial,
        address: ip("192.0.2.10"),
        at,
    }
}

pub fn sightings_register_and_update_devices(store: &dyn Store) {
    assert_eq!(store.device("dev-1").unwrap(), None);
    let groups = vec!["lab".to_owned(), "cam".to_owned(), "lab".to_owned()];
    store
        .record_sighting(&sighting("dev-1", &groups, "0A:1B", 100))
        .unwrap();
    let mut later = sighting("dev-1", &groups[..1], "ff", 200);
    later.address = ip("::ffff:192.0.2.99");
    store.record_sighting(&later).unwrap();
    store.record_sighting(&later).unwrap();
    let d = store.device("dev-1").unwrap().unwrap();
    assert_eq!(d.id, "dev-1");
    assert_eq!(d.groups, vec!["lab".to_owned()]);
    assert_eq!(d.serials, vec!["a1b".to_owned(), "ff".to_owned()]);
    assert_eq!(d.status, DeviceStatus::Enabled);
    assert_eq!((d.first_seen, d.last_seen), (100, 200));
    assert_eq!(d.last_address, Some(ip("::ffff:192.0.2.99")));
    assert!(!d.revoked);

    store
        .record_sighting(&sighting("dev-0", &groups, "1", 150))
        .unwrap();
    let all = store.devices().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, "dev-0");
    assert_eq!(all[0].groups, vec!["cam".to_owned(), "lab".to_owned()]);
    assert_eq!(all[0].serials, vec!["1".to_owned()]);
    assert_eq!(all[1], d);
}

pub fn bad_values_are_refused(store: &dyn Store) {
    let groups = vec![];
    assert!(matches!(
        store.record_sighting(&sighting("", &groups, "1", 1)),
        Err(StateError::Invalid { .. })
    ));
    assert!(matches!(
        store.record_sighting(&sighting("d", &groups, "zz", 1)),
        Err(StateError::Invalid { .. })
    ));
    assert!(store
        .revoke(&RevocationTarget::Serial("not hex".into()), 1)
        .is_err());
    assert!(store
        .add_rule(
            &RuleSpec::Store {
                store: "legacy".into(),
                group: "".into()
            },
            1
        )
        .is_err());
    assert!(store.devices().unwrap().is_empty());
}

pub fn status_registers_unseen_devices_and_feeds_policy(store: &dyn Store) {
    assert_eq!(store.policy_inputs("dev-9", "1").unwrap().status, None);
    store
        .set_status("dev-9", DeviceStatus::Disabled, 50)
        .unwrap();
    let d = store.device("dev-9").unwrap().unwrap();
    assert_eq!(d.status, DeviceStatus::Disabled);
    assert_eq!((d.first_seen, d.last_seen, d.last_address), (50, 50, None));
    assert_eq!(
        store.policy_inputs("dev-9", "1").unwrap().status,
        Some(DeviceStatus::Disabled)
    );
    // A sighting does not re-enable a disabled device.
    store
        .record_sighting(&sighting("dev-9", &[], "1", 60))
        .unwrap();
    assert_eq!(
        store.device("dev-9").unwrap().unwrap().status,
        DeviceStatus::Disabled
    );
    store
        .set_status("dev-9", DeviceStatus::Enabled, 70)
        .unwrap();
    let d = store.device("dev-9").unwrap().unwrap();
    assert_eq!((d.status, d.first_seen), (DeviceStatus::Enabled, 50));
}

pub fn revocations_by_device_and_serial_apply_at_once(store: &dyn Store) {
    store
        .record_sighting(&sighting("dev-1", &[], "0a1b", 1))
        .unwrap();
    assert!(!store.policy_inputs("dev-1", "0a1b").unwrap().revoked);

    store
        .revoke(&RevocationTarget::Serial("0A:1B".into()), 2)
        .unwrap();
    // Same serial in any spelling; another certificate of the device is fine.
    assert!(store.policy_inputs("dev-1", "A1B").unwrap().revoked);
    assert!(store.policy_inputs("dev-1", "a1b").unwrap().revoked);
    assert!(!store.policy_inputs("dev-1", "a1c").unwrap().revoked);
    assert!(!store.device("dev-1").unwrap().unwrap().revoked);

    store
        .revoke(&RevocationTarget::Device("dev-1".into()), 3)
        .unwrap();
    store
        .revoke(&RevocationTarget::Device("dev-1".into()), 4)
        .unwrap();
    assert!(store.policy_inputs("dev-1", "a1c").unwrap().revoked);
    assert!(!store.policy_inputs("dev-2", "a1c").unwrap().revoked);
    assert!(store.device("dev-1").unwrap().unwrap().revoked);
    assert_eq!(
        store.revocations().unwrap(),
        vec![
            RevocationTarget::Serial("a1b".into()),
            RevocationTarget::Device("dev-1".into())
        ]
    );
}

pub fn rules_add_list_remove(store: &dyn Store) {
    let net = RuleSpec::Network {
        action: RuleAction::Deny,
        cidr: "::ffff:10.1.2.3/104".parse().unwrap(),
        group: Some("lab".into()),
    };
    let grant = RuleSpec::Store {
        store: "legacy".into(),
        group: "cam".into(),
    };
    let r1 = store.add_rule(&net, 10).unwrap();
    let r2 = store.add_rule(&grant, 11).unwrap();
    assert_eq!((r1.id, r2.id), (1, 2));
    assert_eq!(
        r1.spec,
        RuleSpec::Network {
            action: RuleAction::Deny,
            cidr: "10.0.0.0/8".parse().unwrap(),
            group: Some("lab".into()),
        }
    );
    assert_eq!((r2.spec.clone(), r2.created), (grant.clone(), 11));
    assert_eq!(store.rules().unwrap(), vec![r1.clone(), r2.clone()]);
    assert_eq!(
        store.policy_inputs("d", "1").unwrap().rules,
        vec![r1.clone(), r2.clone()]
    );

    store.remove_rule(1).unwrap();
    assert!(matches!(
        store.remove_rule(1),
        Err(StateError::NoSuchRule(1))
    ));
    assert_eq!(
        store.policy_inputs("d", "1").unwrap().rules,
        vec![r2.clone()]
    );
    // Ids are never reused.
    assert_eq!(store.add_rule(&net, 12).unwrap().id, 3);
}

pub fn audit_appends_chain_and_filters(store: &dyn Store) {
    assert_eq!(
        store.verify_audit().unwrap(),
        AuditVerification {
            entries: 0,
            first_bad_seq: None
        }
    );
    let mut records = Vec::new();
    for n in 0..6 {
        let dev = if n % 3 == 0 { "dev-a" } else { "dev-b" };
        records.push(store.append_audit(&event(n, dev)).unwrap());
    }
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    for w in records.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    let mut anonymous = event(6, "x");
    anonymous.device = None;
    anonymous.address = None;
    anonymous.key_id = None;
    records.push(store.append_audit(&anonymous).unwrap());

    assert_eq!(store.audit(&AuditFilter::default()).unwrap(), records);
    let by_dev = store
        .audit(&AuditFilter {
            device: Some("dev-a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_dev, vec![records[0].clone(), records[3].clone()]);
    let since = store
        .audit(&AuditFilter {
            since: Some(1_700_000_004),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(since, records[4..].to_vec());
    let newest = store
        .audit(&AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(newest, records[5..].to_vec());
    let combined = store
        .audit(&AuditFilter {
            since: Some(1_700_000_001),
            device: Some("dev-b".into()),
            limit: Some(2),
        })
        .unwrap();
    assert_eq!(combined, vec![records[4].clone(), records[5].clone()]);
    assert_eq!(
        store.verify_audit().unwrap(),
        AuditVerification {
            entries: 7,
            first_bad_seq: None
        }
    );
}

/// `admin` changes rules, revocations and status; `server` (another store
/// on the same database: another process or replica) sees each change on
/// its very next `policy_inputs`.
pub fn changes_through_one_instance_apply_to_the_next_request_of_another(
    server: &dyn Store,
    admin: &dyn Store,
) {
    assert!(server.policy_inputs("d", "1").unwrap().rules.is_empty());
    let spec = RuleSpec::Network {
        action: RuleAction::Allow,
        cidr: "192.0.2.0/24".parse().unwrap(),
        group: None,
    };
    let rule = admin.add_rule(&spec, 1).unwrap();
    for _ in 0..3 {
        assert_eq!(
            server.policy_inputs("d", "1").unwrap().rules,
            vec![rule.clone()]
        );
    }
    admin.remove_rule(rule.id).unwrap();
    assert!(server.policy_inputs("d", "1").unwrap().rules.is_empty());
    assert!(!server.policy_inputs("d", "1").unwrap().revoked);
    admin
        .revoke(&RevocationTarget::Device("d".into()), 2)
        .unwrap();
    assert!(server.policy_inputs("d", "1").unwrap().revoked);
    admin
        .revoke(&RevocationTarget::Serial("0F:F0".into()), 2)
        .unwrap();
    assert!(server.policy_inputs("x", "ff0").unwrap().revoked);
    admin.set_status("e", DeviceStatus::Disabled, 3).unwrap();
    assert_eq!(
        server.policy_inputs("e", "1").unwrap().status,
        Some(DeviceStatus::Disabled)
    );
    admin.set_status("e", DeviceStatus::Enabled, 4).unwrap();
    assert_eq!(
        server.policy_inputs("e", "1").unwrap().status,
        Some(DeviceStatus::Enabled)
    );
}

/// A fresh store holding a chain of `n` entries, and a way to run raw SQL
/// on its database behind the store's back.
pub type ChainedStore = (Box<dyn Store>, Box<dyn Fn(&str)>);

/// Makes a [`ChainedStore`] with a chain of `n` entries.
pub type ChainMaker<'a> = &'a dyn Fn(i64) -> ChainedStore;

fn first_bad_after(make: ChainMaker<'_>, sql: &str) -> Option<i64> {
    let (store, exec) = make(6);
    assert_eq!(store.verify_audit().unwrap().first_bad_seq, None);
    exec(sql);
    store.verify_audit().unwrap().first_bad_seq
}

/// Appends `n` entries for `dev-a`.
pub fn append_chain(store: &dyn Store, n: i64) {
    for i in 0..n {
        store.append_audit(&event(i, "dev-a")).unwrap();
    }
}

pub fn tampering_is_detected_at_the_right_seq(make: ChainMaker<'_>) {
    let bad = |sql: &str| first_bad_after(make, sql);
    assert_eq!(
        bad("UPDATE audit SET reason = 'tampered' WHERE seq = 3"),
        Some(3)
    );
    assert_eq!(
        bad("UPDATE audit SET time = time + 1 WHERE seq = 1"),
        Some(1)
    );
    assert_eq!(
        bad("UPDATE audit SET address = '2001:0db8::7' WHERE seq = 5"),
        Some(5)
    );
    assert_eq!(bad("UPDATE audit SET device = NULL WHERE seq = 6"), Some(6));
    // Recomputing one row's hash still breaks the next link.
    assert_eq!(
        bad("UPDATE audit SET reason = 'tampered', hash = 'ab' WHERE seq = 2"),
        Some(2)
    );
    assert_eq!(
        bad("UPDATE audit SET hash = prev_hash WHERE seq = 4"),
        Some(4)
    );
    // A deleted row breaks the link of the one after it.
    assert_eq!(bad("DELETE FROM audit WHERE seq = 3"), Some(4));
    // Renumbering to hide a deletion fails on the hash.
    assert_eq!(
        bad("DELETE FROM audit WHERE seq = 3; UPDATE audit SET seq = seq - 1 WHERE seq > 3"),
        Some(3)
    );
}

pub fn tampered_then_counted_to_the_end(make: ChainMaker<'_>) {
    let (store, exec) = make(5);
    exec("UPDATE audit SET endpoint = 'GET /key' WHERE seq = 2");
    assert_eq!(
        store.verify_audit().unwrap(),
        AuditVerification {
            entries: 5,
            first_bad_seq: Some(2)
        }
    );
}

/// Two threads on each of two stores sharing one database append at once:
/// one chain, no gap, no fork.
pub fn concurrent_appenders_in_two_stores_keep_one_chain(stores: [Arc<dyn Store>; 2]) {
    const PER_THREAD: i64 = 40;
    let mut threads = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..2 {
            let store = Arc::clone(store);
            threads.push(std::thread::spawn(move || {
                let dev = format!("dev-{s}-{t}");
                for i in 0..PER_THREAD {
                    store.append_audit(&event(i, &dev)).unwrap();
                    // Readers and policy reads run alongside the writers.
                    store.policy_inputs(&dev, "1").unwrap();
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    let v = stores[0].verify_audit().unwrap();
    assert_eq!(
        v,
        AuditVerification {
            entries: 4 * PER_THREAD as u64,
            first_bad_seq: None
        }
    );
    let all = stores[1].audit(&AuditFilter::default()).unwrap();
    let seqs: Vec<i64> = all.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=4 * PER_THREAD).collect::<Vec<_>>());
    for dev in ["dev-0-0", "dev-0-1", "dev-1-0", "dev-1-1"] {
        let mine = stores[1]
            .audit(&AuditFilter {
                device: Some(dev.into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(mine.len(), PER_THREAD as usize, "{dev}");
    }
}

pub fn tang_row(thp: &str, hidden: bool, created: i64) -> TangKeyRow {
    TangKeyRow {
        thumbprint: thp.to_owned(),
        hidden,
        created,
        format: 1,
        // Opaque to the store: every byte value must round-trip.
        sealed: (0..=255u8).chain(thp.bytes()).collect(),
    }
}

pub fn tang_keys_insert_list_hide(store: &dyn Store) {
    assert!(store.tang_keys().unwrap().is_empty());
    let first = [tang_row("sig-A", false, 10), tang_row("exc-A", false, 10)];
    assert_eq!(store.insert_tang_keys(&first, false).unwrap(), 2);
    let rows = store.tang_keys().unwrap();
    assert_eq!(
        rows,
        vec![first[1].clone(), first[0].clone()],
        "ordered by thumbprint"
    );
    // An already-stored thumbprint is skipped and left as it was.
    let again = [tang_row("sig-A", true, 99), tang_row("old_1", true, 5)];
    assert_eq!(store.insert_tang_keys(&again, false).unwrap(), 1);
    let rows = store.tang_keys().unwrap();
    assert_eq!(rows.len(), 3);
    let sig = rows.iter().find(|r| r.thumbprint == "sig-A").unwrap();
    assert_eq!((sig.hidden, sig.created), (false, 10));
    assert!(rows.iter().any(|r| r.thumbprint == "old_1" && r.hidden));

    store.hide_tang_key("exc-A").unwrap();
    assert!(store
        .tang_keys()
        .unwrap()
        .iter()
        .any(|r| r.thumbprint == "exc-A" && r.hidden));
    assert!(matches!(
        store.hide_tang_key("nope"),
        Err(StateError::NoSuchTangKey(t)) if t == "nope"
    ));
    for bad in ["", "a/b", "a b", "x\n"] {
        assert!(
            matches!(
                store.insert_tang_keys(&[tang_row(bad, false, 1)], false),
                Err(StateError::Invalid { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(store.tang_keys().unwrap().len(), 3);
}

pub fn tang_key_rotation_through_one_instance_is_seen_by_another(a: &dyn Store, b: &dyn Store) {
    a.insert_tang_keys(&[tang_row("s1", false, 1), tang_row("e1", false, 1)], false)
        .unwrap();
    let seen: Vec<(String, bool)> = b
        .tang_keys()
        .unwrap()
        .into_iter()
        .map(|r| (r.thumbprint, r.hidden))
        .collect();
    assert_eq!(seen, [("e1".to_owned(), false), ("s1".to_owned(), false)]);
    // A rotation: the new pair in and the old hidden, in one transaction.
    assert_eq!(
        b.insert_tang_keys(&[tang_row("s2", false, 2), tang_row("e2", false, 2)], true)
            .unwrap(),
        2
    );
    let seen: Vec<(String, bool)> = a
        .tang_keys()
        .unwrap()
        .into_iter()
        .map(|r| (r.thumbprint, r.hidden))
        .collect();
    assert_eq!(
        seen,
        [
            ("e1".to_owned(), true),
            ("e2".to_owned(), false),
            ("s1".to_owned(), true),
            ("s2".to_owned(), false)
        ]
    );
    assert_eq!(a.tang_keys().unwrap(), b.tang_keys().unwrap());
}
