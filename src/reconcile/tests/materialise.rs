//! The carrying write as [`decide`] makes it: every value carried comes with
//! its registry flipped, and the write fits within the provider's batch
//! limit.

use super::*;

#[test]
fn a_carried_value_always_comes_with_its_registry_flipped() {
    // A materialiser with three waiting peers, each wanting a www address and
    // an SRV line: every value it adds is in a registry it rewrites.
    let zone = DomainName::new("example.com").unwrap();
    let ctx = Ctx::new(&zone, "i-m", false).unwrap();
    let mut seen = Seen::default();
    let key = |n: &str, t: RType| RrKey {
        name: DomainName::new(n).unwrap(),
        rtype: t,
    };
    seen.rrsets
        .insert(key("www.example.com", RType::A), Rrset::default());
    seen.rrsets
        .insert(key("_a._tcp.example.com", RType::SRV), Rrset::default());
    seen.rrsets.insert(ctx.registry.clone(), Rrset::default());
    let mut others = BTreeMap::new();
    for k in 1..=3 {
        let r = Registry {
            wanted: [
                value(&format!("www.example.com. A 192.0.2.{k}")),
                value(&format!(
                    "_a._tcp.example.com. SRV 0 0 80 h{k}.example.com."
                )),
            ]
            .into(),
            lease: Some(unix_now() + 3600),
            ..Registry::default()
        };
        let name = registry::name(&zone, &format!("i-{k}")).unwrap();
        seen.rrsets.insert(
            RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            },
            Rrset {
                values: r.to_values(&name).unwrap(),
                ttl: Some(60),
            },
        );
        others.insert(format!("i-{k}"), r);
    }
    seen.others = Some(others);
    let i = intent("i-m", &["www.example.com. A 192.0.2.9"], false);
    let Decision::Write(plan) = decide(&i, &ctx, &seen, How::Materialise).unwrap() else {
        panic!("a write")
    };
    let added: Vec<&Value> = plan.edit.add.values().flatten().map(|r| &r.value).collect();
    for k in 1..=3 {
        let reg = RrKey {
            name: registry::name(&zone, &format!("i-{k}")).unwrap(),
            rtype: RType::TXT,
        };
        let www = value(&format!("www.example.com. A 192.0.2.{k}"));
        let srv = value(&format!(
            "_a._tcp.example.com. SRV 0 0 80 h{k}.example.com."
        ));
        let flipped = plan.edit.add.get(&reg).map(|v| v.len()).unwrap_or(0);
        assert_eq!(
            added.contains(&&www) && added.contains(&&srv),
            flipped == 2,
            "i-{k}: values added {} and registry lines added {flipped}:\n{}",
            added.contains(&&www) && added.contains(&&srv),
            plan.edit
        );
    }
}

#[test]
fn a_write_costs_its_records_and_their_characters_and_fits_only_within_both() {
    let a = value("www.example.com. A 192.0.2.1");
    let b = value("_v1._theservice._tcp.example.com. SRV 0 0 8080 i-1.example.com.");
    let chars = a.data.to_string().len() + b.data.to_string().len();
    let c = Cost::of([&a, &b].into_iter());
    assert_eq!((c.records, c.characters), (2, chars));
    let limit = |records, characters| BatchLimit {
        records,
        characters,
    };
    assert!(c.within(limit(2, chars)));
    assert!(!c.within(limit(1, chars)), "one record too many");
    assert!(!c.within(limit(2, chars - 1)), "one character too many");
}

#[test]
fn a_carrying_write_stays_within_the_providers_batch_limit() {
    // 150 waiting peers, each with a long SRV line, under Route53's limits
    // (1,000 records, 32,000 characters of values): the write carries as
    // many as fit, counting every rrset it rewrites whole, and no more.
    let zone = DomainName::new("example.com").unwrap();
    let mut ctx = Ctx::new(&zone, "i-m", false).unwrap();
    ctx.batch_limit = BatchLimit {
        records: 900,
        characters: 28_000,
    };
    let srv = RrKey {
        name: DomainName::new("_v1._theservice._tcp.example.com").unwrap(),
        rtype: RType::SRV,
    };
    let line = |k: usize| {
        value(&format!(
            "_v1._theservice._tcp.example.com. SRV 0 0 8080 i-0123456789abcd{k:03}.example.com."
        ))
    };
    let mut seen = Seen::default();
    // 100 lines there already.
    seen.rrsets.insert(
        srv.clone(),
        Rrset {
            values: (500..600).map(line).collect(),
            ttl: Some(60),
        },
    );
    seen.rrsets.insert(ctx.registry.clone(), Rrset::default());
    let mut others = BTreeMap::new();
    for k in 0..150 {
        let r = Registry {
            wanted: [line(k)].into(),
            lease: Some(unix_now() + 3600),
            ..Registry::default()
        };
        let name = registry::name(&zone, &format!("i-{k}")).unwrap();
        seen.rrsets.insert(
            RrKey {
                name: name.clone(),
                rtype: RType::TXT,
            },
            Rrset {
                values: r.to_values(&name).unwrap(),
                ttl: Some(60),
            },
        );
        others.insert(format!("i-{k}"), r);
    }
    seen.others = Some(others);
    let mut i = intent("i-m", &[], false);
    i.desired = vec![Record {
        value: line(999),
        ttl: 60,
    }];
    let Decision::Write(plan) = decide(&i, &ctx, &seen, How::Materialise).unwrap() else {
        panic!("a write")
    };
    let cost = batch_cost(&plan.edit, &seen);
    assert!(cost.within(ctx.batch_limit), "{cost:?}");
    let carried = plan.outcome.carried;
    assert!(carried > 10 && carried < 150, "carried {carried}");
}

#[test]
fn a_handover_the_batch_limit_leaves_out_is_a_removal_not_an_orphan() {
    // i-m leaves, carrying; i-1, now at i-m's old address, wants that value.
    // Handing it over keeps the value and flips i-1's registry in the same
    // write; when the batch limit has no room for i-1's share, the value
    // must be removed as planned, never kept with nobody owning it.
    let zone = DomainName::new("example.com").unwrap();
    let mut ctx = Ctx::new(&zone, "i-m", false).unwrap();
    let www = value("www.example.com. A 192.0.2.9");
    let mut seen = Seen::default();
    seen.rrsets.insert(
        www.key(),
        Rrset {
            values: [www.clone()].into(),
            ttl: Some(60),
        },
    );
    let mine = Registry {
        owned: [www.clone()].into(),
        ..Registry::default()
    };
    seen.rrsets.insert(
        ctx.registry.clone(),
        Rrset {
            values: mine.to_values(&ctx.registry.name).unwrap(),
            ttl: Some(60),
        },
    );
    let peer_key = RrKey {
        name: registry::name(&zone, "i-1").unwrap(),
        rtype: RType::TXT,
    };
    let peer = Registry {
        wanted: [www.clone()].into(),
        lease: Some(unix_now() + 3600),
        ..Registry::default()
    };
    seen.rrsets.insert(
        peer_key.clone(),
        Rrset {
            values: peer.to_values(&peer_key.name).unwrap(),
            ttl: Some(60),
        },
    );
    let mut leave = intent("i-m", &[], true);
    leave.known = [www.clone()].into();
    let plan_with = |seen: &Seen, ctx: &Ctx| {
        let Decision::Write(plan) = decide(&leave, ctx, seen, How::Materialise).unwrap() else {
            panic!("a write")
        };
        plan
    };
    let removes = |plan: &Plan| {
        plan.edit
            .remove
            .get(&www.key())
            .is_some_and(|v| v.contains(&www))
    };

    // Room enough: handed over, i-1's registry rewritten in the same write.
    seen.others = Some([("i-1".to_string(), peer.clone())].into());
    let handed = plan_with(&seen, &ctx);
    assert!(!removes(&handed), "{}", handed.edit);
    assert!(handed.edit.add.contains_key(&peer_key), "{}", handed.edit);

    // Room for i-m's own share only (what the write costs with no peer).
    seen.others = Some(BTreeMap::new());
    let alone = batch_cost(&plan_with(&seen, &ctx).edit, &seen);
    ctx.batch_limit = BatchLimit {
        records: alone.records,
        characters: alone.characters,
    };
    seen.others = Some([("i-1".to_string(), peer)].into());
    let cut = plan_with(&seen, &ctx);
    assert!(!cut.edit.add.contains_key(&peer_key), "{}", cut.edit);
    assert!(removes(&cut), "kept with nobody owning it:\n{}", cut.edit);
    assert!(cut.outcome.removed.contains(&www), "{:?}", cut.outcome);
}
